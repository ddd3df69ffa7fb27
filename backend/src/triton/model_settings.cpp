#include "triton/model_settings.h"

#include <cmath>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"

namespace llm::triton {

using nlohmann::json;

namespace {

// Triton's JSON puts each parameter's value in {"string_value": "..."}.
std::string parameter_text(const json& parameters, const std::string& key) {
  const json& entry = parameters.at(key);
  if (!entry.is_object() || !entry.contains("string_value") || !entry["string_value"].is_string())
    throw_error("parameter \"", key, "\" must have a string_value");
  return entry["string_value"].get<std::string>();
}

int64_t parse_integer(const std::string& key, const std::string& text, int64_t min, int64_t max = INT64_MAX) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  if (text.empty() || used != text.size())
    throw_error("parameter \"", key, "\" must be an integer, got \"", text, "\"");
  if (value < min) throw_error("parameter \"", key, "\" must be >= ", min, ", got ", value);
  if (value > max) throw_error("parameter \"", key, "\" must be <= ", max, ", got ", value);
  return value;
}

// A number in (min_exclusive, max_inclusive].
float parse_fraction(const std::string& key, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || !std::isfinite(value))
    throw_error("parameter \"", key, "\" must be a number, got \"", text, "\"");
  if (value <= 0 || value > 1) throw_error("parameter \"", key, "\" must be in (0, 1], got ", text);
  return static_cast<float>(value);
}

bool parse_bool(const std::string& key, const std::string& text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  throw_error("parameter \"", key, "\" must be true or false, got \"", text, "\"");
}

// Triton prints int64 fields as JSON strings; accept numbers too.
int64_t json_integer(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_string()) return std::stoll(value.get<std::string>());
  return 0;
}

std::filesystem::path resolve(const std::filesystem::path& version_dir, const std::string& text) {
  const std::filesystem::path path(text);
  return (path.is_absolute() ? path : version_dir / path).lexically_normal();
}

// Every parameter the backend knows, with the engine it belongs to ("" = both).
const std::map<std::string, std::string>& known_parameters() {
  static const std::map<std::string, std::string> known = {
      {"engine", ""},
      {"tokenizer_dir", ""},
      {"max_context_tokens", ""},
      {"max_prompt_bytes", ""},
      {"exclude_input_in_output", ""},
      {"max_concurrent_requests", ""},
      {"max_num_tokens", ""},
      {"batch_scheduler_policy", ""},
      {"max_tokens_in_paged_kv_cache", ""},
      {"enable_kv_cache_reuse", ""},
      {"enable_chunked_context", ""},
      {"stats_check_period_ms", ""},
      {"checkpoint_dir", "cpu"},
      {"threads", "cpu"},
      {"tokens_per_block", "cpu"},
      {"kv_cache_memory_bytes", "cpu"},
      {"max_queue_size", ""},
      {"engine_dir", "tensorrtllm"},
      {"batching_strategy", "tensorrtllm"},
      {"kv_cache_free_gpu_mem_fraction", "tensorrtllm"},
      {"cancellation_check_period_ms", "tensorrtllm"},
  };
  return known;
}

// tensorrtllm_backend's own spellings of parameters this backend takes under its names.
const std::map<std::string, std::string>& tensorrtllm_backend_aliases() {
  static const std::map<std::string, std::string> aliases = {
      {"gpt_model_path", "engine_dir"},
      {"gpt_model_type", "batching_strategy"},
  };
  return aliases;
}

