# services/: the smart-city twin services (issue 5).
if(TARGET kt_sc_formulas)
  kt_add_unit_test(test_services_formulas SOURCES unit/services/test_formulas.c
                   LIBS kt_sc_formulas LABELS unit)
endif()

if(TARGET kt_sc_services AND TARGET kt_svc AND TARGET ktwin-sim)
  # The twin graph the plugins are tested on: what `ktwin-sim model` writes.
  set(_sc_model_dir ${CMAKE_CURRENT_BINARY_DIR}/services_sim_model)
  add_test(NAME services_sim_model
           COMMAND $<TARGET_FILE:ktwin-sim> model --neighborhoods 2 --sites 2 -o ${_sc_model_dir})
  set_tests_properties(services_sim_model PROPERTIES LABELS "unit" FIXTURES_SETUP sc_model
    TIMEOUT 120)

  kt_add_unit_test(test_services_plugins SOURCES unit/services/test_plugins.c
                   LIBS kt_svc LABELS unit TIMEOUT 60)
  target_include_directories(test_services_plugins PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit/svc)
  add_dependencies(test_services_plugins kt_sc_plugins)
  set(_sc_defs KT_SC_MODEL_DIR="${_sc_model_dir}")
  get_property(_sc_targets GLOBAL PROPERTY KT_SC_PLUGIN_TARGETS)
  foreach(_t ${_sc_targets})
    string(REGEX REPLACE "^kt_sc_" "" _n ${_t})
    list(APPEND _sc_defs KT_SC_PLUGIN_${_n}="$<TARGET_FILE:${_t}>")
  endforeach()
  target_compile_definitions(test_services_plugins PRIVATE ${_sc_defs})
  set_tests_properties(test_services_plugins PROPERTIES FIXTURES_REQUIRED sc_model)
endif()

# The plugins' parsers of untrusted bytes (times in stored state, the config).
if(TARGET kt_sc_services)
  kt_add_fuzz(fuzz_services SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_services.c
              LIBS kt_sc_services kt_common
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/services)
  # every handler on arbitrary payloads and stored states, through a fake host
  kt_add_fuzz(fuzz_services_handlers
              SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_services_handlers.c
              LIBS kt_sc_services kt_common
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/services_handlers)
endif()

# End to end: ktwin-sim's model on the real hub, every service from smartcity.so in the
# real agent, devices on a real mosquitto.
if(TARGET kt_sc_smartcity AND TARGET ktwin-agent AND TARGET ktwin-hub AND TARGET ktwin-sim)
  add_test(NAME test_services_e2e
           COMMAND ${PROJECT_SOURCE_DIR}/tests/unit/services/test_services_e2e.sh
                   $<TARGET_FILE:ktwin-agent> $<TARGET_FILE:ktwin-hub>
                   $<TARGET_FILE:ktwin-sim> $<TARGET_FILE:kt_sc_smartcity>
                   $<$<TARGET_EXISTS:ktwin-smartcity-service>:$<TARGET_FILE:ktwin-smartcity-service>>)
  math(EXPR _t "120 * ${KT_TEST_TIMEOUT_MULT}")
  set_tests_properties(test_services_e2e PROPERTIES LABELS "integration;services"
                       TIMEOUT ${_t} SKIP_RETURN_CODE 77)
endif()
