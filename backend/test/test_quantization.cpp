// Quantized checkpoints: the quantizer's rounding, loading W8A16 / W4A16_AWQ checkpoints (the
// project's own and AutoAWQ's GEMM layout through the converter) against double-precision
// references over the dequantised weights, and AWQ against round-to-nearest on a trained model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/hf_convert.h"
#include "checkpoint/model_config.h"
#include "checkpoint/quantized_format.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "common/half.h"
#include "common/thread_pool.h"
#include "engine/cpu/llama_model.h"
#include "quantization/evaluate.h"
#include "quantization/quantize.h"
#include "test_util.h"
#include "tiny_hf_model.h"
#include "tokenizer/tokenizer.h"

namespace llm {
namespace {

using test::TempDir;
using test::all_logits;
using test::relative_error;
using test::TinyHfModel;

const std::vector<int> kTokens = {1, 17, 42, 5, 63, 8, 30, 2, 11, 50};

// ---- The quantizer's rounding ----

TEST(QuantizeRows, Int8IsSymmetricPerRowWithinHalfAStep) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<float> w(257);
  for (float& v : w) v = dist(rng);
  w[100] = -4.5f;  // the largest magnitude takes code -127
  std::vector<int8_t> codes(w.size());
  const float scale = fp16_to_f32(quantize_int8_row(w.data(), w.size(), codes.data()));
  EXPECT_NEAR(scale, 4.5f / 127.0f, 1e-5);
  EXPECT_EQ(codes[100], -127);
  for (size_t c = 0; c < w.size(); ++c) ASSERT_LE(std::fabs(codes[c] * scale - w[c]), scale / 2 + 1e-6) << c;

  std::vector<float> zeros(8, 0.0f);
  std::vector<int8_t> zero_codes(8, 1);
  EXPECT_GT(fp16_to_f32(quantize_int8_row(zeros.data(), 8, zero_codes.data())), 0.0f);
  for (int8_t code : zero_codes) EXPECT_EQ(code, 0);
}

TEST(QuantizeRows, Int4GroupsRoundToNearestAndPadWithZeroWeights) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const size_t cols = 70, group = 32, padded = 128;  // rows are stored in blocks of 128 columns
  std::vector<float> w(cols);
  for (float& v : w) v = dist(rng);
  std::vector<uint8_t> codes(padded, 0xFF);
  std::vector<uint16_t> scales(3);
  quantize_int4_row(w.data(), cols, group, nullptr, codes.data(), scales.data());
  for (size_t g = 0; g < 3; ++g) {
    float max_abs = 0.0f;
    for (size_t c = g * group; c < std::min(cols, (g + 1) * group); ++c) max_abs = std::max(max_abs, std::fabs(w[c]));
    EXPECT_NEAR(fp16_to_f32(scales[g]), max_abs / 7.0f, 1e-3 * max_abs) << "group " << g;
  }
  for (size_t c = 0; c < padded; ++c) {
    ASSERT_LE(codes[c], 15) << c;
    if (c >= cols) {
      EXPECT_EQ(codes[c], kernels::kInt4SymmetricZero) << "padding column " << c << " must dequantise to 0";
      continue;
    }
    const float scale = fp16_to_f32(scales[c / group]);
    ASSERT_LE(std::fabs((codes[c] - 8.0f) * scale - w[c]), scale / 2 + 1e-6) << c;
  }

  // A clip ratio shrinks the range: the largest weights saturate at code 15 (q = 7).
  const std::vector<float> clip = {0.5f, 1.0f, 1.0f};
  quantize_int4_row(w.data(), cols, group, clip.data(), codes.data(), scales.data());
  float max_abs = 0.0f;
  for (size_t c = 0; c < group; ++c) max_abs = std::max(max_abs, std::fabs(w[c]));
  EXPECT_NEAR(fp16_to_f32(scales[0]), 0.5f * max_abs / 7.0f, 1e-3 * max_abs);
}