// tensorrtllm_backend's parameters (its tensorrt_llm model's config.pbtxt) that this backend
// accepts and does not apply, with why; values that would change results are checked apart.
const std::map<std::string, std::string>& tensorrtllm_backend_ignored() {
  static const std::map<std::string, std::string> ignored = {
      {"FORCE_CPU_ONLY_INPUT_TENSORS", "inputs are always read from CPU memory"},
      {"max_attention_window_size", "every sequence attends to its whole context"},
      {"sink_token_length", "every sequence attends to its whole context"},
      {"cross_kv_cache_fraction", "encoder-decoder models are not served"},
      {"kv_cache_host_memory_bytes", "the KV cache is not offloaded"},
      {"kv_cache_onboard_blocks", "the KV cache is not offloaded"},
      {"enable_trt_overlap", "removed from TensorRT-LLM"},
      {"iter_stats_max_iterations", "statistics go to the metrics endpoint"},
      {"request_stats_max_iterations", "statistics go to the metrics endpoint"},
      {"recv_poll_period_ms", "orchestrator mode is not used"},
      {"normalize_log_probs", "log probabilities are always those of the normalized distribution"},
      {"participant_ids", "orchestrator mode is not used"},
      {"num_nodes", "one node"},
      {"executor_worker_path", "orchestrator mode is not used"},
      {"lora_cache_optimal_adapter_size", "LoRA adapters are not served"},
      {"lora_cache_max_adapter_size", "LoRA adapters are not served"},
      {"lora_cache_gpu_memory_fraction", "LoRA adapters are not served"},
      {"lora_cache_host_memory_bytes", "LoRA adapters are not served"},
      {"lora_prefetch_dir", "LoRA adapters are not served"},
      {"gpu_weights_percent", "weights are not streamed from host memory"},
      {"enable_context_fmha_fp32_acc", "a TensorRT-LLM tuning knob"},
      {"multi_block_mode", "a TensorRT-LLM tuning knob"},
      {"cuda_graph_mode", "a TensorRT-LLM tuning knob"},
      {"cuda_graph_cache_size", "a TensorRT-LLM tuning knob"},
      {"speculative_decoding_fast_logits", "speculative decoding is not served"},
      {"lookahead_window_size", "speculative decoding is not served"},
      {"lookahead_ngram_size", "speculative decoding is not served"},
      {"lookahead_verification_set_size", "speculative decoding is not served"},
      {"medusa_choices", "speculative decoding is not served"},
      {"eagle_choices", "speculative decoding is not served"},
      {"guided_decoding_backend", "guided decoding is not served"},
      {"xgrammar_tokenizer_info_path", "guided decoding is not served"},
  };
  return ignored;
}

// A value tensorrtllm_backend's fill_template.py left as it was ("${max_beam_width}"): that
// backend treats such a parameter as not given, and so does this one.
bool unfilled_template(const std::string& text) {
  return text.size() >= 3 && text.starts_with("${") && text.ends_with("}");
}

// A tensorrtllm_backend config.pbtxt's parameters in this backend's terms: unfilled template
// values dropped, its aliases renamed, the parameters that do not apply dropped (the few whose
// values could matter are left to check_tensorrtllm_backend_values); each noted in `notes`.
json translate_tensorrtllm_backend_parameters(const json& given, std::vector<std::string>& notes) {
  json parameters = json::object();
  std::string unfilled;
  for (const auto& [key, value] : given.items()) {
    const bool text = value.is_object() && value.contains("string_value") && value["string_value"].is_string();
    if (text && unfilled_template(value["string_value"].get<std::string>())) {
      unfilled += (unfilled.empty() ? "" : ", ") + key;
      continue;
    }
    if (const auto alias = tensorrtllm_backend_aliases().find(key); alias != tensorrtllm_backend_aliases().end()) {
      if (given.contains(alias->second)) {
        throw_error("parameters \"", key, "\" (tensorrtllm_backend's name) and \"", alias->second,
                    "\" are the same setting: set one of them");
      }
      parameters[alias->second] = value;
      continue;
    }
    if (const auto ignored = tensorrtllm_backend_ignored().find(key); ignored != tensorrtllm_backend_ignored().end()) {
      notes.push_back("parameter \"" + key + "\" (tensorrtllm_backend) is ignored: " + ignored->second);
      continue;
    }
    parameters[key] = value;
  }
  if (!unfilled.empty()) notes.push_back("parameters left as unfilled template values (\"${...}\"), so not set: " + unfilled);
  return parameters;
}

