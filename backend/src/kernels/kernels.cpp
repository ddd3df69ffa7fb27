#include "kernels/kernels.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/aligned_vector.h"
#include "common/error.h"
#include "common/half.h"
#include "kernels/matmul_impl.h"

namespace llm::kernels {
namespace {

// Threads split the output rows in multiples of this: whole decode groups (4, 8 or 16 rows) for
// every ISA, and 64-byte pieces of each y row so threads never write the same cache line.
constexpr size_t kRowsPerChunkMultiple = 16;
// Several rows of x make a matmul compute-bound: its rows go out in four chunks per thread, so a
// core that the hypervisor or another process slows down hands part of its share to the others
// (measured on a 2-vCPU VM, 1b W4A16 at batch 8: 7% more tokens/s). One row of x streams the
// weights: one contiguous range per thread keeps its prefetch streams longest (2% faster there).
constexpr size_t kChunksPerThreadComputeBound = 4;

// Handing a call to the pool costs a few microseconds even with spinning workers; calls one core
// finishes in about 20 us are faster on the caller alone (measured: 110m decode tokens/s). One
// core's time is estimated from streaming the weights (~20 GB/s) or the arithmetic (~80 GFLOP/s).
constexpr double kMinMicrosecondsToSplit = 20.0;
constexpr double kWeightBytesPerMicrosecond = 20e3;
constexpr double kFlopsPerMicrosecond = 80e3;

// Per-thread scratch grows and never shrinks: matrices of different widths take turns, and
// resizing down and up again would zero the difference on every call.
template <class T>
void grow_to(AlignedVector<T>& scratch, size_t size) {
  if (scratch.size() < size) scratch.resize(size);
}

bool worth_splitting(size_t m, const WeightView& w) {
  const double weights = static_cast<double>(w.rows) * static_cast<double>(w.cols);
  const double streaming_us = static_cast<double>(w.rows) * static_cast<double>(w.row_bytes()) / kWeightBytesPerMicrosecond;
  const double arithmetic_us = 2.0 * static_cast<double>(m) * weights / kFlopsPerMicrosecond;
  return std::max(streaming_us, arithmetic_us) >= kMinMicrosecondsToSplit;
}

detail::MatmulRowsFn matmul_rows_for(Isa isa) {
  switch (isa) {
    case Isa::Amx:         // its own kernel is for Int4Tiles only (see matmul)
    case Isa::Avx512Bf16:  // its own kernel is for Int4 only (see matmul)
    case Isa::Avx512: return detail::matmul_rows_avx512;
    case Isa::Avx2: return detail::matmul_rows_avx2;
    case Isa::Scalar: break;
  }
  return detail::matmul_rows_scalar;
}

}  // namespace

bool int4_group_size_supported(size_t group_size) {
  return group_size > 0 && group_size % 32 == 0 &&
         (kInt4BlockColumns % group_size == 0 || group_size % kInt4BlockColumns == 0);
}

size_t int4_padded_columns(size_t cols, size_t group_size) {
  const size_t block = std::max(group_size, kInt4BlockColumns);
  return (cols + block - 1) / block * block;
}

size_t int4_groups(size_t cols, size_t group_size) { return (cols + group_size - 1) / group_size; }

size_t WeightView::padded_cols() const {
  const bool int4 = format == WeightFormat::Int4 || format == WeightFormat::Int4Tiles;
  return int4 && group_size != 0 ? int4_padded_columns(cols, group_size) : cols;
}

size_t WeightView::groups() const { return group_size == 0 ? 0 : int4_groups(cols, group_size); }

size_t WeightView::row_bytes() const {
  switch (format) {
    case WeightFormat::Float: return cols * dtype_size(dtype);
    case WeightFormat::Int8: return cols;
    case WeightFormat::Int4:
    case WeightFormat::Int4Tiles: return padded_cols() / 2;  // Int4Tiles: on average; rows are interleaved
  }
  return 0;
}

namespace {

size_t int4_tile_rows(size_t rows) { return (rows + kInt4TileRows - 1) / kInt4TileRows * kInt4TileRows; }

// Where the code of (row, col) lies in Int4Tiles (see kernels.h): its byte and whether it is the high nibble.
std::pair<size_t, bool> int4_tiles_place(size_t padded_cols, size_t row, size_t col) {
  const size_t block = row / kInt4TileRows, n = row % kInt4TileRows;
  const size_t tile = col / 32, within = col % 32;
  const size_t p = within / 2, h = within % 2;
  const size_t chunk = p / 4, r = p % 4;
  const size_t element = 2 * n + h;
  const size_t byte = (block * (padded_cols / 32) + tile) * 256 + chunk * 64 + 16 * (element / 8) + element % 8 +
                      (r % 2 == 1 ? 8 : 0);
  return {byte, r >= 2};
}

}  // namespace

Int4TilesSize int4_tiles_size(const WeightView& int4) {
  const size_t rows = int4_tile_rows(int4.rows);
  const size_t groups = int4.groups();
  return {rows * int4.padded_cols() / 2, rows * groups * sizeof(uint16_t), int4.zeros != nullptr ? rows * groups : 0};
}

WeightView repack_int4_tiles(const WeightView& int4, uint8_t* codes, uint16_t* scales, uint8_t* zeros) {
  if (int4.format != WeightFormat::Int4) throw Error("repack_int4_tiles: the matrix is not in the Int4 format");
  const size_t padded = int4.padded_cols();
  const size_t groups = int4.groups();
  const size_t rows = int4_tile_rows(int4.rows);
  const Int4TilesSize size = int4_tiles_size(int4);
  std::fill(codes, codes + size.codes, uint8_t{0});
  for (size_t r = 0; r < int4.rows; ++r) {
    const auto* row = static_cast<const uint8_t*>(int4.data) + r * int4.row_bytes();
    for (size_t c = 0; c < padded; ++c) {
      const auto [byte, high] = int4_tiles_place(padded, r, c);
      const uint8_t code = int4_code(row, c);
      codes[byte] = static_cast<uint8_t>(high ? (codes[byte] & 0x0F) | (code << 4) : (codes[byte] & 0xF0) | code);
    }
  }
  // Scales and zeros by blocks of 16 rows: [block][group][row in block]; padding rows get 0.
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < groups; ++g) {
      const size_t to = ((r / kInt4TileRows) * groups + g) * kInt4TileRows + r % kInt4TileRows;
      const bool real = r < int4.rows;
      scales[to] = real ? int4.scales[r * groups + g] : uint16_t{0};
      if (zeros != nullptr) zeros[to] = real && int4.zeros != nullptr ? int4.zeros[r * groups + g] : kInt4SymmetricZero;
    }
  }
  WeightView tiles = int4;
  tiles.format = WeightFormat::Int4Tiles;
  tiles.data = codes;
  tiles.scales = scales;
  tiles.zeros = int4.zeros != nullptr ? zeros : nullptr;
  return tiles;
}

