// UTF-8 checks and the escaping of error messages: escape_invalid always yields valid UTF-8, and
// leaves valid text unchanged; ids pushed into the streaming detokenizer never split a character.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bool valid = true;
  try {
    llm::validate_utf8(text, "input");
  } catch (const llm::Error&) {
    valid = false;
  }
  const std::string escaped = llm::utf8::escape_invalid(text);
  if (valid && escaped != text) __builtin_trap();
  try {
    llm::validate_utf8(escaped, "escaped");
  } catch (const llm::Error&) {
    __builtin_trap();
  }
  // The bytes as token ids of the small tokenizer: every chunk is valid UTF-8.
  const llm::Tokenizer& tokenizer = llm::fuzz::small_tokenizer();
  llm::StreamDecoder stream(tokenizer);
  for (size_t i = 0; i + 1 < size; i += 2) {
    const int32_t id = (data[i] | (data[i + 1] << 8)) % tokenizer.vocab_size();
    try {
      llm::validate_utf8(stream.push(id), "chunk");
    } catch (const llm::Error&) {
      __builtin_trap();
    }
  }
  (void)stream.finish();
  return 0;
}
