// The engine against ../shared: real trained Llamas and greedy continuations from an
// independent float64 implementation, checked token for token.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_convert.h"
#include "checkpoint/model_config.h"
#include "engine/cpu/llama_model.h"
#include "engine/generate.h"
#include "engine/scheduler.h"
#include "quantization/quantize.h"
#include "scheduler_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace llm {
namespace {

using test::run_command;
using test::shared_dir;
using test::shell_quote;
using test::TempDir;

struct ReferenceCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;
};

std::vector<ReferenceCase> load_cases(const std::string& file) {
  const auto j = read_json_file(shared_dir() / "reference" / file);
  std::vector<ReferenceCase> cases;
  for (const auto& c : j.at("cases")) {
    cases.push_back({c.at("prompt"), c.at("prompt_ids"), c.at("generated_ids"), c.at("text")});
  }
  return cases;
}

void check_greedy_continuations(const std::string& model_name, const std::string& reference_file, DType dtype) {
  TempDir dir;
  convert_hf_checkpoint({shared_dir() / "models" / model_name, dir.path(), dtype, {}});
  const Tokenizer tokenizer(dir.path() / "tokenizer.model");
  auto model = LlamaModel::load(dir.path(), {2});
  const auto cases = load_cases(reference_file);
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    ASSERT_EQ(tokenizer.encode(c.prompt), c.prompt_ids) << c.prompt;
    GenerationRequest request;
    request.prompt_ids = c.prompt_ids;
    request.max_tokens = static_cast<int32_t>(c.generated_ids.size());
    request.sampling.temperature = 0;
    request.end_ids = {tokenizer.eos_id()};
    const auto result = test::run_alone(*model, tokenizer, request);
    EXPECT_EQ(result->ids(), c.generated_ids) << model_name << " " << config_name(dtype) << ": " << c.prompt;
    EXPECT_EQ(result->text(), c.text) << "streamed chunks must concatenate to the text: " << c.prompt;
    EXPECT_EQ(result->wait(), "finished:length");
  }
}

TEST(Reference, Aidreams260KFloat32GreedyTokenForToken) {
  LLM_REQUIRE_SHARED("models/aidreams260K-hf/model.safetensors");
  LLM_REQUIRE_SHARED("reference/aidreams260K-greedy.json");
  check_greedy_continuations("aidreams260K-hf", "aidreams260K-greedy.json", DType::F32);
}

TEST(Reference, ShakespeareGqaLlama2TokenizerGreedyTokenForToken) {
  LLM_REQUIRE_SHARED("models/shakespeare-llama-hf/model.safetensors");
  LLM_REQUIRE_SHARED("reference/shakespeare-llama-greedy.json");
  // Its weights are float16: converting to float16 or float32 is exact, so both must match.
  check_greedy_continuations("shakespeare-llama-hf", "shakespeare-llama-greedy.json", DType::F16);
  check_greedy_continuations("shakespeare-llama-hf", "shakespeare-llama-greedy.json", DType::F32);
}

