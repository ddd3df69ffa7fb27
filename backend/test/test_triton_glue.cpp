// The Triton glue's pure parts: model settings from config JSON and request parsing, both
// tensor styles, and every bad input named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "test_util.h"
#include "tiny_hf_model.h"
#include "triton/engine_factory.h"
#include "triton/model_settings.h"
#include "triton/request_parser.h"

namespace llm::triton {
namespace {

using nlohmann::json;

json config_with(json parameters) {
  json config = {{"name", "m"}, {"max_batch_size", "1"}, {"model_transaction_policy", {{"decoupled", true}}}};
  json p = json::object();
  for (const auto& [k, v] : parameters.items()) p[k] = {{"string_value", v}};
  config["parameters"] = p;
  return config;
}

std::string settings_error(const json& config) {
  try {
    ModelSettings::parse(config, "/models/m/1");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A model whose tensors the backend cannot serve is refused at load, not at every request.
TEST(ModelSettings, InputsAndOutputsMustHaveTheTypesTheBackendHandles) {
  const auto with_io = [](json inputs, json outputs) {
    json config = config_with({{"checkpoint_dir", "/c"}});
    config["input"] = std::move(inputs);
    config["output"] = std::move(outputs);
    return config;
  };
  const auto tensor = [](const char* name, const char* type) { return json{{"name", name}, {"data_type", type}}; };
  const json text_output = tensor("text_output", "TYPE_STRING");
  EXPECT_NO_THROW(ModelSettings::parse(with_io({tensor("text_input", "TYPE_STRING"), tensor("max_tokens", "TYPE_INT32")},
                                               {text_output, tensor("output_ids", "TYPE_INT32")}),
                                       "/m/1"));
  EXPECT_NO_THROW(ModelSettings::parse(with_io({tensor("input_ids", "TYPE_INT64")}, {tensor("output_ids", "TYPE_INT32")}),
                                       "/m/1"));
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_INT32")}, {text_output}))
                .find("input \"text_input\" is declared with data_type TYPE_INT32, but this backend reads it as text "
                      "(set data_type: TYPE_STRING)"),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_STRING")}, json::array()))
                .find("output \"text_output\" (TYPE_STRING) is not"),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("input_ids", "TYPE_INT32")}, {text_output})).find("output \"output_ids\""),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("max_tokens", "TYPE_INT32")}, {text_output}))
                .find("declares neither input \"text_input\""),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_STRING"), tensor("stream", "TYPE_INT32")}, {text_output}))
                .find("input \"stream\" is declared with data_type TYPE_INT32"),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_STRING")}, {tensor("text_output", "TYPE_FP32")}))
                .find("output \"text_output\" is declared with data_type TYPE_FP32"),
            std::string::npos);
  // The usage outputs, typed as Triton's vLLM backend declares them.
  EXPECT_NO_THROW(ModelSettings::parse(
      with_io({tensor("text_input", "TYPE_STRING"), tensor("return_finish_reason", "TYPE_BOOL"),
               tensor("return_num_input_tokens", "TYPE_BOOL"), tensor("return_num_output_tokens", "TYPE_BOOL")},
              {text_output, tensor("finish_reason", "TYPE_STRING"), tensor("num_input_tokens", "TYPE_UINT32"),
               tensor("num_output_tokens", "TYPE_UINT32")}),
      "/m/1"));
  // ... or as tensorrtllm_backend's tensorrt_llm model does (INT32): written in the declared type.
  EXPECT_FALSE(ModelSettings::parse(with_io({tensor("text_input", "TYPE_STRING")}, {text_output, tensor("num_input_tokens", "TYPE_UINT32")}),
                                    "/m/1").token_counts_int32);
  EXPECT_TRUE(ModelSettings::parse(with_io({tensor("input_ids", "TYPE_INT32")},
                                           {tensor("output_ids", "TYPE_INT32"), tensor("num_input_tokens", "TYPE_INT32"),
                                            tensor("num_output_tokens", "TYPE_INT32")}),
                                   "/m/1").token_counts_int32);
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_STRING")}, {text_output, tensor("num_input_tokens", "TYPE_FP32")}))
                .find("output \"num_input_tokens\" is declared with data_type TYPE_FP32, but this backend writes a token "
                      "count to it (set data_type: TYPE_UINT32, or TYPE_INT32)"),
            std::string::npos);
  EXPECT_NE(settings_error(with_io({tensor("text_input", "TYPE_STRING"), tensor("return_finish_reason", "TYPE_INT32")},
                                   {text_output}))
                .find("input \"return_finish_reason\" is declared with data_type TYPE_INT32"),
            std::string::npos);
}

