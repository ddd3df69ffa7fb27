#pragma once
// A loaded model version (TRITONBACKEND_Model) and its instances (TRITONBACKEND_ModelInstance).
//
// Threads: like tritonserver's default scheduler, every non-passive instance has its own thread
// that takes requests from the model version's queue and calls TRITONBACKEND_ModelInstanceExecute,
// one call at a time per instance. With dynamic_batching and max_batch_size > 0, one call takes
// as many queued requests as fit in max_batch_size (no waiting for more); otherwise one request.
//
// Lifecycle: load() runs TRITONBACKEND_ModelInitialize, validates the (possibly auto-completed)
// config, then TRITONBACKEND_ModelInstanceInitialize for each instance and starts the threads.
// unload() stops taking requests, waits until every request is answered and released, joins the
// threads and finalizes in reverse order: instances (last first), then the model, then drops the
// backend reference (the last one finalizes the backend).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "inflight.h"
#include "model_config.pb.h"
#include "server_types.h"
#include "statistics.h"
#include "triton/core/tritonbackend.h"

namespace llm_server {

class Backend;
class InferenceRequest;
class ModelVersion;

struct MemoryUsage {
  TRITONSERVER_MemoryType type = TRITONSERVER_MEMORY_CPU;
  int64_t type_id = 0;
  uint64_t byte_size = 0;
};

class RequestQueue {
 public:
  // Takes the request unless the queue is closed (then 'request' is left untouched).
  bool push(std::unique_ptr<InferenceRequest>& request, bool at_front = false);
  // Blocks for one request, then adds queued ones while the summed batch sizes stay within
  // 'max_batch_size' (0: one request per call). Empty once the queue is closed and drained.
  std::vector<std::unique_ptr<InferenceRequest>> pop_batch(int64_t max_batch_size);
  void close();
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::deque<std::unique_ptr<InferenceRequest>> requests_;
  bool closed_ = false;
};

class ModelInstance {
 public:
  ModelInstance(ModelVersion& model, std::string name, const inference::ModelInstanceGroup& group);
  ~ModelInstance();
  ModelInstance(const ModelInstance&) = delete;
  ModelInstance& operator=(const ModelInstance&) = delete;

  void initialize();          // TRITONBACKEND_ModelInstanceInitialize; throws ApiError
  void finalize() noexcept;   // TRITONBACKEND_ModelInstanceFinalize, once, if initialized
  void start();               // the execution thread (none for passive instances)
  void join() noexcept;

  ModelVersion& model() const noexcept { return model_; }
  const std::string& name() const noexcept { return name_; }
  TRITONSERVER_InstanceGroupKind kind() const noexcept { return kind_; }
  int32_t device_id() const noexcept { return device_id_; }
  bool passive() const noexcept { return group_.passive(); }
  const inference::ModelInstanceGroup& group() const noexcept { return group_; }
  TRITONSERVER_Message* host_policy() noexcept { return &host_policy_; }
  void* state() const noexcept { return state_; }
  void set_state(void* state) noexcept { state_ = state; }
  void set_memory_usage(std::vector<MemoryUsage> usage);
  std::vector<MemoryUsage> memory_usage() const;

 private:
  void run();
  void execute(std::vector<std::unique_ptr<InferenceRequest>> batch);

  ModelVersion& model_;
  std::string name_;
  inference::ModelInstanceGroup group_;
  TRITONSERVER_InstanceGroupKind kind_;
  int32_t device_id_ = 0;
  TRITONSERVER_Message host_policy_;
  void* state_ = nullptr;  // owned by the backend
  bool initialized_ = false;
  std::thread thread_;
  mutable std::mutex memory_mutex_;
  std::vector<MemoryUsage> memory_usage_;
};

struct ModelSetup {
  std::string name;
  int64_t version = 0;
  std::filesystem::path model_dir;
  inference::ModelConfig config;  // read, backend-completed and normalized (not instance groups)
  std::shared_ptr<Backend> backend;
  bool auto_complete_config = true;
  TRITONSERVER_Server* server = nullptr;  // opaque; handed out by TRITONBACKEND_ModelServer
};

class ModelVersion {
 public:
  explicit ModelVersion(ModelSetup setup);
  ~ModelVersion();
  ModelVersion(const ModelVersion&) = delete;
  ModelVersion& operator=(const ModelVersion&) = delete;

  // Throws ApiError (the backend's own error when one of its functions fails); whatever was
  // initialized before the failure is finalized again first.
  void load();
  // False when 'deadline' passed while requests were still in flight (then nothing is finalized).
  bool unload(std::optional<std::chrono::steady_clock::time_point> deadline);

  // Queues a request; when the model no longer takes requests the request fails (UNAVAILABLE).
  void submit(std::unique_ptr<InferenceRequest> request);
  // TRITONBACKEND_RequestRelease with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE.
  void reschedule(std::unique_ptr<InferenceRequest> request);

  const std::string& name() const noexcept { return name_; }
  int64_t version() const noexcept { return version_; }
  const std::string& version_string() const noexcept { return version_string_; }
  const std::filesystem::path& model_dir() const noexcept { return model_dir_; }
  const std::string& repository_path() const noexcept { return repository_path_; }
  // Stable once load() returned; during TRITONBACKEND_ModelInitialize only the loading thread
  // touches it.
  const inference::ModelConfig& config() const noexcept { return config_; }
  std::string config_json() const;
  bool decoupled() const noexcept { return config_.model_transaction_policy().decoupled(); }
  bool auto_complete_config() const noexcept { return auto_complete_config_; }
  // TRITONBACKEND_ModelSetConfig; only allowed inside TRITONBACKEND_ModelInitialize.
  void set_config_from_backend(const inference::ModelConfig& completed);

  Backend& backend() const noexcept { return *backend_; }
  TRITONSERVER_Server* server() const noexcept { return server_; }
  void* state() const noexcept { return state_; }
  void set_state(void* state) noexcept { state_ = state; }
  StatisticsAggregator& statistics() noexcept { return statistics_; }
  InflightCounter& inflight() noexcept { return inflight_; }
  RequestQueue& queue() noexcept { return queue_; }
  // Requests per TRITONBACKEND_ModelInstanceExecute call: max_batch_size with dynamic batching,
  // else 0 (one request).
  int64_t execute_batch_limit() const noexcept;

  void set_memory_usage(std::vector<MemoryUsage> usage);
  // The model's and all its instances' reported usage.
  std::vector<MemoryUsage> memory_usage() const;

 private:
  void finalize_all() noexcept;

  std::string name_;
  int64_t version_;
  std::string version_string_;
  std::filesystem::path model_dir_;
  std::string repository_path_;
  inference::ModelConfig config_;
  std::shared_ptr<Backend> backend_;
  bool auto_complete_config_;
  TRITONSERVER_Server* server_;
  void* state_ = nullptr;  // owned by the backend
  bool initializing_model_ = false;
  bool model_initialized_ = false;
  std::vector<std::unique_ptr<ModelInstance>> instances_;
  RequestQueue queue_;
  std::atomic<bool> accepting_{false};
  InflightCounter inflight_;
  StatisticsAggregator statistics_;
  mutable std::mutex memory_mutex_;
  std::vector<MemoryUsage> memory_usage_;
};

}  // namespace llm_server
