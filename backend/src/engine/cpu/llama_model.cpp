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

LlamaModel::LlamaModel(ModelConfig config, Options options)
    : config_(std::move(config)), pool_(options.threads), context_{kernels::detect_isa(), &pool_} {
  const size_t half = static_cast<size_t>(config_.head_size) / 2;
  inv_freq_.resize(half);
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

// Below this many elements a share of silu_mul costs less than handing it to another thread.
constexpr size_t kMinSiluElementsPerTask = 2048;

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
  // A float tensor of scales as the fp16 bits the kernels read; every scale must be a finite fp16.
  auto checked_scale_tensor = [&](const std::string& name, std::vector<size_t> shape) -> const TensorView& {
    const TensorView& t = file.get(name, shape);
    if (!is_float_dtype(t.dtype)) throw_error(where, ": tensor ", name, " must be a float tensor of scales");
    return t;
  };
  auto write_fp16_scales = [where](const TensorView& t, const std::string& name, uint16_t* bits) {
    for (size_t i = 0; i < t.numel(); ++i) {
      const float value = element_as_f32(t, i);
      bits[i] = f32_to_fp16(value);
      if (!std::isfinite(value) || !std::isfinite(fp16_to_f32(bits[i])))
        throw_error(where, ": tensor ", name, " holds a scale (", value, ") that is not a finite float16");
    }
  };
  auto fp16_scales = [&](const std::string& name, std::vector<size_t> shape, const uint16_t** target) {
    const TensorView& t = checked_scale_tensor(name, std::move(shape));
    plan.add(
        t.numel() * sizeof(uint16_t),
        [&t, name, &write_fp16_scales](uint8_t* out) { write_fp16_scales(t, name, reinterpret_cast<uint16_t*>(out)); },
        [target](const uint8_t* placed) { *target = reinterpret_cast<const uint16_t*>(placed); });
  };
  // On AMX, Int4 matrices are kept repacked for its kernel (kernels.h, WeightFormat::Int4Tiles).
  const bool int4_tiles = model->context_.isa == kernels::Isa::Amx;
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
    const TensorView* zeros = nullptr;
    if (quant.has_zero_point) {
      zeros = &file.get(module + ".zero", {rows, groups});
      if (zeros->dtype != DType::U8) throw_error(where, ": tensor ", module, ".zero must be U8 zero points");
      for (uint8_t z : zeros->bytes) {
        if (z > 15) throw_error(where, ": tensor ", module, ".zero holds ", int{z}, "; 4-bit zero points are 0..15");
      }
    }
    if (int4_tiles) {
      // Codes, scales and zeros repacked together into one piece of the arena.
      const std::string scales_name = module + ".weights_scaling_factor";
      const TensorView& scales = checked_scale_tensor(scales_name, {rows, groups});
      kernels::WeightView blocks = *target;
      blocks.data = t.bytes.data();
      blocks.zeros = zeros != nullptr ? zeros->bytes.data() : nullptr;
      const kernels::Int4TilesSize size = kernels::int4_tiles_size(blocks);
      const auto cache_lines = [](size_t bytes) { return (bytes + 63) / 64 * 64; };
      const size_t scales_at = cache_lines(size.codes), zeros_at = scales_at + cache_lines(size.scales);
      plan.add(
          zeros_at + size.zeros,
          [blocks, &scales, scales_name, scales_at, zeros_at, &write_fp16_scales](uint8_t* out) mutable {
            std::vector<uint16_t> scale_bits(scales.numel());
            write_fp16_scales(scales, scales_name, scale_bits.data());
            blocks.scales = scale_bits.data();
            kernels::repack_int4_tiles(blocks, out, reinterpret_cast<uint16_t*>(out + scales_at),
                                       blocks.zeros != nullptr ? out + zeros_at : nullptr);
          },
          [target, has_zeros = zeros != nullptr, scales_at, zeros_at](const uint8_t* placed) {
            target->format = kernels::WeightFormat::Int4Tiles;
            target->data = placed;
            target->scales = reinterpret_cast<const uint16_t*>(placed + scales_at);
            target->zeros = has_zeros ? placed + zeros_at : nullptr;
          });
    } else {
      plan.add_copy(t.bytes, [target](const uint8_t* placed) { target->data = placed; });
      fp16_scales(module + ".weights_scaling_factor", {rows, groups}, &target->scales);
      if (zeros != nullptr) plan.add_copy(zeros->bytes, [target](const uint8_t* placed) { target->zeros = placed; });
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

void LlamaModel::compute_rotary(const Batch& batch) {
  const size_t half = inv_freq_.size();
  rotary_cos_.resize(batch.tokens.size() * half);
  rotary_sin_.resize(batch.tokens.size() * half);
  for (const BatchSequence& sequence : batch.sequences) {
    for (size_t t = 0; t < sequence.rows; ++t) {
      const size_t row = sequence.first_row + t;
      // Angles in double precision: positions times inverse frequencies lose digits in float32.
      const auto position = static_cast<double>(sequence.first_position + t);
      for (size_t i = 0; i < half; ++i) {
        const double angle = position * inv_freq_[i];
        rotary_cos_[row * half + i] = static_cast<float>(std::cos(angle));
        rotary_sin_[row * half + i] = static_cast<float>(std::sin(angle));
      }
    }
  }
}

void LlamaModel::apply_rotary(float* head_vectors, size_t n_heads, size_t row) const {
  // GPT-NeoX rotary layout: element i pairs with i + head_size/2 (Hugging Face's rotate_half).
  const size_t head_size = static_cast<size_t>(config_.head_size);
  const size_t half = head_size / 2;
  const float* cos_table = rotary_cos_.data() + row * half;
  const float* sin_table = rotary_sin_.data() + row * half;
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

void LlamaModel::store_keys_and_values(const Batch& batch, KvBlockPool& cache, size_t layer, size_t row) const {
  const size_t q_size = static_cast<size_t>(config_.q_size());
  const size_t kv_size = static_cast<size_t>(config_.kv_size());
  const float* values = &qkv_[row * (q_size + 2 * kv_size)];
  const BatchSequence& sequence = batch.sequences[row_sequence_[row]];
  const size_t position = sequence.first_position + (row - sequence.first_row);
  const size_t per_block = cache.tokens_per_block();
  cache.store(sequence.blocks[position / per_block], position % per_block, layer, values + q_size, values + q_size + kv_size);
}

void LlamaModel::attention(const Batch& batch, const KvBlockPool& cache, size_t layer) {
  const size_t head_size = static_cast<size_t>(config_.head_size);
  const size_t n_heads = static_cast<size_t>(config_.num_attention_heads);
  const size_t group = n_heads / static_cast<size_t>(config_.num_key_value_heads);
  const size_t q_size = static_cast<size_t>(config_.q_size());
  const size_t kv_size = static_cast<size_t>(config_.kv_size());
  const size_t qkv_stride = q_size + 2 * kv_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_size));
  const kernels::Isa isa = context_.isa;
  // Scores of one (sequence, head) pair: one row of every position the sequence's last row sees.
  scores_offsets_.resize(batch.sequences.size());
  size_t scores_size = 0;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    scores_offsets_[s] = scores_size;
    scores_size += n_heads * (batch.sequences[s].first_position + batch.sequences[s].rows);
  }
  scores_.resize(scores_size);

  // Each sequence attends over its own blocks: one task per (sequence, KV head), whose query heads
  // share each key and value as they are read. With too few such tasks to keep the pool busy (one
  // sequence, few KV heads), a KV head's query heads are split over several tasks.
  const size_t kv_heads = n_heads / group;
  size_t parts = 1;
  while (batch.sequences.size() * kv_heads * parts < 4 * pool_.size() && group % (2 * parts) == 0) parts *= 2;
  const size_t heads_per_task = group / parts;
  const size_t tasks_per_sequence = kv_heads * parts;
  pool_.run(batch.sequences.size() * tasks_per_sequence, [&](size_t task) {
    const BatchSequence& sequence = batch.sequences[task / tasks_per_sequence];
    const size_t first_head = task % tasks_per_sequence * heads_per_task;
    const size_t kv_head = first_head / group;
    const size_t span = sequence.first_position + sequence.rows;
    const kernels::PagedRows keys = cache.keys(layer, kv_head, sequence.blocks);
    const kernels::PagedRows values = cache.values(layer, kv_head, sequence.blocks);
    float* scores = scores_.data() + scores_offsets_[task / tasks_per_sequence] + first_head * span;
    for (size_t t = 0; t < sequence.rows; ++t) {
      const size_t row = sequence.first_row + t;
      const size_t visible = sequence.first_position + t + 1;
      const float* q = qkv_.data() + row * qkv_stride + first_head * head_size;
      kernels::attention_scores(isa, q, heads_per_task, keys, head_size, visible, scale, scores, span);
      for (size_t h = 0; h < heads_per_task; ++h) kernels::softmax(isa, scores + h * span, visible);
      float* out = attn_out_.data() + row * q_size + first_head * head_size;
      kernels::attention_values(isa, scores, span, heads_per_task, values, head_size, visible, out);
    }
  });
}

