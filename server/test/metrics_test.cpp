// The server side of Triton's custom-metrics C API, called as a backend calls it, and the
// Prometheus text the registered families render to. Family names are unique per test: the
// registry is process-wide, as the C API (which names no server) makes it.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "metrics.h"
#include "triton/core/tritonserver.h"

namespace {

// Takes a call's error: its code (nullopt when the call succeeded), and releases it.
std::optional<TRITONSERVER_Error_Code> code_of(TRITONSERVER_Error* error) {
  if (error == nullptr) return std::nullopt;
  const TRITONSERVER_Error_Code code = TRITONSERVER_ErrorCode(error);
  TRITONSERVER_ErrorDelete(error);
  return code;
}

struct ParameterDeleter {
  void operator()(TRITONSERVER_Parameter* parameter) const { TRITONSERVER_ParameterDelete(parameter); }
};
using Parameter = std::unique_ptr<TRITONSERVER_Parameter, ParameterDeleter>;

Parameter string_label(const char* name, const char* value) {
  return Parameter(TRITONSERVER_ParameterNew(name, TRITONSERVER_PARAMETER_STRING, value));
}

TRITONSERVER_MetricFamily* new_family(TRITONSERVER_MetricKind kind, const char* name, const char* help = "help") {
  TRITONSERVER_MetricFamily* family = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(&family, kind, name, help)), std::nullopt);
  return family;
}

TRITONSERVER_Metric* new_metric(TRITONSERVER_MetricFamily* family, const std::vector<Parameter>& labels,
                                const TRITONSERVER_MetricArgs* args = nullptr) {
  std::vector<const TRITONSERVER_Parameter*> pointers;
  for (const Parameter& label : labels) pointers.push_back(label.get());
  TRITONSERVER_Metric* metric = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricNewWithArgs(&metric, family, pointers.data(), pointers.size(), args)), std::nullopt);
  return metric;
}

double value_of(TRITONSERVER_Metric* metric) {
  double value = -1;
  EXPECT_EQ(code_of(TRITONSERVER_MetricValue(metric, &value)), std::nullopt);
  return value;
}

TEST(MetricsApi, CountersOnlyGrowAndGaugesSet) {
  TRITONSERVER_MetricFamily* counters = new_family(TRITONSERVER_METRIC_KIND_COUNTER, "test_counter_total");
  std::vector<Parameter> labels;
  labels.push_back(string_label("model", "m"));
  TRITONSERVER_Metric* counter = new_metric(counters, labels);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(counter, 2.5)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(counter, 1)), std::nullopt);
  EXPECT_EQ(value_of(counter), 3.5);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(counter, -1)), TRITONSERVER_ERROR_INVALID_ARG);
  EXPECT_EQ(code_of(TRITONSERVER_MetricSet(counter, 10)), TRITONSERVER_ERROR_UNSUPPORTED);
  EXPECT_EQ(code_of(TRITONSERVER_MetricObserve(counter, 1)), TRITONSERVER_ERROR_UNSUPPORTED);
  EXPECT_EQ(value_of(counter), 3.5);
  TRITONSERVER_MetricKind kind = TRITONSERVER_METRIC_KIND_GAUGE;
  EXPECT_EQ(code_of(TRITONSERVER_GetMetricKind(counter, &kind)), std::nullopt);
  EXPECT_EQ(kind, TRITONSERVER_METRIC_KIND_COUNTER);

  TRITONSERVER_MetricFamily* gauges = new_family(TRITONSERVER_METRIC_KIND_GAUGE, "test_gauge");
  TRITONSERVER_Metric* gauge = new_metric(gauges, labels);
  EXPECT_EQ(code_of(TRITONSERVER_MetricSet(gauge, 7)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(gauge, -2)), std::nullopt);
  EXPECT_EQ(value_of(gauge), 5);

  const std::string text = llm_server::MetricsRegistry::instance().render();
  EXPECT_NE(text.find("# HELP test_counter_total help\n# TYPE test_counter_total counter\ntest_counter_total{model=\"m\"} 3.5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE test_gauge gauge\ntest_gauge{model=\"m\"} 5\n"), std::string::npos) << text;

  for (TRITONSERVER_Metric* metric : {counter, gauge}) EXPECT_EQ(code_of(TRITONSERVER_MetricDelete(metric)), std::nullopt);
  for (TRITONSERVER_MetricFamily* family : {counters, gauges}) {
    EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(family)), std::nullopt);
  }
  // Deleted families leave the page.
  EXPECT_EQ(llm_server::MetricsRegistry::instance().render().find("test_counter_total"), std::string::npos);
}

