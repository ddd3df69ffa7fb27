#pragma once
// SentencePiece's tokenizer, re-implemented for the models Llama-family tokenizers are: BPE
// (model_type 2) with byte fallback or <unk>, and the identity normalizer (no
// precompiled_charsmap). encode() gives the ids of SentencePieceProcessor::Encode and decode()
// the text of DecodeIds. Models using anything else are rejected when loaded, never run wrongly.
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/sp_model_proto.h"

namespace llm::sp {

class Model {
 public:
  // Throws Error naming `file` when it is not a valid SentencePiece model, or when it needs a
  // feature this implementation lacks (unigram, word or char models; normalization rules).
  explicit Model(const std::filesystem::path& file);
  // The lookup tables point into pieces_, so a Model stays where it was built.
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The ids of `text`, which must be valid UTF-8; no BOS or EOS is added.
  std::vector<int32_t> encode(std::string_view text) const;
  // The text of `ids`, which must all be in 0..size()-1.
  std::string decode(std::span<const int32_t> ids) const;

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  // The control pieces named by trainer_spec.bos_piece / eos_piece ("<s>", "</s>"), or -1.
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // How decode() treats `id`: as an invisible control piece, or as one byte of UTF-8 text
  // (byte_of(id)) decoded together with the byte pieces next to it.
  bool is_control(int32_t id) const { return decoded(id).type == PieceType::kControl; }
  bool is_byte(int32_t id) const { return decoded(id).type == PieceType::kByte; }
  unsigned char byte_of(int32_t id) const { return decoded(id).byte; }

 private:
  struct Piece {
    std::string text;
    float score = 0.0f;
    PieceType type = PieceType::kNormal;
    // SentencePiece decodes an id through its text, looked up as in encoding (control, unknown
    // and byte pieces first): the piece that decoding uses. Itself, unless a reserved piece
    // shares its text.
    int32_t decoded_as = 0;
    // Normal, user-defined and unused pieces: the decoded text (`text` with each "▁" as a space),
    // and whether `text` starts with "▁" (where the dummy prefix goes).
    std::string surface;
    bool starts_with_space_mark = false;
    unsigned char byte = 0;               // byte pieces: the byte "<0xNN>" stands for
  };
  // One piece of encode()'s output before unknown pieces are resolved.
  struct Segment {
    std::string_view text;
    int32_t id;
  };

  const Piece& decoded(int32_t id) const { return pieces_[pieces_[id].decoded_as]; }
  // SentencePiece's PieceToId: control, unknown and byte pieces first, then the rest; <unk>
  // when neither has `text`.
  int32_t id_of(std::string_view text) const;
  // Length of the longest user-defined piece that starts `text`, or 0.
  size_t user_defined_prefix_length(std::string_view text) const;
  std::string normalize(std::string_view text) const;
  std::vector<Segment> bpe_segments(std::string_view normalized) const;

  std::vector<Piece> pieces_;
  // By text: control, unknown and byte pieces ...
  std::unordered_map<std::string_view, int32_t> reserved_ids_;
  // ... and the pieces text can encode to: normal, user-defined and unused ones.
  std::unordered_map<std::string_view, int32_t> normal_ids_;
  // User-defined pieces are taken whole from the input, before any other rule.
  std::unordered_set<std::string_view> user_defined_;
  std::vector<size_t> user_defined_lengths_;  // distinct, longest first
  int32_t unk_id_ = -1;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool byte_fallback_ = false;
  std::array<int32_t, 256> byte_ids_{};  // with byte fallback: the piece of each byte
  std::string unk_surface_;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
  bool treat_whitespace_as_suffix_ = false;
};

}  // namespace llm::sp
