#pragma once
// Hugging Face Llama checkpoint -> TensorRT-LLM checkpoint (config.json + rank0.safetensors),
// the same schema TensorRT-LLM's convert_checkpoint.py writes, so trtllm-build takes it as is.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/dtype.h"

namespace llm {

struct HfConvertOptions {
  std::filesystem::path hf_dir;
  std::filesystem::path out_dir;
  DType dtype = DType::F16;  // float32, float16 or bfloat16
  std::function<void(const std::string&)> log;  // progress and warnings; may be empty
};

// Reads config.json, model.safetensors (or the shards named by model.safetensors.index.json)
// and writes out_dir/{config.json, rank0.safetensors} plus the tokenizer files found beside the
// weights. Throws Error naming the file, tensor or field on any problem.
void convert_hf_checkpoint(const HfConvertOptions& options);

// Copies the tokenizer and generation files a checkpoint carries (tokenizer.model,
// tokenizer_config.json, special_tokens_map.json, tokenizer.json, generation_config.json) where present.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

// Element-wise dtype conversion of a whole tensor (float dtypes), through float32.
void convert_elements(DType from, const void* src, DType to, void* dst, size_t count);

}  // namespace llm
