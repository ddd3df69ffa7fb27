#pragma once
// Definitions behind the C API's opaque value handles, and the types that carry inference results
// from the model side (requests, responses) to the protocol side (gRPC calls).
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "triton/core/tritonserver.h"

// A named request or response parameter. value_pointer() is what the C API hands out: the
// characters for STRING, a pointer to the number/flag for INT/BOOL/DOUBLE, the bytes for BYTES.
struct TRITONSERVER_Parameter {
  std::string name;
  TRITONSERVER_ParameterType type = TRITONSERVER_PARAMETER_STRING;
  std::string string_value;
  int64_t int_value = 0;
  bool bool_value = false;
  double double_value = 0.0;
  const void* bytes_value = nullptr;  // not owned (TRITONSERVER_ParameterBytesNew's contract)
  uint64_t bytes_size = 0;

  const void* value_pointer() const noexcept {
    switch (type) {
      case TRITONSERVER_PARAMETER_STRING: return string_value.c_str();
      case TRITONSERVER_PARAMETER_INT: return &int_value;
      case TRITONSERVER_PARAMETER_BOOL: return &bool_value;
      case TRITONSERVER_PARAMETER_DOUBLE: return &double_value;
      case TRITONSERVER_PARAMETER_BYTES: return bytes_value;
    }
    return nullptr;
  }
};

// A JSON document passed across the API (model config, backend config, host policy).
struct TRITONSERVER_Message {
  std::string json;
};

struct TRITONSERVER_BufferAttributes {
  TRITONSERVER_MemoryType memory_type = TRITONSERVER_MEMORY_CPU;
  int64_t memory_type_id = 0;
  size_t byte_size = 0;
  void* cuda_ipc_handle = nullptr;
};

namespace llm_server {

// Set once when the client goes away (stream or call cancelled, deadline, server shutdown); read
// by TRITONBACKEND_RequestIsCancelled / ResponseFactoryIsCancelled. One flag per gRPC call: a
// cancelled stream cancels every request it carried.
class CancellationFlag {
 public:
  void cancel() noexcept { cancelled_.store(true); }
  bool is_cancelled() const noexcept { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct OutputTensor {
  std::string name;
  TRITONSERVER_DataType datatype = TRITONSERVER_TYPE_INVALID;
  std::vector<int64_t> shape;
  std::string data;  // CPU bytes; BYTES elements carry their 4-byte little-endian length prefix
};

struct ResultError {
  TRITONSERVER_Error_Code code = TRITONSERVER_ERROR_INTERNAL;
  std::string message;
};

// One event for one request: a response (successful or an error) and/or the FINAL flag.
struct InferResult {
  std::string request_id;
  std::string model_name;
  std::string model_version;
  bool has_response = false;     // false: the backend sent only the FINAL flag
  bool final = false;            // TRITONSERVER_RESPONSE_COMPLETE_FINAL
  bool send_empty_final = false;  // the request set triton_enable_empty_final_response
  std::optional<ResultError> error;
  std::vector<OutputTensor> outputs;
  std::vector<TRITONSERVER_Parameter> parameters;
};

// Where a request's results go: implemented by the gRPC calls. Deliver may be called from any
// thread (instance threads, backend threads); calls for one request arrive in order and exactly
// one of them has final == true.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void deliver(InferResult result) = 0;
};

}  // namespace llm_server
