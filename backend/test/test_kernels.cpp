// Kernels against naive double-precision references, for every ISA this CPU (and LLM_ISA)
// allows and every weight dtype; plus the scalar fp16/bf16 conversions and the thread pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "common/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/machine_peaks.h"

namespace llm::kernels {
namespace {

// Weights are generated in their stored dtype and the reference uses exactly those (dequantised)
// values, so for every dtype the only difference is float32 accumulation in a different order.
// The error is measured relative to sum |x_c * w_c|, which bounds it independently of
// cancellation; float32 summation over the sizes used here stays far below these bounds, while a
// lost or doubled term (about 1/cols of that sum) exceeds them.
double matmul_tolerance(DType dtype) {
  switch (dtype) {
    case DType::F32: return 1e-5;
    case DType::F16: return 1e-5;
    case DType::BF16: return 1e-5;
    default: break;
  }
  throw std::logic_error("no matmul tolerance for this dtype");
}
constexpr double kDotTolerance = 1e-5;  // relative to sum |a_i * b_i|, like matmul

// ISAs to exercise: every one the CPU supports (also those it does not pick by default), or with
// LLM_ISA set, those up to it (so running the suite with LLM_ISA=avx2 behaves as on an AVX2-only
// machine).
std::vector<Isa> isas_under_test() {
  const char* requested = std::getenv("LLM_ISA");
  const bool limited = requested != nullptr && *requested != '\0';
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (isa_supported(isa) && (!limited || isa <= detect_isa())) isas.push_back(isa);
  }
  return isas;
}

bool is_under_test(Isa isa) {
  for (Isa tested : isas_under_test()) {
    if (tested == isa) return true;
  }
  return false;
}
#define SKIP_UNLESS_UNDER_TEST(isa) \
  if (!is_under_test(isa)) GTEST_SKIP() << isa_name(isa) << " is not supported by this CPU or is above LLM_ISA"

std::vector<float> random_floats(size_t n, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

// A weight matrix stored in `dtype`, together with its exact float values for the reference.
class StoredWeights {
 public:
  StoredWeights(DType dtype, size_t rows, size_t cols, std::mt19937& rng)
      : dtype_(dtype), rows_(rows), cols_(cols), values_(random_floats(rows * cols, rng)) {
    if (dtype == DType::F32) return;
    bits_.resize(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
      bits_[i] = dtype == DType::F16 ? f32_to_fp16(values_[i]) : f32_to_bf16(values_[i]);
      values_[i] = dtype == DType::F16 ? fp16_to_f32(bits_[i]) : bf16_to_f32(bits_[i]);
    }
  }

  WeightView view() const {
    const void* data = dtype_ == DType::F32 ? static_cast<const void*>(values_.data()) : bits_.data();
    return WeightView{dtype_, data, rows_, cols_};
  }
  float value(size_t row, size_t col) const { return values_[row * cols_ + col]; }

 private:
  DType dtype_;
  size_t rows_;
  size_t cols_;
  std::vector<float> values_;  // what the kernels must see, after rounding to dtype
  std::vector<uint16_t> bits_;
};

// Expects |y[i][r] - sum_c x[i][c] w[r][c]| <= tolerance * sum_c |x[i][c] w[r][c]|.
void expect_matches_reference(const std::vector<float>& x, size_t m, const StoredWeights& w, size_t rows, size_t cols,
                              const std::vector<float>& y, double tolerance) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < rows; ++r) {
      double exact = 0.0;
      double magnitude = 0.0;
      for (size_t c = 0; c < cols; ++c) {
        const double term = static_cast<double>(x[i * cols + c]) * w.value(r, c);
        exact += term;
        magnitude += std::fabs(term);
      }
      ASSERT_LE(std::fabs(y[i * rows + r] - exact), tolerance * magnitude)
          << "y[" << i << "][" << r << "] = " << y[i * rows + r] << ", reference " << exact;
    }
  }
}

// Pools to run matmul with: none (the caller's thread), one thread, and three. matmul keeps calls
// as small as these on the caller anyway; MatchesReferenceWhenSplitOverThreads covers splitting.
struct PoolCase {
  const char* name;
  std::unique_ptr<ThreadPool> pool;
};
std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cases;
  cases.push_back({"no pool", nullptr});
  cases.push_back({"1 thread", std::make_unique<ThreadPool>(1)});
  cases.push_back({"3 threads", std::make_unique<ThreadPool>(3)});
  return cases;
}

std::string dtype_label(DType dtype) { return std::string(safetensors_name(dtype)); }

// In-flight batching runs every sequence's rows through one matmul: each row of a batch must come
// out bit for bit as it does alone (decode, m = 1), for every format, ISA, group size and batch
// size, across the prefill blocking and thread splits. The bound is exact equality.
void expect_rows_identical_to_alone(const Context& ctx, const WeightView& w, std::mt19937& rng) {
  for (size_t m : {2, 3, 4, 5, 8, 16, 70}) {
    SCOPED_TRACE(::testing::Message() << "m=" << m << " rows=" << w.rows << " cols=" << w.cols);
    const std::vector<float> x = random_floats(m * w.cols, rng);
    std::vector<float> batch(m * w.rows), alone(w.rows);
    matmul(ctx, x.data(), m, w, batch.data());
    for (size_t i = 0; i < m; ++i) {
      matmul(ctx, x.data() + i * w.cols, 1, w, alone.data());
      ASSERT_EQ(std::memcmp(alone.data(), batch.data() + i * w.rows, w.rows * sizeof(float)), 0) << "row " << i;
    }
  }
}

class MatmulTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(MatmulTest, MatchesReferenceForOddShapes) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  const double tolerance = matmul_tolerance(dtype);
  std::mt19937 rng(1234);
  for (const PoolCase& pool_case : pool_cases()) {
    const Context ctx{isa, pool_case.pool.get()};
    for (size_t cols : {1, 7, 16, 33, 130, 515, 1024}) {  // 1024: rows a multiple of 2 KiB apart
      for (size_t rows : {1, 3, 17, 64}) {
        const StoredWeights w(dtype, rows, cols, rng);
        for (size_t m : {1, 2, 3, 5, 8, 9, 11}) {
          SCOPED_TRACE(::testing::Message() << pool_case.name << ", m=" << m << " rows=" << rows << " cols=" << cols);
          const std::vector<float> x = random_floats(m * cols, rng);
          std::vector<float> y(m * rows, std::numeric_limits<float>::quiet_NaN());
          matmul(ctx, x.data(), m, w.view(), y.data());
          expect_matches_reference(x, m, w, rows, cols, y, tolerance);
          if (m == 1) continue;

          // Prefill must agree with decoding the same rows one at a time.
          std::vector<float> y_row_by_row(m * rows);
          for (size_t i = 0; i < m; ++i) matmul(ctx, x.data() + i * cols, 1, w.view(), y_row_by_row.data() + i * rows);
          for (size_t i = 0; i < m * rows; ++i) {
            double magnitude = 0.0;
            for (size_t c = 0; c < cols; ++c) magnitude += std::fabs(x[i / rows * cols + c] * w.value(i % rows, c));
            ASSERT_LE(std::fabs(y[i] - y_row_by_row[i]), 2 * tolerance * magnitude) << "element " << i;
          }
        }
      }
    }
  }
}

