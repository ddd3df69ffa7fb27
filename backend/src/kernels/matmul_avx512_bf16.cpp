// The Int4 kernel with AVX512_BF16 dot products (kernels.h, WeightFormat::Int4): 32 weights per
// shift, bit select and dot product, where the float32 kernel needs a shift, permute and FMA for
// 16. Only this file is compiled with -mavx512bf16; see matmul_impl.h for why everything here
// apart from the exported functions is internal.

#include <cstdint>

#include "kernels/avx512_intrinsics.h"
#include "kernels/matmul_impl.h"

namespace llm::kernels::detail {
namespace {

constexpr size_t kSteps = kInt4BlockColumns / 32;  // 32 columns (16 bfloat16 pairs) per step

__m512bh as_bf16(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// A code u becomes a bfloat16 without a table: 0x4300 is 128.0, whose 7 mantissa bits count in ones,
// so 0x4300 | u is exactly 128 + u. The kernel sums x * (128 + u) per block and subtracts
// (128 + zero) * sum(x) with the block's sum of x, leaving x * (u - zero).
constexpr int kCodeBias = 128;
constexpr uint16_t kCodeBiasBits = 0x4300;

// Word j of a block is one 32-bit lane: its low half holds columns j + 16k (nibbles k = 0..3) and its
// high half columns 64 + j + 16k (nibbles 4..7). Shifting the block's 16-bit halves right by 4k puts
// both columns of step k in the low 4 bits, next to each other as vdpbf16ps pairs them.
struct Avx512Bf16Int4Tile {
  // Decode: eight rows of code words, per-block sums and accumulators fit the 32 registers.
  static constexpr size_t kDecodeWeightRows = 8;
  // Prefill and batches: 4 x 4 block sums, whose dot-product chains hide vdpbf16ps's latency (4 x 2
  // left the dot-product unit idle part of the time: measured on a 2-core Zen 5 VM, the 1b shape's
  // int4 matrices at m = 8 ran about 1.14x faster, at the unit's peak of one vdpbf16ps per cycle).
  // The compiler keeps what of the accumulators does not fit the registers in L1; they are touched
  // once per 128-column block.
  static constexpr size_t kPrefillWeightRows = 4;

  template <size_t InputRows, size_t WeightRows>
  static void run(const Int4Bf16Input& x, const WeightView& view, size_t row, float* y, size_t y_stride,
                  bool prefetch_next) {
    const size_t stride = view.row_bytes();
    const size_t groups = view.groups();
    const size_t blocks_per_group = view.group_size / kInt4BlockColumns;
    const size_t blocks = view.padded_cols() / kInt4BlockColumns;
    const auto* codes = static_cast<const uint8_t*>(view.data) + row * stride;
    const __m512i code_mask = _mm512_set1_epi16(0x000F);
    const __m512i code_bias = _mm512_set1_epi16(static_cast<short>(kCodeBiasBits));

    __m512 acc[InputRows][WeightRows];
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    const uint16_t* scales = view.scales + row * groups;
    // The group advances by a countdown: a division per block cost as much as a tile's arithmetic.
    size_t group = 0;
    size_t blocks_left_in_group = blocks_per_group;
    for (size_t b = 0; b < blocks; ++b) {
      const size_t byte = b * kInt4BlockColumns / 2;
      if (prefetch_next) {  // the same block of the next rows: one 64-byte line each
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(codes + (WeightRows + j) * stride + byte), _MM_HINT_T1);
        }
      }
      __m512i words[WeightRows];
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) words[j] = _mm512_loadu_si512(codes + j * stride + byte);
      __m512 block_sum[InputRows][WeightRows];
#pragma GCC unroll 16
      for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) block_sum[i][j] = _mm512_setzero_ps();
      }
#pragma GCC unroll 4
      for (size_t k = 0; k < kSteps; ++k) {
        __m512i input[InputRows];
#pragma GCC unroll 16
        for (size_t i = 0; i < InputRows; ++i) {
          input[i] = _mm512_loadu_si512(x.values + i * x.padded_cols + b * kInt4BlockColumns + k * 32);
        }
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          // (code & 0xF) | 0x4300 in one instruction (truth table 0xEA: (a & b) | c).
          const __m512i weights = _mm512_ternarylogic_epi32(_mm512_srli_epi16(words[j], static_cast<unsigned>(4 * k)),
                                                            code_mask, code_bias, 0xEA);
#pragma GCC unroll 16
          for (size_t i = 0; i < InputRows; ++i) {
            block_sum[i][j] = _mm512_dpbf16_ps(block_sum[i][j], as_bf16(input[i]), as_bf16(weights));
          }
        }
      }
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
        // A broadcast fp16 load and one conversion: fewer instructions than a scalar conversion
        // kept for the block, and no register held for it.
        const __m512 row_scale =
            _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(scales[j * groups + group])));
