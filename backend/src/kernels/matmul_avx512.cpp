// AVX-512 kernels (F, BW, VL, DQ with FMA and F16C). Only this file is compiled for AVX-512;
// see matmul_impl.h for why everything here apart from the exported functions is internal.

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/avx512_intrinsics.h"
#include "kernels/matmul_impl.h"

namespace llm::kernels::detail {
namespace {

constexpr size_t kLanes = 16;

// Lanes [0, count) set; masked loads never touch memory outside them, so tails need no copies.
__mmask16 first_lanes(size_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// Element loaders by stored dtype: for weight rows, and for the KV cache's keys and values.
struct F32Weights {
  using Element = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_first(const float* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
};

struct F16Weights {
  using Element = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_first(const uint16_t* p, __mmask16 lanes) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p));
  }
};

// bfloat16 is the upper half of a float32: widen to 32 bits and shift into place.
struct BF16Weights {
  using Element = uint16_t;
  static __m512 widen(__m256i bits) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)); }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_first(const uint16_t* p, __mmask16 lanes) { return widen(_mm256_maskz_loadu_epi16(lanes, p)); }
};

// Calls visit(Loader{}) with the element loader of a float dtype; other dtypes never get here
// (kernels.cpp rejects them before dispatching).
template <class Visit>
void with_float_elements(DType dtype, Visit&& visit) {
  switch (dtype) {
    case DType::F32: return visit(F32Weights{});
    case DType::F16: return visit(F16Weights{});
    case DType::BF16: return visit(BF16Weights{});
    default: return;
  }
}

// W8A16: sign-extend 16 int8 codes to 32 bits and convert; the row's scale is applied to the sum.
struct Int8Weights {
  using Element = int8_t;
  static __m512 load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __m512 load_first(const int8_t* p, __mmask16 lanes) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(lanes, p)));
  }
};

// The factor a row's dot products are multiplied by: the W8A16 channel scale, or none.
template <class Weights>
float row_scale(const WeightView& w, size_t row) {
  if constexpr (std::is_same_v<Weights, Int8Weights>) {
    return _cvtsh_ss(w.scales[row]);
  } else {
    return 1.0f;
  }
}

template <class Weights>
struct Avx512Tile {
  using Element = typename Weights::Element;
  // Decode: sixteen weight rows in flight keep enough memory streams busy (measured on 5632-column
  // F16 rows: 4 reached three quarters of the L3 bandwidth of 16) and their accumulators fit.
  static constexpr size_t kDecodeWeightRows = 16;
  // Prefill: 4 x 4 accumulators, up to 4 x 2 input vectors and the weight vector in use fit the 32
  // registers.
  static constexpr size_t kPrefillWeightRows = 4;
  // Each step consumes whole 64-byte lines of every weight row with back-to-back loads: rows whose
  // size is a multiple of 4 KiB (2048 or 4096 F16 columns) all map to the same L1 set, where a
  // line left half-used for the next step can be evicted by the other rows' lines first.
  static constexpr size_t kVectorsPerLine = 64 / (kLanes * sizeof(Element));

  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& view, size_t row, float* y, size_t y_stride, bool prefetch_next) {
    const size_t cols = view.cols;
    const Element* w = static_cast<const Element*>(view.data) + row * cols;
    const Element* next_w = prefetch_next ? w + WeightRows * cols : nullptr;
    __m512 acc[InputRows][WeightRows];
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    // Each weight vector is converted once and used for every input row of the tile.
    const auto accumulate = [&]<size_t Vectors>(size_t c, auto load_weights, auto load_input) {
      __m512 input[InputRows][Vectors];
#pragma GCC unroll 16
      for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
        for (size_t v = 0; v < Vectors; ++v) input[i][v] = load_input(x + i * cols + c + v * kLanes);
      }
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
#pragma GCC unroll 16
        for (size_t v = 0; v < Vectors; ++v) {
          const __m512 weight = load_weights(w + j * cols + c + v * kLanes);
#pragma GCC unroll 16
          for (size_t i = 0; i < InputRows; ++i) acc[i][j] = _mm512_fmadd_ps(input[i][v], weight, acc[i][j]);
        }
      }
    };
    const auto load_weights = [](const Element* p) { return Weights::load(p); };
    const auto load_input = [](const float* p) { return _mm512_loadu_ps(p); };
    constexpr size_t kLineColumns = kLanes * kVectorsPerLine;
    size_t c = 0;
    for (; c + kLineColumns <= cols; c += kLineColumns) {
      if (next_w != nullptr) {  // into L2: a whole group of rows would not fit L1
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(next_w + j * cols + c), _MM_HINT_T1);
        }
      }
      accumulate.template operator()<kVectorsPerLine>(c, load_weights, load_input);
    }
    for (; c + kLanes <= cols; c += kLanes) accumulate.template operator()<1>(c, load_weights, load_input);
    if (c < cols) {
      const __mmask16 lanes = first_lanes(cols - c);
      accumulate.template operator()<1>(
          c, [lanes](const Element* p) { return Weights::load_first(p, lanes); },
          [lanes](const float* p) { return _mm512_maskz_loadu_ps(lanes, p); });
    }
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
        y[i * y_stride + j] = _mm512_reduce_add_ps(acc[i][j]) * row_scale<Weights>(view, row + j);
      }
    }
  }
};

