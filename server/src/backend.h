#pragma once
// A Triton backend shared library (libtriton_<name>.so), loaded the way tritonserver loads it:
// dlopen, look up the TRITONBACKEND_* entry points, TRITONBACKEND_Initialize once, then
// TRITONBACKEND_GetBackendAttribute. The object is shared by every model version using the
// library; the last one to unload destroys it, which calls TRITONBACKEND_Finalize and dlcloses.
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model_config.pb.h"
#include "server_types.h"
#include "triton/core/tritonbackend.h"

namespace llm_server {

struct BackendEntryPoints {
  TRITONSERVER_Error* (*initialize)(TRITONBACKEND_Backend*) = nullptr;
  TRITONSERVER_Error* (*finalize)(TRITONBACKEND_Backend*) = nullptr;
  TRITONSERVER_Error* (*model_initialize)(TRITONBACKEND_Model*) = nullptr;
  TRITONSERVER_Error* (*model_finalize)(TRITONBACKEND_Model*) = nullptr;
  TRITONSERVER_Error* (*instance_initialize)(TRITONBACKEND_ModelInstance*) = nullptr;
  TRITONSERVER_Error* (*instance_finalize)(TRITONBACKEND_ModelInstance*) = nullptr;
  TRITONSERVER_Error* (*instance_execute)(TRITONBACKEND_ModelInstance*, TRITONBACKEND_Request**,
                                          const uint32_t) = nullptr;
  TRITONSERVER_Error* (*get_backend_attribute)(TRITONBACKEND_Backend*,
                                               TRITONBACKEND_BackendAttribute*) = nullptr;
};

// What TRITONBACKEND_GetBackendAttribute reports (TRITONBACKEND_BackendAttribute*).
struct BackendAttributes {
  std::vector<inference::ModelInstanceGroup> preferred_groups;
  bool parallel_instance_loading = false;
};

// TRITONBACKEND_MemoryManager: plain CPU memory; this server has no GPU or pinned pools.
class MemoryManager {
 public:
  void* allocate(TRITONSERVER_MemoryType type, int64_t type_id, uint64_t byte_size);
  void deallocate(void* buffer, TRITONSERVER_MemoryType type, int64_t type_id);
};

class Backend {
 public:
  // Throws ApiError when the library cannot be loaded, lacks TRITONBACKEND_ModelInstanceExecute,
  // or its TRITONBACKEND_Initialize / GetBackendAttribute fails (with the backend's own error).
  static std::shared_ptr<Backend> load(const std::string& name,
                                       const std::filesystem::path& library,
                                       std::string config_json);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  const std::string& name() const noexcept { return name_; }
  const std::string& directory() const noexcept { return directory_; }
  const std::filesystem::path& library_path() const noexcept { return library_path_; }
  const BackendEntryPoints& entry_points() const noexcept { return entry_points_; }
  TRITONSERVER_Message* config_message() noexcept { return &config_; }
  MemoryManager& memory_manager() noexcept { return memory_manager_; }
  const BackendAttributes& attributes() const noexcept { return attributes_; }

  void* state() const noexcept { return state_; }
  void set_state(void* state) noexcept { state_ = state; }
  TRITONBACKEND_ExecutionPolicy execution_policy() const noexcept { return execution_policy_; }
  // Triton reads the policy right after TRITONBACKEND_Initialize; later changes are refused.
  void set_execution_policy(TRITONBACKEND_ExecutionPolicy policy);

 private:
  struct LibraryCloser {
    void operator()(void* handle) const noexcept;
  };

  Backend(std::string name, std::filesystem::path library, std::string config_json);

  std::string name_;
  std::filesystem::path library_path_;
  std::string directory_;
  TRITONSERVER_Message config_;
  std::unique_ptr<void, LibraryCloser> library_;
  BackendEntryPoints entry_points_;
  MemoryManager memory_manager_;
  BackendAttributes attributes_;
  void* state_ = nullptr;  // owned by the backend
  TRITONBACKEND_ExecutionPolicy execution_policy_ = TRITONBACKEND_EXECUTION_BLOCKING;
  bool initializing_ = false;
  bool initialized_ = false;
};

// Shares one Backend per library path among the model versions that use it.
class BackendManager {
 public:
  // 'cmdline' holds the settings every backend receives in TRITONBACKEND_BackendConfig;
  // 'per_backend' the --backend-config <name>,<key>=<value> settings.
  BackendManager(std::map<std::string, std::string> cmdline,
                 std::map<std::string, std::map<std::string, std::string>> per_backend);

  std::shared_ptr<Backend> acquire(const std::string& name, const std::filesystem::path& library);

 private:
  std::string config_json_for(const std::string& name) const;

  std::map<std::string, std::string> cmdline_;
  std::map<std::string, std::map<std::string, std::string>> per_backend_;
  std::mutex mutex_;
  std::map<std::filesystem::path, std::weak_ptr<Backend>> backends_;
};

}  // namespace llm_server
