#pragma once
// Per-model-version statistics fed by the backend through TRITONBACKEND_ModelInstanceReport*
// and reported by the ModelStatistics RPC, with Triton's accounting rules.
#include <array>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>

#include "triton/core/tritonserver.h"

namespace llm_server {

struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
  void add(uint64_t start_ns, uint64_t end_ns) noexcept {
    ++count;
    ns += end_ns > start_ns ? end_ns - start_ns : 0;  // bad timestamps count as zero time
  }
};

struct InferStats {
  DurationStat success, fail, queue, compute_input, compute_infer, compute_output;
};

// Why a request failed, as tritonserver's nv_inference_request_failure{reason} counts it:
// REJECTED (refused by the scheduler), CANCELED (cancelled before the backend saw it), BACKEND
// (the backend failed it, cancellations it saw included), OTHER.
enum class FailureReason : size_t { kRejected, kCanceled, kBackend, kOther };
inline constexpr std::array<const char*, 4> kFailureReasonNames = {"REJECTED", "CANCELED", "BACKEND", "OTHER"};

struct BatchStats {
  DurationStat compute_input, compute_infer, compute_output;
};

struct ResponseStats {
  DurationStat compute_infer, compute_output, success, fail, empty_response, cancel;
};

// tritonserver's first-response histogram (decoupled models): bucket bounds in milliseconds.
inline constexpr double kFirstResponseBucketsMs[] = {100, 500, 2000, 5000};
inline constexpr size_t kFirstResponseBuckets = std::size(kFirstResponseBucketsMs);

struct FirstResponseHistogram {
  uint64_t buckets[kFirstResponseBuckets + 1] = {};  // per bucket (not cumulative); the last is +Inf
  double sum_ms = 0;
  uint64_t count = 0;
};

struct StatisticsSnapshot {
  uint64_t last_inference_ms = 0;  // since the epoch
  uint64_t inference_count = 0;    // sum of the batch sizes of successful requests
  uint64_t execution_count = 0;    // executions reported through ReportBatchStatistics
  InferStats inference;
  std::array<uint64_t, kFailureReasonNames.size()> failures_by_reason{};  // inference.fail.count, split
  std::map<uint64_t, BatchStats> batches;           // by batch size
  std::map<uint64_t, ResponseStats> responses;      // by response index within a request
  FirstResponseHistogram first_response;            // decoupled models: request to first response
};

class StatisticsAggregator {
 public:
  // TRITONBACKEND_ModelInstanceReportStatistics. The server supplies when the request arrived
  // (request_start_ns) and was queued; the timestamps are ignored when success is false.
  void record_request(bool success, uint64_t batch_size, uint64_t request_start_ns,
                      uint64_t queue_start_ns, uint64_t exec_start_ns, uint64_t compute_start_ns,
                      uint64_t compute_end_ns, uint64_t exec_end_ns);
  // A request the server failed itself, before or instead of the backend's report.
  void record_failure(FailureReason reason, uint64_t request_start_ns);
  // TRITONBACKEND_ModelInstanceReportBatchStatistics.
  void record_batch(uint64_t batch_size, uint64_t exec_start_ns, uint64_t compute_start_ns,
                    uint64_t compute_end_ns, uint64_t exec_end_ns);
  // TRITONBACKEND_ModelInstanceReportResponseStatistics. 'error_code' is set for error responses.
  void record_response(uint64_t index, uint64_t response_start_ns,
                       uint64_t compute_output_start_ns, uint64_t response_end_ns,
                       const TRITONSERVER_Error_Code* error_code);

  // A decoupled model's first response (or error) for a request that arrived at request_start_ns.
  void record_first_response(uint64_t request_start_ns);

  StatisticsSnapshot snapshot() const;

 private:
  void touch_locked();

  mutable std::mutex mutex_;
  StatisticsSnapshot stats_;
};

// Steady-clock nanoseconds, the clock the backend API prescribes for timestamps.
uint64_t steady_now_ns() noexcept;

}  // namespace llm_server
