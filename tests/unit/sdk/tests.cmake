# tests/unit/sdk/tests.cmake — libktwin (sdk/): the graph index, the
# header reader and the ktwin.h helpers (unit), its parsers of untrusted
# bytes (fuzz replay), and the standalone HTTP service end to end against a
# real ktwin-agent and ktwin-hub, then the same plugin in-process (.so).
if(TARGET ktwin)
  kt_add_unit_test(test_sdk_gindex SOURCES unit/sdk/test_gindex.c
                   LIBS ktwin kt_svc PkgConfig::CURL LABELS unit)
  target_include_directories(test_sdk_gindex PRIVATE ${PROJECT_SOURCE_DIR}/sdk/src)

  kt_add_fuzz(fuzz_sdk_graph SOURCES fuzz/fuzz_sdk_graph.c LIBS ktwin kt_model kt_common
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/sdk_graph)
  target_include_directories(fuzz_sdk_graph PRIVATE ${PROJECT_SOURCE_DIR}/sdk/src)
endif()

if(TARGET ktwin-echo-service AND TARGET ktwin-agent AND TARGET ktwin-hub)
  add_test(NAME test_sdk_http_e2e
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/sdk/test_http_e2e.sh
                   $<TARGET_FILE:ktwin-echo-service> $<TARGET_FILE:ktwin-agent>
                   $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin_echo_plugin>)
  math(EXPR _t "180 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_sdk_http_e2e PROPERTIES LABELS "integration;sdk"
                       TIMEOUT ${_t} SKIP_RETURN_CODE 77)
endif()

# The same end-to-end run with the service linked against libktwin.so
# (only with -DKT_SDK_SHARED=ON).
if(TARGET ktwin-echo-service-shared AND TARGET ktwin-agent AND TARGET ktwin-hub)
  add_test(NAME test_sdk_http_e2e_shared
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/sdk/test_http_e2e.sh
                   $<TARGET_FILE:ktwin-echo-service-shared> $<TARGET_FILE:ktwin-agent>
                   $<TARGET_FILE:ktwin-hub>)
  math(EXPR _t "180 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_sdk_http_e2e_shared PROPERTIES LABELS "integration;sdk"
                       TIMEOUT ${_t} SKIP_RETURN_CODE 77)
endif()
