# MOE_STATIC_LLVM: the tools link LLVM's and MLIR's static libraries, so that
# they run on a machine without LLVM (bench/gpu/bundle.sh takes moe-run to a
# GPU machine this way). Debian's packages export the static MLIR libraries
# with the shared libMLIR and libLLVM as their dependencies (targets MLIR and
# LLVM); here those two stand for linker scripts that group every static
# archive of the installation, and the linker keeps what the tools reach.
# The default build links libMLIR.so and libLLVM.so, and so does everything
# that is installed.

if(MOE_LINK_MLIR_DYLIB)
  message(FATAL_ERROR "MOE_STATIC_LLVM needs -DMOE_LINK_MLIR_DYLIB=OFF")
endif()

# Points the imported target `target` (in every configuration it has) at
# a linker script that groups `archives`.
function(moe_link_static_group target archives)
  set(script "${CMAKE_BINARY_DIR}/${target}-static.ld")
  list(JOIN archives "\n  " lines)
  file(WRITE "${script}" "GROUP (\n  ${lines}\n)\n")
  get_target_property(configs ${target} IMPORTED_CONFIGURATIONS)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${script}")
  if(configs)
    foreach(config IN LISTS configs)
      set_target_properties(${target} PROPERTIES
        IMPORTED_LOCATION_${config} "${script}")
    endforeach()
  endif()
endfunction()

file(GLOB llvm_archives "${LLVM_LIBRARY_DIR}/libLLVM*.a")
file(GLOB mlir_archives "${LLVM_LIBRARY_DIR}/libMLIR*.a")
# Not components: the whole of LLVM as one archive where it exists, and
# MLIR's test dialect and C API.
list(FILTER llvm_archives EXCLUDE REGEX "/libLLVM(-[0-9]+)?\\.a$")
list(FILTER mlir_archives EXCLUDE REGEX "/libMLIR(TestDialect|CAPI[^/]*)\\.a$")
if(NOT llvm_archives OR NOT mlir_archives)
  message(FATAL_ERROR "MOE_STATIC_LLVM: no static LLVM or MLIR archives in "
                      "${LLVM_LIBRARY_DIR}")
endif()
moe_link_static_group(LLVM "${llvm_archives}")
moe_link_static_group(MLIR "${mlir_archives}")

find_package(Threads REQUIRED)
# What libLLVM.so itself links: compression and the terminal database, as
# shared libraries every Linux distribution has (zstd ships no static
# archive on Debian); the linker drops the ones nothing needs.
find_library(MOE_ZLIB_LIBRARY NAMES libz.a z REQUIRED)
find_library(MOE_ZSTD_LIBRARY NAMES zstd libzstd.so.1 REQUIRED)
find_library(MOE_TINFO_LIBRARY NAMES libtinfo.a tinfo REQUIRED)
set_property(TARGET LLVM APPEND PROPERTY INTERFACE_LINK_LIBRARIES
  ${MOE_ZLIB_LIBRARY} ${MOE_ZSTD_LIBRARY} ${MOE_TINFO_LIBRARY}
  Threads::Threads ${CMAKE_DL_LIBS})
add_link_options(LINKER:--as-needed)

# A name the libraries link that Debian's MLIR package does not export.
if(NOT TARGET MLIRConversionPasses)
  add_library(MLIRConversionPasses INTERFACE IMPORTED)
  set_target_properties(MLIRConversionPasses PROPERTIES
    INTERFACE_LINK_LIBRARIES MLIR)
endif()
