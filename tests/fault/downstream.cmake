# tests/fault/downstream.cmake — the hub -> agent routing fault tests
# (ctest label "fault"), real processes on 127.0.0.1 (ktwin-hub, ktwin-agent,
# mosquitto, twin services written in Python with the standard library):
#   fault_downstream        commands and virtual events from the hub's broker
#                           ingress and from a cloud service reach site-a's
#                           service and mosquitto exactly once, also while the
#                           agent is down and across a hub SIGKILL
#   fault_downstream_cloud  a slow HTTP cloud service: the hub is SIGKILLed
#                           mid-call; after the restart every event reaches
#                           the service (at-least-once), none is lost
#   fault_downstream_loop   an HTTP service that posts back to the ingress an
#                           event routed to itself: services.max_depth stops
#                           the loop on the agent and on the hub (reason depth)
#   fault_downstream_backpressure  site-a's downstream queue full (cap 2, agent
#                           away): site-b's commands and a later store event
#                           wait unacked in its outbox (HUB-BACKPRESSURE), then
#                           all arrive in order, exactly once, when site-a returns
# Included from tests/fault/tests.cmake (included from tests/CMakeLists.txt).

set(_dl_dir ${PROJECT_SOURCE_DIR}/tests/fault)

if(TARGET ktwin-hub AND TARGET ktwin-agent)
  foreach(_dl downstream:240 downstream_cloud:180 downstream_loop:120 downstream_backpressure:180)
    string(REPLACE ":" ";" _dl_pair ${_dl})
    list(GET _dl_pair 0 _dl_name)
    list(GET _dl_pair 1 _dl_timeout)
    if(EXISTS ${_dl_dir}/test_${_dl_name}.sh)
      add_test(NAME fault_${_dl_name}
               COMMAND ${_dl_dir}/test_${_dl_name}.sh
                       $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
      math(EXPR _dl_t "${_dl_timeout} * ${KT_TEST_TIMEOUT_MULT}")
      set_tests_properties(fault_${_dl_name} PROPERTIES
        LABELS "fault"
        TIMEOUT ${_dl_t}
        SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endif()