// The AWQ search picks scales and clips by simulating the quantizer: the simulation must be the
// quantizer's arithmetic, ties included, or the search optimises codes that are never written.
TEST(QuantizeRows, AwqSimulationIsExactlyWhatTheQuantizerWrites) {
  ThreadPool pool(2);
  std::mt19937 rng(3);
  const size_t rows = 64, cols = 96, group = 32, groups = cols / group;
  std::uniform_real_distribution<float> unit(0.01f, 1.0f);
  std::uniform_int_distribution<int> code(-8, 6);
  const std::vector<float> ones(cols, 1.0f);

  // Weights at exact ties: each group's largest weight is 7 * scale (so its fp16 scale is exactly
  // `scale`), the others (k + 1/2) * scale, which round to even in w / scale.
  std::vector<float> ties(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < groups; ++g) {
      const float scale = fp16_to_f32(f32_to_fp16(unit(rng)));
      for (size_t c = g * group; c < (g + 1) * group; ++c) {
        ties[r * cols + c] = c == g * group ? 7.0f * scale : (static_cast<float>(code(rng)) + 0.5f) * scale;
      }
    }
  }
  // Ordinary weights, with per-column scales and clip ratios from the search's grid.
  std::vector<float> w(rows * cols), s(cols), clip(rows * groups);
  for (float& v : w) v = unit(rng) * (rng() % 2 == 0 ? 1.0f : -1.0f);
  for (float& v : s) v = 0.25f + unit(rng);
  for (float& v : clip) v = 1.0f - 0.025f * static_cast<float>(rng() % 20);

  struct Case {
    const std::vector<float>& weights;
    const std::vector<float>& column_scales;
    std::vector<float> clips;
  };
  for (const Case& each : {Case{ties, ones, {}}, Case{w, s, clip}}) {
    const std::vector<float>& clips = each.clips;
    const std::vector<float> simulated =
        simulate_int4_quantization(pool, each.weights, rows, cols, group, each.column_scales, clips);
    std::vector<float> scaled(cols);
    std::vector<uint8_t> codes(quantized_format::int4_padded_columns(cols, group));
    std::vector<uint16_t> scales(groups);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) scaled[c] = each.weights[r * cols + c] * each.column_scales[c];
      quantize_int4_row(scaled.data(), cols, group, clips.empty() ? nullptr : clips.data() + r * groups, codes.data(),
                        scales.data());
      for (size_t c = 0; c < cols; ++c) {
        const float pre_quant_scale = fp16_to_f32(f32_to_fp16(1.0f / each.column_scales[c]));
        const float written = (static_cast<float>(codes[c]) - 8.0f) * fp16_to_f32(scales[c / group]) * pre_quant_scale;
        ASSERT_EQ(simulated[r * cols + c], written) << "row " << r << " column " << c;
      }
    }
  }
}

