#pragma once
// Deterministic random-weight checkpoints with real models' shapes, for benchmarks and tests
// on machines without any downloaded model.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/model_config.h"

namespace llm {

struct SynthShape {
  std::string name;
  std::string description;
  ModelConfig config;  // dtype is set from the options
};

// tiny (tests; GQA), 110m (llama2.c stories110M), 1b (TinyLlama-1.1B), 7b (Llama-2-7B).
const std::vector<SynthShape>& synth_shapes();
const SynthShape& synth_shape(std::string_view name);  // throws Error listing the valid names

struct SynthOptions {
  std::string shape = "tiny";
  DType dtype = DType::F16;
  uint64_t seed = 0;
  std::filesystem::path out_dir;
  // The tokenizer to ship: copy an existing tokenizer.model, or build the Llama-2 one from a
  // vocabulary JSON (piece -> id). One of the two is required.
  std::filesystem::path tokenizer_model;
  std::filesystem::path vocab_json;
  size_t threads = 0;
};

// Writes out_dir/{config.json, rank0.safetensors, tokenizer.model}. Weights are uniform random
// with variance scaled per layer (1/fan_in, residual branches further by 1/(2 * layers)) so
// activations stay finite through every layer of every shape. Same options, same bytes.
void write_synthetic_checkpoint(const SynthOptions& options);

}  // namespace llm
