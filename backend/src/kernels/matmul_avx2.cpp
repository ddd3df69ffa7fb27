// AVX2 kernels (with FMA and F16C). Only this file is compiled for AVX2; see matmul_impl.h for
// why everything here apart from the exported functions is internal.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/matmul_impl.h"

namespace llm::kernels::detail {
namespace {

constexpr size_t kLanes = 8;

// AVX2 has no masked 16-bit loads, so a tail of fewer than kLanes elements is copied into a
// zero-padded vector; this happens once per tile, not per weight.
template <typename T>
struct Padded {
  alignas(32) T values[kLanes] = {};
  Padded(const T* p, size_t count) { std::memcpy(values, p, count * sizeof(T)); }
};

__m256 load_first_f32(const float* p, size_t count) { return _mm256_load_ps(Padded<float>(p, count).values); }

// Element loaders by stored dtype: for weight rows, and for the KV cache's keys and values.
struct F32Weights {
  using Element = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 load_first(const float* p, size_t count) { return load_first_f32(p, count); }
};

struct F16Weights {
  using Element = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static __m256 load_first(const uint16_t* p, size_t count) {
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(Padded<uint16_t>(p, count).values)));
  }
};

// bfloat16 is the upper half of a float32: widen to 32 bits and shift into place.
struct BF16Weights {
  using Element = uint16_t;
  static __m256 widen(__m128i bits) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16)); }
  static __m256 load(const uint16_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 load_first(const uint16_t* p, size_t count) {
    return widen(_mm_load_si128(reinterpret_cast<const __m128i*>(Padded<uint16_t>(p, count).values)));
  }
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

// W8A16: sign-extend 8 int8 codes to 32 bits and convert; the row's scale is applied to the sum.
struct Int8Weights {
  using Element = int8_t;
  static __m256 load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static __m256 load_first(const int8_t* p, size_t count) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(Padded<int8_t>(p, count).values))));
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

float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

template <class Weights>
struct Avx2Tile {
  using Element = typename Weights::Element;
  // Decode: eight weight rows in flight keep enough memory streams busy and leave registers for
  // the accumulators and a line of input.
  static constexpr size_t kDecodeWeightRows = 8;
  // Prefill: 4 x 3 accumulators + 3 converted weight vectors + 1 input vector fill the 16
  // registers exactly; 12 independent FMA chains cover FMA latency, where 4 x 2 ran at half speed.
  static constexpr size_t kPrefillWeightRows = 3;
  // Decode steps consume whole 64-byte lines of every weight row with back-to-back loads: rows whose
  // size is a multiple of 4 KiB all map to the same L1 set, where a half-used line is evicted by
  // the other rows' lines before the next step (measured on 2048-column F16 rows: twice the speed).
  // Prefill has no registers to spare for this.
  static constexpr size_t kVectorsPerLine = 64 / (kLanes * sizeof(Element));

  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& view, size_t row, float* y, size_t y_stride, bool prefetch_next) {
    const size_t cols = view.cols;
    const Element* w = static_cast<const Element*>(view.data) + row * cols;
    const Element* next_w = prefetch_next ? w + WeightRows * cols : nullptr;
    __m256 acc[InputRows][WeightRows];
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    // Each weight vector is converted once and used for every input row of the tile.
    const auto accumulate = [&]<size_t Vectors>(size_t c, auto load_weights, auto load_input) {
      __m256 input[InputRows][Vectors];
#pragma GCC unroll 16
      for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
        for (size_t v = 0; v < Vectors; ++v) input[i][v] = load_input(x + i * cols + c + v * kLanes);
      }
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
#pragma GCC unroll 16
        for (size_t v = 0; v < Vectors; ++v) {
          const __m256 weight = load_weights(w + j * cols + c + v * kLanes);
#pragma GCC unroll 16
          for (size_t i = 0; i < InputRows; ++i) acc[i][j] = _mm256_fmadd_ps(input[i][v], weight, acc[i][j]);
        }
      }
    };
    const auto load_weights = [](const Element* p) { return Weights::load(p); };
    const auto load_input = [](const float* p) { return _mm256_loadu_ps(p); };
    constexpr size_t kVectorsPerStep = InputRows == 1 ? kVectorsPerLine : 1;
    constexpr size_t kStepColumns = kLanes * kVectorsPerStep;
    size_t c = 0;
    for (; c + kStepColumns <= cols; c += kStepColumns) {
      if (next_w != nullptr) {  // into L2: a whole group of rows would not fit L1
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(next_w + j * cols + c), _MM_HINT_T1);
        }
      }
      accumulate.template operator()<kVectorsPerStep>(c, load_weights, load_input);
    }
    for (; c + kLanes <= cols; c += kLanes) accumulate.template operator()<1>(c, load_weights, load_input);
    if (c < cols) {
      const size_t count = cols - c;
      accumulate.template operator()<1>(
          c, [count](const Element* p) { return Weights::load_first(p, count); },
          [count](const float* p) { return load_first_f32(p, count); });
    }
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
        y[i * y_stride + j] = horizontal_sum(acc[i][j]) * row_scale<Weights>(view, row + j);
      }
    }
  }
};

