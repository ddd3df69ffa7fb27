#pragma once
// <immintrin.h> for the AVX-512 translation units. GCC 12 warns about the deliberately undefined
// registers inside its own AVX-512 intrinsics (GCC bug 105593, fixed in 12.3); the warning is
// about the header, not the code that includes it. (Clang has neither the bug nor the warning.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#include <cstddef>

// Only for translation units compiled with AVX-512; internal to each of them (see matmul_impl.h).
namespace llm::kernels::detail {
namespace {

// Sixteen sums at once: lane p of the result is the sum of the lanes of v[p]. Each level adds pairs
// of halves (within 128-bit lanes, then across them) the same way for every p, so a sum does
// not depend on which of the sixteen slots it took (attention positions, matmul outputs).
inline __m512 sum_lanes_of_16(const __m512 (&v)[16]) {
  __m512 pairs[8];
  for (size_t p = 0; p < 8; ++p) {
    pairs[p] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]), _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
  }
  __m512 quads[4];
  for (size_t p = 0; p < 4; ++p) {
    quads[p] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * p], pairs[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(pairs[2 * p], pairs[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  __m512 halves[2];
  for (size_t p = 0; p < 2; ++p) {
    halves[p] = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2 * p], quads[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(quads[2 * p], quads[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(halves[0], halves[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

}  // namespace
}  // namespace llm::kernels::detail