TEST(ModelSettings, ParsesParametersAndResolvesPaths) {
  const auto s = ModelSettings::parse(config_with({{"checkpoint_dir", "../../ckpt"}, {"max_concurrent_requests", "4"},
                                                   {"threads", "2"}, {"exclude_input_in_output", "false"},
                                                   {"max_context_tokens", "512"}}),
                                      "/models/m/1");
  EXPECT_EQ(s.cpu.checkpoint_dir, "/models/ckpt");
  EXPECT_EQ(s.tokenizer_dir, "/models/ckpt");
  EXPECT_EQ(s.cpu.scheduler.max_batch_size, 4u);
  EXPECT_EQ(s.cpu.threads, 2u);
  EXPECT_EQ(s.cpu.context_tokens, 512u) << "the default KV cache is sized for max_context_tokens";
  EXPECT_EQ(s.max_context_tokens, 512);
  EXPECT_FALSE(s.exclude_input_in_output);
  EXPECT_TRUE(s.decoupled);
  EXPECT_EQ(s.max_batch_size, 1);
  EXPECT_EQ(ModelSettings::parse(config_with({{"checkpoint_dir", "/abs"}, {"tokenizer_dir", "tok"}}), "/m/1").tokenizer_dir,
            "/m/1/tok");
}

TEST(ModelSettings, BadParametersAreNamed) {
  EXPECT_NE(settings_error(config_with(json::object())).find("missing parameter \"checkpoint_dir\""), std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"chekpoint", "y"}})).find("unknown parameter \"chekpoint\""),
            std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"threads", "two"}})).find("\"threads\" must be an integer"),
            std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"max_concurrent_requests", "0"}}))
                .find("\"max_concurrent_requests\" must be >= 1"),
            std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"engine", "tensorrtllm"}, {"engine_dir", "e"}}))
                .find("parameter \"checkpoint_dir\" applies only to engine \"cpu\""),
            std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"engine", "gpu"}})).find("\"engine\" must be"),
            std::string::npos);
  EXPECT_NE(settings_error(config_with({{"checkpoint_dir", "x"}, {"exclude_input_in_output", "yes"}}))
                .find("\"exclude_input_in_output\" must be true or false"),
            std::string::npos);
}

TEST(ModelSettings, CpuBatchingAndKvCacheKnobs) {
  const auto s = ModelSettings::parse(config_with({{"checkpoint_dir", "/c"},
                                                   {"max_concurrent_requests", "16"},
                                                   {"max_num_tokens", "512"},
                                                   {"batch_scheduler_policy", "max_utilization"},
                                                   {"max_tokens_in_paged_kv_cache", "32768"},
                                                   {"tokens_per_block", "32"},
                                                   {"enable_kv_cache_reuse", "true"},
                                                   {"enable_chunked_context", "false"},
                                                   {"max_queue_size", "100"},
                                                   {"stats_check_period_ms", "250"}}),
                                      "/m/1");
  const SchedulerOptions& b = s.cpu.scheduler;
  EXPECT_EQ(b.max_batch_size, 16u);
  EXPECT_EQ(b.max_num_tokens, 512u);
  EXPECT_EQ(b.policy, CapacityPolicy::MaxUtilization);
  EXPECT_EQ(b.tokens_per_block, 32u);
  EXPECT_TRUE(b.enable_kv_cache_reuse);
  EXPECT_FALSE(b.enable_chunked_context);
  EXPECT_EQ(b.max_queue_size, 100u);
  EXPECT_EQ(s.cpu.max_tokens_in_paged_kv_cache, 32768u);
  EXPECT_FALSE(s.cpu.kv_cache_memory_bytes);
  EXPECT_EQ(s.cpu.stats_period, std::chrono::milliseconds(250));

  const auto defaults = ModelSettings::parse(config_with({{"checkpoint_dir", "/c"}}), "/m/1");
  const SchedulerOptions& d = defaults.cpu.scheduler;
  EXPECT_EQ(d.max_batch_size, 8u);
  EXPECT_EQ(d.max_num_tokens, 128u);
  EXPECT_EQ(d.policy, CapacityPolicy::GuaranteedNoEvict);
  EXPECT_EQ(d.tokens_per_block, 64u);
  EXPECT_TRUE(d.enable_chunked_context) << "the CPU engine chunks long prompts by default";
  EXPECT_FALSE(d.enable_kv_cache_reuse);
  EXPECT_EQ(d.max_queue_size, 0u) << "unbounded, as Triton's queues";
  EXPECT_FALSE(defaults.cpu.max_tokens_in_paged_kv_cache);
  EXPECT_EQ(ModelSettings::parse(config_with({{"checkpoint_dir", "/c"}, {"kv_cache_memory_bytes", "1073741824"}}), "/m/1")
                .cpu.kv_cache_memory_bytes,
            size_t{1} << 30);

  const auto cpu_error = [](json extra) {
    json p = {{"checkpoint_dir", "/c"}};
    for (const auto& [k, v] : extra.items()) p[k] = v;
    return settings_error(config_with(p));
  };
  EXPECT_NE(cpu_error({{"max_tokens_in_paged_kv_cache", "4096"}, {"kv_cache_memory_bytes", "1000000"}})
                .find("set one of them"),
            std::string::npos);
  EXPECT_NE(cpu_error({{"max_num_tokens", "4"}}).find("\"max_num_tokens\" (4) must be at least \"max_concurrent_requests\" (8)"),
            std::string::npos);
  EXPECT_NE(cpu_error({{"tokens_per_block", "0"}}).find("\"tokens_per_block\" must be >= 1"), std::string::npos);
  EXPECT_NE(cpu_error({{"batch_scheduler_policy", "fifo"}}).find("\"batch_scheduler_policy\" must be"), std::string::npos);
  EXPECT_NE(cpu_error({{"max_queue_size", "-1"}}).find("\"max_queue_size\" must be >= 0"), std::string::npos);
  EXPECT_NE(cpu_error({{"kv_cache_free_gpu_mem_fraction", "0.9"}}).find("applies only to engine \"tensorrtllm\""),
            std::string::npos);
}

