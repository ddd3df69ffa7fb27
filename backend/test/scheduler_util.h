#pragma once
// Running requests through the Scheduler in tests: an observer that records one sequence's output,
// and a driver that runs iterations on the test's thread with requests arriving at chosen
// iterations (staggered arrivals, deterministic).
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "engine/scheduler.h"

namespace llm::test {

// Collects one sequence's output; can ask for cancellation after a number of steps.
class RecordingObserver : public GenerationObserver {
 public:
  explicit RecordingObserver(int cancel_after_steps = -1) : cancel_after_(cancel_after_steps) {}
  bool cancelled() override { return cancel_after_ >= 0 && steps_ >= cancel_after_; }
  void on_step(const StepOutput& step) override {
    ++steps_;
    ids_.insert(ids_.end(), step.new_ids.begin(), step.new_ids.end());
    log_probs_.insert(log_probs_.end(), step.log_probs.begin(), step.log_probs.end());
    text_ += step.text;
    if (step.finish != FinishReason::None) end(std::string("finished:") + finish_reason_name(step.finish));
  }
  void on_error(const std::string& message) override { end("error:" + message); }
  void on_cancelled() override {
    if (on_cancelled_hook) on_cancelled_hook();
    end("cancelled");
  }

  bool ended() const { return ended_; }
  // Waits for the sequence's last call and returns how it ended.
  std::string wait() { return ended_future_.get(); }
  const std::vector<int32_t>& ids() const { return ids_; }
  const std::vector<float>& log_probs() const { return log_probs_; }
  const std::string& text() const { return text_; }
  int steps() const { return steps_; }
  std::function<void()> on_cancelled_hook;  // runs on the engine's thread before the end is recorded

 private:
  void end(const std::string& how) {
    ASSERT_FALSE(ended_) << "a sequence ended twice";
    ended_ = true;
    ended_promise_.set_value(how);
  }
  int cancel_after_;
  std::atomic<int> steps_{0};
  std::vector<int32_t> ids_;
  std::vector<float> log_probs_;
  std::string text_;
  std::atomic<bool> ended_{false};
  std::promise<std::string> ended_promise_;
  std::future<std::string> ended_future_ = ended_promise_.get_future();
};

struct Arrival {
  size_t iteration;  // submitted before this iteration runs (0: before the first)
  GenerationRequest request;
  int cancel_after_steps = -1;
};

// Runs the arrivals through one scheduler on this thread until every sequence has ended; returns
// their observers in the arrivals' order. `on_iteration` (optional) sees the scheduler after each
// iteration.
inline std::vector<std::shared_ptr<RecordingObserver>> run_arrivals(
    Scheduler& scheduler, const std::vector<Arrival>& arrivals,
    const std::function<void(const Scheduler&)>& on_iteration = {}) {
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  for (const auto& arrival : arrivals) observers.push_back(std::make_shared<RecordingObserver>(arrival.cancel_after_steps));
  size_t submitted = 0;
  for (size_t iteration = 0; iteration < 100000; ++iteration) {
    for (size_t i = 0; i < arrivals.size(); ++i) {
      if (arrivals[i].iteration == iteration) {
        scheduler.submit(arrivals[i].request, observers[i]);
        ++submitted;
      }
    }
    const bool ran = scheduler.run_iteration();
    if (on_iteration) on_iteration(scheduler);
    bool all_ended = submitted == arrivals.size();
    for (const auto& observer : observers) all_ended = all_ended && observer->ended();
    if (all_ended) return observers;
    if (!ran && submitted == arrivals.size()) {
      ADD_FAILURE() << "the scheduler stopped with sequences that never ended";
      return observers;
    }
  }
  ADD_FAILURE() << "the arrivals did not finish in 100000 iterations";
  return observers;
}

// One request alone: a scheduler of its own with room for it, run to the end.
inline std::shared_ptr<RecordingObserver> run_alone(LlamaModel& model, const Tokenizer& tokenizer,
                                                    const GenerationRequest& request, size_t tokens_per_block = 64) {
  SchedulerOptions options;
  options.max_batch_size = 1;
  options.max_num_tokens = request.prompt_ids.size() + 1;
  options.tokens_per_block = tokens_per_block;
  options.kv_cache_blocks =
      (request.prompt_ids.size() + static_cast<size_t>(request.max_tokens) + tokens_per_block - 1) / tokens_per_block;
  Scheduler scheduler(model, tokenizer, options);
  return run_arrivals(scheduler, {{0, request}}).front();
}

}  // namespace llm::test
