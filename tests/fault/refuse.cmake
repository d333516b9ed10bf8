# tests/fault/refuse.cmake — the refusal fault tests (ctest label "fault"):
# bad input between real processes (ktwin-hub, ktwin-agent, mosquitto, a raw
# WebSocket peer written in Python) is refused with a log id and a metric,
# only that connection or message is dropped, and nothing else is lost.
#   fault_refuse_sync    garbage / truncated / oversized / text frames and a
#                        bad token on the hub's /sync; garbage from a fake hub
#   fault_refuse_mqtt    malformed JSON, unknown interface / instance and
#                        oversized payloads from devices on MQTT
#   fault_refuse_ingress malformed CloudEvents at the agent's POST /
# Included from tests/fault/tests.cmake (included from tests/CMakeLists.txt).

set(_refuse_dir ${PROJECT_SOURCE_DIR}/tests/fault)

if(TARGET ktwin-hub AND TARGET ktwin-agent)
  foreach(_rf sync:120 mqtt:120 ingress:120)
    string(REPLACE ":" ";" _rf_pair ${_rf})
    list(GET _rf_pair 0 _rf_name)
    list(GET _rf_pair 1 _rf_timeout)
    if(EXISTS ${_refuse_dir}/test_refuse_${_rf_name}.sh)
      add_test(NAME fault_refuse_${_rf_name}
               COMMAND ${_refuse_dir}/test_refuse_${_rf_name}.sh
                       $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
      math(EXPR _rf_t "${_rf_timeout} * ${KT_TEST_TIMEOUT_MULT}")
      set_tests_properties(fault_refuse_${_rf_name} PROPERTIES
        LABELS "fault"
        TIMEOUT ${_rf_t}
        SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endif()
