#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "common/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace llm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLlama2Tokenizer = "models/llama2-tokenizer/tokenizer.model";
constexpr const char* kAidreamsTokenizer = "models/aidreams260K-hf/tokenizer.model";
constexpr const char* kShakespeareTokenizer = "models/shakespeare-llama-hf/tokenizer.model";
constexpr int32_t kFirstByteId = 3;  // Llama layout: <unk>, <s>, </s>, then <0x00>..<0xFF>
const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

int32_t byte_id(unsigned char byte) { return kFirstByteId + byte; }

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& file, std::string_view content) {
  std::ofstream out(file, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string ids_text(std::span<const int32_t> ids) {
  std::string text = "ids:";
  for (const int32_t id : ids) {
    text += ' ';  // appended separately: `" " + std::to_string(id)` trips GCC 12's -Wrestrict
    text += std::to_string(id);
  }
  return text;
}

// The message of the Error that `action` throws, or a failure when it throws none.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected llm::Error, none was thrown";
  return {};
}

std::string encode_utf8(char32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

char32_t random_code_point(std::mt19937& rng) {
  // 2-, 3- and 4-byte characters, skipping surrogates.
  switch (rng() % 3) {
    case 0:
      return 0x80 + rng() % (0x800 - 0x80);
    case 1: {
      const char32_t code_point = 0x800 + rng() % (0x10000 - 0x800);
      return code_point >= 0xD800 && code_point <= 0xDFFF ? code_point - 0x800 : code_point;
    }
    default:
      return 0x10000 + rng() % (0x110000 - 0x10000);
  }
}

// The ids of a SentencePiece model sorted by what kind of piece they are, to draw test sequences
// (read with libsentencepiece, the oracle).
struct PieceKinds {
  std::vector<int32_t> control;
  std::vector<int32_t> unknown;
  std::vector<int32_t> whitespace_only;  // "▁", "▁▁", ...
  std::vector<int32_t> spaced;           // other pieces that start with "▁"
  std::vector<int32_t> unspaced;         // the rest
  std::array<int32_t, 256> byte_pieces;  // the piece "<0xNN>" of each byte; <unk> without byte fallback
  int32_t lone_space = -1;               // "▁"
  int32_t size = 0;

  explicit PieceKinds(const fs::path& model_file) {
    sentencepiece::SentencePieceProcessor processor;
    EXPECT_TRUE(processor.Load(model_file.string()).ok()) << model_file;
    size = processor.GetPieceSize();
    byte_pieces.fill(processor.unk_id());
    for (int32_t id = 0; id < size; ++id) {
      const std::string& piece = processor.IdToPiece(id);
      if (processor.IsControl(id)) {
        control.push_back(id);
      } else if (processor.IsUnknown(id)) {
        unknown.push_back(id);
      } else if (processor.IsByte(id)) {
        byte_pieces[std::stoi(piece.substr(3, 2), nullptr, 16)] = id;
      } else {
        std::string_view rest = piece;
        while (rest.starts_with("\xE2\x96\x81")) rest.remove_prefix(3);
        (rest.empty() ? whitespace_only : rest.size() < piece.size() ? spaced : unspaced).push_back(id);
        if (piece == "\xE2\x96\x81") lone_space = id;
      }
    }
  }
};

// Random id sequences that stress detokenization: control and unknown pieces, whitespace-only
// pieces (often first, where SentencePiece strips spaces), characters spelled as byte pieces
// (complete, truncated, split by a control piece), stray bytes and newlines, and ordinary pieces.
std::vector<int32_t> random_ids(const PieceKinds& kinds, std::mt19937& rng, size_t events) {
  // Hand-made models may lack a kind; <unk> stands in.
  const auto pick = [&](const std::vector<int32_t>& from) {
    return from.empty() ? kinds.unknown.front() : from[rng() % from.size()];
  };
  const auto byte_piece = [&](char byte) { return kinds.byte_pieces[static_cast<unsigned char>(byte)]; };
  std::vector<int32_t> ids;
  for (size_t opening = rng() % 2 ? rng() % 5 : 0; opening > 0; --opening) {
    ids.push_back(pick(rng() % 3 == 0 ? kinds.control : kinds.whitespace_only));
  }
  for (size_t event = 0; event < events; ++event) {
    const unsigned roll = rng() % 100;
    if (roll < 6) {
      ids.push_back(pick(kinds.control));
    } else if (roll < 8) {
      ids.push_back(pick(kinds.unknown));
    } else if (roll < 18) {
      ids.push_back(pick(kinds.whitespace_only));
    } else if (roll < 35) {
      ids.push_back(pick(kinds.spaced));
    } else if (roll < 50) {
      ids.push_back(pick(kinds.unspaced));
    } else if (roll < 65) {
      for (const char byte : encode_utf8(random_code_point(rng))) ids.push_back(byte_piece(byte));
    } else if (roll < 73) {
      const std::string bytes = encode_utf8(random_code_point(rng));
      for (size_t i = 0; i + 1 < bytes.size() && (i == 0 || rng() % 2); ++i) ids.push_back(byte_piece(bytes[i]));
    } else if (roll < 77) {
      const std::string bytes = encode_utf8(random_code_point(rng));
      ids.push_back(byte_piece(bytes[0]));
      ids.push_back(pick(kinds.control));
      for (size_t i = 1; i < bytes.size(); ++i) ids.push_back(byte_piece(bytes[i]));
    } else if (roll < 87) {
      ids.push_back(byte_piece(static_cast<char>(rng() % 256)));
    } else if (roll < 92) {
      ids.push_back(byte_piece('\n'));
    } else if (roll < 95) {
      ids.push_back(byte_piece(static_cast<char>(' ' + rng() % 95)));
    } else {
      ids.push_back(static_cast<int32_t>(rng() % kinds.size));
    }
  }
  return ids;
}

// Streaming tests use models with the Llama layout, where byte b is id kFirstByteId + b.
bool is_byte_id(int32_t id) { return id >= kFirstByteId && id < kFirstByteId + 256; }

bool is_valid_utf8(std::string_view text) {
  try {
    validate_utf8(text, "text");
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Whether the byte pieces that end `ids` end with a whole character, which no later byte can
// change (an ASCII byte, or a lead byte and its continuation bytes forming a valid character).
bool ends_with_whole_character(std::span<const int32_t> ids) {
  std::string tail;  // the last (up to 4) bytes, in order
  for (size_t back = 1; back <= std::min<size_t>(4, ids.size()) && is_byte_id(ids[ids.size() - back]); ++back) {
    tail.insert(tail.begin(), static_cast<char>(ids[ids.size() - back] - kFirstByteId));
  }
  if (tail.empty()) return false;
  if (static_cast<unsigned char>(tail.back()) < 0x80) return true;
  for (size_t length = 2; length <= tail.size(); ++length) {
    const std::string_view character = std::string_view(tail).substr(tail.size() - length);
    if ((static_cast<unsigned char>(character[0]) & 0xC0) == 0xC0 && is_valid_utf8(character)) return true;
  }
  return false;
}

// Streams `ids` and checks every promise of StreamDecoder against Tokenizer::decode.
void expect_stream_matches_decode(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  SCOPED_TRACE(ids_text(ids));
  const std::string full = tokenizer.decode(ids);
  StreamDecoder stream(tokenizer);
  std::string streamed;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string chunk = stream.push(ids[i]);
    // A chunk is whole characters: decode() turns bad bytes into U+FFFD, so its text, and any
    // piece of it cut at character boundaries, is valid UTF-8.
    EXPECT_NO_THROW(validate_utf8(chunk, "chunk")) << "chunk after id #" << i;
    streamed += chunk;
    // Nothing emitted ever changes: what is out so far starts the final text...
    ASSERT_TRUE(full.starts_with(streamed))
        << "after id #" << i << ": streamed \"" << streamed << "\", full \"" << full << "\"";
    // ...and nothing is held back but bytes that may still complete a character.
    if (!is_byte_id(ids[i]) || ends_with_whole_character(ids.first(i + 1))) {
      ASSERT_EQ(streamed, tokenizer.decode(ids.first(i + 1))) << "after id #" << i;
    }
  }
  const std::string rest = stream.finish();
  EXPECT_NO_THROW(validate_utf8(rest, "finish"));
  EXPECT_EQ(streamed + rest, full);
}

// Streams `ids` and returns the chunks, for hand-written cases.
std::vector<std::string> stream_chunks(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  StreamDecoder stream(tokenizer);
  std::vector<std::string> chunks;
  for (const int32_t id : ids) chunks.push_back(stream.push(id));
  chunks.push_back(stream.finish());
  return chunks;
}

// A small Llama-layout vocabulary: <unk>, <s>, </s>, 256 byte pieces, then a few BPE pieces.
std::map<std::string, int32_t> small_llama_vocab() {
  std::map<std::string, int32_t> vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int byte = 0; byte < 256; ++byte) {
    char piece[7];
    std::snprintf(piece, sizeof piece, "<0x%02X>", byte);
    vocab[piece] = byte_id(static_cast<unsigned char>(byte));
  }
  // In rank order, as BPE merges them: the earlier, the sooner.
  const std::vector<std::string> pieces = {"\xE2\x96\x81\xE2\x96\x81",  // "▁▁" (scored -1e9: merged last)
                                           "\xE2\x96\x81t", "he", "\xE2\x96\x81the", "in", "\xE2\x96\x81in",
                                           "\xE2\x96\x81", "t", "h", "e", "i", "n", "a", "b", "\xC3\xA9" /* é */};
  for (const std::string& piece : pieces) vocab[piece] = static_cast<int32_t>(vocab.size());
  return vocab;
}

enum class ExtraWhitespace { kKeep, kRemove };

// With kRemove, the model strips every leading "▁" piece while decoded text is still empty, as
// models with normalizer_spec.remove_extra_whitespaces (like aidreams260K) do.
fs::path write_small_model(const fs::path& dir, ExtraWhitespace extra_whitespace = ExtraWhitespace::kKeep) {
  const fs::path model = dir / "tokenizer.model";
  write_llama2_tokenizer_model(small_llama_vocab(), model);
  if (extra_whitespace == ExtraWhitespace::kRemove) {
    // The writer ends the file with normalizer_spec fields 3, 4, 5 (keys 0x18, 0x20, 0x28), each
    // a one-byte bool: flip remove_extra_whitespaces (field 4) to true.
    std::string bytes = read_file(model);
    EXPECT_EQ(bytes.substr(bytes.size() - 6), std::string("\x18\x01\x20\x00\x28\x01", 6));
    bytes[bytes.size() - 3] = 1;
    write_file(model, bytes);
  }
  return model;
}

// Protobuf wire format, written independently of the engine's writer, for hand-made models that
// exercise what the Llama-2 writer never produces. Field numbers: sentencepiece_model.proto.
namespace proto {

std::string varint(uint64_t value) {
  std::string out;
  for (; value >= 0x80; value >>= 7) out += static_cast<char>((value & 0x7F) | 0x80);
  out += static_cast<char>(value);
  return out;
}
std::string key(uint32_t field, uint32_t wire_type) { return varint((static_cast<uint64_t>(field) << 3) | wire_type); }
std::string integer(uint32_t field, int64_t value) { return key(field, 0) + varint(static_cast<uint64_t>(value)); }
std::string bytes(uint32_t field, std::string_view value) {
  return key(field, 2) + varint(value.size()) + std::string(value);
}
std::string float32(uint32_t field, float value) {
  std::string out = key(field, 5);
  for (int shift = 0; shift < 32; shift += 8) out += static_cast<char>((std::bit_cast<uint32_t>(value) >> shift) & 0xFF);
  return out;
}

}  // namespace proto

// ModelProto.SentencePiece.Type
enum PieceTypeNumber : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct HandMadePiece {
  std::string text;
  float score = 0.0f;
  int type = kNormal;
};

std::string piece_field(const HandMadePiece& piece) {
  return proto::bytes(1, proto::bytes(1, piece.text) + proto::float32(2, piece.score) + proto::integer(3, piece.type));
}

// A ModelProto: `trainer_spec` and `normalizer_spec` hold serialized fields of those messages,
// `appended` more top-level fields after them.
struct HandMadeModel {
  std::vector<HandMadePiece> pieces;
  std::string trainer_spec = proto::integer(3, 2);  // model_type BPE
  std::string normalizer_spec = proto::bytes(1, "identity");
  std::string appended;

  fs::path write(const fs::path& file) const {
    std::string out;
    for (const HandMadePiece& piece : pieces) out += piece_field(piece);
    write_file(file, out + proto::bytes(2, trainer_spec) + proto::bytes(3, normalizer_spec) + appended);
    return file;
  }
};

// Fields no SentencePiece message defines, one of each wire type (and an extension number).
std::string unknown_fields() {
  return proto::integer(99, 7) + proto::key(98, 1) + std::string(8, '\x01') + proto::bytes(201, "extension") +
         proto::float32(97, 1.5f);
}

const std::string kSpaceMark = "\xE2\x96\x81";  // ▁

// <unk>, <s>, </s>, optionally the 256 byte pieces, then pieces for "the", "in", "er", "a" in
// merge order; `space` is how they spell a space, and `suffix` puts it after the word.
std::vector<HandMadePiece> hand_made_pieces(bool byte_pieces, const std::string& space = kSpaceMark,
                                            bool suffix = false) {
  std::vector<HandMadePiece> pieces = {{"<unk>", 0, kUnknown}, {"<s>", 0, kControl}, {"</s>", 0, kControl}};
  if (byte_pieces) {
    for (int byte = 0; byte < 256; ++byte) {
      char text[7];
      std::snprintf(text, sizeof text, "<0x%02X>", byte);
      pieces.push_back({text, 0, kByte});
    }
  }
  const auto spaced = [&](const std::string& word) { return suffix ? word + space : space + word; };
  const std::vector<std::string> merged = {spaced("t"), "he",        spaced("the"), "in",  spaced("in"),
                                           "er",        spaced("a"), space + space, space, "th"};
  float score = -1;
  for (const std::string& text : merged) pieces.push_back({text, score--});
  for (const char* text : {"t", "h", "e", "i", "n", "r", "a", "b", "x", "y", "\xC3\xA9" /* é */}) {
    pieces.push_back({text, score--});
  }
  return pieces;
}

std::string normalizer_flags(bool add_dummy_prefix, bool remove_extra_whitespaces, bool escape_whitespaces = true) {
  return proto::bytes(1, "identity") + proto::integer(3, add_dummy_prefix) + proto::integer(4, remove_extra_whitespaces) +
         proto::integer(5, escape_whitespaces);
}

// Hand-made models for the oracle tests, each covering what the real models do not.
const char* const kNoByteFallback = "no byte fallback";  // unknown characters become <unk>, a run of them one
const char* const kUserDefinedAndUnused = "user-defined and unused pieces";
const char* const kNoDummyPrefix = "no dummy prefix, remove_extra_whitespaces";
const char* const kWhitespaceAsSuffix = "treat_whitespace_as_suffix";
const char* const kUnescapedWhitespace = "escape_whitespaces false";
// Specials renamed, unk_surface empty, a normal piece shadowed by a control piece of the same
// text, unknown fields of every wire type, and specs split over several messages (which merge).
const char* const kOddButValid = "odd but valid";

HandMadeModel hand_made_model(std::string_view name) {
  HandMadeModel model;
  if (name == kNoByteFallback) {
    model.pieces = hand_made_pieces(false);
    model.normalizer_spec = normalizer_flags(true, false);
  } else if (name == kUserDefinedAndUnused) {
    model.pieces = hand_made_pieces(true);
    model.trainer_spec += proto::integer(35, 1);  // byte_fallback
    for (const char* text : {"<mask>", "[SEP]", "xy", "xyz", "a b", "a  b", "e\xE2\x96\x81t"}) {
      model.pieces.push_back({text, 0, kUserDefined});
    }
    for (HandMadePiece& piece : model.pieces) {
      if (piece.text == kSpaceMark + "the" || piece.text == "er" || piece.text == "b") piece.type = kUnused;
    }
    model.normalizer_spec = normalizer_flags(true, true);
  } else if (name == kNoDummyPrefix) {
    model.pieces = hand_made_pieces(true);
    model.trainer_spec += proto::integer(35, 1);
    model.normalizer_spec = normalizer_flags(false, true);
  } else if (name == kWhitespaceAsSuffix) {
    model.pieces = hand_made_pieces(true, kSpaceMark, true);
    model.trainer_spec += proto::integer(35, 1) + proto::integer(24, 1);
    model.normalizer_spec = normalizer_flags(true, false);
  } else if (name == kUnescapedWhitespace) {
    model.pieces = hand_made_pieces(true, " ");
    model.trainer_spec += proto::integer(35, 1);
    model.normalizer_spec = normalizer_flags(true, true, false);
  } else if (name == kOddButValid) {
    model.pieces = hand_made_pieces(true);
    model.pieces[1].text = "<bos>";
    model.pieces[2].text = "<eos>";
    model.pieces.push_back({"<eos>", -100, kNormal});  // decodes as the control piece <eos>
    model.trainer_spec += proto::integer(35, 0) + unknown_fields() + proto::bytes(44, "") + proto::bytes(46, "<bos>");
    model.normalizer_spec = normalizer_flags(true, true) + unknown_fields();
    // A second trainer_spec and normalizer_spec merge into the first (the last value of a field
    // wins: byte_fallback becomes true, remove_extra_whitespaces false), and a piece carries an
    // unknown field.
    model.appended = proto::bytes(2, proto::integer(35, 1) + proto::bytes(47, "<eos>")) +
                     proto::bytes(3, proto::integer(4, 0)) + unknown_fields() +
                     proto::bytes(1, proto::bytes(1, "zz") + unknown_fields() + proto::float32(2, -200));
  } else {
    ADD_FAILURE() << "no hand-made model " << name;
  }
  return model;
}

// ---------------------------------------------------------------------------------------------
// validate_utf8

TEST(Utf8Test, AcceptsValidText) {
  for (const std::string& text : {std::string(), std::string("plain ASCII\n\t"), std::string("\0 nul", 5),
                                 std::string("café"), std::string("€"), std::string("😀"),
                                 std::string("\xC2\x80"),          // U+0080, the smallest two-byte character
                                 std::string("\xED\x9F\xBF"),      // U+D7FF, just below the surrogates
                                 std::string("\xEE\x80\x80"),      // U+E000, just above them
                                 std::string("\xEF\xBF\xBD"),      // U+FFFD
                                 std::string("\xF4\x8F\xBF\xBF")}) {  // U+10FFFF, the last code point
    EXPECT_NO_THROW(validate_utf8(text, "text")) << text;
  }
}

TEST(Utf8Test, RejectsInvalidTextNamingInputAndOffset) {
  struct Case {
    std::string text;
    size_t offset;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"ab\xC0\x80", 2, "overlong"},               // U+0000 in two bytes
      {"\xC1\xBF", 0, "overlong"},                 // U+007F in two bytes
      {"x\xE0\x80\x80", 1, "overlong"},            // three-byte overlong
      {"\xF0\x8F\xBF\xBF", 0, "overlong"},         // U+FFFF in four bytes
      {"ok\xED\xA0\x80", 2, "surrogate"},          // U+D800
      {"\xED\xBF\xBF", 0, "surrogate"},            // U+DFFF
      {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},   // U+110000
      {"\xF7\xBF\xBF\xBF", 0, "above U+10FFFF"},
      {"abc\xE2\x82", 3, "truncated"},             // ends inside a character
      {"\xF0\x9F\x98", 0, "truncated"},
      {"\xE2\x82" "A", 0, "not a continuation"},   // a character cut short by another
      {"a\x80", 1, "unexpected continuation"},     // continuation byte with no lead
      {"ab\xFF", 2, "invalid byte 0xFF"},
      {"\xF8\x88\x80\x80\x80", 0, "invalid byte 0xF8"},  // five-byte forms are not UTF-8
  };
  for (const Case& c : cases) {
    const std::string message = error_message([&] { validate_utf8(c.text, "prompt of request 7"); });
    EXPECT_TRUE(message.starts_with("prompt of request 7 is not valid UTF-8")) << message;
    EXPECT_NE(message.find("byte offset " + std::to_string(c.offset)), std::string::npos) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << message;
  }
}

// Error messages may quote bytes from files and requests; what reaches Triton must be UTF-8.
TEST(Utf8Test, EscapeInvalidWritesEachBadByteAsHexAndKeepsValidText) {
  EXPECT_EQ(utf8::escape_invalid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(utf8::escape_invalid("last read: '\xFF'"), "last read: '\\xFF'");
  EXPECT_EQ(utf8::escape_invalid("\xC0\x80x\xED\xA0\x80\xE2\x82"), "\\xC0\\x80x\\xED\\xA0\\x80\\xE2\\x82");
  EXPECT_EQ(utf8::escape_invalid(""), "");
  for (const std::string text : {"\x80", "ab\xF8\x88", "\xF4\x90\x80\x80 ok"}) {
    EXPECT_NO_THROW(validate_utf8(utf8::escape_invalid(text), "escaped")) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer: loading and errors

TEST(TokenizerTest, AFifoIsRefusedWithoutBlocking) {
  test::TempDir dir;
  const fs::path fifo = dir.path() / "tokenizer.model";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string message = error_message([&] { Tokenizer tokenizer(fifo); });
  EXPECT_NE(message.find(fifo.string()), std::string::npos) << message;
  EXPECT_NE(message.find("is a FIFO, not a regular file"), std::string::npos) << message;
}

TEST(TokenizerTest, MissingFileIsNamedWithHowToFix) {
  const fs::path missing = "/nonexistent/checkpoint/tokenizer.model";
  const std::string message = error_message([&] { Tokenizer tokenizer(missing); });
  EXPECT_NE(message.find("tokenizer not found: " + missing.string()), std::string::npos) << message;
  EXPECT_NE(message.find("next to the checkpoint"), std::string::npos) << message;

  test::TempDir dir;
  const std::string directory_message = error_message([&] { Tokenizer tokenizer(dir.path()); });
  EXPECT_NE(directory_message.find("tokenizer " + dir.path().string() + " is a directory, not a regular file"),
            std::string::npos)
      << directory_message;
}

TEST(TokenizerTest, CorruptFileIsNamed) {
  test::TempDir dir;
  const fs::path garbage = dir.path() / "garbage.model";
  write_file(garbage, "this is not a SentencePiece model\n");
  const fs::path empty = dir.path() / "empty.model";
  write_file(empty, "");
  for (const fs::path& file : {garbage, empty}) {
    const std::string message = error_message([&] { Tokenizer tokenizer(file); });
    EXPECT_NE(message.find("tokenizer " + file.string() + " is not a valid SentencePiece model"), std::string::npos)
        << message;
  }
}

TEST(TokenizerTest, TruncatedRealModelIsNamed) {
  LLM_REQUIRE_SHARED(kLlama2Tokenizer);
  test::TempDir dir;
  const fs::path truncated = dir.path() / "tokenizer.model";
  const std::string whole = read_file(test::shared_dir() / kLlama2Tokenizer);
  // Cut between two pieces (100000 happens to be such a place), inside one, and inside the specs.
  for (const size_t size : {size_t{100000}, size_t{100001}, whole.size() - 30, whole.size() - 1}) {
    write_file(truncated, whole.substr(0, size));
    const std::string message = error_message([&] { Tokenizer tokenizer(truncated); });
    EXPECT_NE(message.find("tokenizer " + truncated.string() + " is not a valid SentencePiece model"),
              std::string::npos)
        << message;
  }
}

TEST(TokenizerTest, UnsupportedModelsAreNamedWithTheFeature) {
  test::TempDir dir;
  const fs::path file = dir.path() / "tokenizer.model";
  const auto expect_unsupported = [&](const HandMadeModel& model, std::string_view feature) {
    const std::string message = error_message([&] { Tokenizer tokenizer(model.write(file)); });
    EXPECT_NE(message.find("tokenizer " + file.string() + " uses "), std::string::npos) << message;
    EXPECT_NE(message.find(feature), std::string::npos) << message;
    EXPECT_NE(message.find("does not support"), std::string::npos) << message;
  };
  HandMadeModel model;
  model.pieces = hand_made_pieces(false);
  for (const auto& [type, name] : {std::pair{1, "UNIGRAM"}, {3, "WORD"}, {4, "CHAR"}}) {
    model.trainer_spec = proto::integer(3, type);
    expect_unsupported(model, std::string("a ") + name + " model");
  }
  model.trainer_spec = {};  // model_type defaults to UNIGRAM
  expect_unsupported(model, "a UNIGRAM model");

  model.trainer_spec = proto::integer(3, 2);
  const std::string charsmap = std::string("\x04\x00\x00\x00", 4) + "trie" + "normalized";
  model.normalizer_spec = proto::bytes(1, "nmt_nfkc") + proto::bytes(2, charsmap);
  expect_unsupported(model, "the normalization rule \"nmt_nfkc\"");
  model.normalizer_spec = normalizer_flags(true, false);
  model.appended = proto::bytes(5, proto::bytes(1, "replace_x") + proto::bytes(2, charsmap));
  expect_unsupported(model, "the denormalization rule \"replace_x\"");
}

TEST(TokenizerTest, MalformedModelsAreNamedWithTheReason) {
  test::TempDir dir;
  const fs::path file = dir.path() / "tokenizer.model";
  const auto expect_invalid = [&](const std::string& bytes, std::string_view reason) {
    write_file(file, bytes);
    const std::string message = error_message([&] { Tokenizer tokenizer(file); });
    EXPECT_NE(message.find("tokenizer " + file.string() + " is not a valid SentencePiece model"), std::string::npos)
        << message;
    EXPECT_NE(message.find(reason), std::string::npos) << message;
  };
  const auto with_pieces = [](std::vector<HandMadePiece> pieces, std::string trainer_spec = proto::integer(3, 2)) {
    std::string bytes;
    for (const HandMadePiece& piece : pieces) bytes += piece_field(piece);
    return bytes + proto::bytes(2, trainer_spec) + proto::bytes(3, normalizer_flags(true, false));
  };
  const std::vector<HandMadePiece> good = hand_made_pieces(false);
  const std::string good_bytes = with_pieces(good);

  // The wire format.
  expect_invalid(good_bytes + proto::integer(1, 5), "ModelProto.pieces (field 1) has wire type 0, expected 2");
  expect_invalid(good_bytes + proto::key(3, 2) + proto::varint(50) + "short", "runs past the end of its message");
  expect_invalid(good_bytes + proto::key(3, 2) + "\xFF", "truncated varint");
  expect_invalid(good_bytes + proto::key(4, 0) + std::string(11, '\xFF'), "varint longer than 10 bytes");
  expect_invalid(good_bytes + proto::key(4, 3), "unsupported wire type 3");
  expect_invalid(good_bytes + proto::key(0, 0) + proto::varint(1), "invalid field number");
  expect_invalid(good_bytes + proto::bytes(1, proto::float32(1, 1.0f)), "SentencePiece.piece (field 1) has wire type 5");
  expect_invalid(good_bytes + proto::bytes(2, proto::integer(3, 9)), "unknown trainer_spec.model_type 9");
  auto pieces = good;
  pieces[5].type = 9;
  expect_invalid(with_pieces(pieces), "piece 5 has unknown type 9");
  // Specs missing, as when a file is cut short between messages.
  expect_invalid(piece_field(good[0]), "it has no trainer_spec; is the file truncated?");
  expect_invalid(piece_field(good[0]) + proto::bytes(2, proto::integer(3, 2)),
                 "it has no normalizer_spec; is the file truncated?");
  // Pieces that SentencePiece refuses to load.
  pieces = good;
  pieces[4].text.clear();
  expect_invalid(with_pieces(pieces), "piece 4 is empty");
  pieces = good;
  pieces[6].text = pieces[5].text;
  expect_invalid(with_pieces(pieces), "pieces 5 and 6 are both");
  pieces = good;
  pieces[0].type = kNormal;
  expect_invalid(with_pieces(pieces), "no piece of type UNKNOWN");
  pieces = good;
  pieces[1].type = kUnknown;
  expect_invalid(with_pieces(pieces), "pieces 0 and 1 are both of type UNKNOWN");
  pieces = good;
  pieces.push_back({"<0x41>", 0, kByte});
  expect_invalid(with_pieces(pieces), "byte_fallback is false");
  expect_invalid(with_pieces(pieces, proto::integer(3, 2) + proto::integer(35, 1)), "no byte piece <0x00>");
  pieces.back().text = "<0x4a>";
  expect_invalid(with_pieces(pieces, proto::integer(3, 2) + proto::integer(35, 1)), "not <0xNN>");
  pieces = good;
  pieces[7].text = "\xC3";
  expect_invalid(with_pieces(pieces), "piece 7 is not valid UTF-8");
  expect_invalid(with_pieces(good, proto::integer(3, 2) + proto::bytes(44, "\xFF")),
                 "trainer_spec.unk_surface is not valid UTF-8");
}

TEST(TokenizerTest, EncodeRejectsInvalidUtf8WithOffset) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path()));
  const std::string message = error_message([&] { tokenizer.encode("the \xE2\x82 end"); });
  EXPECT_NE(message.find("text to encode is not valid UTF-8"), std::string::npos) << message;
  EXPECT_NE(message.find("byte offset 4"), std::string::npos) << message;
}

TEST(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path()));
  const std::vector<int32_t> too_big = {1, tokenizer.vocab_size()};
  std::string message = error_message([&] { tokenizer.decode(too_big); });
  EXPECT_NE(message.find("token id " + std::to_string(tokenizer.vocab_size()) + " is outside the vocabulary"),
            std::string::npos)
      << message;
  const std::vector<int32_t> negative = {-1};
  message = error_message([&] { tokenizer.decode(negative); });
  EXPECT_NE(message.find("token id -1"), std::string::npos) << message;
  StreamDecoder stream(tokenizer);
  message = error_message([&] { stream.push(-5); });
  EXPECT_NE(message.find("token id -5"), std::string::npos) << message;
}