// W4A16 group-wise (layout in kernels.h). Per weight row and group, the 16 possible dequantized
// values (u - zero) * scale sit in one register; a lane permute, which reads the low 4 bits of
// each 32-bit lane, then turns codes into weights. A 64-byte block of one row is 16 words: the
// permute of the words dequantizes columns 0..15, of the words shifted right by 4 columns 16..31,
// and so on: one shift and one permute per 16 weights, the dequantized vector serving every row
// of x in the tile. Decode (Avx512Int4Tile) and batches (matmul_rows_int4_batch) run the same tile
// function, and chunking a row's columns only parks its accumulators in memory, so a row of x
// gives the same result alone or in a batch.

// Batches: tiles of 4 rows of x by 4 weight rows (16 accumulators, 4 tables and 4 code words in
// registers). Rows of x are walked in chunks of kInt4BatchChunkColumns columns, each chunk serving
// all kInt4BatchRowsPerPass weight rows of a pass before the next, the accumulators parked in
// memory between chunks: four rows' chunks stay in L1 (at 5,632 columns whole rows would not), and
// the next pass's weight rows are prefetched while a pass computes. Measured on the 1b shape's
// matrices (2 threads), batches of 8 ran about 1.3x faster than through matmul_rows_tiled's prefill
// blocking; 8 x 2 tiles, which share each permute among more FMAs, streamed the weights too slowly.
constexpr size_t kInt4BatchInputRows = 4;
constexpr size_t kInt4BatchWeightRows = 4;
constexpr size_t kInt4BatchChunkColumns = 1024;
constexpr size_t kInt4BatchRowsPerPass = 16;

