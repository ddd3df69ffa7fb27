#pragma once
// Settings of the TensorRT-LLM engine, as config.pbtxt gives them. No TensorRT-LLM types here:
// the Triton glue parses these in every build, also where TensorRT-LLM is absent.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>

namespace llm {

struct TensorRtLlmOptions {
  // trtllm-build's output folder (config.json + rank0.engine), decoder-only.
  std::filesystem::path engine_dir;

  // NVIDIA tensorrtllm_backend's knobs of the same names. Batching is in-flight: static batching
  // (batching_strategy V1, deprecated since TensorRT-LLM 0.10) leaves Result::finishReasons unset,
  // so the backend could not tell a completed request from one the executor dropped.
  enum class SchedulerPolicy { GuaranteedNoEvict, MaxUtilization };  // batch_scheduler_policy
  SchedulerPolicy scheduler_policy = SchedulerPolicy::GuaranteedNoEvict;
  std::optional<int32_t> max_tokens_in_paged_kv_cache;   // unset: as much as the memory fraction allows
  std::optional<float> kv_cache_free_gpu_mem_fraction;    // unset: TensorRT-LLM's default (0.9)
  bool enable_kv_cache_reuse = false;
  bool enable_chunked_context = false;                     // needs an engine built with use_paged_context_fmha
  std::chrono::milliseconds cancellation_check_period{100};
  std::chrono::milliseconds stats_check_period{100};
  // This project's max_concurrent_requests: a runtime cap on the executor's batch size (at most
  // the engine's build-time max_batch_size); unset = the engine's.
  std::optional<int32_t> max_batch_size;
  // max_num_tokens: a runtime cap on the tokens of one iteration (at most the engine's build-time
  // max_num_tokens); unset = the engine's.
  std::optional<int32_t> max_num_tokens;
  // max_queue_size: requests waiting to start (as the executor last reported them, or those beyond
  // the batch size) beyond which submit refuses with QueueFullError; 0 = unbounded.
  size_t max_queue_size = 0;
};

}  // namespace llm