TEST(ModelSettings, TensorRtLlmEngineAndTensorrtllmBackendKnobs) {
  const auto s = ModelSettings::parse(config_with({{"engine", "tensorrtllm"},
                                                   {"engine_dir", "../../engines/llama2-7b-awq"},
                                                   {"tokenizer_dir", "/hf/Llama-2-7b-hf"},
                                                   {"batching_strategy", "inflight_fused_batching"},
                                                   {"batch_scheduler_policy", "max_utilization"},
                                                   {"max_tokens_in_paged_kv_cache", "8192"},
                                                   {"kv_cache_free_gpu_mem_fraction", "0.85"},
                                                   {"enable_kv_cache_reuse", "true"},
                                                   {"enable_chunked_context", "true"},
                                                   {"cancellation_check_period_ms", "25"},
                                                   {"stats_check_period_ms", "1000"},
                                                   {"max_concurrent_requests", "16"},
                                                   {"max_num_tokens", "4096"},
                                                   {"max_queue_size", "32"},
                                                   {"max_context_tokens", "2048"}}),
                                      "/models/m/1");
  EXPECT_EQ(s.engine, "tensorrtllm");
  EXPECT_EQ(s.tensorrtllm.engine_dir, "/models/engines/llama2-7b-awq");
  EXPECT_EQ(s.tokenizer_dir, "/hf/Llama-2-7b-hf");
  EXPECT_EQ(s.tensorrtllm.scheduler_policy, TensorRtLlmOptions::SchedulerPolicy::MaxUtilization);
  EXPECT_EQ(s.tensorrtllm.max_tokens_in_paged_kv_cache, 8192);
  EXPECT_EQ(s.tensorrtllm.kv_cache_free_gpu_mem_fraction, 0.85f);
  EXPECT_TRUE(s.tensorrtllm.enable_kv_cache_reuse);
  EXPECT_TRUE(s.tensorrtllm.enable_chunked_context);
  EXPECT_EQ(s.tensorrtllm.cancellation_check_period, std::chrono::milliseconds(25));
  EXPECT_EQ(s.tensorrtllm.stats_check_period, std::chrono::milliseconds(1000));
  EXPECT_EQ(s.tensorrtllm.max_batch_size, 16);
  EXPECT_EQ(s.tensorrtllm.max_num_tokens, 4096);
  EXPECT_EQ(s.tensorrtllm.max_queue_size, 32u);
  EXPECT_EQ(s.max_context_tokens, 2048);

  const auto defaults = ModelSettings::parse(config_with({{"engine", "tensorrtllm"}, {"engine_dir", "/e"}}), "/m/1");
  EXPECT_EQ(defaults.tokenizer_dir, "/e") << "the tokenizer defaults to the engine folder";
  EXPECT_EQ(defaults.tensorrtllm.scheduler_policy, TensorRtLlmOptions::SchedulerPolicy::GuaranteedNoEvict);
  EXPECT_FALSE(defaults.tensorrtllm.max_tokens_in_paged_kv_cache);
  EXPECT_FALSE(defaults.tensorrtllm.kv_cache_free_gpu_mem_fraction);
  EXPECT_EQ(defaults.tensorrtllm.cancellation_check_period, std::chrono::milliseconds(100));
  EXPECT_FALSE(defaults.tensorrtllm.max_batch_size);
  EXPECT_FALSE(defaults.tensorrtllm.max_num_tokens);
  EXPECT_FALSE(defaults.tensorrtllm.enable_chunked_context) << "tensorrtllm_backend's default";
  EXPECT_NE(settings_error(config_with({{"engine", "tensorrtllm"}, {"engine_dir", "/e"}, {"batching_strategy", "V1"}}))
                .find("\"batching_strategy\" is \"V1\" (static batching): not supported"),
            std::string::npos);
}

