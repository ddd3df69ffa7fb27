// Run-time instruction-set detection. A CPU flag alone is not enough: the OS must also save the
// wider registers on context switches, which XCR0 (read with XGETBV) reports, and for AMX's tiles a
// process must ask Linux for permission before its first tile instruction.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "kernels/kernels.h"

namespace llm::kernels {
namespace {

struct CpuSupport {
  bool avx2 = false;
  bool avx512 = false;
  bool avx512_bf16 = false;
  bool amx = false;  // AMX-TILE and AMX-BF16, with the OS's permission
  bool amd = false;  // vendor AuthenticAMD
};

// XCR0 bits the OS sets when it saves that register state.
constexpr uint64_t kXcr0SseAvx = (1u << 1) | (1u << 2);                       // XMM, YMM upper halves
constexpr uint64_t kXcr0Avx512 = kXcr0SseAvx | (1u << 5) | (1u << 6) | (1u << 7);  // opmask, ZMM 0-15 upper, ZMM 16-31
constexpr uint64_t kXcr0Amx = (1u << 17) | (1u << 18);                          // XTILECFG, XTILEDATA

// Linux's arch_prctl request for a dynamically enabled state component, and AMX's tile data.
constexpr int kArchRequestXcompPermission = 0x1023;
constexpr int kXfeatureTileData = 18;

uint64_t read_xcr0() {
  uint32_t low = 0;
  uint32_t high = 0;
  // The xgetbv encoding rather than _xgetbv(): the intrinsic needs -mxsave for this whole file.
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  return (static_cast<uint64_t>(high) << 32) | low;
}

CpuSupport probe_cpu() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool amd = false;
  // The vendor string is EBX, EDX, ECX of leaf 0: "Auth" "enti" "cAMD".
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) != 0) amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return {};
  const bool fma = (ecx & bit_FMA) != 0;
  const bool f16c = (ecx & bit_F16C) != 0;
  const bool avx = (ecx & bit_AVX) != 0;
  // XGETBV faults unless the OS enabled XSAVE, so check that first.
  if ((ecx & bit_OSXSAVE) == 0 || !avx) return {};
  const uint64_t xcr0 = read_xcr0();
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return {};

  CpuSupport support;
  support.amd = amd;
  support.avx2 = (xcr0 & kXcr0SseAvx) == kXcr0SseAvx && (ebx & bit_AVX2) != 0 && fma && f16c;
  const unsigned avx512_needed = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
  support.avx512 = support.avx2 && (xcr0 & kXcr0Avx512) == kXcr0Avx512 && (ebx & avx512_needed) == avx512_needed;
  // Leaf 7 EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), spelled out: older compilers' cpuid.h lacks them.
  constexpr unsigned kAmxBf16 = 1u << 22, kAmxTile = 1u << 24;
  const bool amx_cpu = (edx & kAmxTile) != 0 && (edx & kAmxBf16) != 0 && (xcr0 & kXcr0Amx) == kXcr0Amx;
  // AVX512_BF16 is reported in leaf 7, sub-leaf 1 (EAX bit 5).
  if (support.avx512 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0) {
    support.avx512_bf16 = (eax & bit_AVX512BF16) != 0;
  }
  // Permission is per process and lasts; without it the first tile instruction would be fatal.
  support.amx = support.avx512_bf16 && amx_cpu &&
                ::syscall(SYS_arch_prctl, kArchRequestXcompPermission, kXfeatureTileData) == 0;
  return support;
}

const CpuSupport& cpu_support() {
  static const CpuSupport support = probe_cpu();
  return support;
}

// The default: the widest supported level, except that the AVX512_BF16 int4 kernel is chosen only
// where bfloat16 dot products are fast. Measured on a 2-core Intel Xeon VM (AVX512_BF16, AMX):
// vdpbf16ps retires 1.8 G instructions/s per core against 7.0 G FMAs, and the float32 int4 kernel
// decodes as fast for one sequence and 14-24% faster for batches of 8-16 (llm bench, 1b shape); on
// AMD's Zen 4 the bfloat16 kernel decoded 1.1-1.4x faster. LLM_ISA=avx512_bf16 still selects it.
// Amx is never the default: its int4 kernel prefills about 2x faster and decodes batches of 8-16
// 1.4-1.6x faster, but decodes a single sequence about a fifth slower than the float32 kernel
// (measured on the same VM, 1b shape); and since a sequence must compute the same way alone or in a
// batch, the kernel cannot change with the batch. LLM_ISA=amx chooses it.
Isa default_isa() {
  if (isa_supported(Isa::Avx512Bf16) && bf16_dot_products_fast()) return Isa::Avx512Bf16;
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512_bf16";
    case Isa::Amx: return "amx";
  }
  return "unknown";
}

bool bf16_dot_products_fast() { return cpu_support().avx512_bf16 && cpu_support().amd; }

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return cpu_support().avx2;
    case Isa::Avx512: return cpu_support().avx512;
    case Isa::Avx512Bf16: return cpu_support().avx512_bf16;
    case Isa::Amx: return cpu_support().amx;
  }
  return false;
}

Isa detect_isa() {
  const Isa best = default_isa();
  const Isa highest = isa_supported(Isa::Amx) ? Isa::Amx : isa_supported(Isa::Avx512Bf16) ? Isa::Avx512Bf16 : best;
  const char* requested_text = std::getenv("LLM_ISA");
  if (requested_text == nullptr || *requested_text == '\0') return best;

  std::string requested_name(requested_text);
  for (char& ch : requested_name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (requested_name != isa_name(isa)) continue;
    if (!isa_supported(isa)) {
      throw_error("LLM_ISA=", requested_text, " asks for ", isa_name(isa),
                  " kernels, but this CPU (or its OS) supports at most ", isa_name(highest), ". Set LLM_ISA to ",
                  isa_name(highest), " or lower (accepted values: scalar, avx2, avx512, avx512_bf16, amx) or unset it");
    }
    return isa;
  }
  throw_error("LLM_ISA=\"", requested_text,
              "\" is not a known instruction set; the environment variable LLM_ISA selects the CPU kernels and accepts "
              "scalar, avx2, avx512, avx512_bf16 or amx (unset: the best for this CPU, here ", isa_name(best), ")");
}

}  // namespace llm::kernels
