#include "engine/cpu/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "checkpoint/safetensors.h"
#include "common/error.h"

namespace llm {

KvCache::KvCache(const ModelConfig& config, size_t capacity)
    : capacity_(capacity),
      kv_size_(static_cast<size_t>(config.kv_size())),
      k_(static_cast<size_t>(config.num_hidden_layers) * capacity * kv_size_),
      v_(k_.size()) {}

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

namespace {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

std::vector<float> to_f32_vector(const TensorView& t) {
  std::vector<float> out(t.numel());
  kernels::weight_row_to_f32(kernels::WeightView{t.dtype, t.bytes.data(), 1, t.numel()}, 0, out.data());
  return out;
}

}  // namespace

std::unique_ptr<LlamaModel> LlamaModel::load(const std::filesystem::path& checkpoint_dir, Options options) {
  ModelConfig config = ModelConfig::load(checkpoint_dir);
  const auto weights_path = checkpoint_dir / "rank0.safetensors";
  if (!std::filesystem::exists(weights_path)) {
    throw_error("no rank0.safetensors in ", checkpoint_dir.string(),
                ": expected a single-rank TensorRT-LLM checkpoint (config.json + rank0.safetensors)");
  }
  const SafetensorsFile file(weights_path);
  std::unique_ptr<LlamaModel> model(new LlamaModel(config, options));
  const auto& c = model->config_;
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t inter = static_cast<size_t>(c.intermediate_size);
  const size_t vocab = static_cast<size_t>(c.vocab_size);
  const size_t qkv_rows = static_cast<size_t>(c.q_size() + 2 * c.kv_size());
  const size_t q_size = static_cast<size_t>(c.q_size());

  // Pass 1: find and check every matrix, then size one huge-page arena for all of them.
  struct Pending {
    const TensorView* tensor;
    kernels::WeightView* target;
  };
  std::vector<Pending> pending;
  auto matrix = [&](const std::string& name, size_t rows, size_t cols, kernels::WeightView* target) {
    const TensorView& t = file.get(name, {rows, cols});
    if (!is_float_dtype(t.dtype)) {
      throw_error(weights_path.string(), ": tensor ", name, " has dtype ", safetensors_name(t.dtype),
                  "; float checkpoints need F32, F16 or BF16 weights");
    }
    *target = kernels::WeightView{t.dtype, nullptr, rows, cols};
    pending.push_back({&t, target});
  };
  auto norm = [&](const std::string& name, size_t n) {
    const TensorView& t = file.get(name, {n});
    if (!is_float_dtype(t.dtype)) throw_error(weights_path.string(), ": tensor ", name, " must be a float tensor");
    return to_f32_vector(t);
  };

  matrix("transformer.vocab_embedding.weight", vocab, hidden, &model->embedding_);
  if (file.find("lm_head.weight") != nullptr || !c.share_embedding_table) {
    matrix("lm_head.weight", vocab, hidden, &model->lm_head_);
  }
  model->layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (size_t i = 0; i < model->layers_.size(); ++i) {
    Layer& layer = model->layers_[i];
    const std::string prefix = "transformer.layers." + std::to_string(i) + ".";
    layer.input_norm = norm(prefix + "input_layernorm.weight", hidden);
    layer.post_norm = norm(prefix + "post_layernorm.weight", hidden);
    matrix(prefix + "attention.qkv.weight", qkv_rows, hidden, &layer.qkv);
    matrix(prefix + "attention.dense.weight", hidden, q_size, &layer.dense);
    matrix(prefix + "mlp.fc.weight", inter, hidden, &layer.fc);
    matrix(prefix + "mlp.gate.weight", inter, hidden, &layer.gate);
    matrix(prefix + "mlp.proj.weight", hidden, inter, &layer.proj);
  }
  model->final_norm_ = norm("transformer.ln_f.weight", hidden);

  constexpr size_t kAlign = 64;
  size_t total = 0;
  for (const auto& p : pending) total += (p.tensor->bytes.size() + kAlign - 1) / kAlign * kAlign;
  model->weights_ = HugePageBuffer(total);
  size_t offset = 0;
  for (const auto& p : pending) {
    uint8_t* dst = model->weights_.data() + offset;
    std::memcpy(dst, p.tensor->bytes.data(), p.tensor->bytes.size());
    p.target->data = dst;
    offset += (p.tensor->bytes.size() + kAlign - 1) / kAlign * kAlign;
  }
  model->weight_bytes_ = total;
  if (model->lm_head_.data == nullptr) model->lm_head_ = model->embedding_;  // shared embedding table
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
  scores_.resize(n_heads * span);

  pool_.run(n_heads, [&](size_t h) {
    const size_t kv_head = h / group;
    float* scores = scores_.data() + h * span;
    for (size_t t = 0; t < n_tokens; ++t) {
      const size_t position = first_position + t;
      const float* q = qkv_.data() + t * qkv_stride + h * head_size;
      for (size_t j = 0; j <= position; ++j) {
        scores[j] = kernels::dot(isa, q, cache.keys(layer, j) + kv_head * head_size, head_size) * scale;
      }
      kernels::softmax(scores, position + 1);
      float* out = attn_out_.data() + t * q_size + h * head_size;
      std::fill(out, out + head_size, 0.0f);
      for (size_t j = 0; j <= position; ++j) {
        kernels::axpy(isa, scores[j], cache.values(layer, j) + kv_head * head_size, out, head_size);
      }
    }
  });
}

void LlamaModel::forward(KvCache& cache, std::span<const int32_t> tokens, std::span<float> logits, bool all_logits) {
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
    for (size_t t = 0; t < n; ++t)
      kernels::rmsnorm(&x_[t * hidden], layer.input_norm.data(), hidden, eps, &normed_[t * hidden]);
    kernels::matmul(context_, normed_.data(), n, layer.qkv, qkv_.data());
    for (size_t t = 0; t < n; ++t) {
      float* row = &qkv_[t * qkv_stride];
      compute_rotary(first + t);
      apply_rotary(row, static_cast<size_t>(config_.num_attention_heads));
      apply_rotary(row + q_size, static_cast<size_t>(config_.num_key_value_heads));
      std::memcpy(cache.keys(l, first + t), row + q_size, kv_size * sizeof(float));
      std::memcpy(cache.values(l, first + t), row + q_size + kv_size, kv_size * sizeof(float));
    }
    attention(cache, l, first, n);
    kernels::matmul(context_, attn_out_.data(), n, layer.dense, mlp_b_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += mlp_b_[i];

    for (size_t t = 0; t < n; ++t)
      kernels::rmsnorm(&x_[t * hidden], layer.post_norm.data(), hidden, eps, &normed_[t * hidden]);
    kernels::matmul(context_, normed_.data(), n, layer.fc, mlp_a_.data());
    kernels::matmul(context_, normed_.data(), n, layer.gate, mlp_b_.data());
    kernels::silu_mul(mlp_a_.data(), mlp_b_.data(), n * inter);
    kernels::matmul(context_, mlp_a_.data(), n, layer.proj, mlp_b_.data());
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