TEST(MetricsApi, HistogramsNeedBucketsAndRenderCumulativeCounts) {
  TRITONSERVER_MetricFamily* family = new_family(TRITONSERVER_METRIC_KIND_HISTOGRAM, "test_latency_seconds");
  std::vector<Parameter> labels;
  labels.push_back(string_label("model", "m"));
  std::vector<const TRITONSERVER_Parameter*> pointers{labels[0].get()};
  TRITONSERVER_Metric* without_buckets = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricNew(&without_buckets, family, pointers.data(), 1)), TRITONSERVER_ERROR_INVALID_ARG);

  TRITONSERVER_MetricArgs* args = nullptr;
  ASSERT_EQ(code_of(TRITONSERVER_MetricArgsNew(&args)), std::nullopt);
  const double unordered[] = {1, 0.5};
  EXPECT_EQ(code_of(TRITONSERVER_MetricArgsSetHistogram(args, unordered, 2)), TRITONSERVER_ERROR_INVALID_ARG);
  const double buckets[] = {0.1, 1};
  ASSERT_EQ(code_of(TRITONSERVER_MetricArgsSetHistogram(args, buckets, 2)), std::nullopt);
  TRITONSERVER_Metric* histogram = new_metric(family, labels, args);
  EXPECT_EQ(code_of(TRITONSERVER_MetricArgsDelete(args)), std::nullopt);
  for (double value : {0.05, 0.1, 0.5, 3.0}) EXPECT_EQ(code_of(TRITONSERVER_MetricObserve(histogram, value)), std::nullopt);
  double value = 0;
  EXPECT_EQ(code_of(TRITONSERVER_MetricValue(histogram, &value)), TRITONSERVER_ERROR_UNSUPPORTED);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(histogram, 1)), TRITONSERVER_ERROR_UNSUPPORTED);

  const std::string text = llm_server::MetricsRegistry::instance().render();
  EXPECT_NE(text.find("# TYPE test_latency_seconds histogram\n"
                      "test_latency_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
                      "test_latency_seconds_bucket{model=\"m\",le=\"1\"} 3\n"
                      "test_latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 4\n"
                      "test_latency_seconds_sum{model=\"m\"} 3.65\n"
                      "test_latency_seconds_count{model=\"m\"} 4\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(code_of(TRITONSERVER_MetricDelete(histogram)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(family)), std::nullopt);
}

TEST(MetricsApi, AFamilyOutlivesItsMetricsAndSameNamedFamiliesShareSeries) {
  TRITONSERVER_MetricFamily* first = new_family(TRITONSERVER_METRIC_KIND_COUNTER, "test_shared_total", "shared");
  TRITONSERVER_MetricFamily* second = new_family(TRITONSERVER_METRIC_KIND_COUNTER, "test_shared_total", "shared");
  TRITONSERVER_MetricFamily* clash = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(&clash, TRITONSERVER_METRIC_KIND_GAUGE, "test_shared_total", "shared")),
            TRITONSERVER_ERROR_ALREADY_EXISTS);
  std::vector<Parameter> labels;
  labels.push_back(string_label("model", "m"));
  TRITONSERVER_Metric* a = new_metric(first, labels);
  TRITONSERVER_Metric* b = new_metric(second, labels);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(a, 1)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricIncrement(b, 2)), std::nullopt);
  EXPECT_EQ(value_of(a), 3);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(first)), TRITONSERVER_ERROR_INTERNAL);  // `a` still lives
  EXPECT_EQ(code_of(TRITONSERVER_MetricDelete(a)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(first)), std::nullopt);
  EXPECT_EQ(value_of(b), 3);
  EXPECT_EQ(code_of(TRITONSERVER_MetricDelete(b)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(second)), std::nullopt);
}

TEST(MetricsApi, RefusesBadNamesAndLabelsAndEscapesLabelValues) {
  TRITONSERVER_MetricFamily* family = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(&family, TRITONSERVER_METRIC_KIND_GAUGE, "1starts_with_digit", "")),
            TRITONSERVER_ERROR_INVALID_ARG);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(&family, TRITONSERVER_METRIC_KIND_GAUGE, "has space", "")),
            TRITONSERVER_ERROR_INVALID_ARG);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(&family, TRITONSERVER_METRIC_KIND_GAUGE, "nv_inference_mine", "")),
            TRITONSERVER_ERROR_INVALID_ARG);  // the server's own prefix
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyNew(nullptr, TRITONSERVER_METRIC_KIND_GAUGE, "test_null", "")),
            TRITONSERVER_ERROR_INVALID_ARG);
  TRITONSERVER_Metric* no_metric = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricNew(&no_metric, nullptr, nullptr, 0)), TRITONSERVER_ERROR_INVALID_ARG);
  EXPECT_EQ(no_metric, nullptr);

  TRITONSERVER_MetricFamily* gauges = new_family(TRITONSERVER_METRIC_KIND_GAUGE, "test_escaped", "a \\ help\nline");
  const int64_t number = 3;
  Parameter not_a_string(TRITONSERVER_ParameterNew("model", TRITONSERVER_PARAMETER_INT, &number));
  const TRITONSERVER_Parameter* bad[] = {not_a_string.get()};
  TRITONSERVER_Metric* metric = nullptr;
  EXPECT_EQ(code_of(TRITONSERVER_MetricNew(&metric, gauges, bad, 1)), TRITONSERVER_ERROR_INVALID_ARG);
  Parameter bad_name = string_label("bad-name", "x");
  const TRITONSERVER_Parameter* bad_label[] = {bad_name.get()};
  EXPECT_EQ(code_of(TRITONSERVER_MetricNew(&metric, gauges, bad_label, 1)), TRITONSERVER_ERROR_INVALID_ARG);

  std::vector<Parameter> labels;
  labels.push_back(string_label("path", "C:\\dir \"quoted\"\nnext"));
  TRITONSERVER_Metric* gauge = new_metric(gauges, labels);
  const std::string text = llm_server::MetricsRegistry::instance().render();
  EXPECT_NE(text.find("# HELP test_escaped a \\\\ help\\nline\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_escaped{path=\"C:\\\\dir \\\"quoted\\\"\\nnext\"} 0\n"), std::string::npos) << text;
  EXPECT_EQ(code_of(TRITONSERVER_MetricDelete(gauge)), std::nullopt);
  EXPECT_EQ(code_of(TRITONSERVER_MetricFamilyDelete(gauges)), std::nullopt);
}

}  // namespace
