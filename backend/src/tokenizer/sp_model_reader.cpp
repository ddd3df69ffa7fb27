// Parses a SentencePiece ModelProto from protobuf wire format by hand. Unknown fields are
// skipped and repeated occurrences of a singular field follow protobuf's rules (the last
// scalar wins, messages merge), so any file protobuf would parse reads the same here.
#include <bit>
#include <iterator>
#include <string_view>

#include "common/error.h"
#include "common/mapped_file.h"
#include "tokenizer/sp_model_proto.h"

namespace llm::sp {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

// Thrown while parsing; read_model_proto adds the file name.
struct MalformedModel {
  std::string reason;
};

[[noreturn]] void malformed(size_t offset, const std::string& reason) {
  throw MalformedModel{reason + " at byte offset " + std::to_string(offset)};
}

// One field of a message, as read from the wire.
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  size_t offset = 0;         // of the field's key in the file
  uint64_t varint = 0;       // kVarint
  uint32_t fixed32 = 0;      // kFixed32
  std::string_view payload;  // kLengthDelimited
  size_t payload_offset = 0;

  void expect(uint32_t wanted, std::string_view name) const {
    if (wire_type != wanted) {
      malformed(offset, std::string(name) + " (field " + std::to_string(number) + ") has wire type " +
                            std::to_string(wire_type) + ", expected " + std::to_string(wanted));
    }
  }
  // int32 and enum fields travel as 64-bit two's complement varints; the low 32 bits are the value.
  int32_t int32(std::string_view name) const {
    expect(kVarint, name);
    return static_cast<int32_t>(static_cast<uint32_t>(varint));
  }
  bool boolean(std::string_view name) const {
    expect(kVarint, name);
    return varint != 0;
  }
  float float32(std::string_view name) const {
    expect(kFixed32, name);
    return std::bit_cast<float>(fixed32);
  }
  std::string_view bytes(std::string_view name) const {
    expect(kLengthDelimited, name);
    return payload;
  }
};

// Reads the fields of one message in order.
class MessageReader {
 public:
  // `base_offset`: where `bytes` starts in the file, for error messages.
  MessageReader(std::string_view bytes, size_t base_offset) : bytes_(bytes), base_offset_(base_offset) {}
  // A message field's payload, to read its own fields.
  explicit MessageReader(const Field& message) : MessageReader(message.payload, message.payload_offset) {}

  bool done() const { return position_ == bytes_.size(); }

  Field next() {
    Field field;
    field.offset = base_offset_ + position_;
    const uint64_t key = varint();
    field.number = static_cast<uint32_t>(key >> 3);
    field.wire_type = static_cast<uint32_t>(key & 7);
    if (field.number == 0 || key >> 3 > 0x1FFFFFFF) malformed(field.offset, "invalid field number");
    switch (field.wire_type) {
      case kVarint:
        field.varint = varint();
        break;
      case kFixed64:
        take(8, field.offset);
        break;
      case kLengthDelimited: {
        const uint64_t length = varint();
        field.payload_offset = base_offset_ + position_;
        field.payload = take(length, field.offset);
        break;
      }
      case kFixed32: {
        const std::string_view raw = take(4, field.offset);
        for (int i = 3; i >= 0; --i) field.fixed32 = (field.fixed32 << 8) | static_cast<unsigned char>(raw[i]);
        break;
      }
      default:  // 3 and 4 are the long-deprecated groups, which no SentencePiece model holds
        malformed(field.offset, "unsupported wire type " + std::to_string(field.wire_type));
    }
    return field;
  }

