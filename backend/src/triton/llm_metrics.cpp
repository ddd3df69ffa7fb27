#include "triton/llm_metrics.h"

#include <dlfcn.h>

#include <chrono>
#include <optional>

#include "triton/triton_utils.h"

namespace llm::triton {
namespace {

// Seconds; from interactive (tens of ms) to long CPU prefills.
const std::vector<double> kTimeToFirstTokenBuckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kTimePerOutputTokenBuckets{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2};

// Histograms (TRITONSERVER_MetricArgs*, MetricNewWithArgs, MetricObserve) came with server API 1.34:
// looked up at run time so that the backend builds against older official headers and loads into
// older tritonservers, which then get the counters and gauges only.
struct HistogramApi {
  TRITONSERVER_Error* (*args_new)(TRITONSERVER_MetricArgs**);
  TRITONSERVER_Error* (*args_set_histogram)(TRITONSERVER_MetricArgs*, const double*, uint64_t);
  TRITONSERVER_Error* (*args_delete)(TRITONSERVER_MetricArgs*);
  TRITONSERVER_Error* (*metric_new_with_args)(TRITONSERVER_Metric**, TRITONSERVER_MetricFamily*,
                                              const TRITONSERVER_Parameter**, uint64_t, const TRITONSERVER_MetricArgs*);
  TRITONSERVER_Error* (*observe)(TRITONSERVER_Metric*, double);
};

const std::optional<HistogramApi>& histogram_api() {
  static const std::optional<HistogramApi> api = []() -> std::optional<HistogramApi> {
    const auto find = [](const char* name) { return dlsym(RTLD_DEFAULT, name); };
    HistogramApi found{};
    found.args_new = reinterpret_cast<decltype(found.args_new)>(find("TRITONSERVER_MetricArgsNew"));
    found.args_set_histogram = reinterpret_cast<decltype(found.args_set_histogram)>(find("TRITONSERVER_MetricArgsSetHistogram"));
    found.args_delete = reinterpret_cast<decltype(found.args_delete)>(find("TRITONSERVER_MetricArgsDelete"));
    found.metric_new_with_args = reinterpret_cast<decltype(found.metric_new_with_args)>(find("TRITONSERVER_MetricNewWithArgs"));
    found.observe = reinterpret_cast<decltype(found.observe)>(find("TRITONSERVER_MetricObserve"));
    if (!found.args_new || !found.args_set_histogram || !found.args_delete || !found.metric_new_with_args || !found.observe) {
      return std::nullopt;
    }
    return found;
  }();
  return api;
}

// The value of TRITONSERVER_METRIC_KIND_HISTOGRAM (API 1.34), spelled so older headers compile.
constexpr auto kHistogramKind = static_cast<TRITONSERVER_MetricKind>(2);

struct ParameterDeleter {
  void operator()(TRITONSERVER_Parameter* parameter) const { TRITONSERVER_ParameterDelete(parameter); }
};
using Parameter = std::unique_ptr<TRITONSERVER_Parameter, ParameterDeleter>;

Parameter label(const char* name, const std::string& value) {
  Parameter parameter(TRITONSERVER_ParameterNew(name, TRITONSERVER_PARAMETER_STRING, value.c_str()));
  if (!parameter) throw TritonException(TRITONSERVER_ERROR_INTERNAL, std::string("cannot create the metric label ") + name);
  return parameter;
}

}  // namespace

void LlmMetrics::FamilyDeleter::operator()(TRITONSERVER_MetricFamily* family) const {
  log_failure(TRITONSERVER_MetricFamilyDelete(family), "deleting a metric family");
}

void LlmMetrics::MetricDeleter::operator()(TRITONSERVER_Metric* metric) const {
  log_failure(TRITONSERVER_MetricDelete(metric), "deleting a metric");
}

LlmMetrics::~LlmMetrics() {
  stop_engine_updates();
  metrics_.clear();  // every metric before any family
  families_.clear();
}

LlmMetrics::Family& LlmMetrics::family(TRITONSERVER_MetricKind kind, const char* name, const char* description) {
  TRITONSERVER_MetricFamily* created = nullptr;
  check(TRITONSERVER_MetricFamilyNew(&created, kind, name, description), name);
  families_.emplace_back(created);
  return families_.back();
}

TRITONSERVER_Metric* LlmMetrics::series(TRITONSERVER_MetricFamily* family, const char* label_name, const char* value,
                                        const std::vector<double>* buckets) {
  std::vector<Parameter> labels;
  labels.push_back(label("model", model_));
  labels.push_back(label("version", version_));
  if (label_name != nullptr) labels.push_back(label(label_name, value));
  std::vector<const TRITONSERVER_Parameter*> pointers;
  for (const Parameter& parameter : labels) pointers.push_back(parameter.get());
  TRITONSERVER_Metric* created = nullptr;
  if (buckets == nullptr) {
    check(TRITONSERVER_MetricNew(&created, family, pointers.data(), pointers.size()), "creating a metric");
  } else {
    const HistogramApi& api = *histogram_api();
    TRITONSERVER_MetricArgs* args = nullptr;
    check(api.args_new(&args), "creating histogram arguments");
    TRITONSERVER_Error* error = api.args_set_histogram(args, buckets->data(), buckets->size());
    if (error == nullptr) error = api.metric_new_with_args(&created, family, pointers.data(), pointers.size(), args);
    log_failure(api.args_delete(args), "deleting histogram arguments");
    check(error, "creating a histogram");
  }
  metrics_.emplace_back(created);
  return created;
}

std::unique_ptr<LlmMetrics> LlmMetrics::create(const std::string& model, uint64_t version,
                                               const std::string& engine_description) {
  std::unique_ptr<LlmMetrics> metrics(new LlmMetrics(model, version));
  try {
    LlmMetrics& m = *metrics;
    TRITONSERVER_MetricFamily* requests =
        m.family(TRITONSERVER_METRIC_KIND_GAUGE, "nv_llm_request_metrics",
                 "Requests of the LLM engine by state: active (in the running batch), queued (waiting to start), "
                 "preempted (paused, waiting to resume)")
            .get();
    m.active_ = m.series(requests, "request_type", "active");
    m.queued_ = m.series(requests, "request_type", "queued");
    m.preempted_ = m.series(requests, "request_type", "preempted");
    TRITONSERVER_MetricFamily* finished =
        m.family(TRITONSERVER_METRIC_KIND_COUNTER, "nv_llm_requests_total",
                 "Requests the LLM engine ended, by how: completed (a stop condition), cancelled (by the client or a "
                 "stop request), failed (an error)")
            .get();
    m.completed_ = m.series(finished, "request_state", "completed");
    m.cancelled_ = m.series(finished, "request_state", "cancelled");
    m.failed_ = m.series(finished, "request_state", "failed");
    TRITONSERVER_MetricFamily* kv_cache =
        m.family(TRITONSERVER_METRIC_KIND_GAUGE, "nv_llm_kv_cache_block_metrics",
                 "Paged KV cache: blocks max, used (held by sequences), free (takeable now), tokens_per_block, and "
                 "reused (blocks taken from cached prefixes instead of computed, since load)")
            .get();
    m.kv_max_ = m.series(kv_cache, "kv_cache_block_type", "max");
    m.kv_used_ = m.series(kv_cache, "kv_cache_block_type", "used");
    m.kv_free_ = m.series(kv_cache, "kv_cache_block_type", "free");
    m.kv_tokens_per_block_ = m.series(kv_cache, "kv_cache_block_type", "tokens_per_block");
    m.kv_reused_ = m.series(kv_cache, "kv_cache_block_type", "reused");
    TRITONSERVER_MetricFamily* tokens =
        m.family(TRITONSERVER_METRIC_KIND_COUNTER, "nv_llm_tokens_total",
                 "Tokens: prompt (of requests accepted by the engine) and generated")
            .get();
    m.prompt_tokens_ = m.series(tokens, "token_type", "prompt");
    m.generated_tokens_ = m.series(tokens, "token_type", "generated");
    if (histogram_api()) {
      m.time_to_first_token_ = m.series(
          m.family(kHistogramKind, "nv_llm_time_to_first_token_seconds",
                   "Time from the request reaching the backend to its first generated token, in seconds")
              .get(),
          nullptr, nullptr, &kTimeToFirstTokenBuckets);
      m.time_per_output_token_ = m.series(
          m.family(kHistogramKind, "nv_llm_time_per_output_token_seconds",
                   "Per request with two or more tokens: (last token time - first token time) / (tokens - 1), in seconds")
              .get(),
          nullptr, nullptr, &kTimePerOutputTokenBuckets);
    } else {
      LLM_LOG_INFO("model " + model + ": the server's metrics API has no histograms (before API 1.34): "
                   "nv_llm_time_to_first_token_seconds and nv_llm_time_per_output_token_seconds are off");
    }
    m.batch_size_ = m.series(m.family(TRITONSERVER_METRIC_KIND_GAUGE, "nv_llm_iteration_batch_size",
                                      "Sequences in the LLM engine's running batch (its latest iteration)")
                                 .get(),
                             nullptr, nullptr);
    m.iterations_ = m.series(m.family(TRITONSERVER_METRIC_KIND_COUNTER, "nv_llm_iterations_total",
                                      "Iterations (forward passes over a batch) the LLM engine ran")
                                 .get(),
                             nullptr, nullptr);
    // An "info" metric, as Prometheus exporters describe builds: the value is always 1.
    m.engine_info_ = m.series(m.family(TRITONSERVER_METRIC_KIND_GAUGE, "nv_llm_engine_info",
                                       "The engine serving the model (label engine: weights, format, threads or "
                                       "GPU engine, batching and KV cache settings); always 1")
                                  .get(),
                              "engine", engine_description.c_str());
    set(m.engine_info_, 1);
  } catch (const std::exception& e) {
    LLM_LOG_WARN("model " + model + ": LLM metrics are off (the server's metrics API refused them: " + e.what() + ")");
    return nullptr;
  }
  return metrics;
}

void LlmMetrics::set(TRITONSERVER_Metric* metric, double value) {
  log_failure(TRITONSERVER_MetricSet(metric, value), "setting a metric");
}
void LlmMetrics::increment(TRITONSERVER_Metric* metric, double value) {
  log_failure(TRITONSERVER_MetricIncrement(metric, value), "incrementing a metric");
}
void LlmMetrics::observe(TRITONSERVER_Metric* metric, double value) {
  if (metric != nullptr) log_failure(histogram_api()->observe(metric, value), "observing a metric");
}

void LlmMetrics::request_started(size_t prompt_tokens) { increment(prompt_tokens_, static_cast<double>(prompt_tokens)); }

void LlmMetrics::tokens_generated(size_t count) {
  if (count > 0) increment(generated_tokens_, static_cast<double>(count));
}

void LlmMetrics::first_token(double seconds) { observe(time_to_first_token_, seconds); }

void LlmMetrics::request_finished(Outcome outcome, double seconds_per_output_token) {
  switch (outcome) {
    case Outcome::Completed: increment(completed_, 1); break;
    case Outcome::Cancelled: increment(cancelled_, 1); break;
    case Outcome::Failed: increment(failed_, 1); break;
  }
  if (seconds_per_output_token >= 0) observe(time_per_output_token_, seconds_per_output_token);
}

void LlmMetrics::start_engine_updates(const Engine& engine) {
  updates_ = std::thread([this, &engine] {
    std::unique_lock lock(updates_mutex_);
    while (!updates_stopping_) {
      lock.unlock();
      update_engine(engine);
      lock.lock();
      updates_wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return updates_stopping_; });
    }
  });
}

