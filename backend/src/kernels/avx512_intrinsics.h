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
