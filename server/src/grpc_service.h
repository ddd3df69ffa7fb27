#pragma once
// inference.GRPCInferenceService (KServe v2 + Triton's extensions), wire-compatible with
// tritonserver, on gRPC's callback API.
//
// Calls and threads: RPC handlers run on gRPC's callback threads and only validate, look up and
// queue; backends answer on instance threads (or their own threads) through ResponseSink, which
// the inference calls implement. Each inference call owns one CancellationFlag: client
// cancellation, a deadline, a dropped connection or the server's shutdown (which cancels what is
// left after the grace period) sets it for all the requests the call carried.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "grpc_service.grpc.pb.h"
#include "inflight.h"
#include "options.h"
#include "repository.h"
#include "restricted_api.h"

namespace llm_server {

struct ServerIdentity {
  std::string name;
  std::string version;
  std::vector<std::string> extensions;
};

// ModelInfer takes its request as bytes and parses it itself: gRPC's callback API would answer an
// unparseable message with UNIMPLEMENTED and no text, where tritonserver (gRPC's async API) says
// INTERNAL "Unable to parse request".
class InferenceService final
    : public inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
          inference::GRPCInferenceService::CallbackService> {
 public:
  // max_pending_response_bytes: responses of one stream waiting for its client to read them; a
  // stream beyond it is cancelled (RESOURCE_EXHAUSTED), so a client that stops reading cannot make
  // the server hold its output without bound.
  // restricted: --grpc-restricted-protocol; a call of a restricted category without its metadata
  // header ends with UNAVAILABLE, as in tritonserver.
  InferenceService(ModelRepository& repository, ServerIdentity identity, size_t max_pending_response_bytes,
                   RestrictedApis restricted);
  ~InferenceService() override;  // joins the repository-control threads

  // Shutdown, step 1: ServerReady turns false and new inference calls, stream requests and model
  // loads are refused (UNAVAILABLE) while the running ones go on.
  void begin_shutdown() noexcept { shutting_down_.store(true); }
  bool shutting_down() const noexcept { return shutting_down_.load(); }
  // Shutdown, step 2: waits until the running calls are done; false if 'deadline' came first.
  bool wait_for_calls(std::chrono::steady_clock::time_point deadline) {
    return active_calls_.wait_for_zero(deadline);
  }
  InflightCounter& active_calls() noexcept { return active_calls_; }

  ModelRepository& repository() noexcept { return repository_; }
  const ServerIdentity& identity() const noexcept { return identity_; }
  size_t max_pending_response_bytes() const noexcept { return max_pending_response_bytes_; }

  using Context = grpc::CallbackServerContext;
  using UnaryReactor = grpc::ServerUnaryReactor;

  UnaryReactor* ServerLive(Context*, const inference::ServerLiveRequest*,
                           inference::ServerLiveResponse*) override;
  UnaryReactor* ServerReady(Context*, const inference::ServerReadyRequest*,
                            inference::ServerReadyResponse*) override;
  UnaryReactor* ModelReady(Context*, const inference::ModelReadyRequest*,
                           inference::ModelReadyResponse*) override;
  UnaryReactor* ServerMetadata(Context*, const inference::ServerMetadataRequest*,
                               inference::ServerMetadataResponse*) override;
  UnaryReactor* ModelMetadata(Context*, const inference::ModelMetadataRequest*,
                              inference::ModelMetadataResponse*) override;
  UnaryReactor* ModelInfer(Context*, const grpc::ByteBuffer*, grpc::ByteBuffer*) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(Context*) override;
  UnaryReactor* ModelConfig(Context*, const inference::ModelConfigRequest*,
                            inference::ModelConfigResponse*) override;
  UnaryReactor* ModelStatistics(Context*, const inference::ModelStatisticsRequest*,
                                inference::ModelStatisticsResponse*) override;
  UnaryReactor* RepositoryIndex(Context*, const inference::RepositoryIndexRequest*,
                                inference::RepositoryIndexResponse*) override;
  UnaryReactor* RepositoryModelLoad(Context*, const inference::RepositoryModelLoadRequest*,
                                    inference::RepositoryModelLoadResponse*) override;
  UnaryReactor* RepositoryModelUnload(Context*, const inference::RepositoryModelUnloadRequest*,
                                      inference::RepositoryModelUnloadResponse*) override;
  UnaryReactor* SystemSharedMemoryStatus(Context*, const inference::SystemSharedMemoryStatusRequest*,
                                         inference::SystemSharedMemoryStatusResponse*) override;
  UnaryReactor* SystemSharedMemoryRegister(Context*,
                                           const inference::SystemSharedMemoryRegisterRequest*,
                                           inference::SystemSharedMemoryRegisterResponse*) override;
  UnaryReactor* SystemSharedMemoryUnregister(
      Context*, const inference::SystemSharedMemoryUnregisterRequest*,
      inference::SystemSharedMemoryUnregisterResponse*) override;
  UnaryReactor* CudaSharedMemoryStatus(Context*, const inference::CudaSharedMemoryStatusRequest*,
                                       inference::CudaSharedMemoryStatusResponse*) override;
  UnaryReactor* CudaSharedMemoryRegister(Context*, const inference::CudaSharedMemoryRegisterRequest*,
                                         inference::CudaSharedMemoryRegisterResponse*) override;
  UnaryReactor* CudaSharedMemoryUnregister(Context*,
                                           const inference::CudaSharedMemoryUnregisterRequest*,
                                           inference::CudaSharedMemoryUnregisterResponse*) override;
  UnaryReactor* TraceSetting(Context*, const inference::TraceSettingRequest*,
                             inference::TraceSettingResponse*) override;
  UnaryReactor* LogSettings(Context*, const inference::LogSettingsRequest*,
                            inference::LogSettingsResponse*) override;

 private:
  // Model loads can take long: they run on their own thread, not on a gRPC callback thread.
  void run_in_background(std::function<void()> task);
  // Runs a model load or unload off the gRPC thread and finishes the call with its outcome.
  UnaryReactor* repository_action(Context* context, std::function<void()> action);
  // The status that refuses a call of `category` without its --grpc-restricted-protocol header.
  std::optional<grpc::Status> refusal(Context* context, ApiCategory category) const;

  ModelRepository& repository_;
  ServerIdentity identity_;
  size_t max_pending_response_bytes_;
  RestrictedApis restricted_;
  std::atomic<bool> shutting_down_{false};
  InflightCounter active_calls_;  // inference calls and model loads/unloads still running
  std::mutex background_mutex_;
  std::vector<std::thread> background_;
};

// Answers shared by the gRPC and HTTP endpoints (HTTP renders the messages as JSON). They throw
// ApiError with Triton's messages; versions are as the protocols carry them ("" = latest).
void fill_server_metadata(const ServerIdentity& identity, inference::ServerMetadataResponse& response);
void fill_model_metadata(ModelRepository& repository, const std::string& name, const std::string& version,
                         inference::ModelMetadataResponse& response);
// name "": every ready model; version "": every ready version of the model.
void fill_model_statistics(ModelRepository& repository, const std::string& name, const std::string& version,
                           inference::ModelStatisticsResponse& response);
void fill_repository_index(const ModelRepository& repository, bool ready_only,
                           inference::RepositoryIndexResponse& response);

// The listening gRPC server around an InferenceService.
class GrpcServer {
 public:
  // Throws ApiError when the address cannot be bound. Port 0 picks a free port.
  // Bounds: max_message_bytes per received message, max_concurrent_streams per connection.
  // With tls.enabled, serves over TLS (and with tls.mutual, only to clients whose certificate
  // tls.root_cert signed).
  GrpcServer(InferenceService& service, const std::string& address, int port, int max_message_bytes,
             int max_concurrent_streams, const TlsSettings& tls);
  ~GrpcServer();
  int port() const noexcept { return port_; }
  // Cancels the calls still running, closes all connections and waits until every call has
  // completed (shutdown, step 3).
  void shutdown();

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace llm_server
