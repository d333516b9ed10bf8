# ktwin-hub: unit tests of the hub modules (kt_hub_core) and integration
# tests that run the real ktwin-hub (and redis-server) on loopback.
if(TARGET kt_hub_core)
  kt_add_unit_test(test_hub_graph
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_graph.c
    LIBS kt_hub_core PkgConfig::SQLITE3
    LABELS unit)
  kt_add_unit_test(test_hub_config
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_config.c
    LIBS kt_hub_core
    LABELS unit)
  kt_add_unit_test(test_hub_watchdir
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_watchdir.c
    LIBS kt_hub_core
    LABELS unit
    TIMEOUT 60)
endif()
find_program(KT_REDIS_SERVER redis-server)
if(TARGET kt_hub_core AND KT_REDIS_SERVER)
  kt_add_unit_test(test_hub_redis
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_redis.c
    LIBS kt_hub_core PkgConfig::HIREDIS
    LABELS integration
    TIMEOUT 90)
endif()
# The real ktwin-hub over HTTP (curl + jq), with redis-server when installed.
if(TARGET ktwin-hub AND TARGET ktwinctl)
  add_test(NAME test_hub_http
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_http.sh
                   $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwinctl> "${KT_REDIS_SERVER}")
  math(EXPR _hub_http_t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_hub_http PROPERTIES LABELS "integration" TIMEOUT ${_hub_http_t}
                       SKIP_RETURN_CODE 77)
endif()
# POST /api/v1/apply bodies through the graph authority.
if(TARGET kt_hub_core)
  kt_add_fuzz(fuzz_hub_apply
    SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_hub_apply.c
    LIBS kt_hub_core
    CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/hub_apply)
endif()
