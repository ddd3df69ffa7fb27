#pragma once
// Small UTF-8 helpers shared by the tokenizer's parts.
#include <cstddef>
#include <string>
#include <string_view>

namespace llm::utf8 {

inline bool is_continuation_byte(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Length of the sequence a lead byte announces by its bit pattern alone (0 for a continuation
// byte or 0xF8..0xFF), without the range checks that make some of them invalid.
inline size_t announced_length(unsigned char byte) {
  if (byte < 0x80) return 1;
  if ((byte & 0xE0) == 0xC0) return 2;
  if ((byte & 0xF0) == 0xE0) return 3;
  if ((byte & 0xF8) == 0xF0) return 4;
  return 0;
}

// Length of the valid character that starts `text`, or 0 when `text` does not start with one
// (truncated, overlong, a surrogate, above U+10FFFF, or no lead byte).
inline size_t valid_character_length(std::string_view text) {
  if (text.empty()) return 0;
  const auto lead = static_cast<unsigned char>(text[0]);
  const size_t length = announced_length(lead);
  if (length == 0 || length > text.size()) return 0;
  char32_t code_point = lead & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (!is_continuation_byte(byte)) return 0;
    code_point = (code_point << 6) | (byte & 0x3F);
  }
  static constexpr char32_t kSmallestOfLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code_point < kSmallestOfLength[length]) return 0;
  if (code_point >= 0xD800 && code_point <= 0xDFFF) return 0;
  if (code_point > 0x10FFFF) return 0;
  return length;
}

// `text` with each byte that is not part of a valid character written as \xNN: error messages may
// quote a file's or a request's bytes, and a message travels in protobuf string fields (a model's
// load failure in RepositoryIndex, a stream's error_message), which strict clients reject whole
// unless they are valid UTF-8. Valid text comes back unchanged.
inline std::string escape_invalid(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t length = valid_character_length(text);
    if (length > 0) {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
      continue;
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    const auto byte = static_cast<unsigned char>(text[0]);
    out += "\\x";
    out += kHex[byte >> 4];
    out += kHex[byte & 0xF];
    text.remove_prefix(1);
  }
  return out;
}

}  // namespace llm::utf8
