#pragma once
// The on-disk form of quantized checkpoints written by `llm quantize` / `llm convert --quant`: the
// one place the byte packing is defined. Config keys, quant_algo values and tensor names follow
// TensorRT-LLM; the packing of the codes is this project's own (TensorRT-LLM's is tied to its GPU
// kernels), marked by safetensors metadata kPackingKey = kPackingVersion.
//
// config.json "quantization":
//   W8A16:     {"quant_algo": "W8A16", "exclude_modules": ["lm_head"]}
//   W4A16_AWQ: {"quant_algo": "W4A16_AWQ", "group_size": G, "has_zero_point": Z,
//               "pre_quant_scale": P, "exclude_modules": ["lm_head"]}
// Quantized linears (per layer: attention.qkv, attention.dense, mlp.fc, mlp.gate, mlp.proj);
// embedding, norms and lm_head stay in the checkpoint's float dtype.
//   W8A16:
//     NAME.weight                   I8  [out, in]           code q, row-major: w = q * scale[out]
//     NAME.per_channel_scale        F16 [out]               symmetric: scale = max|w_row| / 127
//   W4A16_AWQ:
//     NAME.weight                   I8  [out, padded / 2]   4-bit codes u in [0, 15], two per byte,
//                                                           padded = in rounded up to
//                                                           max(G, 128); each 128-column block is
//                                                           16 little-endian uint32 words, word i
//                                                           holding column i + 16k in bits
//                                                           4k..4k+3 (k = 0..7)
//     NAME.weights_scaling_factor   F16 [out, ceil(in / G)] w = (u - zero) * scale
//     NAME.zero                     U8  [out, ceil(in / G)] only with has_zero_point; otherwise
//                                                           zero = 8 (symmetric, q = u - 8 in [-8, 7])
//     NAME.prequant_scaling_factor  F16 [in]                only with pre_quant_scale: the input is
//                                                           multiplied by it before the product
//                                                           (AWQ's 1 / s; the weight holds W * s)
// This is also the engine's in-memory layout (kernels::WeightFormat; kernels::int4_code reads a
// code back), so loading copies bytes.
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace llm::quantized_format {

inline constexpr const char* kPackingKey = "triton_llm.weight_packing";
inline constexpr const char* kPackingVersion = "1";
using kernels::int4_groups;
using kernels::int4_padded_columns;
using kernels::kInt4BlockColumns;

// Packs one row of codes (padded_cols values in [0, 15]) into padded_cols / 2 bytes.
inline void pack_int4_row(const uint8_t* codes, size_t padded_cols, uint8_t* out) {
  for (size_t block = 0; block < padded_cols; block += kInt4BlockColumns) {
    for (size_t i = 0; i < 16; ++i) {
      uint32_t word = 0;
      for (size_t k = 0; k < 8; ++k) word |= static_cast<uint32_t>(codes[block + 16 * k + i] & 0xF) << (4 * k);
      for (size_t byte = 0; byte < 4; ++byte) out[block / 2 + 4 * i + byte] = static_cast<uint8_t>(word >> (8 * byte));
    }
  }
}

}  // namespace llm::quantized_format