TEST(QuantizedFormat, PacksSixteenWordsPerBlockWithColumnsSixteenApartInEachWord) {
  std::vector<uint8_t> codes(256);
  for (size_t c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>((c * 7 + c / 16) % 16);
  std::vector<uint8_t> packed(128);
  quantized_format::pack_int4_row(codes.data(), 256, packed.data());
  for (size_t block = 0; block < 2; ++block) {
    for (size_t i = 0; i < 16; ++i) {
      const uint32_t word = packed[block * 64 + 4 * i] | packed[block * 64 + 4 * i + 1] << 8 |
                            packed[block * 64 + 4 * i + 2] << 16 | static_cast<uint32_t>(packed[block * 64 + 4 * i + 3]) << 24;
      for (size_t k = 0; k < 8; ++k) ASSERT_EQ((word >> (4 * k)) & 0xF, codes[block * 128 + i + 16 * k]) << i << "," << k;
    }
  }
  for (size_t c = 0; c < 256; ++c) ASSERT_EQ(kernels::int4_code(packed.data(), c), codes[c]) << c;
}

// ---- Loading quantized checkpoints ----

// The float weights a quantized checkpoint stands for, decoded by the test from the format
// described in checkpoint/quantized_format.h.
std::vector<float> dequantised(const SafetensorsFile& file, const ModelConfig& config, const std::string& module,
                               size_t rows, size_t cols) {
  std::vector<float> out(rows * cols);
  const TensorView& weight = file.get(module + ".weight");
  const auto element = [](const TensorView& t, size_t i) {
    float value;
    if (t.dtype == DType::F16) return fp16_to_f32(reinterpret_cast<const uint16_t*>(t.bytes.data())[i]);
    std::memcpy(&value, t.bytes.data() + i * 4, 4);
    return value;
  };
  if (config.quantization.algo == QuantAlgo::W8A16) {
    const TensorView& scales = file.get(module + ".per_channel_scale");
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c)
        out[r * cols + c] = static_cast<float>(static_cast<int8_t>(weight.bytes[r * cols + c])) * element(scales, r);
    return out;
  }
  const size_t group = static_cast<size_t>(config.quantization.group_size);
  const size_t padded = quantized_format::int4_padded_columns(cols, group);
  const size_t groups = (cols + group - 1) / group;
  const TensorView& scales = file.get(module + ".weights_scaling_factor");
  const TensorView* zeros = config.quantization.has_zero_point ? &file.get(module + ".zero") : nullptr;
  const TensorView* pre = config.quantization.pre_quant_scale ? &file.get(module + ".prequant_scaling_factor") : nullptr;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      // 128-column blocks of 16 little-endian words; word i holds column i + 16k in nibble k.
      const size_t word = c % 16, nibble = c % 128 / 16;
      const uint8_t byte = weight.bytes[r * padded / 2 + c / 128 * 64 + word * 4 + nibble / 2];
      const int code = nibble % 2 == 0 ? byte & 0xF : byte >> 4;
      const size_t g = r * groups + c / group;
      const int zero = zeros != nullptr ? zeros->bytes[g] : 8;
      out[r * cols + c] = static_cast<float>(code - zero) * element(scales, g) * (pre ? element(*pre, c) : 1.0f);
    }
  }
  return out;
}

// Replaces hf's linear weights with those a TensorRT-LLM-layout quantized checkpoint stands for.
void load_dequantised_into(TinyHfModel& hf, const std::filesystem::path& checkpoint) {
  const ModelConfig config = ModelConfig::load(checkpoint);
  const SafetensorsFile file(checkpoint / "rank0.safetensors");
  const size_t h = hf.hidden, q = hf.heads * hf.head, kv = hf.kv_heads * hf.head, inter = hf.inter;
  for (int l = 0; l < hf.layers; ++l) {
    const std::string t = "transformer.layers." + std::to_string(l) + ".";
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto qkv = dequantised(file, config, t + "attention.qkv", q + 2 * kv, h);
    hf.tensors[p + "self_attn.q_proj.weight"].assign(qkv.begin(), qkv.begin() + q * h);
    hf.tensors[p + "self_attn.k_proj.weight"].assign(qkv.begin() + q * h, qkv.begin() + (q + kv) * h);
    hf.tensors[p + "self_attn.v_proj.weight"].assign(qkv.begin() + (q + kv) * h, qkv.end());
    hf.tensors[p + "self_attn.o_proj.weight"] = dequantised(file, config, t + "attention.dense", h, q);
    hf.tensors[p + "mlp.gate_proj.weight"] = dequantised(file, config, t + "mlp.fc", inter, h);
    hf.tensors[p + "mlp.up_proj.weight"] = dequantised(file, config, t + "mlp.gate", inter, h);
    hf.tensors[p + "mlp.down_proj.weight"] = dequantised(file, config, t + "mlp.proj", h, inter);
  }
}

// The tiny model converted to a float32 TensorRT-LLM checkpoint in dir / "float" (its Hugging
// Face files in dir / "hf").
void write_float32_checkpoint(const TinyHfModel& hf, const TempDir& dir) {
  hf.write(dir.path() / "hf");
  convert_hf_checkpoint({dir.path() / "hf", dir.path() / "float", DType::F32, {}});
}

// The engine's int4 kernel with LLM_ISA=amx (kernels.h, Int4Tiles) rounds activations to bfloat16,
// 2^-9 relative each: logits then sit about 0.5% from a float32-activation reference instead of
// 1e-5. Tests of the model against such a reference allow for it in that configuration.
bool int4_rounds_activations() { return kernels::detect_isa() == kernels::Isa::Amx; }
constexpr double kBf16ActivationsTolerance = 2e-2;

