#pragma once
// Helpers shared by the fuzz targets (libFuzzer; see CMakeLists.txt).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>

#include "tokenizer/tokenizer.h"

namespace llm::fuzz {

// A folder of this process's own under $TMPDIR, for parsers that read files; removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "llm-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    static const std::filesystem::path removed_at_exit = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(removed_at_exit, ignored);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name and returns the path.
inline std::filesystem::path write_scratch_file(const std::string& name, std::span<const uint8_t> bytes) {
  const auto path = scratch_dir() / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()),
                                                                 static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A small Llama-style tokenizer (specials, the 256 byte pieces, a few hundred words), made by the
// project's own writer, for targets that need one.
inline const Tokenizer& small_tokenizer() {
  static const Tokenizer tokenizer = [] {
    std::map<std::string, int32_t> vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
    char name[16];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      vocab[name] = 3 + b;
    }
    int32_t id = 259;
    const auto add = [&](const std::string& piece) {
      if (vocab.emplace(piece, id).second) ++id;  // ids stay 0..N-1
    };
    for (const char* word : {"the", "a", "to", "and", "of", "in", "is", "it", "you", "that", "he", "was", "for", "on"}) {
      add(std::string("\xE2\x96\x81") + word);
      add(word);
    }
    for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c));
    const auto path = scratch_dir() / "small-tokenizer.model";
    write_llama2_tokenizer_model(vocab, path);
    return Tokenizer(path);
  }();
  return tokenizer;
}

}  // namespace llm::fuzz
