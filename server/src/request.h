#pragma once
// Inference requests and responses as the backend API sees them.
//
// Object lifetimes:
//  - InferenceRequest (TRITONBACKEND_Request): built by the gRPC layer, owned by the model's queue,
//    then by the backend from a successful TRITONBACKEND_ModelInstanceExecute until
//    TRITONBACKEND_RequestRelease.
//  - ResponseFactory (TRITONBACKEND_ResponseFactory) and Response (TRITONBACKEND_Response): owned by
//    the backend between their *New and *Delete / ResponseSend.
//  - All three share one ResponseRouter, which routes results to the gRPC call (a ResponseSink),
//    enforces one response per request for non-decoupled models, and keeps the model version alive
//    and counted as in flight. When the last of them goes away without a FINAL having been sent,
//    the router completes the request with an error, so a client never waits forever.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "inflight.h"
#include "server_types.h"

namespace llm_server {

class ModelVersion;

struct InputTensor {
  std::string name;
  TRITONSERVER_DataType datatype = TRITONSERVER_TYPE_INVALID;
  std::vector<int64_t> shape;  // as the backend sees it: batch dimension included, reshape applied
  std::string data;            // one contiguous CPU buffer (BYTES: length-prefixed elements)
  TRITONSERVER_BufferAttributes attributes;  // describes 'data'
};

struct RouterSetup {
  std::shared_ptr<ModelVersion> model;
  std::string request_id;
  std::shared_ptr<ResponseSink> sink;
  std::shared_ptr<CancellationFlag> cancellation;
  // Outputs the client named; empty means "all outputs the backend produces".
  std::vector<std::string> client_requested_outputs;
  bool send_empty_final = false;
  uint64_t request_start_ns = 0;  // steady clock, for the first-response histogram
};

class ResponseRouter {
 public:
  explicit ResponseRouter(RouterSetup setup);
  ~ResponseRouter();
  ResponseRouter(const ResponseRouter&) = delete;
  ResponseRouter& operator=(const ResponseRouter&) = delete;

  // A response from the backend (TRITONBACKEND_ResponseSend). Throws ApiError on misuse: anything
  // after FINAL, or a second response for a non-decoupled model.
  void send_response(std::vector<OutputTensor> outputs, std::vector<TRITONSERVER_Parameter> params,
                     std::optional<ResultError> error, uint32_t flags);
  // Flags without a response (TRITONBACKEND_ResponseFactorySendFlags).
  void send_flags(uint32_t flags);
  // Completes the request with an error (server-side failures: execute errors, cancellation before
  // execution, shutdown). Does nothing if the request is already complete.
  void fail(TRITONSERVER_Error_Code code, const std::string& message) noexcept;

  bool is_cancelled() const noexcept;
  ModelVersion& model() const noexcept { return *model_; }
  const std::string& request_id() const noexcept { return request_id_; }
  // "[request id: <id>] ", the prefix Triton puts on request errors.
  std::string log_prefix() const;
  // Index of the next response for TRITONBACKEND_ModelInstanceReportResponseStatistics.
  uint64_t next_statistics_index() noexcept;

 private:
  InferResult make_result(bool has_response, bool final) const;
  void deliver_locked(InferResult result);

  std::shared_ptr<ModelVersion> model_;
  InflightCounter::Token inflight_;
  std::string request_id_;
  std::shared_ptr<ResponseSink> sink_;
  std::shared_ptr<CancellationFlag> cancellation_;
  std::vector<std::string> client_requested_outputs_;
  bool send_empty_final_;
  bool decoupled_;

  std::mutex mutex_;
  bool final_sent_ = false;
  bool first_response_seen_ = false;
  uint64_t request_start_ns_;
  std::optional<InferResult> held_response_;  // non-decoupled: delivered together with FINAL
  std::atomic<uint64_t> statistics_index_{0};
};

class InferenceRequest {
 public:
  explicit InferenceRequest(std::shared_ptr<ResponseRouter> router) : router_(std::move(router)) {}

  ResponseRouter& router() const noexcept { return *router_; }
  const std::shared_ptr<ResponseRouter>& shared_router() const noexcept { return router_; }
  ModelVersion& model() const noexcept { return router_->model(); }
  const InputTensor* find_input(std::string_view name) const noexcept;

  std::string id;
  std::variant<std::monostate, uint64_t, std::string> correlation_id;
  uint32_t flags = 0;  // TRITONSERVER_RequestFlag bits
  uint64_t timeout_microseconds = 0;
  uint64_t priority = 0;
  std::vector<TRITONSERVER_Parameter> parameters;
  std::vector<std::unique_ptr<InputTensor>> inputs;  // stable addresses for TRITONBACKEND_Input*
  std::vector<std::string> requested_outputs;  // as the backend is told: all config outputs if none
  int64_t batch_size = 0;                      // 0 for models that do not batch
  uint64_t request_start_ns = 0;               // steady clock
  uint64_t queue_start_ns = 0;

 private:
  std::shared_ptr<ResponseRouter> router_;
};

class ResponseFactory {
 public:
  explicit ResponseFactory(std::shared_ptr<ResponseRouter> router) : router_(std::move(router)) {}
  ResponseRouter& router() const noexcept { return *router_; }
  const std::shared_ptr<ResponseRouter>& shared_router() const noexcept { return router_; }

 private:
  std::shared_ptr<ResponseRouter> router_;
};

struct ResponseOutput {
  OutputTensor tensor;
  TRITONSERVER_BufferAttributes attributes;
  bool has_buffer = false;
};

class Response {
 public:
  explicit Response(std::shared_ptr<ResponseRouter> router) : router_(std::move(router)) {}

  ResponseOutput& add_output(const char* name, TRITONSERVER_DataType datatype,
                             const int64_t* shape, uint32_t dims_count);
  void set_parameter(TRITONSERVER_Parameter parameter);
  size_t output_count() const noexcept { return outputs_.size(); }
  const ResponseOutput& output(size_t index) const;
  const ResponseOutput* find_output(std::string_view name) const noexcept;
  // Hands the response to the router (the response is spent afterwards, even on error).
  void send(uint32_t flags, const TRITONSERVER_Error* error);

 private:
  std::shared_ptr<ResponseRouter> router_;
  std::vector<std::unique_ptr<ResponseOutput>> outputs_;  // stable addresses for TRITONBACKEND_Output*
  std::vector<TRITONSERVER_Parameter> parameters_;
};

}  // namespace llm_server
