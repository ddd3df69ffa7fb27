#pragma once
// The parts of SentencePiece's ModelProto (sentencepiece_model.proto, protobuf wire format) that
// decide how text is encoded and decoded, and the field numbers that carry them. The project
// reads and writes the format by hand, so it needs neither libsentencepiece nor protobuf.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace llm::sp {

// ModelProto.SentencePiece.Type.
enum class PieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// TrainerSpec.ModelType.
enum class ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

namespace field {
// ModelProto
constexpr uint32_t kPieces = 1;
constexpr uint32_t kTrainerSpec = 2;
constexpr uint32_t kNormalizerSpec = 3;
constexpr uint32_t kDenormalizerSpec = 5;
// ModelProto.SentencePiece
constexpr uint32_t kPiece = 1;
constexpr uint32_t kScore = 2;
constexpr uint32_t kType = 3;
// TrainerSpec
constexpr uint32_t kModelType = 3;
constexpr uint32_t kVocabSize = 4;
constexpr uint32_t kTreatWhitespaceAsSuffix = 24;
constexpr uint32_t kByteFallback = 35;
constexpr uint32_t kUnkId = 40;
constexpr uint32_t kBosId = 41;
constexpr uint32_t kEosId = 42;
constexpr uint32_t kPadId = 43;
constexpr uint32_t kUnkSurface = 44;
constexpr uint32_t kUnkPiece = 45;
constexpr uint32_t kBosPiece = 46;
constexpr uint32_t kEosPiece = 47;
constexpr uint32_t kPadPiece = 48;
// NormalizerSpec
constexpr uint32_t kName = 1;
constexpr uint32_t kPrecompiledCharsmap = 2;
constexpr uint32_t kAddDummyPrefix = 3;
constexpr uint32_t kRemoveExtraWhitespaces = 4;
constexpr uint32_t kEscapeWhitespaces = 5;
}  // namespace field

struct ModelPiece {
  std::string text;
  float score = 0.0f;
  PieceType type = PieceType::kNormal;
};

// Defaults are those of sentencepiece_model.proto. The numeric special ids (unk_id, bos_id, ...)
// and vocab_size only steer training: at run time SentencePiece finds <unk> by its piece type and
// BOS/EOS by the text bos_piece/eos_piece, so they are not read.
struct TrainerSpec {
  ModelType model_type = ModelType::kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::optional<std::string> unk_surface;  // absent: " ⁇ "
  std::string bos_piece;                   // empty: "<s>"
  std::string eos_piece;                   // empty: "</s>"
};

struct NormalizerSpec {
  std::string name;
  std::string precompiled_charsmap;  // empty: no character rewriting (the identity normalizer)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

struct ModelProto {
  std::vector<ModelPiece> pieces;
  // Every trained model has both; absent ones mostly mean a truncated file.
  std::optional<TrainerSpec> trainer_spec;
  std::optional<NormalizerSpec> normalizer_spec;
  NormalizerSpec denormalizer_spec;  // only its precompiled_charsmap matters (rewrites decoded text)
};

// Reads a tokenizer.model. Throws Error naming `file` when it cannot be read or is not a
// well-formed ModelProto; checks nothing about what the model means (see Model for that).
ModelProto read_model_proto(const std::filesystem::path& file);

}  // namespace llm::sp
