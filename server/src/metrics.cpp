#include "metrics.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <regex>

#include "api_error.h"
#include "model.h"
#include "server_types.h"
#include "statistics.h"

namespace llm_server {

// One label set of a family: every TRITONSERVER_Metric created with the same labels shares it, as
// in tritonserver (two model instances reporting into one series).
struct MetricSeries {
  std::string labels;  // rendered: name="value",... in the order given
  std::mutex mutex;
  double value = 0;                 // counters and gauges
  std::vector<double> bounds;       // histograms: bucket upper bounds, increasing
  std::vector<uint64_t> counts;     // per bucket (not cumulative), one more for +Inf
  double sum = 0;
  uint64_t count = 0;
};

struct MetricFamilyData {
  TRITONSERVER_MetricKind kind;
  std::string name;
  std::string description;
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<MetricSeries>> series;  // by rendered labels
};

}  // namespace llm_server

// The C API's handles: each owned by the backend between its *New and *Delete.
struct TRITONSERVER_MetricFamily {
  std::shared_ptr<llm_server::MetricFamilyData> data;
  std::atomic<uint64_t> live_metrics{0};
};

struct TRITONSERVER_Metric {
  TRITONSERVER_MetricFamily* family;
  std::shared_ptr<llm_server::MetricSeries> series;
};

struct TRITONSERVER_MetricArgs {
  std::vector<double> buckets;
  bool histogram = false;
};

namespace llm_server {
namespace {

const char* kind_name(TRITONSERVER_MetricKind kind) {
  switch (kind) {
    case TRITONSERVER_METRIC_KIND_COUNTER: return "counter";
    case TRITONSERVER_METRIC_KIND_GAUGE: return "gauge";
    case TRITONSERVER_METRIC_KIND_HISTOGRAM: return "histogram";
  }
  return "untyped";
}

const char* kind_constant(TRITONSERVER_MetricKind kind) {
  switch (kind) {
    case TRITONSERVER_METRIC_KIND_COUNTER: return "TRITONSERVER_METRIC_KIND_COUNTER";
    case TRITONSERVER_METRIC_KIND_GAUGE: return "TRITONSERVER_METRIC_KIND_GAUGE";
    case TRITONSERVER_METRIC_KIND_HISTOGRAM: return "TRITONSERVER_METRIC_KIND_HISTOGRAM";
  }
  return "<invalid kind>";
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[32];
  const auto [end, error] = std::to_chars(text, text + sizeof(text), value);  // shortest exact form
  return error == std::errc() ? std::string(text, end) : "NaN";
}

std::string number(uint64_t value) { return std::to_string(value); }

// "name{labels} value\n"; the labels' braces are left out when there are none.
std::string sample(const std::string& name, const std::string& labels, const std::string& value) {
  return name + (labels.empty() ? "" : "{" + labels + "}") + " " + value + "\n";
}

std::string join_labels(const std::string& a, const std::string& b) {
  return a.empty() ? b : b.empty() ? a : a + "," + b;
}

std::string header(const std::string& name, const std::string& help, const char* type) {
  return "# HELP " + name + " " + escape_help(help) + "\n# TYPE " + name + " " + type + "\n";
}

void require_valid_name(const std::string& name, const char* what) {
  static const std::regex metric_name("^[a-zA-Z_:][a-zA-Z0-9_:]*$");
  static const std::regex label_name("^[a-zA-Z_][a-zA-Z0-9_]*$");
  const bool label = std::string_view(what) == "label";
  if (!std::regex_match(name, label ? label_name : metric_name) || (label && name.rfind("__", 0) == 0)) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   std::string("'") + name + "' is not a valid Prometheus " + what + " name (letters, digits and '_'" +
                       (label ? "" : ", ':'") + "; not starting with a digit" + (label ? "; not starting with '__'" : "") +
                       ")");
  }
}

}  // namespace

MetricsRegistry& MetricsRegistry::instance() {
  static MetricsRegistry registry;
  return registry;
}

std::shared_ptr<MetricFamilyData> MetricsRegistry::family(TRITONSERVER_MetricKind kind, const std::string& name,
                                                          const std::string& description) {
  if (kind != TRITONSERVER_METRIC_KIND_COUNTER && kind != TRITONSERVER_METRIC_KIND_GAUGE &&
      kind != TRITONSERVER_METRIC_KIND_HISTOGRAM) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "unknown metric kind " + std::to_string(static_cast<int>(kind)) +
                                                       " for metric family '" + name + "'");
  }
  require_valid_name(name, "metric");
  if (name.rfind("nv_inference_", 0) == 0) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   "metric family '" + name + "': names starting with nv_inference_ are the server's own");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::shared_ptr<MetricFamilyData> existing = families_[name].lock()) {
    if (existing->kind != kind || existing->description != description) {
      throw ApiError(TRITONSERVER_ERROR_ALREADY_EXISTS,
                     "metric family '" + name + "' already exists as a " + kind_name(existing->kind) +
                         " described as '" + existing->description + "'; a family's kind and description are fixed");
    }
    return existing;
  }
  auto created = std::make_shared<MetricFamilyData>();
  created->kind = kind;
  created->name = name;
  created->description = description;
  families_[name] = created;
  return created;
}

