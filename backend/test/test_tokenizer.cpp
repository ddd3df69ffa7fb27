#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

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

// The ids of a SentencePiece model sorted by what kind of piece they are, to draw test sequences.
struct PieceKinds {
  std::vector<int32_t> control;
  std::vector<int32_t> unknown;
  std::vector<int32_t> whitespace_only;  // "▁", "▁▁", ...
  std::vector<int32_t> spaced;           // other pieces that start with "▁"
  std::vector<int32_t> unspaced;         // the rest
  int32_t lone_space = -1;               // "▁"
  int32_t size = 0;

  explicit PieceKinds(const fs::path& model_file) {
    sentencepiece::SentencePieceProcessor processor;
    EXPECT_TRUE(processor.Load(model_file.string()).ok()) << model_file;
    size = processor.GetPieceSize();
    for (int32_t id = 0; id < size; ++id) {
      if (processor.IsControl(id)) {
        control.push_back(id);
      } else if (processor.IsUnknown(id)) {
        unknown.push_back(id);
      } else if (processor.IsByte(id)) {
        char expected[7];  // the generator below spells byte b as id kFirstByteId + b
        std::snprintf(expected, sizeof expected, "<0x%02X>", id - kFirstByteId);
        EXPECT_EQ(processor.IdToPiece(id), expected);
      } else {
        const std::string& piece = processor.IdToPiece(id);
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
  const auto pick = [&](const std::vector<int32_t>& from) { return from[rng() % from.size()]; };
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
      for (const char byte : encode_utf8(random_code_point(rng))) {
        ids.push_back(byte_id(static_cast<unsigned char>(byte)));
      }
    } else if (roll < 73) {
      const std::string bytes = encode_utf8(random_code_point(rng));
      for (size_t i = 0; i + 1 < bytes.size() && (i == 0 || rng() % 2); ++i) {
        ids.push_back(byte_id(static_cast<unsigned char>(bytes[i])));
      }
    } else if (roll < 77) {
      const std::string bytes = encode_utf8(random_code_point(rng));
      ids.push_back(byte_id(static_cast<unsigned char>(bytes[0])));
      ids.push_back(pick(kinds.control));
      for (size_t i = 1; i < bytes.size(); ++i) ids.push_back(byte_id(static_cast<unsigned char>(bytes[i])));
    } else if (roll < 87) {
      ids.push_back(byte_id(static_cast<unsigned char>(rng() % 256)));
    } else if (roll < 92) {
      ids.push_back(byte_id('\n'));
    } else if (roll < 95) {
      ids.push_back(byte_id(static_cast<unsigned char>(' ' + rng() % 95)));
    } else {
      ids.push_back(static_cast<int32_t>(rng() % kinds.size));
    }
  }
  return ids;
}

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

// ---------------------------------------------------------------------------------------------
// Tokenizer: loading and errors

TEST(TokenizerTest, MissingFileIsNamedWithHowToFix) {
  const fs::path missing = "/nonexistent/checkpoint/tokenizer.model";
  const std::string message = error_message([&] { Tokenizer tokenizer(missing); });
  EXPECT_NE(message.find("tokenizer not found: " + missing.string()), std::string::npos) << message;
  EXPECT_NE(message.find("next to the checkpoint"), std::string::npos) << message;

  test::TempDir dir;
  const std::string directory_message = error_message([&] { Tokenizer tokenizer(dir.path()); });
  EXPECT_NE(directory_message.find("tokenizer not found: " + dir.path().string()), std::string::npos)
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
  write_file(truncated, read_file(test::shared_dir() / kLlama2Tokenizer).substr(0, 100000));
  const std::string message = error_message([&] { Tokenizer tokenizer(truncated); });
  EXPECT_NE(message.find(truncated.string()), std::string::npos) << message;
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

// Compares a written model with the real Llama-2 tokenizer.model: encoding of real text, of
// strings chosen to trip whitespace and Unicode handling, of every piece's own text, and
// decoding of random ids.
void expect_same_as_llama2(const Tokenizer& written, const Tokenizer& real) {
  ASSERT_EQ(written.vocab_size(), real.vocab_size());
  EXPECT_EQ(written.bos_id(), real.bos_id());
  EXPECT_EQ(written.eos_id(), real.eos_id());
  const auto expect_same_encoding = [&](const std::string& text) {
    EXPECT_EQ(written.encode(text), real.encode(text)) << "text: \"" << text << "\"";
  };

  size_t lines = 0;
  for (const auto& entry : fs::directory_iterator(test::shared_dir() / "data")) {
    if (entry.path().extension() != ".txt") continue;
    const std::string text = read_file(entry.path());
    expect_same_encoding(text);
    std::istringstream in(text);
    for (std::string line; std::getline(in, line); ++lines) expect_same_encoding(line);
  }
  EXPECT_GT(lines, 1000u);

  const std::vector<std::string> adversarial = {
      "", " ", "  ", "   ", "                 ", "  two leading", "trailing  ", "a  b   c    d     e",
      "\t", "tab\tseparated\t\tvalues", "\n", "\n\n\n", "line one\nline two\n\nline four\r\n", " \n \n ",
      "Hello world", "hello", "HELLO", "   indented code:\n    def f(x):\n        return x  # comment\n",
      "emoji 😀👍🏽 family 👨\u200D👩\u200D👧", "中文字符，你好世界！", "日本語のテキスト", "한국어",
      "combining: e\u0301 a\u0308 n\u0303 Z\u0338\u0322a\u0337l\u0336g\u0335o",
      "ﬁ ligature, Ａ fullwidth, \u00A0no-break\u00A0space",
      "▁ the piece-space symbol itself ▁▁",
      "<s> </s> <unk> <0x0A> <pad> look like special pieces but are text",
      "0123456789 3.14159 1,000,000 2024-06-01", "$%^&*()[]{}<>~`|\\/@#", "∀x∈ℝ",
      "zero\u200Bwidth\u200Djoiners", std::string("control \x01\x02\x7F chars"), std::string("nul \0 byte", 10),
      "𝔥𝔢𝔩𝔩𝔬 math letters",
      "\U0010FFFF last code point, \uFFFD replacement char",
      std::string(1000, 'a'), std::string(300, ' ') + "x", "a" + std::string(40, '\n') + "b",
  };
  for (const std::string& text : adversarial) expect_same_encoding(text);

  // Every piece's own text, alone and glued to neighbours.
  sentencepiece::SentencePieceProcessor real_pieces;
  ASSERT_TRUE(real_pieces.Load(real.path().string()).ok());
  for (int32_t id = 259; id < real.vocab_size(); ++id) {
    // The piece with each "▁" spelled as a space (built anew: in-place replace trips GCC 12's -Wrestrict).
    const std::string piece = real_pieces.IdToPiece(id);
    std::string text;
    for (size_t i = 0; i < piece.size(); ++i) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
        text += ' ';
        i += 2;
      } else {
        text += piece[i];
      }
    }
    expect_same_encoding(text);
    expect_same_encoding("x" + text + "y");
  }

  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> any_id(0, real.vocab_size() - 1);
  for (int sequence = 0; sequence < 2000; ++sequence) {
    std::vector<int32_t> ids(1 + rng() % 40);
    for (int32_t& id : ids) id = any_id(rng);
    EXPECT_EQ(written.decode(ids), real.decode(ids)) << ids_text(ids);
    std::string random_text;
    for (size_t i = 0; i < 1 + rng() % 20; ++i) {
      random_text += rng() % 3 == 0 ? encode_utf8(random_code_point(rng))
                                    : std::string(1, static_cast<char>(' ' + rng() % 95));
    }
    expect_same_encoding(random_text);
  }
}

