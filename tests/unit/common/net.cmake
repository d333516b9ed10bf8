# common/ networking and configuration base (owner: helper "net"):
# kt_cfg, kt_net (lws HTTP/WebSocket on libuv), kt_metrics.
kt_add_unit_test(test_common_net SOURCES unit/common/test_net.c
  LIBS kt_common PkgConfig::CURL PkgConfig::UV LABELS unit TIMEOUT 120)