TEST(TokenizerTest, MovedTokenizerStillWorks) {
  test::TempDir dir;
  Tokenizer original(write_small_model(dir.path()));
  Tokenizer moved(std::move(original));
  EXPECT_EQ(moved.encode("the"), (std::vector<int32_t>{1, 262}));
  Tokenizer assigned(write_small_model(dir.path()));
  assigned = std::move(moved);
  EXPECT_EQ(assigned.decode(std::vector<int32_t>{1, 262}), "the");
}

// ---------------------------------------------------------------------------------------------
// Tokenizer: ids as Hugging Face LlamaTokenizer gives them

TEST(TokenizerTest, ReferencePromptIdsAndTexts) {
  LLM_REQUIRE_SHARED("reference");
  size_t checked_files = 0;
  for (const auto& entry : fs::directory_iterator(test::shared_dir() / "reference")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const auto reference = nlohmann::json::parse(read_file(entry.path()));
    const Tokenizer tokenizer(test::shared_dir() / reference.at("model").get<std::string>() / "tokenizer.model");
    for (const auto& test_case : reference.at("cases")) {
      const auto prompt = test_case.at("prompt").get<std::string>();
      SCOPED_TRACE(prompt);
      const auto prompt_ids = test_case.at("prompt_ids").get<std::vector<int32_t>>();
      EXPECT_EQ(tokenizer.encode(prompt), prompt_ids);
      EXPECT_EQ(tokenizer.decode(prompt_ids), prompt);
      const auto generated_ids = test_case.at("generated_ids").get<std::vector<int32_t>>();
      EXPECT_EQ(tokenizer.decode(generated_ids), test_case.at("text").get<std::string>());
      expect_stream_matches_decode(tokenizer, generated_ids);
    }
    ++checked_files;
  }
  EXPECT_GE(checked_files, 2u) << "expected at least the aidreams260K and shakespeare-llama references";
}

