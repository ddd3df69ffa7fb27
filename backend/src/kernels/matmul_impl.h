#pragma once
// Internal to the kernels: the per-ISA implementations behind kernels.cpp's dispatch, and the
// blocking scheme they share.
//
// matmul_avx2.cpp and matmul_avx512.cpp are compiled with wider instructions than the rest of
// the binary. Everything they define apart from the functions declared here has internal
// linkage, and they call no inline or template code from other headers: the linker merges
// such code across translation units and could otherwise hand an AVX-512 copy to baseline
// callers. matmul_rows_tiled below is only instantiated with a tile type from an anonymous
// namespace, which gives each instantiation internal linkage too.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.h"

namespace llm::kernels::detail {

// Computes output columns [row_begin, row_end) of y = x * W^T for all m rows of x; y is m x w.rows.
using MatmulRowsFn = void (*)(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin,
                              size_t row_end);

void matmul_rows_scalar(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end);
void matmul_rows_avx2(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end);
void matmul_rows_avx512(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end);

// The AVX512_BF16 Int4 kernel (kernels.h, WeightFormat::Int4) for group sizes that are multiples of
// 128. Its input is x prepared once per matmul call: for each row of x and each 128-column block,
// 128 bfloat16 values in the order the kernel pairs them with code words (step k = 0..3 holds the
// pairs x[16k + j], x[64 + 16k + j] for j = 0..15, matching the low and high halves of word j
// shifted right by 4k), and the float sum of the block's 128 rounded values (with which the kernel
// subtracts its codes' bias and zero point).
struct Int4Bf16Input {
  const uint16_t* values = nullptr;  // [m][padded_cols]
  const float* block_sums = nullptr;  // [m][padded_cols / 128]
  size_t padded_cols = 0;
};
bool int4_bf16_applies(const WeightView& w);
void int4_bf16_prepare_input(const float* x, size_t m, const WeightView& w, uint16_t* values, float* block_sums);
void matmul_rows_int4_bf16(const Int4Bf16Input& x, size_t m, const WeightView& w, float* y, size_t row_begin,
                           size_t row_end);

// The AMX Int4Tiles kernel (kernels.h, WeightFormat::Int4Tiles). Its input is x prepared once per
// matmul call: each row rounded to bfloat16 (to nearest even) in column order, zero beyond cols up
// to padded_cols, and the float sum of each group's rounded values (with which the kernel subtracts
// its codes' bias and zero point). row_begin is a multiple of kInt4TileRows.
struct Int4AmxInput {
  const uint16_t* values = nullptr;  // [m][padded_cols]
  const float* group_sums = nullptr;  // [m][groups]
  size_t padded_cols = 0;
};
void int4_amx_prepare_input(const float* x, size_t m, const WeightView& w, uint16_t* values, float* group_sums);
void matmul_rows_int4_amx(const Int4AmxInput& x, size_t m, const WeightView& w, float* y, size_t row_begin,
                          size_t row_end);

float dot_scalar(const float* a, const float* b, size_t n);
float dot_avx2(const float* a, const float* b, size_t n);
float dot_avx512(const float* a, const float* b, size_t n);

// See kernels.h; the rows' dtype is F32, F16 or BF16 and tokens_per_block > 0 (kernels.cpp checks
// both before dispatching).
void attention_scores_scalar(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                             float* scores);
void attention_scores_avx2(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                           float* scores);
void attention_scores_avx512(const float* q, size_t heads, const PagedRows& keys, size_t head_size, size_t count,
                             float scale, float* scores, size_t scores_stride);
void attention_values_scalar(const float* weights, const PagedRows& values, size_t head_size, size_t count,
                             float* out);
void attention_values_avx2(const float* weights, const PagedRows& values, size_t head_size, size_t count, float* out);
void attention_values_avx512(const float* weights, size_t weights_stride, size_t heads, const PagedRows& values,
                             size_t head_size, size_t count, float* out);

// See kernels.h. The AVX-512 softmax computes exp with its own polynomial (within 1 ulp); the others use
// the C library's.
void softmax_scalar(float* x, size_t n);
void softmax_avx512(float* x, size_t n);
void silu_mul_scalar(float* gate, const float* up, size_t n);
void silu_mul_avx512(float* gate, const float* up, size_t n);

// Calls visit(row, j) for the positions j = 0 .. count - 1 of a paged head (kernels.h, PagedRows),
// in order, `row` pointing `offset` bytes into position j's row. `static`: each ISA file gets its
// own copy, compiled with its own flags (see the top of this file).
template <class Visit>
static inline void for_each_paged_row(const PagedRows& rows, size_t count, size_t offset, Visit&& visit) {
  for (size_t first = 0, b = 0; first < count; first += rows.tokens_per_block, ++b) {
    const std::byte* block = rows.base + static_cast<size_t>(rows.blocks[b]) * rows.block_stride + offset;
    const size_t n = count - first < rows.tokens_per_block ? count - first : rows.tokens_per_block;
    for (size_t j = 0; j < n; ++j) visit(block + j * rows.row_stride, first + j);
  }
}

// Rows of x that share each loaded weight vector in prefill.
inline constexpr size_t kPrefillInputRows = 4;
// Bytes of x kept resident in L2 while groups of weight rows stream past them in prefill.
inline constexpr size_t kInputBlockBytes = 256 * 1024;

// An L1 data cache has 64 sets of 64-byte lines on current x86 cores, so addresses a multiple of
// 4 KiB apart share a set; rows a multiple of 2 KiB apart fall into at most two sets.
inline constexpr size_t kRowBytesCrowdingL1Sets = 2048;
// Weight rows streamed together in decode when the rows crowd into so few sets (e.g. 2048 F16
// columns): a full group would need more lines of one set than its 8 ways hold (measured: 16 such
// rows at a time ran at a third of the speed of 4).
inline constexpr size_t kDecodeWeightRowsCrowded = 4;

// The blocking shared by every ISA and weight format. Tile supplies:
//   kDecodeWeightRows   weight rows streamed together when m == 1
//   kPrefillWeightRows  weight rows per register tile when m > 1
//   run<InputRows, WeightRows>(x, w, row, y, y_stride, prefetch_next)
//       y[i * y_stride + j] = dot(x row i, w row (row + j)), x being float rows w.cols apart or an
//       Int4Bf16Input; with prefetch_next it also prefetches the next WeightRows weight rows into L2.
// Decode streams every weight row once, prefetching the next group of rows: short rows end before
// the hardware prefetcher ramps up (measured: 768-column F16 rows streamed from memory twice as
// fast with it).
// Prefill walks x in blocks that stay in L2; within a block each group of weight rows is loaded
// once per kPrefillInputRows rows of x. The first tile of a group prefetches the next group, so
// the memory traffic overlaps the arithmetic of the later tiles instead of stalling the first.
// matmul_rows_decode is the m == 1 part alone, for a Tile whose kernel has its own path for m > 1
// (then the Tile needs no kPrefillWeightRows).
template <class Tile, class Input>
void matmul_rows_decode(const Input& x, const WeightView& w, float* y, size_t row_begin, size_t row_end) {
  const size_t rows = w.rows;
  size_t r = row_begin;
  const auto stream_groups = [&]<size_t Group>() {
    for (; r + Group <= row_end; r += Group) {
      Tile::template run<1, Group>(x, w, r, y + r, rows, r + 2 * Group <= row_end);
    }
  };
  if (w.row_bytes() % kRowBytesCrowdingL1Sets == 0 && kDecodeWeightRowsCrowded < Tile::kDecodeWeightRows) {
    stream_groups.template operator()<kDecodeWeightRowsCrowded>();
  } else {
    stream_groups.template operator()<Tile::kDecodeWeightRows>();
  }
  for (; r < row_end; ++r) Tile::template run<1, 1>(x, w, r, y + r, rows, false);
}

template <class Tile, class Input>
void matmul_rows_tiled(const Input& x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end) {
  const size_t cols = w.cols;
  const size_t rows = w.rows;
  const auto input_row = [&](size_t i) {
    if constexpr (std::is_same_v<Input, Int4Bf16Input>) {
      return Int4Bf16Input{x.values + i * x.padded_cols, x.block_sums + i * (x.padded_cols / kInt4BlockColumns),
                           x.padded_cols};
    } else {
      return x + i * cols;
    }
  };

  if (m == 1) {
    matmul_rows_decode<Tile>(x, w, y, row_begin, row_end);
    return;
  }

  const size_t row_bytes = (cols > 0 ? cols : 1) * sizeof(float);
  const size_t fitting_rows = kInputBlockBytes / row_bytes / kPrefillInputRows * kPrefillInputRows;
  const size_t block_rows = fitting_rows > kPrefillInputRows ? fitting_rows : kPrefillInputRows;
  for (size_t block = 0; block < m; block += block_rows) {
    const size_t block_end = m - block > block_rows ? block + block_rows : m;
    size_t r = row_begin;
    // All tiles of x rows in this block against weight rows [r, r + WeightRows).
    const auto tiles_of_group = [&]<size_t WeightRows>() {
      const bool prefetch_next = r + 2 * WeightRows <= row_end;
      const auto tile = [&]<size_t InputRows>(size_t i) {
        Tile::template run<InputRows, WeightRows>(input_row(i), w, r, y + i * rows + r, rows,
                                                  i == block && prefetch_next);
      };
      size_t i = block;
      for (; i + kPrefillInputRows <= block_end; i += kPrefillInputRows) tile.template operator()<kPrefillInputRows>(i);
      static_assert(kPrefillInputRows == 4, "the cases below cover the rows left after whole tiles");
      switch (block_end - i) {
        case 3: tile.template operator()<3>(i); break;
        case 2: tile.template operator()<2>(i); break;
        case 1: tile.template operator()<1>(i); break;
        default: break;
      }
    };
    for (; r + Tile::kPrefillWeightRows <= row_end; r += Tile::kPrefillWeightRows) {
      tiles_of_group.template operator()<Tile::kPrefillWeightRows>();
    }
    for (; r < row_end; ++r) tiles_of_group.template operator()<1>();
  }
}

}  // namespace llm::kernels::detail
