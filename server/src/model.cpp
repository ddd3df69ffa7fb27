#include "model.h"

#include <algorithm>

#include "api_error.h"
#include "backend.h"
#include "handles.h"
#include "logging.h"
#include "model_config.h"
#include "request.h"

namespace llm_server {

// ---------------------------------------------------------------------------------------------
// RequestQueue

bool RequestQueue::push(std::unique_ptr<InferenceRequest>& request, bool at_front) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      return false;
    }
    if (at_front) {
      requests_.push_front(std::move(request));
    } else {
      requests_.push_back(std::move(request));
    }
  }
  available_.notify_one();
  return true;
}

std::vector<std::unique_ptr<InferenceRequest>> RequestQueue::pop_batch(int64_t max_batch_size) {
  std::vector<std::unique_ptr<InferenceRequest>> batch;
  std::unique_lock<std::mutex> lock(mutex_);
  available_.wait(lock, [this] { return closed_ || !requests_.empty(); });
  if (requests_.empty()) {
    return batch;  // closed and drained
  }
  int64_t total = std::max<int64_t>(1, requests_.front()->batch_size);
  batch.push_back(std::move(requests_.front()));
  requests_.pop_front();
  while (max_batch_size > 0 && !requests_.empty()) {
    const int64_t next = std::max<int64_t>(1, requests_.front()->batch_size);
    if (total + next > max_batch_size) {
      break;
    }
    total += next;
    batch.push_back(std::move(requests_.front()));
    requests_.pop_front();
  }
  if (!requests_.empty()) {
    available_.notify_one();  // let another instance take the rest
  }
  return batch;
}

size_t RequestQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

void RequestQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  available_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// ModelInstance

namespace {

TRITONSERVER_InstanceGroupKind to_api_kind(inference::ModelInstanceGroup::Kind kind) {
  switch (kind) {
    case inference::ModelInstanceGroup::KIND_GPU: return TRITONSERVER_INSTANCEGROUPKIND_GPU;
    case inference::ModelInstanceGroup::KIND_CPU: return TRITONSERVER_INSTANCEGROUPKIND_CPU;
    case inference::ModelInstanceGroup::KIND_MODEL: return TRITONSERVER_INSTANCEGROUPKIND_MODEL;
    default: return TRITONSERVER_INSTANCEGROUPKIND_AUTO;
  }
}

std::string host_policy_name(const inference::ModelInstanceGroup& group) {
  if (!group.host_policy().empty()) {
    return group.host_policy();
  }
  return group.kind() == inference::ModelInstanceGroup::KIND_MODEL ? "model" : "cpu";
}

}  // namespace

ModelInstance::ModelInstance(ModelVersion& model, std::string name,
                             const inference::ModelInstanceGroup& group)
    : model_(model),
      name_(std::move(name)),
      group_(group),
      kind_(to_api_kind(group.kind())),
      host_policy_{"{\"" + host_policy_name(group) + "\":{}}"} {}

ModelInstance::~ModelInstance() { join(); }

void ModelInstance::initialize() {
  auto fn = model_.backend().entry_points().instance_initialize;
  log_info("TRITONBACKEND_ModelInstanceInitialize: " + name_ + " (" +
           TRITONSERVER_InstanceGroupKindString(kind_) + " device " +
           std::to_string(device_id_) + ")");
  if (fn != nullptr) {
    throw_if_error(fn(to_handle(this)));
  }
  initialized_ = true;
}

void ModelInstance::finalize() noexcept {
  if (!initialized_) {
    return;
  }
  initialized_ = false;
  auto fn = model_.backend().entry_points().instance_finalize;
  log_verbose(1, "TRITONBACKEND_ModelInstanceFinalize: " + name_);
  if (fn != nullptr) {
    ErrorPtr error = adopt_error(fn(to_handle(this)));
    if (error) {
      log_error("failed to finalize instance '" + name_ + "': " + error->message);
    }
  }
}

void ModelInstance::start() {
  if (!passive()) {
    thread_ = std::thread([this] { run(); });
  }
}

