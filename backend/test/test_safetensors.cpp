#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "test_util.h"

namespace llm {
namespace {

using test::TempDir;

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string with_header(const std::string& header, const std::string& data) {
  const uint64_t len = header.size();
  std::string out(reinterpret_cast<const char*>(&len), 8);
  return out + header + data;
}

// Expects an Error whose message contains every fragment.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& fragment : fragments) EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripKeepsNamesShapesAndBytes) {
  TempDir dir;
  const auto path = dir.path() / "t.safetensors";
  SafetensorsWriter writer;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const std::vector<uint16_t> b = {1, 2, 3};
  writer.add_copy("a.weight", DType::F32, {2, 3}, {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4});
  writer.add_copy("b", DType::F16, {3}, {reinterpret_cast<const uint8_t*>(b.data()), b.size() * 2});
  writer.set_metadata("format", "pt");
  writer.write(path);

  const SafetensorsFile file(path);
  EXPECT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& ta = file.get("a.weight", {2, 3});
  EXPECT_EQ(ta.dtype, DType::F32);
  EXPECT_EQ(std::memcmp(ta.bytes.data(), a.data(), 24), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta.bytes.data()) % 8, 0u) << "tensor data should be 8-byte aligned";
  const auto& tb = file.get("b");
  EXPECT_EQ(tb.shape, std::vector<size_t>{3});
  EXPECT_EQ(std::memcmp(tb.bytes.data(), b.data(), 6), 0);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "t.safetensors.partial"));
}

TEST(Safetensors, TruncatedFileNamesTheFile) {
  TempDir dir;
  const auto path = dir.path() / "short.safetensors";
  write_bytes(path, "abc");
  expect_error([&] { SafetensorsFile f(path); }, {path.string(), "truncated"});
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  TempDir dir;
  const auto path = dir.path() / "h.safetensors";
  std::string bytes = with_header("{}", "");
  const uint64_t huge = 1 << 20;
  std::memcpy(bytes.data(), &huge, 8);
  write_bytes(path, bytes);
  expect_error([&] { SafetensorsFile f(path); }, {path.string(), "header length 1048576", "beyond the end"});
}

