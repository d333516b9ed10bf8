# agent/ event plane ingest (helper edge): the journal, the outbox and the
# MQTT bridge against a real mosquitto; the journal record parser fuzz target.
if(TARGET kt_agent AND TARGET kt_sync)
  kt_add_unit_test(test_agent_journal SOURCES unit/agent/test_journal.c LIBS kt_agent LABELS unit
                   TIMEOUT 60)
  kt_add_unit_test(test_agent_outbox SOURCES unit/agent/test_outbox.c LIBS kt_agent LABELS unit)
  kt_add_fuzz(fuzz_journal SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_journal.c LIBS kt_agent
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/journal)
  # Needs mosquitto on PATH; the test exits 77 (skipped) without it.
  find_program(KT_MOSQUITTO mosquitto PATHS /usr/sbin /usr/local/sbin)
  if(KT_MOSQUITTO AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/agent/test_mqtt.c)
    kt_add_unit_test(test_agent_mqtt SOURCES unit/agent/test_mqtt.c LIBS kt_agent
                     LABELS "integration;agent" TIMEOUT 120)
    target_compile_definitions(test_agent_mqtt PRIVATE KT_MOSQUITTO="${KT_MOSQUITTO}")
    set_tests_properties(test_agent_mqtt PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endif()
