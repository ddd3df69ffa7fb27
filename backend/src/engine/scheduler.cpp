#include "engine/scheduler.h"

#include "common/error.h"

namespace llm {

Scheduler::Scheduler(LlamaModel& model, const Tokenizer& tokenizer, size_t max_active)
    : model_(model), tokenizer_(tokenizer), max_active_(max_active == 0 ? 1 : max_active) {
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_available_.notify_all();
  thread_.join();
  // The engine thread has ended: what is left never ran to completion.
  for (auto& sequence : active_) sequence.observer->on_cancelled();
  for (auto& sequence : queued_) sequence.observer->on_cancelled();
}

void Scheduler::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  Sequence sequence{std::make_unique<Generation>(model_, tokenizer_, std::move(request)), std::move(observer)};
  {
    std::lock_guard lock(mutex_);
    queued_.push_back(std::move(sequence));
  }
  work_available_.notify_one();
}

size_t Scheduler::active_count() const {
  std::lock_guard lock(mutex_);
  return active_count_;
}

size_t Scheduler::queued_count() const {
  std::lock_guard lock(mutex_);
  return queued_.size();
}

bool Scheduler::step(Sequence& sequence) {
  if (sequence.observer->cancelled()) {
    sequence.observer->on_cancelled();
    return false;
  }
  Generation& generation = *sequence.generation;
  const size_t before = generation.output_ids().size();
  std::string text;
  try {
    text = generation.step();
  } catch (const std::exception& e) {
    sequence.observer->on_error(e.what());
    return false;
  }
  const auto& ids = generation.output_ids();
  const auto& log_probs = generation.output_log_probs();
  StepOutput output;
  output.new_ids = std::span<const int32_t>(ids).subspan(before);
  output.text = text;
  if (!log_probs.empty()) output.log_probs = std::span<const float>(log_probs).subspan(before);
  output.finish = generation.finish_reason();
  sequence.observer->on_step(output);
  return !generation.finished();
}

void Scheduler::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [&] { return stopping_ || !queued_.empty() || !active_.empty(); });
      if (stopping_) return;
      while (!queued_.empty() && active_.size() < max_active_) {
        active_.push_back(std::move(queued_.front()));
        queued_.pop_front();
      }
      active_count_ = active_.size();
    }
    // Round-robin: one step for every active sequence, then admit newcomers again.
    for (size_t i = 0; i < active_.size();) {
      if (step(active_[i])) {
        ++i;
      } else {
        active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));  // frees its KV cache now
        std::lock_guard lock(mutex_);
        active_count_ = active_.size();
      }
    }
  }
}

}  // namespace llm
