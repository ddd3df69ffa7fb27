// Portable kernels for CPUs without AVX2: the same blocking as the SIMD versions, one element
// at a time.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/half.h"
#include "kernels/matmul_impl.h"

namespace llm::kernels::detail {
namespace {

// Element loaders by stored dtype: for weight rows, and for the KV cache's keys and values.
struct F32Weights {
  using Element = float;
  static float to_f32(float value) { return value; }
};

struct F16Weights {
  using Element = uint16_t;
  static float to_f32(uint16_t bits) { return fp16_to_f32(bits); }
};

struct BF16Weights {
  using Element = uint16_t;
  static float to_f32(uint16_t bits) { return bf16_to_f32(bits); }
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

// W8A16: the row's scale is applied to the sum.
struct Int8Weights {
  using Element = int8_t;
  static float to_f32(int8_t code) { return static_cast<float>(code); }
};

template <class Weights>
float row_scale(const WeightView& w, size_t row) {
  if constexpr (std::is_same_v<Weights, Int8Weights>) {
    return fp16_to_f32(w.scales[row]);
  } else {
    return 1.0f;
  }
}

template <class Weights>
struct ScalarTile {
  using Element = typename Weights::Element;
  static constexpr size_t kDecodeWeightRows = 4;
  static constexpr size_t kPrefillWeightRows = 4;

  // Scalar code is compute-bound, so it needs no prefetching of the next weight group.
  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& view, size_t row, float* y, size_t y_stride, bool /*prefetch*/) {
    const size_t cols = view.cols;
    const Element* w = static_cast<const Element*>(view.data) + row * cols;
    float acc[InputRows][WeightRows] = {};
    for (size_t c = 0; c < cols; ++c) {
      // Each weight is converted once and used for every input row of the tile.
      float weight[WeightRows];
      for (size_t j = 0; j < WeightRows; ++j) weight[j] = Weights::to_f32(w[j * cols + c]);
      for (size_t i = 0; i < InputRows; ++i) {
        const float input = x[i * cols + c];
        for (size_t j = 0; j < WeightRows; ++j) acc[i][j] += input * weight[j];
      }
    }
    for (size_t i = 0; i < InputRows; ++i) {
      for (size_t j = 0; j < WeightRows; ++j) y[i * y_stride + j] = acc[i][j] * row_scale<Weights>(view, row + j);
    }
  }
};

// W4A16 group-wise (layout in kernels.h): each group's codes are summed against x, then scaled.
struct ScalarInt4Tile {
  static constexpr size_t kDecodeWeightRows = 4;
  static constexpr size_t kPrefillWeightRows = 4;

  template <size_t InputRows, size_t WeightRows>
  static void run(const float* x, const WeightView& view, size_t row, float* y, size_t y_stride, bool /*prefetch*/) {
    const size_t cols = view.cols;
    const size_t stride = view.row_bytes();
    const size_t groups = view.groups();
    const auto* codes = static_cast<const uint8_t*>(view.data) + row * stride;
    float acc[InputRows][WeightRows] = {};
    for (size_t g = 0; g * view.group_size < cols; ++g) {
      const size_t begin = g * view.group_size;
      const size_t end = begin + view.group_size < cols ? begin + view.group_size : cols;
      for (size_t j = 0; j < WeightRows; ++j) {
        const size_t index = (row + j) * groups + g;
        const float scale = fp16_to_f32(view.scales[index]);
        const auto zero = static_cast<float>(view.zeros != nullptr ? view.zeros[index] : kInt4SymmetricZero);
        const uint8_t* row_codes = codes + j * stride;
        for (size_t c = begin; c < end; ++c) {
          const float weight = (static_cast<float>(int4_code(row_codes, c)) - zero) * scale;
          for (size_t i = 0; i < InputRows; ++i) acc[i][j] += x[i * cols + c] * weight;
        }
      }
    }
    for (size_t i = 0; i < InputRows; ++i) {
      for (size_t j = 0; j < WeightRows; ++j) y[i * y_stride + j] = acc[i][j];
    }
  }
};

}  // namespace

void matmul_rows_scalar(const float* x, size_t m, const WeightView& w, float* y, size_t row_begin, size_t row_end) {
  if (w.format == WeightFormat::Int8) return matmul_rows_tiled<ScalarTile<Int8Weights>>(x, m, w, y, row_begin, row_end);
  if (w.format == WeightFormat::Int4) return matmul_rows_tiled<ScalarInt4Tile>(x, m, w, y, row_begin, row_end);
  with_float_elements(w.dtype, [&]<class Elements>(Elements) {
    matmul_rows_tiled<ScalarTile<Elements>>(x, m, w, y, row_begin, row_end);
  });
}

namespace {

template <class Elements>
float dot_elements(const float* a, const typename Elements::Element* b, size_t n) {
  // Four partial sums: shorter dependency chains and better accuracy than one running sum.
  float sum[4] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 0; k < 4; ++k) sum[k] += a[i + k] * Elements::to_f32(b[i + k]);
  }
  for (; i < n; ++i) sum[0] += a[i] * Elements::to_f32(b[i]);
  return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

template <class Elements>
void attention_scores_elements(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                               float* scores) {
  using Element = typename Elements::Element;
  for_each_paged_row(keys, count, 0, [&](const std::byte* key, size_t j) {
    scores[j] = dot_elements<Elements>(q, reinterpret_cast<const Element*>(key), head_size) * scale;
  });
}

template <class Elements>
void attention_values_elements(const float* weights, const PagedRows& values, size_t head_size, size_t count,
                               float* out) {
  using Element = typename Elements::Element;
  std::fill(out, out + head_size, 0.0f);
  for_each_paged_row(values, count, 0, [&](const std::byte* bytes, size_t j) {
    const Element* row = reinterpret_cast<const Element*>(bytes);
    for (size_t i = 0; i < head_size; ++i) out[i] += weights[j] * Elements::to_f32(row[i]);
  });
}

}  // namespace

float dot_scalar(const float* a, const float* b, size_t n) { return dot_elements<F32Weights>(a, b, n); }

void attention_scores_scalar(const float* q, const PagedRows& keys, size_t head_size, size_t count, float scale,
                             float* scores) {
  with_float_elements(keys.dtype, [&]<class Elements>(Elements) {
    attention_scores_elements<Elements>(q, keys, head_size, count, scale, scores);
  });
}

void attention_values_scalar(const float* weights, const PagedRows& values, size_t head_size, size_t count,
                             float* out) {
  with_float_elements(values.dtype, [&]<class Elements>(Elements) {
    attention_values_elements<Elements>(weights, values, head_size, count, out);
  });
}

}  // namespace llm::kernels::detail