void LlamaModel::check_batch(const Batch& batch, const KvBlockPool& cache, std::span<float> logits) const {
  if (batch.tokens.empty()) throw Error("forward: no tokens to run");
  if (cache.layers() != static_cast<size_t>(config_.num_hidden_layers) ||
      cache.kv_heads() != static_cast<size_t>(config_.num_key_value_heads) ||
      cache.head_size() != static_cast<size_t>(config_.head_size) || cache.dtype() != config_.dtype) {
    throw Error("forward: the KV cache is laid out for another model");
  }
  const size_t vocab = static_cast<size_t>(config_.vocab_size);
  if (logits.size() < batch.logit_rows() * vocab) throw Error("forward: logits buffer too small");
  size_t next_row = 0;
  for (const BatchSequence& sequence : batch.sequences) {
    if (sequence.rows == 0 || sequence.first_row != next_row) throw Error("forward: batch rows out of order");
    next_row += sequence.rows;
    const size_t end = sequence.first_position + sequence.rows;
    if (end > static_cast<size_t>(config_.max_position_embeddings)) {
      throw_error("forward: position ", end - 1, " is beyond the model's context of ", config_.max_position_embeddings);
    }
    if (sequence.blocks.size() < cache.blocks_for(end)) {
      throw_error("forward: ", sequence.blocks.size(), " KV cache blocks cannot hold ", end, " positions");
    }
    for (int32_t block : sequence.blocks) {
      if (block < 0 || static_cast<size_t>(block) >= cache.total_blocks())
        throw_error("forward: KV cache block ", block, " does not exist");
    }
  }
  if (next_row != batch.tokens.size()) throw Error("forward: batch rows out of order");
  for (int32_t id : batch.tokens) {
    if (id < 0 || static_cast<size_t>(id) >= vocab)
      throw_error("token id ", id, " is outside the vocabulary [0, ", vocab, ")");
  }
}