TEST(TokenizerTest, BothReferenceTokenizersLoad) {
  LLM_REQUIRE_SHARED(kAidreamsTokenizer);
  LLM_REQUIRE_SHARED(kShakespeareTokenizer);
  const Tokenizer aidreams(test::shared_dir() / kAidreamsTokenizer);
  EXPECT_EQ(aidreams.vocab_size(), 512);
  const Tokenizer shakespeare(test::shared_dir() / kShakespeareTokenizer);
  EXPECT_EQ(shakespeare.vocab_size(), 32000);
  for (const Tokenizer* tokenizer : {&aidreams, &shakespeare}) {
    EXPECT_EQ(tokenizer->bos_id(), 1);
    EXPECT_EQ(tokenizer->eos_id(), 2);
  }
}

TEST(TokenizerTest, Llama2KnownIdsAndBos) {
  LLM_REQUIRE_SHARED(kLlama2Tokenizer);
  const Tokenizer tokenizer(test::shared_dir() / kLlama2Tokenizer);
  EXPECT_EQ(tokenizer.encode("Hello world"), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tokenizer.encode("Hello world", false), (std::vector<int32_t>{15043, 3186}));
  EXPECT_EQ(tokenizer.encode(""), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tokenizer.encode("", false).empty());
  // Newlines fall back to the byte piece <0x0A>; no EOS is appended.
  const auto ids = tokenizer.encode("a\nb");
  EXPECT_NE(std::find(ids.begin(), ids.end(), byte_id('\n')), ids.end()) << ids_text(ids);
  EXPECT_NE(ids.back(), tokenizer.eos_id());
}