 private:
  uint64_t varint() {
    const size_t start = base_offset_ + position_;
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (position_ == bytes_.size()) malformed(start, "truncated varint");
      const auto byte = static_cast<unsigned char>(bytes_[position_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    malformed(start, "varint longer than 10 bytes");
  }

  std::string_view take(uint64_t length, size_t field_offset) {
    if (length > bytes_.size() - position_) {
      malformed(field_offset, "field of " + std::to_string(length) + " bytes runs past the end of its message (" +
                                  std::to_string(bytes_.size() - position_) + " bytes left)");
    }
    const std::string_view taken = bytes_.substr(position_, length);
    position_ += length;
    return taken;
  }

  std::string_view bytes_;
  size_t base_offset_;
  size_t position_ = 0;
};

void read_piece(MessageReader reader, size_t index, ModelPiece& piece) {
  while (!reader.done()) {
    const Field field = reader.next();
    switch (field.number) {
      case field::kPiece:
        piece.text = field.bytes("SentencePiece.piece");
        break;
      case field::kScore:
        piece.score = field.float32("SentencePiece.score");
        break;
      case field::kType: {
        const int32_t type = field.int32("SentencePiece.type");
        if (type < static_cast<int32_t>(PieceType::kNormal) || type > static_cast<int32_t>(PieceType::kByte)) {
          malformed(field.offset, "piece " + std::to_string(index) + " has unknown type " + std::to_string(type));
        }
        piece.type = static_cast<PieceType>(type);
        break;
      }
      default:
        break;
    }
  }
}

void read_trainer_spec(MessageReader reader, TrainerSpec& spec) {
  while (!reader.done()) {
    const Field field = reader.next();
    switch (field.number) {
      case field::kModelType: {
        const int32_t type = field.int32("TrainerSpec.model_type");
        if (type < static_cast<int32_t>(ModelType::kUnigram) || type > static_cast<int32_t>(ModelType::kChar)) {
          malformed(field.offset, "unknown trainer_spec.model_type " + std::to_string(type));
        }
        spec.model_type = static_cast<ModelType>(type);
        break;
      }
      case field::kByteFallback:
        spec.byte_fallback = field.boolean("TrainerSpec.byte_fallback");
        break;
      case field::kTreatWhitespaceAsSuffix:
        spec.treat_whitespace_as_suffix = field.boolean("TrainerSpec.treat_whitespace_as_suffix");
        break;
      case field::kUnkSurface:
        spec.unk_surface = std::string(field.bytes("TrainerSpec.unk_surface"));
        break;
      case field::kBosPiece:
        spec.bos_piece = field.bytes("TrainerSpec.bos_piece");
        break;
      case field::kEosPiece:
        spec.eos_piece = field.bytes("TrainerSpec.eos_piece");
        break;
      default:
        break;
    }
  }
}

void read_normalizer_spec(MessageReader reader, NormalizerSpec& spec) {
  while (!reader.done()) {
    const Field field = reader.next();
    switch (field.number) {
      case field::kName:
        spec.name = field.bytes("NormalizerSpec.name");
        break;
      case field::kPrecompiledCharsmap:
        spec.precompiled_charsmap = field.bytes("NormalizerSpec.precompiled_charsmap");
        break;
      case field::kAddDummyPrefix:
        spec.add_dummy_prefix = field.boolean("NormalizerSpec.add_dummy_prefix");
        break;
      case field::kRemoveExtraWhitespaces:
        spec.remove_extra_whitespaces = field.boolean("NormalizerSpec.remove_extra_whitespaces");
        break;
      case field::kEscapeWhitespaces:
        spec.escape_whitespaces = field.boolean("NormalizerSpec.escape_whitespaces");
        break;
      default:
        break;
    }
  }
}

ModelProto parse_model_proto(std::string_view bytes) {
  ModelProto model;
  MessageReader reader(bytes, 0);
  while (!reader.done()) {
    const Field field = reader.next();
    switch (field.number) {
      case field::kPieces: {
        field.expect(kLengthDelimited, "ModelProto.pieces");
        const size_t index = model.pieces.size();
        read_piece(MessageReader(field), index, model.pieces.emplace_back());
        break;
      }
      case field::kTrainerSpec:
        field.expect(kLengthDelimited, "ModelProto.trainer_spec");
        if (!model.trainer_spec) model.trainer_spec.emplace();
        read_trainer_spec(MessageReader(field), *model.trainer_spec);
        break;
      case field::kNormalizerSpec:
        field.expect(kLengthDelimited, "ModelProto.normalizer_spec");
        if (!model.normalizer_spec) model.normalizer_spec.emplace();
        read_normalizer_spec(MessageReader(field), *model.normalizer_spec);
        break;
      case field::kDenormalizerSpec:
        field.expect(kLengthDelimited, "ModelProto.denormalizer_spec");
        read_normalizer_spec(MessageReader(field), model.denormalizer_spec);
        break;
      default:
        break;
    }
  }
  return model;
}

}  // namespace

ModelProto read_model_proto(const std::filesystem::path& file) {
  constexpr size_t kMaxTokenizerBytes = 64u << 20;  // Llama-2's is 500 KB
  const std::string bytes = read_regular_file(file, "tokenizer", kMaxTokenizerBytes);
  try {
    return parse_model_proto(bytes);
  } catch (const MalformedModel& e) {
    throw_error("tokenizer ", file.string(), " is not a valid SentencePiece model (", e.reason,
                "); replace it with the tokenizer.model of the original Hugging Face model");
  }
}

}  // namespace llm::sp