TEST(ModelSettings, TensorRtLlmErrorsAreNamed) {
  auto trt = [](json extra) {
    json p = {{"engine", "tensorrtllm"}, {"engine_dir", "/e"}};
    for (const auto& [k, v] : extra.items()) p[k] = v;
    return settings_error(config_with(p));
  };
  auto contains = [](const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
  };
  EXPECT_TRUE(contains(settings_error(config_with({{"engine", "tensorrtllm"}})), "missing parameter \"engine_dir\""));
  EXPECT_TRUE(contains(trt({{"batching_strategy", "dynamic"}}), "\"batching_strategy\" must be \"inflight_fused_batching\", got \"dynamic\""));
  EXPECT_TRUE(contains(trt({{"batch_scheduler_policy", "fifo"}}), "\"batch_scheduler_policy\" must be"));
  EXPECT_TRUE(contains(trt({{"kv_cache_free_gpu_mem_fraction", "1.5"}}), "\"kv_cache_free_gpu_mem_fraction\" must be in (0, 1]"));
  EXPECT_TRUE(contains(trt({{"kv_cache_free_gpu_mem_fraction", "most"}}), "must be a number"));
  EXPECT_TRUE(contains(trt({{"max_tokens_in_paged_kv_cache", "0"}}), "\"max_tokens_in_paged_kv_cache\" must be >= 1"));
  EXPECT_TRUE(contains(trt({{"cancellation_check_period_ms", "0"}}), "\"cancellation_check_period_ms\" must be >= 1"));
  EXPECT_TRUE(contains(trt({{"enable_chunked_context", "yes"}}), "\"enable_chunked_context\" must be true or false"));
  EXPECT_TRUE(contains(trt({{"threads", "4"}}), "parameter \"threads\" applies only to engine \"cpu\""));
  EXPECT_TRUE(contains(trt({{"tokens_per_block", "64"}}), "parameter \"tokens_per_block\" applies only to engine \"cpu\""));
  EXPECT_TRUE(contains(settings_error(config_with({{"checkpoint_dir", "x"}, {"engine_dir", "/e"}})),
                       "parameter \"engine_dir\" applies only to engine \"tensorrtllm\""));
  EXPECT_TRUE(contains(settings_error(config_with({{"checkpoint_dir", "x"}, {"kv_cache_free_gpu_mem_fraction", "0.9"}})),
                       "set parameter \"engine\" to \"tensorrtllm\""));
  EXPECT_TRUE(contains(trt({{"gpt_model_path", "/e"}}),
                       "parameters \"gpt_model_path\" (tensorrtllm_backend's name) and \"engine_dir\" are the same setting"));
  EXPECT_TRUE(contains(trt({{"max_beam_width", "4"}}), "\"max_beam_width\" is 4, but this backend decodes one beam"));
  EXPECT_TRUE(contains(trt({{"decoding_mode", "beam_search"}}), "\"decoding_mode\" is \"beam_search\""));
  EXPECT_TRUE(contains(trt({{"gpu_device_ids", "0,1"}}), "\"gpu_device_ids\" is \"0,1\", but this backend runs each model on GPU 0"));
  EXPECT_TRUE(contains(trt({{"encoder_model_path", "/encoder"}}), "serves decoder-only models"));
  EXPECT_TRUE(contains(trt({{"lora_cache_gpu_memory_fraxion", "0.1"}}), "unknown parameter \"lora_cache_gpu_memory_fraxion\""));
}

