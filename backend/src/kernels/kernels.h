#pragma once
// CPU kernels of the forward pass. Activations are float32; weights stay in their stored dtype
// and are converted in registers. The instruction set is chosen at run time (AVX-512,
// AVX2+FMA+F16C, or scalar) so one binary runs on any x86-64.
#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "common/thread_pool.h"

namespace llm::kernels {

enum class Isa : uint8_t { Scalar, Avx2, Avx512 };

// The best instruction set this CPU and OS support. The environment variable LLM_ISA
// (scalar | avx2 | avx512) may lower it, e.g. to test the fallbacks; asking for more than the
// CPU has is an Error.
Isa detect_isa();
const char* isa_name(Isa isa);
// True when this CPU can run kernels built for `isa`.
bool isa_supported(Isa isa);

// A row-major weight matrix of shape (rows = out features, cols = in features) as stored in
// TensorRT-LLM checkpoints. dtype: F32, F16 or BF16.
struct WeightView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  size_t rows = 0;
  size_t cols = 0;
};

struct Context {
  Isa isa = Isa::Scalar;
  ThreadPool* pool = nullptr;  // null: run on the calling thread
};

// y[i][r] = sum_c x[i][c] * W[r][c] for i < m (x: m x cols, y: m x rows, both row-major).
// m == 1 is decode (matrix-vector, memory-bound); m > 1 is prefill (matrix-matrix: each weight
// tile is loaded once for several rows of x). Parallel over output rows.
void matmul(const Context& ctx, const float* x, size_t m, const WeightView& w, float* y);

// Converts row `row` of w to float32 (embedding lookup).
void weight_row_to_f32(const WeightView& w, size_t row, float* out);

// out = x / rms(x) * weight, rms over n elements with eps inside the square root.
void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out);

// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, size_t n);

float dot(Isa isa, const float* a, const float* b, size_t n);
// y += a * x
void axpy(Isa isa, float a, const float* x, float* y, size_t n);

// In-place numerically stable softmax.
void softmax(float* x, size_t n);

}  // namespace llm::kernels
