#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llm {

// Element types of checkpoint tensors. Activations are always float32 inside the engine.
enum class DType : uint8_t { F32, F16, BF16, I8, I32, I64, U8 };

size_t dtype_size(DType t);
// safetensors' spelling: "F32", "F16", "BF16", "I8", "I32", "I64", "U8".
std::string_view safetensors_name(DType t);
std::optional<DType> dtype_from_safetensors(std::string_view name);
// TensorRT-LLM / Hugging Face config spelling: "float32", "float16", "bfloat16".
std::string_view config_name(DType t);
std::optional<DType> dtype_from_config(std::string_view name);

}  // namespace llm
