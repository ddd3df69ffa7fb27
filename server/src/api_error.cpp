#include "api_error.h"

#include <new>

namespace llm_server {

void throw_if_error(TRITONSERVER_Error* error) {
  ErrorPtr owned = adopt_error(error);
  if (owned) {
    throw ApiError(owned->code, owned->message);
  }
}

TRITONSERVER_Error* current_exception_to_error() noexcept {
  try {
    throw;
  } catch (const ApiError& e) {
    return new TRITONSERVER_Error{e.code(), e.what()};
  } catch (const std::bad_alloc&) {
    return new TRITONSERVER_Error{TRITONSERVER_ERROR_INTERNAL, "out of memory"};
  } catch (const std::exception& e) {
    return new TRITONSERVER_Error{TRITONSERVER_ERROR_INTERNAL, e.what()};
  } catch (...) {
    return new TRITONSERVER_Error{TRITONSERVER_ERROR_UNKNOWN, "unknown exception"};
  }
}

const char* error_code_name(TRITONSERVER_Error_Code code) noexcept {
  switch (code) {
    case TRITONSERVER_ERROR_UNKNOWN: return "Unknown";
    case TRITONSERVER_ERROR_INTERNAL: return "Internal";
    case TRITONSERVER_ERROR_NOT_FOUND: return "Not found";
    case TRITONSERVER_ERROR_INVALID_ARG: return "Invalid argument";
    case TRITONSERVER_ERROR_UNAVAILABLE: return "Unavailable";
    case TRITONSERVER_ERROR_UNSUPPORTED: return "Unsupported";
    case TRITONSERVER_ERROR_ALREADY_EXISTS: return "Already exists";
    case TRITONSERVER_ERROR_CANCELLED: return "Cancelled";
  }
  return "<invalid code>";
}

}  // namespace llm_server
