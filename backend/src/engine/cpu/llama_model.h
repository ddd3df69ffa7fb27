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
#include "common/aligned_vector.h"
#include "common/mapped_file.h"
#include "common/thread_pool.h"
#include "engine/batch.h"
#include "engine/kv_cache.h"
#include "kernels/kernels.h"

namespace llm {

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

  // Runs one batch: every sequence's rows at their positions, their keys and values written to
  // the blocks the batch names in `cache` (which must be laid out for this model), then attention
  // of each sequence over its own positions. The linear layers run once over all rows of the batch
  // (matrix-matrix work; one row is decode); each row's arithmetic is the same whatever else is in
  // the batch, so a sequence's results do not depend on its neighbours. Writes batch.logit_rows()
  // rows of vocab_size logits. Not thread-safe: one forward at a time per model (it owns the thread
  // pool and scratch).
  void forward(const Batch& batch, KvBlockPool& cache, std::span<float> logits,
               LinearInputObserver* observer = nullptr);

  // Runs `tokens` from position 0 in a KV cache of their own, as one batch of one sequence (eval,
  // calibration): logits for every token with all_logits, else for the last.
  void forward_prompt(std::span<const int32_t> tokens, std::span<float> logits, bool all_logits,
                      LinearInputObserver* observer = nullptr);

 private:
  struct Layer {
    std::vector<float> input_norm;
    std::vector<float> post_norm;
    std::array<kernels::WeightView, kLinearsPerLayer> linears;  // indexed by Linear
    const kernels::WeightView& operator[](Linear which) const { return linears[static_cast<size_t>(which)]; }
  };

  LlamaModel(ModelConfig config, Options options);
  void check_batch(const Batch& batch, const KvBlockPool& cache, std::span<float> logits) const;
  void compute_rotary(const Batch& batch);
  void apply_rotary(float* head_vectors, size_t n_heads, size_t row) const;
  // Writes batch row `row`'s key and value (after rotary) into its sequence's cache slot.
  void store_keys_and_values(const Batch& batch, KvBlockPool& cache, size_t layer, size_t row) const;
  void attention(const Batch& batch, const KvBlockPool& cache, size_t layer);

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
  std::vector<float> rotary_cos_, rotary_sin_;  // [row][head_size / 2] for the rows being processed

  // Scratch reused across calls; grown to the largest batch seen.
  // Activations, on cache lines for the kernels' 64-byte loads.
  AlignedVector<float> x_, normed_, qkv_, attn_out_, mlp_a_, mlp_b_, scores_;
  std::vector<size_t> scores_offsets_;  // per sequence of the batch: where its heads' scores start
  std::vector<size_t> row_sequence_;    // per row of the batch: its sequence's index
};

}  // namespace llm
