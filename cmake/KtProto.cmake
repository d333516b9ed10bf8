# KtProto.cmake — generate C from .proto files with protoc-c (protobuf-c 1.4).
#
# kt_protoc_c(<out_var> PROTO_ROOT <dir> GEN_DIR <dir> PROTOS <relative paths...>)
#   Adds one add_custom_command per file: <root>/ktwin/v1/x.proto becomes
#   <gen>/ktwin/v1/x.pb-c.c and .h (include it as "ktwin/v1/x.pb-c.h").
#   <out_var> receives the generated .c and .h paths, to put in a library.
#   Generated code lives only in the build tree; it is never checked in.
function(kt_protoc_c out_var)
  cmake_parse_arguments(P "" "PROTO_ROOT;GEN_DIR" "PROTOS" ${ARGN})
  set(_out "")
  foreach(_rel ${P_PROTOS})
    get_filename_component(_dir ${_rel} DIRECTORY)
    get_filename_component(_we ${_rel} NAME_WE)
    set(_c ${P_GEN_DIR}/${_dir}/${_we}.pb-c.c)
    set(_h ${P_GEN_DIR}/${_dir}/${_we}.pb-c.h)
    add_custom_command(
      OUTPUT ${_c} ${_h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${P_GEN_DIR}
      COMMAND ${PROTOC_C} --proto_path=${P_PROTO_ROOT} --c_out=${P_GEN_DIR} ${P_PROTO_ROOT}/${_rel}
      DEPENDS ${P_PROTO_ROOT}/${_rel}
      COMMENT "protoc-c ${_rel}"
      VERBATIM)
    list(APPEND _out ${_c} ${_h})
  endforeach()
  set(${out_var} ${_out} PARENT_SCOPE)
endfunction()
