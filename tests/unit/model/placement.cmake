# The placement engine (model/src/placement.c). The smart-city case runs
# ktwin-sim, so the test depends on it.
kt_add_unit_test(test_placement
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_placement.c
  LIBS kt_model
  LABELS unit
  TIMEOUT 60)
add_dependencies(test_placement ktwin-sim)
