// Safetensors files: header length, JSON header, dtypes, shapes and data_offsets. A file that
// opens must describe only bytes inside it.
#include <cstdint>
#include <span>

#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = llm::fuzz::write_scratch_file("model.safetensors", std::span(data, size));
  try {
    const llm::SafetensorsFile file(path);
    uint64_t checksum = 0;
    for (const auto& [name, view] : file.tensors()) {
      if (!view.bytes.empty()) checksum += view.bytes.front() + view.bytes.back();  // in range, or ASan says so
    }
    (void)file.get("x");  // a missing tensor is an Error
    return static_cast<int>(checksum & 0);
  } catch (const llm::Error&) {
  }
  return 0;
}
