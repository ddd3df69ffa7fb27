#include "engine/cpu/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include "checkpoint/quantized_format.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "common/half.h"

namespace llm {

KvCache::KvCache(const ModelConfig& config, size_t capacity)
    : capacity_(capacity),
      kv_heads_(static_cast<size_t>(config.num_key_value_heads)),
      head_size_(static_cast<size_t>(config.head_size)),
      dtype_(config.dtype),
      head_bytes_(head_size_ * dtype_size(dtype_)) {
  if (dtype_ != DType::F32 && dtype_ != DType::F16 && dtype_ != DType::BF16) {
    throw_error("KV cache: activation dtype ", safetensors_name(dtype_), " is not float32, float16 or bfloat16");
  }
  const size_t bytes = static_cast<size_t>(config.num_hidden_layers) * kv_heads_ * capacity_ * head_bytes_;
  k_ = std::make_unique_for_overwrite<std::byte[]>(bytes);
  v_ = std::make_unique_for_overwrite<std::byte[]>(bytes);
}

void KvCache::store(size_t layer, size_t position, const float* key, const float* value) {
  uint16_t (*const to_half)(float) = dtype_ == DType::BF16 ? f32_to_bf16 : f32_to_fp16;
  for (size_t h = 0; h < kv_heads_; ++h) {
    std::byte* k = k_.get() + offset(layer, h) + position * head_bytes_;
    std::byte* v = v_.get() + offset(layer, h) + position * head_bytes_;
    const float* key_head = key + h * head_size_;
    const float* value_head = value + h * head_size_;
    if (dtype_ == DType::F32) {
      std::memcpy(k, key_head, head_bytes_);
      std::memcpy(v, value_head, head_bytes_);
      continue;
    }
    for (size_t i = 0; i < head_size_; ++i) {
      const uint16_t key_bits = to_half(key_head[i]), value_bits = to_half(value_head[i]);
      std::memcpy(k + 2 * i, &key_bits, 2);
      std::memcpy(v + 2 * i, &value_bits, 2);
    }
  }
}

LlamaModel::LlamaModel(ModelConfig config, Options options)
    : config_(std::move(config)), pool_(options.threads), context_{kernels::detect_isa(), &pool_} {
  const size_t half = static_cast<size_t>(config_.head_size) / 2;
  inv_freq_.resize(half);
  rotary_cos_.resize(half);
  rotary_sin_.resize(half);
  for (size_t i = 0; i < half; ++i) {
    inv_freq_[i] = std::pow(config_.rotary_base, -2.0 * static_cast<double>(i) / static_cast<double>(config_.head_size));
  }
}

const char* linear_name(Linear linear) {
  switch (linear) {
    case Linear::Qkv: return "attention.qkv";
    case Linear::Dense: return "attention.dense";
    case Linear::Fc: return "mlp.fc";
    case Linear::Gate: return "mlp.gate";
    case Linear::Proj: return "mlp.proj";
  }
  return "?";
}

const kernels::WeightView& LlamaModel::linear(size_t layer, Linear which) const {
  if (layer >= layers_.size()) throw_error("layer ", layer, " does not exist (the model has ", layers_.size(), ")");
  return layers_[layer][which];
}

namespace {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

float element_as_f32(const TensorView& t, size_t i) {
  float value = 0.0f;
  kernels::weight_row_to_f32(kernels::WeightView{t.dtype, t.bytes.data() + i * dtype_size(t.dtype), 1, 1}, 0, &value);
  return value;
}

std::vector<float> to_f32_vector(const TensorView& t) {
  std::vector<float> out(t.numel());
  kernels::weight_row_to_f32(kernels::WeightView{t.dtype, t.bytes.data(), 1, t.numel()}, 0, out.data());
  return out;
}

// The weights to copy into the model's huge-page arena: sized first, filled once the arena exists.
class ArenaPlan {
 public:
  using Fill = std::function<void(uint8_t* destination)>;
  using Bind = std::function<void(const uint8_t* placed)>;