class QuantizedCheckpoint : public ::testing::TestWithParam<QuantMethod> {};

TEST_P(QuantizedCheckpoint, LoadsQuantizedAndMatchesTheDequantisedReference) {
  TinyHfModel hf(21, false, 64);
  TempDir dir;
  write_float32_checkpoint(hf, dir);
  QuantizeOptions options;
  options.checkpoint_dir = dir.path() / "float";
  options.out_dir = dir.path() / "quantized";
  options.method = GetParam();
  options.group_size = 32;
  quantize_checkpoint(options);

  const ModelConfig config = ModelConfig::load(options.out_dir);
  const bool int8 = GetParam() == QuantMethod::Int8;
  EXPECT_EQ(config.quantization.algo, int8 ? QuantAlgo::W8A16 : QuantAlgo::W4A16_AWQ);
  EXPECT_TRUE(config.quantization.excludes("lm_head"));
  auto model = LlamaModel::load(options.out_dir, {2});
  const auto int4_format = int4_rounds_activations() ? kernels::WeightFormat::Int4Tiles : kernels::WeightFormat::Int4;
  EXPECT_EQ(model->linear(0, Linear::Qkv).format, int8 ? kernels::WeightFormat::Int8 : int4_format);

  // Quantized weights stay quantized in memory: a quarter (int8) or about an eighth (int4) of float32.
  auto float_model = LlamaModel::load(dir.path() / "float", {2});
  EXPECT_LT(model->weight_bytes(), float_model->weight_bytes());

  load_dequantised_into(hf, options.out_dir);
  const auto reference = hf.reference_logits(kTokens);
  EXPECT_LT(relative_error(all_logits(*model, kTokens), reference),
            !int8 && int4_rounds_activations() ? kBf16ActivationsTolerance : 1e-4);
  // ... and quantization changed the model, so the comparison above is not float against float.
  EXPECT_GT(relative_error(all_logits(*float_model, kTokens), reference), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Methods, QuantizedCheckpoint, ::testing::Values(QuantMethod::Int8, QuantMethod::Int4Rtn),
                         [](const auto& info) { return info.param == QuantMethod::Int8 ? "int8" : "int4_rtn"; });

TEST(QuantizedCheckpoint, RejectsQuantizedWeightsInAnotherPacking) {
  TinyHfModel hf(22, false, 64);
  TempDir dir;
  write_float32_checkpoint(hf, dir);
  QuantizeOptions options;
  options.checkpoint_dir = dir.path() / "float";
  options.out_dir = dir.path() / "int8";
  quantize_checkpoint(options);
  // The same tensors without this project's packing marker, as TensorRT-LLM's quantizer writes them.
  const SafetensorsFile file(dir.path() / "int8" / "rank0.safetensors");
  SafetensorsWriter writer;
  for (const auto& [name, t] : file.tensors()) writer.add_copy(name, t.dtype, t.shape, t.bytes);
  std::filesystem::create_directories(dir.path() / "foreign");
  writer.write(dir.path() / "foreign" / "rank0.safetensors");
  std::filesystem::copy_file(dir.path() / "int8" / "config.json", dir.path() / "foreign" / "config.json");
  try {
    LlamaModel::load(dir.path() / "foreign", {1});
    FAIL() << "loaded weights of unknown packing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llm convert --hf DIR --quant"), std::string::npos) << e.what();
  }
}

TEST(QuantizeCheckpoint, RejectsBadOptionsClearly) {
  TinyHfModel hf(23, false, 64);
  TempDir dir;
  write_float32_checkpoint(hf, dir);
  QuantizeOptions options;
  options.checkpoint_dir = dir.path() / "float";
  options.out_dir = dir.path() / "out";
  options.method = QuantMethod::Int4Rtn;
  options.group_size = 48;
  EXPECT_THROW(quantize_checkpoint(options), Error);  // group size not a multiple of 32
  options.method = QuantMethod::Awq;
  options.group_size = 32;
  try {
    quantize_checkpoint(options);
    FAIL() << "awq ran without calibration text";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--calib"), std::string::npos) << e.what();
  }
}

