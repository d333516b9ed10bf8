# DTDL import and the YAML/JSON emitter (model/src/dtdl.c, model/src/emit.c).
kt_add_unit_test(test_dtdl
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_dtdl.c
  LIBS kt_model
  LABELS unit)
kt_add_unit_test(test_emit
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_emit.c
  LIBS kt_model
  LABELS unit)
kt_add_fuzz(fuzz_dtdl
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_dtdl.c
  LIBS kt_model
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/dtdl)
