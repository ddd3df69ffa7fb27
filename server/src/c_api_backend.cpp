// The server side of the TRITONBACKEND_* functions declared in triton/core/tritonbackend.h,
// exported from the llm-server executable for backends to call. Semantics follow the doc comments
// of Triton's tritonbackend.h; every body runs under guard_api so no exception crosses the ABI.
#include <algorithm>
#include <cstring>

#include "api_error.h"
#include "backend.h"
#include "handles.h"
#include "logging.h"
#include "model.h"
#include "model_config.h"
#include "request.h"

using llm_server::ApiError;
using llm_server::checked;
using llm_server::from_handle;
using llm_server::guard_api;
using llm_server::to_handle;

namespace {

// TRITONSERVER_Error_Code for a misuse reported back to the backend.
[[noreturn]] void invalid(const std::string& message) {
  throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, message);
}

llm_server::InferenceRequest& request_of(TRITONBACKEND_Request* handle) {
  return *from_handle(&checked(handle, "request"));
}

llm_server::ModelVersion& model_of(TRITONBACKEND_Model* handle) {
  return *from_handle(&checked(handle, "model"));
}

llm_server::ModelInstance& instance_of(TRITONBACKEND_ModelInstance* handle) {
  return *from_handle(&checked(handle, "instance"));
}

llm_server::Backend& backend_of(TRITONBACKEND_Backend* handle) {
  return *from_handle(&checked(handle, "backend"));
}

void check_index(uint32_t index, size_t count, const char* what) {
  if (index >= count) {
    invalid(std::string("out of bounds index ") + std::to_string(index) + ": " +
            std::to_string(count) + " " + what);
  }
}

std::vector<llm_server::MemoryUsage> memory_usage_from(TRITONSERVER_BufferAttributes** usage,
                                                        uint32_t usage_size) {
  std::vector<llm_server::MemoryUsage> entries;
  if (usage_size > 0 && usage == nullptr) {
    invalid("usage must not be null");
  }
  for (uint32_t i = 0; i < usage_size; ++i) {
    const TRITONSERVER_BufferAttributes& attributes = checked(usage[i], "usage entry");
    entries.push_back({attributes.memory_type, attributes.memory_type_id, attributes.byte_size});
  }
  return entries;
}

void fill_input_properties(llm_server::InputTensor& input, const char** name,
                           TRITONSERVER_DataType* datatype, const int64_t** shape,
                           uint32_t* dims_count, uint64_t* byte_size, uint32_t* buffer_count) {
  if (name != nullptr) *name = input.name.c_str();
  if (datatype != nullptr) *datatype = input.datatype;
  if (shape != nullptr) *shape = input.shape.data();
  if (dims_count != nullptr) *dims_count = static_cast<uint32_t>(input.shape.size());
  if (byte_size != nullptr) *byte_size = input.data.size();
  // One contiguous buffer; an empty tensor has none.
  if (buffer_count != nullptr) *buffer_count = input.data.empty() ? 0 : 1;
}

void fill_input_buffer(llm_server::InputTensor& input, uint32_t index, const void** buffer,
                       uint64_t* buffer_byte_size, TRITONSERVER_MemoryType* memory_type,
                       int64_t* memory_type_id) {
  check_index(index, input.data.empty() ? 0 : 1, "input buffers");
  checked(buffer, "buffer") = input.data.data();
  checked(buffer_byte_size, "buffer_byte_size") = input.data.size();
  // The preferred memory type is only a preference: data lives in CPU memory here.
  checked(memory_type, "memory_type") = TRITONSERVER_MEMORY_CPU;
  checked(memory_type_id, "memory_type_id") = 0;
}

}  // namespace