// ---------------------------------------------------------------------------------------------
// StreamDecoder

TEST(StreamDecoderTest, HandWrittenCases) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path()));
  const int32_t the = 262, space = 265, bos = 1, eos = 2;
  using Chunks = std::vector<std::string>;
  // Control pieces are invisible, the first piece loses its leading space, later ones keep it.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{bos, the, the, eos}), (Chunks{"", "the", " the", "", ""}));
  // A lone "▁" first decodes to nothing, and the next piece keeps its space.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{space, the}), (Chunks{"", " the", ""}));
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{bos, bos, space, space, the}),
            (Chunks{"", "", "", " ", " the", ""}));
  // "€" as three byte pieces appears whole, with the last of them.
  const std::vector<int32_t> euro = {byte_id(0xE2), byte_id(0x82), byte_id(0xAC)};
  EXPECT_EQ(stream_chunks(tokenizer, euro), (Chunks{"", "", "\xE2\x82\xAC", ""}));
  // A byte piece first keeps the following piece's space.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id('x'), the}), (Chunks{"x", " the", ""}));
  // A truncated character becomes U+FFFD per byte once something else follows...
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id(0xE2), byte_id(0x82), the}),
            (Chunks{"", "", kReplacement + kReplacement + " the", ""}));
  // ...including a control piece, which splits the byte run...
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id(0xE2), eos, byte_id(0x82), byte_id(0xAC)}),
            (Chunks{"", kReplacement, kReplacement, kReplacement, ""}));
  // ...or the end of the stream.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id(0xF0), byte_id(0x9F)}),
            (Chunks{"", "", kReplacement + kReplacement}));
  // Repeated lead bytes never complete: each is released once the next shows it is broken.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id(0xC3), byte_id(0xC3), byte_id(0xC3), byte_id(0xA9)}),
            (Chunks{"", kReplacement, kReplacement, "\xC3\xA9", ""}));
  // Newline byte pieces come out at once.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{the, byte_id('\n'), the}), (Chunks{"the", "\n", " the", ""}));
}

