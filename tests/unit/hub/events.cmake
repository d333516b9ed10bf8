# hub event store and event plane (helper "hubev"): unit tests of
# hub/evstore*.c and hub/events.c, and the KTWIN event-store HTTP API against
# the real ktwin-hub. Names start with test_hub_ so `ctest -R hub` runs them.
if(TARGET kt_hub_core)
  kt_add_unit_test(test_hub_evstore
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_evstore.c
    LIBS kt_hub_core PkgConfig::CJSON PkgConfig::SQLITE3
    LABELS unit)
endif()
set(_hubev_events OFF)
if(TARGET kt_hub_core)
  get_target_property(_hubev_defs kt_hub_core INTERFACE_COMPILE_DEFINITIONS)
  if(_hubev_defs MATCHES "KT_HUB_HAVE_EVENTS")
    set(_hubev_events ON)
  endif()
endif()
if(_hubev_events)
  kt_add_unit_test(test_hub_events
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_events.c
    LIBS kt_hub_core
    LABELS unit
    TIMEOUT 60)
endif()
# The KTWIN event-store API and broker ingress on the real ktwin-hub (curl + jq).
if(TARGET ktwin-hub AND _hubev_events)
  add_test(NAME test_hub_events_http
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_events_http.sh
                   $<TARGET_FILE:ktwin-hub>)
  math(EXPR _hubev_t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_hub_events_http PROPERTIES LABELS "integration" TIMEOUT ${_hubev_t}
                       SKIP_RETURN_CODE 77)
endif()
