#pragma once
// The machine's ceilings, measured in the same run as a benchmark so that its numbers can be read
// as shares of what this machine can do (a roofline): streaming bandwidth (a STREAM triad) and the
// float32 FMA and bfloat16 dot-product rates of the widest instructions this CPU has, all on the
// engine's threads at once.
#include <cstddef>

#include "common/thread_pool.h"
#include "kernels/kernels.h"

namespace llm::kernels {

struct MachinePeaks {
  size_t threads = 0;
  // a[i] = b[i] + s * c[i] over float arrays of 64 MiB each (far beyond any cache), counted as
  // STREAM counts it: 12 bytes per element (two reads and a write; the write-allocate read that
  // most CPUs add is not counted). The best of 5 passes.
  double triad_bytes_per_s = 0;
  // Fused multiply-adds on float32 vectors (AVX-512, else AVX2+FMA, else scalar multiply and add),
  // 12 independent chains per thread, registers only; 2 FLOPs per lane. The best of 3 runs.
  double fma_flops_per_s = 0;
  Isa fma_isa = Isa::Scalar;
  // AVX512_BF16 dot products (vdpbf16ps: 32 bfloat16 pairs per instruction, 2 FLOPs each), as
  // above; 0 where the CPU has none.
  double bf16_dot_flops_per_s = 0;
};

// Takes about half a second; uses every thread of `pool`.
MachinePeaks measure_machine_peaks(ThreadPool& pool);

}  // namespace llm::kernels
