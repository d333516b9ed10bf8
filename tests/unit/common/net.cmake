# common/ networking and configuration base (owner: helper "net"):
# kt_cfg, kt_net (lws HTTP/WebSocket on libuv), kt_metrics.
kt_add_unit_test(test_common_net SOURCES unit/common/test_net.c
  LIBS kt_common PkgConfig::CURL PkgConfig::UV dl LABELS unit TIMEOUT 120)
# -rdynamic: the test's OPENSSL_init_ssl / SSL_CTX_new interpose libssl's for lws.
target_link_options(test_common_net PRIVATE -rdynamic)
kt_add_unit_test(test_common_cfg SOURCES unit/common/test_cfg.c LIBS kt_common LABELS unit)
kt_add_unit_test(test_common_metrics SOURCES unit/common/test_metrics.c LIBS kt_common m
  LABELS unit)
kt_add_fuzz(fuzz_cfg SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_cfg.c LIBS kt_common
  CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/cfg)
