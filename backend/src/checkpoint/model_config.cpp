#include "checkpoint/model_config.h"

#include <algorithm>
#include <fstream>

#include "common/error.h"
#include "common/mapped_file.h"
#include "kernels/kernels.h"

namespace llm {

using nlohmann::json;

json read_json_file(const std::filesystem::path& path) {
  constexpr size_t kMaxJsonFileBytes = 64u << 20;  // configs and indexes are kilobytes
  const std::string text = read_regular_file(path, "JSON file", kMaxJsonFileBytes);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw_error(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

void write_json_file(const std::filesystem::path& path, const json& j) {
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(4) << '\n';
  if (!out) throw_error("cannot write ", path.string());
}

namespace {

const json& required(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) throw_error(where, ": missing field \"", key, "\"");
  return j[key];
}

int64_t required_int(const json& j, const char* key, const std::string& where) {
  const json& v = required(j, key, where);
  if (!v.is_number_integer()) throw_error(where, ": field \"", key, "\" must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

double number_or(const json& j, const char* key, double fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw_error(where, ": field \"", key, "\" must be a number, got ", j[key].dump());
  return j[key].get<double>();
}

bool boolean_or(const json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) throw_error(where, ": field \"", key, "\" must be true or false, got ", j[key].dump());
  return j[key].get<bool>();
}

}  // namespace

std::string_view quant_algo_name(QuantAlgo algo) {
  switch (algo) {
    case QuantAlgo::W8A16: return "W8A16";
    case QuantAlgo::W4A16_AWQ: return "W4A16_AWQ";
    case QuantAlgo::None: break;
  }
  return "";
}

bool QuantConfig::excludes(const std::string& module) const {
  return std::find(exclude_modules.begin(), exclude_modules.end(), module) != exclude_modules.end();
}

void ModelConfig::validate(const std::string& where) const {
  // Bounds far above any released Llama (405B: hidden 16,384, 126 layers, vocabularies of 256K,
  // contexts of 1M tokens) but low enough that sizes computed from them cannot overflow or ask
  // for absurd allocations before the weights are even checked.
  auto in_range = [&](const char* name, int64_t value, int64_t most) {
    if (value <= 0) throw_error(where, ": field \"", name, "\" must be positive, got ", value);
    if (value > most) {
      throw_error(where, ": field \"", name, "\" is ", value, ", implausibly large (at most ", most,
                  " is accepted); is the config.json corrupt?");
    }
  };
  in_range("vocab_size", vocab_size, int64_t{1} << 24);
  in_range("hidden_size", hidden_size, int64_t{1} << 17);
  in_range("num_hidden_layers", num_hidden_layers, 4096);
  in_range("num_attention_heads", num_attention_heads, 4096);
  in_range("num_key_value_heads", num_key_value_heads, 4096);
  in_range("head_size", head_size, 4096);
  in_range("intermediate_size", intermediate_size, int64_t{1} << 20);
  in_range("max_position_embeddings", max_position_embeddings, int64_t{1} << 24);
  if (num_attention_heads % num_key_value_heads != 0) {
    throw_error(where, ": num_attention_heads (", num_attention_heads, ") must be a multiple of num_key_value_heads (",
                num_key_value_heads, ")");
  }
  if (head_size % 2 != 0) throw_error(where, ": head_size must be even for rotary embeddings, got ", head_size);
  if (!(norm_epsilon > 0)) throw_error(where, ": field \"norm_epsilon\" must be positive");
  if (!(rotary_base > 0)) throw_error(where, ": field \"rotary_base\" must be positive");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw_error(where, ": field \"dtype\" must be float32, float16 or bfloat16");
  const int64_t group = quantization.group_size;
  if (quantization.algo == QuantAlgo::W4A16_AWQ &&
      (group <= 0 || !kernels::int4_group_size_supported(static_cast<size_t>(group)))) {
    throw_error(where, ": quantization.group_size must be 32, 64 or a multiple of 128, got ", group);
  }
}

namespace {

json quantization_to_json(const QuantConfig& q) {
  json out = {{"quant_algo", nullptr}, {"kv_cache_quant_algo", nullptr}};
  if (q.algo == QuantAlgo::None) return out;
  out["quant_algo"] = std::string(quant_algo_name(q.algo));
  if (q.algo == QuantAlgo::W4A16_AWQ) {
    out["group_size"] = q.group_size;
    out["has_zero_point"] = q.has_zero_point;
    out["pre_quant_scale"] = q.pre_quant_scale;
  }
  out["exclude_modules"] = q.exclude_modules;
  return out;
}

QuantConfig quantization_from_json(const json& q, const std::string& where) {
  QuantConfig c;
  if (q.contains("kv_cache_quant_algo") && !q["kv_cache_quant_algo"].is_null())
    throw_error(where, ": quantization.kv_cache_quant_algo ", q["kv_cache_quant_algo"].dump(),
                " is not supported (the CPU engine keeps the KV cache in float32)");
  if (!q.contains("quant_algo") || q["quant_algo"].is_null()) return c;
  const json& algo = q["quant_algo"];
  if (algo == "W8A16") {
    c.algo = QuantAlgo::W8A16;
  } else if (algo == "W4A16_AWQ") {
    c.algo = QuantAlgo::W4A16_AWQ;
  } else {
    throw_error(where, ": quantization.quant_algo ", algo.dump(),
                " is not supported by the CPU engine (supported: null, \"W8A16\", \"W4A16_AWQ\")");
  }
  if (q.contains("group_size") && !q["group_size"].is_null()) {
    if (!q["group_size"].is_number_integer()) throw_error(where, ": quantization.group_size must be an integer");
    c.group_size = q["group_size"].get<int64_t>();
  }
  c.has_zero_point = boolean_or(q, "has_zero_point", false, where + ": quantization");
  c.pre_quant_scale = boolean_or(q, "pre_quant_scale", false, where + ": quantization");
  if (q.contains("exclude_modules") && !q["exclude_modules"].is_null()) {
    if (!q["exclude_modules"].is_array()) throw_error(where, ": quantization.exclude_modules must be a list of names");
    for (const auto& name : q["exclude_modules"]) {
      if (!name.is_string()) throw_error(where, ": quantization.exclude_modules must be a list of names");
      c.exclude_modules.push_back(name.get<std::string>());
    }
  }
  return c;
}

}  // namespace

json ModelConfig::to_json() const {
  return json{
      {"architecture", architecture},
      {"dtype", std::string(config_name(dtype))},
      {"logits_dtype", "float32"},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", max_position_embeddings},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_size", head_size},
      {"hidden_act", "silu"},
      {"intermediate_size", intermediate_size},
      {"norm_epsilon", norm_epsilon},
      {"position_embedding_type", "rope_gpt_neox"},
      {"rotary_base", rotary_base},
      {"rotary_scaling", nullptr},
      {"use_parallel_embedding", false},
      {"embedding_sharding_dim", 0},
      {"share_embedding_table", share_embedding_table},
      {"attn_bias", false},
      {"mlp_bias", false},
      {"mapping", {{"world_size", 1}, {"tp_size", 1}, {"pp_size", 1}}},
      {"quantization", quantization_to_json(quantization)},
  };
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw_error(where, ": expected a JSON object");
  ModelConfig c;
  const json& arch = required(j, "architecture", where);
  if (!arch.is_string()) throw_error(where, ": field \"architecture\" must be a string");
  c.architecture = arch.get<std::string>();
  if (c.architecture != "LlamaForCausalLM") {
    throw_error(where, ": unsupported architecture \"", c.architecture,
                "\"; the CPU engine runs LlamaForCausalLM checkpoints");
  }
  const json& dtype = required(j, "dtype", where);
  const auto parsed_dtype = dtype.is_string() ? dtype_from_config(dtype.get<std::string>()) : std::nullopt;
  if (!parsed_dtype) throw_error(where, ": field \"dtype\" must be float32, float16 or bfloat16, got ", dtype.dump());
  c.dtype = *parsed_dtype;
  c.vocab_size = required_int(j, "vocab_size", where);
  c.hidden_size = required_int(j, "hidden_size", where);
  c.num_hidden_layers = required_int(j, "num_hidden_layers", where);
  c.num_attention_heads = required_int(j, "num_attention_heads", where);
  c.num_key_value_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                              ? required_int(j, "num_key_value_heads", where)
                              : c.num_attention_heads;
  c.head_size = j.contains("head_size") && !j["head_size"].is_null()
                    ? required_int(j, "head_size", where)
                    : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.intermediate_size = required_int(j, "intermediate_size", where);
  c.max_position_embeddings = required_int(j, "max_position_embeddings", where);
  c.norm_epsilon = number_or(j, "norm_epsilon", 1e-5, where);
  c.rotary_base = number_or(j, "rotary_base", 10000.0, where);
  c.share_embedding_table = boolean_or(j, "share_embedding_table", false, where);

  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw_error(where, ": hidden_act ", j["hidden_act"].dump(), " is not supported (Llama uses \"silu\")");
  if (j.contains("position_embedding_type") && j["position_embedding_type"] != "rope_gpt_neox") {
    throw_error(where, ": position_embedding_type ", j["position_embedding_type"].dump(),
                " is not supported (Llama checkpoints use \"rope_gpt_neox\")");
  }
  if (j.contains("rotary_scaling") && !j["rotary_scaling"].is_null())
    throw_error(where, ": rotary_scaling ", j["rotary_scaling"].dump(), " is not supported yet");
  if (boolean_or(j, "attn_bias", false, where) || boolean_or(j, "mlp_bias", false, where) || boolean_or(j, "bias", false, where))
    throw_error(where, ": attention/MLP biases are not supported (Llama has none)");
  if (j.contains("mapping") && j["mapping"].is_object()) {
    const json& m = j["mapping"];
    for (const char* key : {"world_size", "tp_size", "pp_size", "cp_size"}) {
      if (m.contains(key) && m[key] != 1) {
        throw_error(where, ": mapping.", key, " = ", m[key].dump(),
                    "; the CPU engine needs a single-rank checkpoint (convert with tp_size 1 and pp_size 1)");
      }
    }
  }
  if (j.contains("quantization") && !j["quantization"].is_null()) {
    if (!j["quantization"].is_object()) throw_error(where, ": field \"quantization\" must be an object");
    c.quantization = quantization_from_json(j["quantization"], where);
  }
  c.validate(where);
  return c;
}

std::vector<int32_t> default_end_ids(const std::filesystem::path& checkpoint_dir, int32_t tokenizer_eos) {
  std::vector<int32_t> ids;
  if (tokenizer_eos >= 0) ids.push_back(tokenizer_eos);
  const auto path = checkpoint_dir / "generation_config.json";
  if (!std::filesystem::exists(path)) return ids;
  const json config = read_json_file(path);
  if (!config.contains("eos_token_id")) return ids;
  const json& eos = config["eos_token_id"];
  for (const auto& value : eos.is_array() ? eos : json::array({eos})) {
    if (!value.is_number_integer()) throw_error(path.string(), ": eos_token_id must be an integer or a list of integers");
    const auto id = value.get<int32_t>();
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

ModelConfig ModelConfig::load(const std::filesystem::path& checkpoint_dir) {
  const auto path = checkpoint_dir / "config.json";
  if (!std::filesystem::exists(path)) {
    throw_error("no config.json in ", checkpoint_dir.string(),
                ": expected a TensorRT-LLM checkpoint (config.json + rank0.safetensors); make one with `llm convert`");
  }
  return from_json(read_json_file(path), path.string());
}

}  // namespace llm
