#include "common/thread_pool.h"

#include <algorithm>

namespace llm {

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(threads - 1);
  for (size_t i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  job_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::work_on_current_job() {
  // Called with mutex_ unlocked; claims tasks one at a time until none remain.
  for (;;) {
    size_t index;
    const std::function<void(size_t)>* task;
    {
      std::lock_guard lock(mutex_);
      if (task_ == nullptr || next_task_ >= n_tasks_) return;
      index = next_task_++;
      task = task_;
    }
    std::exception_ptr failure;
    try {
      (*task)(index);
    } catch (...) {
      failure = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    if (failure && !error_) error_ = failure;
    if (++tasks_finished_ == n_tasks_) job_done_.notify_all();
  }
}

void ThreadPool::worker_loop() {
  size_t seen_generation = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      job_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
      if (stopping_) return;
      seen_generation = generation_;
    }
    work_on_current_job();
  }
}

void ThreadPool::run(size_t n_tasks, const std::function<void(size_t)>& task) {
  if (n_tasks == 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (size_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    task_ = &task;
    n_tasks_ = n_tasks;
    next_task_ = 0;
    tasks_finished_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  job_ready_.notify_all();
  work_on_current_job();
  std::exception_ptr failure;
  {
    std::unique_lock lock(mutex_);
    job_done_.wait(lock, [&] { return tasks_finished_ == n_tasks_; });
    task_ = nullptr;
    failure = error_;
  }
  if (failure) std::rethrow_exception(failure);
}

void ThreadPool::parallel_for(size_t n, size_t align, const std::function<void(size_t, size_t)>& body) {
  if (n == 0) return;
  align = std::max<size_t>(align, 1);
  const size_t units = (n + align - 1) / align;
  const size_t chunks = std::min(units, size());
  const size_t units_per_chunk = (units + chunks - 1) / chunks;
  run(chunks, [&](size_t chunk) {
    const size_t begin = chunk * units_per_chunk * align;
    const size_t end = std::min(n, begin + units_per_chunk * align);
    if (begin < end) body(begin, end);
  });
}

}  // namespace llm