// ---- AutoAWQ's GEMM layout, built here: qweight / qzeros I32 packed eight 4-bit values per int32
// in the order 0, 2, 4, 6, 1, 3, 5, 7; scales [in / group, out]; w = (q - zero) * scale. ----

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

std::vector<int32_t> awq_pack(const std::vector<uint8_t>& values, size_t rows, size_t cols) {
  std::vector<int32_t> packed(rows * cols / 8, 0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; c += 8) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i) word |= static_cast<uint32_t>(values[r * cols + c + kAwqOrder[i]]) << (4 * i);
      packed[(r * cols + c) / 8] = static_cast<int32_t>(word);
    }
  }
  return packed;
}

TEST(AutoAwqCheckpoint, ConvertsToW4A16WithZeroPointsAndMatchesTheDequantisedReference) {
  TinyHfModel hf(24, false, 64);
  const size_t group = 32;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> code(0, 15);
  std::uniform_real_distribution<float> scale_dist(0.01f, 0.06f);
  std::map<std::string, std::vector<uint8_t>> awq_tensors_bytes;
  SafetensorsWriter writer;
  std::vector<std::vector<int32_t>> keep_ints;
  std::vector<std::vector<uint16_t>> keep_halves;
  for (auto& [name, values] : hf.tensors) {
    const bool linear = name.find("_proj.weight") != std::string::npos;
    const auto& shape = hf.shapes.at(name);
    if (!linear) {
      writer.add_copy(name, DType::F32, shape,
                      {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)});
      continue;
    }
    const size_t out = shape[0], in = shape[1], groups = in / group;
    std::vector<uint8_t> q(in * out), z(groups * out);
    std::vector<uint16_t> s(groups * out);
    for (auto& v : q) v = static_cast<uint8_t>(code(rng));
    for (auto& v : z) v = static_cast<uint8_t>(code(rng));
    for (auto& v : s) v = f32_to_fp16(scale_dist(rng));
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i)
        values[o * in + i] = (static_cast<float>(q[i * out + o]) - z[i / group * out + o]) * fp16_to_f32(s[i / group * out + o]);
    const std::string base = name.substr(0, name.size() - 7);
    keep_ints.push_back(awq_pack(q, in, out));
    writer.add_copy(base + ".qweight", DType::I32, {in, out / 8},
                    {reinterpret_cast<const uint8_t*>(keep_ints.back().data()), keep_ints.back().size() * 4});
    keep_ints.push_back(awq_pack(z, groups, out));
    writer.add_copy(base + ".qzeros", DType::I32, {groups, out / 8},
                    {reinterpret_cast<const uint8_t*>(keep_ints.back().data()), keep_ints.back().size() * 4});
    keep_halves.push_back(s);
    writer.add_copy(base + ".scales", DType::F16, {groups, out},
                    {reinterpret_cast<const uint8_t*>(keep_halves.back().data()), keep_halves.back().size() * 2});
  }
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "awq");
  writer.write(dir.path() / "awq" / "model.safetensors");
  nlohmann::json config = hf.config();
  config["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", group},
                                   {"zero_point", true}, {"version", "gemm"}};
  write_json_file(dir.path() / "awq" / "config.json", config);

  convert_hf_checkpoint({dir.path() / "awq", dir.path() / "trt", DType::F16, {}});
  const ModelConfig converted = ModelConfig::load(dir.path() / "trt");
  EXPECT_EQ(converted.quantization.algo, QuantAlgo::W4A16_AWQ);
  EXPECT_TRUE(converted.quantization.has_zero_point);
  EXPECT_FALSE(converted.quantization.pre_quant_scale);
  EXPECT_EQ(converted.quantization.group_size, 32);
  auto model = LlamaModel::load(dir.path() / "trt", {2});
  EXPECT_NE(model->linear(1, Linear::Proj).zeros, nullptr);
  // Non-linear weights and the KV cache are float16; the reference sees the same rounding.
  for (auto& [name, values] : hf.tensors) {
    if (name.find("_proj.weight") == std::string::npos)
      for (float& v : values) v = fp16_to_f32(f32_to_fp16(v));
  }
  EXPECT_LT(relative_error(all_logits(*model, kTokens), hf.reference_logits(kTokens, DType::F16)),
            int4_rounds_activations() ? kBf16ActivationsTolerance : 1e-4);

  config["quantization_config"]["version"] = "gemv";
  write_json_file(dir.path() / "awq" / "config.json", config);
  try {
    convert_hf_checkpoint({dir.path() / "awq", dir.path() / "trt2", DType::F16, {}});
    FAIL() << "converted the GEMV layout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GEMM layout only"), std::string::npos) << e.what();
  }
}

