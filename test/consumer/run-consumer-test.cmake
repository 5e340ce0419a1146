# Installs the build tree into a scratch prefix, then configures, builds and
# runs test/consumer against that prefix, as an outside project would.
#   cmake -DMOE_BUILD_DIR=... -DMOE_SOURCE_DIR=... -DWORK_DIR=...
#         -DMLIR_DIR=... -DGENERATOR=... -P run-consumer-test.cmake
foreach(var MOE_BUILD_DIR MOE_SOURCE_DIR WORK_DIR MLIR_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run-consumer-test.cmake needs -D${var}=...")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install ${MOE_BUILD_DIR} --prefix ${prefix})
run_step(${CMAKE_COMMAND} -G ${GENERATOR} -S ${MOE_SOURCE_DIR}/test/consumer
         -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
         -DCMAKE_PREFIX_PATH=${prefix} -DMLIR_DIR=${MLIR_DIR})
run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step(${WORK_DIR}/build/moe-consumer)
if(NOT step_output MATCHES "moe.mlp_experts" OR
   NOT step_output MATCHES "dispatch ops: 1")
  message(FATAL_ERROR "unexpected consumer output:\n${step_output}")
endif()
message(STATUS "consumer built against ${prefix} and ran:\n${step_output}")