// W4A16 group-wise (layout in kernels.h). A 64-byte block of one row is two vectors of eight
// words; masking the low nibble of each word (then shifting the words right by 4) gives eight
// columns 16 apart per step, dequantized as u * scale + (-zero * scale) with one FMA.
struct Avx2Int4Tile {
  static constexpr size_t kDecodeWeightRows = 2;
  static constexpr size_t kPrefillWeightRows = 2;

  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& view, size_t row, float* y, size_t y_stride, bool prefetch_next) {
    const size_t cols = view.cols;
    const size_t stride = view.row_bytes();
    const size_t groups = view.groups();
    const size_t group_size = view.group_size;
    const auto* codes = static_cast<const uint8_t*>(view.data) + row * stride;
    const __m256i nibble = _mm256_set1_epi32(0xF);

    __m256 acc[InputRows][WeightRows];
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    float scale[WeightRows] = {};
    float offset[WeightRows] = {};
    size_t next_group = 0;  // the first column of the next group (a counter: no division per step)
    for (size_t block = 0; block < cols; block += kInt4BlockColumns) {
      if (prefetch_next) {
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(codes + (WeightRows + j) * stride + block / 2), _MM_HINT_T1);
        }
      }
      __m256i words[WeightRows][2];
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) {
        for (size_t h = 0; h < 2; ++h) {
          words[j][h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + j * stride + block / 2 + h * 32));
        }
      }
      for (size_t k = 0; k < kInt4BlockColumns / 16; ++k) {
        const size_t c = block + k * 16;
        if (c >= cols) break;  // the rest of the block is padding
        if (c == next_group) {
          next_group += group_size;
          for (size_t j = 0; j < WeightRows; ++j) {
            const size_t index = (row + j) * groups + c / group_size;
            scale[j] = _cvtsh_ss(view.scales[index]);
            offset[j] = -static_cast<float>(view.zeros != nullptr ? view.zeros[index] : kInt4SymmetricZero) * scale[j];
          }
        }
        for (size_t h = 0; h < 2; ++h) {
          const size_t first = c + h * kLanes;
          if (first >= cols) break;
          __m256 input[InputRows];
#pragma GCC unroll 16
          for (size_t i = 0; i < InputRows; ++i) {
            input[i] = first + kLanes <= cols ? _mm256_loadu_ps(x + i * cols + first)
                                              : load_first_f32(x + i * cols + first, cols - first);
          }
#pragma GCC unroll 16
          for (size_t j = 0; j < WeightRows; ++j) {
            const __m256 weights = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(words[j][h], nibble)),
                                                   _mm256_set1_ps(scale[j]), _mm256_set1_ps(offset[j]));
#pragma GCC unroll 16
            for (size_t i = 0; i < InputRows; ++i) acc[i][j] = _mm256_fmadd_ps(input[i], weights, acc[i][j]);
          }
        }
#pragma GCC unroll 16
        for (size_t j = 0; j < WeightRows; ++j) {
          words[j][0] = _mm256_srli_epi32(words[j][0], 4);
          words[j][1] = _mm256_srli_epi32(words[j][1], 4);
        }
      }
    }
#pragma GCC unroll 16
    for (size_t i = 0; i < InputRows; ++i) {
#pragma GCC unroll 16
      for (size_t j = 0; j < WeightRows; ++j) y[i * y_stride + j] = horizontal_sum(acc[i][j]);
    }
  }
};

}  // namespace

