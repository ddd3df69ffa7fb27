#include "kernels/machine_peaks.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

namespace llm::kernels {
namespace {

constexpr size_t kChains = 12;  // enough independent chains to hide any FMA latency seen so far

// (Not _mm512_reduce_add_ps: GCC 12 warns about the undefined vector inside it.)
__attribute__((target("avx512f"))) float sum_lanes(__m512 v) {
  float lanes[16];
  _mm512_storeu_ps(lanes, v);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

// The register-only loops: returns a value derived from every chain so none is optimised away.
__attribute__((target("avx512f"))) float fma_chains_avx512(size_t iterations) {
  __m512 acc[kChains];
  for (size_t k = 0; k < kChains; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  const __m512 a = _mm512_set1_ps(0.999999f);
  const __m512 b = _mm512_set1_ps(1e-6f);
  for (size_t i = 0; i < iterations; ++i) {
    for (size_t k = 0; k < kChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  }
  __m512 sum = acc[0];
  for (size_t k = 1; k < kChains; ++k) sum = _mm512_add_ps(sum, acc[k]);
  return sum_lanes(sum);
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(size_t iterations) {
  __m256 acc[kChains];
  for (size_t k = 0; k < kChains; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k));
  const __m256 a = _mm256_set1_ps(0.999999f);
  const __m256 b = _mm256_set1_ps(1e-6f);
  for (size_t i = 0; i < iterations; ++i) {
    for (size_t k = 0; k < kChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  }
  float lanes[8];
  __m256 sum = acc[0];
  for (size_t k = 1; k < kChains; ++k) sum = _mm256_add_ps(sum, acc[k]);
  _mm256_storeu_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

float fma_chains_scalar(size_t iterations) {
  float acc[kChains];
  for (size_t k = 0; k < kChains; ++k) acc[k] = static_cast<float>(k);
  const float a = 0.999999f;
  const float b = 1e-6f;
  for (size_t i = 0; i < iterations; ++i) {
    for (size_t k = 0; k < kChains; ++k) acc[k] = acc[k] * a + b;
  }
  float total = 0;
  for (float v : acc) total += v;
  return total;
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_chains(size_t iterations) {
  __m512 acc[kChains];
  for (size_t k = 0; k < kChains; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-6f), _mm512_set1_ps(-1e-6f));
  for (size_t i = 0; i < iterations; ++i) {
    for (size_t k = 0; k < kChains; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  }
  __m512 sum = acc[0];
  for (size_t k = 1; k < kChains; ++k) sum = _mm512_add_ps(sum, acc[k]);
  return sum_lanes(sum);
}

// Runs body(thread) on every thread of the pool at once (each waits until all have started, so
// no thread runs two shares) and returns the wall time of the slowest, in seconds.
template <typename Body>
double on_all_threads(ThreadPool& pool, const Body& body) {
  const size_t n = pool.size();
  std::atomic<size_t> started{0};
  const auto begin = std::chrono::steady_clock::now();
  pool.run(n, [&](size_t thread) {
    started.fetch_add(1);
    while (started.load() < n) {
    }
    body(thread);
  });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

std::atomic<float> g_sink{0};  // keeps the loops' results alive

template <typename Loop>
double best_rate(ThreadPool& pool, Loop loop, size_t iterations, double flops_per_iteration, int runs) {
  double best = 0;
  for (int run = 0; run < runs; ++run) {
    const double seconds = on_all_threads(pool, [&](size_t) { g_sink.store(loop(iterations), std::memory_order_relaxed); });
    best = std::max(best, flops_per_iteration * static_cast<double>(iterations * pool.size()) / seconds);
  }
  return best;
}

double triad_bandwidth(ThreadPool& pool) {
  constexpr size_t kElements = size_t{16} << 20;  // 64 MiB per array
  const auto a = std::make_unique_for_overwrite<float[]>(kElements);
  const auto b = std::make_unique_for_overwrite<float[]>(kElements);
  const auto c = std::make_unique_for_overwrite<float[]>(kElements);
  const size_t n = pool.size();
  const auto slice = [&](size_t thread, auto&& body) {
    const size_t begin = kElements * thread / n;
    const size_t end = kElements * (thread + 1) / n;
    body(begin, end);
  };
  // First touch on the threads that will stream each slice.
  on_all_threads(pool, [&](size_t thread) {
    slice(thread, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        a[i] = 0;
        b[i] = 1;
        c[i] = 2;
      }
    });
  });
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const float s = 0.5f + static_cast<float>(pass);
    const double seconds = on_all_threads(pool, [&](size_t thread) {
      slice(thread, [&](size_t begin, size_t end) {
        float* __restrict out = a.get();
        const float* __restrict x = b.get();
        const float* __restrict y = c.get();
        for (size_t i = begin; i < end; ++i) out[i] = x[i] + s * y[i];
      });
    });
    best = std::max(best, 12.0 * static_cast<double>(kElements) / seconds);
  }
  g_sink.store(a[kElements / 2], std::memory_order_relaxed);
  return best;
}

}  // namespace

MachinePeaks measure_machine_peaks(ThreadPool& pool) {
  MachinePeaks peaks;
  peaks.threads = pool.size();
  peaks.triad_bytes_per_s = triad_bandwidth(pool);
  constexpr size_t kIterations = size_t{1} << 22;
  if (isa_supported(Isa::Avx512)) {
    peaks.fma_isa = Isa::Avx512;
    peaks.fma_flops_per_s = best_rate(pool, fma_chains_avx512, kIterations, kChains * 16 * 2.0, 3);
  } else if (isa_supported(Isa::Avx2)) {
    peaks.fma_isa = Isa::Avx2;
    peaks.fma_flops_per_s = best_rate(pool, fma_chains_avx2, kIterations, kChains * 8 * 2.0, 3);
  } else {
    peaks.fma_flops_per_s = best_rate(pool, fma_chains_scalar, kIterations, kChains * 2.0, 3);
  }
  if (isa_supported(Isa::Avx512Bf16)) {
    peaks.bf16_dot_flops_per_s = best_rate(pool, bf16_dot_chains, kIterations, kChains * 32 * 2.0, 3);
  }
  return peaks;
}

}  // namespace llm::kernels