// Columns [col_begin, col_end) of an InputRows x WeightRows tile at weight row `row` (col_begin a
// multiple of kInt4BlockColumns, InputRows at most kInt4BatchInputRows). Unless Chunked, the
// columns are all of them. The accumulators start at zero when col_begin is 0 and from `state`
// otherwise, and end in y when col_end is cols and in `state` otherwise; state holds
// kInt4BatchInputRows vectors per weight row of the tile. With prefetch_rows_ahead > 0 the same
// columns of the rows that many further on are prefetched into L2.
template <size_t InputRows, size_t WeightRows, bool Chunked>
void int4_tile(const float* x, const WeightView& w, size_t row, size_t col_begin, size_t col_end, __m512* state,
               float* y, size_t y_stride, size_t prefetch_rows_ahead) {
  static_assert(InputRows <= kInt4BatchInputRows);
  const size_t cols = w.cols;
  const size_t stride = w.row_bytes();
  const size_t groups = w.groups();
  const auto* codes = static_cast<const uint8_t*>(w.data) + row * stride;
  const __m512 code_values = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 acc[InputRows][WeightRows];
#pragma GCC unroll 16
  for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) {
      acc[i][j] = !Chunked || col_begin == 0 ? _mm512_setzero_ps() : _mm512_load_ps(&state[j * kInt4BatchInputRows + i]);
    }
  }
  __m512 table[WeightRows];
  const auto load_tables = [&](size_t group) {
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) {
      const size_t index = (row + j) * groups + group;
      const auto zero = static_cast<float>(w.zeros != nullptr ? w.zeros[index] : kInt4SymmetricZero);
      table[j] = _mm512_mul_ps(_mm512_sub_ps(code_values, _mm512_set1_ps(zero)), _mm512_set1_ps(_cvtsh_ss(w.scales[index])));
    }
  };
  // The chunk may start inside a group: its table first, then each next group's at its first
  // column (counters: no division per step).
  size_t group = col_begin / w.group_size;
  load_tables(group);
  size_t next_group = (group + 1) * w.group_size;
  __m512i words[WeightRows];
  const auto load_words = [&](size_t block) {
    if (prefetch_rows_ahead != 0) {  // one 64-byte line of each row
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
        _mm_prefetch(reinterpret_cast<const char*>(codes + (prefetch_rows_ahead + j) * stride + block / 2), _MM_HINT_T1);
      }
    }
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) words[j] = _mm512_loadu_si512(codes + j * stride + block / 2);
  };
  // Columns c .. c + 15 of every row, then the code words move on to the next columns. (All
  // weights first, then one row of x at a time: measured faster for 4 x 4 tiles than the reverse.)
  const auto step = [&](size_t c, __mmask16 lanes) {
    __m512 weights[WeightRows];
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) {
      weights[j] = _mm512_permutexvar_ps(words[j], table[j]);
      words[j] = _mm512_srli_epi32(words[j], 4);
    }
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
      const __m512 input = _mm512_maskz_loadu_ps(lanes, x + i * cols + c);
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) acc[i][j] = _mm512_fmadd_ps(input, weights[j], acc[i][j]);
    }
  };
  size_t block = col_begin;
  if (w.group_size % kInt4BlockColumns == 0) {
    // Whole blocks inside one group: one table per row for all eight steps, no masks.
    for (; block + kInt4BlockColumns <= col_end; block += kInt4BlockColumns) {
      if (block == next_group) {
        load_tables(++group);
        next_group += w.group_size;
      }
      load_words(block);
#pragma GCC unroll 8
      for (size_t k = 0; k < kInt4BlockColumns / kLanes; ++k) step(block + k * kLanes, static_cast<__mmask16>(0xFFFF));
    }
  }
  // Groups smaller than a block, and the row's last, partial block.
  for (; block < col_end; block += kInt4BlockColumns) {
    load_words(block);
    for (size_t k = 0; k < kInt4BlockColumns / kLanes; ++k) {
      const size_t c = block + k * kLanes;
      if (c >= cols) break;  // the rest of the block is padding
      if (c == next_group) {
        load_tables(++group);
        next_group += w.group_size;
      }
      step(c, c + kLanes <= cols ? static_cast<__mmask16>(0xFFFF) : first_lanes(cols - c));
    }
  }
  if (Chunked && col_end < cols) {
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) _mm512_store_ps(&state[j * kInt4BatchInputRows + i], acc[i][j]);
    }
    return;
  }
#pragma GCC unroll 16
  for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
    for (size_t j = 0; j < WeightRows; ++j) y[i * y_stride + j] = _mm512_reduce_add_ps(acc[i][j]);
  }
}

// Decode: eight rows keep several memory streams busy while their value tables, code words and
// accumulators stay in registers; the next eight rows are prefetched.
struct Avx512Int4Tile {
  static constexpr size_t kDecodeWeightRows = 8;

  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& w, size_t row, float* y, size_t y_stride, bool prefetch_next) {
    int4_tile<InputRows, WeightRows, false>(x, w, row, 0, w.cols, nullptr, y, y_stride, prefetch_next ? WeightRows : 0);
  }
};

