# Fault tests (ctest label `fault`): real processes (mosquitto, ktwin-hub,
# ktwin-agent) and a TCP fault proxy on 127.0.0.1. Each part keeps its own list.
include(${CMAKE_CURRENT_LIST_DIR}/proxy.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/refuse.cmake OPTIONAL)
include(${CMAKE_CURRENT_LIST_DIR}/downstream.cmake OPTIONAL)