TEST(StreamDecoderTest, FinishStartsANewSequence) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path()));
  StreamDecoder stream(tokenizer);
  EXPECT_EQ(stream.push(262), "the");
  EXPECT_EQ(stream.push(byte_id(0xE2)), "");
  EXPECT_EQ(stream.finish(), kReplacement);
  EXPECT_EQ(stream.push(262), "the");  // first piece of the new sequence: its space is dropped again
  EXPECT_EQ(stream.finish(), "");
}

// Streaming is checked on models with each of SentencePiece's two leading-space behaviours.
const char* const kSmallModel = "small";
const char* const kSmallModelRemovingWhitespace = "small, remove_extra_whitespaces";

class StreamDecoderModelTest : public testing::TestWithParam<std::string> {
 protected:
  // The model under test; empty (after a skip) when it needs ../shared and that is absent.
  fs::path model_file() {
    if (GetParam() == kSmallModel) return write_small_model(dir_.path());
    if (GetParam() == kSmallModelRemovingWhitespace) return write_small_model(dir_.path(), ExtraWhitespace::kRemove);
    if (!fs::exists(test::shared_dir() / GetParam())) return {};
    return test::shared_dir() / GetParam();
  }

 private:
  test::TempDir dir_;
};

TEST_P(StreamDecoderModelTest, RandomSequences) {
  const fs::path file = model_file();
  if (file.empty()) GTEST_SKIP() << "skipped: " << (test::shared_dir() / GetParam()).string() << " is absent";
  const Tokenizer tokenizer(file);
  const PieceKinds kinds(file);
  std::mt19937 rng(20240601);
  for (int sequence = 0; sequence < 3000; ++sequence) {
    expect_stream_matches_decode(tokenizer, random_ids(kinds, rng, 1 + rng() % 30));
    if (HasFatalFailure()) return;
  }
}