void matmul_rows_int4_batch(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin,
                            size_t row_end) {
  const size_t cols = w.cols;
  // The accumulators of a pass's tiles between chunks: kInt4BatchInputRows vectors per weight row.
  __m512 state[kInt4BatchRowsPerPass * kInt4BatchInputRows];
  // x in blocks that stay in L2 while the weight rows pass them, as in matmul_rows_tiled.
  const size_t fitting_rows =
      kInputBlockBytes / ((cols > 0 ? cols : 1) * sizeof(float)) / kInt4BatchInputRows * kInt4BatchInputRows;
  const size_t block_rows = fitting_rows > kInt4BatchInputRows ? fitting_rows : kInt4BatchInputRows;
  for (size_t block = 0; block < m; block += block_rows) {
    const size_t block_end = m - block > block_rows ? block + block_rows : m;
    for (size_t pass = row_begin; pass < row_end; pass += kInt4BatchRowsPerPass) {
      const size_t pass_end = row_end - pass < kInt4BatchRowsPerPass ? row_end : pass + kInt4BatchRowsPerPass;
      const size_t prefetch_rows_ahead = pass_end + kInt4BatchRowsPerPass <= row_end ? kInt4BatchRowsPerPass : 0;
      // Tiles of InputRows rows of x from row i, chunk by chunk across the pass's weight rows; the
      // first rows of x of a block prefetch the next pass.
      const auto tiles = [&]<size_t InputRows>(size_t i) {
        const size_t ahead = i == block ? prefetch_rows_ahead : 0;
        for (size_t col_begin = 0; col_begin < cols; col_begin += kInt4BatchChunkColumns) {
          const size_t col_end = cols - col_begin < kInt4BatchChunkColumns ? cols : col_begin + kInt4BatchChunkColumns;
          size_t r = pass;
          for (; r + kInt4BatchWeightRows <= pass_end; r += kInt4BatchWeightRows) {
            int4_tile<InputRows, kInt4BatchWeightRows, true>(x + i * cols, w, r, col_begin, col_end,
                                                       state + (r - pass) * kInt4BatchInputRows, y + i * w.rows + r,
                                                       w.rows, ahead);
          }
          for (; r < pass_end; ++r) {
            int4_tile<InputRows, 1, true>(x + i * cols, w, r, col_begin, col_end, state + (r - pass) * kInt4BatchInputRows,
                                    y + i * w.rows + r, w.rows, ahead);
          }
        }
      };
      size_t i = block;
      for (; i + kInt4BatchInputRows <= block_end; i += kInt4BatchInputRows) {
        tiles.template operator()<kInt4BatchInputRows>(i);
      }
      static_assert(kInt4BatchInputRows == 4, "the cases below cover the rows left after whole tiles");
      switch (block_end - i) {
        case 3: tiles.template operator()<3>(i); break;
        case 2: tiles.template operator()<2>(i); break;
        case 1: tiles.template operator()<1>(i); break;
        default: break;
      }
    }
  }
}

}  // namespace

void matmul_rows_avx512(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end) {
  if (w.format == WeightFormat::Int8) return matmul_rows_tiled<Avx512Tile<Int8Weights>>(x, m, w, y, row_begin, row_end);
  if (w.format == WeightFormat::Int4) {
    if (m == 1) return matmul_rows_decode<Avx512Int4Tile>(x, w, y, row_begin, row_end);
    return matmul_rows_int4_batch(x, m, w, y, row_begin, row_end);
  }
  with_float_elements(w.dtype, [&]<class Elements>(Elements) {
    matmul_rows_tiled<Avx512Tile<Elements>>(x, m, w, y, row_begin, row_end);
  });
}

