#include "backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "api_error.h"
#include "logging.h"

namespace llm_server {
namespace {

template <typename Fn>
void resolve(void* library, const char* symbol, Fn& target) {
  dlerror();  // clear a stale error
  target = reinterpret_cast<Fn>(dlsym(library, symbol));
}

}  // namespace

void* MemoryManager::allocate(TRITONSERVER_MemoryType type, int64_t type_id, uint64_t byte_size) {
  if (type == TRITONSERVER_MEMORY_GPU) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "GPU memory (device " + std::to_string(type_id) +
                       ") is not available: llm-server has no GPU support");
  }
  // CPU and CPU_PINNED both come from the heap: there is no pinned pool without CUDA.
  void* buffer = std::malloc(byte_size == 0 ? 1 : byte_size);
  if (buffer == nullptr) {
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE,
                   "unable to allocate " + std::to_string(byte_size) + " bytes of CPU memory");
  }
  return buffer;
}

void MemoryManager::deallocate(void* buffer, TRITONSERVER_MemoryType type, int64_t type_id) {
  if (type == TRITONSERVER_MEMORY_GPU) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "GPU memory (device " + std::to_string(type_id) +
                       ") is not available: llm-server has no GPU support");
  }
  std::free(buffer);
}

void Backend::LibraryCloser::operator()(void* handle) const noexcept {
  if (handle != nullptr) {
    dlclose(handle);
  }
}

Backend::Backend(std::string name, std::filesystem::path library, std::string config_json)
    : name_(std::move(name)),
      library_path_(std::move(library)),
      directory_(library_path_.parent_path().string()),
      config_{std::move(config_json)} {}

std::shared_ptr<Backend> Backend::load(const std::string& name,
                                       const std::filesystem::path& library,
                                       std::string config_json) {
  std::shared_ptr<Backend> backend(new Backend(name, library, std::move(config_json)));
  backend->library_.reset(dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!backend->library_) {
    const char* reason = dlerror();
    throw ApiError(TRITONSERVER_ERROR_NOT_FOUND, "unable to load backend library: " +
                                                     std::string(reason ? reason : "unknown"));
  }
  void* handle = backend->library_.get();
  BackendEntryPoints& entry = backend->entry_points_;
  resolve(handle, "TRITONBACKEND_Initialize", entry.initialize);
  resolve(handle, "TRITONBACKEND_Finalize", entry.finalize);
  resolve(handle, "TRITONBACKEND_ModelInitialize", entry.model_initialize);
  resolve(handle, "TRITONBACKEND_ModelFinalize", entry.model_finalize);
  resolve(handle, "TRITONBACKEND_ModelInstanceInitialize", entry.instance_initialize);
  resolve(handle, "TRITONBACKEND_ModelInstanceFinalize", entry.instance_finalize);
  resolve(handle, "TRITONBACKEND_ModelInstanceExecute", entry.instance_execute);
  resolve(handle, "TRITONBACKEND_GetBackendAttribute", entry.get_backend_attribute);
  if (entry.instance_execute == nullptr) {
    throw ApiError(TRITONSERVER_ERROR_NOT_FOUND,
                   "unable to find required entrypoint 'TRITONBACKEND_ModelInstanceExecute' in "
                   "backend library: " +
                       library.string());
  }

  auto* handle_for_backend = reinterpret_cast<TRITONBACKEND_Backend*>(backend.get());
  if (entry.initialize != nullptr) {
    log_verbose(1, "TRITONBACKEND_Initialize: " + name);
    backend->initializing_ = true;
    ErrorPtr error = adopt_error(entry.initialize(handle_for_backend));
    backend->initializing_ = false;
    if (error) {
      throw ApiError(error->code, error->message);
    }
  }
  backend->initialized_ = true;
  if (entry.get_backend_attribute != nullptr) {
    BackendAttributes attributes;
    ErrorPtr error = adopt_error(entry.get_backend_attribute(
        handle_for_backend, reinterpret_cast<TRITONBACKEND_BackendAttribute*>(&attributes)));
    if (error) {
      throw ApiError(error->code, error->message);
    }
    backend->attributes_ = std::move(attributes);
  }
  log_info("loaded backend '" + name + "' from " + library.string());
  return backend;
}

Backend::~Backend() {
  if (initialized_ && entry_points_.finalize != nullptr) {
    log_verbose(1, "TRITONBACKEND_Finalize: " + name_);
    ErrorPtr error = adopt_error(
        entry_points_.finalize(reinterpret_cast<TRITONBACKEND_Backend*>(this)));
    if (error) {
      log_error("failed to finalize backend '" + name_ + "': " + error->message);
    }
  }
}

void Backend::set_execution_policy(TRITONBACKEND_ExecutionPolicy policy) {
  if (!initializing_) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "the execution policy of backend '" + name_ +
                       "' can only be set in TRITONBACKEND_Initialize");
  }
  execution_policy_ = policy;
}

BackendManager::BackendManager(std::map<std::string, std::string> cmdline,
                               std::map<std::string, std::map<std::string, std::string>> per_backend)
    : cmdline_(std::move(cmdline)), per_backend_(std::move(per_backend)) {}

std::string BackendManager::config_json_for(const std::string& name) const {
  nlohmann::ordered_json settings = nlohmann::ordered_json::object();
  for (const auto& [key, value] : cmdline_) {
    settings[key] = value;
  }
  if (auto it = per_backend_.find(name); it != per_backend_.end()) {
    for (const auto& [key, value] : it->second) {
      settings[key] = value;
    }
  }
  nlohmann::ordered_json config;
  config["cmdline"] = std::move(settings);
  return config.dump();
}

std::shared_ptr<Backend> BackendManager::acquire(const std::string& name,
                                                 const std::filesystem::path& library) {
  std::error_code ignored;
  std::filesystem::path key = std::filesystem::weakly_canonical(library, ignored);
  if (key.empty()) {
    key = library;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = backends_.find(key); it != backends_.end()) {
    if (std::shared_ptr<Backend> existing = it->second.lock()) {
      return existing;
    }
  }
  std::shared_ptr<Backend> backend = Backend::load(name, key, config_json_for(name));
  backends_[key] = backend;
  return backend;
}

}  // namespace llm_server