void LlmMetrics::stop_engine_updates() {
  {
    std::lock_guard lock(updates_mutex_);
    updates_stopping_ = true;
  }
  updates_wake_.notify_all();
  if (updates_.joinable()) updates_.join();
}

void LlmMetrics::update_engine(const Engine& engine) {
  const EngineStats stats = engine.stats();
  set(active_, static_cast<double>(stats.active));
  set(queued_, static_cast<double>(stats.queued));
  set(batch_size_, static_cast<double>(stats.active));
  if (stats.preempted) set(preempted_, static_cast<double>(*stats.preempted));
  if (stats.kv_cache_max_blocks) set(kv_max_, static_cast<double>(*stats.kv_cache_max_blocks));
  if (stats.kv_cache_used_blocks) set(kv_used_, static_cast<double>(*stats.kv_cache_used_blocks));
  if (stats.kv_cache_free_blocks) set(kv_free_, static_cast<double>(*stats.kv_cache_free_blocks));
  if (stats.kv_cache_tokens_per_block) set(kv_tokens_per_block_, static_cast<double>(*stats.kv_cache_tokens_per_block));
  if (stats.kv_cache_reused_blocks) set(kv_reused_, static_cast<double>(*stats.kv_cache_reused_blocks));
  if (stats.iterations && *stats.iterations > iterations_seen_) {
    increment(iterations_, static_cast<double>(*stats.iterations - iterations_seen_));
    iterations_seen_ = *stats.iterations;
  }
}

}  // namespace llm::triton
