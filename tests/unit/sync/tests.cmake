# sync/: one cmocka executable per module (STYLE.md §9), named test_sync_<module>
# so `ctest -R sync` selects them; plus the decode fuzz target replaying its corpus.
foreach(_m msg backoff admit session)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/sync/test_${_m}.c)
    kt_add_unit_test(test_sync_${_m} SOURCES unit/sync/test_${_m}.c LIBS kt_sync LABELS unit)
    # Tests may reach the internal headers (sync/src/*_int.h).
    target_include_directories(test_sync_${_m} PRIVATE ${PROJECT_SOURCE_DIR}/sync/src)
  endif()
endforeach()

if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sync_decode.c)
  kt_add_fuzz(fuzz_sync_decode SOURCES fuzz/fuzz_sync_decode.c LIBS kt_sync
    CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/sync_decode)
endif()