// Every sequence of up to 4 ids over an alphabet with one piece of each kind that matters.
TEST_P(StreamDecoderModelTest, AllShortSequences) {
  const fs::path file = model_file();
  if (file.empty()) GTEST_SKIP() << "skipped: " << (test::shared_dir() / GetParam()).string() << " is absent";
  const Tokenizer tokenizer(file);
  const PieceKinds kinds(file);
  std::vector<int32_t> alphabet = {kinds.control.front(), kinds.unknown.front(), kinds.spaced.front(),
                                   kinds.unspaced.front(), kinds.lone_space};
  if (kinds.whitespace_only.front() != kinds.lone_space) alphabet.push_back(kinds.whitespace_only.front());
  for (const unsigned char byte : {0x0A, 0xE2, 0x82, 0xAC, 0xC3, 0xF0, 0x80}) alphabet.push_back(byte_id(byte));
  std::vector<int32_t> ids;
  const auto extend = [&](auto&& self, size_t length) -> void {
    if (!ids.empty()) expect_stream_matches_decode(tokenizer, ids);
    if (length == 4 || HasFatalFailure()) return;
    for (const int32_t id : alphabet) {
      ids.push_back(id);
      self(self, length + 1);
      ids.pop_back();
    }
  };
  extend(extend, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, StreamDecoderModelTest,
                         testing::Values(kSmallModel, kSmallModelRemovingWhitespace, kAidreamsTokenizer,
                                         kLlama2Tokenizer),
                         [](const testing::TestParamInfo<std::string>& info) {
                           if (info.param == kSmallModel) return std::string("SmallWrittenModel");
                           if (info.param == kSmallModelRemovingWhitespace) {
                             return std::string("SmallRemovingWhitespace");
                           }
                           return std::string(info.param == kAidreamsTokenizer ? "Aidreams260K" : "Llama2");
                         });

TEST(StreamDecoderTest, LeadingSpacesOfAModelThatRemovesExtraWhitespace) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path(), ExtraWhitespace::kRemove));
  const int32_t the = 262, space = 265;
  using Chunks = std::vector<std::string>;
  // Every leading "▁" is stripped while the text is empty...
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{space, space, the}), "the");
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{space, space, space, the}), (Chunks{"", "", "", "the", ""}));
  // ...and none once text has come out.
  EXPECT_EQ(stream_chunks(tokenizer, std::vector<int32_t>{byte_id('\n'), space, space, the}),
            (Chunks{"\n", " ", " ", " the", ""}));
}

// A long stream still concatenates exactly (the decoder only ever decodes a small window, so
// its cost per token does not grow with length; timing is for benchmarks, not tests).
TEST(StreamDecoderTest, LongStreamConcatenatesExactly) {
  test::TempDir dir;
  const fs::path model_file = write_small_model(dir.path());
  const Tokenizer tokenizer(model_file);
  const PieceKinds kinds(model_file);
  std::mt19937 rng(7);
  const std::vector<int32_t> ids = random_ids(kinds, rng, 30000);
  StreamDecoder stream(tokenizer);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.finish();
  EXPECT_EQ(streamed, tokenizer.decode(ids));
}

// ---------------------------------------------------------------------------------------------
// The engine's SentencePiece against libsentencepiece, the oracle

// A piece's text with each "▁" spelled as a space, as it appears in input text.
std::string piece_as_text(const std::string& piece) {
  std::string text;  // built anew: in-place replace trips GCC 12's -Wrestrict
  for (size_t i = 0; i < piece.size(); ++i) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      text += ' ';
      i += 2;
    } else {
      text += piece[i];
    }
  }
  return text;
}

// Calls check(text) on texts that exercise encoding, until a check fails: the reference prompts
// and every line (and whole file) of ../shared/data where present, strings chosen to trip
// whitespace and Unicode handling, every piece's own text alone and glued to neighbours, and
// random strings of characters, spaces and pieces.
void for_each_probe_text(const sentencepiece::SentencePieceProcessor& model,
                         const std::function<void(const std::string&)>& check) {
  const auto probe = [&](const std::string& text) {
    if (!testing::Test::HasFailure()) check(text);
  };
  if (fs::exists(test::shared_dir() / "reference")) {
    for (const auto& entry : fs::directory_iterator(test::shared_dir() / "reference")) {
      if (entry.path().extension() != ".json") continue;
      const auto reference = nlohmann::json::parse(read_file(entry.path()));
      for (const auto& test_case : reference.at("cases")) {
        probe(test_case.at("prompt").get<std::string>());
        probe(test_case.at("text").get<std::string>());
      }
    }
  }
  if (fs::exists(test::shared_dir() / "data")) {
    size_t lines = 0;
    for (const auto& entry : fs::directory_iterator(test::shared_dir() / "data")) {
      if (entry.path().extension() != ".txt") continue;
      const std::string text = read_file(entry.path());
      probe(text);
      std::istringstream in(text);
      for (std::string line; std::getline(in, line); ++lines) probe(line);
    }
    EXPECT_GT(lines, 1000u);
  }

  const std::vector<std::string> adversarial = {
      "", " ", "  ", "   ", "                 ", "  two leading", "trailing  ", "a  b   c    d     e",
      "\t", "tab\tseparated\t\tvalues", "\n", "\n\n\n", "line one\nline two\n\nline four\r\n", " \n \n ",
      "Hello world", "hello", "HELLO", "   indented code:\n    def f(x):\n        return x  # comment\n",
      "emoji 😀👍🏽 family 👨\u200D👩\u200D👧", "中文字符，你好世界！", "日本語のテキスト", "한국어",
      "combining: e\u0301 a\u0308 n\u0303 Z\u0338\u0322a\u0337l\u0336g\u0335o",
      "ﬁ ligature, Ａ fullwidth, \u00A0no-break\u00A0space",
      "▁ the piece-space symbol itself ▁▁", " ▁ ", "▁", "▁▁ ▁",
      "<s> </s> <unk> <0x0A> <pad> look like special pieces but are text", "<mask>[SEP]xyz a b xy e▁t",
      "0123456789 3.14159 1,000,000 2024-06-01", "$%^&*()[]{}<>~`|\\/@#", "∀x∈ℝ",
      "zero\u200Bwidth\u200Djoiners", std::string("control \x01\x02\x7F chars"), std::string("nul \0 byte", 10),
      "𝔥𝔢𝔩𝔩𝔬 math letters", "\U0010FFFF last code point, \uFFFD replacement char",
      "the in er a b x y é th", "thethethe inininin", " the  the   the", "€€€ unknown € runs €",
      std::string(1000, 'a'), std::string(300, ' ') + "x", "a" + std::string(40, '\n') + "b",
      std::string(5000, ' '), std::string(2000, 't') + std::string(2000, 'h'),
  };
  for (const std::string& text : adversarial) probe(text);

  std::vector<std::string> piece_texts;
  for (int32_t id = 0; id < model.GetPieceSize(); ++id) {
    if (model.IsByte(id)) continue;
    piece_texts.push_back(piece_as_text(model.IdToPiece(id)));
    probe(piece_texts.back());
    probe("x" + piece_texts.back() + "y");
  }

  std::mt19937 rng(99);
  for (int sequence = 0; sequence < 3000; ++sequence) {
    std::string text;
    for (size_t part = 1 + rng() % 20; part > 0; --part) {
      switch (rng() % 6) {
        case 0:
          text += encode_utf8(random_code_point(rng));
          break;
        case 1:
          text += std::string(1 + rng() % 3, ' ');
          break;
        case 2:
          text += piece_texts[rng() % piece_texts.size()];
          break;
        case 3:
          text += "\n\t\r"[rng() % 3];
          break;
        default:
          text += static_cast<char>(' ' + rng() % 95);
      }
    }
    probe(text);
  }
}

