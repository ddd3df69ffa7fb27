#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <system_error>

#include "common/error.h"
#include "common/mapped_file.h"
#include "tokenizer/sp_model.h"
#include "tokenizer/utf8.h"

namespace llm {
namespace {

using utf8::announced_length;
using utf8::is_continuation_byte;

std::string hex_byte(unsigned char byte) {
  char text[5];
  std::snprintf(text, sizeof text, "0x%02X", byte);
  return text;
}

}  // namespace

std::string read_utf8_file(const std::filesystem::path& path) {
  constexpr size_t kMaxTextFileBytes = size_t{1} << 30;
  std::string result = read_regular_file(path, "text file", kMaxTextFileBytes);
  validate_utf8(result, path.string());
  return result;
}

void validate_utf8(std::string_view text, std::string_view what) {
  const auto fail = [&](size_t offset, std::string_view reason) {
    throw_error(what, " is not valid UTF-8: ", reason, " at byte offset ", offset,
                " (send text encoded as UTF-8)");
  };
  size_t offset = 0;
  while (offset < text.size()) {
    const auto lead = static_cast<unsigned char>(text[offset]);
    const size_t length = announced_length(lead);
    if (length == 1) {
      ++offset;
      continue;
    }
    if (length == 0) {
      fail(offset, is_continuation_byte(lead) ? "unexpected continuation byte " + hex_byte(lead)
                                              : "invalid byte " + hex_byte(lead));
    }
    if (offset + length > text.size()) fail(offset, "truncated " + std::to_string(length) + "-byte sequence");
    char32_t code_point = lead & (0x7F >> length);
    for (size_t i = 1; i < length; ++i) {
      const auto byte = static_cast<unsigned char>(text[offset + i]);
      if (!is_continuation_byte(byte)) {
        fail(offset, "truncated " + std::to_string(length) + "-byte sequence (byte " + hex_byte(byte) +
                         " at offset " + std::to_string(offset + i) + " is not a continuation byte)");
      }
      code_point = (code_point << 6) | (byte & 0x3F);
    }
    static constexpr char32_t kSmallestOfLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kSmallestOfLength[length]) fail(offset, "overlong encoding");
    if (code_point >= 0xD800 && code_point <= 0xDFFF) fail(offset, "UTF-16 surrogate code point");
    if (code_point > 0x10FFFF) fail(offset, "code point above U+10FFFF");
    offset += length;
  }
}

Tokenizer::Tokenizer(const std::filesystem::path& model_file) : path_(model_file) {
  std::error_code error;
  if (!std::filesystem::exists(model_file, error)) {  // something else there is named by the reader
    throw_error("tokenizer not found: ", model_file.string(),
                " (expected tokenizer.model, the SentencePiece model, next to the checkpoint; "
                "copy it from the original Hugging Face model folder)");
  }
  model_ = std::make_unique<sp::Model>(model_file);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  validate_utf8(text, "text to encode");
  std::vector<int32_t> ids;
  if (add_bos) {
    if (bos_id() < 0) throw_error("tokenizer ", path_.string(), " has no BOS piece <s>, so it cannot prepend BOS");
    ids.push_back(bos_id());
  }
  const std::vector<int32_t> pieces = model_->encode(text);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  const int32_t size = vocab_size();
  for (const int32_t id : ids) {
    if (id < 0 || id >= size) {
      throw_error("token id ", id, " is outside the vocabulary of tokenizer ", path_.string(), " (ids 0..",
                  size - 1, ")");
    }
  }
  return model_->decode(ids);
}

int32_t Tokenizer::bos_id() const { return model_->bos_id(); }
int32_t Tokenizer::eos_id() const { return model_->eos_id(); }
int32_t Tokenizer::vocab_size() const { return model_->size(); }