#pragma GCC unroll 16
        for (size_t i = 0; i < InputRows; ++i) acc[i][j] = _mm512_fmadd_ps(block_sum[i][j], row_scale, acc[i][j]);
      }
      if (--blocks_left_in_group == 0) {
        blocks_left_in_group = blocks_per_group;
        ++group;
      }
    }
    add_zero_points<InputRows, WeightRows>(x, view, row, acc, y, y_stride);
  }

  // y = sum of the lanes of acc + terms, terms being the sum over blocks of -(128 + zero) * scale *
  // sum(x over the block), the zero point and scale being those of the block's group. After the
  // loop, 16 blocks per vector, so that its scalars take no registers from the tile; the tile's
  // outputs are summed together by sum_lanes_of_16 (a horizontal sum per output cost as much as a
  // sixth of a 2,048-column tile). Every output goes through the same lane arithmetic whatever the
  // tile and slot, so a batch's rows equal the row alone.
  template <size_t InputRows, size_t WeightRows>
  static void add_zero_points(const Int4Bf16Input& x, const WeightView& view, size_t row,
                              const __m512 (&acc)[InputRows][WeightRows], float* y, size_t y_stride) {
    const size_t groups = view.groups();
    const size_t blocks_per_group = view.group_size / kInt4BlockColumns;
    const size_t blocks = view.padded_cols() / kInt4BlockColumns;
    const size_t input_blocks = x.padded_cols / kInt4BlockColumns;
    static_assert(InputRows * WeightRows <= 16, "one sum_lanes_of_16 finishes a tile");
    __m512 sums[16];  // slot i * WeightRows + j: y[i][j]'s lanes; unused slots add nothing
#pragma GCC unroll 16
    for (size_t p = 0; p < 16; ++p) sums[p] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) {
      const uint16_t* scales = view.scales + (row + j) * groups;
      const uint8_t* zeros = view.zeros != nullptr ? view.zeros + (row + j) * groups : nullptr;
      __m512 terms[InputRows];
#pragma GCC unroll 16
      for (size_t i = 0; i < InputRows; ++i) terms[i] = _mm512_setzero_ps();
      size_t group = 0;
      size_t blocks_left_in_group = blocks_per_group;
      for (size_t first = 0; first < blocks; first += 16) {
        const size_t count = blocks - first < 16 ? blocks - first : 16;
        const auto lanes = static_cast<__mmask16>((1u << count) - 1u);
        // -(128 + zero) * scale for each block: one group per block (the usual group of 128) loads
        // 16 at once; larger groups repeat their group's value.
        __m512 bias_vector;
        if (blocks_per_group == 1) {
          const __m512 scale = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, scales + first));
          const __m512 zero = zeros != nullptr
                                  ? _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, zeros + first)))
                                  : _mm512_set1_ps(static_cast<float>(kInt4SymmetricZero));
          const __m512 negated_offset = _mm512_sub_ps(_mm512_set1_ps(-static_cast<float>(kCodeBias)), zero);
          bias_vector = _mm512_maskz_mul_ps(lanes, negated_offset, scale);
        } else {
          alignas(64) float bias[16] = {};
          for (size_t lane = 0; lane < count; ++lane) {
            const int zero = zeros != nullptr ? zeros[group] : kInt4SymmetricZero;
            bias[lane] = -static_cast<float>(kCodeBias + zero) * _cvtsh_ss(scales[group]);
            if (--blocks_left_in_group == 0) {
              blocks_left_in_group = blocks_per_group;
              ++group;
            }
          }
          bias_vector = _mm512_load_ps(bias);
        }
