#include "tokenizer/sp_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace llm::sp {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // ▁ (U+2581): a space inside a piece
constexpr std::string_view kDefaultUnkSurface = " \xE2\x81\x87 ";  // " ⁇ "
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

std::string_view model_type_name(ModelType type) {
  switch (type) {
    case ModelType::kUnigram:
      return "UNIGRAM";
    case ModelType::kBpe:
      return "BPE";
    case ModelType::kWord:
      return "WORD";
    case ModelType::kChar:
      return "CHAR";
  }
  return "?";
}

std::string byte_piece_text(unsigned char byte) {
  char text[7];
  std::snprintf(text, sizeof text, "<0x%02X>", byte);
  return text;
}

// The byte a byte piece stands for; SentencePiece accepts only the spelling "<0xNN>", upper case.
bool parse_byte_piece(std::string_view text, unsigned char& byte) {
  const auto digit = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  if (text.size() != 6 || !text.starts_with("<0x") || text.back() != '>') return false;
  const int high = digit(text[3]);
  const int low = digit(text[4]);
  if (high < 0 || low < 0) return false;
  byte = static_cast<unsigned char>(high * 16 + low);
  return true;
}

// Length of the character that starts `text` (valid UTF-8, not empty).
size_t character_length(std::string_view text) {
  return std::min(text.size(), utf8::announced_length(static_cast<unsigned char>(text[0])));
}

bool is_valid_utf8(std::string_view text) {
  while (!text.empty()) {
    const size_t length = utf8::valid_character_length(text);
    if (length == 0) return false;
    text.remove_prefix(length);
  }
  return true;
}

std::string replace_space_marks(std::string_view text) {
  std::string replaced;
  replaced.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    if (text.substr(at).starts_with(kSpaceMark)) {
      replaced += ' ';
      at += kSpaceMark.size();
    } else {
      replaced += text[at++];
    }
  }
  return replaced;
}

// Appends bytes from a run of byte pieces as SentencePiece does: each valid UTF-8 character as
// it is, every other byte as U+FFFD.
void append_bytes_as_utf8(std::string_view bytes, std::string& text) {
  while (!bytes.empty()) {
    const size_t length = utf8::valid_character_length(bytes);
    if (length == 0) {
      text += kReplacementCharacter;
      bytes.remove_prefix(1);
    } else {
      text += bytes.substr(0, length);
      bytes.remove_prefix(length);
    }
  }
}

}  // namespace