std::string MetricsRegistry::render() const {
  std::vector<std::shared_ptr<MetricFamilyData>> families;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, weak] : families_) {
      if (auto family = weak.lock()) families.push_back(std::move(family));
    }
  }
  std::string out;
  for (const auto& family : families) {
    std::lock_guard<std::mutex> family_lock(family->mutex);
    out += header(family->name, family->description, kind_name(family->kind));
    for (const auto& [labels, weak] : family->series) {
      const std::shared_ptr<MetricSeries> series = weak.lock();
      if (!series) continue;
      std::lock_guard<std::mutex> series_lock(series->mutex);
      if (family->kind != TRITONSERVER_METRIC_KIND_HISTOGRAM) {
        out += sample(family->name, labels, number(series->value));
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t b = 0; b < series->bounds.size(); ++b) {
        cumulative += series->counts[b];
        out += sample(family->name + "_bucket", join_labels(labels, "le=\"" + number(series->bounds[b]) + "\""),
                      number(cumulative));
      }
      out += sample(family->name + "_bucket", join_labels(labels, "le=\"+Inf\""), number(series->count));
      out += sample(family->name + "_sum", labels, number(series->sum));
      out += sample(family->name + "_count", labels, number(series->count));
    }
  }
  return out;
}

std::string render_metrics(const ModelRepository& repository) {
  struct Row {
    std::string labels;
    StatisticsSnapshot stats;
    size_t pending = 0;
    bool decoupled = false;
  };
  std::vector<Row> rows;
  for (const std::shared_ptr<ModelVersion>& model : repository.ready_models("")) {
    rows.push_back(Row{"model=\"" + escape_label_value(model->name()) + "\",version=\"" +
                           escape_label_value(model->version_string()) + "\"",
                       model->statistics().snapshot(), model->queue().size(), model->decoupled()});
  }
  std::string out;
  const auto counter = [&](const std::string& name, const std::string& help, auto value) {
    out += header(name, help, "counter");
    for (const Row& row : rows) out += sample(name, row.labels, number(value(row.stats)));
  };
  counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes",
          [](const StatisticsSnapshot& s) { return s.inference.success.count; });
  out += header("nv_inference_request_failure", "Number of failed inference requests, all batch sizes", "counter");
  for (const Row& row : rows) {
    for (size_t reason = 0; reason < kFailureReasonNames.size(); ++reason) {
      out += sample("nv_inference_request_failure", row.labels + ",reason=\"" + kFailureReasonNames[reason] + "\"",
                    number(row.stats.failures_by_reason[reason]));
    }
  }
  counter("nv_inference_count", "Number of inferences performed (does not include cached requests)",
          [](const StatisticsSnapshot& s) { return s.inference_count; });
  counter("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)",
          [](const StatisticsSnapshot& s) { return s.execution_count; });
  const auto micros = [](const DurationStat& d) { return d.ns / 1000; };
  counter("nv_inference_request_duration_us",
          "Cumulative inference request duration in microseconds (includes cached requests)",
          [&](const StatisticsSnapshot& s) { return micros(s.inference.success); });
  counter("nv_inference_queue_duration_us",
          "Cumulative inference queuing duration in microseconds (includes cached requests)",
          [&](const StatisticsSnapshot& s) { return micros(s.inference.queue); });
  counter("nv_inference_compute_input_duration_us",
          "Cumulative compute input duration in microseconds (does not include cached requests)",
          [&](const StatisticsSnapshot& s) { return micros(s.inference.compute_input); });
  counter("nv_inference_compute_infer_duration_us",
          "Cumulative compute inference duration in microseconds (does not include cached requests)",
          [&](const StatisticsSnapshot& s) { return micros(s.inference.compute_infer); });
  counter("nv_inference_compute_output_duration_us",
          "Cumulative inference compute output duration in microseconds (does not include cached requests)",
          [&](const StatisticsSnapshot& s) { return micros(s.inference.compute_output); });
  out += header("nv_inference_pending_request_count",
                "Instantaneous number of pending requests awaiting execution per-model.", "gauge");
  for (const Row& row : rows) out += sample("nv_inference_pending_request_count", row.labels, number(uint64_t{row.pending}));
  out += header("nv_inference_first_response_histogram_ms", "Duration from request to first response in milliseconds",
                "histogram");
  for (const Row& row : rows) {
    if (!row.decoupled) continue;
    const FirstResponseHistogram& histogram = row.stats.first_response;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kFirstResponseBuckets; ++b) {
      cumulative += histogram.buckets[b];
      out += sample("nv_inference_first_response_histogram_ms_bucket",
                    row.labels + ",le=\"" + number(kFirstResponseBucketsMs[b]) + "\"", number(cumulative));
    }
    out += sample("nv_inference_first_response_histogram_ms_bucket", row.labels + ",le=\"+Inf\"", number(histogram.count));
    out += sample("nv_inference_first_response_histogram_ms_sum", row.labels, number(histogram.sum_ms));
    out += sample("nv_inference_first_response_histogram_ms_count", row.labels, number(histogram.count));
  }
  return out + MetricsRegistry::instance().render();
}

}  // namespace llm_server

