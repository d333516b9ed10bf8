# common/ networking and configuration base (owner: helper "net"):
# kt_cfg, kt_net (lws HTTP/WebSocket on libuv), kt_metrics.
kt_add_unit_test(test_common_net SOURCES unit/common/test_net.c
  LIBS kt_common PkgConfig::CURL PkgConfig::UV LABELS unit TIMEOUT 120)
kt_add_unit_test(test_common_cfg SOURCES unit/common/test_cfg.c LIBS kt_common LABELS unit)
kt_add_unit_test(test_common_metrics SOURCES unit/common/test_metrics.c LIBS kt_common m
  LABELS unit)
kt_add_fuzz(fuzz_cfg SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_cfg.c LIBS kt_common
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/cfg)
