#pragma once
// CPU kernels of the forward pass. Activations are float32; weights stay in their stored dtype or
// quantized format and are converted in registers. The instruction set is chosen at run time (AVX-512,
// AVX2+FMA+F16C, or scalar) so one binary runs on any x86-64.
#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "common/thread_pool.h"

namespace llm::kernels {

// Each level includes the ones before it. Avx512Bf16 adds AVX512_BF16 dot products, which only the
// Int4 kernel for groups of whole 128-column blocks uses (see WeightFormat::Int4). Amx adds Intel's
// AMX tiles (AMX-TILE, AMX-BF16, and the OS's permission to use them), which the Int4Tiles kernel
// uses; everything else runs on the AVX-512 kernels there.
enum class Isa : uint8_t { Scalar, Avx2, Avx512, Avx512Bf16, Amx };

// The instruction set to use: the widest this CPU and OS support, except that Amx is never the
// default (a choice between throughput and single-stream speed, see cpu_features.cpp) and
// Avx512Bf16 is chosen only where bfloat16 dot products are fast (bf16_dot_products_fast). The environment variable
// LLM_ISA (scalar | avx2 | avx512 | avx512_bf16 | amx) selects any supported level instead, e.g.
// to test the fallbacks; asking for more than the CPU has is an Error.
Isa detect_isa();
const char* isa_name(Isa isa);
// True when this CPU can run kernels built for `isa`.
bool isa_supported(Isa isa);
// True where AVX512_BF16 dot products outrun float32 FMAs enough for the Int4 kernel built on them
// (AMD's CPUs; on Intel's they retire at a quarter of the FMA rate).
bool bf16_dot_products_fast();

// How a weight matrix is stored in memory. Quantized formats stay quantized: the kernels
// dequantize in registers.
enum class WeightFormat : uint8_t {
  // Row-major rows x cols of dtype F32, F16 or BF16.
  Float,
  // W8A16: row-major int8, w[r][c] = q[r][c] * scales[r] (one fp16 scale per output row).
  Int8,
  // W4A16 group-wise: 4-bit codes u in [0, 15], w[r][c] = (u - zero[r][g]) * scales[r][g] for the
  // group g = c / group_size (a multiple of 32 that divides 128, or a multiple of 128). Each row is
  // padded to a multiple of max(group_size, 128) columns and stored in blocks of 128 columns =
  // 64 bytes = 16 little-endian 32-bit words: word i holds columns i + 16k in its nibbles
  // k = 0..7 (bits 4k..4k+3). A SIMD lane then finds consecutive nibbles of one word, 16 columns
  // apart, with a shift; no widening of bytes is needed.
  // With Isa::Avx512Bf16 and group_size a multiple of 128, x is rounded to bfloat16 (to nearest
  // even) and multiplied by the codes as exact bfloat16 integers in bfloat16 dot products, the
  // group's scale and zero point applied to each block's float32 sum: A16 with bfloat16
  // activations, as TensorRT-LLM's W4A16 runs them in bfloat16 models. Elsewhere x stays float32.
  Int4,
  // W4A16 as Int4, repacked for AMX tiles (Isa::Amx only; repack_int4_tiles makes it from Int4).
  // Rows are padded to whole blocks of 16 (kInt4TileRows) and columns as Int4's. For each block of
  // 16 rows and each 32 columns (a tile of K), 256 bytes hold the 512 codes as four chunks of 64
  // bytes; chunk q gives tile rows p = 4q .. 4q + 3 of AMX's pair layout (tile row p, element
  // 2n + h: row n, column 2p + h). In a chunk, byte 16L + j (L = 0..3, j = 0..7) holds element
  // 8L + j of tile row 4q in its low nibble and of 4q + 2 in its high nibble, byte 16L + 8 + j the
  // same element of tile rows 4q + 1 and 4q + 3: two ANDs, a shift and four byte unpacks with the
  // constant 0x43 turn a chunk into four tile rows of exact bfloat16 values 128 + u. Scales are fp16
  // [row block][group][16 rows] and zeros (when present) [row block][group][16 rows], so that a
  // group's 16 values load as one vector. x is rounded to bfloat16 as for Avx512Bf16's kernel.
  Int4Tiles,
};

// A weight matrix of shape (rows = out features, cols = in features), as in TensorRT-LLM
// checkpoints.
struct WeightView {
  DType dtype = DType::F32;  // element type of the Float format
  const void* data = nullptr;
  size_t rows = 0;
  size_t cols = 0;
  WeightFormat format = WeightFormat::Float;
  const uint16_t* scales = nullptr;   // fp16 bits; Int8: [rows], Int4: [rows][groups()] (no padding groups)
  const uint8_t* zeros = nullptr;     // Int4: [rows][groups()] zero points; null: symmetric (8)
                                      // (Int4Tiles: both by blocks of 16 rows, see there)
  size_t group_size = 0;              // Int4
  const float* input_scale = nullptr;  // [cols]: x is multiplied by it first (AWQ's pre-quant scale)

