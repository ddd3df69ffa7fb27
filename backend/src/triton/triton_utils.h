#pragma once
// Small RAII and error helpers over Triton's C API. Every TRITONSERVER_Error returned by a
// Triton call is checked and released here; exceptions stop at the entry points.
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/error.h"
#include "tokenizer/utf8.h"
#include "triton/core/tritonbackend.h"
#include "triton/core/tritonserver.h"

namespace llm::triton {

// An error that keeps its Triton code until it becomes a TRITONSERVER_Error at the ABI edge.
class TritonException : public std::runtime_error {
 public:
  TritonException(TRITONSERVER_Error_Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  TRITONSERVER_Error_Code code() const { return code_; }

 private:
  TRITONSERVER_Error_Code code_;
};

// Throws TritonException (naming `what`) when a Triton call failed; the error is released.
inline void check(TRITONSERVER_Error* error, const char* what) {
  if (error == nullptr) return;
  const TRITONSERVER_Error_Code code = TRITONSERVER_ErrorCode(error);
  std::string message = std::string(what) + ": " + TRITONSERVER_ErrorMessage(error);
  TRITONSERVER_ErrorDelete(error);
  throw TritonException(code, message);
}

// Logs through Triton's log API; a failure to log is dropped (there is nowhere to report it).
inline void log(TRITONSERVER_LogLevel level, const char* file, int line, const std::string& message) {
  if (TRITONSERVER_Error* error = TRITONSERVER_LogMessage(level, file, line, message.c_str())) TRITONSERVER_ErrorDelete(error);
}
// For Triton calls whose failure cannot change what happens next (sending, releasing,
// reporting): logs the failure and releases the error.
inline void log_failure(TRITONSERVER_Error* error, const char* what) {
  if (error == nullptr) return;
  log(TRITONSERVER_LOG_ERROR, __FILE__, __LINE__, std::string(what) + ": " + TRITONSERVER_ErrorMessage(error));
  TRITONSERVER_ErrorDelete(error);
}

#define LLM_LOG_INFO(message) ::llm::triton::log(TRITONSERVER_LOG_INFO, __FILE__, __LINE__, (message))
#define LLM_LOG_WARN(message) ::llm::triton::log(TRITONSERVER_LOG_WARN, __FILE__, __LINE__, (message))
#define LLM_LOG_ERROR(message) ::llm::triton::log(TRITONSERVER_LOG_ERROR, __FILE__, __LINE__, (message))
#define LLM_LOG_VERBOSE(message) ::llm::triton::log(TRITONSERVER_LOG_VERBOSE, __FILE__, __LINE__, (message))

// Every error the backend hands to Triton is made here: its message valid UTF-8 (utf8::escape_invalid).
inline TRITONSERVER_Error* new_error(TRITONSERVER_Error_Code code, std::string_view message) {
  return TRITONSERVER_ErrorNew(code, utf8::escape_invalid(message).c_str());
}

// Runs `body` and turns any exception into a TRITONSERVER_Error for the caller (Triton owns it).
template <typename Body>
TRITONSERVER_Error* guard(Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const TritonException& e) {
    return new_error(e.code(), e.what());
  } catch (const llm::Error& e) {  // bad configuration, checkpoint or request: the user's to fix
    return new_error(TRITONSERVER_ERROR_INVALID_ARG, e.what());
  } catch (const std::exception& e) {
    return new_error(TRITONSERVER_ERROR_INTERNAL, e.what());
  } catch (...) {
    return new_error(TRITONSERVER_ERROR_INTERNAL, "unknown error in the llm backend");
  }
}

}  // namespace llm::triton
