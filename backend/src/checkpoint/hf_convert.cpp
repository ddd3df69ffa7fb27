#include "checkpoint/hf_convert.h"

#include <array>
#include <cctype>
#include <cstring>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <vector>

#include "checkpoint/model_config.h"
#include "checkpoint/quantized_format.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "common/half.h"

namespace llm {

using nlohmann::json;

void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
                           "generation_config.json"}) {
    if (std::filesystem::exists(from / name)) {
      std::filesystem::copy_file(from / name, to / name, std::filesystem::copy_options::overwrite_existing);
    }
  }
}

void convert_elements(DType from, const void* src, DType to, void* dst, size_t count) {
  auto load = [&](size_t i) -> float {
    switch (from) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::F16: return fp16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      default: throw_error("cannot convert from dtype ", safetensors_name(from));
    }
  };
  for (size_t i = 0; i < count; ++i) {
    const float v = load(i);
    switch (to) {
      case DType::F32: static_cast<float*>(dst)[i] = v; break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_fp16(v); break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
      default: throw_error("cannot convert to dtype ", safetensors_name(to));
    }
  }
}

namespace {

// The Hugging Face weights, possibly sharded, looked up by tensor name.
class HfWeights {
 public:
  explicit HfWeights(const std::filesystem::path& dir) {
    const auto index = dir / "model.safetensors.index.json";
    const auto single = dir / "model.safetensors";
    if (std::filesystem::exists(index)) {
      const json j = read_json_file(index);
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw_error(index.string(), ": missing \"weight_map\" object");
      std::set<std::string> shards;
      for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string()) throw_error(index.string(), ": weight_map entry for ", name, " is not a file name");
        shards.insert(shard.get<std::string>());
      }
      for (const auto& shard : shards) {
        if (!std::filesystem::exists(dir / shard))
          throw_error(index.string(), " names shard ", shard, ", which is missing from ", dir.string());
        files_.push_back(std::make_unique<SafetensorsFile>(dir / shard));
      }
    } else if (std::filesystem::exists(single)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single));
    } else if (std::filesystem::exists(dir / "pytorch_model.bin") ||
               std::filesystem::exists(dir / "pytorch_model.bin.index.json")) {
      throw_error(dir.string(), " holds PyTorch .bin weights; only safetensors are read. Re-save them with "
                  "model.save_pretrained(dir, safe_serialization=True)");
    } else {
      throw_error("no model.safetensors or model.safetensors.index.json in ", dir.string());
    }
    for (const auto& file : files_) {
      for (const auto& entry : file->tensors()) file_of_[entry.first] = file.get();
    }
  }

  const TensorView* find(const std::string& name) const {
    const auto it = file_of_.find(name);
    return it == file_of_.end() ? nullptr : it->second->find(name);
  }

  // The float tensor from whichever shard holds it, with its shape checked (the error names the shard).
  const TensorView& get(const std::string& name, const std::vector<size_t>& shape) const {
    const TensorView& view = get_any(name, shape);
    if (view.dtype != DType::F32 && view.dtype != DType::F16 && view.dtype != DType::BF16)
      throw_error("tensor ", name, " has dtype ", safetensors_name(view.dtype), "; expected F32, F16 or BF16");
    return view;
  }

  // Like get(), for a tensor of the given dtype.
  const TensorView& get(const std::string& name, const std::vector<size_t>& shape, DType dtype) const {
    const TensorView& view = get_any(name, shape);
    if (view.dtype != dtype)
      throw_error("tensor ", name, " has dtype ", safetensors_name(view.dtype), "; expected ", safetensors_name(dtype));
    return view;
  }

 private:
  const TensorView& get_any(const std::string& name, const std::vector<size_t>& shape) const {
    const auto it = file_of_.find(name);
    if (it == file_of_.end())
      throw_error("tensor ", name, " is missing from the Hugging Face checkpoint in ", dir_string());
    return it->second->get(name, shape);
  }
  std::string dir_string() const { return files_.empty() ? "" : files_.front()->path().parent_path().string(); }
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> file_of_;  // tensor name -> the shard holding it
};

int64_t hf_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) throw_error(where, ": missing integer field \"", key, "\"");
  return j[key].get<int64_t>();
}

