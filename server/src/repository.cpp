#include "repository.h"

#include <algorithm>
#include <set>

#include "api_error.h"
#include "logging.h"
#include "model_config.h"

namespace llm_server {
namespace {

bool is_version_directory_name(const std::string& name) {
  return !name.empty() && name.size() < 19 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> model_directories(const std::filesystem::path& repository) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(repository, error)) {
    if (entry.is_directory(error) && entry.path().filename().string().front() != '.') {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> version_directories(const std::filesystem::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory(error) && is_version_directory_name(name)) {
      const int64_t version = std::stoll(name);
      if (version > 0) {
        versions.push_back(version);
      }
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

}  // namespace

ModelRepository::ModelRepository(RepositoryOptions options, BackendManager& backends)
    : options_(std::move(options)), backends_(backends) {
  if (options_.server_handle == nullptr) {
    // TRITONBACKEND_ModelServer hands out an opaque server pointer; this server has no
    // TRITONSERVER_Server functions, so the repository stands in for it.
    options_.server_handle = reinterpret_cast<TRITONSERVER_Server*>(this);
  }
  std::error_code error;
  if (!std::filesystem::is_directory(options_.repository, error)) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "model repository '" +
                                                       options_.repository.string() +
                                                       "' does not exist or is not a directory");
  }
}

ModelRepository::~ModelRepository() = default;

const char* ModelRepository::state_name(VersionState state) noexcept {
  switch (state) {
    case VersionState::kLoading: return "LOADING";
    case VersionState::kReady: return "READY";
    case VersionState::kUnloading: return "UNLOADING";
    case VersionState::kUnavailable: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

void ModelRepository::load_startup_models(const std::vector<std::string>& explicit_names) {
  std::vector<std::string> names;
  const bool everything = options_.control_mode == ModelControlMode::kNone ||
                          std::find(explicit_names.begin(), explicit_names.end(), "*") !=
                              explicit_names.end();
  if (everything) {
    names = model_directories(options_.repository);
  } else {
    names = explicit_names;
  }
  std::lock_guard<std::mutex> lock(load_mutex_);
  for (const std::string& name : names) {
    try {
      load_locked(name);
    } catch (const std::exception& e) {
      log_error(e.what());
    }
  }
  for (const ModelIndexEntry& entry : index(false)) {
    log_info("model '" + entry.name + "'" +
             (entry.version.empty() ? std::string() : " version " + entry.version) + ": " +
             (entry.state.empty() ? std::string("not loaded") : entry.state) +
             (entry.reason.empty() ? std::string() : " (" + entry.reason + ")"));
  }
}

void ModelRepository::load_model(const std::string& name) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE,
                   "explicit model load / unload is not allowed if polling is enabled");
  }
  std::lock_guard<std::mutex> lock(load_mutex_);
  load_locked(name);
  std::lock_guard<std::mutex> state_lock(state_mutex_);
  const ModelRecord& record = models_.at(name);
  std::string reasons = record.failure;
  bool any_ready = false;
  for (const auto& [version, state] : record.versions) {
    if (state.state == VersionState::kReady) {
      any_ready = true;
    } else {
      reasons += "version " + std::to_string(version) + " is at " + state_name(state.state) +
                 " state: " + state.reason + ";";
    }
  }
  if (!any_ready || !record.failure.empty()) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "load failed for model '" + name + "': " + reasons);
  }
}

void ModelRepository::unload_model(const std::string& name) {
  if (options_.control_mode != ModelControlMode::kExplicit) {
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE,
                   "explicit model load / unload is not allowed if polling is enabled");
  }
  std::lock_guard<std::mutex> lock(load_mutex_);
  unload_locked(name, std::nullopt, nullptr);
}

bool ModelRepository::unload_all(std::chrono::steady_clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(load_mutex_);
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> state_lock(state_mutex_);
    for (const auto& [name, record] : models_) {
      names.push_back(name);
    }
  }
  bool all_drained = true;
  for (const std::string& name : names) {
    unload_locked(name, deadline, &all_drained);
  }
  return all_drained;
}

void ModelRepository::set_version_state(const std::string& name, int64_t version,
                                        VersionState state, std::string reason,
                                        std::shared_ptr<ModelVersion> model) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  VersionRecord& record = models_[name].versions[version];
  record.state = state;
  record.reason = std::move(reason);
  record.model = std::move(model);
}

