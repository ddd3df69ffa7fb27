#pragma once
// Weight-only quantization of a float TensorRT-LLM checkpoint into W8A16 or W4A16_AWQ (format in
// checkpoint/quantized_format.h). AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization
// for LLM Compression and Acceleration") runs the float model on calibration text to see each
// linear layer's inputs, so this lives beside the engine rather than in checkpoint/.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/thread_pool.h"

namespace llm {

enum class QuantMethod {
  Int8,     // W8A16: symmetric per output channel
  Int4Rtn,  // W4A16_AWQ format, round-to-nearest with unit pre-quant scales: AWQ's baseline
  Awq,      // W4A16_AWQ: activation-aware scale search, then clipping search
};
// "int8", "int4-rtn", "awq".
std::optional<QuantMethod> quant_method_from_name(std::string_view name);
const char* quant_method_name(QuantMethod method);

struct QuantizeOptions {
  std::filesystem::path checkpoint_dir;  // a float TensorRT-LLM checkpoint (config.json + rank0.safetensors)
  std::filesystem::path out_dir;
  QuantMethod method = QuantMethod::Int8;
  size_t group_size = 128;  // int4: input columns per scale, a multiple of 32
  // AWQ calibration: UTF-8 text cut into calib_samples sequences of calib_sequence_length tokens.
  std::filesystem::path calib_text;
  std::filesystem::path tokenizer;  // default: checkpoint_dir/tokenizer.model
  size_t calib_samples = 32;
  size_t calib_sequence_length = 128;
  size_t threads = 0;  // 0: one per core
  std::function<void(const std::string&)> log;  // progress; may be empty
};

// Writes out_dir/{config.json, rank0.safetensors} and copies the tokenizer files. Throws Error
// naming the option, file or tensor on any problem.
void quantize_checkpoint(const QuantizeOptions& options);

// Symmetric int8 quantization of one row: returns the fp16 bits of scale = max|w| / 127 (1 for
// an all-zero row) and writes codes = round(w / scale).
uint16_t quantize_int8_row(const float* w, size_t cols, int8_t* codes);

// Symmetric group-wise int4 quantization of one row: per group g, scale = clip[g] * max|w_g| / 7
// rounded to fp16 (clip null: 1), codes u = clamp(round(w / scale), -8, 7) + 8 for padded_cols =
// quantized_format::int4_padded_columns (padding gets u = 8, a zero weight). codes: padded_cols
// values (unpacked); scales: ceil(cols / group_size) fp16 bits.
void quantize_int4_row(const float* w, size_t cols, size_t group_size, const float* clip, uint8_t* codes,
                       uint16_t* scales);

// What the kernels effectively multiply by once w (rows x cols, row-major) is quantized as AWQ
// stores it: quantize_int4_row of w * s (s per input column; clip: ratios per row and group, or
// empty), codes dequantized, times the fp16 pre-quant scale 1 / s. The AWQ search evaluates it for
// every candidate, so it is computed directly, without packing, in parallel over rows.
std::vector<float> simulate_int4_quantization(ThreadPool& pool, const std::vector<float>& w, size_t rows, size_t cols,
                                              size_t group_size, const std::vector<float>& s,
                                              const std::vector<float>& clip);

}  // namespace llm