Model::Model(const std::filesystem::path& file) {
  ModelProto proto = read_model_proto(file);
  const std::string source = file.string();
  const auto invalid = [&](const auto&... reason) {
    throw_error("tokenizer ", source, " is not a valid SentencePiece model (", reason...,
                "); replace it with the tokenizer.model of the original Hugging Face model");
  };
  const auto unsupported = [&](const auto&... feature) {
    throw_error("tokenizer ", source, " uses ", feature...,
                ", which this engine's tokenizer does not support (it implements SentencePiece BPE models with "
                "the identity normalizer, as Llama-family tokenizers are)");
  };

  if (proto.pieces.empty()) invalid("it holds no pieces");
  if (!proto.trainer_spec) invalid("it has no trainer_spec; is the file truncated?");
  if (!proto.normalizer_spec) invalid("it has no normalizer_spec; is the file truncated?");
  const TrainerSpec& trainer = *proto.trainer_spec;
  const NormalizerSpec& normalizer = *proto.normalizer_spec;
  if (trainer.model_type != ModelType::kBpe) {
    unsupported("a ", model_type_name(trainer.model_type), " model (trainer_spec.model_type)");
  }
  if (!normalizer.precompiled_charsmap.empty()) {
    unsupported("the normalization rule \"", normalizer.name, "\" (a normalizer_spec.precompiled_charsmap of ",
                normalizer.precompiled_charsmap.size(), " bytes)");
  }
  if (!proto.denormalizer_spec.precompiled_charsmap.empty()) {
    unsupported("the denormalization rule \"", proto.denormalizer_spec.name,
                "\" (a denormalizer_spec.precompiled_charsmap of ",
                proto.denormalizer_spec.precompiled_charsmap.size(), " bytes)");
  }
  byte_fallback_ = trainer.byte_fallback;
  unk_surface_ = trainer.unk_surface.value_or(std::string(kDefaultUnkSurface));
  if (!is_valid_utf8(unk_surface_)) invalid("trainer_spec.unk_surface is not valid UTF-8");
  add_dummy_prefix_ = normalizer.add_dummy_prefix;
  remove_extra_whitespaces_ = normalizer.remove_extra_whitespaces;
  escape_whitespaces_ = normalizer.escape_whitespaces;
  treat_whitespace_as_suffix_ = trainer.treat_whitespace_as_suffix;

  // The tables below hold views of the piece texts: fill pieces_ first, never resize it after.
  pieces_.resize(proto.pieces.size());
  for (size_t id = 0; id < proto.pieces.size(); ++id) {
    ModelPiece& from = proto.pieces[id];
    Piece& piece = pieces_[id];
    piece.text = std::move(from.text);
    piece.score = from.score;
    piece.type = from.type;
    if (piece.text.empty()) invalid("piece ", id, " is empty");
    if (!is_valid_utf8(piece.text)) invalid("piece ", id, " is not valid UTF-8");
    if (piece.type == PieceType::kByte) {
      if (!byte_fallback_) {
        invalid("piece ", id, " (", piece.text, ") is a byte piece, but trainer_spec.byte_fallback is false");
      }
      if (!parse_byte_piece(piece.text, piece.byte)) {
        invalid("byte piece ", id, " is \"", piece.text, "\", not <0xNN> with NN two upper-case hex digits");
      }
    }
    if (piece.type == PieceType::kUnknown) {
      if (unk_id_ >= 0) invalid("pieces ", unk_id_, " and ", id, " are both of type UNKNOWN");
      unk_id_ = static_cast<int32_t>(id);
    }
    const bool reserved = piece.type == PieceType::kControl || piece.type == PieceType::kUnknown ||
                          piece.type == PieceType::kByte;
    auto& ids = reserved ? reserved_ids_ : normal_ids_;
    if (const auto [at, added] = ids.emplace(piece.text, static_cast<int32_t>(id)); !added) {
      invalid("pieces ", at->second, " and ", id, " are both \"", piece.text, "\"");
    }
    if (piece.type == PieceType::kUserDefined) {
      user_defined_.insert(piece.text);
      user_defined_lengths_.push_back(piece.text.size());
    }
  }
  if (unk_id_ < 0) invalid("it has no piece of type UNKNOWN, the <unk> piece");
  if (byte_fallback_) {
    for (int byte = 0; byte < 256; ++byte) {
      const auto at = reserved_ids_.find(byte_piece_text(static_cast<unsigned char>(byte)));
      if (at == reserved_ids_.end() || pieces_[at->second].type != PieceType::kByte) {
        invalid("trainer_spec.byte_fallback is true, but there is no byte piece ", byte_piece_text(byte));
      }
      byte_ids_[byte] = at->second;
    }
  }
  std::sort(user_defined_lengths_.begin(), user_defined_lengths_.end(), std::greater<>());
  user_defined_lengths_.erase(std::unique(user_defined_lengths_.begin(), user_defined_lengths_.end()),
                              user_defined_lengths_.end());

  for (Piece& piece : pieces_) {
    piece.decoded_as = id_of(piece.text);
    if (normal_ids_.contains(piece.text)) {
      piece.surface = replace_space_marks(piece.text);
      piece.starts_with_space_mark = piece.text.starts_with(kSpaceMark);
    }
  }
  const auto control_id = [&](const std::string& text, std::string_view default_text) {
    const int32_t id = id_of(text.empty() ? default_text : text);
    return pieces_[id].type == PieceType::kControl ? id : -1;
  };
  bos_id_ = control_id(trainer.bos_piece, "<s>");
  eos_id_ = control_id(trainer.eos_piece, "</s>");
}

int32_t Model::id_of(std::string_view text) const {
  if (const auto at = reserved_ids_.find(text); at != reserved_ids_.end()) return at->second;
  if (const auto at = normal_ids_.find(text); at != normal_ids_.end()) return at->second;
  return unk_id_;
}

size_t Model::user_defined_prefix_length(std::string_view text) const {
  for (const size_t length : user_defined_lengths_) {
    if (length <= text.size() && user_defined_.contains(text.substr(0, length))) return length;
  }
  return 0;
}

// SentencePiece's Normalizer::Normalize without a precompiled_charsmap: whitespace handling only.
std::string Model::normalize(std::string_view text) const {
  // The input in units: a user-defined piece, else one character.
  const auto unit_length = [&](std::string_view rest) {
    const size_t user_defined = user_defined_prefix_length(rest);
    return user_defined > 0 ? user_defined : character_length(rest);
  };
  if (remove_extra_whitespaces_) {
    while (!text.empty() && text.substr(0, unit_length(text)) == " ") text.remove_prefix(1);
  }
  if (text.empty()) return {};

  const std::string_view space = escape_whitespaces_ ? kSpaceMark : " ";
  std::string normalized;
  normalized.reserve(text.size() + space.size());
  if (add_dummy_prefix_ && !treat_whitespace_as_suffix_) normalized += space;
  bool after_space = true;  // only consulted when removing extra whitespace
  while (!text.empty()) {
    std::string_view unit = text.substr(0, unit_length(text));
    text.remove_prefix(unit.size());
    if (remove_extra_whitespaces_ && after_space) {
      while (unit.starts_with(' ')) unit.remove_prefix(1);
    }
    if (unit.empty()) continue;
    for (const char c : unit) {
      if (c == ' ') {
        normalized += space;
      } else {
        normalized += c;
      }
    }
    after_space = unit.ends_with(' ');
  }
  if (remove_extra_whitespaces_) {
    size_t kept = normalized.size();
    while (std::string_view(normalized.data(), kept).ends_with(space)) kept -= space.size();
    normalized.erase(kept);
  }
  if (add_dummy_prefix_ && treat_whitespace_as_suffix_) normalized += space;
  return normalized;
}