  void add(size_t bytes, Fill fill, Bind bind) { pieces_.push_back({bytes, std::move(fill), std::move(bind)}); }
  void add_copy(std::span<const uint8_t> bytes, Bind bind) {
    add(bytes.size(), [bytes](uint8_t* out) { std::memcpy(out, bytes.data(), bytes.size()); }, std::move(bind));
  }

  size_t total_bytes() const {
    size_t total = 0;
    for (const auto& piece : pieces_) total += aligned(piece.bytes);
    return total;
  }

  HugePageBuffer place() const {
    HugePageBuffer arena(total_bytes());
    size_t offset = 0;
    for (const auto& piece : pieces_) {
      piece.fill(arena.data() + offset);
      piece.bind(arena.data() + offset);
      offset += aligned(piece.bytes);
    }
    return arena;
  }

 private:
  static size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }  // whole cache lines per piece
  struct Piece {
    size_t bytes;
    Fill fill;
    Bind bind;
  };
  std::vector<Piece> pieces_;
};

}  // namespace

std::unique_ptr<LlamaModel> LlamaModel::load(const std::filesystem::path& checkpoint_dir, Options options) {
  ModelConfig config = ModelConfig::load(checkpoint_dir);
  const auto weights_path = checkpoint_dir / "rank0.safetensors";
  if (!std::filesystem::exists(weights_path)) {
    throw_error("no rank0.safetensors in ", checkpoint_dir.string(),
                ": expected a single-rank TensorRT-LLM checkpoint (config.json + rank0.safetensors)");
  }
  std::unique_ptr<LlamaModel> model(new LlamaModel(config, options));
  model->file_ = std::make_unique<SafetensorsFile>(weights_path);
  const SafetensorsFile& file = *model->file_;
  const auto& c = model->config_;
  const QuantConfig& quant = c.quantization;
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t inter = static_cast<size_t>(c.intermediate_size);
  const size_t vocab = static_cast<size_t>(c.vocab_size);
  const size_t qkv_rows = static_cast<size_t>(c.q_size() + 2 * c.kv_size());
  const size_t q_size = static_cast<size_t>(c.q_size());
  const std::string where = weights_path.string();

  if (quant.algo != QuantAlgo::None) {
    const auto packing = file.metadata().find(quantized_format::kPackingKey);
    if (packing == file.metadata().end() || packing->second != quantized_format::kPackingVersion) {
      throw_error(where, ": the ", quant_algo_name(quant.algo), " weights are not in this project's packing (metadata ",
                  quantized_format::kPackingKey, " = ", quantized_format::kPackingVersion,
                  "). Checkpoints from TensorRT-LLM's own quantizer are packed for its GPU kernels; for the CPU "
                  "engine, quantize with `llm convert --hf DIR --quant int8|awq ...` or `llm quantize`");
    }
  }

  ArenaPlan plan;
  auto float_matrix = [&](const std::string& name, size_t rows, size_t cols, kernels::WeightView* target) {
    const TensorView& t = file.get(name, {rows, cols});
    if (!is_float_dtype(t.dtype)) {
      throw_error(where, ": tensor ", name, " has dtype ", safetensors_name(t.dtype),
                  quant.algo == QuantAlgo::None ? "; float checkpoints need F32, F16 or BF16 weights"
                                                : "; expected a float tensor for a module the quantization excludes");
    }
    *target = kernels::WeightView{t.dtype, nullptr, rows, cols};
    plan.add_copy(t.bytes, [target](const uint8_t* placed) { target->data = placed; });
  };
  // A float tensor of scales, kept as fp16 bits like the kernels read them.
  auto fp16_scales = [&](const std::string& name, std::vector<size_t> shape, const uint16_t** target) {
    const TensorView& t = file.get(name, shape);
    if (!is_float_dtype(t.dtype)) throw_error(where, ": tensor ", name, " must be a float tensor of scales");
    plan.add(
        t.numel() * sizeof(uint16_t),
        [&t, name, where](uint8_t* out) {
          auto* bits = reinterpret_cast<uint16_t*>(out);
          for (size_t i = 0; i < t.numel(); ++i) {
            const float value = element_as_f32(t, i);
            bits[i] = f32_to_fp16(value);
            if (!std::isfinite(value) || !std::isfinite(fp16_to_f32(bits[i])))
              throw_error(where, ": tensor ", name, " holds a scale (", value, ") that is not a finite float16");
          }
        },
        [target](const uint8_t* placed) { *target = reinterpret_cast<const uint16_t*>(placed); });
  };
  auto quantized_matrix = [&](const std::string& module, size_t rows, size_t cols, kernels::WeightView* target) {
    if (quant.algo == QuantAlgo::None || quant.excludes(module)) {
      float_matrix(module + ".weight", rows, cols, target);
      return;
    }
    const std::string weight_name = module + ".weight";
    auto expect_int8_bytes = [&](const TensorView& t) {
      if (t.dtype != DType::I8 && t.dtype != DType::U8)
        throw_error(where, ": tensor ", weight_name, " has dtype ", safetensors_name(t.dtype), "; ",
                    quant_algo_name(quant.algo), " weights are I8");
    };
    if (quant.algo == QuantAlgo::W8A16) {
      const TensorView& t = file.get(weight_name, {rows, cols});
      expect_int8_bytes(t);
      *target = kernels::WeightView{DType::I8, nullptr, rows, cols, kernels::WeightFormat::Int8};
      plan.add_copy(t.bytes, [target](const uint8_t* placed) { target->data = placed; });
      fp16_scales(module + ".per_channel_scale", {rows}, &target->scales);
      return;
    }
    const size_t group = static_cast<size_t>(quant.group_size);
    const size_t padded = quantized_format::int4_padded_columns(cols, group);
    const size_t groups = quantized_format::int4_groups(cols, group);
    const TensorView& t = file.get(weight_name, {rows, padded / 2});
    expect_int8_bytes(t);
    *target = kernels::WeightView{DType::U8, nullptr, rows, cols, kernels::WeightFormat::Int4};
    target->group_size = group;
    plan.add_copy(t.bytes, [target](const uint8_t* placed) { target->data = placed; });
    fp16_scales(module + ".weights_scaling_factor", {rows, groups}, &target->scales);
    if (quant.has_zero_point) {
      const TensorView& zeros = file.get(module + ".zero", {rows, groups});
      if (zeros.dtype != DType::U8) throw_error(where, ": tensor ", module, ".zero must be U8 zero points");
      for (uint8_t z : zeros.bytes) {
        if (z > 15) throw_error(where, ": tensor ", module, ".zero holds ", int{z}, "; 4-bit zero points are 0..15");
      }
      plan.add_copy(zeros.bytes, [target](const uint8_t* placed) { target->zeros = placed; });
    }
    if (quant.pre_quant_scale) {
      const TensorView& pre = file.get(module + ".prequant_scaling_factor", {cols});
      if (!is_float_dtype(pre.dtype)) throw_error(where, ": tensor ", module, ".prequant_scaling_factor must be float");
      plan.add(
          cols * sizeof(float),
          [&pre, cols](uint8_t* out) {
            kernels::weight_row_to_f32(kernels::WeightView{pre.dtype, pre.bytes.data(), 1, cols}, 0,
                                       reinterpret_cast<float*>(out));
          },
          [target](const uint8_t* placed) { target->input_scale = reinterpret_cast<const float*>(placed); });
    }
  };
  auto norm = [&](const std::string& name, size_t n) {
    const TensorView& t = file.get(name, {n});
    if (!is_float_dtype(t.dtype)) throw_error(where, ": tensor ", name, " must be a float tensor");
    return to_f32_vector(t);
  };

  const TensorView& embedding = file.get("transformer.vocab_embedding.weight", {vocab, hidden});
  if (!is_float_dtype(embedding.dtype))
    throw_error(where, ": tensor transformer.vocab_embedding.weight must be F32, F16 or BF16");
  model->embedding_ = kernels::WeightView{embedding.dtype, embedding.bytes.data(), vocab, hidden};
  const bool shared_lm_head = file.find("lm_head.weight") == nullptr && c.share_embedding_table;
  if (shared_lm_head) {
    // The table is also the output projection, which every token streams: it goes to the arena.
    float_matrix("transformer.vocab_embedding.weight", vocab, hidden, &model->lm_head_);
  } else {
    quantized_matrix("lm_head", vocab, hidden, &model->lm_head_);
  }
  model->layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    Layer& layer = model->layers_[i];
    const std::string prefix = "transformer.layers." + std::to_string(i) + ".";
    layer.input_norm = norm(prefix + "input_layernorm.weight", hidden);
    layer.post_norm = norm(prefix + "post_layernorm.weight", hidden);
    const std::array<std::pair<size_t, size_t>, kLinearsPerLayer> shapes = {
        {{qkv_rows, hidden}, {hidden, q_size}, {inter, hidden}, {inter, hidden}, {hidden, inter}}};
    for (Linear which : kLinears) {
      const auto index = static_cast<size_t>(which);
      quantized_matrix(prefix + linear_name(which), shapes[index].first, shapes[index].second, &layer.linears[index]);
    }
  }
  model->final_norm_ = norm("transformer.ln_f.weight", hidden);

  model->weights_ = plan.place();
  model->weight_bytes_ = plan.total_bytes();
  if (shared_lm_head) {
    model->embedding_ = model->lm_head_;  // read from the arena; the map is no longer needed
    model->file_.reset();
  } else {
    // Copying touched every page of the map; only the embedding rows a prompt uses need to be back.
    model->file_->release_resident_pages();
  }
  return model;
}

