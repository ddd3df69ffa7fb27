# llm_generate_protos(<out-dir> <sources-var> MESSAGES <name>... [SERVICES <name>...])
# C++ for protos/<name>.proto, generated into <out-dir> at build time: messages for every name,
# and the gRPC service code for the SERVICES ones (which must also be in MESSAGES). Sets
# <sources-var> to the generated .cc files, compiled without warnings (generated code is not ours to
# keep warning-free). Shared by the server and its protobuf-only fuzz build.
function(llm_generate_protos out_dir sources_var)
  cmake_parse_arguments(ARG "" "" "MESSAGES;SERVICES" ${ARGN})
  set(proto_dir ${PROJECT_SOURCE_DIR}/protos)
  file(MAKE_DIRECTORY ${out_dir})
  set(inputs)
  set(sources)
  set(headers)
  foreach(name IN LISTS ARG_MESSAGES)
    list(APPEND inputs ${proto_dir}/${name}.proto)
    list(APPEND sources ${out_dir}/${name}.pb.cc)
    list(APPEND headers ${out_dir}/${name}.pb.h)
  endforeach()
  set(commands COMMAND protobuf::protoc --proto_path=${proto_dir} --cpp_out=${out_dir} ${inputs})
  set(tools protobuf::protoc)
  foreach(name IN LISTS ARG_SERVICES)
    list(APPEND sources ${out_dir}/${name}.grpc.pb.cc)
    list(APPEND headers ${out_dir}/${name}.grpc.pb.h)
    # The plugin writes .grpc.pb.* for every file it is given: only the service files are.
    list(APPEND commands COMMAND protobuf::protoc --proto_path=${proto_dir} --grpc_out=${out_dir}
         --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin> ${proto_dir}/${name}.proto)
    list(APPEND tools gRPC::grpc_cpp_plugin)
  endforeach()
  list(JOIN ARG_MESSAGES ", " names)
  add_custom_command(
    OUTPUT ${sources} ${headers}
    ${commands}
    DEPENDS ${inputs} ${tools}
    COMMENT "protoc: ${names} -> C++"
    VERBATIM)
  set_source_files_properties(${sources} PROPERTIES COMPILE_OPTIONS "-w")
  set(${sources_var} ${sources} PARENT_SCOPE)
endfunction()
