#pragma once
// The CPU engine's iteration scheduler: in-flight (continuous) batching over a paged KV cache, as
// TensorRT-LLM's batch manager does it. Each iteration forms one batch from every running
// sequence's next token (decode) plus prompt chunks of sequences still prefilling, up to a token
// budget, admits waiting requests into what is left, and runs ONE forward pass over it; then each
// sequence samples from its own logits with its own options and seed. New requests join at the
// next iteration; finished and cancelled ones leave at once, their KV blocks back in the pool.
//
// The scheduler has no thread of its own: CpuEngine drives run_iteration() from its engine thread;
// the CLI drives it on the calling thread. submit() and stats() may be called from any thread.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"

namespace llm {

class LlamaModel;

// tensorrtllm_backend's batch_scheduler_policy.
enum class CapacityPolicy : uint8_t {
  // A request starts only when blocks for its prompt plus max_tokens can be reserved: a started
  // sequence always runs to the end.
  GuaranteedNoEvict,
  // A request starts when its prompt fits; when the pool runs dry, the most recently started
  // sequence is preempted (its blocks freed, its tokens computed again when it resumes).
  MaxUtilization,
};
const char* capacity_policy_name(CapacityPolicy policy);

struct SchedulerOptions {
  size_t max_batch_size = 8;       // sequences in flight at once (max_concurrent_requests)
  size_t max_num_tokens = 128;     // rows of one iteration's batch (decode rows and prompt chunks)
  size_t max_queue_size = 0;       // requests waiting to start; 0 = unbounded
  CapacityPolicy policy = CapacityPolicy::GuaranteedNoEvict;
  bool enable_chunked_context = true;  // prompts longer than what an iteration has left run in chunks
  bool enable_kv_cache_reuse = false;  // full blocks of matching prompt prefixes are shared
  size_t tokens_per_block = 64;
  size_t kv_cache_blocks = 0;      // the pool's size (required)

  // Throws Error naming the option when the values cannot work together.
  void validate() const;
};

class Scheduler {
 public:
  // `model` and `tokenizer` must outlive the scheduler.
  Scheduler(LlamaModel& model, const Tokenizer& tokenizer, const SchedulerOptions& options);
  // Cancels what is still running or queued (observers get on_cancelled). The thread driving
  // run_iteration() must have stopped.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Checks the request against the model and the engine's limits and queues it. Throws Error (on
  // the caller's thread) for a request that can never run, naming the limit, and QueueFullError
  // when max_queue_size requests already wait. When it throws, the observer is never called.
  void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer);

  // One iteration: drops cancelled sequences, forms the batch, runs the forward pass, samples and
  // notifies the observers. Returns false when there was nothing to run. One thread at a time.
  bool run_iteration();
  // Blocks until there is work for run_iteration() or shutdown() was called, or `idle_for` has
  // passed without work (when given). Called by the thread that drives run_iteration().
  enum class Wake { Work, Idle, Shutdown };
  Wake wait_for_work(std::optional<std::chrono::milliseconds> idle_for = std::nullopt);
  // Wakes wait_for_work() for good.
  void shutdown();

  EngineStats stats() const;
  const SchedulerOptions& options() const { return options_; }
  const KvBlockPool& kv_cache() const { return pool_; }

 private:
  struct Sequence {
    std::unique_ptr<Generation> generation;
    std::shared_ptr<GenerationObserver> observer;
    size_t planned_positions = 0;  // prompt + max_tokens: what guaranteed_no_evict reserves
    std::vector<int32_t> blocks;   // block table, in position order
    size_t computed = 0;           // positions whose keys and values are in the blocks
    size_t published = 0;          // leading blocks published for prefix reuse
    uint64_t prefix = KvBlockPool::kNoPrefix;  // the prefix its published blocks end with
    uint64_t started = 0;          // admission order: the latest started is preempted first
    bool preempted = false;        // waiting to resume, its tokens to be computed again
    // This iteration's part.
    size_t rows = 0;               // rows in the batch
    bool stepped = false;          // sampled a token (or failed to)
    size_t outputs_before = 0;     // output tokens before this step
    std::string step_text;         // text the step made visible
    std::string step_error;        // why the step failed, if it did
  };

  size_t pending_rows(const Sequence& sequence) const;
  void take_submitted();
  void drop_cancelled();
  // Rows for running sequences (decode first, then prompt chunks), blocks for them, preempting
  // under max_utilization; then admits waiting requests into the rest of the budget.
  void schedule();
  bool grow_blocks(Sequence& sequence, size_t positions);
  void preempt(size_t index);
  void admit();
  // Blocks a running sequence may still take: what guaranteed_no_evict keeps reserved for it.
  size_t outstanding_blocks() const;
  void release_blocks(Sequence& sequence);
  void publish_full_blocks(Sequence& sequence);
  // Tells the observer what the sequence's step this iteration produced.
  void notify(Sequence& sequence);
  void publish_stats();

  LlamaModel& model_;
  const Tokenizer& tokenizer_;
  const SchedulerOptions options_;
  KvBlockPool pool_;

  // Engine thread only.
  std::deque<Sequence> waiting_;    // preempted sequences first (to resume), then new requests in FIFO order
  std::vector<Sequence> running_;   // in admission order
  Batch batch_;
  std::vector<float> logits_;
  uint64_t admissions_ = 0;
  uint64_t preemptions_ = 0;
  uint64_t iterations_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Sequence> submitted_;  // not yet seen by the engine thread
  size_t queued_ = 0;               // new requests not yet started (submitted_ and waiting_)
  bool shutdown_ = false;
  EngineStats stats_;
};

}  // namespace llm
