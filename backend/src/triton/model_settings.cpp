#include "triton/model_settings.h"

#include <set>

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

int64_t parse_integer(const std::string& key, const std::string& text, int64_t min) {
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
  return value;
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

}  // namespace

ModelSettings ModelSettings::parse(const json& config, const std::filesystem::path& version_dir) {
  ModelSettings s;
  if (config.contains("model_transaction_policy") && config["model_transaction_policy"].is_object())
    s.decoupled = config["model_transaction_policy"].value("decoupled", false);
  if (config.contains("max_batch_size")) s.max_batch_size = json_integer(config["max_batch_size"]);

  const json parameters = config.value("parameters", json::object());
  static const std::set<std::string> known = {"checkpoint_dir", "tokenizer_dir", "engine",
                                              "max_concurrent_requests", "max_context_tokens", "threads",
                                              "exclude_input_in_output"};
  for (const auto& [key, value] : parameters.items()) {
    if (known.count(key) == 0) {
      throw_error("unknown parameter \"", key, "\" in config.pbtxt; known parameters: checkpoint_dir, tokenizer_dir, "
                  "engine, max_concurrent_requests, max_context_tokens, threads, exclude_input_in_output");
    }
  }
  if (!parameters.contains("checkpoint_dir")) {
    throw Error("missing parameter \"checkpoint_dir\": set it in config.pbtxt to the TensorRT-LLM checkpoint "
                "directory (absolute, or relative to the model's version folder)");
  }
  s.checkpoint_dir = resolve(version_dir, parameter_text(parameters, "checkpoint_dir"));
  s.tokenizer_dir = parameters.contains("tokenizer_dir") ? resolve(version_dir, parameter_text(parameters, "tokenizer_dir"))
                                                         : s.checkpoint_dir;
  if (parameters.contains("engine")) {
    s.engine = parameter_text(parameters, "engine");
    if (s.engine == "tensorrtllm") {
      throw Error("parameter \"engine\" is \"tensorrtllm\", but this build of the backend has no TensorRT-LLM "
                  "engine yet; use engine \"cpu\"");
    }
    if (s.engine != "cpu") throw_error("parameter \"engine\" must be \"cpu\" or \"tensorrtllm\", got \"", s.engine, "\"");
  }
  if (parameters.contains("max_concurrent_requests"))
    s.max_concurrent_requests = parse_integer("max_concurrent_requests", parameter_text(parameters, "max_concurrent_requests"), 1);
  if (parameters.contains("max_context_tokens"))
    s.max_context_tokens = parse_integer("max_context_tokens", parameter_text(parameters, "max_context_tokens"), 0);
  if (parameters.contains("threads")) s.threads = parse_integer("threads", parameter_text(parameters, "threads"), 0);
  if (parameters.contains("exclude_input_in_output"))
    s.exclude_input_in_output = parse_bool("exclude_input_in_output", parameter_text(parameters, "exclude_input_in_output"));
  return s;
}

}  // namespace llm::triton