// Calls check(ids) on id sequences that exercise decoding, until a check fails: every id alone,
// random ids, and random_ids() sequences.
void for_each_probe_ids(const PieceKinds& kinds, const std::function<void(std::span<const int32_t>)>& check) {
  const auto probe = [&](std::span<const int32_t> ids) {
    if (!testing::Test::HasFailure()) check(ids);
  };
  for (int32_t id = 0; id < kinds.size; ++id) probe(std::span<const int32_t>(&id, 1));
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> any_id(0, kinds.size - 1);
  for (int sequence = 0; sequence < 2000; ++sequence) {
    std::vector<int32_t> ids(1 + rng() % 40);
    for (int32_t& id : ids) id = any_id(rng);
    probe(ids);
    probe(random_ids(kinds, rng, 1 + rng() % 30));
  }
}

const char* const kLlama2Rewritten = "Llama-2 rewritten by our writer";
const char* const kLlama2FromVocabJson = "Llama-2 from vocab JSON";

fs::path llama2_vocab_json() {
  if (const char* env = std::getenv("LLM_LLAMA2_VOCAB_JSON")) return env;
  return fs::path(LLM_SOURCE_DIR) / "build" / "llama2-vocab.json";
}

// The real Llama-2 pieces, rewritten by the project's writer (so only the scores, types and
// specs come from write_llama2_tokenizer_model).
fs::path write_rewritten_llama2(const fs::path& dir) {
  sentencepiece::SentencePieceProcessor processor;
  EXPECT_TRUE(processor.Load((test::shared_dir() / kLlama2Tokenizer).string()).ok());
  std::map<std::string, int32_t> vocab;
  for (int32_t id = 0; id < processor.GetPieceSize(); ++id) vocab[processor.IdToPiece(id)] = id;
  const fs::path file = dir / "tokenizer.model";
  write_llama2_tokenizer_model(vocab, file);
  return file;
}

class TokenizerOracleTest : public testing::TestWithParam<std::string> {
 protected:
  // The model under test; empty when a file it needs is absent (then named by missing()).
  fs::path model_file() {
    const std::string& name = GetParam();
    if (name == kSmallModel) return write_small_model(dir_.path());
    if (name == kSmallModelRemovingWhitespace) return write_small_model(dir_.path(), ExtraWhitespace::kRemove);
    if (name == kLlama2Rewritten || name == kLlama2FromVocabJson) {
      if (!fs::exists(test::shared_dir() / kLlama2Tokenizer)) return absent(test::shared_dir() / kLlama2Tokenizer);
      if (name == kLlama2Rewritten) return write_rewritten_llama2(dir_.path());
      const fs::path vocab = llama2_vocab_json();
      if (!fs::exists(vocab)) return absent(vocab);
      const fs::path file = dir_.path() / "tokenizer.model";
      write_llama2_tokenizer_model(read_vocab_json(vocab), file);
      return file;
    }
    if (name == kAidreamsTokenizer || name == kLlama2Tokenizer || name == kShakespeareTokenizer) {
      if (!fs::exists(test::shared_dir() / name)) return absent(test::shared_dir() / name);
      return test::shared_dir() / name;
    }
    return hand_made_model(name).write(dir_.path() / "tokenizer.model");
  }
  const fs::path& missing() const { return missing_; }

 private:
  fs::path absent(const fs::path& file) {
    missing_ = file;
    return {};
  }

  fs::path missing_;
  test::TempDir dir_;
};

std::vector<int> as_int(std::span<const int32_t> ids) { return std::vector<int>(ids.begin(), ids.end()); }

TEST_P(TokenizerOracleTest, SameVocabularyAndSpecialIds) {
  const fs::path file = model_file();
  if (file.empty()) GTEST_SKIP() << "skipped: " << missing().string() << " is absent";
  const Tokenizer ours(file);
  sentencepiece::SentencePieceProcessor oracle;
  ASSERT_TRUE(oracle.Load(file.string()).ok());
  EXPECT_EQ(ours.vocab_size(), oracle.GetPieceSize());
  EXPECT_EQ(ours.bos_id(), oracle.bos_id());
  EXPECT_EQ(ours.eos_id(), oracle.eos_id());
}

TEST_P(TokenizerOracleTest, EncodesAsSentencePiece) {
  const fs::path file = model_file();
  if (file.empty()) GTEST_SKIP() << "skipped: " << missing().string() << " is absent";
  const Tokenizer ours(file);
  sentencepiece::SentencePieceProcessor oracle;
  ASSERT_TRUE(oracle.Load(file.string()).ok());
  size_t texts = 0;
  for_each_probe_text(oracle, [&](const std::string& text) {
    ++texts;
    const std::vector<int32_t> ids = ours.encode(text, false);
    ASSERT_EQ(as_int(ids), oracle.EncodeAsIds(text)) << "text: " << testing::PrintToString(text);
    ASSERT_EQ(ours.decode(ids), oracle.DecodeIds(as_int(ids))) << "text: " << testing::PrintToString(text);
  });
  EXPECT_GT(texts, 3000u);
}

TEST_P(TokenizerOracleTest, DecodesAsSentencePiece) {
  const fs::path file = model_file();
  if (file.empty()) GTEST_SKIP() << "skipped: " << missing().string() << " is absent";
  const Tokenizer ours(file);
  sentencepiece::SentencePieceProcessor oracle;
  ASSERT_TRUE(oracle.Load(file.string()).ok());
  for_each_probe_ids(PieceKinds(file), [&](std::span<const int32_t> ids) {
    ASSERT_EQ(ours.decode(ids), oracle.DecodeIds(as_int(ids))) << ids_text(ids);
  });
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerOracleTest,
                         testing::Values(kSmallModel, kSmallModelRemovingWhitespace, kNoByteFallback,
                                         kUserDefinedAndUnused, kNoDummyPrefix, kWhitespaceAsSuffix,
                                         kUnescapedWhitespace, kOddButValid, kAidreamsTokenizer, kLlama2Tokenizer,
                                         kShakespeareTokenizer, kLlama2Rewritten, kLlama2FromVocabJson),
                         [](const testing::TestParamInfo<std::string>& info) {
                           // The name in CamelCase: "no byte fallback" -> "NoByteFallback", and
                           // "models/aidreams260K-hf/tokenizer.model" -> "Aidreams260KHf".
                           const std::string words = info.param.starts_with("models/")
                                                         ? fs::path(info.param).parent_path().filename().string()
                                                         : info.param;
                           std::string name;
                           bool word_start = true;
                           for (const char c : words) {
                             if (std::isalnum(static_cast<unsigned char>(c))) {
                               name += word_start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
                               word_start = false;
                             } else {
                               word_start = true;
                             }
                           }
                           return name;
                         });

