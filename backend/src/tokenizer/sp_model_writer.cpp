// Writes a SentencePiece ModelProto in protobuf wire format by hand, so the project needs no
// protobuf library (sp_model_reader.cpp reads it back).
#include <nlohmann/json.hpp>

#include <bit>
#include <cstdio>
#include <fstream>
#include <limits>
#include <system_error>

#include "common/error.h"
#include "common/mapped_file.h"
#include "tokenizer/sp_model_proto.h"
#include "tokenizer/tokenizer.h"

namespace llm {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

using sp::PieceType;
namespace field = sp::field;

// The Llama-2 layout of the first ids: <unk>, <s>, </s>, then the 256 byte pieces.
constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr int32_t kFirstByteId = 3;
constexpr int32_t kFirstNormalId = kFirstByteId + 256;
// Llama-2 gives pieces made only of "▁" this score, so runs of spaces merge after everything else.
constexpr float kWhitespaceOnlyScore = -1e9f;
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // ▁ (U+2581)

class ProtoWriter {
 public:
  void varint(uint32_t field, uint64_t value) {
    key(field, kVarint);
    raw_varint(value);
  }
  // int32 fields are encoded as 64-bit two's complement, so negative values take 10 bytes.
  void int32(uint32_t field, int32_t value) { varint(field, static_cast<uint64_t>(static_cast<int64_t>(value))); }
  void boolean(uint32_t field, bool value) { varint(field, value ? 1 : 0); }
  void bytes(uint32_t field, std::string_view value) {
    key(field, kLengthDelimited);
    raw_varint(value.size());
    out_.append(value);
  }
  void message(uint32_t field, const ProtoWriter& nested) { bytes(field, nested.out_); }
  void float32(uint32_t field, float value) {
    key(field, kFixed32);
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    for (int shift = 0; shift < 32; shift += 8) out_.push_back(static_cast<char>((bits >> shift) & 0xFF));
  }
  const std::string& data() const { return out_; }

 private:
  void key(uint32_t field, uint32_t wire_type) { raw_varint((static_cast<uint64_t>(field) << 3) | wire_type); }
  void raw_varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }

  std::string out_;
};

std::string byte_piece(int byte) {
  char piece[7];
  std::snprintf(piece, sizeof piece, "<0x%02X>", byte);
  return piece;
}

bool is_whitespace_only(std::string_view piece) {
  while (piece.starts_with(kSpaceSymbol)) piece.remove_prefix(kSpaceSymbol.size());
  return piece.empty();
}

// Pieces indexed by id; checks that the ids are exactly 0..N-1.
std::vector<std::string> pieces_by_id(const std::map<std::string, int32_t>& vocab, std::string_view source) {
  std::vector<std::string> pieces(vocab.size());
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [piece, id] : vocab) {
    if (id < 0 || static_cast<size_t>(id) >= vocab.size()) {
      throw_error(source, ": piece \"", piece, "\" has id ", id, ", outside 0..", vocab.size() - 1,
                  " (ids must be exactly 0..N-1 for N pieces)");
    }
    if (seen[id]) {
      throw_error(source, ": id ", id, " is given to both \"", pieces[id], "\" and \"", piece,
                  "\" (each id must name one piece)");
    }
    seen[id] = true;
    pieces[id] = piece;
  }
  return pieces;
}

void check_llama2_layout(const std::vector<std::string>& pieces) {
  const auto expect = [&](int32_t id, const std::string& piece) {
    if (pieces[id] != piece) {
      throw_error("not a Llama-2 vocabulary: id ", id, " is \"", pieces[id], "\", expected \"", piece,
                  "\" (Llama-2 starts with <unk>, <s>, </s>, then <0x00>..<0xFF>)");
    }
  };
  if (pieces.size() <= static_cast<size_t>(kFirstNormalId)) {
    throw_error("not a Llama-2 vocabulary: it has ", pieces.size(), " pieces, fewer than the ", kFirstNormalId + 1,
                " of <unk>, <s>, </s>, the 256 byte pieces and at least one normal piece");
  }
  expect(kUnkId, "<unk>");
  expect(kBosId, "<s>");
  expect(kEosId, "</s>");
  for (int byte = 0; byte < 256; ++byte) expect(kFirstByteId + byte, byte_piece(byte));
  for (size_t id = kFirstNormalId; id < pieces.size(); ++id) {
    const std::string& piece = pieces[id];
    if (piece.empty()) throw_error("vocabulary piece for id ", id, " is empty");
    validate_utf8(piece, "vocabulary piece for id " + std::to_string(id));
    if (piece.find(' ') != std::string::npos) {
      throw_error("vocabulary piece for id ", id, " (\"", piece,
                  "\") contains a plain space; SentencePiece pieces spell spaces as \xE2\x96\x81 (U+2581), so this "
                  "is not the Llama-2 vocabulary as SentencePiece stores it");
    }
  }
}