// tensorrtllm_backend parameters whose values this backend can honour only at their defaults;
// anything else is refused, naming what is not supported. Read from the translated parameters
// before the known-parameter check, which does not know them.
void check_tensorrtllm_backend_values(json& parameters, std::vector<std::string>& notes) {
  const auto take = [&](const char* key) -> std::optional<std::string> {
    if (!parameters.contains(key)) return std::nullopt;
    std::string value = parameter_text(parameters, key);
    parameters.erase(key);
    return value;
  };
  if (const auto beams = take("max_beam_width")) {
    if (parse_integer("max_beam_width", *beams, 1) != 1) {
      throw_error("parameter \"max_beam_width\" is ", *beams, ", but this backend decodes one beam (set it to 1)");
    }
  }
  if (const auto mode = take("decoding_mode")) {
    if (*mode != "top_k" && *mode != "top_p" && *mode != "top_k_top_p" && !mode->empty()) {
      throw_error("parameter \"decoding_mode\" is \"", *mode, "\", but this backend samples with top_k and top_p only ",
                  "(set top_k, top_p or top_k_top_p, or leave it out)");
    }
    notes.push_back("parameter \"decoding_mode\" (tensorrtllm_backend): each request's top_k and top_p decide");
  }
  if (const auto encoder = take("encoder_model_path"); encoder && !encoder->empty()) {
    throw_error("parameter \"encoder_model_path\" names an encoder engine, but this backend serves decoder-only ",
                "models (leave it out)");
  }
  if (const auto devices = take("gpu_device_ids"); devices && !devices->empty()) {
    if (*devices != "0") {
      throw_error("parameter \"gpu_device_ids\" is \"", *devices, "\", but this backend runs each model on GPU 0 ",
                  "(choose the GPU with CUDA_VISIBLE_DEVICES, or set it to 0)");
    }
  }
}

// The tensors the backend reads and writes, by the types it handles. A config that declares one
// with another type (text_input as TYPE_INT32) or lacks the output its prompt style answers with
// would load and then fail every request, or answer with nothing; it is refused at load instead.
void check_inputs_and_outputs(const json& config, ModelSettings& s) {
  const auto declared = [&](const char* list) {
    std::map<std::string, std::string> types;  // name -> data_type
    if (!config.contains(list) || !config[list].is_array()) return types;
    for (const json& tensor : config[list]) {
      if (tensor.is_object()) types[tensor.value("name", "")] = tensor.value("data_type", "");
    }
    return types;
  };
  const auto inputs = declared("input");
  const auto outputs = declared("output");
  for (const char* name : {"num_input_tokens", "num_output_tokens"}) {
    if (const auto it = outputs.find(name); it != outputs.end() && it->second == "TYPE_INT32") s.token_counts_int32 = true;
  }
  if (inputs.empty()) return;  // nothing declared (yet): Triton refuses such a model itself
  const auto expect = [](const std::map<std::string, std::string>& tensors, const char* kind,
                         const std::vector<std::string>& names, const std::string& type, const char* what) {
    for (const std::string& name : names) {
      const auto it = tensors.find(name);
      if (it == tensors.end()) continue;
      const bool ok = type == "TYPE_INT*" ? (it->second.starts_with("TYPE_INT") || it->second.starts_with("TYPE_UINT"))
                                          : it->second == type;
      if (!ok) {
        throw_error("config.pbtxt: ", kind, " \"", name, "\" is declared with data_type ", it->second,
                    ", but this backend ", what, " (set data_type: ", type == "TYPE_INT*" ? "TYPE_INT32" : type, ")");
      }
    }
  };
  expect(inputs, "input", {"text_input", "stop_words", "bad_words", "embedding_bias_words"}, "TYPE_STRING",
         "reads it as text");
  expect(inputs, "input",
         {"stream", "streaming", "stop", "exclude_input_in_output", "return_log_probs", "return_context_logits",
          "return_generation_logits", "early_stopping", "return_finish_reason", "return_num_input_tokens",
          "return_num_output_tokens"},
         "TYPE_BOOL", "reads it as a boolean");
  expect(inputs, "input", {"input_ids", "input_lengths", "stop_words_list", "bad_words_list"}, "TYPE_INT*",
         "reads it as token ids");
  expect(outputs, "output", {"text_output", "finish_reason"}, "TYPE_STRING", "writes text to it");
  // Token counts: TYPE_UINT32 as Triton's vLLM backend declares them, or TYPE_INT32 as
  // tensorrtllm_backend's tensorrt_llm model does; written in the type declared.
  for (const char* name : {"num_input_tokens", "num_output_tokens"}) {
    const auto it = outputs.find(name);
    if (it != outputs.end() && it->second != "TYPE_UINT32" && it->second != "TYPE_INT32") {
      throw_error("config.pbtxt: output \"", name, "\" is declared with data_type ", it->second,
                  ", but this backend writes a token count to it (set data_type: TYPE_UINT32, or TYPE_INT32)");
    }
  }
  expect(outputs, "output", {"output_ids", "sequence_length", "batch_index"}, "TYPE_INT32", "writes INT32 to it");
  expect(outputs, "output", {"cum_log_probs", "output_log_probs"}, "TYPE_FP32", "writes FP32 to it");

  const bool text_style = inputs.count("text_input") != 0;
  const bool token_style = inputs.count("input_ids") != 0;
  if (!text_style && !token_style) {
    throw Error("config.pbtxt: the model declares neither input \"text_input\" (TYPE_STRING, for prompts as text) nor "
                "\"input_ids\" (TYPE_INT32, for token ids); declare at least one");
  }
  if (text_style && outputs.count("text_output") == 0) {
    throw Error("config.pbtxt: input \"text_input\" is declared but output \"text_output\" (TYPE_STRING) is not, so "
                "text prompts would be answered with nothing; declare it");
  }
  if (token_style && outputs.count("output_ids") == 0) {
    throw Error("config.pbtxt: input \"input_ids\" is declared but output \"output_ids\" (TYPE_INT32) is not, so token "
                "prompts would be answered with nothing; declare it");
  }
}