// In-flight batching against ../shared: the reference prompts twice each (16 requests of 4 to 13
// prompt tokens and 28 to 48 new ones), arriving two iterations apart, with 16 rows per iteration
// and blocks of 4 positions, so that prompts run in chunks beside decoding sequences. Each greedy
// continuation must be the reference's (float checkpoints: `expected` from the reference file) or
// what the same request gives alone (quantized ones), with prefix reuse off and on, and under
// preemption (max_utilization with a pool too small for all of them at once).
void check_batched(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<ReferenceCase>& cases,
                   bool against_reference, const std::string& label) {
  std::vector<test::Arrival> arrivals;
  for (size_t i = 0; i < 16; ++i) {
    const ReferenceCase& c = cases[i % cases.size()];
    GenerationRequest request;
    request.prompt_ids = c.prompt_ids;
    request.max_tokens = static_cast<int32_t>(c.generated_ids.size() - (i % 3) * 10);
    request.sampling.temperature = 0;
    request.end_ids = {tokenizer.eos_id()};
    arrivals.push_back({2 * i, request});
  }
  std::vector<std::vector<int32_t>> expected;
  for (size_t i = 0; i < arrivals.size(); ++i) {
    const ReferenceCase& c = cases[i % cases.size()];
    expected.push_back(against_reference
                           ? std::vector<int32_t>(c.generated_ids.begin(),
                                                  c.generated_ids.begin() + arrivals[i].request.max_tokens)
                           : test::run_alone(model, tokenizer, arrivals[i].request)->ids());
  }
  struct Setting {
    const char* name;
    CapacityPolicy policy;
    bool reuse;
    size_t blocks;
  };
  for (const Setting& setting : {Setting{"no_evict", CapacityPolicy::GuaranteedNoEvict, false, 400},
                                 Setting{"no_evict_reuse", CapacityPolicy::GuaranteedNoEvict, true, 400},
                                 Setting{"preemption", CapacityPolicy::MaxUtilization, false, 40},
                                 Setting{"preemption_reuse", CapacityPolicy::MaxUtilization, true, 40}}) {
    SCOPED_TRACE(label + " " + setting.name);
    SchedulerOptions options;
    options.max_batch_size = 16;
    options.max_num_tokens = 16;
    options.tokens_per_block = 4;
    options.kv_cache_blocks = setting.blocks;
    options.policy = setting.policy;
    options.enable_kv_cache_reuse = setting.reuse;
    Scheduler scheduler(model, tokenizer, options);
    size_t most_active = 0;
    const auto observers = test::run_arrivals(scheduler, arrivals, [&](const Scheduler& s) {
      most_active = std::max(most_active, s.stats().active);
    });
    EXPECT_GE(most_active, 8u);
    for (size_t i = 0; i < observers.size(); ++i) {
      EXPECT_EQ(observers[i]->ids(), expected[i]) << "request " << i << ": " << cases[i % cases.size()].prompt;
    }
    const EngineStats stats = scheduler.stats();
    if (setting.policy == CapacityPolicy::MaxUtilization) {
      EXPECT_GT(*stats.preemptions, 0u);
    }
    if (setting.reuse) {
      EXPECT_GT(*stats.kv_cache_reused_blocks, 0u) << "the repeated prompts share their blocks";
    }
    EXPECT_EQ(*stats.kv_cache_used_blocks, 0);
  }
}

void check_batched_formats(const std::string& model_name, const std::string& reference_file, DType float_dtype,
                           size_t group_size) {
  const auto cases = load_cases(reference_file);
  TempDir dir;
  convert_hf_checkpoint({shared_dir() / "models" / model_name, dir.path() / "float", float_dtype, {}});
  const Tokenizer tokenizer(dir.path() / "float" / "tokenizer.model");
  {
    auto model = LlamaModel::load(dir.path() / "float", {2});
    check_batched(*model, tokenizer, cases, true, std::string(config_name(float_dtype)));
  }
  for (QuantMethod method : {QuantMethod::Int8, QuantMethod::Int4Rtn}) {
    QuantizeOptions options;
    options.checkpoint_dir = dir.path() / "float";
    options.out_dir = dir.path() / quant_method_name(method);
    options.method = method;
    options.group_size = group_size;
    quantize_checkpoint(options);
    auto model = LlamaModel::load(options.out_dir, {2});
    check_batched(*model, tokenizer, cases, false, quant_method_name(method));
  }
}

TEST(Reference, Aidreams260KInABatchOf16GivesTheSameTokensAsAlone) {
  LLM_REQUIRE_SHARED("models/aidreams260K-hf/model.safetensors");
  LLM_REQUIRE_SHARED("reference/aidreams260K-greedy.json");
  check_batched_formats("aidreams260K-hf", "aidreams260K-greedy.json", DType::F32, 32);
}

TEST(Reference, ShakespeareInABatchOf16GivesTheSameTokensAsAlone) {
  LLM_REQUIRE_SHARED("models/shakespeare-llama-hf/model.safetensors");
  LLM_REQUIRE_SHARED("reference/shakespeare-llama-greedy.json");
  check_batched_formats("shakespeare-llama-hf", "shakespeare-llama-greedy.json", DType::F16, 128);
}

