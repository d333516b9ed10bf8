# ktwin-hub: unit tests of the hub modules (kt_hub_core).
if(TARGET kt_hub_core)
  kt_add_unit_test(test_hub_graph
    SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/hub/test_hub_graph.c
    LIBS kt_hub_core
    LABELS unit)
endif()