namespace {

// Every layout error a caller could make, as a message, before a kernel reads out of bounds.
void check_weights(const WeightView& w) {
  switch (w.format) {
    case WeightFormat::Float:
      if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16) {
        throw_error("matmul: float weights of dtype ", safetensors_name(w.dtype),
                    " are not supported (F32, F16 or BF16 only)");
      }
      return;
    case WeightFormat::Int8:
      if (w.scales == nullptr) throw Error("matmul: int8 weights need per-row scales");
      return;
    case WeightFormat::Int4:
    case WeightFormat::Int4Tiles:
      if (!int4_group_size_supported(w.group_size))
        throw_error("matmul: int4 group size must be 32, 64 or a multiple of 128, got ", w.group_size);
      if (w.scales == nullptr) throw Error("matmul: int4 weights need per-group scales");
      return;
  }
  throw Error("matmul: unknown weight format");
}

float int4_weight(const WeightView& w, size_t row, size_t col) {
  uint8_t code = 0;
  size_t index = 0;
  if (w.format == WeightFormat::Int4Tiles) {
    const auto [byte, high] = int4_tiles_place(w.padded_cols(), row, col);
    const uint8_t pair = static_cast<const uint8_t*>(w.data)[byte];
    code = high ? pair >> 4 : pair & 0x0F;
    index = ((row / kInt4TileRows) * w.groups() + col / w.group_size) * kInt4TileRows + row % kInt4TileRows;
  } else {
    code = int4_code(static_cast<const uint8_t*>(w.data) + row * w.row_bytes(), col);
    index = row * w.groups() + col / w.group_size;
  }
  const float zero = w.zeros != nullptr ? w.zeros[index] : static_cast<float>(kInt4SymmetricZero);
  return (static_cast<float>(code) - zero) * fp16_to_f32(w.scales[index]);
}

}  // namespace

