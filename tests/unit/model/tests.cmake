kt_add_unit_test(test_node SOURCES unit/model/test_node.c LIBS kt_model LABELS unit)
kt_add_unit_test(test_model SOURCES unit/model/test_model.c LIBS kt_model LABELS unit)
target_include_directories(test_model PRIVATE ${PROJECT_SOURCE_DIR}/model/src) # model_int.h
kt_add_fuzz(fuzz_crd_yaml SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_crd_yaml.c LIBS kt_model
            CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/crd_yaml)
kt_add_fuzz(fuzz_json_reader SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_json_reader.c LIBS kt_model
            CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/json_reader)
