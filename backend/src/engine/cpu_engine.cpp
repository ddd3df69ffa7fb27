#include "engine/cpu_engine.h"

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>

#include "checkpoint/model_config.h"
#include "common/error.h"
#include "kernels/kernels.h"

namespace llm {

size_t kv_cache_blocks(const CpuEngineOptions& options, const ModelConfig& config, size_t physical_memory_bytes) {
  const size_t per_block = options.scheduler.tokens_per_block;
  if (per_block == 0) throw Error("tokens_per_block must be at least 1");
  const size_t token_bytes = KvBlockPool::bytes_per_token(config);
  if (options.max_tokens_in_paged_kv_cache && options.kv_cache_memory_bytes) {
    throw Error("set max_tokens_in_paged_kv_cache or kv_cache_memory_bytes, not both");
  }
  const auto blocks_holding = [per_block](size_t tokens) { return (tokens + per_block - 1) / per_block; };
  if (options.max_tokens_in_paged_kv_cache) return std::max<size_t>(blocks_holding(*options.max_tokens_in_paged_kv_cache), 1);
  if (options.kv_cache_memory_bytes) {
    const size_t blocks = *options.kv_cache_memory_bytes / token_bytes / per_block;  // whole blocks within the bytes
    if (blocks == 0) {
      throw_error("kv_cache_memory_bytes (", *options.kv_cache_memory_bytes, ") holds less than one block of ", per_block,
                  " tokens (", per_block * token_bytes, " bytes for this model)");
    }
    return blocks;
  }
  const size_t context =
      options.context_tokens > 0 ? options.context_tokens : static_cast<size_t>(config.max_position_embeddings);
  const size_t within_memory = physical_memory_bytes / 2 / token_bytes / per_block;
  return std::max<size_t>(std::min(blocks_holding(options.scheduler.max_batch_size * context), within_memory), 1);
}

namespace {

size_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{8} << 30;
}

// How long the engine waits without work before returning freed memory.
constexpr std::chrono::milliseconds kIdleBeforeTrim{1000};

// Hands the heap's free pages back to the system (glibc keeps them after a peak otherwise: 5,000
// queued requests left the server 116 MiB above its idle size). Elsewhere, a no-op.
void return_freed_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace

CpuEngine::CpuEngine(const CpuEngineOptions& options, const Tokenizer& tokenizer, EngineLog log)
    : options_(options), tokenizer_(tokenizer), log_(std::move(log)) {
  model_ = LlamaModel::load(options_.checkpoint_dir, {options_.threads});
  options_.scheduler.kv_cache_blocks = kv_cache_blocks(options_, model_->config(), physical_memory_bytes());
  scheduler_ = std::make_unique<Scheduler>(*model_, tokenizer_, options_.scheduler);
  thread_ = std::thread([this] { run(); });
}

CpuEngine::~CpuEngine() {
  scheduler_->shutdown();
  thread_.join();
}

void CpuEngine::run() {
  auto next_log = std::chrono::steady_clock::now();
  bool unreported = false;
  bool worked = false;
  while (true) {
    // After a second without work, the memory that served the last requests goes back to the
    // system once: a burst of traffic does not keep the process at its peak for good.
    const Scheduler::Wake wake = scheduler_->wait_for_work(worked ? std::optional(kIdleBeforeTrim) : std::nullopt);
    if (wake == Scheduler::Wake::Shutdown) break;
    if (wake == Scheduler::Wake::Idle) {
      return_freed_memory();
      worked = false;
      continue;
    }
    worked = true;
    // A request the scheduler cannot start yet waits for a running one to end: there is always
    // a running one then, so this loop never spins without work.
    unreported = scheduler_->run_iteration() || unreported;
    const auto now = std::chrono::steady_clock::now();
    if (log_ && unreported && now >= next_log) {
      log_(LogLevel::Verbose, describe_stats(scheduler_->stats()));
      unreported = false;
      next_log = now + options_.stats_period;
    }
  }
}

void CpuEngine::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  scheduler_->submit(std::move(request), std::move(observer));
}

EngineStats CpuEngine::stats() const { return scheduler_->stats(); }

int64_t CpuEngine::vocab_size() const { return model_->config().vocab_size; }

int64_t CpuEngine::context_tokens() const { return model_->config().max_position_embeddings; }

std::vector<int32_t> CpuEngine::default_end_ids() const {
  return llm::default_end_ids(options_.checkpoint_dir, tokenizer_.eos_id());
}

std::string CpuEngine::describe() const {
  const SchedulerOptions& s = scheduler_->options();
  const KvBlockPool& cache = scheduler_->kv_cache();
  const size_t cache_tokens = cache.total_blocks() * cache.tokens_per_block();
  return "cpu engine: " + options_.checkpoint_dir.string() + " (" + std::to_string(model_->weight_bytes() >> 20) +
         " MiB of weights, " + kernels::isa_name(model_->isa()) + ", " + std::to_string(model_->threads()) +
         " threads; in-flight batching of up to " + std::to_string(s.max_batch_size) + " sequences, " +
         std::to_string(s.max_num_tokens) + " tokens per iteration, " + capacity_policy_name(s.policy) +
         ", chunked context " + (s.enable_chunked_context ? "on" : "off") + ", KV cache reuse " +
         (s.enable_kv_cache_reuse ? "on" : "off") + (s.max_queue_size > 0 ? ", queue of " + std::to_string(s.max_queue_size) : "") +
         "; paged KV cache of " + std::to_string(cache.total_blocks()) + " blocks x " +
         std::to_string(cache.tokens_per_block()) + " tokens = " + std::to_string(cache_tokens) + " tokens, " +
         std::to_string(cache.total_blocks() * cache.block_bytes() >> 20) + " MiB at most, committed as used)";
}

}  // namespace llm
