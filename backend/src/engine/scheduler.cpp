#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "engine/cpu/llama_model.h"

namespace llm {

const char* capacity_policy_name(CapacityPolicy policy) {
  return policy == CapacityPolicy::MaxUtilization ? "max_utilization" : "guaranteed_no_evict";
}

void SchedulerOptions::validate() const {
  if (max_batch_size == 0) throw Error("max_concurrent_requests must be at least 1");
  if (tokens_per_block == 0) throw Error("tokens_per_block must be at least 1");
  if (kv_cache_blocks == 0) throw Error("the KV cache needs at least one block");
  // Every running sequence takes a row of each iteration's batch; fewer rows would starve some.
  if (max_num_tokens < max_batch_size) {
    throw_error("max_num_tokens (", max_num_tokens, ") must be at least max_concurrent_requests (", max_batch_size,
                "): every running sequence needs a row of each iteration's batch");
  }
}

Scheduler::Scheduler(LlamaModel& model, const Tokenizer& tokenizer, const SchedulerOptions& options)
    : model_(model),
      tokenizer_(tokenizer),
      options_((options.validate(), options)),
      pool_(model.config(), options.tokens_per_block, options.kv_cache_blocks) {
  publish_stats();
}

Scheduler::~Scheduler() {
  // What is left never ran to completion.
  for (auto& sequence : running_) sequence.observer->on_cancelled();
  for (auto& sequence : waiting_) sequence.observer->on_cancelled();
  for (auto& sequence : submitted_) sequence.observer->on_cancelled();
}

void Scheduler::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  const ModelConfig& config = model_.config();
  validate_generation_request(request, config.vocab_size, config.max_position_embeddings);
  const size_t prompt = request.prompt_ids.size();
  const size_t planned = prompt + static_cast<size_t>(request.max_tokens);
  const size_t pool_tokens = pool_.total_blocks() * pool_.tokens_per_block();
  if (planned > pool_tokens) {
    throw_error("the prompt (", prompt, " tokens) plus max_tokens (", request.max_tokens, ") is ", planned,
                " tokens, more than the whole paged KV cache holds (", pool_tokens, " tokens: ", pool_.total_blocks(),
                " blocks of ", pool_.tokens_per_block(),
                "): shorten the prompt, lower max_tokens, or raise max_tokens_in_paged_kv_cache / kv_cache_memory_bytes");
  }
  if (!options_.enable_chunked_context && prompt > options_.max_num_tokens) {
    throw_error("the prompt (", prompt, " tokens) is longer than max_num_tokens (", options_.max_num_tokens,
                ", the tokens of one iteration) and enable_chunked_context is false: shorten the prompt, raise "
                "max_num_tokens or enable chunked context");
  }
  Sequence sequence;
  sequence.generation = std::make_unique<Generation>(tokenizer_, std::move(request));  // checks the sampling values
  sequence.observer = std::move(observer);
  sequence.planned_positions = planned;
  {
    std::lock_guard lock(mutex_);
    if (options_.max_queue_size > 0 && queued_ >= options_.max_queue_size) {
      throw QueueFullError("the request queue is full (max_queue_size " + std::to_string(options_.max_queue_size) +
                           " requests wait to start): retry later");
    }
    submitted_.push_back(std::move(sequence));
    ++queued_;
    stats_.queued = queued_;
  }
  work_available_.notify_one();
}

Scheduler::Wake Scheduler::wait_for_work(std::optional<std::chrono::milliseconds> idle_for) {
  std::unique_lock lock(mutex_);
  const auto ready = [&] { return shutdown_ || !submitted_.empty() || !running_.empty() || !waiting_.empty(); };
  if (idle_for) {
    if (!work_available_.wait_for(lock, *idle_for, ready)) return Wake::Idle;
  } else {
    work_available_.wait(lock, ready);
  }
  return shutdown_ ? Wake::Shutdown : Wake::Work;
}

void Scheduler::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
  }
  work_available_.notify_all();
}

EngineStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

size_t Scheduler::pending_rows(const Sequence& sequence) const {
  return sequence.generation->tokens().size() - sequence.computed;
}

void Scheduler::take_submitted() {
  std::lock_guard lock(mutex_);
  for (auto& sequence : submitted_) waiting_.push_back(std::move(sequence));
  submitted_.clear();
}

void Scheduler::release_blocks(Sequence& sequence) {
  // Last block first: a cached prefix's tail is then evicted before its head.
  for (auto it = sequence.blocks.rbegin(); it != sequence.blocks.rend(); ++it) pool_.release(*it);
  sequence.blocks.clear();
  sequence.computed = 0;
  sequence.published = 0;
  sequence.prefix = KvBlockPool::kNoPrefix;
}

