# agent/: unit tests of the agent modules (label unit) and process tests of
# ktwin-agent (label integration).
if(TARGET kt_agent)
  kt_add_unit_test(test_agent_cache SOURCES unit/agent/test_cache.c LIBS kt_agent LABELS unit)
  kt_add_unit_test(test_agent_config SOURCES unit/agent/test_config.c LIBS kt_agent LABELS unit)
endif()

# The uplink against an in-process fake hub (needs kt_net, so only with the full agent).
if(TARGET ktwin-agent)
  kt_add_unit_test(test_agent_uplink SOURCES unit/agent/test_uplink.c LIBS kt_agent LABELS unit
                   TIMEOUT 60)
endif()

# ktwin-agent as a process without a hub: config errors, serving a pre-filled
# cache while the hub is unreachable, a corrupt cache moved aside.
if(TARGET ktwin-agent AND TARGET bench_sync_snapshot)
  add_test(NAME test_agent_process
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/agent/test_agent_process.sh
                   $<TARGET_FILE:ktwin-agent> $<TARGET_FILE:bench_sync_snapshot>
                   $<TARGET_FILE:ktwin-sim> $<TARGET_FILE:ktwinctl>)
  math(EXPR _t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_agent_process PROPERTIES LABELS "integration;agent" TIMEOUT ${_t})
endif()

# ktwin-agent against a real ktwin-hub: snapshot, deltas, placement, serving
# the cache with the hub down, reconnect after a hub restart, a wrong token.
if(TARGET ktwin-agent AND TARGET ktwin-hub)
  add_test(NAME test_agent_hub
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/agent/test_agent_hub.sh
                   $<TARGET_FILE:ktwin-agent> $<TARGET_FILE:ktwin-hub>
                   $<TARGET_FILE:ktwin-sim> $<TARGET_FILE:ktwinctl>)
  math(EXPR _t "180 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_agent_hub PROPERTIES LABELS "integration;agent" TIMEOUT ${_t})
endif()

# ktwin-agent to a TLS hub (wss://) with a throwaway openssl CA; skipped
# (exit 77) when openssl is not installed.
if(TARGET ktwin-agent AND TARGET ktwin-hub)
  add_test(NAME test_agent_tls
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/agent/test_agent_tls.sh
                   $<TARGET_FILE:ktwin-agent> $<TARGET_FILE:ktwin-hub>)
  math(EXPR _t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_agent_tls PROPERTIES LABELS "integration;agent" TIMEOUT ${_t}
                                                 SKIP_RETURN_CODE 77)
endif()
