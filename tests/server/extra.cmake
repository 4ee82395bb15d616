# End-to-end server tests: node's built-in test runner drives `nativelm serve`
# with the official `openai` npm client (scripts/fetch-test-data.sh installs it)
# and raw fetch. Each file starts its own server on a free loopback port.
find_program(NATIVELM_NODE node)
if(NOT NATIVELM_NODE)
  set(NATIVELM_NODE node)  # left unresolved so the tests fail loudly instead of vanishing
endif()
# The chat response for a fixed model output, for the OpenAI client to read
# tool calls from (the test model cannot be made to write one).
add_executable(server_chat_reply ${CMAKE_CURRENT_LIST_DIR}/fixture/chat_reply.cpp)
target_link_libraries(server_chat_reply PRIVATE nativelm_server)
if(TARGET test_server)
  add_dependencies(test_server nativelm server_chat_reply)  # ctest runs them
endif()
foreach(suite api bad_input concurrency tools)
  add_test(NAME server_${suite}
           COMMAND ${NATIVELM_NODE} --test ${CMAKE_CURRENT_LIST_DIR}/${suite}.test.mjs)
  set_tests_properties(server_${suite} PROPERTIES
    LABELS server TIMEOUT 180
    ENVIRONMENT "NATIVELM_BINARY=$<TARGET_FILE:nativelm>;NATIVELM_CHAT_REPLY=$<TARGET_FILE:server_chat_reply>;NATIVELM_SHARED_DIR=${NATIVELM_SHARED_DIR};NATIVELM_CACHE_DIR=${NATIVELM_CACHE_DIR}")
endforeach()