// How StreamDecoder stays exact while decoding only a few ids at a time.
//
// SentencePiece decodes ids piece by piece, with two kinds of context:
//  1. Consecutive byte pieces are joined and decoded as UTF-8 together; each byte of an invalid
//     or truncated sequence becomes U+FFFD. So the text of a byte run is final only up to a
//     "stable point", after which no later byte can extend a character. The decoder holds back
//     the trailing bytes that could still complete a character (at most 3), and the window
//     always starts at a stable point, where cutting a byte run changes nothing.
//  2. Leading "▁" (space) is stripped from the first piece that is not a control piece, and,
//     for models that remove extra whitespace, from every piece while the text is still empty.
//     Once any text has come out, no piece is stripped any more.
// So before any text has come out, the window keeps the one piece that decoded to nothing (a
// lone "▁"; more of them in a row leave the decoder in the same state as one). Afterwards it
// starts with an anchor: any piece whose text is non-empty, which puts a window decode in the
// same no-stripping state as the full decode. Either way, the new text is the window's text
// minus its context's text.
// A control piece arriving at a stable point changes no text (it only ends a byte run, which
// ends at a stable point anyway), so it is dropped rather than kept in the window.
// (Models with a denormalizer, which rewrites the whole decoded text, are rejected when loaded;
// Llama tokenizers have none.)
StreamDecoder::StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer), anchor_id_(0) {
  const sp::Model& model = *tokenizer_.model_;
  const auto decodes_to_text = [&](int32_t id) { return !tokenizer_.decode(std::span<const int32_t>(&id, 1)).empty(); };
  // Usually <unk> (id 0, " ⁇ ") already qualifies.
  while (anchor_id_ < tokenizer_.vocab_size() &&
         (model.is_control(anchor_id_) || model.is_byte(anchor_id_) || !decodes_to_text(anchor_id_))) {
    ++anchor_id_;
  }
  if (anchor_id_ == tokenizer_.vocab_size()) {
    throw_error("tokenizer ", tokenizer_.path().string(), " has no piece that decodes to text, so it cannot stream");
  }
}

std::string StreamDecoder::push(int32_t id) {
  const sp::Model& model = *tokenizer_.model_;
  if (id < 0 || id >= tokenizer_.vocab_size()) {
    throw_error("token id ", id, " is outside the vocabulary of tokenizer ", tokenizer_.path().string(),
                " (ids 0..", tokenizer_.vocab_size() - 1, ")");
  }
  const bool nothing_held_back = read_offset_ == ids_.size();
  if (nothing_held_back && model.is_control(id)) return {};
  ids_.push_back(id);

  // Hold back the end of the trailing run of byte pieces if it could still grow into a
  // character: a lead byte followed only by continuation bytes, fewer than it announces.
  // (Judging by the bit pattern alone also holds back some hopeless sequences, which delays
  // them by a token but never emits text that could change.)
  size_t stable_end = ids_.size();
  for (size_t back = 1; back <= std::min<size_t>(3, ids_.size()); ++back) {
    const int32_t piece_id = ids_[ids_.size() - back];
    if (!model.is_byte(piece_id)) break;
    const unsigned char byte = model.byte_of(piece_id);
    if (is_continuation_byte(byte)) continue;
    if (announced_length(byte) > back) stable_end = ids_.size() - back;
    break;
  }
  if (stable_end == read_offset_) return {};

  const std::span<const int32_t> window(ids_);
  const std::string context_text = tokenizer_.decode(window.first(read_offset_));
  std::string chunk = tokenizer_.decode(window.first(stable_end)).substr(context_text.size());
  text_started_ = text_started_ || !chunk.empty();
  // One piece of context: the anchor once text has come out, else the piece that decoded to nothing.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(stable_end - 1));
  if (text_started_) ids_.front() = anchor_id_;
  read_offset_ = 1;
  return chunk;
}

std::string StreamDecoder::finish() {
  const std::span<const int32_t> window(ids_);
  const std::string context_text = tokenizer_.decode(window.first(read_offset_));
  std::string rest = tokenizer_.decode(window).substr(context_text.size());
  ids_.clear();
  read_offset_ = 0;
  text_started_ = false;
  return rest;
}

}  // namespace llm
