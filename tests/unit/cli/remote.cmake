# ktwinctl's hub commands (apply, get, delete, placement): usage, where the hub
# URL/token/CA come from, an unreachable hub, and, when ktwin-hub is built,
# end to end against the real hub (started on port 0 in a temp dir).
if(TARGET ktwin-hub)
  add_test(NAME test_ktwinctl_remote
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/cli/test_remote.sh $<TARGET_FILE:ktwinctl>
                   $<TARGET_FILE:ktwin-hub>)
else()
  add_test(NAME test_ktwinctl_remote
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/cli/test_remote.sh $<TARGET_FILE:ktwinctl>)
endif()
math(EXPR _kt_remote_timeout "120 * ${KT_TEST_TIMEOUT_MULT}")
set_tests_properties(test_ktwinctl_remote PROPERTIES LABELS "unit;cli" TIMEOUT ${_kt_remote_timeout})