// Every batch size in-flight batching and prefill produce, from one decode row to a 512-token
// prompt chunk, with odd K and N: each tile shape, leftover rows and cache block is walked.
const std::vector<size_t> kBatchSizes = {1, 2, 3, 7, 8, 16, 64, 65, 512};

// matmul over a pool of 3 threads against the double-precision reference, for each m.
void expect_pooled_matmul_matches_reference(Isa isa, DType dtype, size_t rows, size_t cols,
                                            const std::vector<size_t>& batch_sizes, uint32_t seed) {
  std::mt19937 rng(seed);
  const StoredWeights w(dtype, rows, cols, rng);
  ThreadPool pool(3);
  for (size_t m : batch_sizes) {
    SCOPED_TRACE(::testing::Message() << "m=" << m << " rows=" << rows << " cols=" << cols);
    const std::vector<float> x = random_floats(m * cols, rng);
    std::vector<float> y(m * rows, std::numeric_limits<float>::quiet_NaN());
    matmul(Context{isa, &pool}, x.data(), m, w.view(), y.data());
    expect_matches_reference(x, m, w, rows, cols, y, matmul_tolerance(dtype));
  }
}

TEST_P(MatmulTest, MatchesReferenceForEveryBatchSize) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  expect_pooled_matmul_matches_reference(isa, dtype, 37, 333, kBatchSizes, 4242);
}

// Enough rows of x that prefill walks them in several cache blocks.
TEST_P(MatmulTest, MatchesReferenceForLongPrefill) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  expect_pooled_matmul_matches_reference(isa, dtype, 37, 1100, {70}, 99);
}

// Large enough that matmul splits it over the pool (small calls run on the caller), with a row
// count that leaves uneven chunks.
TEST_P(MatmulTest, MatchesReferenceWhenSplitOverThreads) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  expect_pooled_matmul_matches_reference(isa, dtype, 1037, 1030, {1, 9}, 21);
}

TEST_P(MatmulTest, ZeroColumnsGiveZeros) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  const uint32_t unused_weight = 0;  // never read: there are no columns
  const float unused_input = 0.0f;
  const WeightView w{dtype, &unused_weight, 5, 0};
  for (size_t m : {1, 6}) {
    std::vector<float> y(m * 5, 1.0f);
    matmul(Context{isa, nullptr}, &unused_input, m, w, y.data());
    for (float v : y) EXPECT_EQ(v, 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndDtypes, MatmulTest,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_" +
                                  dtype_label(std::get<1>(info.param));
                         });

TEST_P(MatmulTest, EachRowOfABatchIsBitIdenticalToTheRowAlone) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(80);
  ThreadPool pool(3);
  // 2048 half-precision columns: rows 4 KiB apart, the decode path's crowded-sets case.
  for (const auto& [rows, cols] : std::vector<std::pair<size_t, size_t>>{{67, 1000}, {130, 2048}, {33, 77}}) {
    const StoredWeights w(dtype, rows, cols, rng);
    expect_rows_identical_to_alone(Context{isa, &pool}, w.view(), rng);
  }
}

TEST(Matmul, RejectsUnsupportedWeightDtype) {
  const std::vector<int8_t> weights(4);
  float x[2] = {1, 2};
  float y[2];
  EXPECT_THROW(matmul(Context{}, x, 1, WeightView{DType::I8, weights.data(), 2, 2}, y), Error);
}

TEST(WeightRowToF32, ConvertsEveryDtypeExactly) {
  std::mt19937 rng(5);
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_label(dtype));
    const size_t rows = 3, cols = 37;
    const StoredWeights w(dtype, rows, cols, rng);
    for (size_t r = 0; r < rows; ++r) {
      std::vector<float> row(cols);
      weight_row_to_f32(w.view(), r, row.data());
      for (size_t c = 0; c < cols; ++c) ASSERT_EQ(row[c], w.value(r, c)) << "row " << r << " col " << c;
    }
  }
}

// Quantized weights built by the test from the layout documented in kernels.h (not by the
// project's quantizer), with their dequantised values for a double-precision reference.
class QuantizedWeights {
 public:
  // Int8: random codes in [-127, 127] and positive fp16 row scales.
  static QuantizedWeights int8(size_t rows, size_t cols, std::mt19937& rng) {
    QuantizedWeights q(rows, cols);
    std::uniform_int_distribution<int> code(-127, 127);
    std::uniform_real_distribution<float> scale(0.001f, 0.02f);
    q.int8_codes_.resize(rows * cols);
    q.scales_.resize(rows);
    for (size_t r = 0; r < rows; ++r) {
      q.scales_[r] = f32_to_fp16(scale(rng));
      for (size_t c = 0; c < cols; ++c) {
        q.int8_codes_[r * cols + c] = static_cast<int8_t>(code(rng));
        q.values_[r * cols + c] = q.int8_codes_[r * cols + c] * fp16_to_f32(q.scales_[r]);
      }
    }
    q.view_ = WeightView{DType::I8, q.int8_codes_.data(), rows, cols, WeightFormat::Int8, q.scales_.data()};
    return q;
  }