// ---- Evaluation ----

// log sum exp(logits / temperature) - logits[target] / temperature, in double.
double reference_nll(const std::vector<double>& logits, size_t target, double temperature) {
  const double top = *std::max_element(logits.begin(), logits.end()) / temperature;
  double sum = 0.0;
  for (double l : logits) sum += std::exp(l / temperature - top);
  return std::log(sum) + top - logits[target] / temperature;
}

// Perplexity over independent windows, and KL divergence from a reference, against the double
// reference implementation: the model tempered, the reference (the same model) not.
TEST(EvaluateText, ScoresEachWindowFromAnEmptyCacheAgainstTheReference) {
  TinyHfModel hf(8);
  TempDir dir;
  write_float32_checkpoint(hf, dir);
  auto model = LlamaModel::load(dir.path() / "float", {2});
  auto reference = LlamaModel::load(dir.path() / "float", {1});
  std::vector<int32_t> tokens;
  for (int32_t i = 0; i < 23; ++i) tokens.push_back((i * 37 + 1) % hf.vocab);
  constexpr size_t kWindow = 8;
  constexpr double kTemperature = 1.7;

  double nll = 0.0, kl = 0.0;
  size_t predicted = 0;
  for (size_t begin = 0; begin < tokens.size(); begin += kWindow) {
    const std::vector<int> window(tokens.begin() + begin, tokens.begin() + std::min(begin + kWindow, tokens.size()));
    const auto logits = hf.reference_logits(window);
    for (size_t t = 0; t + 1 < window.size(); ++t, ++predicted) {
      nll += reference_nll(logits[t], static_cast<size_t>(window[t + 1]), kTemperature);
      for (size_t i = 0; i < logits[t].size(); ++i) {
        const double log_p = -reference_nll(logits[t], i, 1.0), log_q = -reference_nll(logits[t], i, kTemperature);
        kl += std::exp(log_p) * (log_p - log_q);
      }
    }
  }

  EvalOptions options;
  options.window = kWindow;
  options.temperature = kTemperature;
  const EvalResult result = evaluate_text(*model, tokens, reference.get(), options);
  EXPECT_EQ(result.windows, 3u);
  EXPECT_EQ(result.predicted_tokens, predicted);
  EXPECT_NEAR(result.mean_nll, nll / predicted, 1e-4);
  EXPECT_NEAR(result.perplexity, std::exp(nll / predicted), 1e-4 * result.perplexity);
  EXPECT_GT(*result.mean_kl_divergence, 1e-3);
  EXPECT_NEAR(*result.mean_kl_divergence, kl / predicted, 1e-4);
  EXPECT_EQ(*result.top1_agreement, 1.0);  // a temperature does not change the most likely token

  options.temperature = 1.0;
  const EvalResult untempered = evaluate_text(*model, tokens, reference.get(), options);
  EXPECT_NEAR(untempered.perplexity, *untempered.reference_perplexity, 1e-4 * untempered.perplexity);
  EXPECT_LT(*untempered.mean_kl_divergence, 1e-6);

  for (double bad : {0.0, -1.0, std::nan("")}) {
    options.temperature = bad;
    try {
      evaluate_text(*model, tokens, nullptr, options);
      FAIL() << "accepted temperature " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("temperature must be a positive, finite number"), std::string::npos)
          << e.what();
    }
  }
}

// ---- AWQ against round-to-nearest on a trained model (../shared) ----