void matmul(const Context& ctx, const float* x, size_t m, const WeightView& w, float* y) {
  check_weights(w);
  // Running kernels the CPU lacks would die with SIGILL; a clear error is cheap at this size of call.
  if (!isa_supported(ctx.isa)) throw_error("matmul: this CPU does not support ", isa_name(ctx.isa), " kernels");
  if (m == 0 || w.rows == 0) return;

  if (w.input_scale != nullptr) {
    // AWQ's per-input-channel scale: applied once to x here rather than to every weight. The copy
    // is per calling thread, so models running on different threads never share it.
    thread_local AlignedVector<float> scaled;
    grow_to(scaled, m * w.cols);
    for (size_t i = 0; i < m; ++i) {
      for (size_t c = 0; c < w.cols; ++c) scaled[i * w.cols + c] = x[i * w.cols + c] * w.input_scale[c];
    }
    x = scaled.data();
  }

  const auto run_rows = [&](const auto& matmul_rows) {
    if (ctx.pool == nullptr || ctx.pool->size() == 1 || !worth_splitting(m, w)) {
      matmul_rows(0, w.rows);
      return;
    }
    ctx.pool->parallel_for(w.rows, kRowsPerChunkMultiple, matmul_rows, m > 1 ? kChunksPerThreadComputeBound : 1);
  };
  if (w.format == WeightFormat::Int4Tiles) {
    if (ctx.isa != Isa::Amx) {
      throw_error("matmul: Int4Tiles weights need the amx kernels, not ", isa_name(ctx.isa),
                  " (repack_int4_tiles is for engines running on Isa::Amx)");
    }
    // x as bfloat16 rows and group sums, once per call; per calling thread like the scaled copy.
    thread_local AlignedVector<uint16_t> values;
    thread_local AlignedVector<float> group_sums;
    const size_t padded = w.padded_cols();
    grow_to(values, m * padded);
    grow_to(group_sums, m * w.groups());
    detail::int4_amx_prepare_input(x, m, w, values.data(), group_sums.data());
    const detail::Int4AmxInput input{values.data(), group_sums.data(), padded};
    run_rows([&](size_t row_begin, size_t row_end) {
      detail::matmul_rows_int4_amx(input, m, w, y, row_begin, row_end);
    });
    return;
  }
  if (ctx.isa == Isa::Avx512Bf16 && detail::int4_bf16_applies(w)) {
    // x in the kernel's bfloat16 order, once per call; per calling thread like the scaled copy.
    thread_local AlignedVector<uint16_t> values;
    thread_local AlignedVector<float> block_sums;
    const size_t padded = w.padded_cols();
    const size_t blocks = padded / kInt4BlockColumns;
    grow_to(values, m * padded);
    grow_to(block_sums, m * blocks);
    // Rows of x are prepared independently: on the pool for a batch, so no core waits through it.
    // (The buffers are this thread's: a thread_local named inside the lambda would be the worker's.)
    uint16_t* const values_data = values.data();
    float* const block_sums_data = block_sums.data();
    const auto prepare_rows = [&](size_t begin, size_t end) {
      detail::int4_bf16_prepare_input(x + begin * w.cols, end - begin, w, values_data + begin * padded,
                                      block_sums_data + begin * blocks);
    };
    if (m > 1 && ctx.pool != nullptr && ctx.pool->size() > 1) {
      ctx.pool->parallel_for(m, 1, prepare_rows);
    } else {
      prepare_rows(0, m);
    }
    const detail::Int4Bf16Input input{values_data, block_sums_data, padded};
    run_rows([&](size_t row_begin, size_t row_end) {
      detail::matmul_rows_int4_bf16(input, m, w, y, row_begin, row_end);
    });
    return;
  }
  const detail::MatmulRowsFn matmul_rows = matmul_rows_for(ctx.isa);
  run_rows([&](size_t row_begin, size_t row_end) { matmul_rows(x, m, w, y, row_begin, row_end); });
}

void weight_row_to_f32(const WeightView& w, size_t row, float* out) {
  if (w.format == WeightFormat::Int8) {
    check_weights(w);
    const auto* codes = static_cast<const int8_t*>(w.data) + row * w.cols;
    const float scale = fp16_to_f32(w.scales[row]);
    for (size_t c = 0; c < w.cols; ++c) out[c] = static_cast<float>(codes[c]) * scale;
    return;
  }
  if (w.format == WeightFormat::Int4 || w.format == WeightFormat::Int4Tiles) {
    check_weights(w);
    for (size_t c = 0; c < w.cols; ++c) out[c] = int4_weight(w, row, c);
    return;
  }
  const size_t offset = row * w.cols;
  switch (w.dtype) {
    case DType::F32: {
      const auto* values = static_cast<const float*>(w.data) + offset;
      std::copy(values, values + w.cols, out);
      return;
    }
    case DType::F16: {
      const auto* bits = static_cast<const uint16_t*>(w.data) + offset;
      std::transform(bits, bits + w.cols, out, fp16_to_f32);
      return;
    }
    case DType::BF16: {
      const auto* bits = static_cast<const uint16_t*>(w.data) + offset;
      std::transform(bits, bits + w.cols, out, bf16_to_f32);
      return;
    }
    default: break;
  }
  throw_error("weight_row_to_f32: weights of dtype ", safetensors_name(w.dtype),
              " are not supported (F32, F16 or BF16 only)");
}