  // Int4: random 4-bit codes, fp16 group scales, and either random zero points or the symmetric 8.
  // Padding codes beyond cols are random too: the kernels must never let them count.
  static QuantizedWeights int4(size_t rows, size_t cols, size_t group_size, bool zero_points, std::mt19937& rng) {
    QuantizedWeights q(rows, cols);
    std::uniform_int_distribution<int> code(0, 15);
    std::uniform_real_distribution<float> scale(0.001f, 0.05f);
    const size_t block_columns = std::max<size_t>(group_size, 128);
    const size_t padded = (cols + block_columns - 1) / block_columns * block_columns;
    const size_t groups = (cols + group_size - 1) / group_size;
    q.int4_codes_.resize(rows * padded / 2);
    q.scales_.resize(rows * groups);
    if (zero_points) q.zeros_.resize(rows * groups);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t g = 0; g < groups; ++g) {
        q.scales_[r * groups + g] = f32_to_fp16(scale(rng));
        if (zero_points) q.zeros_[r * groups + g] = static_cast<uint8_t>(code(rng));
      }
      for (size_t c = 0; c < padded; ++c) {
        const auto u = static_cast<uint8_t>(code(rng));
        // Blocks of 128 columns = 16 little-endian words; word i holds column i + 16k in nibble k.
        const size_t block = c / 128, word = c % 16, nibble = c % 128 / 16;
        uint8_t& byte = q.int4_codes_[r * padded / 2 + block * 64 + word * 4 + nibble / 2];
        byte = nibble % 2 == 0 ? static_cast<uint8_t>((byte & 0xF0) | u) : static_cast<uint8_t>((byte & 0x0F) | (u << 4));
        if (c >= cols) continue;
        const size_t index = r * groups + c / group_size;
        const float zero = zero_points ? q.zeros_[index] : 8.0f;
        q.values_[r * cols + c] = (static_cast<float>(u) - zero) * fp16_to_f32(q.scales_[index]);
      }
    }
    q.view_ = WeightView{DType::U8, q.int4_codes_.data(), rows, cols, WeightFormat::Int4, q.scales_.data(),
                         zero_points ? q.zeros_.data() : nullptr, group_size};
    // The same matrix repacked for the AMX kernel.
    const Int4TilesSize size = int4_tiles_size(q.view_);
    q.tile_codes_.resize(size.codes);
    q.tile_scales_.resize(size.scales / sizeof(uint16_t));
    q.tile_zeros_.resize(size.zeros);
    q.tiles_view_ = repack_int4_tiles(q.view_, q.tile_codes_.data(), q.tile_scales_.data(),
                                      zero_points ? q.tile_zeros_.data() : nullptr);
    return q;
  }

  const WeightView& view() const { return view_; }
  // The view the engine would give `isa`: Int4 repacked as Int4Tiles for the AMX kernels.
  const WeightView& view(Isa isa) const {
    return isa == Isa::Amx && view_.format == WeightFormat::Int4 ? tiles_view_ : view_;
  }
  double value(size_t row, size_t col) const { return values_[row * cols_ + col]; }

 private:
  QuantizedWeights(size_t rows, size_t cols) : cols_(cols), values_(rows * cols) {}
  size_t cols_;
  std::vector<float> values_;
  std::vector<int8_t> int8_codes_;
  std::vector<uint8_t> int4_codes_;
  std::vector<uint16_t> scales_;
  std::vector<uint8_t> zeros_;
  WeightView view_;
  std::vector<uint8_t> tile_codes_;
  std::vector<uint16_t> tile_scales_;
  std::vector<uint8_t> tile_zeros_;
  WeightView tiles_view_;
};

// Same bound as the float kernels: float32 accumulation of exactly dequantised weights, relative
// to sum |x_c * w_c| (a code or scale taken from the wrong column or group breaks it by far).
constexpr double kQuantizedTolerance = 1e-5;

// Whether this kernel rounds x to bfloat16 first (kernels.h, WeightFormat::Int4); the reference
// then uses the same rounded inputs.
bool rounds_input_to_bf16(Isa isa, const WeightView& w) {
  return (isa == Isa::Avx512Bf16 && w.format == WeightFormat::Int4 && w.group_size % 128 == 0) ||
         w.format == WeightFormat::Int4Tiles;
}
// That kernel sums x * (128 + u) and subtracts (128 + zero) * sum(x): terms up to 143 times the
// weight's own size cancel, so float32 rounding weighs up to ~100 times more (measured worst, one
// column: 1.2e-5). Still ten times below a lost term of the 1000-column cases.
constexpr double kQuantizedBf16Tolerance = 1e-4;

void expect_quantized_matches_reference(Isa isa, const std::vector<float>& x, size_t m, const QuantizedWeights& w,
                                        const std::vector<float>& input_scale, const std::vector<float>& y) {
  const size_t rows = w.view().rows, cols = w.view().cols;
  const bool bf16_input = rounds_input_to_bf16(isa, w.view(isa));
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < rows; ++r) {
      double exact = 0.0, magnitude = 0.0;
      for (size_t c = 0; c < cols; ++c) {
        const float scaled = x[i * cols + c] * (input_scale.empty() ? 1.0f : input_scale[c]);
        const double xs = bf16_input ? bf16_to_f32(f32_to_bf16(scaled)) : scaled;
        exact += xs * w.value(r, c);
        magnitude += std::fabs(xs * w.value(r, c));
      }
      ASSERT_LE(std::fabs(y[i * rows + r] - exact),
                (bf16_input ? kQuantizedBf16Tolerance : kQuantizedTolerance) * magnitude + 1e-30)
          << "y[" << i << "][" << r << "] = " << y[i * rows + r] << ", reference " << exact;
    }
  }
}

enum class QuantCase { Int8, Int4Symmetric, Int4ZeroPoints };
std::string quant_case_name(QuantCase c) {
  return c == QuantCase::Int8 ? "int8" : c == QuantCase::Int4Symmetric ? "int4" : "int4_zero_points";
}

class QuantizedMatmulTest : public ::testing::TestWithParam<std::tuple<Isa, QuantCase>> {};

TEST_P(QuantizedMatmulTest, MatchesDequantisedReferenceForOddShapes) {
  const auto [isa, quant] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(77);
  ThreadPool pool(3);
  for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
    const Context ctx{isa, p};
    for (size_t cols : {1, 31, 33, 64, 100, 130, 515, 1024}) {
      for (size_t rows : {1, 3, 17, 40}) {
        for (size_t group_size : {32, 64, 128, 256}) {
          if (quant == QuantCase::Int8 && group_size != 32) continue;  // no groups in int8
          const QuantizedWeights w = quant == QuantCase::Int8
                                         ? QuantizedWeights::int8(rows, cols, rng)
                                         : QuantizedWeights::int4(rows, cols, group_size,
                                                                  quant == QuantCase::Int4ZeroPoints, rng);
          for (size_t m : {1, 2, 5, 9}) {
            SCOPED_TRACE(::testing::Message() << (p ? "pool" : "no pool") << " m=" << m << " rows=" << rows
                                              << " cols=" << cols << " group=" << group_size);
            const std::vector<float> x = random_floats(m * cols, rng);
            std::vector<float> y(m * rows, std::numeric_limits<float>::quiet_NaN());
            matmul(ctx, x.data(), m, w.view(isa), y.data());
            expect_quantized_matches_reference(isa, x, m, w, {}, y);
          }
        }
      }
    }
  }
}

TEST_P(QuantizedMatmulTest, MatchesDequantisedReferenceForEveryBatchSize) {
  const auto [isa, quant] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(4243);
  const size_t rows = 37, cols = 333;
  ThreadPool pool(3);
  for (size_t group_size : {64, 128}) {
    if (quant == QuantCase::Int8 && group_size != 128) continue;  // no groups in int8
    const QuantizedWeights w = quant == QuantCase::Int8
                                   ? QuantizedWeights::int8(rows, cols, rng)
                                   : QuantizedWeights::int4(rows, cols, group_size, quant == QuantCase::Int4ZeroPoints, rng);
    for (size_t m : kBatchSizes) {
      SCOPED_TRACE(::testing::Message() << "m=" << m << " group=" << group_size);
      const std::vector<float> x = random_floats(m * cols, rng);
      std::vector<float> y(m * rows, std::numeric_limits<float>::quiet_NaN());
      matmul(Context{isa, &pool}, x.data(), m, w.view(isa), y.data());
      expect_quantized_matches_reference(isa, x, m, w, {}, y);
    }
  }
}

