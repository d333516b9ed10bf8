# sim/run.cmake — `ktwin-sim run` (run.c: the whole experiment as child
# processes) and `ktwin-sim report` (report.c: report.html), added to the
# ktwin-sim executable defined in sim/CMakeLists.txt, and their tests.
# Included from sim/CMakeLists.txt; owned by the runner (issue 5).
target_sources(ktwin-sim PRIVATE ${CMAKE_CURRENT_LIST_DIR}/run.c ${CMAKE_CURRENT_LIST_DIR}/report.c)
target_link_libraries(ktwin-sim PRIVATE PkgConfig::CURL PkgConfig::SQLITE3 PkgConfig::CJSON m)
target_compile_definitions(ktwin-sim PRIVATE
  KT_PAPER_DIR="${PROJECT_SOURCE_DIR}/data/ktwin-article")

# The report alone, from a checked-in results.json: well-formed XHTML-ish
# output (python's XML parser over the SVG parts), every section present.
add_test(NAME test_sim_report
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_sim_report.sh $<TARGET_FILE:ktwin-sim>
                 ${PROJECT_SOURCE_DIR}/data/ktwin-article)
set_tests_properties(test_sim_report PROPERTIES LABELS "unit;sim" TIMEOUT 60)

# The whole run: 1 neighborhood, 1 site, ~20 s with an offline period; 0 lost,
# 0 duplicates, counts > 0, report.html well-formed. Needs the hub, the agent
# and the smart-city service plugins.
math(EXPR _sim_run_t "300 * ${KT_TEST_TIMEOUT_MULT}")
add_test(NAME test_sim_run
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_sim_run.sh $<TARGET_FILE:ktwin-sim>)
set_tests_properties(test_sim_run PROPERTIES LABELS "integration;sim" TIMEOUT ${_sim_run_t}
                     RUN_SERIAL TRUE)

# report.html from any results.json (the input of `ktwin-sim report`).
kt_add_fuzz(fuzz_sim_report
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_sim_report.c ${CMAKE_CURRENT_LIST_DIR}/report.c
  LIBS kt_common PkgConfig::CJSON m
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/sim_report)
target_include_directories(fuzz_sim_report PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(fuzz_sim_report PRIVATE
  KT_PAPER_DIR="${PROJECT_SOURCE_DIR}/data/ktwin-article")

# The /metrics text `ktwin-sim run` reads from the agents and the hub
# (run_metrics.h), and the paper's CSVs `ktwin-sim report` reads (report_csv.h).
kt_add_fuzz(fuzz_sim_run
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_sim_run.c ${CMAKE_CURRENT_LIST_DIR}/run.c
          ${CMAKE_CURRENT_LIST_DIR}/report.c
  LIBS kt_sim kt_common PkgConfig::CURL PkgConfig::SQLITE3 PkgConfig::CJSON m
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/sim_run)
target_include_directories(fuzz_sim_run PRIVATE ${CMAKE_CURRENT_LIST_DIR})
kt_add_fuzz(fuzz_sim_csv
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_sim_csv.c ${CMAKE_CURRENT_LIST_DIR}/report.c
  LIBS kt_common PkgConfig::CJSON m
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/sim_csv)
target_include_directories(fuzz_sim_csv PRIVATE ${CMAKE_CURRENT_LIST_DIR})
