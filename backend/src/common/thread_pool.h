#pragma once
// A fixed pool of worker threads, created once per engine and reused for every kernel call
// (no thread creation per token). The calling thread takes part in the work.
#include <condition_variable>
#include <cstddef>
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
  // The first exception thrown by a task is rethrown here. Not reentrant: tasks must not call run().
  void run(size_t n_tasks, const std::function<void(size_t)>& task);

  // Splits [0, n) into about size() contiguous chunks aligned to `align` and calls
  // body(begin, end) once per chunk.
  void parallel_for(size_t n, size_t align, const std::function<void(size_t, size_t)>& body);

 private:
  void worker_loop();
  void work_on_current_job();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable job_ready_;
  std::condition_variable job_done_;
  const std::function<void(size_t)>* task_ = nullptr;
  size_t n_tasks_ = 0;
  size_t next_task_ = 0;
  size_t tasks_finished_ = 0;
  size_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace llm
