// Run-time instruction-set detection. A CPU flag alone is not enough: the OS must also save the
// wider registers on context switches, which XCR0 (read with XGETBV) reports.
#include <cpuid.h>

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
};

// XCR0 bits the OS sets when it saves that register state.
constexpr uint64_t kXcr0SseAvx = (1u << 1) | (1u << 2);                       // XMM, YMM upper halves
constexpr uint64_t kXcr0Avx512 = kXcr0SseAvx | (1u << 5) | (1u << 6) | (1u << 7);  // opmask, ZMM 0-15 upper, ZMM 16-31

uint64_t read_xcr0() {
  uint32_t low = 0;
  uint32_t high = 0;
  // The xgetbv encoding rather than _xgetbv(): the intrinsic needs -mxsave for this whole file.
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  return (static_cast<uint64_t>(high) << 32) | low;
}

CpuSupport probe_cpu() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return {};
  const bool fma = (ecx & bit_FMA) != 0;
  const bool f16c = (ecx & bit_F16C) != 0;
  const bool avx = (ecx & bit_AVX) != 0;
  // XGETBV faults unless the OS enabled XSAVE, so check that first.
  if ((ecx & bit_OSXSAVE) == 0 || !avx) return {};
  const uint64_t xcr0 = read_xcr0();
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return {};

  CpuSupport support;
  support.avx2 = (xcr0 & kXcr0SseAvx) == kXcr0SseAvx && (ebx & bit_AVX2) != 0 && fma && f16c;
  const unsigned avx512_needed = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
  support.avx512 = support.avx2 && (xcr0 & kXcr0Avx512) == kXcr0Avx512 && (ebx & avx512_needed) == avx512_needed;
  // AVX512_BF16 is reported in leaf 7, sub-leaf 1 (EAX bit 5).
  if (support.avx512 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0) {
    support.avx512_bf16 = (eax & bit_AVX512BF16) != 0;
  }
  return support;
}

const CpuSupport& cpu_support() {
  static const CpuSupport support = probe_cpu();
  return support;
}

Isa best_supported_isa() {
  if (isa_supported(Isa::Avx512Bf16)) return Isa::Avx512Bf16;
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
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return cpu_support().avx2;
    case Isa::Avx512: return cpu_support().avx512;
    case Isa::Avx512Bf16: return cpu_support().avx512_bf16;
  }
  return false;
}

Isa detect_isa() {
  const Isa best = best_supported_isa();
  const char* requested_text = std::getenv("LLM_ISA");
  if (requested_text == nullptr || *requested_text == '\0') return best;

  std::string requested_name(requested_text);
  for (char& ch : requested_name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16}) {
    if (requested_name != isa_name(isa)) continue;
    if (!isa_supported(isa)) {
      throw_error("LLM_ISA=", requested_text, " asks for ", isa_name(isa),
                  " kernels, but this CPU (or its OS) supports at most ", isa_name(best), ". Set LLM_ISA to ",
                  isa_name(best), " or lower (accepted values: scalar, avx2, avx512, avx512_bf16) or unset it");
    }
    return isa;
  }
  throw_error("LLM_ISA=\"", requested_text,
              "\" is not a known instruction set; the environment variable LLM_ISA selects the CPU kernels and accepts "
              "scalar, avx2, avx512 or avx512_bf16 (unset: the best this CPU supports, here ",
              isa_name(best), ")");
}

}  // namespace llm::kernels
