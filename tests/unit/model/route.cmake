# Events and routing (model/src/event.c, model/src/route.c): unit tests and
# the fuzz targets of every event parser (topics, types and times,
# structured JSON, HTTP headers, the compact binary form), each replaying
# its checked-in corpus under tests/fuzz/corpus/event_*.
kt_add_unit_test(test_event
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_event.c
  LIBS kt_model
  LABELS unit
  TIMEOUT 60)
kt_add_unit_test(test_route
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_route.c
  LIBS kt_model
  LABELS unit
  TIMEOUT 60)
foreach(_fz topic type json http decode)
  kt_add_fuzz(fuzz_event_${_fz}
    SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_event_${_fz}.c
    LIBS kt_model
    CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/event_${_fz})
endforeach()
