#include "common/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLM_CPU_RELAX() _mm_pause()
#else
#define LLM_CPU_RELAX() std::this_thread::yield()
#endif

namespace llm {

namespace {
// About 50-100 microseconds of polling: longer than the gap between a decode step's kernels,
// far shorter than the time between tokens of an idle server.
constexpr int kSpinIterations = 20000;

uint32_t generation_of(uint64_t ticket) { return static_cast<uint32_t>(ticket >> 32); }
}  // namespace

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(threads - 1);
  for (size_t i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(sleep_mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::work_on(uint32_t generation) {
  // The ticket is read first: once it shows this generation, the job's fields below are this
  // job's; a later job rewrites them only after closing the ticket, which makes the CAS fail.
  uint64_t ticket = ticket_.load(std::memory_order_acquire);
  if (generation_of(ticket) != generation) return;
  const auto* task = task_.load(std::memory_order_acquire);
  const size_t n_tasks = n_tasks_.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(ticket) != generation) return;
    const size_t index = static_cast<uint32_t>(ticket);
    if (index >= n_tasks) return;
    if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel)) continue;
    try {
      (*task)(index);
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    unfinished_.fetch_sub(1, std::memory_order_acq_rel);
    ticket = ticket_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t generation = generation_of(ticket_.load(std::memory_order_acquire));
    for (int i = 0; i < kSpinIterations && generation == seen && !stopping_.load(std::memory_order_relaxed); ++i) {
      LLM_CPU_RELAX();
      generation = generation_of(ticket_.load(std::memory_order_acquire));
    }
    if (generation == seen) {
      std::unique_lock lock(sleep_mutex_);
      wake_.wait(lock, [&] {
        return stopping_.load() || generation_of(ticket_.load(std::memory_order_acquire)) != seen;
      });
      generation = generation_of(ticket_.load(std::memory_order_acquire));
    }
    if (stopping_.load()) return;
    seen = generation;
    work_on(generation);
  }
}

void ThreadPool::run(size_t n_tasks, const std::function<void(size_t)>& task) {
  if (n_tasks == 0) return;
  if (workers_.empty() || n_tasks == 1) {
    std::exception_ptr failure;
    for (size_t i = 0; i < n_tasks; ++i) {
      try {
        task(i);
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    return;
  }
  // Close the ticket (a generation with no claimable task) before rewriting the job's fields,
  // then open the job under the next generation.
  const uint32_t closed = generation_of(ticket_.load(std::memory_order_relaxed)) + 1;
  ticket_.store((static_cast<uint64_t>(closed) << 32) | 0xffffffffu, std::memory_order_release);
  task_.store(&task, std::memory_order_release);
  n_tasks_.store(n_tasks, std::memory_order_release);
  unfinished_.store(n_tasks, std::memory_order_release);
  {
    std::lock_guard lock(error_mutex_);
    error_ = nullptr;
  }
  const uint32_t generation = closed + 1;
  {
    // Under the sleep mutex so a worker deciding to sleep cannot miss this job.
    std::lock_guard lock(sleep_mutex_);
    ticket_.store(static_cast<uint64_t>(generation) << 32, std::memory_order_release);
  }
  wake_.notify_all();
  work_on(generation);
  while (unfinished_.load(std::memory_order_acquire) != 0) LLM_CPU_RELAX();
  std::exception_ptr failure;
  {
    std::lock_guard lock(error_mutex_);
    failure = error_;
  }
  if (failure) std::rethrow_exception(failure);
}

void ThreadPool::parallel_for(size_t n, size_t align, const std::function<void(size_t, size_t)>& body,
                              size_t chunks_per_thread) {
  if (n == 0) return;
  align = std::max<size_t>(align, 1);
  const size_t units = (n + align - 1) / align;
  const size_t chunks = std::min(units, size() * std::max<size_t>(chunks_per_thread, 1));
  // Chunk c takes units [c * units / chunks, (c + 1) * units / chunks): sizes differ by one unit at most.
  run(chunks, [&](size_t chunk) {
    const size_t begin = chunk * units / chunks * align;
    const size_t end = std::min(n, (chunk + 1) * units / chunks * align);
    if (begin < end) body(begin, end);
  });
}

}  // namespace llm
