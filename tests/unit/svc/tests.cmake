# svc/: the twin-service runtime (kt_svc) and the SDK's plugin API.
if(TARGET kt_svc)
  kt_add_unit_test(test_svc_merge SOURCES unit/svc/test_merge.c LIBS kt_svc LABELS unit)
  kt_add_unit_test(test_svc_service SOURCES unit/svc/test_service.c LIBS kt_svc LABELS unit)

  # Plugins the host must refuse (no entry symbol; a foreign ABI version).
  add_library(svc_bad_nosym_plugin MODULE unit/svc/bad_plugin.c)
  add_library(svc_bad_abi_plugin MODULE unit/svc/bad_plugin.c)
  target_compile_definitions(svc_bad_abi_plugin PRIVATE KT_BAD_ABI)
  foreach(_p svc_bad_nosym_plugin svc_bad_abi_plugin)
    target_link_libraries(${_p} PRIVATE ktwin_sdk kt_warnings)
    set_target_properties(${_p} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  endforeach()

  kt_add_unit_test(test_svc_plugin SOURCES unit/svc/test_plugin.c LIBS kt_svc LABELS unit)
  add_dependencies(test_svc_plugin ktwin_echo_plugin svc_bad_nosym_plugin svc_bad_abi_plugin)
  target_compile_definitions(test_svc_plugin PRIVATE
    ECHO_PLUGIN="$<TARGET_FILE:ktwin_echo_plugin>"
    BAD_NOSYM_PLUGIN="$<TARGET_FILE:svc_bad_nosym_plugin>"
    BAD_ABI_PLUGIN="$<TARGET_FILE:svc_bad_abi_plugin>")
endif()

if(TARGET kt_svc)
  kt_add_unit_test(test_svc_api SOURCES unit/svc/test_api.c LIBS kt_svc PkgConfig::CURL Threads::Threads
                   LABELS unit TIMEOUT 60)
endif()

if(TARGET kt_svc)
  kt_add_unit_test(test_svc_caller SOURCES unit/svc/test_caller.c LIBS kt_svc LABELS unit TIMEOUT 120)
endif()

# Parsers of untrusted bytes: the corpora are replayed by ctest (label fuzz).
if(TARGET kt_svc)
  kt_add_fuzz(fuzz_svc_merge SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_svc_merge.c LIBS kt_svc
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/svc_merge)
  kt_add_fuzz(fuzz_svc_params SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_svc_params.c LIBS kt_svc
              CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/svc_params)
endif()