TEST(Safetensors, DataCutShortNamesTheTensor) {
  TempDir dir;
  const auto path = dir.path() / "cut.safetensors";
  write_bytes(path, with_header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')));
  expect_error([&] { SafetensorsFile f(path); }, {"tensor w", "truncated"});
}

TEST(Safetensors, UnknownDtype) {
  TempDir dir;
  const auto path = dir.path() / "d.safetensors";
  write_bytes(path, with_header(R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", std::string(1, '\0')));
  expect_error([&] { SafetensorsFile f(path); }, {"tensor w", "unsupported dtype \"F8_E9\""});
}

TEST(Safetensors, ShapeInconsistentWithBytes) {
  TempDir dir;
  const auto path = dir.path() / "s.safetensors";
  write_bytes(path, with_header(R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_error([&] { SafetensorsFile f(path); }, {"tensor w", "do not match dtype F16 and shape [3]"});
}

TEST(Safetensors, OverlappingTensorsAndOverflowingShapesAreRefused) {
  TempDir dir;
  const auto path = dir.path() / "o.safetensors";
  write_bytes(path, with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                std::string(12, '\0')));
  expect_error([&] { SafetensorsFile f(path); }, {path.string(), "tensors a and b overlap"});
  // 2^62 elements of 8 bytes: the byte count wraps to 0, which would match empty offsets.
  write_bytes(path, with_header(R"({"a":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""));
  expect_error([&] { SafetensorsFile f(path); }, {"tensor a: shape overflows"});
}

TEST(Safetensors, NotJsonHeader) {
  TempDir dir;
  const auto path = dir.path() / "j.safetensors";
  write_bytes(path, with_header("{not json", ""));
  expect_error([&] { SafetensorsFile f(path); }, {path.string(), "not valid JSON"});
}

TEST(Safetensors, MissingTensorAndShapeMismatch) {
  TempDir dir;
  const auto path = dir.path() / "m.safetensors";
  SafetensorsWriter writer;
  const std::vector<float> a(6, 1.0f);
  writer.add_copy("a", DType::F32, {2, 3}, {reinterpret_cast<const uint8_t*>(a.data()), 24});
  writer.write(path);
  const SafetensorsFile file(path);
  expect_error([&] { file.get("lm_head.weight"); }, {"tensor lm_head.weight is missing from", path.string()});
  expect_error([&] { file.get("a", {3, 2}); }, {"tensor a has shape [2, 3], expected [3, 2]"});
}

TEST(Safetensors, MissingFile) {
  expect_error([] { SafetensorsFile f("/nonexistent/x.safetensors"); }, {"cannot open /nonexistent/x.safetensors"});
}

// A FIFO (or a hung mount) where a file should be must not block the model's load forever: files
// are opened without blocking and refused unless regular.
TEST(Safetensors, FilesThatAreNotRegularAreRefusedWithoutBlocking) {
  TempDir dir;
  const auto fifo = dir.path() / "config.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { read_json_file(fifo); }, {"JSON file " + fifo.string() + " is a FIFO, not a regular file"});
  expect_error([&] { SafetensorsFile f(fifo); }, {fifo.string() + " is a FIFO, not a regular file"});
  expect_error([&] { ModelConfig::load(dir.path()); }, {fifo.string(), "is a FIFO"});
  expect_error([&] { read_json_file(dir.path()); }, {"is a directory, not a regular file"});
  const auto big = dir.path() / "big.json";
  write_bytes(big, std::string((64u << 20) + 1, ' '));
  expect_error([&] { read_json_file(big); }, {big.string(), "is 67108865 bytes, more than the 67108864"});
}

TEST(ModelConfig, RejectsUnknownArchitectureAndMissingFields) {
  nlohmann::json j = ModelConfig{}.to_json();
  j["vocab_size"] = 10;
  j["hidden_size"] = 8;
  j["num_hidden_layers"] = 1;
  j["num_attention_heads"] = 2;
  j["num_key_value_heads"] = 2;
  j["head_size"] = 4;
  j["intermediate_size"] = 16;
  j["max_position_embeddings"] = 32;
  EXPECT_NO_THROW(ModelConfig::from_json(j, "config.json"));

  auto bad = j;
  bad["hidden_size"] = 1'000'000'000'000;
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); },
               {"cfg.json: field \"hidden_size\" is 1000000000000, implausibly large (at most 131072"});
  bad = j;
  bad["max_position_embeddings"] = int64_t{1} << 40;
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"\"max_position_embeddings\" is 1099511627776"});
  bad = j;
  bad["vocab_size"] = 0;
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"\"vocab_size\" must be positive, got 0"});
  bad = j;
  bad["architecture"] = "GPT2LMHeadModel";
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"cfg.json", "unsupported architecture \"GPT2LMHeadModel\""});
  bad = j;
  bad.erase("hidden_size");
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"missing field \"hidden_size\""});
  bad = j;
  bad["attn_bias"] = 32;  // found by fuzz_checkpoint_config: a non-boolean flag escaped as a JSON library error
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"cfg.json: field \"attn_bias\" must be true or false, got 32"});
  bad = j;
  bad["share_embedding_table"] = "yes";
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"field \"share_embedding_table\" must be true or false"});
  bad = j;
  bad["num_key_value_heads"] = 3;
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"multiple of num_key_value_heads"});
  bad = j;
  bad["mapping"]["tp_size"] = 2;
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"mapping.tp_size", "single-rank"});
  bad = j;
  bad["dtype"] = "int4";
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"field \"dtype\""});
  bad = j;
  bad["quantization"]["quant_algo"] = "FP8";
  expect_error([&] { ModelConfig::from_json(bad, "cfg.json"); }, {"quant_algo \"FP8\""});
}

}  // namespace
}  // namespace llm
