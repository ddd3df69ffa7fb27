#pragma once
// Runs many generations on one model: a single engine thread steps the active sequences in
// turn (round-robin, one prefill or decode step each), so all of them make progress. Requests
// beyond max_active wait in FIFO order. CpuEngine (engine/cpu_engine.h) wraps it as an Engine;
// the Triton glue submits and observes, it never touches the model.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/generate.h"

namespace llm {

class Scheduler {
 public:
  Scheduler(LlamaModel& model, const Tokenizer& tokenizer, size_t max_active);
  // Cancels whatever is still running or queued (observers get on_cancelled) and stops the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Checks the request against the model and queues it; throws Error (on the caller's thread)
  // for a request that cannot run, e.g. one longer than the context.
  void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer);

  // Sequences holding engine state (KV cache) now, and requests waiting for a slot.
  size_t active_count() const;
  size_t queued_count() const;

 private:
  struct Sequence {
    std::unique_ptr<Generation> generation;
    std::shared_ptr<GenerationObserver> observer;
  };
  void run();
  // One step of one sequence; false when the sequence has ended.
  bool step(Sequence& sequence);

  LlamaModel& model_;
  const Tokenizer& tokenizer_;
  const size_t max_active_;
  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Sequence> queued_;
  std::vector<Sequence> active_;  // touched only by the engine thread, counted under mutex_
  size_t active_count_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace llm