void Scheduler::drop_cancelled() {
  std::vector<Sequence> cancelled;
  for (size_t i = 0; i < running_.size();) {
    if (running_[i].observer->cancelled()) {
      release_blocks(running_[i]);
      cancelled.push_back(std::move(running_[i]));
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  size_t dropped_new = 0;
  for (size_t i = 0; i < waiting_.size();) {
    if (waiting_[i].observer->cancelled()) {
      dropped_new += waiting_[i].preempted ? 0 : 1;
      cancelled.push_back(std::move(waiting_[i]));
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  if (cancelled.empty()) return;
  {
    std::lock_guard lock(mutex_);
    queued_ -= dropped_new;
  }
  publish_stats();  // the blocks are back before anyone hears of the cancellation
  for (auto& sequence : cancelled) sequence.observer->on_cancelled();
}

size_t Scheduler::outstanding_blocks() const {
  size_t outstanding = 0;
  for (const auto& sequence : running_) {
    const size_t planned = pool_.blocks_for(sequence.planned_positions);
    if (planned > sequence.blocks.size()) outstanding += planned - sequence.blocks.size();
  }
  return outstanding;
}

bool Scheduler::grow_blocks(Sequence& sequence, size_t positions) {
  const size_t needed = pool_.blocks_for(positions);
  while (sequence.blocks.size() < needed) {
    if (pool_.available_blocks() == 0) return false;
    sequence.blocks.push_back(pool_.allocate());
  }
  return true;
}

void Scheduler::preempt(size_t index) {
  Sequence sequence = std::move(running_[index]);
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  release_blocks(sequence);
  sequence.preempted = true;
  sequence.rows = 0;
  ++preemptions_;
  // Ahead of new requests; of several preempted now, the older (preempted later) resumes first.
  waiting_.push_front(std::move(sequence));
}

void Scheduler::schedule() {
  size_t budget = options_.max_num_tokens;
  for (auto& sequence : running_) sequence.rows = 0;
  // Decode rows first, so that prompt chunks never delay the running streams, then the chunks of
  // prompts still prefilling, oldest first.
  for (auto& sequence : running_) {
    if (budget > 0 && pending_rows(sequence) == 1) {
      sequence.rows = 1;
      --budget;
    }
  }
  for (auto& sequence : running_) {
    const size_t pending = pending_rows(sequence);
    if (budget == 0 || pending <= 1) continue;
    // A sequence with outputs and more than one pending row is recomputing after preemption: that
    // always goes in chunks, its client waits either way.
    const bool may_chunk = options_.enable_chunked_context || !sequence.generation->output_ids().empty();
    if (pending <= budget || may_chunk) {
      sequence.rows = std::min(pending, budget);
      budget -= sequence.rows;
    }
  }
  // Blocks for those rows, oldest sequence first. Under guaranteed_no_evict they were reserved at
  // admission; under max_utilization a dry pool preempts the most recently started sequence (the
  // last of running_, which is in admission order), which may be the one asking.
  for (size_t i = 0; i < running_.size();) {
    Sequence& sequence = running_[i];
    if (sequence.rows == 0 || grow_blocks(sequence, sequence.computed + sequence.rows)) {
      ++i;
    } else {
      preempt(running_.size() - 1);
    }
  }
  admit();
}

void Scheduler::admit() {
  size_t budget = options_.max_num_tokens;
  for (const auto& sequence : running_) budget -= sequence.rows;
  const size_t per_block = pool_.tokens_per_block();
  size_t started_new = 0;
  while (!waiting_.empty() && running_.size() < options_.max_batch_size && budget > 0) {
    Sequence& candidate = waiting_.front();
    const std::span<const int32_t> tokens = candidate.generation->tokens();
    // Published blocks holding its leading tokens. The last token is always computed, for its logits.
    std::vector<KvBlockPool::PublishedBlock> hits;
    size_t cached_hits = 0;
    if (options_.enable_kv_cache_reuse) {
      uint64_t prefix = KvBlockPool::kNoPrefix;
      for (size_t b = 0; (b + 1) * per_block < tokens.size(); ++b) {
        const auto hit = pool_.find(prefix, tokens.subspan(b * per_block, per_block));
        if (!hit) break;
        hits.push_back(*hit);
        cached_hits += pool_.holders(hit->block) == 0 ? 1 : 0;
        prefix = hit->prefix;
      }
    }
    const size_t reused_positions = hits.size() * per_block;
    const size_t pending = tokens.size() - reused_positions;
    const bool may_chunk = options_.enable_chunked_context || candidate.preempted;
    if (!may_chunk && pending > budget) break;  // FIFO: it waits for a fuller budget, and so do those behind it
    const size_t rows = std::min(pending, budget);
    // Blocks it needs beyond the reused ones, against what the pool can give without breaking the
    // reservations of the running sequences (taking cached hits costs available blocks too).
    const size_t available = pool_.available_blocks() - cached_hits;
    const size_t needed = options_.policy == CapacityPolicy::GuaranteedNoEvict
                              ? pool_.blocks_for(candidate.planned_positions) - hits.size() + outstanding_blocks()
                              : pool_.blocks_for(tokens.size()) - hits.size();
    if (needed > available) break;

    Sequence sequence = std::move(candidate);
    waiting_.pop_front();
    for (const auto& hit : hits) {
      pool_.reuse(hit.block);
      sequence.blocks.push_back(hit.block);
    }
    sequence.computed = reused_positions;
    sequence.published = hits.size();
    sequence.prefix = hits.empty() ? KvBlockPool::kNoPrefix : hits.back().prefix;
    sequence.rows = rows;
    if (!grow_blocks(sequence, sequence.computed + rows)) throw Error("KV cache: admission took more blocks than were available");
    sequence.started = ++admissions_;
    started_new += sequence.preempted ? 0 : 1;
    sequence.preempted = false;
    budget -= rows;
    running_.push_back(std::move(sequence));
  }
  if (started_new > 0) {
    std::lock_guard lock(mutex_);
    queued_ -= started_new;
  }
}

void Scheduler::publish_full_blocks(Sequence& sequence) {
  const size_t per_block = pool_.tokens_per_block();
  const std::span<const int32_t> tokens = sequence.generation->tokens();
  while ((sequence.published + 1) * per_block <= sequence.computed) {
    const size_t b = sequence.published;
    sequence.prefix = pool_.publish(sequence.blocks[b], sequence.prefix, tokens.subspan(b * per_block, per_block));
    ++sequence.published;
  }
}

bool Scheduler::run_iteration() {
  take_submitted();
  drop_cancelled();
  schedule();

  batch_.clear();
  for (const auto& sequence : running_) {
    if (sequence.rows == 0) continue;
    const bool last_rows = sequence.rows == pending_rows(sequence);
    batch_.add(sequence.generation->tokens().subspan(sequence.computed, sequence.rows), sequence.computed,
               sequence.blocks, last_rows ? LogitRows::Last : LogitRows::None);
  }
  if (batch_.sequences.empty()) {
    publish_stats();
    return false;
  }
  const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
  logits_.resize(batch_.logit_rows() * vocab);
  const auto start = std::chrono::steady_clock::now();
  try {
    model_.forward(batch_, pool_, logits_);
  } catch (const std::exception& e) {
    // The engine failed, not a request: every sequence of the batch ends with the error.
    std::vector<Sequence> failed;
    for (size_t i = 0; i < running_.size();) {
      if (running_[i].rows > 0) {
        release_blocks(running_[i]);
        failed.push_back(std::move(running_[i]));
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    publish_stats();
    for (auto& sequence : failed) sequence.observer->on_error(e.what());
    return true;
  }
  ++iterations_;

  // Sample, then let ended sequences go (their blocks back first), then tell the observers.
  size_t logit_row = 0;
  for (auto& sequence : running_) {
    sequence.stepped = false;
    if (sequence.rows == 0) continue;
    const bool last_rows = sequence.rows == pending_rows(sequence);
    sequence.computed += sequence.rows;
    if (options_.enable_kv_cache_reuse) publish_full_blocks(sequence);
    if (!last_rows) continue;
    sequence.stepped = true;
    sequence.outputs_before = sequence.generation->output_ids().size();
    sequence.step_error.clear();
    try {
      sequence.step_text = sequence.generation->accept(std::span<float>(logits_).subspan(logit_row * vocab, vocab));
    } catch (const std::exception& e) {
      sequence.step_error = e.what();
    }
    ++logit_row;
  }
  std::vector<Sequence> ended;
  for (size_t i = 0; i < running_.size();) {
    Sequence& sequence = running_[i];
    if (sequence.stepped && (!sequence.step_error.empty() || sequence.generation->finished())) {
      release_blocks(sequence);
      ended.push_back(std::move(sequence));
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  {
    std::lock_guard lock(mutex_);
    stats_.last_iteration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  publish_stats();
  for (auto& sequence : running_) {
    if (sequence.stepped) notify(sequence);
  }
  for (auto& sequence : ended) notify(sequence);
  return true;
}

void Scheduler::notify(Sequence& sequence) {
  if (!sequence.step_error.empty()) {
    sequence.observer->on_error(sequence.step_error);
    return;
  }
  const Generation& generation = *sequence.generation;
  StepOutput output;
  output.new_ids = std::span<const int32_t>(generation.output_ids()).subspan(sequence.outputs_before);
  output.text = sequence.step_text;
  if (generation.request().return_log_probs) {
    output.log_probs = std::span<const float>(generation.output_log_probs()).subspan(sequence.outputs_before);
  }
  output.finish = generation.finish_reason();
  sequence.observer->on_step(output);
}

void Scheduler::publish_stats() {
  size_t preempted = 0;
  for (const auto& sequence : waiting_) preempted += sequence.preempted ? 1 : 0;
  std::lock_guard lock(mutex_);
  stats_.active = running_.size();
  stats_.queued = queued_;
  stats_.preempted = preempted;
  stats_.preemptions = preemptions_;
  stats_.iterations = iterations_;
  stats_.kv_cache_max_blocks = static_cast<int64_t>(pool_.total_blocks());
  stats_.kv_cache_used_blocks = static_cast<int64_t>(pool_.used_blocks());
  stats_.kv_cache_free_blocks = static_cast<int64_t>(pool_.available_blocks());
  stats_.kv_cache_tokens_per_block = static_cast<int64_t>(pool_.tokens_per_block());
  stats_.kv_cache_reused_blocks = pool_.reused_blocks();
}

}  // namespace llm
