#pragma once
// Test double of TensorRT-LLM's <tensorrt_llm/plugins/api/tllmPlugin.h>: initTrtLlmPlugins with
// the same signature; it counts its calls instead of registering plugins.
#include <atomic>

namespace tensorrt_llm::executor::testing {
inline std::atomic<int>& plugin_registrations() {
  static std::atomic<int> count{0};
  return count;
}
}  // namespace tensorrt_llm::executor::testing

inline bool initTrtLlmPlugins(void* logger = nullptr, char const* libNamespace = "tensorrt_llm") {
  (void)logger;
  (void)libNamespace;
  ++tensorrt_llm::executor::testing::plugin_registrations();
  return true;
}
