# common/: one cmocka executable per module (STYLE.md §9). Targets are named
# test_common_<module> so `ctest -R common` selects them and the names cannot
# collide with test_<module> targets of other directories.
foreach(_m err log mem map buf inbox json clock)
  kt_add_unit_test(test_common_${_m} SOURCES unit/common/test_${_m}.c LIBS kt_common LABELS unit)
endforeach()
