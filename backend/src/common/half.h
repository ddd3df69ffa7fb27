#pragma once
// Scalar IEEE half and bfloat16 conversions (round to nearest even). The SIMD kernels convert in
// registers; these serve loading, conversion tools and reference code.
#include <cstdint>
#include <cstring>

namespace llm {

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);

inline float bf16_to_f32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace llm
