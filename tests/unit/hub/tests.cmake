# ktwin-hub: unit tests of the hub modules (kt_hub_core) and integration
# tests that run the real ktwin-hub (and redis-server) on loopback.
if(TARGET kt_hub_core)
  kt_add_unit_test(test_hub_graph
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_graph.c
    LIBS kt_hub_core
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