#pragma GCC unroll 16
        for (size_t i = 0; i < InputRows; ++i) {
          const __m512 sums = _mm512_maskz_loadu_ps(lanes, x.block_sums + i * input_blocks + first);
          terms[i] = _mm512_add_ps(terms[i], _mm512_mul_ps(bias_vector, sums));
        }
      }
#pragma GCC unroll 16
      for (size_t i = 0; i < InputRows; ++i) sums[i * WeightRows + j] = _mm512_add_ps(acc[i][j], terms[i]);
    }
    alignas(64) float out[16];
    _mm512_store_ps(out, sum_lanes_of_16(sums));
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) y[i * y_stride + j] = out[i * WeightRows + j];
    }
  }
};

}  // namespace

bool int4_bf16_applies(const WeightView& w) {
  return w.format == WeightFormat::Int4 && w.group_size % kInt4BlockColumns == 0;
}

void int4_bf16_prepare_input(const float* x, size_t m, const WeightView& w, uint16_t* values, float* block_sums) {
  const size_t cols = w.cols;
  const size_t padded = w.padded_cols();
  // cvtne2ps puts its second operand's 16 values in words 0..15 and the first's in 16..31;
  // this permute interleaves them into the pairs (x[16k + j], x[64 + 16k + j]).
  alignas(64) uint16_t pairs[32];
  for (uint16_t j = 0; j < 16; ++j) {
    pairs[2 * j] = j;
    pairs[2 * j + 1] = static_cast<uint16_t>(16 + j);
  }
  const __m512i interleave = _mm512_load_si512(pairs);
  const __m512i ones = _mm512_set1_epi16(0x3F80);  // bfloat16 1.0
  const auto load = [&](const float* row, size_t c) {
    if (c + 16 <= cols) return _mm512_loadu_ps(row + c);
    const size_t count = c < cols ? cols - c : 0;  // the padding columns read as zeros
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), row + c);
  };
  for (size_t i = 0; i < m; ++i) {
    const float* row = x + i * cols;
    for (size_t block = 0; block < padded; block += kInt4BlockColumns) {
      __m512 sum = _mm512_setzero_ps();
      for (size_t k = 0; k < kSteps; ++k) {
        const __m512 low = load(row, block + 16 * k);
        const __m512 high = load(row, block + 64 + 16 * k);
        const __m512bh rounded = _mm512_cvtne2ps_pbh(high, low);
        const __m512i paired = _mm512_permutexvar_epi16(interleave, reinterpret_cast<const __m512i&>(rounded));
        _mm512_storeu_si512(values + i * padded + block + 32 * k, paired);
        sum = _mm512_dpbf16_ps(sum, as_bf16(paired), as_bf16(ones));
      }
      block_sums[i * (padded / kInt4BlockColumns) + block / kInt4BlockColumns] = _mm512_reduce_add_ps(sum);
    }
  }
}

void matmul_rows_int4_bf16(const Int4Bf16Input& x, size_t m, const WeightView& w, float* y, size_t row_begin,
                           size_t row_end) {
  matmul_rows_tiled<Avx512Bf16Int4Tile>(x, m, w, y, row_begin, row_end);
}

}  // namespace llm::kernels::detail
