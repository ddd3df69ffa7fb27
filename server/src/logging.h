#pragma once
// Log lines on stderr in tritonserver's default format:
//   I1129 06:13:00.123456 4242 model.cpp:88] message
// The logger is process-wide on purpose: TRITONSERVER_LogMessage and TRITONSERVER_LogIsEnabled
// take no server handle, so backends can only reach it as global state. It holds only the
// verbosity (set once from --log-verbose) and a mutex that keeps lines whole.
#include <atomic>
#include <mutex>
#include <source_location>
#include <string_view>

#include "triton/core/tritonserver.h"

namespace llm_server {

class Logger {
 public:
  static Logger& instance();

  void set_verbose_level(int level) { verbose_level_.store(level); }
  int verbose_level() const { return verbose_level_.load(); }

  // INFO, WARN and ERROR are always on; VERBOSE needs --log-verbose >= 1.
  bool is_enabled(TRITONSERVER_LogLevel level) const;
  void write(TRITONSERVER_LogLevel level, std::string_view file, int line, std::string_view message);

 private:
  Logger() = default;
  std::atomic<int> verbose_level_{0};
  std::mutex write_mutex_;
};

void log_info(std::string_view message, std::source_location where = std::source_location::current());
void log_warning(std::string_view message, std::source_location where = std::source_location::current());
void log_error(std::string_view message, std::source_location where = std::source_location::current());
// Written when --log-verbose >= 'level'.
void log_verbose(int level, std::string_view message,
                 std::source_location where = std::source_location::current());

}  // namespace llm_server
