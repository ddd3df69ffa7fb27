#pragma once
// The config.json of a TensorRT-LLM checkpoint (LlamaForCausalLM), as written by TensorRT-LLM's
// convert_checkpoint.py and by this project's converter.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"

namespace llm {

// TensorRT-LLM's quant_algo values the CPU engine runs (weight-only; activations stay float).
enum class QuantAlgo : uint8_t { None, W8A16, W4A16_AWQ };
std::string_view quant_algo_name(QuantAlgo algo);  // "W8A16", "W4A16_AWQ"; "" for None

// config.json's "quantization" object. Tensor names and the byte packing of quantized checkpoints
// are described in checkpoint/quantized_format.h.
struct QuantConfig {
  QuantAlgo algo = QuantAlgo::None;
  int64_t group_size = 128;      // W4A16_AWQ: input columns per scale
  bool has_zero_point = false;   // W4A16_AWQ: per-group zero points (asymmetric, e.g. from AutoAWQ)
  bool pre_quant_scale = false;  // W4A16_AWQ: prequant_scaling_factor tensors multiply the input
  std::vector<std::string> exclude_modules;  // modules left in float, e.g. "lm_head"

  bool excludes(const std::string& module) const;
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  DType dtype = DType::F16;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_size = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  double norm_epsilon = 1e-5;
  double rotary_base = 10000.0;
  bool share_embedding_table = false;  // lm_head reuses transformer.vocab_embedding
  QuantConfig quantization;

  int64_t q_size() const { return num_attention_heads * head_size; }
  int64_t kv_size() const { return num_key_value_heads * head_size; }

  // Checks every field the engine relies on; throws Error naming the field and `where`.
  void validate(const std::string& where) const;
  nlohmann::json to_json() const;
  // Parses and validates. Unsupported features (tensor parallelism, activation or KV-cache
  // quantization, other architectures, rotary scaling) are clear errors.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  static ModelConfig load(const std::filesystem::path& checkpoint_dir);
};

// End-of-sequence ids a checkpoint asks for: the tokenizer's EOS (when >= 0) plus any
// eos_token_id (number or list) in generation_config.json beside the checkpoint.
std::vector<int32_t> default_end_ids(const std::filesystem::path& checkpoint_dir, int32_t tokenizer_eos);

// Reads a JSON file, with errors naming it.
nlohmann::json read_json_file(const std::filesystem::path& path);
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace llm
