#pragma once
// SentencePiece tokenizer (tokenizer.model), giving the same ids as Hugging Face's
// LlamaTokenizer (BOS added, no EOS), and incremental detokenization for streaming. The project
// implements SentencePiece itself (tokenizer/sp_model.h), so the engine links no
// libsentencepiece or protobuf, whose copies clash with those of the server hosting the backend.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm::sp {
class Model;
}

namespace llm {

class Tokenizer {
 public:
  // Loads tokenizer.model; throws Error naming the file when it is missing, not a SentencePiece
  // model, or a kind of model that sp::Model does not implement.
  explicit Tokenizer(const std::filesystem::path& model_file);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Throws Error (with the byte offset) when text is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const;
  std::string decode(std::span<const int32_t> ids) const;

  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t vocab_size() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  friend class StreamDecoder;  // needs the piece types (byte, control) behind the ids
  std::filesystem::path path_;
  std::unique_ptr<sp::Model> model_;
};

// Turns generated ids into text chunks as they arrive. The chunks concatenate to exactly
// tokenizer.decode(all ids); a chunk never ends inside a UTF-8 character (incomplete byte
// pieces are held back until complete); SentencePiece's rule that the first piece loses its
// leading space holds as in decode(). Each push costs O(1): it decodes a window of at most 5 ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer);
  // Returns the new text made visible by `id` (possibly empty). Throws Error for an id outside
  // the vocabulary.
  std::string push(int32_t id);
  // Returns whatever is still held back (an incomplete byte sequence at the end, as U+FFFD)
  // and resets the decoder for a new sequence.
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  // A piece that decodes alone to non-empty text; see tokenizer.cpp.
  int32_t anchor_id_;
  // The decoding window: ids_[0, read_offset_) is context whose text was already emitted;
  // ids_[read_offset_, end) is held back.
  std::vector<int32_t> ids_;
  size_t read_offset_ = 0;
  bool text_started_ = false;  // whether any chunk so far was non-empty
};

// Throws Error with the offset of the first invalid byte, if any.
void validate_utf8(std::string_view text, std::string_view what);
// The whole file as text; throws Error naming it when it cannot be read or is not UTF-8.
std::string read_utf8_file(const std::filesystem::path& path);

// Writes a SentencePiece model file (BPE, byte fallback, Llama-2 normaliser and special ids)
// for a Llama-2 vocabulary given as piece -> id, so synthetic checkpoints ship a
// Llama-2-compatible tokenizer made by the project itself.
void write_llama2_tokenizer_model(const std::map<std::string, int32_t>& vocab, const std::filesystem::path& out);
// Reads a JSON object {"piece": id, ...} (as produced by scripts/export-llama2-vocab.mjs).
std::map<std::string, int32_t> read_vocab_json(const std::filesystem::path& file);

}  // namespace llm