void ModelRepository::load_locked(const std::string& name) {
  const std::filesystem::path model_dir = options_.repository / name;
  std::error_code error;
  if (name.empty() || name.find('/') != std::string::npos ||
      !std::filesystem::is_directory(model_dir, error)) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   "failed to load '" + name + "', failed to poll from model repository");
  }
  // A load of a loaded model reloads it.
  unload_locked(name, std::nullopt, nullptr);
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    models_[name] = ModelRecord{};
  }
  auto fail_model = [&](const std::string& reason) {
    log_error("failed to load '" + name + "': " + reason);
    std::lock_guard<std::mutex> lock(state_mutex_);
    models_[name].failure = reason;
  };

  inference::ModelConfig config;
  try {
    config = read_model_config(model_dir);
    complete_backend_fields(config);
    normalize_model_config(config);
    validate_model_config(config);
  } catch (const std::exception& e) {
    fail_model(e.what());
    return;
  }

  // Versions to serve under the version policy.
  const std::vector<int64_t> available = version_directories(model_dir);
  std::vector<int64_t> selected;
  const auto& policy = config.version_policy();
  if (policy.has_all()) {
    selected = available;
  } else if (policy.has_specific()) {
    for (int64_t version : policy.specific().versions()) {
      if (std::find(available.begin(), available.end(), version) != available.end()) {
        selected.push_back(version);
      } else {
        const std::string reason = "version " + std::to_string(version) +
                                   " is specified for model '" + name +
                                   "', but the version directory is not present";
        log_error(reason);
        set_version_state(name, version, VersionState::kUnavailable, reason, nullptr);
      }
    }
  } else {
    const size_t keep = std::min<size_t>(available.size(), policy.latest().num_versions());
    selected.assign(available.end() - static_cast<std::ptrdiff_t>(keep), available.end());
  }
  if (selected.empty()) {
    fail_model("at least one version must be available under the version policy of model '" +
               name + "'");
    return;
  }

  for (int64_t version : selected) {
    set_version_state(name, version, VersionState::kLoading, "", nullptr);
    try {
      const auto library = find_backend_library(config, model_dir, {version});
      ModelSetup setup;
      setup.name = name;
      setup.version = version;
      setup.model_dir = model_dir;
      setup.config = config;
      setup.backend = backends_.acquire(config.backend(), library);
      setup.auto_complete_config = options_.auto_complete_config;
      setup.server = options_.server_handle;
      auto model = std::make_shared<ModelVersion>(std::move(setup));
      model->load();
      set_version_state(name, version, VersionState::kReady, "", std::move(model));
      log_info("successfully loaded '" + name + "' version " + std::to_string(version));
    } catch (const std::exception& e) {
      log_error("failed to load '" + name + "' version " + std::to_string(version) + ": " +
                e.what());
      set_version_state(name, version, VersionState::kUnavailable, e.what(), nullptr);
    }
  }
}

void ModelRepository::unload_locked(const std::string& name,
                                    std::optional<std::chrono::steady_clock::time_point> deadline,
                                    bool* all_drained) {
  std::vector<std::pair<int64_t, std::shared_ptr<ModelVersion>>> loaded;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return;
    }
    for (auto& [version, record] : it->second.versions) {
      if (record.model) {
        record.state = VersionState::kUnloading;
        loaded.emplace_back(version, record.model);
      }
    }
  }
  for (auto& [version, model] : loaded) {
    if (model->unload(deadline)) {
      set_version_state(name, version, VersionState::kUnavailable, "unloaded", nullptr);
      log_info("successfully unloaded '" + name + "' version " + std::to_string(version));
    } else {
      log_error("timed out unloading '" + name + "' version " + std::to_string(version) +
                ": requests are still in flight");
      if (all_drained != nullptr) {
        *all_drained = false;
      }
    }
  }
}

