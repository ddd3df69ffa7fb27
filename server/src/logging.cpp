#include "logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>

namespace llm_server {

Logger& Logger::instance() {
  static Logger logger;
  return logger;
}

bool Logger::is_enabled(TRITONSERVER_LogLevel level) const {
  return level != TRITONSERVER_LOG_VERBOSE || verbose_level() >= 1;
}

void Logger::write(TRITONSERVER_LogLevel level, std::string_view file, int line,
                   std::string_view message) {
  if (!is_enabled(level)) {
    return;
  }
  char tag = 'I';
  switch (level) {
    case TRITONSERVER_LOG_INFO: tag = 'I'; break;
    case TRITONSERVER_LOG_WARN: tag = 'W'; break;
    case TRITONSERVER_LOG_ERROR: tag = 'E'; break;
    case TRITONSERVER_LOG_VERBOSE: tag = 'I'; break;
  }
  timeval now{};
  gettimeofday(&now, nullptr);
  std::tm local{};
  localtime_r(&now.tv_sec, &local);
  char stamp[64];
  std::snprintf(stamp, sizeof(stamp), "%c%02d%02d %02d:%02d:%02d.%06ld %d ", tag, local.tm_mon + 1,
                local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                static_cast<long>(now.tv_usec), static_cast<int>(getpid()));
  const size_t slash = file.find_last_of('/');
  const std::string_view base = slash == std::string_view::npos ? file : file.substr(slash + 1);

  std::string text(stamp);
  text.append(base).append(":").append(std::to_string(line)).append("] ").append(message);
  text.push_back('\n');
  std::lock_guard<std::mutex> lock(write_mutex_);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void log_info(std::string_view message, std::source_location where) {
  Logger::instance().write(TRITONSERVER_LOG_INFO, where.file_name(), where.line(), message);
}

void log_warning(std::string_view message, std::source_location where) {
  Logger::instance().write(TRITONSERVER_LOG_WARN, where.file_name(), where.line(), message);
}

void log_error(std::string_view message, std::source_location where) {
  Logger::instance().write(TRITONSERVER_LOG_ERROR, where.file_name(), where.line(), message);
}

void log_verbose(int level, std::string_view message, std::source_location where) {
  if (Logger::instance().verbose_level() >= level) {
    Logger::instance().write(TRITONSERVER_LOG_VERBOSE, where.file_name(), where.line(), message);
  }
}

}  // namespace llm_server
