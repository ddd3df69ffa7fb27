#pragma once
// A fixed pool of worker threads, created once per engine and reused for every kernel call
// (no thread creation per token). The calling thread takes part in the work.
//
// Decode issues hundreds of small parallel sections per token, so dispatch latency matters:
// workers spin briefly on an atomic job counter before sleeping, tasks are claimed with a
// compare-and-swap, and the caller spins (it is about to need the results) instead of sleeping.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llm {

class ThreadPool {
 public:
  // threads == 0 means one per available core.
  explicit ThreadPool(size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size() + 1; }

  // Calls task(i) for every i in [0, n_tasks), spread over the pool; returns when all are done.
  // Every task runs even if one throws; the first exception is rethrown here. One caller at a
  // time: tasks must not call run(), and two threads must not share a pool concurrently.
  void run(size_t n_tasks, const std::function<void(size_t)>& task);

  // Splits [0, n) into about size() * chunks_per_thread contiguous chunks aligned to `align` and
  // calls body(begin, end) once per chunk. Chunks are claimed as threads come free, so more than
  // one per thread lets a thread that runs fast take over work from one that is slowed down.
  void parallel_for(size_t n, size_t align, const std::function<void(size_t, size_t)>& body,
                    size_t chunks_per_thread = 1);

 private:
  void worker_loop();
  // Claims and runs tasks of job `generation` until none remain.
  void work_on(uint32_t generation);

  std::vector<std::thread> workers_;
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  // The current job: its generation (high 32 bits) and next task index (low 32 bits), so a
  // worker that wakes late can never claim a task of a newer job by mistake.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<const std::function<void(size_t)>*> task_{nullptr};
  std::atomic<size_t> n_tasks_{0};
  std::atomic<size_t> unfinished_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace llm