ModelConfig config_from_hf(const json& hf, DType dtype, const std::string& where) {
  bool is_llama = hf.value("model_type", "") == "llama";
  if (hf.contains("architectures") && hf["architectures"].is_array()) {
    for (const auto& a : hf["architectures"]) is_llama = is_llama || a == "LlamaForCausalLM";
  }
  if (!is_llama) {
    throw_error(where, ": not a Llama checkpoint (model_type ", hf.value("model_type", json("missing")).dump(),
                ", architectures ", hf.value("architectures", json("missing")).dump(), "); expected LlamaForCausalLM");
  }
  if (hf.contains("hidden_act") && hf["hidden_act"] != "silu")
    throw_error(where, ": hidden_act ", hf["hidden_act"].dump(), " is not supported (expected \"silu\")");
  if (hf.contains("rope_scaling") && !hf["rope_scaling"].is_null())
    throw_error(where, ": rope_scaling ", hf["rope_scaling"].dump(), " is not supported yet");
  if (hf.value("attention_bias", false) || hf.value("mlp_bias", false))
    throw_error(where, ": attention/MLP biases are not supported");

  ModelConfig c;
  c.dtype = dtype;
  c.vocab_size = hf_int(hf, "vocab_size", where);
  c.hidden_size = hf_int(hf, "hidden_size", where);
  c.num_hidden_layers = hf_int(hf, "num_hidden_layers", where);
  c.num_attention_heads = hf_int(hf, "num_attention_heads", where);
  c.num_key_value_heads = hf.contains("num_key_value_heads") && !hf["num_key_value_heads"].is_null()
                              ? hf_int(hf, "num_key_value_heads", where)
                              : c.num_attention_heads;
  c.head_size = hf.contains("head_dim") && !hf["head_dim"].is_null()
                    ? hf_int(hf, "head_dim", where)
                    : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.intermediate_size = hf_int(hf, "intermediate_size", where);
  c.max_position_embeddings = hf_int(hf, "max_position_embeddings", where);
  c.norm_epsilon = hf.value("rms_norm_eps", 1e-6);
  c.rotary_base = hf.value("rope_theta", 10000.0);
  c.validate(where);
  return c;
}

// AutoAWQ's GEMM layout (as vLLM serves it): per linear, qweight I32 [in, out / 8] and qzeros I32
// [in / group, out / 8] hold eight 4-bit values per int32, nibble i holding output column
// kAwqPackOrder[i] of its group of eight; scales [in / group, out]; w = (q - zero) * scale.
constexpr std::array<size_t, 8> kAwqPackOrder = {0, 2, 4, 6, 1, 3, 5, 7};
// Its inverse: the nibble holding output column j of a group of eight.
constexpr std::array<size_t, 8> kAwqNibbleOfColumn = [] {
  std::array<size_t, 8> inverse{};
  for (size_t i = 0; i < 8; ++i) inverse[kAwqPackOrder[i]] = i;
  return inverse;
}();

// The AutoAWQ settings of a checkpoint's quantization_config, or nullopt for a float checkpoint.
std::optional<QuantConfig> autoawq_config(const json& hf, const std::string& where) {
  if (!hf.contains("quantization_config") || hf["quantization_config"].is_null()) return std::nullopt;
  const json& q = hf["quantization_config"];
  const std::string method = q.value("quant_method", std::string());
  if (method != "awq") {
    throw_error(where, ": quantization_config.quant_method \"", method,
                "\" is not supported; the converter reads float checkpoints and AutoAWQ (\"awq\") ones");
  }
  const int64_t bits = q.value("bits", q.value("w_bit", int64_t{4}));
  const std::string version = q.value("version", std::string("gemm"));
  if (bits != 4) throw_error(where, ": AutoAWQ checkpoints with ", bits, "-bit weights are not supported (4 only)");
  std::string lowered;
  for (char ch : version) lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lowered != "gemm") throw_error(where, ": AutoAWQ version \"", version, "\" is not supported (GEMM layout only)");
  if (!q.value("zero_point", true)) throw_error(where, ": AutoAWQ checkpoints without zero points are not supported");
  QuantConfig config;
  config.algo = QuantAlgo::W4A16_AWQ;
  config.group_size = q.value("group_size", q.value("q_group_size", int64_t{128}));
  if (config.group_size <= 0 || !kernels::int4_group_size_supported(static_cast<size_t>(config.group_size)))
    throw_error(where, ": AutoAWQ group_size ", config.group_size, " is not supported (32, 64 or a multiple of 128)");
  config.has_zero_point = true;
  config.pre_quant_scale = false;  // AutoAWQ folds its scales into the preceding layers
  config.exclude_modules = {"lm_head"};
  return config;
}