void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  if (n == 0) return;
  // Double keeps the sum of squares exact enough for any hidden size; out may alias x.
  double sum_of_squares = 0.0;
  for (size_t i = 0; i < n; ++i) sum_of_squares += static_cast<double>(x[i]) * x[i];
  const auto scale = static_cast<float>(1.0 / std::sqrt(sum_of_squares / static_cast<double>(n) + eps));
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void silu_mul(Isa isa, float* gate, const float* up, size_t n) {
  switch (isa) {
    case Isa::Amx:
    case Isa::Avx512Bf16:
    case Isa::Avx512: return detail::silu_mul_avx512(gate, up, n);
    case Isa::Avx2:
    case Isa::Scalar: break;
  }
  detail::silu_mul_scalar(gate, up, n);
}

namespace {
void check_paged_rows(const PagedRows& rows, const char* kernel) {
  if (rows.dtype != DType::F32 && rows.dtype != DType::F16 && rows.dtype != DType::BF16) {
    throw_error(kernel, ": elements of dtype ", safetensors_name(rows.dtype), " are not supported (F32, F16 or BF16)");
  }
  if (rows.tokens_per_block == 0) throw_error(kernel, ": tokens_per_block must be at least 1");
}
}  // namespace

float dot(Isa isa, const float* a, const float* b, size_t n) {
  switch (isa) {
    case Isa::Amx:
    case Isa::Avx512Bf16:
    case Isa::Avx512: return detail::dot_avx512(a, b, n);
    case Isa::Avx2: return detail::dot_avx2(a, b, n);
    case Isa::Scalar: break;
  }
  return detail::dot_scalar(a, b, n);
}

// The scalar and AVX2 kernels take one head at a time.
void attention_scores(Isa isa, const float* q, size_t heads, const PagedRows& keys, size_t head_size, size_t count,
                      float scale, float* scores, size_t scores_stride) {
  check_paged_rows(keys, "attention_scores");
  if (heads > 1 && scores_stride < count) throw_error("attention_scores: scores_stride ", scores_stride, " < count ", count);
  switch (isa) {
    case Isa::Amx:
    case Isa::Avx512Bf16:
    case Isa::Avx512:
      return detail::attention_scores_avx512(q, heads, keys, head_size, count, scale, scores, scores_stride);
    case Isa::Avx2:
    case Isa::Scalar: break;
  }
  for (size_t i = 0; i < heads; ++i) {
    const float* head_q = q + i * head_size;
    float* head_scores = scores + i * scores_stride;
    if (isa == Isa::Avx2) {
      detail::attention_scores_avx2(head_q, keys, head_size, count, scale, head_scores);
    } else {
      detail::attention_scores_scalar(head_q, keys, head_size, count, scale, head_scores);
    }
  }
}

void attention_values(Isa isa, const float* weights, size_t weights_stride, size_t heads, const PagedRows& values,
                      size_t head_size, size_t count, float* out) {
  check_paged_rows(values, "attention_values");
  if (heads > 1 && weights_stride < count) {
    throw_error("attention_values: weights_stride ", weights_stride, " < count ", count);
  }
  switch (isa) {
    case Isa::Amx:
    case Isa::Avx512Bf16:
    case Isa::Avx512:
      return detail::attention_values_avx512(weights, weights_stride, heads, values, head_size, count, out);
    case Isa::Avx2:
    case Isa::Scalar: break;
  }
  for (size_t i = 0; i < heads; ++i) {
    const float* head_weights = weights + i * weights_stride;
    float* head_out = out + i * head_size;
    if (isa == Isa::Avx2) {
      detail::attention_values_avx2(head_weights, values, head_size, count, head_out);
    } else {
      detail::attention_values_scalar(head_weights, values, head_size, count, head_out);
    }
  }
}

void softmax(Isa isa, float* x, size_t n) {
  if (n == 0) return;
  switch (isa) {
    case Isa::Amx:
    case Isa::Avx512Bf16:
    case Isa::Avx512: return detail::softmax_avx512(x, n);
    case Isa::Avx2:
    case Isa::Scalar: break;
  }
  detail::softmax_scalar(x, n);
}

namespace detail {
void silu_mul_scalar(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax_scalar(float* x, size_t n) {
  const float max_value = *std::max_element(x, x + n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_value);  // subtracting the maximum keeps exp() from overflowing
    sum += x[i];
  }
  const auto inverse_sum = static_cast<float>(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inverse_sum;
}
}  // namespace detail

}  // namespace llm::kernels
