# sync/: one cmocka executable per module (STYLE.md §9), named test_sync_<module>
# so `ctest -R sync` selects them; plus the fuzz targets (decode, session) replaying their corpora.
foreach(_m msg backoff admit session events)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/sync/test_${_m}.c)
    kt_add_unit_test(test_sync_${_m} SOURCES unit/sync/test_${_m}.c LIBS kt_sync LABELS unit)
    # Tests may reach the internal headers (sync/src/*_int.h).
    target_include_directories(test_sync_${_m} PRIVATE ${PROJECT_SOURCE_DIR}/sync/src)
  endif()
endforeach()

foreach(_f decode session)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sync_${_f}.c
     AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/sync_${_f})
    kt_add_fuzz(fuzz_sync_${_f} SOURCES fuzz/fuzz_sync_${_f}.c LIBS kt_sync
      CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/sync_${_f})
  endif()
endforeach()
