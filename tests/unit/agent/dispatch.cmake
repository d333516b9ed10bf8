# tests/unit/agent/dispatch.cmake — the agent's event dispatcher and latest
# state (helper dispatch): unit tests with a small model, a fixed placement
# and a real plugin .so built here against sdk/include/ktwin.h.
if(TARGET kt_agent_dispatch)
  add_library(dispatch_test_plugin MODULE unit/agent/dispatch_plugin.c)
  target_link_libraries(dispatch_test_plugin PRIVATE ktwin_sdk kt_warnings)
  set_target_properties(dispatch_test_plugin PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  kt_add_unit_test(test_agent_dispatch SOURCES unit/agent/test_dispatch.c
                   LIBS kt_agent_dispatch LABELS unit TIMEOUT 60)
  target_compile_definitions(test_agent_dispatch PRIVATE
                             DISPATCH_PLUGIN_PATH="$<TARGET_FILE:dispatch_test_plugin>")
  add_dependencies(test_agent_dispatch dispatch_test_plugin)
endif()

# End to end: the real ktwin-agent (graph and placement from a real
# ktwin-hub, then offline) with an HTTP twin service written in the test that
# makes exactly the HTTP calls of KTWIN's Go SDK.
if(TARGET ktwin-agent AND TARGET ktwin-hub AND TARGET kt_agent_dispatch)
  add_test(NAME test_agent_dispatch_e2e
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/agent/test_dispatch_e2e.sh
                   $<TARGET_FILE:ktwin-agent> $<TARGET_FILE:ktwin-hub>)
  math(EXPR _t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_agent_dispatch_e2e PROPERTIES LABELS "integration;agent"
                       TIMEOUT ${_t} SKIP_RETURN_CODE 77)
endif()
