# tests/integration/federation.cmake — federation integration tests (ctest
# label "federation"): real ktwin-hub / ktwin-agent processes and the
# fake_fleet load generator on 127.0.0.1 with ephemeral ports and temp dirs.
# Included from tests/CMakeLists.txt (paths are relative to tests/).

set(_fed_dir ${CMAKE_CURRENT_SOURCE_DIR}/integration)

# fake_fleet needs kt_net (common/src/net.c) and kt_sync.
if(TARGET kt_sync AND EXISTS ${PROJECT_SOURCE_DIR}/common/src/net.c)
  add_executable(fake_fleet ${_fed_dir}/fake_fleet.c)
  target_link_libraries(fake_fleet PRIVATE kt_sync kt_common PkgConfig::LWS PkgConfig::UV kt_warnings)
endif()

# hub/sites.c (agents file, token check, persisted site state): a unit test.
if(TARGET kt_hub_core)
  kt_add_unit_test(test_hub_sites
    SOURCES ${_fed_dir}/test_hub_sites.c
    LIBS kt_hub_core PkgConfig::SQLITE3
    LABELS unit)
endif()

# hub/fed.c in one process over loopback WebSockets (rejects, subgraph, deltas, plans).
if(TARGET kt_hub_core AND EXISTS ${PROJECT_SOURCE_DIR}/common/src/net.c)
  kt_add_unit_test(test_hub_fed
    SOURCES ${_fed_dir}/test_hub_fed.c
    LIBS kt_hub_core kt_sync kt_common PkgConfig::LWS PkgConfig::UV PkgConfig::SQLITE3
    LABELS unit federation
    TIMEOUT 60)
endif()

add_executable(fed_expect ${_fed_dir}/fed_expect.c)
target_link_libraries(fed_expect PRIVATE kt_model kt_common kt_warnings)

# Each scenario is one run of federation.sh; it skips (exit 77) what it
# cannot run because a binary does not exist yet.
if(TARGET fake_fleet AND TARGET ktwin-hub)
  foreach(_scn three-sites storm tls)
    add_test(NAME federation_${_scn}
      COMMAND ${_fed_dir}/federation.sh ${_scn}
      WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
    math(EXPR _t "300 * ${KT_TEST_TIMEOUT_MULT}")
    set_tests_properties(federation_${_scn} PROPERTIES
      LABELS "federation;integration"
      TIMEOUT ${_t}
      SKIP_RETURN_CODE 77
      ENVIRONMENT "KT_BIN_DIR=${PROJECT_BINARY_DIR};KT_SOURCE_DIR=${PROJECT_SOURCE_DIR};KT_TIMEOUT_MULT=${KT_TEST_TIMEOUT_MULT}")
  endforeach()
endif()

# Store-and-forward agent -> hub (issue 4): ingress -> outbox -> sync -> hub
# event store, exactly once, also across a hub outage.
if(TARGET ktwin-hub AND TARGET ktwin-agent)
  add_test(NAME federation_events_uplink
           COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/test_events_uplink.sh
                   $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
  math(EXPR _ev_up_t "60 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(federation_events_uplink PROPERTIES LABELS "integration;federation"
                       TIMEOUT ${_ev_up_t})
endif()

# The deployment manifests' configurations against the real binaries and mosquitto.
if(TARGET ktwin-hub AND TARGET ktwin-agent)
  add_test(NAME integration_manifests
           COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/test_manifests.sh
                   $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
  math(EXPR _mf_t "30 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(integration_manifests PROPERTIES LABELS "integration" TIMEOUT ${_mf_t})
endif()