// The 4-bit value of row `in`, output column `out` of an AutoAWQ-packed I32 tensor.
uint8_t awq_value(const TensorView& packed, size_t in, size_t out) {
  const size_t packed_cols = packed.shape[1];
  uint32_t word;
  std::memcpy(&word, packed.bytes.data() + (in * packed_cols + out / 8) * 4, 4);
  return static_cast<uint8_t>((word >> (4 * kAwqNibbleOfColumn[out % 8])) & 0xF);
}

}  // namespace

void convert_hf_checkpoint(const HfConvertOptions& options) {
  const auto& dir = options.hf_dir;
  auto log = [&](const std::string& message) {
    if (options.log) options.log(message);
  };
  const auto config_path = dir / "config.json";
  if (!std::filesystem::exists(config_path))
    throw_error("no config.json in ", dir.string(), ": expected a Hugging Face Llama checkpoint directory");
  const json hf = read_json_file(config_path);
  ModelConfig config = config_from_hf(hf, options.dtype, config_path.string());
  const std::optional<QuantConfig> awq = autoawq_config(hf, config_path.string());
  if (awq) config.quantization = *awq;
  const HfWeights weights(dir);

  const size_t hidden = static_cast<size_t>(config.hidden_size);
  const size_t inter = static_cast<size_t>(config.intermediate_size);
  const size_t vocab = static_cast<size_t>(config.vocab_size);
  const size_t q_rows = static_cast<size_t>(config.q_size());
  const size_t kv_rows = static_cast<size_t>(config.kv_size());
  const DType out = options.dtype;

  SafetensorsWriter writer;
  writer.set_metadata("producer", "triton-llm convert");
  if (awq) writer.set_metadata(quantized_format::kPackingKey, quantized_format::kPackingVersion);
  // Copies tensors (converted to the output dtype) stacked along the first dimension.
  auto add = [&](const std::string& name, std::vector<const TensorView*> parts, std::vector<size_t> shape) {
    writer.add(name, out, std::move(shape), [parts, out](std::span<uint8_t> dst) {
      size_t offset = 0;
      for (const TensorView* part : parts) {
        convert_elements(part->dtype, part->bytes.data(), out, dst.data() + offset, part->numel());
        offset += part->numel() * dtype_size(out);
      }
    });
  };

  // A linear layer from Hugging Face parts stacked on the output dimension: float, or AutoAWQ's
  // codes repacked into the project's W4A16 layout (checkpoint/quantized_format.h).
  auto add_linear = [&](const std::string& trt, const std::vector<std::string>& hf_names,
                        const std::vector<size_t>& part_rows, size_t cols) {
    size_t rows = 0;
    for (size_t r : part_rows) rows += r;
    if (!awq) {
      std::vector<const TensorView*> parts;
      for (size_t k = 0; k < hf_names.size(); ++k) parts.push_back(&weights.get(hf_names[k] + ".weight", {part_rows[k], cols}));
      add(trt + ".weight", parts, {rows, cols});
      return;
    }
    const size_t group = static_cast<size_t>(awq->group_size);
    if (cols % group != 0)
      throw_error(hf_names[0], ": ", cols, " input features are not a multiple of the AutoAWQ group size ", group);
    const size_t groups = quantized_format::int4_groups(cols, group);
    struct Part {
      const TensorView* qweight;
      const TensorView* qzeros;
      const TensorView* scales;
      size_t rows;
    };
    std::vector<Part> parts;
    for (size_t k = 0; k < hf_names.size(); ++k) {
      if (part_rows[k] % 8 != 0) throw_error(hf_names[k], ": AutoAWQ packs output features in eights");
      parts.push_back({&weights.get(hf_names[k] + ".qweight", {cols, part_rows[k] / 8}, DType::I32),
                       &weights.get(hf_names[k] + ".qzeros", {groups, part_rows[k] / 8}, DType::I32),
                       &weights.get(hf_names[k] + ".scales", {groups, part_rows[k]}), part_rows[k]});
    }
    const size_t padded = quantized_format::int4_padded_columns(cols, group);
    writer.add(trt + ".weight", DType::I8, {rows, padded / 2}, [parts, cols, padded](std::span<uint8_t> out) {
      std::vector<uint8_t> codes(padded, 0);  // padding columns meet zero inputs only
      size_t row = 0;
      for (const Part& part : parts) {
        for (size_t r = 0; r < part.rows; ++r, ++row) {
          for (size_t c = 0; c < cols; ++c) codes[c] = awq_value(*part.qweight, c, r);
          quantized_format::pack_int4_row(codes.data(), padded, out.data() + row * padded / 2);
        }
      }
    });
    writer.add(trt + ".weights_scaling_factor", DType::F16, {rows, groups}, [parts, groups](std::span<uint8_t> out) {
      auto* bits = reinterpret_cast<uint16_t*>(out.data());
      size_t row = 0;
      for (const Part& part : parts) {
        std::vector<float> scales(part.scales->numel());
        convert_elements(part.scales->dtype, part.scales->bytes.data(), DType::F32, scales.data(), scales.size());
        for (size_t r = 0; r < part.rows; ++r, ++row) {
          for (size_t g = 0; g < groups; ++g) bits[row * groups + g] = f32_to_fp16(scales[g * part.rows + r]);
        }
      }
    });
    writer.add(trt + ".zero", DType::U8, {rows, groups}, [parts, groups](std::span<uint8_t> out) {
      size_t row = 0;
      for (const Part& part : parts) {
        for (size_t r = 0; r < part.rows; ++r, ++row) {
          for (size_t g = 0; g < groups; ++g) out[row * groups + g] = awq_value(*part.qzeros, g, r);
        }
      }
    });
  };

  const TensorView& embed = weights.get("model.embed_tokens.weight", {vocab, hidden});
  add("transformer.vocab_embedding.weight", {&embed}, {vocab, hidden});
  for (size_t i = 0; i < static_cast<size_t>(config.num_hidden_layers); ++i) {
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string trt = "transformer.layers." + std::to_string(i) + ".";
    add(trt + "input_layernorm.weight", {&weights.get(hf + "input_layernorm.weight", {hidden})}, {hidden});
    // Fused QKV stacks q, k, v on the output dimension. Hugging Face's rotate-half layout is
    // what rope_gpt_neox expects, so q/k rows are taken without permutation.
    add_linear(trt + "attention.qkv", {hf + "self_attn.q_proj", hf + "self_attn.k_proj", hf + "self_attn.v_proj"},
               {q_rows, kv_rows, kv_rows}, hidden);
    add_linear(trt + "attention.dense", {hf + "self_attn.o_proj"}, {hidden}, q_rows);
    add(trt + "post_layernorm.weight", {&weights.get(hf + "post_attention_layernorm.weight", {hidden})}, {hidden});
    // TensorRT-LLM's fc is the SiLU branch (gate_proj); its gate is up_proj.
    add_linear(trt + "mlp.fc", {hf + "mlp.gate_proj"}, {inter}, hidden);
    add_linear(trt + "mlp.gate", {hf + "mlp.up_proj"}, {inter}, hidden);
    add_linear(trt + "mlp.proj", {hf + "mlp.down_proj"}, {hidden}, inter);
  }
  add("transformer.ln_f.weight", {&weights.get("model.norm.weight", {hidden})}, {hidden});
  const bool tied = hf.value("tie_word_embeddings", false);
  const TensorView* lm_head = tied ? nullptr : weights.find("lm_head.weight");
  if (lm_head == nullptr) {
    if (!tied) log("warning: lm_head.weight is missing; using the tied input embedding as TensorRT-LLM does");
    lm_head = &embed;
  } else {
    lm_head = &weights.get("lm_head.weight", {vocab, hidden});
  }
  // lm_head is written out even when tied, so the checkpoint stands alone (as TensorRT-LLM's converter does).
  add("lm_head.weight", {lm_head}, {vocab, hidden});

  std::filesystem::create_directories(options.out_dir);
  writer.write(options.out_dir / "rank0.safetensors");
  copy_tokenizer_files(dir, options.out_dir);
  if (!std::filesystem::exists(dir / "tokenizer.model"))
    log("warning: no tokenizer.model in " + dir.string() + "; `llm generate` will need --tokenizer");
  // config.json last: a directory with it is a complete checkpoint.
  write_json_file(options.out_dir / "config.json", config.to_json());
}

}  // namespace llm
