# svc/: the twin-service runtime (kt_svc) and the SDK's plugin API.
if(TARGET kt_svc)
  kt_add_unit_test(test_svc_merge SOURCES unit/svc/test_merge.c LIBS kt_svc LABELS unit)
  kt_add_unit_test(test_svc_service SOURCES unit/svc/test_service.c LIBS kt_svc LABELS unit)
endif()
