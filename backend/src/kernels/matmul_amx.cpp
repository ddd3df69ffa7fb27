// The Int4Tiles kernel on Intel's AMX tiles (kernels.h, WeightFormat::Int4Tiles). For each block of
// 16 weight rows the codes of all columns are expanded once into bfloat16 tiles of the exact values
// 128 + u; each block of up to 16 rows of x is multiplied by them with TDPBF16PS, one group of
// columns at a time, and the group's float32 results are corrected for the 128 + zero bias with x's
// group sums and scaled into float32 accumulators. A row of x takes the same steps whatever other
// rows share its tile, so it gives the same output alone or in a batch. Only this file is compiled
// with -mamx-*; see matmul_impl.h for why everything here apart from the exported functions is
// internal.

#include <cstdint>

#include "kernels/avx512_intrinsics.h"
#include "kernels/matmul_impl.h"

namespace llm::kernels::detail {
namespace {

constexpr size_t kLanes = 16;
constexpr size_t kTileColumns = 32;                      // columns of x (K) per tile: 32 bfloat16, 64 bytes a row
constexpr size_t kTileCodeBytes = 256;                   // one tile's 16 x 32 codes in Int4Tiles
constexpr size_t kTileValues = kInt4TileRows * kTileColumns;  // bfloat16 values of an expanded weight tile
constexpr int kCodeBias = 128;                           // an expanded code u is the bfloat16 128 + u

__mmask16 first_lanes(size_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// The LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Groups computed at once, each in its own result tile: their TDPBF16PS chains overlap.
constexpr size_t kGroupsInFlight = 4;

// Tiles 0-3: the results of kGroupsInFlight groups (x rows x 16 float32); 4, 5: x (x rows x 32
// bfloat16); 6, 7: the weights (16 rows of 16 pairs). Two of each input alternate so that a load
// need not wait for the product before it.
void configure_tiles(size_t x_rows) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = static_cast<uint8_t>(t < 6 ? x_rows : kInt4TileRows);
  }
  _tile_loadconfig(&config);
}

// result tile Q += x tile (at `x`) times the weight tile (at `weights`), with the inputs in tiles
// 4 + Q % 2 and 6 + Q % 2. (The tile intrinsics take their tile numbers as literals.)
template <int Q>
void multiply_into(const uint16_t* x, size_t x_stride, const uint16_t* weights) {
  if constexpr (Q % 2 == 0) {
    _tile_loadd(4, x, x_stride);
    _tile_loadd(6, weights, 64);
  } else {
    _tile_loadd(5, x, x_stride);
    _tile_loadd(7, weights, 64);
  }
  if constexpr (Q == 0) _tile_dpbf16ps(0, 4, 6);
  if constexpr (Q == 1) _tile_dpbf16ps(1, 5, 7);
  if constexpr (Q == 2) _tile_dpbf16ps(2, 4, 6);
  if constexpr (Q == 3) _tile_dpbf16ps(3, 5, 7);
}

// Expands one tile's 256 code bytes into its 16 rows of 32 bfloat16 (layout in kernels.h): per
// 64-byte chunk, the low and high nibbles, each interleaved byte by byte with 0x43.
void expand_tile(const uint8_t* codes, uint16_t* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const __m512i exponent = _mm512_set1_epi8(0x43);  // 0x43uu is the bfloat16 128 + u
  for (size_t q = 0; q < 4; ++q) {
    const __m512i packed = _mm512_loadu_si512(codes + 64 * q);
    const __m512i low = _mm512_and_si512(packed, nibble);
    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
    _mm512_storeu_si512(out + (4 * q + 0) * kTileColumns, _mm512_unpacklo_epi8(low, exponent));
    _mm512_storeu_si512(out + (4 * q + 1) * kTileColumns, _mm512_unpackhi_epi8(low, exponent));
    _mm512_storeu_si512(out + (4 * q + 2) * kTileColumns, _mm512_unpacklo_epi8(high, exponent));
    _mm512_storeu_si512(out + (4 * q + 3) * kTileColumns, _mm512_unpackhi_epi8(high, exponent));
  }
}

// One thread's scratch: the expanded weight tiles of a block of rows, a group's results and the
// accumulators. Owned by hand rather than by std::vector: this file must not instantiate templates
// of other headers (matmul_impl.h), and the class's internal linkage keeps its code here.
class Scratch {
 public:
  Scratch() = default;
  ~Scratch() {
    delete[] weights_;
    delete[] floats_;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  uint16_t* weights(size_t tiles) {
    if (tiles > weight_tiles_) {
      delete[] weights_;
      weights_ = nullptr;  // consistent if the allocation throws
      weight_tiles_ = 0;
      weights_ = new uint16_t[tiles * kTileValues];
      weight_tiles_ = tiles;
    }
    return weights_;
  }
  // kGroupsInFlight x 16 rows of 16 results, then 16 rows of 16 accumulators.
  float* floats() {
    if (floats_ == nullptr) floats_ = new float[(kGroupsInFlight + 1) * kInt4TileRows * kLanes];
    return floats_;
  }

 private:
  uint16_t* weights_ = nullptr;
  size_t weight_tiles_ = 0;
  float* floats_ = nullptr;
};

}  // namespace

void int4_amx_prepare_input(const float* x, size_t m, const WeightView& w, uint16_t* values, float* group_sums) {
  const size_t cols = w.cols;
  const size_t padded = w.padded_cols();
  const size_t groups = w.groups();
  for (size_t i = 0; i < m; ++i) {
    const float* row = x + i * cols;
    uint16_t* out = values + i * padded;
    for (size_t c = 0; c < padded; c += kLanes) {
      const size_t count = c < cols ? (cols - c < kLanes ? cols - c : kLanes) : 0;  // padding reads as zeros
      const __m512 v = _mm512_maskz_loadu_ps(first_lanes(count), row + c);
      const __m256bh rounded = _mm512_cvtneps_pbh(v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c), reinterpret_cast<const __m256i&>(rounded));
    }
    for (size_t g = 0; g < groups; ++g) {
      __m512 sum = _mm512_setzero_ps();
      for (size_t c = g * w.group_size; c < (g + 1) * w.group_size; c += kLanes) {
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out + c));
        sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)));
      }
      group_sums[i * groups + g] = _mm512_reduce_add_ps(sum);
    }
  }
}