// AWQ's pre-quant scale multiplies x per input column; large enough to be split over the pool.
TEST_P(QuantizedMatmulTest, AppliesTheInputScaleAndSplitsOverThreads) {
  const auto [isa, quant] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(78);
  const size_t rows = 1037, cols = 1000;
  QuantizedWeights w = quant == QuantCase::Int8
                           ? QuantizedWeights::int8(rows, cols, rng)
                           : QuantizedWeights::int4(rows, cols, 128, quant == QuantCase::Int4ZeroPoints, rng);
  const std::vector<float> input_scale = random_floats(cols, rng, 0.25f, 4.0f);
  WeightView view = w.view(isa);
  view.input_scale = input_scale.data();
  ThreadPool pool(3);
  for (size_t m : {1, 7, 20}) {
    SCOPED_TRACE(::testing::Message() << "m=" << m);
    const std::vector<float> x = random_floats(m * cols, rng);
    std::vector<float> y(m * rows, std::numeric_limits<float>::quiet_NaN());
    matmul(Context{isa, &pool}, x.data(), m, view, y.data());
    expect_quantized_matches_reference(isa, x, m, w, input_scale, y);
    // Back to back, the workers are still spinning and take their share of every step of the
    // call (preparing x included), not only the caller: each repeat must give the same bits.
    for (int repeat = 0; repeat < 30; ++repeat) {
      std::vector<float> again(m * rows, std::numeric_limits<float>::quiet_NaN());
      matmul(Context{isa, &pool}, x.data(), m, view, again.data());
      ASSERT_EQ(std::memcmp(again.data(), y.data(), y.size() * sizeof(float)), 0) << "repeat " << repeat;
    }
  }
}

TEST_P(QuantizedMatmulTest, EachRowOfABatchIsBitIdenticalToTheRowAlone) {
  const auto [isa, quant] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(79);
  ThreadPool pool(3);
  // 2,500 columns: more than one chunk of the batched int4 kernel (AVX-512 walks 1,024 at a time),
  // the last partial; 67 rows: a last pass of 3 rows; groups of 2,048: a chunk starting mid-group.
  for (size_t group_size : {32, 64, 128, 256, 2048}) {
    if (quant == QuantCase::Int8 && group_size != 128) continue;
    for (const auto& [rows, cols] :
         std::vector<std::pair<size_t, size_t>>{{67, 1000}, {260, 2048}, {67, 2500}}) {
      const QuantizedWeights w = quant == QuantCase::Int8
                                     ? QuantizedWeights::int8(rows, cols, rng)
                                     : QuantizedWeights::int4(rows, cols, group_size, quant == QuantCase::Int4ZeroPoints, rng);
      const std::vector<float> input_scale = random_floats(cols, rng, 0.25f, 4.0f);
      WeightView view = w.view(isa);
      view.input_scale = input_scale.data();
      expect_rows_identical_to_alone(Context{isa, &pool}, view, rng);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantizedMatmulTest,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx),
                                            ::testing::Values(QuantCase::Int8, QuantCase::Int4Symmetric,
                                                              QuantCase::Int4ZeroPoints)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_" +
                                  quant_case_name(std::get<1>(info.param));
                         });