std::filesystem::path ModelRepository::find_backend_library(
    const inference::ModelConfig& config, const std::filesystem::path& model_dir,
    const std::vector<int64_t>& versions) const {
  // Triton's search order: the version directory, the model directory, then
  // <backend-directory>/<backend>/.
  const bool runtime_is_library =
      config.runtime().size() > 3 &&
      config.runtime().compare(config.runtime().size() - 3, 3, ".so") == 0;
  const std::string file =
      runtime_is_library ? config.runtime() : "libtriton_" + config.backend() + ".so";
  std::vector<std::filesystem::path> candidates;
  for (int64_t version : versions) {
    candidates.push_back(model_dir / std::to_string(version) / file);
  }
  candidates.push_back(model_dir / file);
  candidates.push_back(options_.backend_directory / config.backend() / file);
  std::string searched;
  for (const auto& candidate : candidates) {
    std::error_code error;
    if (std::filesystem::is_regular_file(candidate, error)) {
      return candidate;
    }
    searched += (searched.empty() ? "" : ", ") + candidate.string();
  }
  throw ApiError(TRITONSERVER_ERROR_NOT_FOUND, "unable to find backend library '" + file +
                                                   "' for model '" + config.name() +
                                                   "', searched: " + searched);
}

std::shared_ptr<ModelVersion> ModelRepository::get_model(const std::string& name,
                                                         int64_t version) const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    throw ApiError(TRITONSERVER_ERROR_NOT_FOUND,
                   "Request for unknown model: '" + name + "' is not found");
  }
  const auto& versions = it->second.versions;
  if (version == -1) {
    for (auto v = versions.rbegin(); v != versions.rend(); ++v) {
      if (v->second.state == VersionState::kReady) {
        return v->second.model;
      }
    }
    throw ApiError(TRITONSERVER_ERROR_NOT_FOUND,
                   "Request for unknown model: '" + name + "' has no available versions");
  }
  auto v = versions.find(version);
  if (v == versions.end()) {
    throw ApiError(TRITONSERVER_ERROR_NOT_FOUND, "Request for unknown model: '" + name +
                                                     "' version " + std::to_string(version) +
                                                     " is not found");
  }
  if (v->second.state != VersionState::kReady) {
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "Request for unknown model: '" + name +
                                                       "' version " + std::to_string(version) +
                                                       " is not at ready state");
  }
  return v->second.model;
}

bool ModelRepository::is_model_ready(const std::string& name, int64_t version) const {
  try {
    return get_model(name, version) != nullptr;
  } catch (const ApiError&) {
    return false;
  }
}

std::vector<std::shared_ptr<ModelVersion>> ModelRepository::ready_models(
    const std::string& name) const {
  std::vector<std::shared_ptr<ModelVersion>> ready;
  std::lock_guard<std::mutex> lock(state_mutex_);
  for (const auto& [model_name, record] : models_) {
    if (!name.empty() && model_name != name) {
      continue;
    }
    for (const auto& [version, state] : record.versions) {
      if (state.state == VersionState::kReady) {
        ready.push_back(state.model);
      }
    }
  }
  return ready;
}

std::vector<std::string> ModelRepository::ready_versions(const std::string& name) const {
  std::vector<std::string> versions;
  for (const auto& model : ready_models(name)) {
    versions.push_back(model->version_string());
  }
  return versions;
}

std::vector<ModelIndexEntry> ModelRepository::index(bool ready_only) const {
  std::set<std::string> names;
  for (const std::string& name : model_directories(options_.repository)) {
    names.insert(name);
  }
  std::lock_guard<std::mutex> lock(state_mutex_);
  for (const auto& [name, record] : models_) {
    names.insert(name);
  }
  std::vector<ModelIndexEntry> entries;
  for (const std::string& name : names) {
    auto it = models_.find(name);
    if (it == models_.end()) {
      if (!ready_only) {
        entries.push_back(ModelIndexEntry{name, "", "", ""});
      }
      continue;
    }
    if (!it->second.failure.empty() && !ready_only) {
      entries.push_back(ModelIndexEntry{name, "", "UNAVAILABLE", it->second.failure});
    }
    for (const auto& [version, record] : it->second.versions) {
      if (!ready_only || record.state == VersionState::kReady) {
        entries.push_back(
            ModelIndexEntry{name, std::to_string(version), state_name(record.state), record.reason});
      }
    }
  }
  return entries;
}

bool ModelRepository::all_models_ready() const {
  if (!options_.strict_readiness) {
    return true;
  }
  std::lock_guard<std::mutex> lock(state_mutex_);
  for (const auto& [name, record] : models_) {
    if (!record.failure.empty()) {
      return false;
    }
    for (const auto& [version, state] : record.versions) {
      if (state.state != VersionState::kReady && state.reason != "unloaded") {
        return false;
      }
    }
  }
  return true;
}

}  // namespace llm_server