  size_t padded_cols() const;
  size_t groups() const;
  // Bytes from one row's start to the next.
  size_t row_bytes() const;
};

// The symmetric zero point of Int4 codes: u = q + 8 for q in [-8, 7].
inline constexpr uint8_t kInt4SymmetricZero = 8;
// Columns per Int4 storage block.
inline constexpr size_t kInt4BlockColumns = 128;
// Int4 group sizes the layout supports: 32, 64 or a multiple of 128.
bool int4_group_size_supported(size_t group_size);
// A row's stored columns: cols rounded up to max(group_size, kInt4BlockColumns).
size_t int4_padded_columns(size_t cols, size_t group_size);
// Groups that hold real columns: ceil(cols / group_size) (scales and zeros have no padding groups).
size_t int4_groups(size_t cols, size_t group_size);
// Rows per block of Int4Tiles (AMX tiles are 16 rows of 64 bytes).
inline constexpr size_t kInt4TileRows = 16;
// Bytes of an Int4Tiles matrix's codes, scales (fp16) and zeros (when it has zero points).
struct Int4TilesSize {
  size_t codes = 0;
  size_t scales = 0;
  size_t zeros = 0;
};
Int4TilesSize int4_tiles_size(const WeightView& int4);
// Repacks an Int4 matrix (codes, scales and zeros as stored) into Int4Tiles at the given places
// (zeros only when int4.zeros is set); returns the Int4Tiles view of them (input_scale kept).
WeightView repack_int4_tiles(const WeightView& int4, uint8_t* codes, uint16_t* scales, uint8_t* zeros);
// The code of column `col` in a row of Int4 blocks.
inline uint8_t int4_code(const uint8_t* row, size_t col) {
  const size_t within = col % kInt4BlockColumns;
  const uint8_t byte = row[col / kInt4BlockColumns * 64 + within % 16 * 4 + within / 16 / 2];
  return within / 16 % 2 == 0 ? (byte & 0xF) : (byte >> 4);
}

struct Context {
  Isa isa = Isa::Scalar;
  ThreadPool* pool = nullptr;  // null: run on the calling thread
};

// y[i][r] = sum_c x[i][c] * W[r][c] for i < m (x: m x cols, y: m x rows, both row-major).
// m == 1 is decode (matrix-vector, memory-bound); m > 1 is prefill (matrix-matrix: each weight
// tile is loaded once for several rows of x). Parallel over output rows.
void matmul(const Context& ctx, const float* x, size_t m, const WeightView& w, float* y);

// Converts row `row` of w to float32 (embedding lookup; dequantizes quantized formats; ignores
// input_scale).
void weight_row_to_f32(const WeightView& w, size_t row, float* out);

// out = x / rms(x) * weight, rms over n elements with eps inside the square root.
void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out);

// gate[i] = silu(gate[i]) * up[i]. The AVX-512 kernels compute exp with softmax's polynomial
// (within 1 ulp); the others use libm.
void silu_mul(Isa isa, float* gate, const float* up, size_t n);

float dot(Isa isa, const float* a, const float* b, size_t n);

// One KV head's keys (or values) in a paged KV cache: position j is row j % tokens_per_block of
// the block blocks[j / tokens_per_block], which starts at base + that id * block_stride; rows are
// row_stride bytes apart within a block and hold head_size elements of dtype F32, F16 or BF16 (the
// cache's), converted to float32 in registers. A contiguous cache is one block of all positions.
struct PagedRows {
  const std::byte* base = nullptr;
  const int32_t* blocks = nullptr;
  size_t block_stride = 0;
  size_t tokens_per_block = 0;
  size_t row_stride = 0;
  DType dtype = DType::F32;
};

// Attention of `heads` query heads that share one KV head (grouped-query attention; 1 for one
// head) over positions [0, count). Head i's query is q + i * head_size and its scores are
// scores[i * scores_stride + j] = scale * dot(q_i, keys[j]).
// Each head's scores are bit for bit what it gets alone; the AVX-512 kernels read and convert each
// key once for the heads.
void attention_scores(Isa isa, const float* q, size_t heads, const PagedRows& keys, size_t head_size, size_t count,
                      float scale, float* scores, size_t scores_stride);
// out + i * head_size = sum_j weights[i * weights_stride + j] * values[j] for each head i,
// accumulated in position order in registers across blocks; bit for bit as each head alone.
void attention_values(Isa isa, const float* weights, size_t weights_stride, size_t heads, const PagedRows& values,
                      size_t head_size, size_t count, float* out);

// In-place numerically stable softmax (the maximum subtracted before exp); the sum is finished in
// double.
void softmax(Isa isa, float* x, size_t n);

}  // namespace llm::kernels