TEST(QuantizedMatmul, RejectsBadLayoutsWithClearErrors) {
  const std::vector<uint8_t> codes(64);
  const std::vector<uint16_t> scales(4);
  float x[64] = {};
  float y[2];
  try {
    matmul(Context{}, x, 1, WeightView{DType::U8, codes.data(), 2, 64, WeightFormat::Int4, scales.data(), nullptr, 48}, y);
    FAIL() << "group size 48 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("32, 64 or a multiple of 128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(matmul(Context{}, x, 1, WeightView{DType::I8, codes.data(), 2, 32, WeightFormat::Int8}, y), Error);
}

TEST(Int4Tiles, RepackingKeepsEveryWeightAndOnlyTheAmxKernelsTakeIt) {
  std::mt19937 rng(81);
  for (bool zero_points : {false, true}) {
    for (size_t group_size : {32, 64, 128, 256}) {
      const QuantizedWeights w = QuantizedWeights::int4(37, 300, group_size, zero_points, rng);
      const WeightView& tiles = w.view(Isa::Amx);
      ASSERT_EQ(tiles.format, WeightFormat::Int4Tiles);
      std::vector<float> from_blocks(300), from_tiles(300);
      for (size_t r = 0; r < 37; ++r) {
        weight_row_to_f32(w.view(), r, from_blocks.data());
        weight_row_to_f32(tiles, r, from_tiles.data());
        ASSERT_EQ(from_blocks, from_tiles) << "row " << r << " group " << group_size;
      }
      const std::vector<float> x(300, 1.0f);
      std::vector<float> y(37);
      EXPECT_THROW(matmul(Context{Isa::Avx512, nullptr}, x.data(), 1, tiles, y.data()), Error);
    }
  }
}

TEST(WeightRowToF32, DequantisesInt8AndInt4) {
  std::mt19937 rng(6);
  const QuantizedWeights int8 = QuantizedWeights::int8(3, 45, rng);
  const QuantizedWeights int4 = QuantizedWeights::int4(3, 45, 32, true, rng);
  for (const QuantizedWeights* w : {&int8, &int4}) {
    for (size_t r = 0; r < 3; ++r) {
      std::vector<float> row(45);
      weight_row_to_f32(w->view(), r, row.data());
      for (size_t c = 0; c < 45; ++c) ASSERT_EQ(row[c], static_cast<float>(w->value(r, c))) << r << "," << c;
    }
  }
}

class VectorKernelTest : public ::testing::TestWithParam<Isa> {};

TEST_P(VectorKernelTest, DotMatchesReference) {
  const Isa isa = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(7);
  for (size_t n : {0, 1, 7, 15, 16, 17, 31, 32, 33, 64, 100, 128, 1000}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const std::vector<float> a = random_floats(n, rng);
    const std::vector<float> b = random_floats(n, rng);
    double exact = 0.0;
    double magnitude = 0.0;
    for (size_t i = 0; i < n; ++i) {
      exact += static_cast<double>(a[i]) * b[i];
      magnitude += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_LE(std::fabs(dot(isa, a.data(), b.data(), n) - exact), kDotTolerance * magnitude);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, VectorKernelTest, ::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// Attention reads a paged KV cache in its dtype (F32, F16 or BF16): blocks of tokens_per_block
// positions x kv_heads heads, as the cache lays them out, taken in a shuffled order, with the head
// under test in the middle of each row.
class AttentionKernelTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

constexpr size_t kKvHeads = 3;
const size_t kHeadSizes[] = {1, 7, 15, 16, 17, 33, 64, 96, 100, 128, 200, 256};
const size_t kPositions[] = {0, 1, 5, 37, 130};
// One position per block, odd and even blocks, the engine's default, and one block for all.
const size_t kTokensPerBlock[] = {1, 3, 4, 64, 1000};

// A pool of blocks of random rows and a shuffled block table over it.
struct PagedHead {
  PagedHead(DType dtype, size_t head_size, size_t count, size_t tokens_per_block, std::mt19937& rng)
      : head_size(head_size),
        tokens_per_block(tokens_per_block),
        blocks((count + tokens_per_block - 1) / tokens_per_block),
        pool(dtype, std::max<size_t>(blocks.size() * tokens_per_block, 1), kKvHeads * head_size, rng) {
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
  }
  PagedRows rows() const {
    const size_t row_stride = kKvHeads * head_size * dtype_size(pool.view().dtype);
    return PagedRows{static_cast<const std::byte*>(pool.view().data) + head_size * dtype_size(pool.view().dtype),
                     blocks.data(), tokens_per_block * row_stride, tokens_per_block, row_stride, pool.view().dtype};
  }
  // Element i of the head at position j, as the kernels must see it.
  float value(size_t j, size_t i) const {
    return pool.value(static_cast<size_t>(blocks[j / tokens_per_block]) * tokens_per_block + j % tokens_per_block,
                      head_size + i);
  }
  size_t head_size;
  size_t tokens_per_block;
  std::vector<int32_t> blocks;
  StoredWeights pool;
};

TEST_P(AttentionKernelTest, ScoresMatchReference) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(7);
  for (size_t tokens_per_block : kTokensPerBlock) {
    for (size_t head_size : kHeadSizes) {
      for (size_t count : kPositions) {
        SCOPED_TRACE(::testing::Message() << "head_size=" << head_size << " positions=" << count
                                          << " tokens_per_block=" << tokens_per_block);
        const std::vector<float> q = random_floats(head_size, rng);
        const PagedHead keys(dtype, head_size, count, tokens_per_block, rng);
        std::vector<float> scores(count + 1, 42.0f);  // the sentinel past the end must survive
        attention_scores(isa, q.data(), 1, keys.rows(), head_size, count, 0.25f, scores.data(), count);
        for (size_t j = 0; j < count; ++j) {
          double exact = 0.0;
          double magnitude = 0.0;
          for (size_t i = 0; i < head_size; ++i) {
            exact += static_cast<double>(q[i]) * keys.value(j, i);
            magnitude += std::fabs(static_cast<double>(q[i]) * keys.value(j, i));
          }
          ASSERT_LE(std::fabs(scores[j] - 0.25 * exact), 0.25 * kDotTolerance * magnitude) << "position " << j;
        }
        EXPECT_EQ(scores[count], 42.0f);
      }
    }
  }
}

TEST_P(AttentionKernelTest, ValuesMatchReferenceAndLeaveTheRestAlone) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(8);
  for (size_t tokens_per_block : kTokensPerBlock) {
    for (size_t head_size : kHeadSizes) {
      for (size_t count : kPositions) {
        SCOPED_TRACE(::testing::Message() << "head_size=" << head_size << " positions=" << count
                                          << " tokens_per_block=" << tokens_per_block);
        const std::vector<float> weights = random_floats(count, rng, 0.0f, 1.0f);
        const PagedHead values(dtype, head_size, count, tokens_per_block, rng);
        std::vector<float> out(head_size + 1, 42.0f);  // stale values are overwritten; the sentinel survives
        attention_values(isa, weights.data(), count, 1, values.rows(), head_size, count, out.data());
        for (size_t i = 0; i < head_size; ++i) {
          double exact = 0.0;
          double magnitude = 0.0;
          for (size_t j = 0; j < count; ++j) {
            exact += static_cast<double>(weights[j]) * values.value(j, i);
            magnitude += std::fabs(static_cast<double>(weights[j]) * values.value(j, i));
          }
          ASSERT_LE(std::fabs(out[i] - exact), kDotTolerance * magnitude) << "element " << i;
        }
        EXPECT_EQ(out[head_size], 42.0f);
      }
    }
  }
}

// Paging changes where rows are, not the arithmetic: a head split into blocks gives bit for bit
// what the same rows give as one block (the engine's batches must not depend on block placement).
TEST_P(AttentionKernelTest, BlocksGiveBitIdenticalResultsToOneBlock) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(9);
  const size_t head_size = 64, count = 150;
  const PagedHead paged(dtype, head_size, count, 4, rng);
  // The same rows copied in position order into one block.
  const size_t element = dtype_size(dtype);
  const size_t row_stride = kKvHeads * head_size * element;
  std::vector<std::byte> contiguous(count * row_stride);
  const PagedRows rows = paged.rows();
  for (size_t j = 0; j < count; ++j) {
    const std::byte* source = rows.base + static_cast<size_t>(paged.blocks[j / 4]) * rows.block_stride + j % 4 * row_stride;
    std::memcpy(contiguous.data() + j * row_stride + head_size * element, source, head_size * element);
  }
  const int32_t only_block = 0;
  const PagedRows one_block{contiguous.data() + head_size * element, &only_block, 0, count, row_stride, dtype};
  const std::vector<float> q = random_floats(head_size, rng);
  std::vector<float> paged_scores(count), one_block_scores(count);
  attention_scores(isa, q.data(), 1, rows, head_size, count, 0.125f, paged_scores.data(), count);
  attention_scores(isa, q.data(), 1, one_block, head_size, count, 0.125f, one_block_scores.data(), count);
  EXPECT_EQ(paged_scores, one_block_scores);
  std::vector<float> paged_out(head_size), one_block_out(head_size);
  attention_values(isa, paged_scores.data(), count, 1, rows, head_size, count, paged_out.data());
  attention_values(isa, paged_scores.data(), count, 1, one_block, head_size, count, one_block_out.data());
  EXPECT_EQ(paged_out, one_block_out);
}

// Query heads sharing a KV head (grouped-query attention) are computed together: each head's scores
// and outputs are bit for bit what it gets alone, whatever the number of heads in the group, and
// the scores rows' gaps (stride beyond count) and the outputs past the heads are left alone.
TEST_P(AttentionKernelTest, HeadsTogetherGiveBitIdenticalResultsToEachHeadAlone) {
  const auto [isa, dtype] = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(10);
  for (size_t heads : {2, 3, 4, 5, 8}) {
    for (size_t head_size : {16, 33, 64, 100, 128}) {
      for (size_t count : {1, 5, 37, 130}) {
        for (size_t tokens_per_block : {3, 64}) {
          SCOPED_TRACE(::testing::Message() << "heads=" << heads << " head_size=" << head_size << " positions=" << count
                                            << " tokens_per_block=" << tokens_per_block);
          const PagedHead keys(dtype, head_size, count, tokens_per_block, rng);
          const PagedHead values(dtype, head_size, count, tokens_per_block, rng);
          const std::vector<float> q = random_floats(heads * head_size, rng);
          const size_t stride = count + 3;
          std::vector<float> scores(heads * stride, 42.0f);
          attention_scores(isa, q.data(), heads, keys.rows(), head_size, count, 0.125f, scores.data(), stride);
          for (size_t h = 0; h < heads; ++h) {
            std::vector<float> alone(count);
            attention_scores(isa, q.data() + h * head_size, 1, keys.rows(), head_size, count, 0.125f, alone.data(), count);
            ASSERT_EQ(std::vector<float>(scores.begin() + h * stride, scores.begin() + h * stride + count), alone)
                << "head " << h;
            for (size_t j = count; j < stride; ++j) ASSERT_EQ(scores[h * stride + j], 42.0f) << "gap of head " << h;
          }
          for (float& score : scores) score = std::fabs(score) / 100.0f;  // any weights will do
          std::vector<float> out(heads * head_size + 1, 42.0f);
          attention_values(isa, scores.data(), stride, heads, values.rows(), head_size, count, out.data());
          for (size_t h = 0; h < heads; ++h) {
            std::vector<float> alone(head_size);
            attention_values(isa, scores.data() + h * stride, count, 1, values.rows(), head_size, count, alone.data());
            ASSERT_EQ(std::vector<float>(out.begin() + h * head_size, out.begin() + (h + 1) * head_size), alone)
                << "head " << h;
          }
          EXPECT_EQ(out[heads * head_size], 42.0f);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndDtypes, AttentionKernelTest,
                         ::testing::Combine(::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_" +
                                  dtype_label(std::get<1>(info.param));
                         });

TEST(AttentionKernels, RejectCacheDtypesOtherThanFloatAndEmptyBlocks) {
  const float q[4] = {1, 2, 3, 4};
  const int8_t codes[4] = {1, 2, 3, 4};
  const int32_t block = 0;
  const PagedRows int8_rows{reinterpret_cast<const std::byte*>(codes), &block, 4, 1, 4, DType::I8};
  float out[4] = {};
  try {
    attention_scores(Isa::Scalar, q, 1, int8_rows, 4, 1, 1.0f, out, 1);
    FAIL() << "attention_scores accepted int8 keys";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "attention_scores: elements of dtype I8 are not supported (F32, F16 or BF16)");
  }
  EXPECT_THROW(attention_values(Isa::Scalar, q, 1, 1, int8_rows, 4, 1, out), Error);
  PagedRows no_tokens = int8_rows;
  no_tokens.dtype = DType::F32;
  no_tokens.tokens_per_block = 0;
  EXPECT_THROW(attention_values(Isa::Scalar, q, 1, 1, no_tokens, 4, 1, out), Error);
}

TEST(Rmsnorm, MatchesReferenceAndWorksInPlace) {
  std::mt19937 rng(11);
  const float eps = 1e-5f;
  for (size_t n : {1, 7, 64, 2048}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const std::vector<float> x = random_floats(n, rng, -3.0f, 3.0f);
    const std::vector<float> weight = random_floats(n, rng, 0.5f, 1.5f);
    double sum_of_squares = 0.0;
    for (float v : x) sum_of_squares += static_cast<double>(v) * v;
    const double inverse_rms = 1.0 / std::sqrt(sum_of_squares / n + eps);

    std::vector<float> out(n);
    rmsnorm(x.data(), weight.data(), n, eps, out.data());
    std::vector<float> in_place = x;
    rmsnorm(in_place.data(), weight.data(), n, eps, in_place.data());
    for (size_t i = 0; i < n; ++i) {
      const double exact = x[i] * inverse_rms * weight[i];
      ASSERT_NEAR(out[i], exact, 1e-6 * (std::fabs(exact) + 1e-6)) << "element " << i;
      ASSERT_EQ(in_place[i], out[i]) << "element " << i;
    }
  }
}


TEST_P(VectorKernelTest, SiluMulMatchesReference) {
  const Isa isa = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(12);
  for (size_t n : {1, 15, 16, 17, 301}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    std::vector<float> gate = random_floats(n, rng, -20.0f, 20.0f);
    gate[0] = -200.0f;  // exp(200) overflows to inf; the result must still be -0, not nan
    if (n > 2) {
      gate[1] = 0.0f;
      gate[2] = 95.0f;  // sigmoid rounds to 1: silu(g) = g
    }
    const std::vector<float> up = random_floats(n, rng, -2.0f, 2.0f);
    const std::vector<float> gate_before = gate;
    silu_mul(isa, gate.data(), up.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const double g = gate_before[i];
      const double exact = g / (1.0 + std::exp(-g)) * up[i];
      ASSERT_NEAR(gate[i], exact, 1e-6 * std::fabs(exact) + 1e-30) << "element " << i;
    }
    EXPECT_TRUE(std::signbit(gate[0]) != std::signbit(up[0])) << "silu(-200) * up is a zero of the sign of -up";
  }
}

TEST_P(VectorKernelTest, SoftmaxMatchesReferenceAndIsStableForLargeInputs) {
  const Isa isa = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  std::mt19937 rng(13);
  // The spreads reach past e^-104, where the AVX-512 exp flushes to zero as exp does below floats.
  for (float spread : {10.0f, 120.0f}) {
    for (float offset : {0.0f, 1000.0f, -1000.0f}) {
      for (size_t n : {1, 2, 15, 16, 17, 500}) {
        SCOPED_TRACE(::testing::Message() << "n=" << n << " offset=" << offset << " spread=" << spread);
        std::vector<float> x = random_floats(n, rng, -spread, spread);
        for (float& v : x) v += offset;
        double max_value = -std::numeric_limits<double>::infinity();
        for (float v : x) max_value = std::max<double>(max_value, v);
        double sum = 0.0;
        for (float v : x) sum += std::exp(static_cast<double>(v) - max_value);
        const std::vector<float> before = x;
        softmax(isa, x.data(), n);
        double total = 0.0;
        for (size_t i = 0; i < n; ++i) {
          const double exact = std::exp(static_cast<double>(before[i]) - max_value) / sum;
          ASSERT_NEAR(x[i], exact, 1e-6 * exact + 1e-12) << "element " << i;
          total += x[i];
        }
        EXPECT_NEAR(total, 1.0, 1e-5);
      }
    }
  }
}

TEST_P(VectorKernelTest, SoftmaxOfMinusInfinityIsZero) {
  const Isa isa = GetParam();
  SKIP_UNLESS_UNDER_TEST(isa);
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f, -inf, 0.0f, -inf};
  softmax(isa, x.data(), x.size());
  EXPECT_EQ(x, (std::vector<float>{0.5f, 0.0f, 0.5f, 0.0f}));
}

// Sets or clears LLM_ISA for one test and restores what was there before.
class ScopedIsaEnv {
 public:
  explicit ScopedIsaEnv(const char* value) {
    if (const char* old = std::getenv("LLM_ISA")) saved_ = old;
    if (value) {
      ::setenv("LLM_ISA", value, 1);
    } else {
      ::unsetenv("LLM_ISA");
    }
  }
  ~ScopedIsaEnv() {
    if (saved_) {
      ::setenv("LLM_ISA", saved_->c_str(), 1);
    } else {
      ::unsetenv("LLM_ISA");
    }
  }
  ScopedIsaEnv(const ScopedIsaEnv&) = delete;
  ScopedIsaEnv& operator=(const ScopedIsaEnv&) = delete;

 private:
  std::optional<std::string> saved_;
};

TEST(Isa, NamesAndScalarAlwaysSupported) {
  EXPECT_STREQ(isa_name(Isa::Scalar), "scalar");
  EXPECT_STREQ(isa_name(Isa::Avx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::Avx512), "avx512");
  EXPECT_STREQ(isa_name(Isa::Avx512Bf16), "avx512_bf16");
  EXPECT_STREQ(isa_name(Isa::Amx), "amx");
  EXPECT_TRUE(isa_supported(Isa::Scalar));
  // Each level includes the ones below it.
  if (isa_supported(Isa::Amx)) {
    EXPECT_TRUE(isa_supported(Isa::Avx512Bf16));
  }
  if (isa_supported(Isa::Avx512Bf16)) {
    EXPECT_TRUE(isa_supported(Isa::Avx512));
  }
  if (isa_supported(Isa::Avx512)) {
    EXPECT_TRUE(isa_supported(Isa::Avx2));
  }
}

TEST(Isa, DetectPicksTheBestSupportedWithoutOverride) {
  const ScopedIsaEnv env(nullptr);
  const Isa best = isa_supported(Isa::Avx512Bf16) && bf16_dot_products_fast() ? Isa::Avx512Bf16
                   : isa_supported(Isa::Avx512)   ? Isa::Avx512
                   : isa_supported(Isa::Avx2)     ? Isa::Avx2
                                                  : Isa::Scalar;
  EXPECT_EQ(detect_isa(), best);
  std::cout << "[          ] this CPU: " << isa_name(best) << "\n";
}

TEST(Isa, OverrideMayLowerTheChoice) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (!isa_supported(isa)) continue;
    const ScopedIsaEnv env(isa_name(isa));
    EXPECT_EQ(detect_isa(), isa);
  }
  const ScopedIsaEnv upper_case("SCALAR");
  EXPECT_EQ(detect_isa(), Isa::Scalar);
}

TEST(Isa, OverrideRejectsUnknownValuesWithAClearMessage) {
  const ScopedIsaEnv env("avx1024");
  try {
    detect_isa();
    FAIL() << "LLM_ISA=avx1024 was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("LLM_ISA"), std::string::npos) << message;
    EXPECT_NE(message.find("avx1024"), std::string::npos) << message;
    EXPECT_NE(message.find("scalar, avx2, avx512, avx512_bf16 or amx"), std::string::npos) << message;
  }
}

TEST(Isa, OverrideRejectsMoreThanTheCpuHas) {
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (isa_supported(isa)) continue;
    const ScopedIsaEnv env(isa_name(isa));
    EXPECT_THROW(detect_isa(), Error) << isa_name(isa);
  }
  if (isa_supported(Isa::Amx)) std::cout << "[          ] every ISA is supported here; nothing to reject\n";
}