float dot_avx512(const float* a, const float* b, size_t n) {
  // Two accumulators hide the FMA latency for short vectors (AWQ's groups of 64-128).
  __m512 sum0 = _mm512_setzero_ps();
  __m512 sum1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    sum0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), sum0);
    sum1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + kLanes), _mm512_loadu_ps(b + i + kLanes), sum1);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 lanes = first_lanes(n - i < kLanes ? n - i : kLanes);
    sum0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, a + i), _mm512_maskz_loadu_ps(lanes, b + i), sum0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
}

namespace {

// Scores of Heads query heads (sharing the keys: grouped-query attention) against up to 16 / Heads
// positions of a block at once: sixteen independent FMA chains, slot i * (16 / Heads) + p for head
// i and position p, instead of one latency-bound chain and a horizontal sum per score; each key
// vector is loaded and converted once for all the heads. A slot's chain and its sum in
// sum_lanes_of_16 are the same arithmetic whatever Heads and the slot, so a head's scores do not
// depend on how many heads share the pass, nor on paging.
template <class Elements, size_t Heads>
void attention_scores_heads(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                            float* scores, size_t scores_stride) {
  using Element = typename Elements::Element;
  constexpr size_t kPositions = kLanes / Heads;
  static_assert(kPositions * Heads == kLanes, "heads per pass divide the sixteen slots");
  const size_t vectors = head_size / kLanes;
  const size_t tail = head_size % kLanes;
  const __m512 scale_vector = _mm512_set1_ps(scale);
  for (size_t first = 0, b = 0; first < count; first += keys.tokens_per_block, ++b) {
    const std::byte* block = keys.base + static_cast<size_t>(keys.blocks[b]) * keys.block_stride;
    const size_t in_block = count - first < keys.tokens_per_block ? count - first : keys.tokens_per_block;
    for (size_t group = 0; group < in_block; group += kPositions) {
      const size_t positions = in_block - group < kPositions ? in_block - group : kPositions;
      const auto key = [&](size_t p) {
        return reinterpret_cast<const Element*>(block + (group + p) * keys.row_stride);
      };
      __m512 acc[kLanes];
#pragma GCC unroll 16
      for (size_t slot = 0; slot < kLanes; ++slot) acc[slot] = _mm512_setzero_ps();
      for (size_t v = 0; v < vectors; ++v) {
        __m512 query[Heads];
#pragma GCC unroll 16
        for (size_t i = 0; i < Heads; ++i) query[i] = _mm512_loadu_ps(q + i * head_size + v * kLanes);
#pragma GCC unroll 16
        for (size_t p = 0; p < kPositions; ++p) {
          if (p >= positions) break;
          const __m512 k = Elements::load(key(p) + v * kLanes);
#pragma GCC unroll 16
          for (size_t i = 0; i < Heads; ++i) acc[i * kPositions + p] = _mm512_fmadd_ps(query[i], k, acc[i * kPositions + p]);
        }
      }
      if (tail != 0) {
        const __mmask16 lanes = first_lanes(tail);
        __m512 query[Heads];
#pragma GCC unroll 16
        for (size_t i = 0; i < Heads; ++i) query[i] = _mm512_maskz_loadu_ps(lanes, q + i * head_size + vectors * kLanes);
#pragma GCC unroll 16
        for (size_t p = 0; p < kPositions; ++p) {
          if (p >= positions) break;
          const __m512 k = Elements::load_first(key(p) + vectors * kLanes, lanes);
#pragma GCC unroll 16
          for (size_t i = 0; i < Heads; ++i) acc[i * kPositions + p] = _mm512_fmadd_ps(query[i], k, acc[i * kPositions + p]);
        }
      }
      const __m512 sums = _mm512_mul_ps(sum_lanes_of_16(acc), scale_vector);
      const __mmask16 stored = first_lanes(positions);
#pragma GCC unroll 16
      for (size_t i = 0; i < Heads; ++i) {
        // Head i's slots, moved down to lanes 0 .. positions - 1.
        const __m512 head = Heads == 1 ? sums
                                       : _mm512_maskz_compress_ps(static_cast<__mmask16>(stored << (i * kPositions)), sums);
        _mm512_mask_storeu_ps(scores + i * scores_stride + first + group, stored, head);
      }
    }
  }
}

// out_i[0, kVectors * kLanes) = sum_j weights_i[j] * values[j][column, column + kVectors * kLanes)
// for Heads query heads i sharing the values (grouped-query attention): the columns stay in
// registers for all positions of all blocks, each position's row is read and converted once for
// all the heads. Even and odd positions go to separate accumulators, two FMA chains per column
// vector, so the FMA latency does not set the pace; parity by position, not by place in a block,
// keeps paging out of the arithmetic, and a head's chains are the same whatever Heads.
template <class Elements, size_t kVectors, size_t Heads>
void attention_values_columns(const float* weights, size_t weights_stride, const PagedRows& values, size_t column,
                              size_t count, float* out, size_t out_stride) {
  using Element = typename Elements::Element;
  __m512 even[Heads][kVectors], odd[Heads][kVectors];
  for (size_t i = 0; i < Heads; ++i) {
    for (size_t k = 0; k < kVectors; ++k) even[i][k] = odd[i][k] = _mm512_setzero_ps();
  }
  const auto add = [&](__m512(&acc)[Heads][kVectors], const std::byte* bytes, size_t j) {
    const Element* row = reinterpret_cast<const Element*>(bytes + column * sizeof(Element));
#pragma GCC unroll 16
    for (size_t k = 0; k < kVectors; ++k) {
      const __m512 value = Elements::load(row + k * kLanes);
#pragma GCC unroll 16
      for (size_t i = 0; i < Heads; ++i) {
        acc[i][k] = _mm512_fmadd_ps(_mm512_set1_ps(weights[i * weights_stride + j]), value, acc[i][k]);
      }
    }
  };
  for (size_t first = 0, b = 0; first < count; first += values.tokens_per_block, ++b) {
    const std::byte* block = values.base + static_cast<size_t>(values.blocks[b]) * values.block_stride;
    const size_t end = count - first < values.tokens_per_block ? count - first : values.tokens_per_block;
    size_t t = 0;
    if (first % 2 == 1) {  // a block that starts at an odd position
      add(odd, block, first);
      t = 1;
    }
    for (; t + 2 <= end; t += 2) {
      add(even, block + t * values.row_stride, first + t);
      add(odd, block + (t + 1) * values.row_stride, first + t + 1);
    }
    if (t < end) add(even, block + t * values.row_stride, first + t);
  }
  for (size_t i = 0; i < Heads; ++i) {
    for (size_t k = 0; k < kVectors; ++k) {
      _mm512_storeu_ps(out + i * out_stride + k * kLanes, _mm512_add_ps(even[i][k], odd[i][k]));
    }
  }
}

// Columns in passes of at most 8 vectors for one head, 4 for two heads at once (their
// accumulators fill the registers); the tail of fewer than 16 columns one head at a time.
template <class Elements>
void attention_values_heads(const float* weights, size_t weights_stride, size_t heads, const PagedRows& values,
                            size_t head_size, size_t count, float* out) {
  using Element = typename Elements::Element;
  size_t h = 0;
  const auto columns_of = [&]<size_t Heads>() {
    size_t c = 0;
    const auto columns = [&]<size_t kVectors>() {
      attention_values_columns<Elements, kVectors, Heads>(weights + h * weights_stride, weights_stride, values, c, count,
                                                          out + h * head_size + c, head_size);
      c += kVectors * kLanes;
    };
    if constexpr (Heads == 1) {
      while (head_size - c >= 8 * kLanes) columns.template operator()<8>();
    }
    while (head_size - c >= 4 * kLanes) columns.template operator()<4>();
    if (head_size - c >= 2 * kLanes) columns.template operator()<2>();
    if (head_size - c >= kLanes) columns.template operator()<1>();
    return c;
  };
  size_t c = head_size;
  for (; h + 2 <= heads; h += 2) c = columns_of.template operator()<2>();
  for (; h < heads; ++h) c = columns_of.template operator()<1>();
  if (c < head_size) {
    const __mmask16 lanes = first_lanes(head_size - c);
    for (size_t i = 0; i < heads; ++i) {
      const float* head_weights = weights + i * weights_stride;
      __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
      for_each_paged_row(values, count, c * sizeof(Element), [&](const std::byte* row, size_t j) {
        acc[j & 1] = _mm512_fmadd_ps(_mm512_set1_ps(head_weights[j]),
                                     Elements::load_first(reinterpret_cast<const Element*>(row), lanes), acc[j & 1]);
      });
      _mm512_mask_storeu_ps(out + i * head_size + c, lanes, _mm512_add_ps(acc[0], acc[1]));
    }
  }
}

// e^x for x <= 0 (softmax's inputs less their maximum) to within 1 ulp (0.88 at worst, checked
// against double exp over [-87, 0]): x = n ln 2 + r with
// |r| <= ln 2 / 2, e^r by its Taylor polynomial to degree 7 (error below 1e-8 relative), times 2^n
// by scalef, which rounds to zero below the smallest float as exp does.
__m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // e^-104 is below every float; -inf stays finite
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts, the first with few enough bits that n * part is exact.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

void softmax_avx512(float* x, size_t n) {
  __m512 max_vector = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = first_lanes(n - i < kLanes ? n - i : kLanes);
    max_vector = _mm512_max_ps(max_vector, _mm512_mask_loadu_ps(max_vector, lanes, x + i));
  }
  const __m512 max_value = _mm512_set1_ps(_mm512_reduce_max_ps(max_vector));
  __m512 sum = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + i), max_value));
    _mm512_mask_storeu_ps(x + i, lanes, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(lanes, e));
  }
  // The sixteen partial sums are added in double, as the scalar kernel sums.
  const double total = _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(sum))) +
                       _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(sum, 1)));
  const __m512 inverse = _mm512_set1_ps(static_cast<float>(1.0 / total));
  for (size_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = first_lanes(n - i < kLanes ? n - i : kLanes);
    _mm512_mask_storeu_ps(x + i, lanes, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + i), inverse));
  }
}

