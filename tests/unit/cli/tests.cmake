# ktwinctl as a user runs it: exit codes and the error lines.
add_test(NAME test_ktwinctl
         COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/cli/test_ktwinctl.sh $<TARGET_FILE:ktwinctl>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(test_ktwinctl PROPERTIES LABELS "unit;cli" TIMEOUT 120)
