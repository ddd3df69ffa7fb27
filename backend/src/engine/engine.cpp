#include "engine/engine.h"

#include <cstdio>

namespace llm {

std::string describe_stats(const EngineStats& s) {
  std::string line;
  if (s.iterations) line += "iteration " + std::to_string(*s.iterations) + ": ";
  if (s.last_iteration_ms) {
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.1f ms, ", *s.last_iteration_ms);
    line += ms;
  }
  line += std::to_string(s.active) + " active, " + std::to_string(s.queued) + " queued";
  if (s.preempted) line += ", " + std::to_string(*s.preempted) + " preempted";
  if (s.preemptions) line += " (" + std::to_string(*s.preemptions) + " preemptions so far)";
  if (s.gpu_memory_bytes) line += ", GPU memory " + std::to_string(*s.gpu_memory_bytes >> 20) + " MiB";
  if (s.kv_cache_used_blocks && s.kv_cache_max_blocks) {
    line += ", KV cache blocks " + std::to_string(*s.kv_cache_used_blocks) + "/" + std::to_string(*s.kv_cache_max_blocks) +
            " used";
    if (s.kv_cache_tokens_per_block) line += " (" + std::to_string(*s.kv_cache_tokens_per_block) + " tokens each)";
    if (s.kv_cache_reused_blocks) line += ", " + std::to_string(*s.kv_cache_reused_blocks) + " reused so far";
  }
  return line;
}

}  // namespace llm
