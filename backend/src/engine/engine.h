#pragma once
// What the Triton glue sees of an engine: submit a generation, observe its steps. Two
// implementations: the CPU engine (the project's forward pass, stepped by the Scheduler) and the
// TensorRT-LLM engine (NVIDIA's executor running a trtllm-build engine on GPUs). The glue picks
// neither: engine_factory creates one from the model's settings.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/generate.h"

namespace llm {

// What one step of a sequence produced. An engine may deliver several tokens in one step (the
// TensorRT-LLM executor batches them when the client is slower than the GPU).
struct StepOutput {
  std::span<const int32_t> new_ids;   // tokens made by this step (empty when it ended on an end id)
  std::string_view text;              // newly visible text
  std::span<const float> log_probs;   // log p of new_ids, when the request asked for them
  FinishReason finish = FinishReason::None;  // set on the sequence's last step
};

// Receives one sequence's output. Exactly one of the last three calls ends every sequence:
// on_step with a finish reason, on_error or on_cancelled. Calls for one sequence never overlap,
// but may come from different engine threads.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  // Polled by the engine (before every step, and by the TensorRT-LLM engine every
  // cancellation_check_period_ms); true stops the sequence and frees its state. Thread-safe.
  virtual bool cancelled() = 0;
  virtual void on_step(const StepOutput& step) = 0;
  virtual void on_error(const std::string& message) = 0;
  virtual void on_cancelled() = 0;
};

// Engines that log (the TensorRT-LLM engine's statistics) do it through this; the Triton glue
// routes it to Triton's log.
enum class LogLevel { Verbose, Info, Warning, Error };
using EngineLog = std::function<void(LogLevel, const std::string&)>;

// Counters for logs and metrics; fields an engine does not know stay empty.
struct EngineStats {
  size_t active = 0;  // sequences in flight (in the running batch)
  size_t queued = 0;  // requests waiting to start
  std::optional<size_t> preempted;              // sequences paused by preemption, waiting to resume
  std::optional<uint64_t> preemptions;          // preemptions so far
  std::optional<uint64_t> iterations;           // iterations (batches) so far
  std::optional<double> last_iteration_ms;      // latency of the latest iteration
  std::optional<int64_t> kv_cache_max_blocks;   // paged KV cache
  std::optional<int64_t> kv_cache_used_blocks;  // held by sequences
  std::optional<int64_t> kv_cache_free_blocks;  // a sequence may take them now (free, or cached and evictable)
  std::optional<int64_t> kv_cache_tokens_per_block;
  std::optional<uint64_t> kv_cache_reused_blocks;  // taken from cached prefixes instead of computed, so far
  std::optional<uint64_t> gpu_memory_bytes;
};
// One log line of the counters an engine knows, e.g. "iteration 12: 41.2 ms, 8 active, 0 queued,
// KV cache blocks 17/512 used".
std::string describe_stats(const EngineStats& stats);

// Thrown by Engine::submit when max_queue_size requests already wait to start: the request was not
// taken, and may be sent again later (Triton's UNAVAILABLE).
class QueueFullError : public Error {
 public:
  using Error::Error;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Checks the request and queues it. Throws llm::Error (on the caller's thread) for a request
  // that cannot run, e.g. one longer than the context, QueueFullError when the queue is full;
  // other exceptions mean the engine failed.
  // When it throws, the observer is never called.
  virtual void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) = 0;

  virtual EngineStats stats() const = 0;
  // Vocabulary size and context length (prompt + new tokens) requests are checked against.
  virtual int64_t vocab_size() const = 0;
  virtual int64_t context_tokens() const = 0;
  // End ids a request gets when it sends none (tokenizer EOS plus generation_config.json).
  virtual std::vector<int32_t> default_end_ids() const = 0;
  // One line for the load log, e.g. "cpu: 110 MiB of weights, avx512, 2 threads".
  virtual std::string describe() const = 0;
};

}  // namespace llm
