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
#   fault_downstream_crossloop  a loop through a cloud service (hub) and an edge
#                           service (agent) that crosses the sync link both
#                           ways: the loop depth travels with the events and
#                           the agent's services.max_depth cuts it
#   fault_downstream_backpressure  site-a's downstream queue full (cap 2, agent
#                           away): site-b's commands and a later store event
#                           wait unacked in its outbox (HUB-BACKPRESSURE), then
#                           all arrive in order, exactly once, when site-a returns
# Included from tests/fault/tests.cmake (included from tests/CMakeLists.txt).

if(TARGET ktwin-hub AND TARGET ktwin-agent)
  # name -> timeout in seconds before KT_TEST_TIMEOUT_MULT
  kt_add_fault_tests(TESTS downstream:240 downstream_cloud:180 downstream_loop:120
                           downstream_crossloop:120 downstream_backpressure:180
                     ARGS $<TARGET_FILE:ktwin-hub> $<TARGET_FILE:ktwin-agent>)
endif()
