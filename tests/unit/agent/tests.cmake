# agent/: unit tests of the agent modules (label unit) and process tests of
# ktwin-agent (label integration).
if(TARGET kt_agent)
  kt_add_unit_test(test_agent_cache SOURCES unit/agent/test_cache.c LIBS kt_agent LABELS unit)
  kt_add_unit_test(test_agent_config SOURCES unit/agent/test_config.c LIBS kt_agent LABELS unit)
endif()