// silu(g) = g * sigmoid(g), sigmoid(g) from e = e^-|g| (never overflows): 1 / (1 + e) for g >= 0,
// e / (1 + e) below. The scalar kernel's libm exp ran as long as the rest of a batch's MLP
// between its matmuls.
void silu_mul_avx512(float* gate, const float* up, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += kLanes) {
    const __mmask16 lanes = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 g = _mm512_maskz_loadu_ps(lanes, gate + i);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
    const __mmask16 negative = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 sigmoid = _mm512_div_ps(_mm512_mask_blend_ps(negative, one, e), _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(gate + i, lanes, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid), _mm512_maskz_loadu_ps(lanes, up + i)));
  }
}

void attention_scores_avx512(const float* q, size_t heads, const PagedRows& keys, size_t head_size, size_t count,
                             float scale, float* scores, size_t scores_stride) {
  with_float_elements(keys.dtype, [&]<class Elements>(Elements) {
    size_t h = 0;
    const auto pass = [&]<size_t Heads>() {
      attention_scores_heads<Elements, Heads>(q + h * head_size, keys, head_size, count, scale, scores + h * scores_stride,
                                              scores_stride);
      h += Heads;
    };
    while (heads - h >= 4) pass.template operator()<4>();
    if (heads - h >= 2) pass.template operator()<2>();
    if (heads - h >= 1) pass.template operator()<1>();
  });
}

void attention_values_avx512(const float* weights, size_t weights_stride, size_t heads, const PagedRows& values,
                             size_t head_size, size_t count, float* out) {
  with_float_elements(values.dtype, [&]<class Elements>(Elements) {
    attention_values_heads<Elements>(weights, weights_stride, heads, values, head_size, count, out);
  });
}

}  // namespace llm::kernels::detail
