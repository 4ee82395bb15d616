# ctest driver: cmake -DTOOL=.. -DNODE=.. -DCHECKER=.. -DWORK=.. -P this-file
file(REMOVE_RECURSE ${WORK})
file(WRITE ${WORK}/tok/tokenizer.json "{\"fake\": 1}\n")
file(WRITE ${WORK}/tok/tokenizer_config.json "{\"fake\": 2}\n")

function(run_ok)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}${err}")
  endif()
  message(STATUS "${out}${err}")
endfunction()

function(run_fails expected_message)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "${expected_message}")
    message(FATAL_ERROR "expected a failure saying '${expected_message}': ${ARGN}\nrc=${rc}\n${out}${err}")
  endif()
endfunction()

# Same seed sharded and unsharded must hold the same values; another seed must not.
run_ok(${TOOL} --shape qwen3-test --out ${WORK}/sharded --seed 7 --max-shard-size 40KB
       --tokenizer-dir ${WORK}/tok)
run_ok(${TOOL} --shape qwen3-test --out ${WORK}/single --seed 7)
run_ok(${TOOL} --shape qwen3-test --out ${WORK}/other --seed 8 --dtype f32)
run_ok(${NODE} ${CHECKER} ${WORK}/sharded --shards 8 --same-as ${WORK}/single)
run_ok(${NODE} ${CHECKER} ${WORK}/single --shards 1 --differs-from ${WORK}/other)
run_ok(${NODE} ${CHECKER} ${WORK}/other --shards 1)

foreach(name tokenizer.json tokenizer_config.json)
  file(READ ${WORK}/tok/${name} want)
  file(READ ${WORK}/sharded/${name} got)
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "${name} was not copied from --tokenizer-dir")
  endif()
endforeach()

run_fails("unknown --shape 'qwen3-9b'" ${TOOL} --shape qwen3-9b --out ${WORK}/bad)
run_fails("unknown --dtype 'int8'" ${TOOL} --shape qwen3-test --out ${WORK}/bad --dtype int8)
run_fails("--seed needs a number" ${TOOL} --shape qwen3-test --out ${WORK}/bad --seed x)
run_fails("--shape and --out are required" ${TOOL} --shape qwen3-test)
run_fails("has no tokenizer.json" ${TOOL} --shape qwen3-test --out ${WORK}/bad
          --tokenizer-dir ${WORK}/missing)
