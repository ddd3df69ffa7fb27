#pragma once
// The backend's LLM metrics, registered through Triton's custom-metrics C API: tritonserver (and
// llm-server) export them at :8002/metrics beside its nv_inference_* families. Every series has
// the labels model="<name>", version="<version>". Families (README "Metrics"):
//   nv_llm_request_metrics{request_type=active|queued|preempted}            gauge
//   nv_llm_requests_total{request_state=completed|cancelled|failed}          counter
//   nv_llm_kv_cache_block_metrics{kv_cache_block_type=max|used|free|tokens_per_block|reused}  gauge
//   nv_llm_tokens_total{token_type=prompt|generated}                         counter
//   nv_llm_time_to_first_token_seconds                                       histogram
//   nv_llm_time_per_output_token_seconds                                     histogram
//   nv_llm_iteration_batch_size                                              gauge
//   nv_llm_iterations_total                                                  counter
//   nv_llm_engine_info{engine="<the engine's description>"}                 gauge, always 1
// Engine-wide values an engine does not report (e.g. preempted, which the TensorRT-LLM executor
// does not count) stay 0.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "triton/core/tritonserver.h"

struct TRITONSERVER_MetricArgs;  // API 1.34; declared here too so that older official headers compile

namespace llm::triton {

class LlmMetrics {
 public:
  // Registers the families and series for one model version; nullptr (after one log line) when the
  // hosting server has no metrics (its calls fail) — the backend then runs without them.
  // engine_description (Engine::describe) becomes nv_llm_engine_info's label, so that a scrape
  // records what served the numbers (a benchmark keeps it with its results).
  static std::unique_ptr<LlmMetrics> create(const std::string& model, uint64_t version,
                                            const std::string& engine_description);
  ~LlmMetrics();
  LlmMetrics(const LlmMetrics&) = delete;
  LlmMetrics& operator=(const LlmMetrics&) = delete;

  void request_started(size_t prompt_tokens);
  void tokens_generated(size_t count);
  void first_token(double seconds);
  enum class Outcome { Completed, Cancelled, Failed };
  // seconds_per_output_token < 0: unknown (fewer than two tokens).
  void request_finished(Outcome outcome, double seconds_per_output_token);
  // Engine-wide gauges, refreshed from engine.stats() every 200 ms on a thread of their own (as
  // tensorrtllm_backend polls the executor's statistics) until stop_engine_updates, which must come
  // before the engine goes away.
  void start_engine_updates(const Engine& engine);
  void stop_engine_updates();

 private:
  struct FamilyDeleter {
    void operator()(TRITONSERVER_MetricFamily* family) const;
  };
  struct MetricDeleter {
    void operator()(TRITONSERVER_Metric* metric) const;
  };
  using Family = std::unique_ptr<TRITONSERVER_MetricFamily, FamilyDeleter>;
  using Metric = std::unique_ptr<TRITONSERVER_Metric, MetricDeleter>;

  LlmMetrics(std::string model, uint64_t version) : model_(std::move(model)), version_(std::to_string(version)) {}
  Family& family(TRITONSERVER_MetricKind kind, const char* name, const char* description);
  // A series of `family` with the model's labels plus (label, value) when label is not null.
  TRITONSERVER_Metric* series(TRITONSERVER_MetricFamily* family, const char* label, const char* value,
                              const std::vector<double>* buckets = nullptr);
  static void set(TRITONSERVER_Metric* metric, double value);
  static void increment(TRITONSERVER_Metric* metric, double value);
  static void observe(TRITONSERVER_Metric* metric, double value);

  std::string model_;
  std::string version_;
  // Families first: every metric is deleted (below, in reverse order) before its family.
  std::vector<Family> families_;
  std::vector<Metric> metrics_;

  TRITONSERVER_Metric* active_ = nullptr;
  TRITONSERVER_Metric* queued_ = nullptr;
  TRITONSERVER_Metric* preempted_ = nullptr;
  TRITONSERVER_Metric* completed_ = nullptr;
  TRITONSERVER_Metric* cancelled_ = nullptr;
  TRITONSERVER_Metric* failed_ = nullptr;
  TRITONSERVER_Metric* kv_max_ = nullptr;
  TRITONSERVER_Metric* kv_used_ = nullptr;
  TRITONSERVER_Metric* kv_free_ = nullptr;
  TRITONSERVER_Metric* kv_tokens_per_block_ = nullptr;
  TRITONSERVER_Metric* kv_reused_ = nullptr;
  TRITONSERVER_Metric* prompt_tokens_ = nullptr;
  TRITONSERVER_Metric* generated_tokens_ = nullptr;
  TRITONSERVER_Metric* time_to_first_token_ = nullptr;
  TRITONSERVER_Metric* time_per_output_token_ = nullptr;
  TRITONSERVER_Metric* batch_size_ = nullptr;
  TRITONSERVER_Metric* iterations_ = nullptr;
  TRITONSERVER_Metric* engine_info_ = nullptr;

  void update_engine(const Engine& engine);
  std::mutex updates_mutex_;
  std::condition_variable updates_wake_;
  bool updates_stopping_ = false;
  std::thread updates_;
  uint64_t iterations_seen_ = 0;  // iterations_ is a counter fed by differences
};

}  // namespace llm::triton