void LlamaModel::forward(const Batch& batch, KvBlockPool& cache, std::span<float> logits,
                         LinearInputObserver* observer) {
  check_batch(batch, cache, logits);
  const size_t n = batch.tokens.size();
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  const size_t inter = static_cast<size_t>(config_.intermediate_size);
  const size_t q_size = static_cast<size_t>(config_.q_size());
  const size_t kv_size = static_cast<size_t>(config_.kv_size());
  const size_t qkv_stride = q_size + 2 * kv_size;
  const float eps = static_cast<float>(config_.norm_epsilon);

  x_.resize(n * hidden);
  normed_.resize(n * hidden);
  qkv_.resize(n * qkv_stride);
  attn_out_.resize(n * q_size);
  mlp_a_.resize(n * inter);
  mlp_b_.resize(n * std::max(inter, hidden));

  for (size_t t = 0; t < n; ++t) {
    kernels::weight_row_to_f32(embedding_, static_cast<size_t>(batch.tokens[t]), &x_[t * hidden]);
  }
  compute_rotary(batch);
  row_sequence_.resize(n);
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    for (size_t t = 0; t < batch.sequences[s].rows; ++t) row_sequence_[batch.sequences[s].first_row + t] = s;
  }

  // Row-wise work between the linear layers is spread over the pool too: left to the calling
  // thread, the other threads would wait through it (a few percent of a batch's decode step).
  const auto for_each_row = [&](const std::function<void(size_t)>& body) {
    if (n == 1) {
      body(0);
    } else {
      pool_.run(n, body);
    }
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const auto linear = [&](Linear which, const float* in, float* out) {
      const kernels::WeightView& w = layer[which];
      if (observer != nullptr) observer->on_linear_input(l, which, in, n, w.cols);
      kernels::matmul(context_, in, n, w, out);
    };
    for_each_row([&](size_t t) {
      kernels::rmsnorm(&x_[t * hidden], layer.input_norm.data(), hidden, eps, &normed_[t * hidden]);
    });
    linear(Linear::Qkv, normed_.data(), qkv_.data());
    for_each_row([&](size_t t) {
      float* row = &qkv_[t * qkv_stride];
      apply_rotary(row, static_cast<size_t>(config_.num_attention_heads), t);
      apply_rotary(row + q_size, static_cast<size_t>(config_.num_key_value_heads), t);
      store_keys_and_values(batch, cache, l, t);  // rows' cache slots are distinct
    });
    attention(batch, cache, l);
    linear(Linear::Dense, attn_out_.data(), mlp_b_.data());
    for_each_row([&](size_t t) {
      float* x = &x_[t * hidden];
      const float* dense = &mlp_b_[t * hidden];
      for (size_t i = 0; i < hidden; ++i) x[i] += dense[i];
      kernels::rmsnorm(x, layer.post_norm.data(), hidden, eps, &normed_[t * hidden]);
    });
    linear(Linear::Fc, normed_.data(), mlp_a_.data());
    linear(Linear::Gate, normed_.data(), mlp_b_.data());
    // One row's SiLU is thousands of exponentials: split in element ranges, so decode shares it too.
    const size_t silu_tasks = std::min(pool_.size(), std::max<size_t>(1, n * inter / kMinSiluElementsPerTask));
    pool_.run(silu_tasks, [&](size_t task) {
      const size_t begin = n * inter * task / silu_tasks;
      const size_t end = n * inter * (task + 1) / silu_tasks;
      kernels::silu_mul(context_.isa, &mlp_a_[begin], &mlp_b_[begin], end - begin);
    });
    linear(Linear::Proj, mlp_a_.data(), mlp_b_.data());
    for_each_row([&](size_t t) {
      float* x = &x_[t * hidden];
      const float* proj = &mlp_b_[t * hidden];
      for (size_t i = 0; i < hidden; ++i) x[i] += proj[i];
    });
  }

  // The final norm of the rows that produce logits, gathered, then lm_head once over all of them.
  size_t rows = 0;
  for (const BatchSequence& sequence : batch.sequences) {
    if (sequence.logits == LogitRows::None) continue;
    const size_t first = sequence.logits == LogitRows::All ? 0 : sequence.rows - 1;
    for (size_t t = first; t < sequence.rows; ++t, ++rows) {
      kernels::rmsnorm(&x_[(sequence.first_row + t) * hidden], final_norm_.data(), hidden, eps, &normed_[rows * hidden]);
    }
  }
  kernels::matmul(context_, normed_.data(), rows, lm_head_, logits.data());
}

void LlamaModel::forward_prompt(std::span<const int32_t> tokens, std::span<float> logits, bool all_logits,
                                LinearInputObserver* observer) {
  if (tokens.empty()) throw Error("forward: no tokens to run");
  constexpr size_t kTokensPerBlock = 64;
  KvBlockPool cache(config_, kTokensPerBlock, (tokens.size() + kTokensPerBlock - 1) / kTokensPerBlock);
  std::vector<int32_t> blocks(cache.total_blocks());
  for (int32_t& block : blocks) block = cache.allocate();
  Batch batch;
  batch.add(tokens, 0, blocks, all_logits ? LogitRows::All : LogitRows::Last);
  forward(batch, cache, logits, observer);
}

}  // namespace llm
