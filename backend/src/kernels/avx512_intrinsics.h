#pragma once
// <immintrin.h> for the AVX-512 translation units. GCC 12 warns about the deliberately undefined
// registers inside its own AVX-512 intrinsics (GCC bug 105593, fixed in 12.3); the warning is
// about the header, not the code that includes it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