class ShakespeareQuantization : public ::testing::Test {
 protected:
  static constexpr const char* kModel = "models/shakespeare-llama-hf";
  static constexpr const char* kCalibration = "data/shakespeare-calib.txt";
  static constexpr const char* kHeldOut = "data/shakespeare-heldout.txt";
  static constexpr size_t kHeldOutTokens = 8192;

  static void SetUpTestSuite() {
    const auto shared = test::shared_dir();
    if (!std::filesystem::exists(shared / kModel) || !std::filesystem::exists(shared / kHeldOut)) return;
    dir_ = std::make_unique<TempDir>();
    convert_hf_checkpoint({shared / kModel, path("float16"), DType::F16, {}});
    const auto quantize = [&](const char* name, QuantMethod method, size_t group) {
      QuantizeOptions options;
      options.checkpoint_dir = path("float16");
      options.out_dir = path(name);
      options.method = method;
      options.group_size = group;
      options.calib_text = shared / kCalibration;
      quantize_checkpoint(options);
    };
    quantize("int8", QuantMethod::Int8, 128);
    for (size_t group : {128, 64}) {
      quantize(("int4-rtn-" + std::to_string(group)).c_str(), QuantMethod::Int4Rtn, group);
      quantize(("awq-" + std::to_string(group)).c_str(), QuantMethod::Awq, group);
    }
    held_out_ = std::make_unique<std::vector<int32_t>>(
        Tokenizer(path("float16") / "tokenizer.model").encode(read_utf8_file(shared / kHeldOut)));
    // The first 8192 tokens (16 windows) keep the suite quick, sanitizers included; the README's
    // numbers come from `llm eval` over the whole text.
    if (held_out_->size() > kHeldOutTokens) held_out_->resize(kHeldOutTokens);
  }
  static void TearDownTestSuite() {
    held_out_.reset();
    dir_.reset();
  }
  void SetUp() override {
    LLM_REQUIRE_SHARED(kModel);
    LLM_REQUIRE_SHARED(kHeldOut);
  }
  static std::filesystem::path path(const std::string& name) { return dir_->path() / name; }
  static std::unique_ptr<LlamaModel> load(const std::string& name) { return LlamaModel::load(path(name), {0}); }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<std::vector<int32_t>> held_out_;
};

TEST_F(ShakespeareQuantization, Int8AgreesWithFloat16OnAtLeast98PercentOfTokens) {
  auto float16 = load("float16");
  auto int8 = load("int8");
  const EvalResult result = evaluate_text(*int8, *held_out_, float16.get(), {});
  std::cout << "[          ] int8: perplexity " << result.perplexity << " (float16 " << *result.reference_perplexity
            << "), top-1 agreement " << *result.top1_agreement * 100 << "%\n";
  EXPECT_GE(*result.top1_agreement, 0.98);
  EXPECT_LT(result.perplexity, *result.reference_perplexity * 1.01);
}

TEST_F(ShakespeareQuantization, AwqLayerOutputErrorsOnHeldOutTextAreNotAboveRoundToNearest) {
  auto float16 = load("float16");
  for (const char* group : {"128", "64"}) {
    SCOPED_TRACE(std::string("group size ") + group);
    auto awq = load(std::string("awq-") + group);
    auto rtn = load(std::string("int4-rtn-") + group);
    const auto awq_errors = linear_output_errors(*float16, *awq, *held_out_, {});
    const auto rtn_errors = linear_output_errors(*float16, *rtn, *held_out_, {});
    ASSERT_EQ(awq_errors.size(), rtn_errors.size());
    ASSERT_EQ(awq_errors.size(), float16->num_layers() * kLinearsPerLayer);
    double awq_total = 0.0, rtn_total = 0.0;
    for (size_t i = 0; i < awq_errors.size(); ++i) {
      EXPECT_LE(awq_errors[i].relative_error, rtn_errors[i].relative_error)
          << "layer " << awq_errors[i].layer << " " << linear_name(awq_errors[i].linear);
      awq_total += awq_errors[i].relative_error;
      rtn_total += rtn_errors[i].relative_error;
    }
    std::cout << "[          ] group " << group << ": mean relative output error awq " << awq_total / awq_errors.size()
              << ", round-to-nearest " << rtn_total / rtn_errors.size() << "\n";
  }
}