void matmul_rows_int4_amx(const Int4AmxInput& x, size_t m, const WeightView& w, float* y, size_t row_begin,
                          size_t row_end) {
  thread_local Scratch scratch;  // per calling thread: the pool's threads share nothing
  const size_t tiles = x.padded_cols / kTileColumns;
  const size_t groups = w.groups();
  const size_t tiles_per_group = w.group_size / kTileColumns;
  const size_t used_tiles = groups * tiles_per_group;  // tiles past the last group are padding
  // Up to one block of x rows, the weight tiles of the next groups in flight are expanded while the
  // tile unit multiplies the current ones (two halves of a buffer that stays in L1; a tile load
  // right after the stores that wrote its data would wait for them); with more rows, all of a
  // block's tiles once, for every block of x rows.
  const bool expand_once = m > kInt4TileRows;
  const size_t half = kGroupsInFlight * tiles_per_group;  // tiles of one set of groups in flight
  uint16_t* weights = scratch.weights(expand_once ? used_tiles : 2 * half);
  float* results = scratch.floats();
  float* acc = results + kGroupsInFlight * kInt4TileRows * kLanes;
  const auto* codes = static_cast<const uint8_t*>(w.data);
  const size_t x_stride = x.padded_cols * sizeof(uint16_t);
  size_t configured_rows = 0;
  for (size_t block = row_begin / kInt4TileRows; block * kInt4TileRows < row_end; ++block) {
    const uint8_t* block_codes = codes + block * tiles * kTileCodeBytes;
    // Expands the tiles of groups [g0, g0 + kGroupsInFlight) into their half of the buffer.
    const auto expand_groups = [&](size_t g0) {
      const size_t end = (g0 + kGroupsInFlight < groups ? g0 + kGroupsInFlight : groups) * tiles_per_group;
      uint16_t* out = weights + (g0 / kGroupsInFlight % 2) * half * kTileValues;
      for (size_t t = g0 * tiles_per_group; t < end; ++t, out += kTileValues) {
        expand_tile(block_codes + t * kTileCodeBytes, out);
      }
    };
    if (expand_once) {
      for (size_t t = 0; t < used_tiles; ++t) expand_tile(block_codes + t * kTileCodeBytes, weights + t * kTileValues);
    }
    const uint16_t* block_scales = w.scales + block * groups * kInt4TileRows;
    const uint8_t* block_zeros = w.zeros != nullptr ? w.zeros + block * groups * kInt4TileRows : nullptr;
    const size_t first_row = block * kInt4TileRows;
    const __mmask16 outputs = first_lanes(row_end - first_row < kLanes ? row_end - first_row : kLanes);
    for (size_t i0 = 0; i0 < m; i0 += kInt4TileRows) {
      const size_t rows = m - i0 < kInt4TileRows ? m - i0 : kInt4TileRows;
      if (rows != configured_rows) {
        configure_tiles(rows);
        configured_rows = rows;
      }
      const uint16_t* x_rows = x.values + i0 * x.padded_cols;
      for (size_t r = 0; r < rows; ++r) _mm512_storeu_ps(acc + r * kLanes, _mm512_setzero_ps());
      if (!expand_once) expand_groups(0);
      for (size_t g0 = 0; g0 < groups; g0 += kGroupsInFlight) {
        const size_t in_flight = groups - g0 < kGroupsInFlight ? groups - g0 : kGroupsInFlight;
        // The weight tile of step s of group g0 + q.
        const auto weight_tile = [&](size_t q, size_t s) -> const uint16_t* {
          if (expand_once) return weights + ((g0 + q) * tiles_per_group + s) * kTileValues;
          return weights + ((g0 / kGroupsInFlight % 2) * half + q * tiles_per_group + s) * kTileValues;
        };
        const auto x_tile = [&](size_t q, size_t s) { return x_rows + ((g0 + q) * tiles_per_group + s) * kTileColumns; };
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (size_t s = 0; s < tiles_per_group; ++s) {
          static_assert(kGroupsInFlight == 4, "one call per result tile below");
          multiply_into<0>(x_tile(0, s), x_stride, weight_tile(0, s));
          if (in_flight > 1) multiply_into<1>(x_tile(1, s), x_stride, weight_tile(1, s));
          if (in_flight > 2) multiply_into<2>(x_tile(2, s), x_stride, weight_tile(2, s));
          if (in_flight > 3) multiply_into<3>(x_tile(3, s), x_stride, weight_tile(3, s));
        }
        if (!expand_once && g0 + kGroupsInFlight < groups) expand_groups(g0 + kGroupsInFlight);
        _tile_stored(0, results, 64);
        if (in_flight > 1) _tile_stored(1, results + 1 * kInt4TileRows * kLanes, 64);
        if (in_flight > 2) _tile_stored(2, results + 2 * kInt4TileRows * kLanes, 64);
        if (in_flight > 3) _tile_stored(3, results + 3 * kInt4TileRows * kLanes, 64);
        // Groups in order: each accumulator takes its corrected, scaled group results one by one.
        for (size_t q = 0; q < in_flight; ++q) {
          const size_t g = g0 + q;
          const __m512 scale =
              _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block_scales + g * kLanes)));
          const __m512 bias =
              block_zeros != nullptr
                  ? _mm512_add_ps(_mm512_set1_ps(static_cast<float>(kCodeBias)),
                                  _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(block_zeros + g * kLanes)))))
                  : _mm512_set1_ps(static_cast<float>(kCodeBias + kInt4SymmetricZero));
          const float* group_results = results + q * kInt4TileRows * kLanes;
          for (size_t r = 0; r < rows; ++r) {
            const __m512 sum = _mm512_set1_ps(x.group_sums[(i0 + r) * groups + g]);
            const __m512 corrected = _mm512_fnmadd_ps(bias, sum, _mm512_loadu_ps(group_results + r * kLanes));
            _mm512_storeu_ps(acc + r * kLanes, _mm512_fmadd_ps(corrected, scale, _mm512_loadu_ps(acc + r * kLanes)));
          }
        }
      }
      for (size_t r = 0; r < rows; ++r) {
        _mm512_mask_storeu_ps(y + (i0 + r) * w.rows + first_row, outputs, _mm512_loadu_ps(acc + r * kLanes));
      }
    }
  }
  _tile_release();
}

}  // namespace llm::kernels::detail
