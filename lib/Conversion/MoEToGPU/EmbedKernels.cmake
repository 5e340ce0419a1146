# Writes the kernel library sources (INPUTS, a ;-separated list) into OUTPUT
# as C++ initializers {"file name", R"(text)"}, one per file.
set(out "")
foreach(input ${INPUTS})
  file(READ ${input} text)
  get_filename_component(name ${input} NAME)
  string(APPEND out "{\"${name}\", R\"moe_kernels(${text})moe_kernels\"},\n")
endforeach()
file(WRITE ${OUTPUT} "${out}")
