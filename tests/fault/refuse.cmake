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

if(TARGET ktwin-hub AND TARGET ktwin-agent)
  # name -> timeout in seconds before KT_TEST_TIMEOUT_MULT
  kt_add_fault_tests(TESTS refuse_sync:120 refuse_mqtt:120 refuse_ingress:120
                     ARGS $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
endif()