TEST(Isa, MatmulRejectsAnIsaTheCpuLacks) {
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (isa_supported(isa)) continue;
    const std::vector<float> weights(4);
    float x[2] = {1, 2};
    float y[2];
    EXPECT_THROW(matmul(Context{isa, nullptr}, x, 1, WeightView{DType::F32, weights.data(), 2, 2}, y), Error);
  }
}

// ---- fp16 / bf16 scalar conversions ----

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

TEST(Half, KnownValues) {
  struct Known {
    uint16_t bits;
    float value;
  };
  const Known known[] = {
      {0x0000, 0.0f},
      {0x3c00, 1.0f},
      {0xc000, -2.0f},
      {0x3555, 0.333251953125f},
      {0x7bff, 65504.0f},                 // largest finite
      {0x0400, std::ldexp(1.0f, -14)},    // smallest normal
      {0x0001, std::ldexp(1.0f, -24)},    // smallest subnormal
      {0x03ff, std::ldexp(1023.0f, -24)}, // largest subnormal
      {0x8001, -std::ldexp(1.0f, -24)},
      {0x7c00, std::numeric_limits<float>::infinity()},
      {0xfc00, -std::numeric_limits<float>::infinity()},
  };
  for (const Known& k : known) {
    SCOPED_TRACE(::testing::Message() << std::hex << "0x" << k.bits);
    EXPECT_EQ(fp16_to_f32(k.bits), k.value);
    EXPECT_EQ(f32_to_fp16(k.value), k.bits);
  }
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7c01)));  // signalling pattern is still nan
  const uint16_t nan_bits = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan_bits & 0x7c00, 0x7c00);
  EXPECT_NE(nan_bits & 0x03ff, 0);
  EXPECT_EQ(f32_to_fp16(float_from_bits(0xff800001u)) & 0xfc00, 0xfc00);  // signalling nan stays nan, keeps sign
  EXPECT_NE(f32_to_fp16(float_from_bits(0xff800001u)) & 0x03ff, 0);
}

