#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
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

}  // namespace llm::test

// Skips the current test with a clear message when a file from ../shared is missing.
#define LLM_REQUIRE_SHARED(relative)                                                          \
  do {                                                                                        \
    if (!std::filesystem::exists(::llm::test::shared_dir() / (relative)))                     \
      GTEST_SKIP() << "skipped: " << (::llm::test::shared_dir() / (relative)).string()        \
                   << " is absent (tests that need ../shared skip without it)";               \
  } while (0)