void ModelInstance::join() noexcept {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void ModelInstance::set_memory_usage(std::vector<MemoryUsage> usage) {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  memory_usage_ = std::move(usage);
}

std::vector<MemoryUsage> ModelInstance::memory_usage() const {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  return memory_usage_;
}

void ModelInstance::run() {
  const int64_t limit = model_.execute_batch_limit();
  while (true) {
    auto batch = model_.queue().pop_batch(limit);
    if (batch.empty()) {
      return;
    }
    execute(std::move(batch));
  }
}

void ModelInstance::execute(std::vector<std::unique_ptr<InferenceRequest>> batch) {
  // Requests cancelled while queued are answered here instead of reaching the backend.
  std::vector<InferenceRequest*> handed_over;
  for (auto& request : batch) {
    if (request->router().is_cancelled()) {
      model_.statistics().record_failure(FailureReason::kCanceled, request->request_start_ns);
      request->router().fail(TRITONSERVER_ERROR_CANCELLED,
                             request->router().log_prefix() + "request cancelled");
      continue;
    }
    handed_over.push_back(request.release());  // the backend owns it unless Execute fails
  }
  if (handed_over.empty()) {
    return;
  }
  std::vector<TRITONBACKEND_Request*> handles;
  handles.reserve(handed_over.size());
  for (InferenceRequest* request : handed_over) {
    handles.push_back(to_handle(request));
  }
  TRITONSERVER_Error* raw_error = nullptr;
  try {
    raw_error = model_.backend().entry_points().instance_execute(
        to_handle(this), handles.data(), static_cast<uint32_t>(handles.size()));
  } catch (...) {
    raw_error = new TRITONSERVER_Error{
        TRITONSERVER_ERROR_INTERNAL,
        "backend '" + model_.backend().name() + "' threw from TRITONBACKEND_ModelInstanceExecute"};
  }
  ErrorPtr error = adopt_error(raw_error);
  if (error) {
    // On error the requests still belong to the server: answer each with the error.
    for (InferenceRequest* request : handed_over) {
      std::unique_ptr<InferenceRequest> owned(request);
      model_.statistics().record_failure(FailureReason::kBackend, owned->request_start_ns);
      owned->router().fail(error->code, error->message);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ModelVersion

ModelVersion::ModelVersion(ModelSetup setup)
    : name_(std::move(setup.name)),
      version_(setup.version),
      version_string_(std::to_string(setup.version)),
      model_dir_(std::move(setup.model_dir)),
      repository_path_(model_dir_.string()),
      config_(std::move(setup.config)),
      backend_(std::move(setup.backend)),
      auto_complete_config_(setup.auto_complete_config),
      server_(setup.server) {}

ModelVersion::~ModelVersion() {
  // unload() normally did all of this; this is the fallback for a version that never got there.
  queue_.close();
  for (auto& instance : instances_) {
    instance->join();
  }
  finalize_all();
}

void ModelVersion::load() {
  normalize_instance_groups(config_, backend_->attributes().preferred_groups);
  validate_model_config(config_);

  auto model_initialize = backend_->entry_points().model_initialize;
  log_info("TRITONBACKEND_ModelInitialize: " + name_ + " (version " + version_string_ + ")");
  if (model_initialize != nullptr) {
    initializing_model_ = true;
    ErrorPtr error = adopt_error(model_initialize(to_handle(this)));
    initializing_model_ = false;
    if (error) {
      throw ApiError(error->code, error->message);
    }
  }
  model_initialized_ = true;

  try {
    validate_model_io(config_);
    for (const auto& group : config_.instance_group()) {
      for (int32_t index = 0; index < group.count(); ++index) {
        std::string instance_name =
            group.count() > 1 ? group.name() + "_" + std::to_string(index) : group.name();
        instances_.push_back(std::make_unique<ModelInstance>(*this, std::move(instance_name), group));
        instances_.back()->initialize();
      }
    }
  } catch (...) {
    finalize_all();
    throw;
  }
  accepting_.store(true);
  for (auto& instance : instances_) {
    instance->start();
  }
}

bool ModelVersion::unload(std::optional<std::chrono::steady_clock::time_point> deadline) {
  accepting_.store(false);
  queue_.close();
  if (deadline) {
    if (!inflight_.wait_for_zero(*deadline)) {
      return false;
    }
  } else {
    inflight_.wait_for_zero();
  }
  for (auto& instance : instances_) {
    instance->join();
  }
  finalize_all();
  backend_.reset();  // the last model using the backend finalizes it here, on this thread
  return true;
}

void ModelVersion::finalize_all() noexcept {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    (*it)->finalize();
  }
  if (model_initialized_) {
    model_initialized_ = false;
    auto model_finalize = backend_->entry_points().model_finalize;
    log_verbose(1, "TRITONBACKEND_ModelFinalize: " + name_ + " (version " + version_string_ + ")");
    if (model_finalize != nullptr) {
      ErrorPtr error = adopt_error(model_finalize(to_handle(this)));
      if (error) {
        log_error("failed to finalize model '" + name_ + "': " + error->message);
      }
    }
  }
}

void ModelVersion::submit(std::unique_ptr<InferenceRequest> request) {
  request->queue_start_ns = steady_now_ns();
  if (!accepting_.load() || !queue_.push(request)) {
    request->router().fail(TRITONSERVER_ERROR_UNAVAILABLE,
                           "Request for unknown model: '" + name_ + "' version " +
                               version_string_ + " is not at ready state");
  }
}

void ModelVersion::reschedule(std::unique_ptr<InferenceRequest> request) {
  if (!queue_.push(request, /*at_front=*/true)) {
    request->router().fail(TRITONSERVER_ERROR_UNAVAILABLE,
                           "model '" + name_ + "' is unloading; rescheduled request dropped");
  }
}

int64_t ModelVersion::execute_batch_limit() const noexcept {
  return (config_.has_dynamic_batching() && config_.max_batch_size() > 0) ? config_.max_batch_size()
                                                                          : 0;
}

std::string ModelVersion::config_json() const { return model_config_to_json(config_); }

void ModelVersion::set_config_from_backend(const inference::ModelConfig& completed) {
  if (!initializing_model_) {
    throw ApiError(TRITONSERVER_ERROR_INTERNAL,
                   "TRITONBACKEND_ModelSetConfig can only be called from "
                   "TRITONBACKEND_ModelInitialize");
  }
  if (!auto_complete_config_) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "model configuration auto-complete is disabled "
                   "(--disable-auto-complete-config)");
  }
  apply_auto_completed_config(config_, completed);
}

void ModelVersion::set_memory_usage(std::vector<MemoryUsage> usage) {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  memory_usage_ = std::move(usage);
}

std::vector<MemoryUsage> ModelVersion::memory_usage() const {
  std::vector<MemoryUsage> total;
  {
    std::lock_guard<std::mutex> lock(memory_mutex_);
    total = memory_usage_;
  }
  for (const auto& instance : instances_) {
    for (const MemoryUsage& entry : instance->memory_usage()) {
      auto same = std::find_if(total.begin(), total.end(), [&](const MemoryUsage& existing) {
        return existing.type == entry.type && existing.type_id == entry.type_id;
      });
      if (same != total.end()) {
        same->byte_size += entry.byte_size;
      } else {
        total.push_back(entry);
      }
    }
  }
  return total;
}

}  // namespace llm_server
