#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_convert.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/synth.h"
#include "common/error.h"
#include "engine/cpu/llama_model.h"
#include "engine/generate.h"
#include "scheduler_util.h"
#include "test_util.h"
#include "tiny_hf_model.h"
#include "tokenizer/tokenizer.h"

namespace llm {
namespace {

using test::TempDir;
using test::TinyHfModel;
using test::all_logits;
using test::relative_error;
using test::write_fake_llama_tokenizer;

const std::vector<int> kTokens = {1, 7, 33, 2, 63, 15, 15, 40, 9, 0, 22, 51};

std::unique_ptr<LlamaModel> convert_and_load(const TinyHfModel& hf, const TempDir& dir, DType dtype, int shards = 1,
                                             size_t threads = 2) {
  hf.write(dir.path() / "hf", shards);
  convert_hf_checkpoint({dir.path() / "hf", dir.path() / "trt", dtype, {}});
  return LlamaModel::load(dir.path() / "trt", {threads});
}

TEST(Converter, Float32LogitsMatchHuggingFaceReference) {
  const TinyHfModel hf(1);
  TempDir dir;
  auto model = convert_and_load(hf, dir, DType::F32);
  const auto reference = hf.reference_logits(kTokens);
  EXPECT_LT(relative_error(all_logits(*model, kTokens), reference), 1e-5);
}

TEST(Converter, ShardedTiedAndSingleThreadedGiveTheSameLogits) {
  const TinyHfModel hf(2, /*tie=*/true);
  TempDir dir;
  auto model = convert_and_load(hf, dir, DType::F32, /*shards=*/3, /*threads=*/1);
  EXPECT_LT(relative_error(all_logits(*model, kTokens), hf.reference_logits(kTokens)), 1e-5);
}

TEST(Converter, HalfPrecisionOutputsStayCloseToReference) {
  const TinyHfModel hf(3);
  for (DType dtype : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(safetensors_name(dtype));
    TempDir dir;
    auto model = convert_and_load(hf, dir, dtype);
    EXPECT_EQ(model->config().dtype, dtype);
    const auto logits = all_logits(*model, kTokens);
    // Weight and KV cache rounding: 2^-11 (fp16) or 2^-8 (bf16) relative per value, accumulated.
    EXPECT_LT(relative_error(logits, hf.reference_logits(kTokens)), dtype == DType::F16 ? 5e-3 : 4e-2);

    // With the checkpoint's rounded weights, and keys and values rounded as a KV cache of the
    // checkpoint's dtype stores them (as TensorRT-LLM's does), only float32 arithmetic differs.
    TinyHfModel rounded = hf;
    for (auto& [name, values] : rounded.tensors) {
      for (float& v : values) v = dtype == DType::F16 ? fp16_to_f32(f32_to_fp16(v)) : bf16_to_f32(f32_to_bf16(v));
    }
    EXPECT_EQ(KvBlockPool(model->config(), 64, 1).dtype(), dtype);
    EXPECT_LT(relative_error(logits, rounded.reference_logits(kTokens, dtype)), 1e-5);
    EXPECT_GT(relative_error(logits, rounded.reference_logits(kTokens, DType::F32)), 1e-5)
        << "the KV cache's rounding shows at this tolerance";
  }
}

TEST(Converter, WritesTensorRtLlmSchema) {
  const TinyHfModel hf(4);
  TempDir dir;
  hf.write(dir.path() / "hf");
  convert_hf_checkpoint({dir.path() / "hf", dir.path() / "trt", DType::F32, {}});
  const auto config = read_json_file(dir.path() / "trt" / "config.json");
  EXPECT_EQ(config["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(config["position_embedding_type"], "rope_gpt_neox");
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["head_size"], 8);
  EXPECT_EQ(config["mapping"]["world_size"], 1);
  EXPECT_TRUE(config["quantization"]["quant_algo"].is_null());

  const SafetensorsFile file(dir.path() / "trt" / "rank0.safetensors");
  // qkv stacks q, k, v rows; mlp.fc is gate_proj and mlp.gate is up_proj.
  const auto& qkv = file.get("transformer.layers.1.attention.qkv.weight", {32 + 2 * 16, 32});
  const float* qkv_data = reinterpret_cast<const float*>(qkv.bytes.data());
  const auto& q = hf.tensors.at("model.layers.1.self_attn.q_proj.weight");
  const auto& k = hf.tensors.at("model.layers.1.self_attn.k_proj.weight");
  const auto& v = hf.tensors.at("model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(qkv_data[0], q[0]);
  EXPECT_EQ(qkv_data[q.size()], k[0]);
  EXPECT_EQ(qkv_data[q.size() + k.size() + 5], v[5]);
  const auto& fc = file.get("transformer.layers.0.mlp.fc.weight");
  EXPECT_EQ(reinterpret_cast<const float*>(fc.bytes.data())[3], hf.tensors.at("model.layers.0.mlp.gate_proj.weight")[3]);
  const auto& gate = file.get("transformer.layers.0.mlp.gate.weight");
  EXPECT_EQ(reinterpret_cast<const float*>(gate.bytes.data())[3], hf.tensors.at("model.layers.0.mlp.up_proj.weight")[3]);
  for (const char* name : {"transformer.vocab_embedding.weight", "transformer.ln_f.weight", "lm_head.weight",
                           "transformer.layers.0.attention.dense.weight", "transformer.layers.0.mlp.proj.weight",
                           "transformer.layers.0.input_layernorm.weight", "transformer.layers.0.post_layernorm.weight"}) {
    EXPECT_NE(file.find(name), nullptr) << name;
  }
}

TEST(Converter, BadInputNamesWhatIsWrong) {
  TempDir dir;
  const TinyHfModel hf(5);
  auto expect_error = [&](const std::function<void()>& f, const std::string& fragment) {
    try {
      f();
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  const auto src = dir.path() / "hf";
  const auto out = dir.path() / "out";
  expect_error([&] { convert_hf_checkpoint({src, out, DType::F16, {}}); }, "no config.json in");

  TinyHfModel missing = hf;
  missing.tensors.erase("model.layers.1.mlp.up_proj.weight");
  missing.write(src);
  expect_error([&] { convert_hf_checkpoint({src, out, DType::F16, {}}); }, "tensor model.layers.1.mlp.up_proj.weight is missing");

  TinyHfModel wrong_shape = hf;
  wrong_shape.shapes["model.layers.0.self_attn.k_proj.weight"] = {8, 32};
  wrong_shape.tensors["model.layers.0.self_attn.k_proj.weight"].resize(8 * 32);
  std::filesystem::remove_all(src);
  wrong_shape.write(src);
  expect_error([&] { convert_hf_checkpoint({src, out, DType::F16, {}}); },
               "model.layers.0.self_attn.k_proj.weight has shape [8, 32], expected [16, 32]");

  auto config = hf.config();
  config["model_type"] = "gpt2";
  config["architectures"] = {"GPT2LMHeadModel"};
  write_json_file(src / "config.json", config);
  expect_error([&] { convert_hf_checkpoint({src, out, DType::F16, {}}); }, "not a Llama checkpoint");
  EXPECT_FALSE(std::filesystem::exists(out / "config.json")) << "a failed conversion must not look complete";
}

// A row's arithmetic does not depend on how the tokens are split into forward passes or where
// the cache's blocks lie: prefill of 5 tokens then decode one by one, in blocks of 3 positions
// taken in reverse order, gives bit for bit the logits of one prefill of all tokens.
TEST(Model, IncrementalDecodeMatchesFullPrefillBitForBit) {
  const TinyHfModel hf(6);
  for (DType dtype : {DType::F32, DType::F16}) {
    SCOPED_TRACE(safetensors_name(dtype));
    TempDir dir;
    auto model = convert_and_load(hf, dir, dtype);
    const auto full = all_logits(*model, kTokens);
    const size_t vocab = size_t(model->config().vocab_size);
    KvBlockPool cache(model->config(), 3, 8);
    std::vector<int32_t> blocks;
    for (int32_t b = 7; b >= 0; --b) blocks.push_back(b);
    std::vector<float> logits(vocab);
    const std::vector<int32_t> ids(kTokens.begin(), kTokens.end());
    Batch batch;
    batch.add(std::span(ids).first(5), 0, blocks, LogitRows::Last);
    model->forward(batch, cache, logits);
    EXPECT_TRUE(std::equal(logits.begin(), logits.end(), full.begin() + 4 * long(vocab)));
    for (size_t t = 5; t < ids.size(); ++t) {
      batch.clear();
      batch.add(std::span(ids).subspan(t, 1), t, blocks, LogitRows::Last);
      model->forward(batch, cache, logits);
      ASSERT_TRUE(std::equal(logits.begin(), logits.end(), full.begin() + long(t * vocab))) << "position " << t;
    }
  }
}

TEST(Model, LoadErrorsNameTheProblem) {
  TempDir dir;
  auto expect_error = [&](const std::function<void()>& f, const std::string& fragment) {
    try {
      f();
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error([&] { LlamaModel::load(dir.path(), {1}); }, "no config.json in");
  const TinyHfModel hf(7);
  hf.write(dir.path() / "hf");
  convert_hf_checkpoint({dir.path() / "hf", dir.path() / "trt", DType::F16, {}});
  std::filesystem::rename(dir.path() / "trt" / "rank0.safetensors", dir.path() / "moved.safetensors");
  expect_error([&] { LlamaModel::load(dir.path() / "trt", {1}); }, "no rank0.safetensors in");
  // A checkpoint whose config disagrees with its tensors.
  std::filesystem::rename(dir.path() / "moved.safetensors", dir.path() / "trt" / "rank0.safetensors");
  auto config = read_json_file(dir.path() / "trt" / "config.json");
  config["intermediate_size"] = 50;
  write_json_file(dir.path() / "trt" / "config.json", config);
  expect_error([&] { LlamaModel::load(dir.path() / "trt", {1}); }, "transformer.layers.0.mlp.fc.weight has shape [48, 32], expected [50, 32]");
  // Truncated weights file.
  config["intermediate_size"] = 48;
  write_json_file(dir.path() / "trt" / "config.json", config);
  std::filesystem::resize_file(dir.path() / "trt" / "rank0.safetensors", 2000);
  expect_error([&] { LlamaModel::load(dir.path() / "trt", {1}); }, "truncated");
}

TEST(Model, RejectsTokenIdsOutsideTheVocabulary) {
  const TinyHfModel hf(8);
  TempDir dir;
  auto model = convert_and_load(hf, dir, DType::F32);
  std::vector<float> logits(64);
  const std::vector<int32_t> bad = {1, 64};
  EXPECT_THROW(model->forward_prompt(bad, logits, false), Error);
}

TEST(Synth, DeterministicFiniteAndOfTheRequestedShape) {
  TempDir dir;
  const auto tokenizer = write_fake_llama_tokenizer(dir.path());
  SynthOptions options;
  options.shape = "tiny";
  options.seed = 42;
  options.tokenizer_model = tokenizer;
  options.out_dir = dir.path() / "a";
  write_synthetic_checkpoint(options);
  options.out_dir = dir.path() / "b";
  options.threads = 1;
  write_synthetic_checkpoint(options);
  options.out_dir = dir.path() / "c";
  options.seed = 43;
  write_synthetic_checkpoint(options);
  auto read_all = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const auto a = read_all(dir.path() / "a" / "rank0.safetensors");
  EXPECT_EQ(a, read_all(dir.path() / "b" / "rank0.safetensors")) << "same seed, different thread count";
  EXPECT_NE(a, read_all(dir.path() / "c" / "rank0.safetensors"));

  auto model = LlamaModel::load(dir.path() / "a", {2});
  EXPECT_EQ(model->config().num_key_value_heads, 4);
  EXPECT_EQ(model->config().num_attention_heads, 8);
  const std::vector<int> tokens = {1, 500, 9000, 31999, 42, 42, 7};
  const auto logits = all_logits(*model, tokens);
  float max_abs = 0;
  for (float v : logits) {
    ASSERT_TRUE(std::isfinite(v));
    max_abs = std::max(max_abs, std::abs(v));
  }
  EXPECT_GT(max_abs, 0.5f) << "logits should not collapse to zero";
  EXPECT_LT(max_abs, 100.0f);
  EXPECT_THROW(synth_shape("13b"), Error);
}

// A converted tiny model with a fake Llama-style tokenizer, for generation tests.
struct GenerationSetup {
  explicit GenerationSetup(uint32_t seed)
      : tokenizer_path(write_fake_llama_tokenizer(dir.path())),
        model(convert_and_load(TinyHfModel(seed), dir, DType::F32)),
        tokenizer(tokenizer_path) {}
  TempDir dir;
  std::filesystem::path tokenizer_path;
  std::unique_ptr<LlamaModel> model;
  Tokenizer tokenizer;
};

TEST(Cli, NumbersThatDoNotFitAreRefusedNotWrapped) {
  TempDir dir;
  ASSERT_EQ(write_fake_llama_tokenizer(dir.path()), dir.path() / "tokenizer.model");  // the checkpoint's tokenizer
  int status = 0;
  const std::string output = test::run_command(std::string(LLM_CLI_PATH) + " generate --checkpoint " +
                                                   dir.path().string() + " --prompt hi --max-tokens 3000000000 2>&1",
                                               &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("--max-tokens must be at most 2147483647"), std::string::npos) << output;
}

// llm bench's roofline accounting, checked by arithmetic on the tiny model (hidden 32, 2 layers,
// q 32, kv 16, intermediate 48, vocabulary 64), never by speed.
TEST(Cli, BenchReportsWorkAsSharesOfTheMeasuredCeilings) {
  TempDir dir;
  convert_and_load(TinyHfModel(5), dir, DType::F32);
  const std::filesystem::path tokenizer = write_fake_llama_tokenizer(dir.path());
  int status = 0;
  const std::string output = test::run_command(std::string(LLM_CLI_PATH) + " bench --checkpoint " +
                                                   (dir.path() / "trt").string() + " --tokenizer " + tokenizer.string() +
                                                   " --batch 2 --prompt-tokens 8 --decode-tokens 4 --threads 1 --json 2>&1",
                                               &status);
  ASSERT_EQ(status, 0) << output;
  const nlohmann::json out = nlohmann::json::parse(output);
  // FLOPs per token: linear layers 2 x (64 x 32 + 32 x 32 + 2 x 48 x 32 + 32 x 48) = 2 x 7,680 per
  // token, lm_head 64 x 32 per logits row, attention 2 x 2 layers x 32 per position attended.
  const double prefill_flops = 2.0 * (8 * 15360 + 2048 + 128 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8));
  const double decode_flops = 2.0 * (4 * (15360 + 2048) + 128 * (9 + 10 + 11 + 12));
  EXPECT_NEAR(out["prefill_flops_per_s"].get<double>() / out["prefill_tokens_per_s"].get<double>(), prefill_flops / 8, 1e-6);
  EXPECT_NEAR(out["decode_flops_per_s"].get<double>() / out["decode_tokens_per_s"].get<double>(), decode_flops / 4, 1e-6);
  // Each decode iteration streams the weights in memory once for both sequences.
  const double iterations = out["decode_iterations"].get<double>();
  EXPECT_EQ(iterations, 4);
  EXPECT_NEAR(out["decode_weight_bytes_per_s"].get<double>() / out["decode_tokens_per_s"].get<double>(),
              out["weight_bytes"].get<double>() * iterations / (2 * 4), 1e-6);
  const nlohmann::json& machine = out["machine"];
  EXPECT_EQ(machine["threads"].get<int>(), 1);
  EXPECT_GT(machine["triad_bytes_per_s"].get<double>(), 1e8);
  EXPECT_GT(machine["fma_flops_per_s"].get<double>(), 1e8);
  EXPECT_EQ(machine["bf16_dot_flops_per_s"].get<double>() > 0, kernels::isa_supported(kernels::Isa::Avx512Bf16));
  EXPECT_EQ(out["compute_peak"], "float32 FMA");  // float weights
  EXPECT_DOUBLE_EQ(out["decode_share_of_bandwidth"].get<double>(),
                   out["decode_weight_bytes_per_s"].get<double>() / machine["triad_bytes_per_s"].get<double>());
  EXPECT_DOUBLE_EQ(out["prefill_share_of_compute"].get<double>(),
                   out["prefill_flops_per_s"].get<double>() / machine["fma_flops_per_s"].get<double>());
}

TEST(Generation, ContextOverflowIsAClearError) {
  GenerationSetup setup(9);  // context 64, vocab 64: the tokenizer is only needed for decoding here
  SchedulerOptions options;
  options.kv_cache_blocks = 4;
  Scheduler scheduler(*setup.model, setup.tokenizer, options);
  GenerationRequest request;
  request.prompt_ids = std::vector<int32_t>(60, 5);
  request.max_tokens = 5;
  try {
    scheduler.submit(request, std::make_shared<test::RecordingObserver>());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("beyond the model's context of 64 tokens"), std::string::npos) << e.what();
  }
  request.prompt_ids.clear();
  EXPECT_THROW(scheduler.submit(request, std::make_shared<test::RecordingObserver>()), Error);
  request.prompt_ids = {1, 2};
  request.max_tokens = 0;
  EXPECT_THROW(scheduler.submit(request, std::make_shared<test::RecordingObserver>()), Error);
}

TEST(Generation, NanLogitsFailTheRequestWithTheCause) {
  GenerationSetup setup(11);
  GenerationRequest request;
  request.prompt_ids = {1, 5};
  request.max_tokens = 4;
  Generation generation(setup.tokenizer, request);
  std::vector<float> logits(64, 0.0f);
  logits[7] = 1.0f;
  generation.accept(logits);
  logits[3] = std::numeric_limits<float>::quiet_NaN();
  try {
    generation.accept(logits);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the model produced NaN logits at generated token 2"), std::string::npos)
        << e.what();
  }
}

TEST(Generation, GreedyMatchesArgmaxOfReferenceAndStopsOnLengthOrEndId) {
  GenerationSetup setup(10);
  const TinyHfModel hf(10);  // the same weights, for the reference forward
  GenerationRequest request;
  request.prompt_ids = {1, 20, 30};
  request.max_tokens = 6;
  request.sampling.temperature = 0;
  const auto g = test::run_alone(*setup.model, setup.tokenizer, request);
  EXPECT_EQ(g->wait(), "finished:length");
  ASSERT_EQ(g->ids().size(), 6u);
  // Each greedy token is the argmax of the reference forward over the growing sequence.
  std::vector<int> sequence(request.prompt_ids.begin(), request.prompt_ids.end());
  for (int32_t id : g->ids()) {
    const auto logits = hf.reference_logits(sequence).back();
    EXPECT_EQ(id, std::max_element(logits.begin(), logits.end()) - logits.begin());
    sequence.push_back(id);
  }
  // Declaring the third greedy token an end id stops before it.
  request.end_ids = {g->ids()[2]};
  const auto stopped = test::run_alone(*setup.model, setup.tokenizer, request);
  EXPECT_EQ(stopped->wait(), "finished:stop");
  EXPECT_EQ(stopped->ids().size(), 2u);
  // ...unless ignore_eos keeps it going.
  request.ignore_eos = true;
  const auto ignoring = test::run_alone(*setup.model, setup.tokenizer, request);
  EXPECT_EQ(ignoring->ids().size(), 6u);
}

TEST(Generation, BadTokensAreNeverChosenAndStopTokenSequencesEndTheOutput) {
  GenerationSetup setup(12);
  GenerationRequest request;
  request.prompt_ids = {1, 20, 30};
  request.max_tokens = 8;
  request.sampling.temperature = 0;
  request.return_log_probs = true;
  const auto free_run = test::run_alone(*setup.model, setup.tokenizer, request);
  const auto greedy = free_run->ids();
  ASSERT_EQ(free_run->log_probs().size(), greedy.size());
  for (float lp : free_run->log_probs()) EXPECT_LE(lp, 0.0f);

  // Banning the first greedy token makes the model pick something else first.
  request.bad_token_sequences = {{greedy[0]}};
  EXPECT_NE(test::run_alone(*setup.model, setup.tokenizer, request)->ids()[0], greedy[0]);

  // Stopping on the 2nd-3rd greedy tokens keeps them and ends there.
  request.bad_token_sequences.clear();
  request.stop_token_sequences = {{greedy[1], greedy[2]}};
  const auto stopped = test::run_alone(*setup.model, setup.tokenizer, request);
  EXPECT_EQ(stopped->wait(), "finished:stop");
  EXPECT_EQ(stopped->ids(), std::vector<int32_t>(greedy.begin(), greedy.begin() + 3));
}

TEST(Generation, StopStringsEndTheTextBeforeThemEvenAcrossChunks) {
  GenerationSetup setup(13);
  GenerationRequest request;
  request.prompt_ids = {1, 40, 41};
  request.max_tokens = 12;
  request.sampling.temperature = 0;
  request.ignore_eos = true;
  const std::string full = test::run_alone(*setup.model, setup.tokenizer, request)->text();
  ASSERT_GE(full.size(), 4u) << "the tiny model's greedy bytes should make some text";
  // A stop string from the middle of the text: the output is everything before its first occurrence.
  const std::string stop = full.substr(full.size() / 2, 2);
  request.stop_strings = {stop};
  const auto stopped = test::run_alone(*setup.model, setup.tokenizer, request);
  EXPECT_EQ(stopped->wait(), "finished:stop");
  EXPECT_EQ(stopped->text(), full.substr(0, full.find(stop)));
}

}  // namespace
}  // namespace llm
