# End-to-end server tests: node's built-in test runner drives `nativelm serve`
# with the official `openai` npm client (scripts/fetch-test-data.sh installs it)
# and raw fetch. Each file starts its own server on a free loopback port.
find_program(NATIVELM_NODE node)
if(NOT NATIVELM_NODE)
  set(NATIVELM_NODE node)  # left unresolved so the tests fail loudly instead of vanishing
endif()
if(TARGET test_server)
  add_dependencies(test_server nativelm)  # ctest runs the binary
endif()
foreach(suite api bad_input concurrency)
  add_test(NAME server_${suite}
           COMMAND ${NATIVELM_NODE} --test ${CMAKE_CURRENT_LIST_DIR}/${suite}.test.mjs)
  set_tests_properties(server_${suite} PROPERTIES
    LABELS server TIMEOUT 180
    ENVIRONMENT "NATIVELM_BINARY=$<TARGET_FILE:nativelm>;NATIVELM_SHARED_DIR=${NATIVELM_SHARED_DIR};NATIVELM_CACHE_DIR=${NATIVELM_CACHE_DIR}")
endforeach()