void LlamaModel::compute_rotary(size_t position) {
  // Angles in double precision: positions times inverse frequencies lose digits in float32.
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = static_cast<double>(position) * inv_freq_[i];
    rotary_cos_[i] = static_cast<float>(std::cos(angle));
    rotary_sin_[i] = static_cast<float>(std::sin(angle));
  }
}

void LlamaModel::apply_rotary(float* head_vectors, size_t n_heads) const {
  // GPT-NeoX rotary layout: element i pairs with i + head_size/2 (Hugging Face's rotate_half).
  const size_t head_size = static_cast<size_t>(config_.head_size);
  const size_t half = head_size / 2;
  const float* cos_table = rotary_cos_.data();
  const float* sin_table = rotary_sin_.data();
  for (size_t h = 0; h < n_heads; ++h) {
    float* v = head_vectors + h * head_size;
    for (size_t i = 0; i < half; ++i) {
      const float x0 = v[i];
      const float x1 = v[i + half];
      v[i] = x0 * cos_table[i] - x1 * sin_table[i];
      v[i + half] = x1 * cos_table[i] + x0 * sin_table[i];
    }
  }
}

void LlamaModel::attention(KvCache& cache, size_t layer, size_t first_position, size_t n_tokens) {
  const size_t head_size = static_cast<size_t>(config_.head_size);
  const size_t n_heads = static_cast<size_t>(config_.num_attention_heads);
  const size_t group = n_heads / static_cast<size_t>(config_.num_key_value_heads);
  const size_t q_size = static_cast<size_t>(config_.q_size());
  const size_t kv_size = static_cast<size_t>(config_.kv_size());
  const size_t qkv_stride = q_size + 2 * kv_size;
  const size_t span = first_position + n_tokens;  // positions any query may attend to
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_size));
  const kernels::Isa isa = context_.isa;
  const DType kv_dtype = cache.dtype();
  scores_.resize(n_heads * span);

  pool_.run(n_heads, [&](size_t h) {
    const std::byte* keys = cache.keys(layer, h / group);
    const std::byte* values = cache.values(layer, h / group);
    float* scores = scores_.data() + h * span;
    for (size_t t = 0; t < n_tokens; ++t) {
      const size_t position = first_position + t;
      const float* q = qkv_.data() + t * qkv_stride + h * head_size;
      kernels::attention_scores(isa, q, keys, cache.head_bytes(), kv_dtype, head_size, position + 1, scale, scores);
      kernels::softmax(scores, position + 1);
      float* out = attn_out_.data() + t * q_size + h * head_size;
      kernels::attention_values(isa, scores, values, cache.head_bytes(), kv_dtype, head_size, position + 1, out);
    }
  });
}

