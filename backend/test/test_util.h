#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace llm::test {

// ../shared beside the repository (models, reference outputs, data). Tests that need it skip
// with a message where it is absent.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("LLM_SHARED_DIR")) return env;
  return std::filesystem::path(LLM_SOURCE_DIR).parent_path() / "shared";
}

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "llm-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A shell word for `s` (single-quoted).
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command (the llm CLI in tests); returns what it wrote to stdout and its wait status.
inline std::string run_command(const std::string& command, int* status) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  *status = ::pclose(pipe);
  return out;
}

}  // namespace llm::test

// Skips the current test with a clear message when a file from ../shared is missing.
#define LLM_REQUIRE_SHARED(relative)                                                          \
  do {                                                                                        \
    if (!std::filesystem::exists(::llm::test::shared_dir() / (relative)))                     \
      GTEST_SKIP() << "skipped: " << (::llm::test::shared_dir() / (relative)).string()        \
                   << " is absent (tests that need ../shared skip without it)";               \
  } while (0)