// The parameters both engines take, read once; each engine's options get them below.
struct SharedSettings {
  int64_t max_concurrent_requests = 0;  // 0: not set
  std::optional<int64_t> max_num_tokens;
  std::optional<bool> max_utilization;
  std::optional<int64_t> max_tokens_in_paged_kv_cache;
  std::optional<bool> enable_kv_cache_reuse;
  std::optional<bool> enable_chunked_context;
  std::optional<std::chrono::milliseconds> stats_check_period;
  size_t max_queue_size = 0;  // 0: unbounded
};

SharedSettings parse_shared(const json& parameters) {
  SharedSettings shared;
  const auto text = [&](const char* key) { return parameter_text(parameters, key); };
  if (parameters.contains("max_concurrent_requests"))
    shared.max_concurrent_requests = parse_integer("max_concurrent_requests", text("max_concurrent_requests"), 1, INT32_MAX);
  if (parameters.contains("max_num_tokens"))
    shared.max_num_tokens = parse_integer("max_num_tokens", text("max_num_tokens"), 1, INT32_MAX);
  if (parameters.contains("batch_scheduler_policy")) {
    const std::string v = text("batch_scheduler_policy");
    if (v != "guaranteed_no_evict" && v != "max_utilization") {
      throw_error("parameter \"batch_scheduler_policy\" must be \"guaranteed_no_evict\" or \"max_utilization\", got \"", v,
                  "\"");
    }
    shared.max_utilization = v == "max_utilization";
  }
  if (parameters.contains("max_tokens_in_paged_kv_cache")) {
    shared.max_tokens_in_paged_kv_cache =
        parse_integer("max_tokens_in_paged_kv_cache", text("max_tokens_in_paged_kv_cache"), 1, INT32_MAX);
  }
  if (parameters.contains("enable_kv_cache_reuse"))
    shared.enable_kv_cache_reuse = parse_bool("enable_kv_cache_reuse", text("enable_kv_cache_reuse"));
  if (parameters.contains("enable_chunked_context"))
    shared.enable_chunked_context = parse_bool("enable_chunked_context", text("enable_chunked_context"));
  if (parameters.contains("max_queue_size"))
    shared.max_queue_size = static_cast<size_t>(parse_integer("max_queue_size", text("max_queue_size"), 0, INT32_MAX));
  if (parameters.contains("stats_check_period_ms")) {
    shared.stats_check_period =
        std::chrono::milliseconds(parse_integer("stats_check_period_ms", text("stats_check_period_ms"), 1, 3'600'000));
  }
  return shared;
}