// ---------------------------------------------------------------------------------------------
// The C API

using llm_server::ApiError;
using llm_server::checked;
using llm_server::guard_api;

namespace {

TRITONSERVER_Metric& metric_of(TRITONSERVER_Metric* metric) { return checked(metric, "metric"); }

TRITONSERVER_MetricKind kind_of(const TRITONSERVER_Metric& metric) { return metric.family->data->kind; }

}  // namespace

extern "C" {

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricFamilyNew(TRITONSERVER_MetricFamily** family,
                                                                      const TRITONSERVER_MetricKind kind,
                                                                      const char* name, const char* description) {
  return guard_api([&] {
    TRITONSERVER_MetricFamily*& out = checked(family, "family");  // before anything is allocated
    auto handle = std::make_unique<TRITONSERVER_MetricFamily>();
    handle->data = llm_server::MetricsRegistry::instance().family(kind, &checked(name, "name"),
                                                                  description == nullptr ? "" : description);
    out = handle.release();  // the backend's until MetricFamilyDelete
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricFamilyDelete(TRITONSERVER_MetricFamily* family) {
  return guard_api([&] {
    TRITONSERVER_MetricFamily& handle = checked(family, "family");
    if (handle.live_metrics.load() != 0) {
      throw ApiError(TRITONSERVER_ERROR_INTERNAL,
                     "Must call MetricDelete on all dependent metrics before calling MetricFamilyDelete.");
    }
    std::unique_ptr<TRITONSERVER_MetricFamily> owned(&handle);
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_GetMetricFamilyKind(TRITONSERVER_MetricFamily* family,
                                                                          TRITONSERVER_MetricKind* kind) {
  return guard_api([&] { checked(kind, "kind") = checked(family, "family").data->kind; });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricArgsNew(TRITONSERVER_MetricArgs** args) {
  return guard_api([&] {
    TRITONSERVER_MetricArgs*& out = checked(args, "args");
    out = std::make_unique<TRITONSERVER_MetricArgs>().release();  // the backend's until MetricArgsDelete
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricArgsSetHistogram(TRITONSERVER_MetricArgs* args,
                                                                             const double* buckets,
                                                                             const uint64_t buckets_count) {
  return guard_api([&] {
    TRITONSERVER_MetricArgs& target = checked(args, "args");
    if (buckets_count > 0) checked(buckets, "buckets");
    std::vector<double> bounds(buckets, buckets + buckets_count);
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (std::isnan(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
        throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "histogram buckets must be numbers in increasing order");
      }
    }
    target.buckets = std::move(bounds);
    target.histogram = true;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricArgsDelete(TRITONSERVER_MetricArgs* args) {
  return guard_api([&] { std::unique_ptr<TRITONSERVER_MetricArgs> owned(&checked(args, "args")); });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricNewWithArgs(TRITONSERVER_Metric** metric,
                                                                        TRITONSERVER_MetricFamily* family,
                                                                        const TRITONSERVER_Parameter** labels,
                                                                        const uint64_t label_count,
                                                                        const TRITONSERVER_MetricArgs* args) {
  return guard_api([&] {
    TRITONSERVER_Metric*& out = checked(metric, "metric");  // before anything is allocated
    TRITONSERVER_MetricFamily& owner = checked(family, "family");
    llm_server::MetricFamilyData& data = *owner.data;
    if (label_count > 0) checked(labels, "labels");
    std::string rendered;
    for (uint64_t i = 0; i < label_count; ++i) {
      const TRITONSERVER_Parameter& label = checked(labels[i], "label");
      if (label.type != TRITONSERVER_PARAMETER_STRING) {
        throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "label '" + label.name + "' of metric family '" + data.name +
                                                           "' must be a STRING parameter");
      }
      llm_server::require_valid_name(label.name, "label");
      if (data.kind == TRITONSERVER_METRIC_KIND_HISTOGRAM && label.name == "le") {
        throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "histogram '" + data.name + "' cannot have a label named 'le'");
      }
      rendered += (rendered.empty() ? "" : ",") + label.name + "=\"" + llm_server::escape_label_value(label.string_value) + "\"";
    }
    const bool histogram = data.kind == TRITONSERVER_METRIC_KIND_HISTOGRAM;
    if (histogram && (args == nullptr || !args->histogram)) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                     "histogram '" + data.name + "' needs buckets: create it with TRITONSERVER_MetricNewWithArgs and "
                     "TRITONSERVER_MetricArgsSetHistogram");
    }
    if (!histogram && args != nullptr && args->histogram) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, std::string("metric family '") + data.name + "' is a " +
                                                         llm_server::kind_name(data.kind) + ", not a histogram: it takes no buckets");
    }
    auto handle = std::make_unique<TRITONSERVER_Metric>();
    handle->family = &owner;
    {
      std::lock_guard<std::mutex> lock(data.mutex);
      handle->series = data.series[rendered].lock();
      if (handle->series && histogram && handle->series->bounds != args->buckets) {
        throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                       "histogram '" + data.name + "' {" + rendered + "} already exists with other buckets");
      }
      if (!handle->series) {
        handle->series = std::make_shared<llm_server::MetricSeries>();
        handle->series->labels = rendered;
        if (histogram) {
          handle->series->bounds = args->buckets;
          handle->series->counts.assign(args->buckets.size() + 1, 0);
        }
        data.series[rendered] = handle->series;
      }
    }
    ++owner.live_metrics;
    out = handle.release();  // the backend's until MetricDelete
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricNew(TRITONSERVER_Metric** metric,
                                                                TRITONSERVER_MetricFamily* family,
                                                                const TRITONSERVER_Parameter** labels,
                                                                const uint64_t label_count) {
  return TRITONSERVER_MetricNewWithArgs(metric, family, labels, label_count, nullptr);
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricDelete(TRITONSERVER_Metric* metric) {
  return guard_api([&] {
    std::unique_ptr<TRITONSERVER_Metric> owned(&metric_of(metric));
    --owned->family->live_metrics;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricValue(TRITONSERVER_Metric* metric, double* value) {
  return guard_api([&] {
    TRITONSERVER_Metric& target = metric_of(metric);
    if (kind_of(target) == TRITONSERVER_METRIC_KIND_HISTOGRAM) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED, "TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Value");
    }
    std::lock_guard<std::mutex> lock(target.series->mutex);
    checked(value, "value") = target.series->value;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricIncrement(TRITONSERVER_Metric* metric, double value) {
  return guard_api([&] {
    TRITONSERVER_Metric& target = metric_of(metric);
    const TRITONSERVER_MetricKind kind = kind_of(target);
    if (kind == TRITONSERVER_METRIC_KIND_HISTOGRAM) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED, "TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Increment");
    }
    if (kind == TRITONSERVER_METRIC_KIND_COUNTER && !(value >= 0)) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                     "TRITONSERVER_METRIC_KIND_COUNTER can only be incremented monotonically by non-negative values.");
    }
    std::lock_guard<std::mutex> lock(target.series->mutex);
    target.series->value += value;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricSet(TRITONSERVER_Metric* metric, double value) {
  return guard_api([&] {
    TRITONSERVER_Metric& target = metric_of(metric);
    if (kind_of(target) != TRITONSERVER_METRIC_KIND_GAUGE) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED, std::string(llm_server::kind_constant(kind_of(target))) +
                                                         " does not support Set");
    }
    std::lock_guard<std::mutex> lock(target.series->mutex);
    target.series->value = value;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_MetricObserve(TRITONSERVER_Metric* metric, double value) {
  return guard_api([&] {
    TRITONSERVER_Metric& target = metric_of(metric);
    if (kind_of(target) != TRITONSERVER_METRIC_KIND_HISTOGRAM) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED, std::string(llm_server::kind_constant(kind_of(target))) +
                                                         " does not support Observe");
    }
    llm_server::MetricSeries& series = *target.series;
    std::lock_guard<std::mutex> lock(series.mutex);
    size_t bucket = 0;
    while (bucket < series.bounds.size() && value > series.bounds[bucket]) ++bucket;
    ++series.counts[bucket];
    series.sum += value;
    ++series.count;
  });
}

TRITONSERVER_DECLSPEC TRITONSERVER_Error* TRITONSERVER_GetMetricKind(TRITONSERVER_Metric* metric,
                                                                    TRITONSERVER_MetricKind* kind) {
  return guard_api([&] { checked(kind, "kind") = kind_of(metric_of(metric)); });
}

}  // extern "C"
