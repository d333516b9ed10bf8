# agent/dispatch.cmake — the event dispatcher and the latest-state table
# (helper dispatch, issue 4), as kt_agent_dispatch: a static library on top
# of kt_agent (view, cache, outbox, MQTT bridge) and kt_svc (plugin host,
# HTTP caller, KTWIN APIs, upsert-merge). Included from agent/CMakeLists.txt;
# skipped while a part it needs is not in the tree yet.
if(TARGET kt_agent AND TARGET kt_svc AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/outbox.c
   AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/mqtt.c)
  add_library(kt_agent_dispatch STATIC ${CMAKE_CURRENT_SOURCE_DIR}/dispatch.c
                                       ${CMAKE_CURRENT_SOURCE_DIR}/latest.c)
  target_include_directories(kt_agent_dispatch PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(kt_agent_dispatch PUBLIC kt_agent kt_svc PkgConfig::SQLITE3 PkgConfig::UV
                        PRIVATE kt_warnings)
endif()
if(TARGET kt_agent_dispatch AND TARGET ktwin-agent)
  target_link_libraries(ktwin-agent PRIVATE kt_agent_dispatch)
endif()
