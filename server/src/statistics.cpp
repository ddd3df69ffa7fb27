#include "statistics.h"

#include <algorithm>
#include <chrono>

namespace llm_server {

uint64_t steady_now_ns() noexcept {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void StatisticsAggregator::touch_locked() {
  stats_.last_inference_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void StatisticsAggregator::record_request(bool success, uint64_t batch_size,
                                          uint64_t request_start_ns, uint64_t queue_start_ns,
                                          uint64_t exec_start_ns, uint64_t compute_start_ns,
                                          uint64_t compute_end_ns, uint64_t exec_end_ns) {
  const uint64_t request_end_ns = steady_now_ns();
  std::lock_guard<std::mutex> lock(mutex_);
  touch_locked();
  if (!success) {
    stats_.inference.fail.add(request_start_ns, request_end_ns);
    ++stats_.failures_by_reason[static_cast<size_t>(FailureReason::kBackend)];
    return;
  }
  stats_.inference_count += std::max<uint64_t>(1, batch_size);
  stats_.inference.success.add(request_start_ns, request_end_ns);
  stats_.inference.queue.add(queue_start_ns, exec_start_ns);
  stats_.inference.compute_input.add(exec_start_ns, compute_start_ns);
  stats_.inference.compute_infer.add(compute_start_ns, compute_end_ns);
  stats_.inference.compute_output.add(compute_end_ns, exec_end_ns);
}

void StatisticsAggregator::record_failure(FailureReason reason, uint64_t request_start_ns) {
  const uint64_t request_end_ns = steady_now_ns();
  std::lock_guard<std::mutex> lock(mutex_);
  touch_locked();
  stats_.inference.fail.add(request_start_ns, request_end_ns);
  ++stats_.failures_by_reason[static_cast<size_t>(reason)];
}

void StatisticsAggregator::record_first_response(uint64_t request_start_ns) {
  const uint64_t now = steady_now_ns();
  const double ms = now > request_start_ns ? static_cast<double>(now - request_start_ns) / 1e6 : 0.0;
  std::lock_guard<std::mutex> lock(mutex_);
  FirstResponseHistogram& histogram = stats_.first_response;
  size_t bucket = 0;
  while (bucket < kFirstResponseBuckets && ms > kFirstResponseBucketsMs[bucket]) ++bucket;
  ++histogram.buckets[bucket];
  histogram.sum_ms += ms;
  ++histogram.count;
}

void StatisticsAggregator::record_batch(uint64_t batch_size, uint64_t exec_start_ns,
                                        uint64_t compute_start_ns, uint64_t compute_end_ns,
                                        uint64_t exec_end_ns) {
  std::lock_guard<std::mutex> lock(mutex_);
  touch_locked();
  ++stats_.execution_count;
  BatchStats& batch = stats_.batches[batch_size];
  batch.compute_input.add(exec_start_ns, compute_start_ns);
  batch.compute_infer.add(compute_start_ns, compute_end_ns);
  batch.compute_output.add(compute_end_ns, exec_end_ns);
}

void StatisticsAggregator::record_response(uint64_t index, uint64_t response_start_ns,
                                           uint64_t compute_output_start_ns,
                                           uint64_t response_end_ns,
                                           const TRITONSERVER_Error_Code* error_code) {
  std::lock_guard<std::mutex> lock(mutex_);
  touch_locked();
  ResponseStats& response = stats_.responses[index];
  if (error_code != nullptr) {
    if (*error_code == TRITONSERVER_ERROR_CANCELLED) {
      response.cancel.add(response_start_ns, response_end_ns);
    } else {
      response.fail.add(response_start_ns, response_end_ns);
    }
  } else if (compute_output_start_ns == 0) {
    response.empty_response.add(response_start_ns, response_end_ns);
  } else {
    response.compute_infer.add(response_start_ns, compute_output_start_ns);
    response.compute_output.add(compute_output_start_ns, response_end_ns);
    response.success.add(response_start_ns, response_end_ns);
  }
}

StatisticsSnapshot StatisticsAggregator::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace llm_server