extern "C" {

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ApiVersion(uint32_t* major,
                                                                    uint32_t* minor) {
  return guard_api([&] {
    checked(major, "major") = TRITONBACKEND_API_VERSION_MAJOR;
    checked(minor, "minor") = TRITONBACKEND_API_VERSION_MINOR;
  });
}

// --- memory manager -----------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_MemoryManagerAllocate(
    TRITONBACKEND_MemoryManager* manager, void** buffer, const TRITONSERVER_MemoryType memory_type,
    const int64_t memory_type_id, const uint64_t byte_size) {
  return guard_api([&] {
    checked(buffer, "buffer") = from_handle(&checked(manager, "manager"))
                                    ->allocate(memory_type, memory_type_id, byte_size);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_MemoryManagerFree(
    TRITONBACKEND_MemoryManager* manager, void* buffer, const TRITONSERVER_MemoryType memory_type,
    const int64_t memory_type_id) {
  return guard_api([&] {
    from_handle(&checked(manager, "manager"))->deallocate(buffer, memory_type, memory_type_id);
  });
}

// --- inputs -----------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InputProperties(
    TRITONBACKEND_Input* input, const char** name, TRITONSERVER_DataType* datatype,
    const int64_t** shape, uint32_t* dims_count, uint64_t* byte_size, uint32_t* buffer_count) {
  return guard_api([&] {
    fill_input_properties(*from_handle(&checked(input, "input")), name, datatype, shape,
                          dims_count, byte_size, buffer_count);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InputPropertiesForHostPolicy(
    TRITONBACKEND_Input* input, const char* /*host_policy_name*/, const char** name,
    TRITONSERVER_DataType* datatype, const int64_t** shape, uint32_t* dims_count,
    uint64_t* byte_size, uint32_t* buffer_count) {
  // No host-policy specific buffers exist here, so the fallback buffers are always returned.
  return guard_api([&] {
    fill_input_properties(*from_handle(&checked(input, "input")), name, datatype, shape,
                          dims_count, byte_size, buffer_count);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InputBuffer(
    TRITONBACKEND_Input* input, const uint32_t index, const void** buffer,
    uint64_t* buffer_byte_size, TRITONSERVER_MemoryType* memory_type, int64_t* memory_type_id) {
  return guard_api([&] {
    fill_input_buffer(*from_handle(&checked(input, "input")), index, buffer, buffer_byte_size,
                      memory_type, memory_type_id);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InputBufferForHostPolicy(
    TRITONBACKEND_Input* input, const char* /*host_policy_name*/, const uint32_t index,
    const void** buffer, uint64_t* buffer_byte_size, TRITONSERVER_MemoryType* memory_type,
    int64_t* memory_type_id) {
  return guard_api([&] {
    fill_input_buffer(*from_handle(&checked(input, "input")), index, buffer, buffer_byte_size,
                      memory_type, memory_type_id);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InputBufferAttributes(
    TRITONBACKEND_Input* input, const uint32_t index, const void** buffer,
    TRITONSERVER_BufferAttributes** buffer_attributes) {
  return guard_api([&] {
    llm_server::InputTensor& tensor = *from_handle(&checked(input, "input"));
    check_index(index, tensor.data.empty() ? 0 : 1, "input buffers");
    checked(buffer, "buffer") = tensor.data.data();
    checked(buffer_attributes, "buffer_attributes") = &tensor.attributes;
  });
}

// --- outputs ----------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_OutputBuffer(
    TRITONBACKEND_Output* output, void** buffer, const uint64_t buffer_byte_size,
    TRITONSERVER_MemoryType* memory_type, int64_t* memory_type_id) {
  return guard_api([&] {
    llm_server::ResponseOutput& out = *from_handle(&checked(output, "output"));
    if (out.has_buffer) {
      invalid("a buffer was already allocated for output '" + out.tensor.name + "'");
    }
    out.tensor.data.assign(buffer_byte_size, '\0');
    out.has_buffer = true;
    out.attributes.memory_type = TRITONSERVER_MEMORY_CPU;
    out.attributes.memory_type_id = 0;
    out.attributes.byte_size = buffer_byte_size;
    checked(buffer, "buffer") = out.tensor.data.data();
    checked(memory_type, "memory_type") = TRITONSERVER_MEMORY_CPU;
    checked(memory_type_id, "memory_type_id") = 0;
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_OutputBufferAttributes(
    TRITONBACKEND_Output* output, TRITONSERVER_BufferAttributes** buffer_attributes) {
  return guard_api([&] {
    checked(buffer_attributes, "buffer_attributes") =
        &from_handle(&checked(output, "output"))->attributes;
  });
}

// --- requests ---------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestId(TRITONBACKEND_Request* request,
                                                                   const char** id) {
  return guard_api([&] { checked(id, "id") = request_of(request).id.c_str(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestIsCancelled(
    TRITONBACKEND_Request* request, bool* is_cancelled) {
  return guard_api([&] {
    checked(is_cancelled, "is_cancelled") = request_of(request).router().is_cancelled();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseFactoryIsCancelled(
    TRITONBACKEND_ResponseFactory* factory, bool* is_cancelled) {
  return guard_api([&] {
    checked(is_cancelled, "is_cancelled") =
        from_handle(&checked(factory, "factory"))->router().is_cancelled();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestCorrelationId(
    TRITONBACKEND_Request* request, uint64_t* id) {
  return guard_api([&] {
    const auto& correlation = request_of(request).correlation_id;
    if (std::holds_alternative<std::string>(correlation)) {
      invalid("correlation ID in request is not an unsigned int");
    }
    const uint64_t* number = std::get_if<uint64_t>(&correlation);
    checked(id, "id") = number != nullptr ? *number : 0;
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InferenceRequestTimeoutMicroseconds(
    TRITONBACKEND_Request* request, uint64_t* timeout) {
  return guard_api(
      [&] { checked(timeout, "timeout") = request_of(request).timeout_microseconds; });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestCorrelationIdString(
    TRITONBACKEND_Request* request, const char** id) {
  return guard_api([&] {
    const auto& correlation = request_of(request).correlation_id;
    if (std::holds_alternative<uint64_t>(correlation)) {
      invalid("correlation ID in request is not a string");
    }
    const std::string* text = std::get_if<std::string>(&correlation);
    checked(id, "id") = text != nullptr ? text->c_str() : "";
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestFlags(TRITONBACKEND_Request* request,
                                                                      uint32_t* flags) {
  return guard_api([&] { checked(flags, "flags") = request_of(request).flags; });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestParameterCount(
    TRITONBACKEND_Request* request, uint32_t* count) {
  return guard_api([&] {
    checked(count, "count") = static_cast<uint32_t>(request_of(request).parameters.size());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestParameter(
    TRITONBACKEND_Request* request, const uint32_t index, const char** key,
    TRITONSERVER_ParameterType* type, const void** vvalue) {
  return guard_api([&] {
    const auto& parameters = request_of(request).parameters;
    check_index(index, parameters.size(), "request parameters");
    const TRITONSERVER_Parameter& parameter = parameters[index];
    checked(key, "key") = parameter.name.c_str();
    checked(type, "type") = parameter.type;
    checked(vvalue, "vvalue") = parameter.value_pointer();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestInputCount(
    TRITONBACKEND_Request* request, uint32_t* count) {
  return guard_api([&] {
    checked(count, "count") = static_cast<uint32_t>(request_of(request).inputs.size());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestInputName(
    TRITONBACKEND_Request* request, const uint32_t index, const char** input_name) {
  return guard_api([&] {
    const auto& inputs = request_of(request).inputs;
    check_index(index, inputs.size(), "request inputs");
    checked(input_name, "input_name") = inputs[index]->name.c_str();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestInput(TRITONBACKEND_Request* request,
                                                                      const char* name,
                                                                      TRITONBACKEND_Input** input) {
  return guard_api([&] {
    llm_server::InferenceRequest& inference = request_of(request);
    checked(name, "name");
    const llm_server::InputTensor* found = inference.find_input(name);
    if (found == nullptr) {
      invalid(inference.router().log_prefix() + "input '" + name + "' does not exist in request");
    }
    checked(input, "input") = to_handle(const_cast<llm_server::InputTensor*>(found));
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestInputByIndex(
    TRITONBACKEND_Request* request, const uint32_t index, TRITONBACKEND_Input** input) {
  return guard_api([&] {
    auto& inputs = request_of(request).inputs;
    check_index(index, inputs.size(), "request inputs");
    checked(input, "input") = to_handle(inputs[index].get());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestOutputCount(
    TRITONBACKEND_Request* request, uint32_t* count) {
  return guard_api([&] {
    checked(count, "count") = static_cast<uint32_t>(request_of(request).requested_outputs.size());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestOutputName(
    TRITONBACKEND_Request* request, const uint32_t index, const char** output_name) {
  return guard_api([&] {
    const auto& outputs = request_of(request).requested_outputs;
    check_index(index, outputs.size(), "requested outputs");
    checked(output_name, "output_name") = outputs[index].c_str();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestOutputBufferProperties(
    TRITONBACKEND_Request* request, const char* /*name*/, size_t* /*byte_size*/,
    TRITONSERVER_MemoryType* memory_type, int64_t* memory_type_id) {
  return guard_api([&] {
    request_of(request);
    // Outputs always go to CPU memory (they are copied into the gRPC response).
    checked(memory_type, "memory_type") = TRITONSERVER_MEMORY_CPU;
    checked(memory_type_id, "memory_type_id") = 0;
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestRelease(
    TRITONBACKEND_Request* request, uint32_t release_flags) {
  return guard_api([&] {
    llm_server::InferenceRequest& inference = request_of(request);
    if ((release_flags & TRITONSERVER_REQUEST_RELEASE_RESCHEDULE) != 0) {
      const auto& config = inference.model().config();
      if (!config.has_sequence_batching() || !config.sequence_batching().iterative_sequence()) {
        invalid(inference.router().log_prefix() +
                "Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the "
                "model is not configured to handle such request");
      }
      std::unique_ptr<llm_server::InferenceRequest> owned(&inference);
      llm_server::ModelVersion& model = owned->model();
      model.reschedule(std::move(owned));
      return;
    }
    if ((release_flags & TRITONSERVER_REQUEST_RELEASE_ALL) == 0) {
      invalid("unsupported request release flags " + std::to_string(release_flags));
    }
    // Ownership comes back from the backend: this ends the request (not its response factories).
    std::unique_ptr<llm_server::InferenceRequest> owned(&inference);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_RequestTrace(
    TRITONBACKEND_Request* request, TRITONSERVER_InferenceTrace** trace) {
  return guard_api([&] {
    request_of(request);
    checked(trace, "trace") = nullptr;  // requests are never traced
  });
}

// --- response factories -------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseFactoryNew(
    TRITONBACKEND_ResponseFactory** factory, TRITONBACKEND_Request* request) {
  return guard_api([&] {
    // The out-parameter is checked first: in `checked(out) = created.release()` the release comes
    // first and a null out-parameter would leak the object.
    TRITONBACKEND_ResponseFactory*& out = checked(factory, "factory");
    auto created =
        std::make_unique<llm_server::ResponseFactory>(request_of(request).shared_router());
    out = to_handle(created.release());  // owned by the backend
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseFactoryDelete(
    TRITONBACKEND_ResponseFactory* factory) {
  return guard_api([&] {
    std::unique_ptr<llm_server::ResponseFactory> owned(from_handle(&checked(factory, "factory")));
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseFactorySendFlags(
    TRITONBACKEND_ResponseFactory* factory, const uint32_t send_flags) {
  return guard_api(
      [&] { from_handle(&checked(factory, "factory"))->router().send_flags(send_flags); });
}

// --- responses ----------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseNew(
    TRITONBACKEND_Response** response, TRITONBACKEND_Request* request) {
  return guard_api([&] {
    TRITONBACKEND_Response*& out = checked(response, "response");
    auto created = std::make_unique<llm_server::Response>(request_of(request).shared_router());
    out = to_handle(created.release());  // owned by the backend
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseNewFromFactory(
    TRITONBACKEND_Response** response, TRITONBACKEND_ResponseFactory* factory) {
  return guard_api([&] {
    TRITONBACKEND_Response*& out = checked(response, "response");
    auto created = std::make_unique<llm_server::Response>(
        from_handle(&checked(factory, "factory"))->shared_router());
    out = to_handle(created.release());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseDelete(
    TRITONBACKEND_Response* response) {
  return guard_api([&] {
    std::unique_ptr<llm_server::Response> owned(from_handle(&checked(response, "response")));
  });
}

namespace {

TRITONSERVER_Error* set_response_parameter(TRITONBACKEND_Response* response, const char* name,
                                           TRITONSERVER_Parameter parameter) {
  return guard_api([&] {
    checked(name, "name");
    parameter.name = name;
    from_handle(&checked(response, "response"))->set_parameter(std::move(parameter));
  });
}

}  // namespace

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseSetStringParameter(
    TRITONBACKEND_Response* response, const char* name, const char* value) {
  TRITONSERVER_Parameter parameter;
  parameter.type = TRITONSERVER_PARAMETER_STRING;
  if (value == nullptr) {
    return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INVALID_ARG, "value must not be null");
  }
  try {
    parameter.string_value = value;
  } catch (...) {
    return llm_server::current_exception_to_error();
  }
  return set_response_parameter(response, name, std::move(parameter));
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseSetIntParameter(
    TRITONBACKEND_Response* response, const char* name, const int64_t value) {
  TRITONSERVER_Parameter parameter;
  parameter.type = TRITONSERVER_PARAMETER_INT;
  parameter.int_value = value;
  return set_response_parameter(response, name, std::move(parameter));
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseSetBoolParameter(
    TRITONBACKEND_Response* response, const char* name, const bool value) {
  TRITONSERVER_Parameter parameter;
  parameter.type = TRITONSERVER_PARAMETER_BOOL;
  parameter.bool_value = value;
  return set_response_parameter(response, name, std::move(parameter));
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseSetDoubleParameter(
    TRITONBACKEND_Response* response, const char* name, const double value) {
  TRITONSERVER_Parameter parameter;
  parameter.type = TRITONSERVER_PARAMETER_DOUBLE;
  parameter.double_value = value;
  return set_response_parameter(response, name, std::move(parameter));
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseOutput(
    TRITONBACKEND_Response* response, TRITONBACKEND_Output** output, const char* name,
    const TRITONSERVER_DataType datatype, const int64_t* shape, const uint32_t dims_count) {
  return guard_api([&] {
    llm_server::ResponseOutput& added =
        from_handle(&checked(response, "response"))->add_output(name, datatype, shape, dims_count);
    checked(output, "output") = to_handle(&added);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ResponseSend(
    TRITONBACKEND_Response* response, const uint32_t send_flags, TRITONSERVER_Error* error) {
  return guard_api([&] {
    // The server takes the response in any case; 'error' stays owned by the backend.
    std::unique_ptr<llm_server::Response> owned(from_handle(&checked(response, "response")));
    owned->send(send_flags, error);
  });
}

// --- implicit state (sequence batching "state"): not supported -----------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_StateNew(
    TRITONBACKEND_State** state, TRITONBACKEND_Request* request, const char* name,
    const TRITONSERVER_DataType /*datatype*/, const int64_t* /*shape*/,
    const uint32_t /*dims_count*/) {
  return guard_api([&] {
    checked(state, "state") = nullptr;
    llm_server::InferenceRequest& inference = request_of(request);
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "unable to create state '" + std::string(name ? name : "") + "' for model '" +
                       inference.model().name() +
                       "': implicit state management is not supported by llm-server");
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_StateUpdate(TRITONBACKEND_State* state) {
  return guard_api([&] {
    checked(state, "state");
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "implicit state management is not supported by llm-server");
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_StateBuffer(
    TRITONBACKEND_State* state, void** /*buffer*/, const uint64_t /*buffer_byte_size*/,
    TRITONSERVER_MemoryType* /*memory_type*/, int64_t* /*memory_type_id*/) {
  return guard_api([&] {
    checked(state, "state");
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "implicit state management is not supported by llm-server");
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_StateBufferAttributes(
    TRITONBACKEND_State* state, TRITONSERVER_BufferAttributes** /*buffer_attributes*/) {
  return guard_api([&] {
    checked(state, "state");
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "implicit state management is not supported by llm-server");
  });
}

// --- backend ------------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendName(TRITONBACKEND_Backend* backend,
                                                                     const char** name) {
  return guard_api([&] { checked(name, "name") = backend_of(backend).name().c_str(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendConfig(
    TRITONBACKEND_Backend* backend, TRITONSERVER_Message** backend_config) {
  return guard_api(
      [&] { checked(backend_config, "backend_config") = backend_of(backend).config_message(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendExecutionPolicy(
    TRITONBACKEND_Backend* backend, TRITONBACKEND_ExecutionPolicy* policy) {
  return guard_api(
      [&] { checked(policy, "policy") = backend_of(backend).execution_policy(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendSetExecutionPolicy(
    TRITONBACKEND_Backend* backend, TRITONBACKEND_ExecutionPolicy policy) {
  return guard_api([&] { backend_of(backend).set_execution_policy(policy); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendArtifacts(
    TRITONBACKEND_Backend* backend, TRITONBACKEND_ArtifactType* artifact_type,
    const char** location) {
  return guard_api([&] {
    checked(artifact_type, "artifact_type") = TRITONBACKEND_ARTIFACT_FILESYSTEM;
    checked(location, "location") = backend_of(backend).directory().c_str();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendMemoryManager(
    TRITONBACKEND_Backend* backend, TRITONBACKEND_MemoryManager** manager) {
  return guard_api(
      [&] { checked(manager, "manager") = to_handle(&backend_of(backend).memory_manager()); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendState(TRITONBACKEND_Backend* backend,
                                                                      void** state) {
  return guard_api([&] { checked(state, "state") = backend_of(backend).state(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendSetState(
    TRITONBACKEND_Backend* backend, void* state) {
  return guard_api([&] { backend_of(backend).set_state(state); });
}

// --- model --------------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelName(TRITONBACKEND_Model* model,
                                                                   const char** name) {
  return guard_api([&] { checked(name, "name") = model_of(model).name().c_str(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelVersion(TRITONBACKEND_Model* model,
                                                                      uint64_t* version) {
  return guard_api(
      [&] { checked(version, "version") = static_cast<uint64_t>(model_of(model).version()); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelRepository(
    TRITONBACKEND_Model* model, TRITONBACKEND_ArtifactType* artifact_type, const char** location) {
  return guard_api([&] {
    checked(artifact_type, "artifact_type") = TRITONBACKEND_ARTIFACT_FILESYSTEM;
    checked(location, "location") = model_of(model).repository_path().c_str();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelConfig(
    TRITONBACKEND_Model* model, const uint32_t config_version, TRITONSERVER_Message** model_config) {
  return guard_api([&] {
    checked(model_config, "model_config") = nullptr;
    if (config_version != 1) {
      invalid("model configuration version " + std::to_string(config_version) +
              " not supported, supported versions are: 1");
    }
    auto message = std::make_unique<TRITONSERVER_Message>();
    message->json = model_of(model).config_json();
    *model_config = message.release();  // owned by the caller (TRITONSERVER_MessageDelete)
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelAutoCompleteConfig(
    TRITONBACKEND_Model* model, bool* auto_complete_config) {
  return guard_api([&] {
    checked(auto_complete_config, "auto_complete_config") = model_of(model).auto_complete_config();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelSetConfig(
    TRITONBACKEND_Model* model, const uint32_t config_version, TRITONSERVER_Message* model_config) {
  return guard_api([&] {
    if (config_version != 1) {
      invalid("model configuration version " + std::to_string(config_version) +
              " not supported, supported versions are: 1");
    }
    const TRITONSERVER_Message& message = checked(model_config, "model_config");
    model_of(model).set_config_from_backend(llm_server::model_config_from_json(message.json));
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelServer(TRITONBACKEND_Model* model,
                                                                     TRITONSERVER_Server** server) {
  return guard_api([&] { checked(server, "server") = model_of(model).server(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelBackend(
    TRITONBACKEND_Model* model, TRITONBACKEND_Backend** backend) {
  return guard_api(
      [&] { checked(backend, "backend") = to_handle(&model_of(model).backend()); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelState(TRITONBACKEND_Model* model,
                                                                    void** state) {
  return guard_api([&] { checked(state, "state") = model_of(model).state(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelSetState(TRITONBACKEND_Model* model,
                                                                       void* state) {
  return guard_api([&] { model_of(model).set_state(state); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelReportMemoryUsage(
    TRITONBACKEND_Model* model, TRITONSERVER_BufferAttributes** usage, uint32_t usage_size) {
  return guard_api(
      [&] { model_of(model).set_memory_usage(memory_usage_from(usage, usage_size)); });
}

// --- model instance -------------------------------------------------------------------------------

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceName(
    TRITONBACKEND_ModelInstance* instance, const char** name) {
  return guard_api([&] { checked(name, "name") = instance_of(instance).name().c_str(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceKind(
    TRITONBACKEND_ModelInstance* instance, TRITONSERVER_InstanceGroupKind* kind) {
  return guard_api([&] { checked(kind, "kind") = instance_of(instance).kind(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceDeviceId(
    TRITONBACKEND_ModelInstance* instance, int32_t* device_id) {
  return guard_api([&] { checked(device_id, "device_id") = instance_of(instance).device_id(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceHostPolicy(
    TRITONBACKEND_ModelInstance* instance, TRITONSERVER_Message** host_policy) {
  return guard_api(
      [&] { checked(host_policy, "host_policy") = instance_of(instance).host_policy(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceIsPassive(
    TRITONBACKEND_ModelInstance* instance, bool* is_passive) {
  return guard_api([&] { checked(is_passive, "is_passive") = instance_of(instance).passive(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceProfileCount(
    TRITONBACKEND_ModelInstance* instance, uint32_t* count) {
  return guard_api([&] {
    checked(count, "count") = static_cast<uint32_t>(instance_of(instance).group().profile_size());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceProfileName(
    TRITONBACKEND_ModelInstance* instance, const uint32_t index, const char** profile_name) {
  return guard_api([&] {
    const auto& group = instance_of(instance).group();
    check_index(index, static_cast<size_t>(group.profile_size()), "profiles");
    checked(profile_name, "profile_name") = group.profile(static_cast<int>(index)).c_str();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceSecondaryDeviceCount(
    TRITONBACKEND_ModelInstance* instance, uint32_t* count) {
  return guard_api([&] {
    checked(count, "count") =
        static_cast<uint32_t>(instance_of(instance).group().secondary_devices_size());
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceSecondaryDeviceProperties(
    TRITONBACKEND_ModelInstance* instance, uint32_t index, const char** kind, int64_t* id) {
  return guard_api([&] {
    const auto& group = instance_of(instance).group();
    check_index(index, static_cast<size_t>(group.secondary_devices_size()), "secondary devices");
    const auto& device = group.secondary_devices(static_cast<int>(index));
    // The enum's name has static storage inside protobuf's descriptor.
    checked(kind, "kind") =
        inference::ModelInstanceGroup_SecondaryDevice_SecondaryDeviceKind_Name(device.kind()).c_str();
    checked(id, "id") = device.device_id();
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceModel(
    TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Model** model) {
  return guard_api([&] { checked(model, "model") = to_handle(&instance_of(instance).model()); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceState(
    TRITONBACKEND_ModelInstance* instance, void** state) {
  return guard_api([&] { checked(state, "state") = instance_of(instance).state(); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceSetState(
    TRITONBACKEND_ModelInstance* instance, void* state) {
  return guard_api([&] { instance_of(instance).set_state(state); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportMemoryUsage(
    TRITONBACKEND_ModelInstance* instance, TRITONSERVER_BufferAttributes** usage,
    uint32_t usage_size) {
  return guard_api(
      [&] { instance_of(instance).set_memory_usage(memory_usage_from(usage, usage_size)); });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportStatistics(
    TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request* request, const bool success,
    const uint64_t exec_start_ns, const uint64_t compute_start_ns, const uint64_t compute_end_ns,
    const uint64_t exec_end_ns) {
  return guard_api([&] {
    llm_server::ModelInstance& owner = instance_of(instance);
    const llm_server::InferenceRequest& inference = request_of(request);
    owner.model().statistics().record_request(
        success, static_cast<uint64_t>(std::max<int64_t>(0, inference.batch_size)),
        inference.request_start_ns, inference.queue_start_ns, exec_start_ns, compute_start_ns,
        compute_end_ns, exec_end_ns);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportResponseStatistics(
    TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_ResponseFactory* response_factory,
    const uint64_t response_start, const uint64_t compute_output_start, const uint64_t response_end,
    const uint32_t /*send_flags*/, TRITONSERVER_Error* error) {
  return guard_api([&] {
    llm_server::ModelInstance& owner = instance_of(instance);
    llm_server::ResponseRouter& router =
        from_handle(&checked(response_factory, "response_factory"))->router();
    const TRITONSERVER_Error_Code* code = error != nullptr ? &error->code : nullptr;
    owner.model().statistics().record_response(router.next_statistics_index(), response_start,
                                               compute_output_start, response_end, code);
  });
}

TRITONBACKEND_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_ModelInstanceReportBatchStatistics(
    TRITONBACKEND_ModelInstance* instance, const uint64_t batch_size, const uint64_t exec_start_ns,
    const uint64_t compute_start_ns, const uint64_t compute_end_ns, const uint64_t exec_end_ns) {
  return guard_api([&] {
    instance_of(instance).model().statistics().record_batch(batch_size, exec_start_ns,
                                                            compute_start_ns, compute_end_ns,
                                                            exec_end_ns);
  });
}

// --- backend attributes -----------------------------------------------------------------------

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_BackendAttributeAddPreferredInstanceGroup(
    TRITONBACKEND_BackendAttribute* backend_attributes, const TRITONSERVER_InstanceGroupKind kind,
    const uint64_t count, const uint64_t* device_ids, const uint64_t id_count) {
  return guard_api([&] {
    llm_server::BackendAttributes& attributes =
        *from_handle(&checked(backend_attributes, "backend_attributes"));
    inference::ModelInstanceGroup group;
    switch (kind) {
      case TRITONSERVER_INSTANCEGROUPKIND_AUTO:
        group.set_kind(inference::ModelInstanceGroup::KIND_AUTO);
        break;
      case TRITONSERVER_INSTANCEGROUPKIND_CPU:
        group.set_kind(inference::ModelInstanceGroup::KIND_CPU);
        break;
      case TRITONSERVER_INSTANCEGROUPKIND_GPU:
        group.set_kind(inference::ModelInstanceGroup::KIND_GPU);
        break;
      case TRITONSERVER_INSTANCEGROUPKIND_MODEL:
        group.set_kind(inference::ModelInstanceGroup::KIND_MODEL);
        break;
    }
    group.set_count(static_cast<int32_t>(count));
    if (device_ids != nullptr) {
      for (uint64_t i = 0; i < id_count; ++i) {
        group.add_gpus(static_cast<int32_t>(device_ids[i]));
      }
    }
    attributes.preferred_groups.push_back(std::move(group));
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error*
TRITONBACKEND_BackendAttributeSetParallelModelInstanceLoading(
    TRITONBACKEND_BackendAttribute* backend_attributes, bool enabled) {
  // Recorded; instances are initialized one after another regardless, which is always safe.
  return guard_api([&] {
    from_handle(&checked(backend_attributes, "backend_attributes"))->parallel_instance_loading =
        enabled;
  });
}

// --- reading back the outputs of a response ---------------------------------------------------------

TRITONBACKEND_ISPEC TRITONSERVER_Error* TRITONBACKEND_InferenceResponseOutputByName(
    TRITONBACKEND_Response* response, const char* name, TRITONSERVER_DataType* datatype,
    const int64_t** shape, uint64_t* dim_count) {
  return guard_api([&] {
    checked(name, "name");
    const llm_server::ResponseOutput* output =
        from_handle(&checked(response, "response"))->find_output(name);
    if (output == nullptr) {
      throw ApiError(TRITONSERVER_ERROR_NOT_FOUND,
                     "Output name " + std::string(name) + " not found.");
    }
    checked(datatype, "datatype") = output->tensor.datatype;
    checked(shape, "shape") = output->tensor.shape.data();
    checked(dim_count, "dim_count") = output->tensor.shape.size();
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONBACKEND_InferenceResponseOutput(
    TRITONBACKEND_Response* response, const uint32_t index, const char** name,
    TRITONSERVER_DataType* datatype, const int64_t** shape, uint64_t* dim_count) {
  return guard_api([&] {
    const llm_server::ResponseOutput& output =
        from_handle(&checked(response, "response"))->output(index);
    checked(name, "name") = output.tensor.name.c_str();
    checked(datatype, "datatype") = output.tensor.datatype;
    checked(shape, "shape") = output.tensor.shape.data();
    checked(dim_count, "dim_count") = output.tensor.shape.size();
  });
}

}  // extern "C"
