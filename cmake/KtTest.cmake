# kt_add_unit_test(NAME src... LIBS libs... LABELS labels... [TIMEOUT s])
# One cmocka executable per module. KT_TEST_TIMEOUT_MULT stretches timeouts
# for sanitizer builds.
set(KT_TEST_TIMEOUT_MULT 1 CACHE STRING "Multiplier for test timeouts")
function(kt_add_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 30)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA kt_warnings)
  target_compile_definitions(${name} PRIVATE
    KT_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    KT_FIXTURES_DIR="${PROJECT_SOURCE_DIR}/tests/data/ktwin"
    KT_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${name} COMMAND ${name})
  math(EXPR _t "${T_TIMEOUT} * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${_t})
endfunction()

# kt_add_fuzz(NAME SOURCES src... LIBS libs... CORPUS dir)
# With KT_FUZZ (clang, fuzz preset) this is a libFuzzer binary. Otherwise it
# is linked with tests/fuzz/replay_main.c, and ctest replays the checked-in
# corpus through it (label fuzz), under whatever sanitizers the build has.
function(kt_add_fuzz name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  if(KT_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME ${name} COMMAND ${name} -runs=0 ${F_CORPUS})
  else()
    add_executable(${name} ${F_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
    add_test(NAME ${name} COMMAND ${name} ${F_CORPUS})
  endif()
  target_link_libraries(${name} PRIVATE ${F_LIBS} kt_warnings)
  math(EXPR _t "60 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(${name} PROPERTIES LABELS "fuzz" TIMEOUT ${_t})
endfunction()
