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
//                                                           padded = in rounded up to G (zero
//                                                           weights); each 32-column block is 16
//                                                           bytes, byte k = column k (low nibble) |
//                                                           column k + 16 (high nibble)
//     NAME.weights_scaling_factor   F16 [out, padded / G]   w = (u - zero) * scale
//     NAME.zero                     U8  [out, padded / G]   only with has_zero_point; otherwise
//                                                           zero = 8 (symmetric, q = u - 8 in [-8, 7])
//     NAME.prequant_scaling_factor  F16 [in]                only with pre_quant_scale: the input is
//                                                           multiplied by it before the product
//                                                           (AWQ's 1 / s; the weight holds W * s)
// This is also the engine's in-memory layout (kernels::WeightFormat), so loading copies bytes.
#include <cstddef>
#include <cstdint>

namespace llm::quantized_format {

inline constexpr const char* kPackingKey = "triton_llm.weight_packing";
inline constexpr const char* kPackingVersion = "1";
inline constexpr size_t kInt4BlockColumns = 32;

inline size_t int4_padded_columns(size_t cols, size_t group_size) {
  return (cols + group_size - 1) / group_size * group_size;
}

// Packs one row of codes (padded_cols values in [0, 15]) into padded_cols / 2 bytes.
inline void pack_int4_row(const uint8_t* codes, size_t padded_cols, uint8_t* out) {
  for (size_t block = 0; block < padded_cols; block += kInt4BlockColumns) {
    for (size_t k = 0; k < kInt4BlockColumns / 2; ++k) {
      out[block / 2 + k] = static_cast<uint8_t>((codes[block + k] & 0xF) | ((codes[block + k + 16] & 0xF) << 4));
    }
  }
}

// The code of column `col` in a packed row.
inline uint8_t int4_code(const uint8_t* packed_row, size_t col) {
  const size_t block = col / kInt4BlockColumns * kInt4BlockColumns;
  const size_t k = col - block;
  const uint8_t byte = packed_row[block / 2 + k % 16];
  return k < 16 ? (byte & 0xF) : (byte >> 4);
}

}  // namespace llm::quantized_format
