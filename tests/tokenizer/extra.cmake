# Differential test against Hugging Face's own `tokenizers` (npm package pinned
# in tests/npm; scripts/fetch-test-data.sh installs it). A setup test runs node
# to record reference results from a fixed seed; the checker compares nativelm.
# Missing node or packages make the setup test, and so the check, fail.
add_executable(tokenizer_differential_check ${CMAKE_CURRENT_LIST_DIR}/differential/check.cpp)
target_link_libraries(tokenizer_differential_check PRIVATE nativelm_tokenizer)
# Built with the unit tests, so building test_tokenizer is enough for ctest.
if(TARGET test_tokenizer)
  add_dependencies(test_tokenizer tokenizer_differential_check)
endif()

set(_tok_diff_json ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_differential.json)
find_program(NATIVELM_NODE node)
if(NOT NATIVELM_NODE)
  set(NATIVELM_NODE node)  # left unresolved so the test fails loudly instead of vanishing
endif()
add_test(NAME tokenizer_differential_generate
         COMMAND ${NATIVELM_NODE} ${CMAKE_CURRENT_LIST_DIR}/differential/generate.mjs
                 ${NATIVELM_CACHE_DIR} ${NATIVELM_SHARED_DIR} ${_tok_diff_json} 2000)
set_tests_properties(tokenizer_differential_generate PROPERTIES FIXTURES_SETUP tokenizer_differential LABELS tokenizer)
add_test(NAME tokenizer_differential COMMAND tokenizer_differential_check ${_tok_diff_json})
set_tests_properties(tokenizer_differential PROPERTIES FIXTURES_REQUIRED tokenizer_differential LABELS tokenizer)
