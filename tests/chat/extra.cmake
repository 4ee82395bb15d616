# Differential test against Debian's python3-jinja2 configured as transformers
# configures it: a setup test renders generated conversations with jinja2, the
# checker renders them again with nativelm and compares byte for byte.
add_executable(chat_differential_check ${CMAKE_CURRENT_LIST_DIR}/differential/check.cpp)
target_link_libraries(chat_differential_check PRIVATE nativelm_chat)
# Built with the unit tests, so building test_chat is enough for ctest.
add_dependencies(test_chat chat_differential_check)

set(_chat_diff_json ${CMAKE_CURRENT_BINARY_DIR}/chat_differential.json)
# Debian's interpreter on purpose: it is the one with python3-jinja2.
set(NATIVELM_SYSTEM_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with jinja2 for the chat differential test")
add_test(NAME chat_differential_generate
         COMMAND ${NATIVELM_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/differential/generate.py
                 ${NATIVELM_CACHE_DIR} ${_chat_diff_json} 400)
set_tests_properties(chat_differential_generate PROPERTIES FIXTURES_SETUP chat_differential LABELS chat)
add_test(NAME chat_differential COMMAND chat_differential_check ${_chat_diff_json})
set_tests_properties(chat_differential PROPERTIES FIXTURES_REQUIRED chat_differential LABELS chat)