// Teacher-forced next-token argmax agreement between two checkpoints over the reference texts.
double argmax_agreement(LlamaModel& a, LlamaModel& b, const std::vector<ReferenceCase>& cases) {
  size_t agree = 0, total = 0;
  const size_t vocab = size_t(a.config().vocab_size);
  for (const auto& c : cases) {
    std::vector<int32_t> ids = c.prompt_ids;
    ids.insert(ids.end(), c.generated_ids.begin(), c.generated_ids.end());
    std::vector<float> la(ids.size() * vocab), lb(ids.size() * vocab);
    a.forward_prompt(ids, la, true);
    b.forward_prompt(ids, lb, true);
    for (size_t t = 0; t < ids.size(); ++t) {
      const auto ra = la.begin() + long(t * vocab), rb = lb.begin() + long(t * vocab);
      agree += std::max_element(ra, ra + long(vocab)) - ra == std::max_element(rb, rb + long(vocab)) - rb;
      ++total;
    }
  }
  return double(agree) / double(total);
}

TEST(Reference, Aidreams260KFloat16AgreesWithFloat32) {
  LLM_REQUIRE_SHARED("models/aidreams260K-hf/model.safetensors");
  LLM_REQUIRE_SHARED("reference/aidreams260K-greedy.json");
  TempDir f32, f16;
  convert_hf_checkpoint({shared_dir() / "models" / "aidreams260K-hf", f32.path(), DType::F32, {}});
  convert_hf_checkpoint({shared_dir() / "models" / "aidreams260K-hf", f16.path(), DType::F16, {}});
  auto a = LlamaModel::load(f32.path(), {2});
  auto b = LlamaModel::load(f16.path(), {2});
  const double agreement = argmax_agreement(*a, *b, load_cases("aidreams260K-greedy.json"));
  std::printf("float16 vs float32 teacher-forced argmax agreement: %.2f%%\n", 100 * agreement);
  EXPECT_GE(agreement, 0.97);
}

TEST(Reference, CliGenerateJsonGivesExactlyTheReferenceTokens) {
  LLM_REQUIRE_SHARED("models/aidreams260K-hf/model.safetensors");
  TempDir dir;
  const std::string cli = LLM_CLI_PATH;
  int status = 0;
  run_command(cli + " convert --hf " + shell_quote((shared_dir() / "models" / "aidreams260K-hf").string()) + " --out " +
                  shell_quote(dir.path().string()) + " --dtype float32 2>&1",
              &status);
  ASSERT_EQ(status, 0);
  for (const auto& c : load_cases("aidreams260K-greedy.json")) {
    const std::string command = cli + " generate --checkpoint " + shell_quote(dir.path().string()) + " --prompt " +
                                shell_quote(c.prompt) + " --temperature 0 --max-tokens " +
                                std::to_string(c.generated_ids.size());
    const std::string text = run_command(command + " 2>/dev/null", &status);
    ASSERT_EQ(status, 0);
    EXPECT_EQ(text, c.text) << "plain output is exactly the generated text";
    const auto j = nlohmann::json::parse(run_command(command + " --json", &status));
    ASSERT_EQ(status, 0);
    EXPECT_EQ(j.at("token_ids").get<std::vector<int32_t>>(), c.generated_ids);
    EXPECT_EQ(j.at("text"), c.text);
    EXPECT_EQ(j.at("prompt_tokens"), c.prompt_ids.size());
    EXPECT_EQ(j.at("completion_tokens"), c.generated_ids.size());
    EXPECT_GT(j.at("timings").at("decode_tokens_per_s").get<double>(), 0.0);
  }
  // Bad input: a clear error and a non-zero exit, never a crash.
  const std::string err = run_command(cli + " generate --checkpoint " + shell_quote(dir.path().string()) +
                                          " --prompt \"$(printf '\\377\\376')\" 2>&1",
                                      &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("UTF-8"), std::string::npos) << err;
}

}  // namespace
}  // namespace llm