void LlamaModel::forward(KvCache& cache, std::span<const int32_t> tokens, std::span<float> logits, bool all_logits,
                         LinearInputObserver* observer) {
  const size_t n = tokens.size();
  if (n == 0) throw Error("forward: no tokens to run");
  if (cache.length_ + n > cache.capacity_) {
    throw_error("sequence of ", cache.length_ + n, " tokens exceeds its KV cache capacity of ", cache.capacity_);
  }
  const size_t vocab = static_cast<size_t>(config_.vocab_size);
  if (logits.size() < (all_logits ? n : 1) * vocab) throw Error("forward: logits buffer too small");
  for (int32_t id : tokens) {
    if (id < 0 || static_cast<size_t>(id) >= vocab)
      throw_error("token id ", id, " is outside the vocabulary [0, ", vocab, ")");
  }

  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  const size_t inter = static_cast<size_t>(config_.intermediate_size);
  const size_t q_size = static_cast<size_t>(config_.q_size());
  const size_t kv_size = static_cast<size_t>(config_.kv_size());
  const size_t qkv_stride = q_size + 2 * kv_size;
  const size_t first = cache.length_;
  const float eps = static_cast<float>(config_.norm_epsilon);

  x_.resize(n * hidden);
  normed_.resize(n * hidden);
  qkv_.resize(n * qkv_stride);
  attn_out_.resize(n * q_size);
  mlp_a_.resize(n * inter);
  mlp_b_.resize(n * std::max(inter, hidden));

  for (size_t t = 0; t < n; ++t) kernels::weight_row_to_f32(embedding_, static_cast<size_t>(tokens[t]), &x_[t * hidden]);

  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const auto linear = [&](Linear which, const float* in, float* out) {
      const kernels::WeightView& w = layer[which];
      if (observer != nullptr) observer->on_linear_input(l, which, in, n, w.cols);
      kernels::matmul(context_, in, n, w, out);
    };
    for (size_t t = 0; t < n; ++t)
      kernels::rmsnorm(&x_[t * hidden], layer.input_norm.data(), hidden, eps, &normed_[t * hidden]);
    linear(Linear::Qkv, normed_.data(), qkv_.data());
    for (size_t t = 0; t < n; ++t) {
      float* row = &qkv_[t * qkv_stride];
      compute_rotary(first + t);
      apply_rotary(row, static_cast<size_t>(config_.num_attention_heads));
      apply_rotary(row + q_size, static_cast<size_t>(config_.num_key_value_heads));
      cache.store(l, first + t, row + q_size, row + q_size + kv_size);
    }
    attention(cache, l, first, n);
    linear(Linear::Dense, attn_out_.data(), mlp_b_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += mlp_b_[i];

    for (size_t t = 0; t < n; ++t)
      kernels::rmsnorm(&x_[t * hidden], layer.post_norm.data(), hidden, eps, &normed_[t * hidden]);
    linear(Linear::Fc, normed_.data(), mlp_a_.data());
    linear(Linear::Gate, normed_.data(), mlp_b_.data());
    kernels::silu_mul(mlp_a_.data(), mlp_b_.data(), n * inter);
    linear(Linear::Proj, mlp_a_.data(), mlp_b_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += mlp_b_[i];
  }
  cache.length_ = first + n;

  const size_t first_row = all_logits ? 0 : n - 1;
  const size_t rows = n - first_row;
  for (size_t t = first_row; t < n; ++t)
    kernels::rmsnorm(&x_[t * hidden], final_norm_.data(), hidden, eps, &normed_[(t - first_row) * hidden]);
  kernels::matmul(context_, normed_.data(), rows, lm_head_, logits.data());
}

}  // namespace llm
