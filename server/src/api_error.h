#pragma once
// Errors inside the server and their conversion to Triton's C API error objects.
//
// Inside the server, failures are ApiError exceptions carrying a TRITONSERVER_Error_Code. Every
// exported C function runs its body through guard_api(), which turns any exception into a newly
// allocated TRITONSERVER_Error, so no exception ever crosses the C ABI. Errors coming the other
// way (returned by a backend) are adopted into an ErrorPtr at once so they are always released.
#include <memory>
#include <stdexcept>
#include <string>

#include "triton/core/tritonserver.h"

// The definition behind the C API's opaque error handle.
struct TRITONSERVER_Error {
  TRITONSERVER_Error_Code code;
  std::string message;
};

namespace llm_server {

class ApiError : public std::runtime_error {
 public:
  ApiError(TRITONSERVER_Error_Code code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  TRITONSERVER_Error_Code code() const noexcept { return code_; }

 private:
  TRITONSERVER_Error_Code code_;
};

struct ErrorDeleter {
  void operator()(TRITONSERVER_Error* error) const noexcept { delete error; }
};
using ErrorPtr = std::unique_ptr<TRITONSERVER_Error, ErrorDeleter>;

// Adopts an error returned through the C API (null means success).
inline ErrorPtr adopt_error(TRITONSERVER_Error* error) noexcept { return ErrorPtr(error); }

// Adopts 'error' and, when it is not null, throws it as an ApiError.
void throw_if_error(TRITONSERVER_Error* error);

// Converts the exception being handled into a new TRITONSERVER_Error. Call only from a catch block.
TRITONSERVER_Error* current_exception_to_error() noexcept;

// Runs 'body' and reports its outcome the C API's way: null on success, an owned error otherwise.
template <typename Body>
TRITONSERVER_Error* guard_api(Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (...) {
    return current_exception_to_error();
  }
}

// Dereferences a handle passed through the C API, failing with INVALID_ARG when it is null.
template <typename T>
T& checked(T* pointer, const char* what) {
  if (pointer == nullptr) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, std::string(what) + " must not be null");
  }
  return *pointer;
}

// Triton's names for error codes, as TRITONSERVER_ErrorCodeString reports them.
const char* error_code_name(TRITONSERVER_Error_Code code) noexcept;

}  // namespace llm_server
