# Fault tests (ctest label `fault`): real processes (mosquitto, ktwin-hub,
# ktwin-agent) and a TCP fault proxy on 127.0.0.1. Each part keeps its own list
# and registers it with kt_add_fault_tests, defined here.

# kt_add_fault_tests(TESTS NAME:TIMEOUT... ARGS ARG...): for each NAME whose
# script tests/fault/test_NAME.sh exists, the ctest fault_NAME running it with
# ARGS (the binaries, as $<TARGET_FILE:...>); label "fault", timeout TIMEOUT
# seconds times KT_TEST_TIMEOUT_MULT, exit status 77 = skipped.
function(kt_add_fault_tests)
  cmake_parse_arguments(PARSE_ARGV 0 _kf "" "" "TESTS;ARGS")
  foreach(_kf_test IN LISTS _kf_TESTS)
    string(REPLACE ":" ";" _kf_pair ${_kf_test})
    list(GET _kf_pair 0 _kf_name)
    list(GET _kf_pair 1 _kf_timeout)
    set(_kf_script ${PROJECT_SOURCE_DIR}/tests/fault/test_${_kf_name}.sh)
    if(EXISTS ${_kf_script})
      add_test(NAME fault_${_kf_name} COMMAND ${_kf_script} ${_kf_ARGS})
      math(EXPR _kf_secs "${_kf_timeout} * ${KT_TEST_TIMEOUT_MULT}")
      set_tests_properties(fault_${_kf_name} PROPERTIES
        LABELS "fault"
        TIMEOUT ${_kf_secs}
        SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endfunction()

include(${CMAKE_CURRENT_LIST_DIR}/proxy.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/refuse.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/downstream.cmake OPTIONAL)