// ---------------------------------------------------------------------------------------------
// Writing a Llama-2 tokenizer.model

TEST(SpModelWriterTest, SmallVocabularyEncodesWithBpeAndByteFallback) {
  test::TempDir dir;
  const Tokenizer tokenizer(write_small_model(dir.path()));
  EXPECT_EQ(tokenizer.vocab_size(), 259 + 15);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  // "▁the" is built by merges ▁t + he, then ▁t + he -> ▁the.
  EXPECT_EQ(tokenizer.encode("the"), (std::vector<int32_t>{1, 262}));
  EXPECT_EQ(tokenizer.encode("in the", false), (std::vector<int32_t>{264, 262}));
  // No "▁a" piece: the dummy-prefix space stays alone.
  EXPECT_EQ(tokenizer.encode("ab", false), (std::vector<int32_t>{265, 271, 272}));
  // "▁▁" scores -1e9, so "▁the" wins over merging the two spaces.
  EXPECT_EQ(tokenizer.encode(" the", false), (std::vector<int32_t>{265, 262}));
  // Characters outside the vocabulary fall back to their UTF-8 bytes; é is a piece of its own.
  EXPECT_EQ(tokenizer.encode("\xE2\x82\xAC\xC3\xA9", false),
            (std::vector<int32_t>{265, byte_id(0xE2), byte_id(0x82), byte_id(0xAC), 273}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("the é € in")), "the \xC3\xA9 \xE2\x82\xAC in");
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{0}), " \xE2\x81\x87 ");  // <unk> decodes as " ⁇ "
}

TEST(SpModelWriterTest, RejectsVocabulariesThatAreNotLlama2Shaped) {
  test::TempDir dir;
  const fs::path out = dir.path() / "tokenizer.model";
  const auto expect_error = [&](std::map<std::string, int32_t> vocab, std::string_view expected) {
    const std::string message = error_message([&] { write_llama2_tokenizer_model(vocab, out); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  auto gap = small_llama_vocab();
  gap["he"] = 1000;
  expect_error(gap, "outside 0..");
  auto shared_id = small_llama_vocab();
  shared_id["he"] = 260;
  shared_id["extra"] = 273;  // keeps the size, so the ids repeat instead of leaving a gap
  shared_id.erase("\xC3\xA9");
  expect_error(shared_id, "id 260 is given to both");
  auto swapped = small_llama_vocab();
  std::swap(swapped["<s>"], swapped["</s>"]);
  expect_error(swapped, "id 1 is \"</s>\", expected \"<s>\"");
  auto spaces = small_llama_vocab();
  spaces.erase("\xE2\x96\x81the");
  spaces[" the"] = 262;
  expect_error(spaces, "contains a plain space");
  expect_error({{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}}, "fewer than");

  const fs::path unwritable = dir.path() / "no" / "such" / "dir" / "tokenizer.model";
  const std::string message = error_message([&] { write_llama2_tokenizer_model(small_llama_vocab(), unwritable); });
  EXPECT_NE(message.find("cannot create tokenizer model"), std::string::npos) << message;
}

// Compares a written model with the real Llama-2 tokenizer.model, both through the engine's
// tokenizer: the same ids for every probe text, the same text for every probe id sequence.
void expect_same_as_llama2(const fs::path& written_file) {
  const fs::path real_file = test::shared_dir() / kLlama2Tokenizer;
  const Tokenizer written(written_file);
  const Tokenizer real(real_file);
  ASSERT_EQ(written.vocab_size(), real.vocab_size());
  EXPECT_EQ(written.bos_id(), real.bos_id());
  EXPECT_EQ(written.eos_id(), real.eos_id());
  sentencepiece::SentencePieceProcessor real_pieces;
  ASSERT_TRUE(real_pieces.Load(real_file.string()).ok());
  for_each_probe_text(real_pieces, [&](const std::string& text) {
    ASSERT_EQ(written.encode(text), real.encode(text)) << "text: " << testing::PrintToString(text);
  });
  for_each_probe_ids(PieceKinds(real_file), [&](std::span<const int32_t> ids) {
    ASSERT_EQ(written.decode(ids), real.decode(ids)) << ids_text(ids);
  });
}

// Checks the writer itself, whatever the vocabulary JSON: the pieces are read back from the
// real model, so only the scores, types and specs come from write_llama2_tokenizer_model.
TEST(SpModelWriterTest, RewrittenLlama2PiecesMatchTheRealTokenizer) {
  LLM_REQUIRE_SHARED(kLlama2Tokenizer);
  test::TempDir dir;
  expect_same_as_llama2(write_rewritten_llama2(dir.path()));
}

// The project's own Llama-2 tokenizer: the vocabulary from the npm package, written by us.
TEST(SpModelWriterTest, ModelFromVocabJsonMatchesTheRealTokenizer) {
  LLM_REQUIRE_SHARED(kLlama2Tokenizer);
  const fs::path vocab_file = llama2_vocab_json();
  if (!fs::exists(vocab_file)) {
    GTEST_SKIP() << "skipped: " << vocab_file.string()
                 << " is absent (make it with: npm install && node scripts/export-llama2-vocab.mjs "
                 << vocab_file.string() << ", or point LLM_LLAMA2_VOCAB_JSON at one)";
  }
  test::TempDir dir;
  const fs::path written_file = dir.path() / "tokenizer.model";
  write_llama2_tokenizer_model(read_vocab_json(vocab_file), written_file);
  expect_same_as_llama2(written_file);
}

// ---------------------------------------------------------------------------------------------
// read_vocab_json

TEST(VocabJsonTest, ReadsPieceToIdObject) {
  test::TempDir dir;
  const fs::path file = dir.path() / "vocab.json";
  write_file(file, R"({"<unk>": 0, "\u2581the": 2, "<s>": 1})");
  const auto vocab = read_vocab_json(file);
  EXPECT_EQ(vocab, (std::map<std::string, int32_t>{{"<unk>", 0}, {"<s>", 1}, {"\xE2\x96\x81the", 2}}));
}

TEST(VocabJsonTest, RejectsBadFilesNamingThem) {
  test::TempDir dir;
  const fs::path file = dir.path() / "vocab.json";
  const auto expect_error = [&](std::string_view content, std::string_view expected) {
    write_file(file, content);
    const std::string message = error_message([&] { read_vocab_json(file); });
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  expect_error(R"({"a": 0,)", "not valid JSON");
  expect_error(R"(["a", "b"])", "must hold a JSON object");
  expect_error("{}", "holds no pieces");
  expect_error(R"({"a": 0, "b": "1"})", "the id of piece \"b\" is \"1\"");
  expect_error(R"({"a": 0, "b": 1.5})", "not a non-negative 32-bit integer");
  expect_error(R"({"a": 0, "b": -1})", "not a non-negative 32-bit integer");
  expect_error(R"({"a": 0, "b": 4294967296})", "not a non-negative 32-bit integer");
  expect_error(R"({"a": 0, "b": 2})", "piece \"b\" has id 2, outside 0..1");
  expect_error(R"({"a": 1, "b": 1})", "id 1 is given to both");

  const fs::path missing = dir.path() / "missing.json";
  const std::string message = error_message([&] { read_vocab_json(missing); });
  EXPECT_NE(message.find("vocabulary file not found: " + missing.string()), std::string::npos) << message;
  EXPECT_NE(message.find("export-llama2-vocab.mjs"), std::string::npos) << message;
}

}  // namespace
}  // namespace llm