// NVIDIA's tensorrt_llm model config.pbtxt (tensorrtllm_backend's all_models/inflight_batcher_llm),
// its parameters filled as fill_template.py leaves them (optional ones unfilled), loads with only
// `backend` changed: its names map to this backend's, what does not apply is noted, not refused.
TEST(ModelSettings, TensorrtllmBackendConfigLoadsAsPublished) {
  json p = {{"max_beam_width", "1"},
            {"FORCE_CPU_ONLY_INPUT_TENSORS", "no"},
            {"gpt_model_type", "inflight_fused_batching"},
            {"gpt_model_path", "/engines/llama"},
            {"encoder_model_path", "${encoder_engine_dir}"},
            {"max_tokens_in_paged_kv_cache", "${max_tokens_in_paged_kv_cache}"},
            {"max_attention_window_size", "${max_attention_window_size}"},
            {"sink_token_length", "${sink_token_length}"},
            {"batch_scheduler_policy", "guaranteed_no_evict"},
            {"kv_cache_free_gpu_mem_fraction", "0.5"},
            {"cross_kv_cache_fraction", "${cross_kv_cache_fraction}"},
            {"kv_cache_host_memory_bytes", "${kv_cache_host_memory_bytes}"},
            {"kv_cache_onboard_blocks", "${kv_cache_onboard_blocks}"},
            {"enable_trt_overlap", "${enable_trt_overlap}"},
            {"exclude_input_in_output", "true"},
            {"cancellation_check_period_ms", "${cancellation_check_period_ms}"},
            {"stats_check_period_ms", "${stats_check_period_ms}"},
            {"iter_stats_max_iterations", "${iter_stats_max_iterations}"},
            {"request_stats_max_iterations", "${request_stats_max_iterations}"},
            {"enable_kv_cache_reuse", "false"},
            {"normalize_log_probs", "true"},
            {"enable_chunked_context", "true"},
            {"gpu_device_ids", "${gpu_device_ids}"},
            {"participant_ids", "${participant_ids}"},
            {"num_nodes", "${num_nodes}"},
            {"lora_cache_optimal_adapter_size", "${lora_cache_optimal_adapter_size}"},
            {"lora_cache_max_adapter_size", "${lora_cache_max_adapter_size}"},
            {"lora_cache_gpu_memory_fraction", "${lora_cache_gpu_memory_fraction}"},
            {"lora_cache_host_memory_bytes", "${lora_cache_host_memory_bytes}"},
            {"lora_prefetch_dir", "${lora_prefetch_dir}"},
            {"decoding_mode", "top_k_top_p"},
            {"executor_worker_path", "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker"},
            {"lookahead_window_size", "${lookahead_window_size}"},
            {"lookahead_ngram_size", "${lookahead_ngram_size}"},
            {"lookahead_verification_set_size", "${lookahead_verification_set_size}"},
            {"medusa_choices", "${medusa_choices}"},
            {"eagle_choices", "${eagle_choices}"},
            {"gpu_weights_percent", "${gpu_weights_percent}"},
            {"enable_context_fmha_fp32_acc", "${enable_context_fmha_fp32_acc}"},
            {"multi_block_mode", "${multi_block_mode}"},
            {"cuda_graph_mode", "${cuda_graph_mode}"},
            {"cuda_graph_cache_size", "${cuda_graph_cache_size}"},
            {"speculative_decoding_fast_logits", "${speculative_decoding_fast_logits}"},
            {"tokenizer_dir", "/tokenizers/llama"},
            {"guided_decoding_backend", "${guided_decoding_backend}"},
            {"xgrammar_tokenizer_info_path", "${xgrammar_tokenizer_info_path}"}};
  json config = config_with(p);
  const auto tensor = [](const char* name, const char* type) { return json{{"name", name}, {"data_type", type}}; };
  config["input"] = {tensor("input_ids", "TYPE_INT32"), tensor("input_lengths", "TYPE_INT32"),
                     tensor("request_output_len", "TYPE_INT32"), tensor("end_id", "TYPE_INT32"),
                     tensor("stop_words_list", "TYPE_INT32"), tensor("runtime_top_k", "TYPE_INT32"),
                     tensor("runtime_top_p", "TYPE_FP32"), tensor("temperature", "TYPE_FP32"),
                     tensor("random_seed", "TYPE_UINT64"), tensor("return_log_probs", "TYPE_BOOL"),
                     tensor("stop", "TYPE_BOOL"), tensor("streaming", "TYPE_BOOL")};
  config["output"] = {tensor("output_ids", "TYPE_INT32"), tensor("sequence_length", "TYPE_INT32"),
                      tensor("cum_log_probs", "TYPE_FP32"), tensor("output_log_probs", "TYPE_FP32"),
                      tensor("batch_index", "TYPE_INT32")};
  const ModelSettings s = ModelSettings::parse(config, "/models/tensorrt_llm/1");
  EXPECT_EQ(s.engine, "tensorrtllm");
  EXPECT_EQ(s.tensorrtllm.engine_dir, "/engines/llama");
  EXPECT_EQ(s.tensorrtllm.kv_cache_free_gpu_mem_fraction, 0.5f);
  EXPECT_FALSE(s.tensorrtllm.max_tokens_in_paged_kv_cache.has_value());  // unfilled: not set
  EXPECT_TRUE(s.tensorrtllm.enable_chunked_context);
  EXPECT_EQ(s.tokenizer_dir, "/tokenizers/llama");
  const auto noted = [&](const std::string& needle) {
    return std::any_of(s.notes.begin(), s.notes.end(), [&](const std::string& n) { return n.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(noted("parameter \"FORCE_CPU_ONLY_INPUT_TENSORS\" (tensorrtllm_backend) is ignored"));
  EXPECT_TRUE(noted("parameter \"normalize_log_probs\" (tensorrtllm_backend) is ignored"));
  EXPECT_TRUE(noted("parameters left as unfilled template values (\"${...}\"), so not set: "));
  EXPECT_TRUE(noted(", max_tokens_in_paged_kv_cache, "));
  EXPECT_TRUE(noted("\"decoding_mode\""));
  // A filled max_tokens_in_paged_kv_cache applies, as in tensorrtllm_backend.
  config["parameters"]["max_tokens_in_paged_kv_cache"] = {{"string_value", "4096"}};
  EXPECT_EQ(ModelSettings::parse(config, "/m/1").tensorrtllm.max_tokens_in_paged_kv_cache, 4096);
}

// A wrong checkpoint_dir is named as such, not as the first file missing from it.
TEST(EngineFactory, ACheckpointDirThatIsNotACheckpointIsNamed) {
  const auto error_for = [](const std::string& dir) {
    try {
      check_engine_available(ModelSettings::parse(config_with({{"checkpoint_dir", dir}}), "/m/1"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  test::TempDir dir;
  EXPECT_NE(error_for(dir.path().string()).find("parameter checkpoint_dir: " + dir.path().string() +
                                                " has no config.json, so it is not a TensorRT-LLM checkpoint"),
            std::string::npos);
  EXPECT_NE(error_for("/nonexistent/ckpt").find("parameter checkpoint_dir: /nonexistent/ckpt does not exist"),
            std::string::npos);
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_NE(error_for((dir.path() / "file").string()).find("is not a directory"), std::string::npos);
  // "" is the version folder itself.
  EXPECT_NE(error_for("").find("parameter checkpoint_dir: /m/1"), std::string::npos);
}

TEST(EngineFactory, TensorRtLlmNeedsABuildWithIt) {
  if (tensorrtllm_available()) GTEST_SKIP() << "this build has the TensorRT-LLM engine";
  test::TempDir dir;
  const Tokenizer tokenizer(test::write_fake_llama_tokenizer(dir.path()));
  const auto settings = ModelSettings::parse(config_with({{"engine", "tensorrtllm"}, {"engine_dir", dir.path().string()}}), "/m/1");
  try {
    make_engine(settings, tokenizer, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("built without TensorRT-LLM"), std::string::npos) << message;
    EXPECT_NE(message.find("-DLLM_WITH_TENSORRTLLM=ON"), std::string::npos) << message;
  }
}

// Builders for Triton input tensors as clients send them (with the batch dimension).
InputTensor bytes_tensor(const std::vector<std::string>& values) {
  InputTensor t{TRITONSERVER_TYPE_BYTES, {1, static_cast<int64_t>(values.size())}, {}};
  for (const auto& v : values) {
    const uint32_t n = static_cast<uint32_t>(v.size());
    t.data.append(reinterpret_cast<const char*>(&n), 4);
    t.data += v;
  }
  return t;
}
template <typename T>
InputTensor tensor(TRITONSERVER_DataType type, std::vector<T> values, std::vector<int64_t> shape = {}) {
  InputTensor t{type, shape.empty() ? std::vector<int64_t>{1, static_cast<int64_t>(values.size())} : shape, {}};
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return t;
}
InputTensor i32(std::vector<int32_t> v, std::vector<int64_t> shape = {}) { return tensor(TRITONSERVER_TYPE_INT32, v, shape); }
InputTensor f32(float v) { return tensor(TRITONSERVER_TYPE_FP32, std::vector<float>{v}); }
InputTensor boolean(bool v) { return tensor(TRITONSERVER_TYPE_BOOL, std::vector<uint8_t>{v}); }

class RequestParserTest : public ::testing::Test {
 protected:
  void SetUp() override { tokenizer_ = std::make_unique<Tokenizer>(test::write_fake_llama_tokenizer(dir_.path())); }
  ParsedRequest parse(const RequestInputs& inputs) {
    return parse_request(inputs, RequestLimits{settings_, *tokenizer_, 32000, 64, {2}});
  }
  std::string error(const RequestInputs& inputs) {
    try {
      parse(inputs);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "";
  }
  test::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ModelSettings settings_;
};

TEST_F(RequestParserTest, TextStyleDefaultsToGreedyLikeTensorRtLlm) {
  const auto r = parse({{"text_input", bytes_tensor({"p300p301"})}, {"max_tokens", i32({5})}});
  EXPECT_TRUE(r.text_style);
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.exclude_input_in_output);
  EXPECT_EQ(r.prompt_text, "p300p301");
  EXPECT_EQ(r.generation.prompt_ids.front(), 1) << "BOS first";
  EXPECT_EQ(r.generation.max_tokens, 5);
  EXPECT_TRUE(r.generation.sampling.greedy());
  EXPECT_EQ(r.generation.end_ids, std::vector<int32_t>{2});
}

TEST_F(RequestParserTest, SamplingInputsOfBothStyles) {
  auto r = parse({{"text_input", bytes_tensor({"x"})}, {"max_tokens", i32({5})}, {"top_k", i32({40})},
                  {"temperature", f32(0.7f)}, {"stream", boolean(true)}, {"random_seed", tensor(TRITONSERVER_TYPE_UINT64, std::vector<uint64_t>{99})},
                  {"stop_words", bytes_tensor({"\n\n", ""})}, {"min_length", i32({2})}, {"return_log_probs", boolean(true)}});
  EXPECT_FALSE(r.generation.sampling.greedy());
  EXPECT_EQ(r.generation.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.generation.sampling.temperature, 0.7f);
  EXPECT_EQ(r.generation.sampling.top_p, 1.0f) << "top_p 0/absent means off once sampling is on";
  EXPECT_EQ(r.generation.sampling.seed, 99u);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.generation.stop_strings, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(r.generation.min_tokens, 2);
  EXPECT_TRUE(r.generation.return_log_probs);
  EXPECT_FALSE(r.return_finish_reason || r.return_num_input_tokens || r.return_num_output_tokens) << "off unless asked";

  r = parse({{"text_input", bytes_tensor({"x"})}, {"max_tokens", i32({5})}, {"return_finish_reason", boolean(true)},
             {"return_num_input_tokens", boolean(true)}, {"return_num_output_tokens", boolean(false)}});
  EXPECT_TRUE(r.return_finish_reason);
  EXPECT_TRUE(r.return_num_input_tokens);
  EXPECT_FALSE(r.return_num_output_tokens);

  r = parse({{"input_ids", i32({1, 500, 600, 0}, {1, 4})}, {"input_lengths", i32({3})}, {"request_output_len", i32({7})},
             {"runtime_top_p", f32(0.9f)}, {"streaming", boolean(true)}, {"end_id", i32({7})},
             {"stop_words_list", i32({10, 11, 12, 2, 3, -1}, {1, 2, 3})}, {"exclude_input_in_output", boolean(false)}});
  EXPECT_FALSE(r.text_style);
  EXPECT_EQ(r.generation.prompt_ids, (std::vector<int32_t>{1, 500, 600}));
  EXPECT_EQ(r.generation.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.generation.sampling.top_p, 0.9f);
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.exclude_input_in_output);
  EXPECT_EQ(r.generation.end_ids, std::vector<int32_t>{7});
  EXPECT_EQ(r.generation.stop_token_sequences, (std::vector<std::vector<int32_t>>{{10, 11}, {12}}));
}

// Text is refused by its size before it is tokenized (on the model's execution thread, in time and
// memory growing with the bytes): by default 32 bytes per context token, or max_prompt_bytes.
TEST_F(RequestParserTest, TextBeyondThePromptByteLimitIsRefusedBeforeTokenizing) {
  const auto request = [](std::string prompt, std::vector<std::string> stop_words = {}) {
    RequestInputs inputs = {{"text_input", bytes_tensor({std::move(prompt)})}, {"max_tokens", i32({1})}};
    if (!stop_words.empty()) inputs["stop_words"] = bytes_tensor(stop_words);
    return inputs;
  };
  // The fixture's context is 64 tokens: 2,048 bytes by default.
  const std::string at_limit = error(request(std::string(2048, 'z')));
  EXPECT_NE(at_limit.find("leaves no room in the context"), std::string::npos) << "tokenized: " << at_limit;
  const std::string over = error(request(std::string(2049, 'z')));
  EXPECT_NE(over.find("input 'text_input': is 2049 bytes, more than this model's limit of 2048 (parameter "
                      "max_prompt_bytes, by default 32 bytes per token of the context of 64)"),
            std::string::npos)
      << over;
  EXPECT_NE(over.find("raise max_prompt_bytes in the model's config.pbtxt"), std::string::npos) << over;
  const std::string huge = error(request(std::string(8 << 20, 'z')));
  EXPECT_NE(huge.find("is 8388608 bytes"), std::string::npos) << huge;
  const std::string stop = error(request("hello", {std::string(2000, 'a'), std::string(49, 'b')}));
  EXPECT_NE(stop.find("input 'stop_words': is 2049 bytes"), std::string::npos) << stop;

  settings_ = ModelSettings::parse(config_with({{"checkpoint_dir", "/c"}, {"max_prompt_bytes", "10"}}), "/m/1");
  EXPECT_NO_THROW(parse(request("p300p301z1")));
  EXPECT_NE(error(request("p300p301z12")).find("is 11 bytes, more than this model's limit of 10 (parameter max_prompt_bytes)"),
            std::string::npos);
  EXPECT_NE(error(request("hi", {"abcdefghijk"})).find("input 'stop_words': is 11 bytes"), std::string::npos);
}

TEST_F(RequestParserTest, EveryBadInputIsNamed) {
  const RequestInputs base = {{"text_input", bytes_tensor({"hello"})}, {"max_tokens", i32({5})}};
  auto with = [&](const std::string& name, InputTensor t) {
    RequestInputs inputs = base;
    inputs[name] = std::move(t);
    return inputs;
  };
  auto without = [&](const std::string& name) {
    RequestInputs inputs = base;
    inputs.erase(name);
    return inputs;
  };
  EXPECT_NE(error(without("text_input")).find("input 'text_input': send exactly one of"), std::string::npos);
  EXPECT_NE(error(with("input_ids", i32({1, 2}))).find("send exactly one of"), std::string::npos);
  EXPECT_NE(error(without("max_tokens")).find("input 'max_tokens': is required"), std::string::npos);
  EXPECT_NE(error(with("text_input", bytes_tensor({""}))).find("input 'text_input': the prompt is empty"), std::string::npos);
  EXPECT_NE(error(with("text_input", bytes_tensor({"\xff"}))).find("input 'text_input'"), std::string::npos);
  EXPECT_NE(error(with("text_input", i32({3}))).find("input 'text_input': must be BYTES"), std::string::npos);
  EXPECT_NE(error(with("text_input", bytes_tensor({"a", "b"}))).find("exactly one prompt"), std::string::npos);
  EXPECT_NE(error(with("max_tokens", i32({0}))).find("input 'max_tokens': must be an integer from 1 to"), std::string::npos);
  EXPECT_NE(error(with("max_tokens", i32({1000}))).find("input 'max_tokens'"), std::string::npos);
  EXPECT_NE(error(with("max_tokens", i32({1, 2}))).find("exactly one value"), std::string::npos);
  EXPECT_NE(error(with("text_input", bytes_tensor({std::string(200, 'z')}))).find("leaves no room in the context"), std::string::npos);
  EXPECT_NE(error(with("temperature", f32(-1))).find("input 'temperature'"), std::string::npos);
  EXPECT_NE(error(with("top_p", f32(1.5f))).find("input 'top_p'"), std::string::npos);
  EXPECT_NE(error(with("top_k", i32({-3}))).find("input 'top_k'"), std::string::npos);
  EXPECT_NE(error(with("repetition_penalty", f32(0))).find("input 'repetition_penalty'"), std::string::npos);
  EXPECT_NE(error(with("beam_width", i32({4}))).find("input 'beam_width'"), std::string::npos);
  EXPECT_NE(error(with("stream", i32({1}))).find("input 'stream': must be BOOL"), std::string::npos);
  EXPECT_NE(error(with("end_id", i32({40000}))).find("input 'end_id'"), std::string::npos);
  EXPECT_NE(error(with("return_generation_logits", boolean(true))).find("input 'return_generation_logits'"), std::string::npos);
  EXPECT_NE(error(with("runtime_top_p_decay", f32(0.5f))).find("input 'runtime_top_p_decay'"), std::string::npos);
  EXPECT_NE(error(with("stop_words_list", i32({1, 2, 3, 3}, {1, 2, 2}))).find("input 'stop_words_list'"), std::string::npos);
  // Ids outside int32 or not integers (INT64 and FP32 lists are read too) are refused, never cast.
  const auto id_error = "token ids must be integers in int32's range";
  EXPECT_NE(error(with("stop_words_list", tensor(TRITONSERVER_TYPE_INT64, std::vector<int64_t>{int64_t{1} << 40, 1}, {1, 2, 1})))
                .find(std::string("input 'stop_words_list': ") + id_error),
            std::string::npos);
  EXPECT_NE(error(with("bad_words_list", tensor(TRITONSERVER_TYPE_FP32, std::vector<float>{-3e9f, 1}, {1, 2, 1})))
                .find(std::string("input 'bad_words_list': ") + id_error),
            std::string::npos);
  EXPECT_NE(error(with("bad_words_list", tensor(TRITONSERVER_TYPE_FP32, std::vector<float>{2.5f, 1}, {1, 2, 1})))
                .find(std::string("input 'bad_words_list': ") + id_error),
            std::string::npos);
  InputTensor cut = bytes_tensor({"hello"});
  cut.data.resize(6);
  EXPECT_NE(error(with("text_input", cut)).find("runs past the tensor's end"), std::string::npos);
  EXPECT_NE(error({{"input_ids", i32({1, 32000})}, {"request_output_len", i32({3})}}).find("input 'input_ids': token id 32000"),
            std::string::npos);
  EXPECT_NE(error({{"input_ids", i32({1, 2})}, {"input_lengths", i32({5})}, {"request_output_len", i32({3})}})
                .find("input 'input_lengths'"),
            std::string::npos);
  // Every string input is UTF-8, and the error names the input that is not.
  for (const char* words : {"bad_words", "stop_words", "embedding_bias_words"}) {
    EXPECT_NE(error(with(words, bytes_tensor({"fine", "\xc3"}))).find(std::string("input '") + words + "': " + words +
                                                                         " is not valid UTF-8"),
              std::string::npos)
        << words;
  }
  // A shape whose element count overflows 64 bits is the client's error, not a failed allocation.
  InputTensor huge = i32({1, 2});
  huge.shape = {1, (int64_t{1} << 62) + 1, 4};
  EXPECT_NE(error({{"input_ids", huge}, {"request_output_len", i32({3})}}).find("input 'input_ids': has a shape whose element count overflows 64 bits"),
            std::string::npos);
  InputTensor negative = i32({5});
  negative.shape = {-1};
  EXPECT_NE(error(with("max_tokens", negative)).find("input 'max_tokens': has a negative dimension"), std::string::npos);
}

TEST_F(RequestParserTest, StopRequest) {
  EXPECT_TRUE(parse({{"stop", boolean(true)}}).stop_request);
}

}  // namespace
}  // namespace llm::triton