TEST(Half, RoundsToNearestEven) {
  // Ties between neighbours go to the even mantissa.
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // 1 + half ulp -> 1
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // 1 + 1.5 ulp -> 1 + 2 ulp
  EXPECT_EQ(f32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(f32_to_fp16(2048.0f + 1.0f), 0x6800);  // ulp is 2 above 2048: 2049 ties to 2048
  EXPECT_EQ(f32_to_fp16(2048.0f + 3.0f), 0x6802);  // 2051 ties to 2052
  // Overflow: 65520 is the tie between 65504 and 65536 (odd mantissa), so it becomes inf.
  EXPECT_EQ(f32_to_fp16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-1e6f), 0xfc00);
  // Subnormals: 2^-25 ties between 0 and the smallest subnormal and goes to 0; 3 * 2^-25 goes to 2 * 2^-24.
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_fp16(3 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_fp16(-std::ldexp(1.0f, -30)), 0x8000);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -140)), 0x0000);  // a float32 subnormal
  // The largest subnormal plus half an ulp rounds up into the smallest normal.
  EXPECT_EQ(f32_to_fp16(std::ldexp(2047.0f, -25)), 0x0400);
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = fp16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(value)) {
      ASSERT_EQ((bits & 0x7c00), 0x7c00u);
      ASSERT_NE((bits & 0x03ff), 0u);
      continue;
    }
    ASSERT_EQ(f32_to_fp16(value), bits) << std::hex << bits;
  }
}