// AWQ's clipping search shrinks the range of value rows where that lowers the error, and leaves
// query and key rows at their full range: a group's stored scale is then max |w * s| / 7 over the
// float weights w and the AWQ input scales s (1 / prequant_scaling_factor).
TEST_F(ShakespeareQuantization, AwqClipsValueRowsButNotQueryOrKeyRows) {
  const ModelConfig config = ModelConfig::load(path("float16"));
  const SafetensorsFile float16(path("float16") / "rank0.safetensors");
  const SafetensorsFile awq(path("awq-64") / "rank0.safetensors");
  const size_t hidden = static_cast<size_t>(config.hidden_size), group = 64, groups = hidden / group;
  const size_t q_size = static_cast<size_t>(config.q_size()), kv_size = static_cast<size_t>(config.kv_size());
  const size_t rows = q_size + 2 * kv_size;
  const auto f16 = [](const TensorView& t, size_t i) {
    uint16_t bits;
    std::memcpy(&bits, t.bytes.data() + i * 2, 2);
    return fp16_to_f32(bits);
  };
  size_t clipped_value_groups = 0;
  for (size_t l = 0; l < static_cast<size_t>(config.num_hidden_layers); ++l) {
    const std::string name = "transformer.layers." + std::to_string(l) + ".attention.qkv.";
    const TensorView& w = float16.get(name + "weight", {rows, hidden});
    const TensorView& scales = awq.get(name + "weights_scaling_factor", {rows, groups});
    const TensorView& pre_scale = awq.get(name + "prequant_scaling_factor", {hidden});
    for (size_t r = 0; r < rows; ++r) {
      for (size_t g = 0; g < groups; ++g) {
        float max_abs = 0.0f;
        for (size_t c = g * group; c < (g + 1) * group; ++c) {
          max_abs = std::max(max_abs, std::fabs(f16(w, r * hidden + c) / f16(pre_scale, c)));
        }
        const float full_range = fp16_to_f32(f32_to_fp16(max_abs / 7.0f));
        const float stored = f16(scales, r * groups + g);
        if (r < q_size + kv_size) {
          EXPECT_NEAR(stored, full_range, full_range * 2e-3) << "layer " << l << " row " << r << " group " << g;
        } else {
          EXPECT_LE(stored, full_range * (1 + 2e-3)) << "layer " << l << " row " << r << " group " << g;
          clipped_value_groups += stored < full_range * 0.99f ? 1 : 0;
        }
      }
    }
  }
  EXPECT_GT(clipped_value_groups, 0u);
}

// Perplexity is reported, and both int4 methods stay within 1% of float16. The closeness of the
// distributions (KL from float16, top-1 agreement) is where AWQ must beat round-to-nearest.
TEST_F(ShakespeareQuantization, AwqIsCloserToFloat16ThanRoundToNearest) {
  auto float16 = load("float16");
  for (const char* group : {"128", "64"}) {
    SCOPED_TRACE(std::string("group size ") + group);
    auto awq = load(std::string("awq-") + group);
    auto rtn = load(std::string("int4-rtn-") + group);
    const EvalResult a = evaluate_text(*awq, *held_out_, float16.get(), {});
    const EvalResult r = evaluate_text(*rtn, *held_out_, float16.get(), {});
    std::cout << "[          ] group " << group << ": perplexity float16 " << *a.reference_perplexity << ", awq "
              << a.perplexity << ", int4-rtn " << r.perplexity << "; KL awq " << *a.mean_kl_divergence << ", rtn "
              << *r.mean_kl_divergence << "; top-1 agreement awq " << *a.top1_agreement * 100 << "%, rtn "
              << *r.top1_agreement * 100 << "%\n";
    EXPECT_LT(*a.mean_kl_divergence, *r.mean_kl_divergence);
    EXPECT_GT(*a.top1_agreement, *r.top1_agreement);
    EXPECT_LT(std::fabs(a.perplexity / *a.reference_perplexity - 1.0), 0.01);
    EXPECT_LT(std::fabs(r.perplexity / *r.reference_perplexity - 1.0), 0.01);
  }
}

}  // namespace
}  // namespace llm
