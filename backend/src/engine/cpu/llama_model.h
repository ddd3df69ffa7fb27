#pragma once
// The project's Llama runtime: a forward pass over a TensorRT-LLM checkpoint on the CPU.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"
#include "common/mapped_file.h"
#include "common/thread_pool.h"
#include "kernels/kernels.h"

namespace llm {

// Keys and values of one sequence for every layer, sized once for the positions the sequence may
// reach (prompt + max new tokens), so decode never reallocates. Stored in the model's activation
// dtype, as TensorRT-LLM's KV cache is (float16 for float16 and quantized checkpoints, bfloat16,
// float32): half the memory and half the bytes attention reads per token of a float32 cache.
// Laid out [layer][kv head][position][head_size], as TensorRT-LLM's blocks are by head, so that
// attention streams one head's positions from contiguous memory.
// The memory is not cleared: its pages are committed as positions are written, so a request's
// max_tokens costs nothing until it is generated.
class KvCache {
 public:
  KvCache(const ModelConfig& config, size_t capacity);

  size_t capacity() const { return capacity_; }
  size_t length() const { return length_; }
  DType dtype() const { return dtype_; }
  // Bytes of one position's key (value) for one head, and from one position to the next.
  size_t head_bytes() const { return head_bytes_; }
  // The keys (values) of one head from position 0 on, head_bytes() apart; positions below length()
  // hold head_size elements of dtype().
  const std::byte* keys(size_t layer, size_t kv_head) const { return k_.get() + offset(layer, kv_head); }
  const std::byte* values(size_t layer, size_t kv_head) const { return v_.get() + offset(layer, kv_head); }
  // Stores one position's key and value (kv_heads x head_size floats each), rounded to dtype().
  void store(size_t layer, size_t position, const float* key, const float* value);

 private:
  friend class LlamaModel;
  size_t offset(size_t layer, size_t kv_head) const { return (layer * kv_heads_ + kv_head) * capacity_ * head_bytes_; }

  size_t capacity_;
  size_t kv_heads_;
  size_t head_size_;
  DType dtype_;
  size_t head_bytes_;
  size_t length_ = 0;
  std::unique_ptr<std::byte[]> k_;
  std::unique_ptr<std::byte[]> v_;
};

// The linear layers of one transformer layer, in TensorRT-LLM's naming.
enum class Linear : uint8_t { Qkv, Dense, Fc, Gate, Proj };
inline constexpr size_t kLinearsPerLayer = 5;
inline constexpr std::array<Linear, kLinearsPerLayer> kLinears = {Linear::Qkv, Linear::Dense, Linear::Fc, Linear::Gate,
                                                                   Linear::Proj};
// "attention.qkv", "attention.dense", "mlp.fc" (Hugging Face gate_proj: the SiLU branch),
// "mlp.gate" (up_proj), "mlp.proj" (down_proj).
const char* linear_name(Linear linear);

// Sees the input of every linear layer during a forward pass (AWQ calibration, error analysis).
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  // x holds n_tokens rows of cols floats, before any AWQ input scale; valid during the call only.
  virtual void on_linear_input(size_t layer, Linear linear, const float* x, size_t n_tokens, size_t cols) = 0;
};

class LlamaModel {
 public:
  struct Options {
    size_t threads = 0;  // 0: one per core
  };

  // Loads config.json + rank0.safetensors from a TensorRT-LLM checkpoint directory: float, W8A16
  // or W4A16_AWQ (checkpoint/quantized_format.h). The file is memory-mapped to parse and validate
  // it; the weights the forward pass streams are then copied into huge-page memory, quantized
  // ones as they are stored. The embedding table, read one row per token, stays in the map.
  // Every problem is an Error naming the file, tensor or field.
  static std::unique_ptr<LlamaModel> load(const std::filesystem::path& checkpoint_dir, Options options);

  const ModelConfig& config() const { return config_; }
  kernels::Isa isa() const { return context_.isa; }
  size_t threads() const { return pool_.size(); }
  // Bytes of weights held in process memory (not counting the mapped embedding table).
  size_t weight_bytes() const { return weight_bytes_; }
  size_t num_layers() const { return layers_.size(); }
  const kernels::WeightView& linear(size_t layer, Linear which) const;

  // Runs `tokens` at positions cache.length() ... and appends their keys/values to the cache.
  // With all_logits, writes tokens.size() rows of vocab_size logits; otherwise only the last
  // token's row. Several tokens run as matrix-matrix work (prefill), one as decode.
  // Not thread-safe: one forward at a time per model (it owns the thread pool and scratch).
  void forward(KvCache& cache, std::span<const int32_t> tokens, std::span<float> logits, bool all_logits,
               LinearInputObserver* observer = nullptr);

 private:
  struct Layer {
    std::vector<float> input_norm;
    std::vector<float> post_norm;
    std::array<kernels::WeightView, kLinearsPerLayer> linears;  // indexed by Linear
    const kernels::WeightView& operator[](Linear which) const { return linears[static_cast<size_t>(which)]; }
  };

  LlamaModel(ModelConfig config, Options options);
  void attention(KvCache& cache, size_t layer, size_t first_position, size_t n_tokens);
  void compute_rotary(size_t position);
  void apply_rotary(float* head_vectors, size_t n_heads) const;

  ModelConfig config_;
  ThreadPool pool_;
  kernels::Context context_;
  std::unique_ptr<SafetensorsFile> file_;  // kept while the embedding is read from it
  HugePageBuffer weights_;
  size_t weight_bytes_ = 0;
  kernels::WeightView embedding_;
  kernels::WeightView lm_head_;
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  std::vector<double> inv_freq_;
  std::vector<float> rotary_cos_, rotary_sin_;  // for the position being processed

  // Scratch reused across calls; grown to the largest token count seen.
  std::vector<float> x_, normed_, qkv_, attn_out_, mlp_a_, mlp_b_, scores_;
};

}  // namespace llm