// For every pair of adjacent positive halves, the floats at, just below and just above their
// midpoint must round to the nearer one, ties to the even one. Covers subnormals and the
// normal/subnormal boundary.
TEST(Half, MidpointsBetweenAllNeighboursRoundCorrectly) {
  for (uint16_t low = 0; low < 0x7bff; ++low) {
    const uint16_t high = low + 1;
    const double midpoint = (static_cast<double>(fp16_to_f32(low)) + fp16_to_f32(high)) / 2;
    const auto tie = static_cast<float>(midpoint);  // exact: halves have 11 significant bits
    ASSERT_EQ(static_cast<double>(tie), midpoint);
    const uint16_t even = (low & 1) == 0 ? low : high;
    ASSERT_EQ(f32_to_fp16(tie), even) << std::hex << low;
    ASSERT_EQ(f32_to_fp16(std::nextafter(tie, 0.0f)), low) << std::hex << low;
    ASSERT_EQ(f32_to_fp16(std::nextafter(tie, 1e9f)), high) << std::hex << low;
    ASSERT_EQ(f32_to_fp16(-tie), even | 0x8000) << std::hex << low;
  }
}

TEST(Bfloat16, KnownValuesAndRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  // 1 + 2^-8 is the tie between 1 and 1 + 2^-7: goes to even (1); 1 + 3 * 2^-8 goes to 1 + 2^-6.
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 0x3f81);
  // Subnormals round like everything else.
  EXPECT_EQ(f32_to_bf16(float_from_bits(0x00008000u)), 0x0000);  // tie to even 0
  EXPECT_EQ(f32_to_bf16(float_from_bits(0x00018000u)), 0x0002);  // tie to even 2
  EXPECT_EQ(bf16_to_f32(0x0001), float_from_bits(0x00010000u));
  // The largest finite float rounds up to inf; inf stays inf.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(float_from_bits(0x7f7f7fffu)), 0x7f7f);  // just below the tie stays finite
  // nan stays nan (even a payload only in the low bits, which plain truncation would turn into inf).
  for (uint32_t nan_bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    const uint16_t b = f32_to_bf16(float_from_bits(nan_bits));
    EXPECT_TRUE(std::isnan(bf16_to_f32(b))) << std::hex << nan_bits;
    EXPECT_EQ(b & 0x8000, (nan_bits >> 16) & 0x8000) << std::hex << nan_bits;
  }
}

TEST(Bfloat16, EveryBfloat16RoundTripsAndMidpointsRoundToEven) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = bf16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_bf16(value), bits) << std::hex << bits;
  }
  for (uint32_t low = 0; low < 0x7f7f; ++low) {
    // Midpoint of low and low + 1 in float32 bits is low << 16 | 0x8000.
    const float tie = float_from_bits(low << 16 | 0x8000u);
    const uint32_t even = (low & 1) == 0 ? low : low + 1;
    ASSERT_EQ(f32_to_bf16(tie), even) << std::hex << low;
    ASSERT_EQ(f32_to_bf16(float_from_bits(bits_of(tie) - 1)), low) << std::hex << low;
    ASSERT_EQ(f32_to_bf16(float_from_bits(bits_of(tie) + 1)), low + 1) << std::hex << low;
  }
}

// ---- ThreadPool ----

TEST(ThreadPool, RunCallsEveryTaskExactlyOnce) {
  for (size_t threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n_tasks : {0, 1, 2, 5, 100}) {
      // Repeated runs catch a worker that wakes late and sees the next job.
      for (int repeat = 0; repeat < 50; ++repeat) {
        std::vector<std::atomic<int>> calls(n_tasks);
        pool.run(n_tasks, [&](size_t i) { calls[i].fetch_add(1); });
        for (size_t i = 0; i < n_tasks; ++i) ASSERT_EQ(calls[i].load(), 1) << threads << " threads, task " << i;
      }
    }
  }
}

TEST(ThreadPool, ParallelForCoversTheRangeOnceInAlignedChunks) {
  ThreadPool pool(3);
  for (size_t n : {0, 1, 15, 16, 17, 100, 1000}) {
    for (size_t align : {0, 1, 4, 16}) {
      for (size_t chunks_per_thread : {0, 1, 4}) {
        SCOPED_TRACE(::testing::Message() << "n=" << n << " align=" << align << " chunks/thread=" << chunks_per_thread);
        std::vector<std::atomic<int>> covered(n);
        std::atomic<size_t> chunks{0};
        pool.parallel_for(
            n, align,
            [&](size_t begin, size_t end) {
              EXPECT_LT(begin, end);
              if (align > 1) {
                EXPECT_EQ(begin % align, 0u);
              }
              for (size_t i = begin; i < end; ++i) covered[i].fetch_add(1);
              chunks.fetch_add(1);
            },
            chunks_per_thread);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(covered[i].load(), 1) << "index " << i;
        EXPECT_LE(chunks.load(), pool.size() * std::max<size_t>(chunks_per_thread, 1));
        // Enough aligned units give every chunk asked for.
        const size_t units = align > 1 ? (n + align - 1) / align : n;
        if (units >= 3 * 4 * 4) {
          EXPECT_EQ(chunks.load(), pool.size() * std::max<size_t>(chunks_per_thread, 1));
        }
      }
    }
  }
}

TEST(ThreadPool, RethrowsATaskExceptionAndStaysUsable) {
  for (size_t threads : {1, 3}) {
    ThreadPool pool(threads);
    try {
      pool.run(20, [&](size_t i) {
        if (i == 7) throw std::runtime_error("task 7 failed");
      });
      FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "task 7 failed");
    }
    EXPECT_THROW(pool.parallel_for(10, 1, [](size_t, size_t) { throw Error("chunk failed"); }), Error);

    std::atomic<int> calls{0};
    pool.run(10, [&](size_t) { calls.fetch_add(1); });
    EXPECT_EQ(calls.load(), 10);
  }
}

TEST(MachinePeaks, MeasuresEveryCeilingOnEveryThreadWithTheWidestInstructions) {
  ThreadPool pool(2);
  const MachinePeaks peaks = measure_machine_peaks(pool);
  EXPECT_EQ(peaks.threads, 2u);
  EXPECT_GT(peaks.triad_bytes_per_s, 1e8);
  EXPECT_GT(peaks.fma_flops_per_s, 1e8);
  const Isa widest = isa_supported(Isa::Avx512) ? Isa::Avx512 : isa_supported(Isa::Avx2) ? Isa::Avx2 : Isa::Scalar;
  EXPECT_EQ(peaks.fma_isa, widest);
  EXPECT_EQ(peaks.bf16_dot_flops_per_s > 0, isa_supported(Isa::Avx512Bf16));
}

}  // namespace
}  // namespace llm::kernels