// Checks the writer itself, whatever the vocabulary JSON: the pieces are read back from the
// real model, so only the scores, types and specs come from write_llama2_tokenizer_model.
TEST(SpModelWriterTest, RewrittenLlama2PiecesMatchTheRealTokenizer) {
  LLM_REQUIRE_SHARED(kLlama2Tokenizer);
  const fs::path real_file = test::shared_dir() / kLlama2Tokenizer;
  sentencepiece::SentencePieceProcessor processor;
  ASSERT_TRUE(processor.Load(real_file.string()).ok());
  std::map<std::string, int32_t> vocab;
  for (int32_t id = 0; id < processor.GetPieceSize(); ++id) vocab[processor.IdToPiece(id)] = id;
  test::TempDir dir;
  const fs::path written_file = dir.path() / "tokenizer.model";
  write_llama2_tokenizer_model(vocab, written_file);
  expect_same_as_llama2(Tokenizer(written_file), Tokenizer(real_file));
}

fs::path llama2_vocab_json() {
  if (const char* env = std::getenv("LLM_LLAMA2_VOCAB_JSON")) return env;
  return fs::path(LLM_SOURCE_DIR) / "build" / "llama2-vocab.json";
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
  expect_same_as_llama2(Tokenizer(written_file), Tokenizer(test::shared_dir() / kLlama2Tokenizer));
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
