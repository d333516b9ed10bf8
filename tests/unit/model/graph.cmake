# The twin graph: instance sets, subgraphs, KTWIN's graph JSON (model/src/graph.c).
kt_add_unit_test(test_graph
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/model/test_graph.c
  LIBS kt_model
  LABELS unit)
kt_add_fuzz(fuzz_graph_json
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_graph_json.c
  LIBS kt_model
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/graph_json)