// SentencePiece's BPE: starting from characters (user-defined pieces stay whole and never
// merge), repeatedly merges the adjacent pair that forms the highest-scoring piece, the leftmost
// on ties. A priority queue of candidate pairs over a linked list of symbols makes it
// O(n log n); a candidate whose symbols changed since it was queued is skipped when popped.
std::vector<Model::Segment> Model::bpe_segments(std::string_view normalized) const {
  struct Symbol {
    int prev;
    int next;
    bool frozen;            // a user-defined piece
    std::string_view text;  // empty once merged into the symbol on its left
  };
  struct Candidate {
    float score;
    int left;
    int right;
    size_t length;  // of the merged text: stale when the symbols' lengths no longer add up to it
  };
  const auto pops_later = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(pops_later)> queue(pops_later);

  std::vector<Symbol> symbols;
  for (size_t at = 0; at < normalized.size();) {
    const std::string_view rest = normalized.substr(at);
    const size_t user_defined = user_defined_prefix_length(rest);
    const size_t length = user_defined > 0 ? user_defined : character_length(rest);
    const int index = static_cast<int>(symbols.size());
    at += length;
    symbols.push_back({index - 1, at < normalized.size() ? index + 1 : -1, user_defined > 0, rest.substr(0, length)});
  }

  // An unused piece may be merged through but is never output: it is split back into the pair
  // last queued to form it (SentencePiece's resegmentation).
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_splits;
  const auto queue_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged(symbols[left].text.data(), symbols[left].text.size() + symbols[right].text.size());
    const auto found = normal_ids_.find(merged);
    if (found == normal_ids_.end()) return;
    const Piece& piece = pieces_[found->second];
    queue.push({piece.score, left, right, merged.size()});
    if (piece.type == PieceType::kUnused) unused_splits[merged] = {symbols[left].text, symbols[right].text};
  };
  for (size_t i = 1; i < symbols.size(); ++i) queue_pair(static_cast<int>(i - 1), static_cast<int>(i));

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.text.empty() || right.text.empty() || left.text.size() + right.text.size() != top.length) continue;
    left.text = std::string_view(left.text.data(), top.length);
    right.text = {};
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    queue_pair(left.prev, top.left);
    queue_pair(top.left, left.next);
  }

  std::vector<Segment> segments;
  const auto resegment = [&](const auto& self, std::string_view text) -> void {
    const int32_t id = id_of(text);
    if (pieces_[id].type == PieceType::kUnused) {
      if (const auto split = unused_splits.find(text); split != unused_splits.end()) {
        self(self, split->second.first);
        self(self, split->second.second);
        return;
      }
    }
    segments.push_back({text, id});
  };
  for (int index = symbols.empty() ? -1 : 0; index >= 0; index = symbols[index].next) {
    resegment(resegment, symbols[index].text);
  }
  return segments;
}

std::vector<int32_t> Model::encode(std::string_view text) const {
  const std::string normalized = normalize(text);
  std::vector<int32_t> ids;
  bool previous_unknown = false;
  for (const Segment& segment : bpe_segments(normalized)) {
    const bool unknown = segment.id == unk_id_;
    if (unknown && byte_fallback_) {
      for (const char byte : segment.text) ids.push_back(byte_ids_[static_cast<unsigned char>(byte)]);
    } else if (!(unknown && previous_unknown)) {  // a run of unknown pieces is one <unk>
      ids.push_back(segment.id);
    }
    previous_unknown = unknown;
  }
  return ids;
}

// SentencePiece's decoding: control pieces are invisible, <unk> shows as unk_surface, runs of
// byte pieces are decoded together as UTF-8, and "▁" is a space, except that the dummy prefix
// is dropped: while the text is still empty, the first piece starting with "▁" loses it (every
// such piece, for models that remove extra whitespace).
std::string Model::decode(std::span<const int32_t> ids) const {
  const bool strips_dummy_prefix = add_dummy_prefix_ || remove_extra_whitespaces_;
  std::string text;
  std::string byte_run;
  bool at_start = true;
  bool stripped_dummy_prefix = false;
  for (const int32_t id : ids) {
    const Piece& piece = decoded(id);
    if (piece.type == PieceType::kByte) {
      byte_run += static_cast<char>(piece.byte);
      continue;
    }
    append_bytes_as_utf8(byte_run, text);
    byte_run.clear();
    if (stripped_dummy_prefix || !text.empty()) at_start = false;
    stripped_dummy_prefix = false;
    if (piece.type == PieceType::kControl) continue;
    if (piece.type == PieceType::kUnknown) {
      text += unk_surface_;
    } else if (at_start && strips_dummy_prefix && piece.starts_with_space_mark) {
      text.append(piece.surface, 1);
      stripped_dummy_prefix = !remove_extra_whitespaces_;
    } else {
      text += piece.surface;
    }
  }
  append_bytes_as_utf8(byte_run, text);
  return text;
}

}  // namespace llm::sp
