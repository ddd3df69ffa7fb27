#pragma once
// The model repository (Triton's layout: <repository>/<model>/config.pbtxt and numbered version
// directories <repository>/<model>/<version>/) and the states of its models.
//
// Loads and unloads are serialized; lookups for inference only take a short lock on the state
// map, so serving continues while another model loads. A model that fails to load is recorded as
// UNAVAILABLE with the failure as its reason; the others keep serving.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backend.h"
#include "model.h"

namespace llm_server {

enum class ModelControlMode { kNone, kExplicit };

struct RepositoryOptions {
  std::filesystem::path repository;
  std::filesystem::path backend_directory;
  ModelControlMode control_mode = ModelControlMode::kNone;
  bool auto_complete_config = true;
  bool strict_readiness = false;
  TRITONSERVER_Server* server_handle = nullptr;
};

struct ModelIndexEntry {
  std::string name;
  std::string version;  // empty when the failure came before versions were known
  std::string state;    // READY, UNAVAILABLE, LOADING, UNLOADING; empty if never loaded
  std::string reason;
};

class ModelRepository {
 public:
  ModelRepository(RepositoryOptions options, BackendManager& backends);
  ~ModelRepository();
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  ModelControlMode control_mode() const noexcept { return options_.control_mode; }

  // Startup: every model in 'none' mode; in 'explicit' mode the --load-model names ("*" = all).
  void load_startup_models(const std::vector<std::string>& explicit_names);

  // RepositoryModelLoad / RepositoryModelUnload (explicit mode only). Throw ApiError.
  void load_model(const std::string& name);
  void unload_model(const std::string& name);
  // Shutdown: unloads everything; false if some model still had requests in flight at 'deadline'.
  bool unload_all(std::chrono::steady_clock::time_point deadline);

  // A ready version, by Triton's rules (-1 = the highest ready version). Throws ApiError with
  // Triton's messages ("Request for unknown model: 'x' is not found", ...).
  std::shared_ptr<ModelVersion> get_model(const std::string& name, int64_t version) const;
  bool is_model_ready(const std::string& name, int64_t version) const;
  // Ready versions of one model (name) or of all models (empty name).
  std::vector<std::shared_ptr<ModelVersion>> ready_models(const std::string& name) const;
  std::vector<std::string> ready_versions(const std::string& name) const;
  std::vector<ModelIndexEntry> index(bool ready_only) const;
  // ServerReady: with strict readiness every loaded (or failed) model must be READY.
  bool all_models_ready() const;

 private:
  enum class VersionState { kLoading, kReady, kUnloading, kUnavailable };
  struct VersionRecord {
    VersionState state = VersionState::kUnavailable;
    std::string reason;
    std::shared_ptr<ModelVersion> model;
  };
  struct ModelRecord {
    std::string failure;  // a failure before any version could be loaded (e.g. config parse)
    std::map<int64_t, VersionRecord> versions;
  };

  void load_locked(const std::string& name);
  void unload_locked(const std::string& name,
                     std::optional<std::chrono::steady_clock::time_point> deadline,
                     bool* all_drained);
  std::filesystem::path find_backend_library(const inference::ModelConfig& config,
                                             const std::filesystem::path& model_dir,
                                             const std::vector<int64_t>& versions) const;
  void set_version_state(const std::string& name, int64_t version, VersionState state,
                         std::string reason, std::shared_ptr<ModelVersion> model);
  static const char* state_name(VersionState state) noexcept;

  RepositoryOptions options_;
  BackendManager& backends_;
  std::mutex load_mutex_;            // serializes load / unload
  mutable std::mutex state_mutex_;   // guards models_
  std::map<std::string, ModelRecord> models_;
};

}  // namespace llm_server
