// The server side of the TRITONSERVER_* functions declared in triton/core/tritonserver.h, exported
// from the llm-server executable for backends to call.
#include <cstring>
#include <nlohmann/json.hpp>

#include "api_error.h"
#include "datatypes.h"
#include "logging.h"
#include "server_types.h"

using llm_server::ApiError;
using llm_server::checked;
using llm_server::guard_api;

extern "C" {

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_ApiVersion(uint32_t* major,
                                                                  uint32_t* minor) {
  return guard_api([&] {
    checked(major, "major") = TRITONSERVER_API_VERSION_MAJOR;
    checked(minor, "minor") = TRITONSERVER_API_VERSION_MINOR;
  });
}

// --- datatypes, memory types, parameter and instance kinds ----------------------------------

TRITONSERVER_DECLSPEC const char* TRITONSERVER_DataTypeString(TRITONSERVER_DataType datatype) {
  return llm_server::datatype_name(datatype);
}

TRITONSERVER_DECLSPEC TRITONSERVER_DataType TRITONSERVER_StringToDataType(const char* dtype) {
  return dtype == nullptr ? TRITONSERVER_TYPE_INVALID : llm_server::datatype_from_name(dtype);
}

TRITONSERVER_DECLSPEC uint32_t TRITONSERVER_DataTypeByteSize(TRITONSERVER_DataType datatype) {
  return llm_server::datatype_byte_size(datatype);
}

TRITONSERVER_DECLSPEC const char* TRITONSERVER_MemoryTypeString(TRITONSERVER_MemoryType memtype) {
  switch (memtype) {
    case TRITONSERVER_MEMORY_CPU: return "CPU";
    case TRITONSERVER_MEMORY_CPU_PINNED: return "CPU_PINNED";
    case TRITONSERVER_MEMORY_GPU: return "GPU";
  }
  return "<invalid>";
}

TRITONSERVER_DECLSPEC const char* TRITONSERVER_ParameterTypeString(
    TRITONSERVER_ParameterType paramtype) {
  switch (paramtype) {
    case TRITONSERVER_PARAMETER_STRING: return "STRING";
    case TRITONSERVER_PARAMETER_INT: return "INT";
    case TRITONSERVER_PARAMETER_BOOL: return "BOOL";
    case TRITONSERVER_PARAMETER_DOUBLE: return "DOUBLE";
    case TRITONSERVER_PARAMETER_BYTES: return "BYTES";
  }
  return "<invalid>";
}

TRITONSERVER_DECLSPEC TRITONSERVER_Parameter* TRITONSERVER_ParameterNew(
    const char* name, const TRITONSERVER_ParameterType type, const void* value) {
  if (name == nullptr || value == nullptr) {
    return nullptr;
  }
  try {
    auto parameter = std::make_unique<TRITONSERVER_Parameter>();
    parameter->name = name;
    parameter->type = type;
    switch (type) {
      case TRITONSERVER_PARAMETER_STRING:
        parameter->string_value = static_cast<const char*>(value);
        break;
      case TRITONSERVER_PARAMETER_INT:
        parameter->int_value = *static_cast<const int64_t*>(value);
        break;
      case TRITONSERVER_PARAMETER_BOOL:
        parameter->bool_value = *static_cast<const bool*>(value);
        break;
      case TRITONSERVER_PARAMETER_DOUBLE:
        parameter->double_value = *static_cast<const double*>(value);
        break;
      case TRITONSERVER_PARAMETER_BYTES:
        return nullptr;  // as in Triton: BYTES parameters come from ParameterBytesNew
    }
    return parameter.release();  // owned by the caller until TRITONSERVER_ParameterDelete
  } catch (...) {
    return nullptr;
  }
}

TRITONSERVER_DECLSPEC TRITONSERVER_Parameter* TRITONSERVER_ParameterBytesNew(
    const char* name, const void* byte_ptr, const uint64_t size) {
  if (name == nullptr) {
    return nullptr;
  }
  try {
    auto parameter = std::make_unique<TRITONSERVER_Parameter>();
    parameter->name = name;
    parameter->type = TRITONSERVER_PARAMETER_BYTES;
    parameter->bytes_value = byte_ptr;
    parameter->bytes_size = size;
    return parameter.release();
  } catch (...) {
    return nullptr;
  }
}

TRITONSERVER_DECLSPEC void TRITONSERVER_ParameterDelete(TRITONSERVER_Parameter* parameter) {
  delete parameter;
}

TRITONSERVER_DECLSPEC const char* TRITONSERVER_InstanceGroupKindString(
    TRITONSERVER_InstanceGroupKind kind) {
  switch (kind) {
    case TRITONSERVER_INSTANCEGROUPKIND_AUTO: return "AUTO";
    case TRITONSERVER_INSTANCEGROUPKIND_CPU: return "CPU";
    case TRITONSERVER_INSTANCEGROUPKIND_GPU: return "GPU";
    case TRITONSERVER_INSTANCEGROUPKIND_MODEL: return "MODEL";
  }
  return "<invalid>";
}

// --- logging --------------------------------------------------------------------------------

TRITONSERVER_DECLSPEC bool TRITONSERVER_LogIsEnabled(TRITONSERVER_LogLevel level) {
  return llm_server::Logger::instance().is_enabled(level);
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_LogMessage(TRITONSERVER_LogLevel level,
                                                                  const char* filename,
                                                                  const int line,
                                                                  const char* msg) {
  return guard_api([&] {
    llm_server::Logger::instance().write(level, filename == nullptr ? "" : filename, line,
                                         msg == nullptr ? "" : msg);
  });
}

// --- errors ---------------------------------------------------------------------------------

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_ErrorNew(TRITONSERVER_Error_Code code,
                                                                const char* msg) {
  try {
    return new TRITONSERVER_Error{code, msg == nullptr ? "" : msg};
  } catch (...) {
    return nullptr;
  }
}

TRITONSERVER_DECLSPEC void TRITONSERVER_ErrorDelete(TRITONSERVER_Error* error) { delete error; }

TRITONSERVER_DECLSPEC TRITONSERVER_Error_Code TRITONSERVER_ErrorCode(TRITONSERVER_Error* error) {
  return error == nullptr ? TRITONSERVER_ERROR_UNKNOWN : error->code;
}

TRITONSERVER_DECLSPEC const char* TRITONSERVER_ErrorCodeString(TRITONSERVER_Error* error) {
  return error == nullptr ? "<null error>" : llm_server::error_code_name(error->code);
}

TRITONSERVER_DECLSPEC const char* TRITONSERVER_ErrorMessage(TRITONSERVER_Error* error) {
  return error == nullptr ? "" : error->message.c_str();
}

// --- messages -------------------------------------------------------------------------------

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MessageNewFromSerializedJson(
    TRITONSERVER_Message** message, const char* base, size_t byte_size) {
  return guard_api([&] {
    checked(message, "message") = nullptr;
    if (base == nullptr) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "base must not be null");
    }
    std::string json(base, byte_size);
    if (!nlohmann::json::accept(json)) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "failed to parse the message as JSON");
    }
    *message = new TRITONSERVER_Message{std::move(json)};  // owned by the caller
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MessageDelete(
    TRITONSERVER_Message* message) {
  delete message;
  return nullptr;
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MessageSerializeToJson(
    TRITONSERVER_Message* message, const char** base, size_t* byte_size) {
  return guard_api([&] {
    const TRITONSERVER_Message& source = checked(message, "message");
    checked(base, "base") = source.json.c_str();
    checked(byte_size, "byte_size") = source.json.size();
  });
}

// --- buffer attributes ------------------------------------------------------------------------

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesNew(
    TRITONSERVER_BufferAttributes** buffer_attributes) {
  return guard_api([&] {
    TRITONSERVER_BufferAttributes*& out = checked(buffer_attributes, "buffer_attributes");
    out = std::make_unique<TRITONSERVER_BufferAttributes>().release();  // the caller's until BufferAttributesDelete
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesDelete(
    TRITONSERVER_BufferAttributes* buffer_attributes) {
  delete buffer_attributes;
  return nullptr;
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesSetMemoryTypeId(
    TRITONSERVER_BufferAttributes* buffer_attributes, int64_t memory_type_id) {
  return guard_api(
      [&] { checked(buffer_attributes, "buffer_attributes").memory_type_id = memory_type_id; });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesSetMemoryType(
    TRITONSERVER_BufferAttributes* buffer_attributes, TRITONSERVER_MemoryType memory_type) {
  return guard_api(
      [&] { checked(buffer_attributes, "buffer_attributes").memory_type = memory_type; });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesSetCudaIpcHandle(
    TRITONSERVER_BufferAttributes* buffer_attributes, void* cuda_ipc_handle) {
  return guard_api(
      [&] { checked(buffer_attributes, "buffer_attributes").cuda_ipc_handle = cuda_ipc_handle; });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesSetByteSize(
    TRITONSERVER_BufferAttributes* buffer_attributes, size_t byte_size) {
  return guard_api([&] { checked(buffer_attributes, "buffer_attributes").byte_size = byte_size; });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesMemoryTypeId(
    TRITONSERVER_BufferAttributes* buffer_attributes, int64_t* memory_type_id) {
  return guard_api([&] {
    checked(memory_type_id, "memory_type_id") =
        checked(buffer_attributes, "buffer_attributes").memory_type_id;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesMemoryType(
    TRITONSERVER_BufferAttributes* buffer_attributes, TRITONSERVER_MemoryType* memory_type) {
  return guard_api([&] {
    checked(memory_type, "memory_type") =
        checked(buffer_attributes, "buffer_attributes").memory_type;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesCudaIpcHandle(
    TRITONSERVER_BufferAttributes* buffer_attributes, void** cuda_ipc_handle) {
  return guard_api([&] {
    checked(cuda_ipc_handle, "cuda_ipc_handle") =
        checked(buffer_attributes, "buffer_attributes").cuda_ipc_handle;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_BufferAttributesByteSize(
    TRITONSERVER_BufferAttributes* buffer_attributes, size_t* byte_size) {
  return guard_api([&] {
    checked(byte_size, "byte_size") = checked(buffer_attributes, "buffer_attributes").byte_size;
  });
}

}  // extern "C"