void matmul_rows_avx2(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end) {
  if (w.format == WeightFormat::Int8) return matmul_rows_tiled<Avx2Tile<Int8Weights>>(x, m, w, y, row_begin, row_end);
  if (w.format == WeightFormat::Int4) return matmul_rows_tiled<Avx2Int4Tile>(x, m, w, y, row_begin, row_end);
  with_float_elements(w.dtype, [&]<class Elements>(Elements) {
    matmul_rows_tiled<Avx2Tile<Elements>>(x, m, w, y, row_begin, row_end);
  });
}

namespace {

template <class Elements>
float dot_elements(const float* a, const typename Elements::Element* b, size_t n) {
  // Two accumulators hide the FMA latency for the short vectors attention uses (head_dim 64-128).
  __m256 sum0 = _mm256_setzero_ps();
  __m256 sum1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), Elements::load(b + i), sum0);
    sum1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + kLanes), Elements::load(b + i + kLanes), sum1);
  }
  for (; i + kLanes <= n; i += kLanes) sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), Elements::load(b + i), sum0);
  if (i < n) sum1 = _mm256_fmadd_ps(load_first_f32(a + i, n - i), Elements::load_first(b + i, n - i), sum1);
  return horizontal_sum(_mm256_add_ps(sum0, sum1));
}

template <class Elements>
void attention_scores_elements(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                               float* scores) {
  using Element = typename Elements::Element;
  for_each_paged_row(keys, count, 0, [&](const std::byte* key, size_t j) {
    scores[j] = dot_elements<Elements>(q, reinterpret_cast<const Element*>(key), head_size) * scale;
  });
}

// out[0, kVectors * kLanes) = sum_j weights[j] * values[j][column, column + kVectors * kLanes): the
// columns stay in registers for all positions of all blocks, each position's row is read once.
template <class Elements, size_t kVectors>
void attention_values_columns(const float* weights, const PagedRows& values, size_t column, size_t count, float* out) {
  using Element = typename Elements::Element;
  __m256 acc[kVectors];
  for (size_t k = 0; k < kVectors; ++k) acc[k] = _mm256_setzero_ps();
  for_each_paged_row(values, count, column * sizeof(Element), [&](const std::byte* bytes, size_t j) {
    const Element* row = reinterpret_cast<const Element*>(bytes);
    const __m256 weight = _mm256_set1_ps(weights[j]);
    for (size_t k = 0; k < kVectors; ++k) acc[k] = _mm256_fmadd_ps(weight, Elements::load(row + k * kLanes), acc[k]);
  });
  for (size_t k = 0; k < kVectors; ++k) _mm256_storeu_ps(out + k * kLanes, acc[k]);
}

template <class Elements>
void attention_values_elements(const float* weights, const PagedRows& values, size_t head_size, size_t count,
                               float* out) {
  using Element = typename Elements::Element;
  size_t c = 0;
  const auto columns = [&]<size_t kVectors>() {
    attention_values_columns<Elements, kVectors>(weights, values, c, count, out + c);
    c += kVectors * kLanes;
  };
  // 8 accumulators of the 16 ymm registers, the rest for loads and the weight.
  while (head_size - c >= 8 * kLanes) columns.template operator()<8>();
  if (head_size - c >= 4 * kLanes) columns.template operator()<4>();
  if (head_size - c >= 2 * kLanes) columns.template operator()<2>();
  if (head_size - c >= kLanes) columns.template operator()<1>();
  if (c < head_size) {
    const size_t tail = head_size - c;
    __m256 acc = _mm256_setzero_ps();
    for_each_paged_row(values, count, c * sizeof(Element), [&](const std::byte* row, size_t j) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(weights[j]), Elements::load_first(reinterpret_cast<const Element*>(row), tail), acc);
    });
    alignas(32) float sums[kLanes];
    _mm256_store_ps(sums, acc);
    std::memcpy(out + c, sums, tail * sizeof(float));
  }
}

}  // namespace

float dot_avx2(const float* a, const float* b, size_t n) { return dot_elements<F32Weights>(a, b, n); }

void attention_scores_avx2(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                           float* scores) {
  with_float_elements(keys.dtype, [&]<class Elements>(Elements) {
    attention_scores_elements<Elements>(q, keys, head_size, count, scale, scores);
  });
}

void attention_values_avx2(const float* weights, const PagedRows& values, size_t head_size, size_t count, float* out) {
  with_float_elements(values.dtype, [&]<class Elements>(Elements) {
    attention_values_elements<Elements>(weights, values, head_size, count, out);
  });
}

}  // namespace llm::kernels::detail