void parse_cpu(const json& parameters, const std::filesystem::path& version_dir, const SharedSettings& shared,
               ModelSettings& s) {
  CpuEngineOptions& c = s.cpu;
  const auto text = [&](const char* key) { return parameter_text(parameters, key); };
  if (!parameters.contains("checkpoint_dir")) {
    throw Error("missing parameter \"checkpoint_dir\": set it in config.pbtxt to the TensorRT-LLM checkpoint "
                "directory (absolute, or relative to the model's version folder)");
  }
  c.checkpoint_dir = resolve(version_dir, text("checkpoint_dir"));
  if (parameters.contains("threads")) c.threads = static_cast<size_t>(parse_integer("threads", text("threads"), 0, 4096));
  SchedulerOptions& b = c.scheduler;
  if (shared.max_concurrent_requests > 0) b.max_batch_size = static_cast<size_t>(shared.max_concurrent_requests);
  if (shared.max_num_tokens) b.max_num_tokens = static_cast<size_t>(*shared.max_num_tokens);
  if (shared.max_utilization)
    b.policy = *shared.max_utilization ? CapacityPolicy::MaxUtilization : CapacityPolicy::GuaranteedNoEvict;
  if (shared.enable_kv_cache_reuse) b.enable_kv_cache_reuse = *shared.enable_kv_cache_reuse;
  if (shared.enable_chunked_context) b.enable_chunked_context = *shared.enable_chunked_context;
  if (shared.stats_check_period) c.stats_period = *shared.stats_check_period;
  if (parameters.contains("tokens_per_block"))
    b.tokens_per_block = static_cast<size_t>(parse_integer("tokens_per_block", text("tokens_per_block"), 1, 4096));
  b.max_queue_size = shared.max_queue_size;
  if (shared.max_tokens_in_paged_kv_cache) c.max_tokens_in_paged_kv_cache = static_cast<size_t>(*shared.max_tokens_in_paged_kv_cache);
  if (parameters.contains("kv_cache_memory_bytes")) {
    if (c.max_tokens_in_paged_kv_cache) {
      throw Error("parameters \"max_tokens_in_paged_kv_cache\" and \"kv_cache_memory_bytes\" both size the KV cache: "
                  "set one of them");
    }
    c.kv_cache_memory_bytes = static_cast<size_t>(parse_integer("kv_cache_memory_bytes", text("kv_cache_memory_bytes"), 1));
  }
  if (b.max_num_tokens < b.max_batch_size) {
    throw_error("parameter \"max_num_tokens\" (", b.max_num_tokens, ") must be at least \"max_concurrent_requests\" (",
                b.max_batch_size, "): every running sequence needs a row of each iteration's batch");
  }
  c.context_tokens = static_cast<size_t>(s.max_context_tokens);
}

