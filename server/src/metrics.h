#pragma once
// Prometheus metrics for GET /metrics (text exposition format 0.0.4):
//  - tritonserver's per-model families (nv_inference_*), from each ready model's statistics;
//  - the families backends register through Triton's custom-metrics C API
//    (TRITONSERVER_MetricFamilyNew, ...; implemented in metrics.cpp).
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "repository.h"
#include "triton/core/tritonserver.h"

namespace llm_server {

struct MetricFamilyData;

// The families registered through the C API. The C API names no server, so one registry serves
// the process; it lives as long as the process (families outlive the models that made them only
// until those models' backends delete them).
class MetricsRegistry {
 public:
  static MetricsRegistry& instance();

  // Finds the family of that name or adds it; throws ApiError when the name is taken by a family of
  // another kind or help text, or is not a valid Prometheus name.
  std::shared_ptr<MetricFamilyData> family(TRITONSERVER_MetricKind kind, const std::string& name,
                                           const std::string& description);
  // Text exposition of every family that still has a handle.
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<MetricFamilyData>> families_;
};

// The whole /metrics page: the server's nv_inference_* families for every ready model version,
// then the registered families.
std::string render_metrics(const ModelRepository& repository);

}  // namespace llm_server