ProtoWriter piece_message(const std::string& piece, float score, PieceType type) {
  ProtoWriter message;
  message.bytes(field::kPiece, piece);
  message.float32(field::kScore, score);
  if (type != PieceType::kNormal) message.int32(field::kType, static_cast<int32_t>(type));  // NORMAL is the default
  return message;
}

}  // namespace

void write_llama2_tokenizer_model(const std::map<std::string, int32_t>& vocab, const std::filesystem::path& out) {
  const std::vector<std::string> pieces = pieces_by_id(vocab, "vocabulary");
  check_llama2_layout(pieces);

  ProtoWriter model;
  for (size_t id = 0; id < pieces.size(); ++id) {
    const auto signed_id = static_cast<int32_t>(id);
    PieceType type = PieceType::kNormal;
    if (signed_id == kUnkId) {
      type = PieceType::kUnknown;
    } else if (signed_id < kFirstByteId) {
      type = PieceType::kControl;
    } else if (signed_id < kFirstNormalId) {
      type = PieceType::kByte;
    }
    // Llama-2's BPE ranks merges by score: the normal piece at id i scores -(i - 259).
    float score = 0.0f;
    if (type == PieceType::kNormal) {
      score = is_whitespace_only(pieces[id]) ? kWhitespaceOnlyScore : -static_cast<float>(signed_id - kFirstNormalId);
    }
    model.message(field::kPieces, piece_message(pieces[id], score, type));
  }

  ProtoWriter trainer_spec;
  trainer_spec.int32(field::kModelType, static_cast<int32_t>(sp::ModelType::kBpe));
  trainer_spec.int32(field::kVocabSize, static_cast<int32_t>(pieces.size()));
  trainer_spec.boolean(field::kByteFallback, true);
  trainer_spec.int32(field::kUnkId, kUnkId);
  trainer_spec.int32(field::kBosId, kBosId);
  trainer_spec.int32(field::kEosId, kEosId);
  trainer_spec.int32(field::kPadId, -1);  // none
  trainer_spec.bytes(field::kUnkSurface, " \xE2\x81\x87 ");  // " ⁇ "
  trainer_spec.bytes(field::kUnkPiece, "<unk>");
  trainer_spec.bytes(field::kBosPiece, "<s>");
  trainer_spec.bytes(field::kEosPiece, "</s>");
  trainer_spec.bytes(field::kPadPiece, "<pad>");
  model.message(field::kTrainerSpec, trainer_spec);

  ProtoWriter normalizer_spec;
  normalizer_spec.bytes(field::kName, "identity");
  normalizer_spec.boolean(field::kAddDummyPrefix, true);
  normalizer_spec.boolean(field::kRemoveExtraWhitespaces, false);  // its default is true
  normalizer_spec.boolean(field::kEscapeWhitespaces, true);
  model.message(field::kNormalizerSpec, normalizer_spec);

  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  if (!file) {
    throw_error("cannot create tokenizer model ", out.string(), " (check that the folder exists and is writable)");
  }
  file.write(model.data().data(), static_cast<std::streamsize>(model.data().size()));
  file.close();
  if (!file) throw_error("failed to write tokenizer model ", out.string(), " (disk full?)");
}

std::map<std::string, int32_t> read_vocab_json(const std::filesystem::path& file) {
  const std::string source = file.string();
  const std::string how_to_make = "make it with: npm install && node scripts/export-llama2-vocab.mjs " + source;
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) {
    throw_error("vocabulary file not found: ", source, " (", how_to_make, ")");
  }
  const std::string text = read_regular_file(file, "vocabulary file", 64u << 20);

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_error("vocabulary file ", source, " is not valid JSON (", e.what(), "); ", how_to_make);
  }
  if (!json.is_object()) {
    throw_error("vocabulary file ", source, " must hold a JSON object {\"piece\": id, ...}, not a ", json.type_name());
  }
  if (json.empty()) throw_error("vocabulary file ", source, " holds no pieces; ", how_to_make);
  std::map<std::string, int32_t> vocab;
  for (const auto& [piece, id] : json.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw_error("vocabulary file ", source, ": the id of piece \"", piece, "\" is ", id.dump(),
                  ", not a non-negative 32-bit integer");
    }
    vocab.emplace(piece, id.get<int32_t>());
  }
  pieces_by_id(vocab, "vocabulary file " + source);  // checks the ids are unique and dense
  return vocab;
}

}  // namespace llm