void parse_tensorrtllm(const json& parameters, const std::filesystem::path& version_dir, const SharedSettings& shared,
                       ModelSettings& s) {
  TensorRtLlmOptions& t = s.tensorrtllm;
  if (!parameters.contains("engine_dir")) {
    throw Error("missing parameter \"engine_dir\": engine \"tensorrtllm\" needs the folder trtllm-build wrote "
                "(config.json and rank0.engine; absolute, or relative to the model's version folder)");
  }
  t.engine_dir = resolve(version_dir, parameter_text(parameters, "engine_dir"));
  if (parameters.contains("batching_strategy")) {
    const std::string v = parameter_text(parameters, "batching_strategy");
    if (v == "V1" || v == "v1") {
      throw_error("parameter \"batching_strategy\" is \"V1\" (static batching): not supported, as TensorRT-LLM's static ",
                  "batching (deprecated since 0.10) does not say why a request ended; use \"inflight_fused_batching\"");
    }
    if (v != "inflight_fused_batching" && v != "inflight_batching") {
      throw_error("parameter \"batching_strategy\" must be \"inflight_fused_batching\", got \"", v, "\"");
    }
  }
  if (shared.max_utilization) {
    t.scheduler_policy = *shared.max_utilization ? TensorRtLlmOptions::SchedulerPolicy::MaxUtilization
                                                 : TensorRtLlmOptions::SchedulerPolicy::GuaranteedNoEvict;
  }
  if (shared.max_tokens_in_paged_kv_cache) t.max_tokens_in_paged_kv_cache = static_cast<int32_t>(*shared.max_tokens_in_paged_kv_cache);
  if (parameters.contains("kv_cache_free_gpu_mem_fraction")) {
    t.kv_cache_free_gpu_mem_fraction =
        parse_fraction("kv_cache_free_gpu_mem_fraction", parameter_text(parameters, "kv_cache_free_gpu_mem_fraction"));
  }
  if (shared.enable_kv_cache_reuse) t.enable_kv_cache_reuse = *shared.enable_kv_cache_reuse;
  if (shared.enable_chunked_context) t.enable_chunked_context = *shared.enable_chunked_context;
  if (parameters.contains("cancellation_check_period_ms")) {
    t.cancellation_check_period = std::chrono::milliseconds(parse_integer(
        "cancellation_check_period_ms", parameter_text(parameters, "cancellation_check_period_ms"), 1, 60'000));
  }
  if (shared.stats_check_period) t.stats_check_period = *shared.stats_check_period;
  if (shared.max_concurrent_requests > 0) t.max_batch_size = static_cast<int32_t>(shared.max_concurrent_requests);
  if (shared.max_num_tokens) t.max_num_tokens = static_cast<int32_t>(*shared.max_num_tokens);
  t.max_queue_size = shared.max_queue_size;
}

}  // namespace

ModelSettings ModelSettings::parse(const json& config, const std::filesystem::path& version_dir) {
  ModelSettings s;
  if (config.contains("model_transaction_policy") && config["model_transaction_policy"].is_object())
    s.decoupled = config["model_transaction_policy"].value("decoupled", false);
  if (config.contains("max_batch_size")) s.max_batch_size = json_integer(config["max_batch_size"]);

  json parameters = translate_tensorrtllm_backend_parameters(config.value("parameters", json::object()), s.notes);
  check_tensorrtllm_backend_values(parameters, s.notes);
  // A tensorrtllm_backend config names its engine with gpt_model_path and has no "engine".
  const json& given = config.value("parameters", json::object());
  if (given.contains("gpt_model_path") && parameters.contains("engine_dir") && !parameters.contains("engine")) {
    parameters["engine"] = {{"string_value", "tensorrtllm"}};
  }
  const auto& known = known_parameters();
  for (const auto& [key, value] : parameters.items()) {
    if (known.count(key) == 0) {
      std::string names;
      for (const auto& [name, engine] : known) names += (names.empty() ? "" : ", ") + name;
      throw_error("unknown parameter \"", key, "\" in config.pbtxt; known parameters: ", names);
    }
  }
  if (parameters.contains("engine")) {
    s.engine = parameter_text(parameters, "engine");
    if (s.engine != "cpu" && s.engine != "tensorrtllm")
      throw_error("parameter \"engine\" must be \"cpu\" or \"tensorrtllm\", got \"", s.engine, "\"");
  }
  for (const auto& [key, value] : parameters.items()) {
    const std::string& owner = known.at(key);
    if (!owner.empty() && owner != s.engine) {
      throw_error("parameter \"", key, "\" applies only to engine \"", owner, "\"; this model's engine is \"", s.engine,
                  "\"", owner == "tensorrtllm" ? " (set parameter \"engine\" to \"tensorrtllm\")" : "");
    }
  }
  if (parameters.contains("max_context_tokens"))
    s.max_context_tokens = parse_integer("max_context_tokens", parameter_text(parameters, "max_context_tokens"), 0);
  if (parameters.contains("max_prompt_bytes"))
    s.max_prompt_bytes = parse_integer("max_prompt_bytes", parameter_text(parameters, "max_prompt_bytes"), 1, INT32_MAX);
  if (parameters.contains("exclude_input_in_output"))
    s.exclude_input_in_output = parse_bool("exclude_input_in_output", parameter_text(parameters, "exclude_input_in_output"));

  const SharedSettings shared = parse_shared(parameters);
  std::filesystem::path model_dir;
  if (s.engine == "cpu") {
    parse_cpu(parameters, version_dir, shared, s);
    model_dir = s.cpu.checkpoint_dir;
  } else {
    parse_tensorrtllm(parameters, version_dir, shared, s);
    model_dir = s.tensorrtllm.engine_dir;
  }
  s.tokenizer_dir = parameters.contains("tokenizer_dir") ? resolve(version_dir, parameter_text(parameters, "tokenizer_dir"))
                                                         : model_dir;
  check_inputs_and_outputs(config, s);
  return s;
}

}  // namespace llm::triton
