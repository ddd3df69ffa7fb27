#include "grpc_service.h"

#include <deque>

#include "api_error.h"
#include "datatypes.h"
#include "logging.h"
#include "request.h"
#include "request_builder.h"
#include "utf8.h"

namespace llm_server {
namespace {

using StreamResponse = inference::ModelStreamInferResponse;

// tritonserver's GrpcStatusUtil::CodeToStatus.
grpc::StatusCode to_grpc_code(TRITONSERVER_Error_Code code) {
  switch (code) {
    case TRITONSERVER_ERROR_UNKNOWN: return grpc::StatusCode::UNKNOWN;
    case TRITONSERVER_ERROR_INTERNAL: return grpc::StatusCode::INTERNAL;
    case TRITONSERVER_ERROR_NOT_FOUND: return grpc::StatusCode::NOT_FOUND;
    case TRITONSERVER_ERROR_INVALID_ARG: return grpc::StatusCode::INVALID_ARGUMENT;
    case TRITONSERVER_ERROR_UNAVAILABLE: return grpc::StatusCode::UNAVAILABLE;
    case TRITONSERVER_ERROR_UNSUPPORTED: return grpc::StatusCode::UNIMPLEMENTED;
    case TRITONSERVER_ERROR_ALREADY_EXISTS: return grpc::StatusCode::ALREADY_EXISTS;
    case TRITONSERVER_ERROR_CANCELLED: return grpc::StatusCode::CANCELLED;
  }
  return grpc::StatusCode::UNKNOWN;
}

// The status for the exception being handled. Call only from a catch block.
grpc::Status current_exception_status() {
  try {
    throw;
  } catch (const ApiError& e) {
    return grpc::Status(to_grpc_code(e.code()), valid_utf8(e.what()));
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, valid_utf8(e.what()));
  } catch (...) {
    return grpc::Status(grpc::StatusCode::UNKNOWN, "unknown exception");
  }
}

// Runs a quick RPC body on the callback thread and finishes the call with its outcome.
template <typename Body>
grpc::ServerUnaryReactor* respond(grpc::CallbackServerContext* context, Body&& body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status = grpc::Status::OK;
  try {
    body();
  } catch (...) {
    status = current_exception_status();
  }
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* finished(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// A ModelStreamInfer call refused before it reads anything (--grpc-restricted-protocol).
class RefusedStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* unimplemented(grpc::CallbackServerContext* context, const char* rpc,
                                        const char* hint) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                               std::string("llm-server does not implement ") + rpc + ": " + hint));
  return reactor;
}

void set_parameter(google::protobuf::Map<std::string, inference::InferParameter>& map,
                   const TRITONSERVER_Parameter& parameter) {
  inference::InferParameter& value = map[parameter.name];
  switch (parameter.type) {
    case TRITONSERVER_PARAMETER_STRING: value.set_string_param(parameter.string_value); break;
    case TRITONSERVER_PARAMETER_INT: value.set_int64_param(parameter.int_value); break;
    case TRITONSERVER_PARAMETER_BOOL: value.set_bool_param(parameter.bool_value); break;
    case TRITONSERVER_PARAMETER_DOUBLE: value.set_double_param(parameter.double_value); break;
    case TRITONSERVER_PARAMETER_BYTES:
      value.set_string_param(std::string(static_cast<const char*>(parameter.bytes_value),
                                         parameter.bytes_size));
      break;
  }
}

// A result's response, as tritonserver writes it: outputs in raw_output_contents.
void fill_infer_response(InferResult& result, inference::ModelInferResponse& response) {
  response.set_model_name(result.model_name);
  response.set_model_version(result.model_version);
  response.set_id(result.request_id);
  for (const TRITONSERVER_Parameter& parameter : result.parameters) {
    set_parameter(*response.mutable_parameters(), parameter);
  }
  for (OutputTensor& output : result.outputs) {
    auto* tensor = response.add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(datatype_name(output.datatype));
    for (int64_t d : output.shape) {
      tensor->add_shape(d);
    }
    response.add_raw_output_contents(std::move(output.data));
  }
}

// ---------------------------------------------------------------------------------------------
// ModelInfer: one request, one response.

class UnaryInferCall final : public ResponseSink {
 public:
  // `response`: where the serialized answer goes (gRPC's buffer, alive until Finish).
  UnaryInferCall(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* response)
      : reactor_(reactor), response_(response), cancellation_(std::make_shared<CancellationFlag>()) {}

  const std::shared_ptr<CancellationFlag>& cancellation() const { return cancellation_; }

  void deliver(InferResult result) override {
    grpc::ServerUnaryReactor* reactor = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (finished_) {
        return;
      }
      finished_ = true;
      reactor = reactor_;
    }
    // Until Finish, gRPC keeps 'response_' and the reactor alive; only this thread finishes.
    grpc::Status status = grpc::Status::OK;
    if (result.error) {
      status = grpc::Status(to_grpc_code(result.error->code), valid_utf8(result.error->message));
    } else if (!result.has_response) {
      status = grpc::Status(grpc::StatusCode::INTERNAL, "the model sent no response");
    } else {
      inference::ModelInferResponse response;
      fill_infer_response(result, response);
      bool own_buffer = false;
      status = grpc::SerializationTraits<inference::ModelInferResponse>::Serialize(response, response_, &own_buffer);
    }
    reactor->Finish(status);
  }

  void finish_with(const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (finished_) {
        return;
      }
      finished_ = true;
      reactor = reactor_;
    }
    reactor->Finish(status);
  }

  void cancel() {
    cancellation_->cancel();
    finish_with(grpc::Status(grpc::StatusCode::CANCELLED, "request cancelled"));
  }

 private:
  std::mutex mutex_;
  bool finished_ = false;
  grpc::ServerUnaryReactor* reactor_;
  grpc::ByteBuffer* response_;
  std::shared_ptr<CancellationFlag> cancellation_;
};

class UnaryInferReactor final : public grpc::ServerUnaryReactor {
 public:
  UnaryInferReactor(grpc::ByteBuffer* response, InflightCounter& active_calls)
      : active_(active_calls.acquire()), call_(std::make_shared<UnaryInferCall>(this, response)) {}
  const std::shared_ptr<UnaryInferCall>& call() const { return call_; }

  void OnCancel() override {
    auto call = call_;
    call->cancel();
  }
  void OnDone() override { delete this; }

 private:
  InflightCounter::Token active_;  // counts the call as running until gRPC is done with it
  std::shared_ptr<UnaryInferCall> call_;
};

// ---------------------------------------------------------------------------------------------
// ModelStreamInfer: many requests in flight on one stream, responses matched by request id.

class StreamReactor;

class StreamInferCall final : public ResponseSink,
                              public std::enable_shared_from_this<StreamInferCall> {
 public:
  // status_errors: the client opened the stream with the header 'triton_grpc_error: true'
  // (tritonserver 24.08+): the first error ends the stream with its gRPC status, after the
  // responses already queued, and cancels the stream's other requests, instead of an in-band
  // error_message.
  StreamInferCall(ModelRepository& repository, const InferenceService& service, bool status_errors)
      : repository_(repository),
        service_(service),
        cancellation_(std::make_shared<CancellationFlag>()),
        status_errors_(status_errors) {}

  void start(grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse>* reactor) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reactor_ = reactor;
    }
    reactor->StartRead(&incoming_);
  }

  void deliver(InferResult result) override {
    if (result.error && status_errors_) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (result.final) --requests_in_flight_;
      }
      fail(grpc::Status(to_grpc_code(result.error->code), valid_utf8(result.error->message)));
      return;
    }
    const bool write = result.has_response || (result.final && result.send_empty_final);
    std::unique_ptr<StreamResponse> message;
    if (write) {
      message = std::make_unique<StreamResponse>();
      auto& response = *message->mutable_infer_response();
      if (result.error) {
        message->set_error_message(valid_utf8(result.error->message));
        response.set_id(result.request_id);
        response.set_model_name(result.model_name);
        response.set_model_version(result.model_version);
      } else {
        fill_infer_response(result, response);
      }
      (*response.mutable_parameters())["triton_final_response"].set_bool_param(result.final);
    }
    bool overflowed = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (result.final) {
        --requests_in_flight_;
      }
      if (message && !cancelled_ && !finish_started_ && !failure_) {
        pending_bytes_ += message->ByteSizeLong();
        writes_.push_back(std::move(message));
        if (pending_bytes_ > service_.max_pending_response_bytes() && writes_.size() > 1) {
          // The client does not read (one message alone, however large, may always wait): drop what
          // waits, but the write in progress, and end the stream.
          overflowed = true;
          overflow_bytes_ = pending_bytes_;
          cancelled_ = true;
          while (writes_.size() > (write_in_flight_ ? 1u : 0u)) writes_.pop_back();
          pending_bytes_ = writes_.empty() ? 0 : writes_.front()->ByteSizeLong();
        }
      }
    }
    if (overflowed) cancellation_->cancel();
    pump();
  }

  void on_read_done(bool ok) {
    if (!ok) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        reads_done_ = true;
      }
      pump();
      return;
    }
    inference::ModelInferRequest request;
    request.Swap(&incoming_);
    process(request);

    grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse>* reactor = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!finish_started_ && !cancelled_ && !failure_ && reactor_ != nullptr) {
        starting_read_ = true;  // keeps pump() from finishing until StartRead has been issued
        reactor = reactor_;
      }
    }
    if (reactor != nullptr) {
      reactor->StartRead(&incoming_);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        starting_read_ = false;
      }
      pump();
    }
  }

  void on_write_done(bool ok) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      write_in_flight_ = false;
      if (!writes_.empty()) {
        pending_bytes_ -= writes_.front()->ByteSizeLong();
        writes_.pop_front();
      }
      if (!ok) {
        cancelled_ = true;  // the stream is broken: nothing more can reach the client
      }
    }
    if (!ok) {
      cancellation_->cancel();
    }
    pump();
  }

  void on_cancel() {
    cancellation_->cancel();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_ = true;
    }
    pump();
  }

  void on_done() {
    std::lock_guard<std::mutex> lock(mutex_);
    reactor_ = nullptr;
  }

 private:
  // Decides the next gRPC operation under the lock and issues it outside the lock, since gRPC
  // may run a reaction inline from StartWrite / Finish.
  void pump() {
    grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse>* reactor = nullptr;
    const StreamResponse* message = nullptr;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (reactor_ == nullptr || finish_started_ || write_in_flight_ || starting_read_) {
        return;
      }
      reactor = reactor_;
      if (!cancelled_ && !writes_.empty()) {
        write_in_flight_ = true;
        message = writes_.front().get();
      } else if (failure_ && (cancelled_ || writes_.empty())) {
        finish_started_ = true;  // the queued responses went out first (unless the stream broke)
        status = *failure_;
      } else if (cancelled_) {
        finish_started_ = true;
        status = overflow_bytes_ > 0
                     ? grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                    "the stream was cancelled: " + std::to_string(overflow_bytes_) +
                                        " bytes of responses were waiting for the client to read them, more than "
                                        "llm-server's --grpc-max-pending-response-bytes (" +
                                        std::to_string(service_.max_pending_response_bytes()) + ")")
                     : grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      } else if (reads_done_ && requests_in_flight_ == 0) {
        finish_started_ = true;
        status = grpc::Status::OK;
      } else {
        return;
      }
    }
    if (message != nullptr) {
      reactor->StartWrite(message);
    } else {
      reactor->Finish(status);
    }
  }

  void process(inference::ModelInferRequest& request) {
    try {
      if (service_.shutting_down()) {
        throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "llm-server is shutting down");
      }
      const int64_t version = parse_model_version(request.model_version());
      std::shared_ptr<ModelVersion> model = repository_.get_model(request.model_name(), version);
      RequestTarget target{model, shared_from_this(), cancellation_};
      std::unique_ptr<InferenceRequest> inference = build_inference_request(request, target);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_in_flight_;
      }
      model->submit(std::move(inference));  // from here on, results come through deliver()
    } catch (...) {
      const grpc::Status status = current_exception_status();
      if (status_errors_) return fail(status);
      auto message = std::make_unique<StreamResponse>();
      message->set_error_message(status.error_message());
      message->mutable_infer_response()->set_id(request.id());
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!cancelled_ && !finish_started_) {
          pending_bytes_ += message->ByteSizeLong();
          writes_.push_back(std::move(message));
        }
      }
      pump();
    }
  }

  // Ends the stream with `status` once the queued responses are written (status_errors_ mode);
  // the first failure wins, and the stream's other requests are cancelled.
  void fail(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_) failure_ = std::move(status);
    }
    cancellation_->cancel();
    pump();
  }

  ModelRepository& repository_;
  const InferenceService& service_;
  std::shared_ptr<CancellationFlag> cancellation_;
  const bool status_errors_;
  inference::ModelInferRequest incoming_;  // only touched by the read in progress

  std::mutex mutex_;
  grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse>* reactor_ = nullptr;
  std::deque<std::unique_ptr<StreamResponse>> writes_;  // front is being written when in flight
  size_t pending_bytes_ = 0;                             // serialized size of writes_
  size_t overflow_bytes_ = 0;                            // pending_bytes_ when the bound cancelled the stream
  bool write_in_flight_ = false;
  bool starting_read_ = false;
  bool reads_done_ = false;
  bool cancelled_ = false;
  bool finish_started_ = false;
  std::optional<grpc::Status> failure_;  // status_errors_: the status the stream ends with
  int64_t requests_in_flight_ = 0;
};

// The reactor object gRPC drives; it lives until OnDone, the call state as long as any request
// of the stream can still deliver to it.
class StreamReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse> {
 public:
  StreamReactor(InferenceService& service, bool status_errors)
      : active_(service.active_calls().acquire()),
        call_(std::make_shared<StreamInferCall>(service.repository(), service, status_errors)) {
    call_->start(this);
  }
  void OnReadDone(bool ok) override { call_->on_read_done(ok); }
  void OnWriteDone(bool ok) override { call_->on_write_done(ok); }
  void OnCancel() override { call_->on_cancel(); }
  void OnDone() override {
    call_->on_done();
    delete this;
  }

 private:
  InflightCounter::Token active_;  // counts the stream as running until gRPC is done with it
  std::shared_ptr<StreamInferCall> call_;
};

}  // namespace

// -----------------------------------------------------------------------------------------------
// Answers shared by the gRPC and HTTP endpoints

namespace {

void fill_statistics(ModelVersion& model, inference::ModelStatistics& out) {
  const StatisticsSnapshot stats = model.statistics().snapshot();
  auto copy = [](const DurationStat& from, inference::StatisticDuration* to) {
    to->set_count(from.count);
    to->set_ns(from.ns);
  };
  out.set_name(model.name());
  out.set_version(model.version_string());
  out.set_last_inference(stats.last_inference_ms);
  out.set_inference_count(stats.inference_count);
  out.set_execution_count(stats.execution_count);
  auto* inference = out.mutable_inference_stats();
  copy(stats.inference.success, inference->mutable_success());
  copy(stats.inference.fail, inference->mutable_fail());
  copy(stats.inference.queue, inference->mutable_queue());
  copy(stats.inference.compute_input, inference->mutable_compute_input());
  copy(stats.inference.compute_infer, inference->mutable_compute_infer());
  copy(stats.inference.compute_output, inference->mutable_compute_output());
  inference->mutable_cache_hit();
  inference->mutable_cache_miss();
  for (const auto& [batch_size, batch] : stats.batches) {
    auto* entry = out.add_batch_stats();
    entry->set_batch_size(batch_size);
    copy(batch.compute_input, entry->mutable_compute_input());
    copy(batch.compute_infer, entry->mutable_compute_infer());
    copy(batch.compute_output, entry->mutable_compute_output());
  }
  for (const MemoryUsage& usage : model.memory_usage()) {
    auto* entry = out.add_memory_usage();
    entry->set_type(TRITONSERVER_MemoryTypeString(usage.type));
    entry->set_id(usage.type_id);
    entry->set_byte_size(usage.byte_size);
  }
  for (const auto& [index, response] : stats.responses) {
    inference::InferResponseStatistics& entry = (*out.mutable_response_stats())[std::to_string(index)];
    copy(response.compute_infer, entry.mutable_compute_infer());
    copy(response.compute_output, entry.mutable_compute_output());
    copy(response.success, entry.mutable_success());
    copy(response.fail, entry.mutable_fail());
    copy(response.empty_response, entry.mutable_empty_response());
    copy(response.cancel, entry.mutable_cancel());
  }
}

void add_tensor_metadata(const std::string& name, inference::DataType type,
                         const google::protobuf::RepeatedField<int64_t>& dims, bool batching,
                         inference::ModelMetadataResponse::TensorMetadata* out) {
  out->set_name(name);
  out->set_datatype(config_datatype_name(type));
  if (batching) {
    out->add_shape(-1);
  }
  for (int64_t d : dims) {
    out->add_shape(d);
  }
}

}  // namespace

void fill_server_metadata(const ServerIdentity& identity, inference::ServerMetadataResponse& response) {
  response.set_name(identity.name);
  response.set_version(identity.version);
  for (const std::string& extension : identity.extensions) {
    response.add_extensions(extension);
  }
}

void fill_model_metadata(ModelRepository& repository, const std::string& name, const std::string& version,
                         inference::ModelMetadataResponse& response) {
  std::shared_ptr<ModelVersion> model = repository.get_model(name, parse_model_version(version));
  const inference::ModelConfig& config = model->config();
  response.set_name(model->name());
  for (const std::string& v : repository.ready_versions(model->name())) {
    response.add_versions(v);
  }
  response.set_platform(config.platform().empty() ? config.backend() : config.platform());
  const bool batching = config.max_batch_size() > 0;
  for (const auto& input : config.input()) {
    add_tensor_metadata(input.name(), input.data_type(), input.dims(), batching, response.add_inputs());
  }
  for (const auto& output : config.output()) {
    add_tensor_metadata(output.name(), output.data_type(), output.dims(), batching, response.add_outputs());
  }
}

void fill_model_statistics(ModelRepository& repository, const std::string& name, const std::string& version_text,
                           inference::ModelStatisticsResponse& response) {
  const int64_t version = parse_model_version(version_text);
  std::vector<std::shared_ptr<ModelVersion>> models;
  if (name.empty()) {
    models = repository.ready_models("");
  } else if (version == -1) {
    models = repository.ready_models(name);
    if (models.empty()) {
      repository.get_model(name, -1);  // throws Triton's error
    }
  } else {
    models.push_back(repository.get_model(name, version));
  }
  for (const auto& model : models) {
    fill_statistics(*model, *response.add_model_stats());
  }
}

void fill_repository_index(const ModelRepository& repository, bool ready_only, inference::RepositoryIndexResponse& response) {
  for (const ModelIndexEntry& entry : repository.index(ready_only)) {
    auto* model = response.add_models();
    // A folder's name and a backend's message are bytes from elsewhere; the listing must parse.
    model->set_name(valid_utf8(entry.name));
    model->set_version(entry.version);
    model->set_state(entry.state);
    model->set_reason(valid_utf8(entry.reason));
  }
}

// -----------------------------------------------------------------------------------------------
// InferenceService

InferenceService::InferenceService(ModelRepository& repository, ServerIdentity identity,
                                   size_t max_pending_response_bytes, RestrictedApis restricted)
    : repository_(repository),
      identity_(std::move(identity)),
      max_pending_response_bytes_(max_pending_response_bytes),
      restricted_(std::move(restricted)) {}

std::optional<grpc::Status> InferenceService::refusal(Context* context, ApiCategory category) const {
  const std::optional<ApiRestriction>& restriction = restricted_.restriction(category);
  if (!restriction) return std::nullopt;
  const auto [first, last] = context->client_metadata().equal_range(restriction->header);
  for (auto it = first; it != last; ++it) {
    if (std::string_view(it->second.data(), it->second.size()) == restriction->value) return std::nullopt;
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, restricted_message("protocol", *restriction));
}

InferenceService::~InferenceService() {
  std::lock_guard<std::mutex> lock(background_mutex_);
  for (auto& thread : background_) {
    if (thread.joinable()) {
      thread.join();
    }
  }
}

void InferenceService::run_in_background(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(background_mutex_);
  background_.emplace_back(std::move(task));
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(Context* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kHealth)) return finished(context, *refused);
  return respond(context, [&] { response->set_live(true); });
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(Context* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kHealth)) return finished(context, *refused);
  return respond(context, [&] {
    response->set_ready(!shutting_down_.load() && repository_.all_models_ready());
  });
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(Context* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kHealth)) return finished(context, *refused);
  return respond(context, [&] {
    const int64_t version = parse_model_version(request->version());
    response->set_ready(repository_.is_model_ready(request->name(), version));
  });
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    Context* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kMetadata)) return finished(context, *refused);
  return respond(context, [&] { fill_server_metadata(identity_, *response); });
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    Context* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kMetadata)) return finished(context, *refused);
  return respond(context, [&] { fill_model_metadata(repository_, request->name(), request->version(), *response); });
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(Context* context, const grpc::ByteBuffer* request_bytes,
                                                       grpc::ByteBuffer* response) {
  if (auto refused = refusal(context, ApiCategory::kInference)) return finished(context, *refused);
  // Deserialize consumes its buffer; the copy shares gRPC's slices. The parsed request is ours, so
  // the builder may move tensor data out of it.
  grpc::ByteBuffer bytes(*request_bytes);
  inference::ModelInferRequest request;
  if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&bytes, &request).ok()) {
    return finished(context, grpc::Status(grpc::StatusCode::INTERNAL, "Unable to parse request"));
  }
  auto* reactor = new UnaryInferReactor(response, active_calls_);
  std::shared_ptr<UnaryInferCall> call = reactor->call();
  try {
    if (shutting_down_.load()) {
      throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "llm-server is shutting down");
    }
    const int64_t version = parse_model_version(request.model_version());
    std::shared_ptr<ModelVersion> model = repository_.get_model(request.model_name(), version);
    if (model->decoupled()) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                     "ModelInfer RPC doesn't support models with decoupled transaction policy");
    }
    std::unique_ptr<InferenceRequest> inference =
        build_inference_request(request, RequestTarget{model, call, call->cancellation()});
    if (context->IsCancelled()) {
      call->cancellation()->cancel();
    }
    model->submit(std::move(inference));
  } catch (...) {
    call->finish_with(current_exception_status());
  }
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(Context* context) {
  if (auto refused = refusal(context, ApiCategory::kInference)) return new RefusedStream(*refused);
  const auto flag = context->client_metadata().find("triton_grpc_error");
  const bool status_errors = flag != context->client_metadata().end() &&
                             std::string_view(flag->second.data(), flag->second.size()) == "true";
  return new StreamReactor(*this, status_errors);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(Context* context,
                                                        const inference::ModelConfigRequest* request,
                                                        inference::ModelConfigResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kModelConfig)) return finished(context, *refused);
  return respond(context, [&] {
    const int64_t version = parse_model_version(request->version());
    *response->mutable_config() = repository_.get_model(request->name(), version)->config();
  });
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    Context* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kStatistics)) return finished(context, *refused);
  return respond(context, [&] { fill_model_statistics(repository_, request->name(), request->version(), *response); });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    Context* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (auto refused = refusal(context, ApiCategory::kModelRepository)) return finished(context, *refused);
  return respond(context, [&] { fill_repository_index(repository_, request->ready(), *response); });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    Context* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (auto refused = refusal(context, ApiCategory::kModelRepository)) return finished(context, *refused);
  if (!request->parameters().empty()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "Unrecognized load parameter '" +
                                     request->parameters().begin()->first +
                                     "': llm-server loads models from the repository only"));
    return reactor;
  }
  const std::string name = request->model_name();
  return repository_action(context, [this, name] { repository_.load_model(name); });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    Context* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (auto refused = refusal(context, ApiCategory::kModelRepository)) return finished(context, *refused);
  const std::string name = request->model_name();
  return repository_action(context, [this, name] { repository_.unload_model(name); });
}

grpc::ServerUnaryReactor* InferenceService::repository_action(Context* context, std::function<void()> action) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (shutting_down_.load()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "llm-server is shutting down"));
    return reactor;
  }
  auto active = std::make_shared<InflightCounter::Token>(active_calls_.acquire());
  run_in_background([reactor, action = std::move(action), active] {
    grpc::Status status = grpc::Status::OK;
    try {
      action();
    } catch (...) {
      status = current_exception_status();
    }
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    Context* context, const inference::SystemSharedMemoryStatusRequest*,
    inference::SystemSharedMemoryStatusResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "SystemSharedMemoryStatus",
                       "shared memory is not supported; send tensors in the request");
}
grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    Context* context, const inference::SystemSharedMemoryRegisterRequest*,
    inference::SystemSharedMemoryRegisterResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "SystemSharedMemoryRegister",
                       "shared memory is not supported; send tensors in the request");
}
grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    Context* context, const inference::SystemSharedMemoryUnregisterRequest*,
    inference::SystemSharedMemoryUnregisterResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "SystemSharedMemoryUnregister",
                       "shared memory is not supported; send tensors in the request");
}
grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryStatus(
    Context* context, const inference::CudaSharedMemoryStatusRequest*,
    inference::CudaSharedMemoryStatusResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "CudaSharedMemoryStatus", "there is no GPU support");
}
grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryRegister(
    Context* context, const inference::CudaSharedMemoryRegisterRequest*,
    inference::CudaSharedMemoryRegisterResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "CudaSharedMemoryRegister", "there is no GPU support");
}
grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryUnregister(
    Context* context, const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  if (auto refused = refusal(context, ApiCategory::kSharedMemory)) return finished(context, *refused);
  return unimplemented(context, "CudaSharedMemoryUnregister", "there is no GPU support");
}
grpc::ServerUnaryReactor* InferenceService::TraceSetting(Context* context,
                                                         const inference::TraceSettingRequest*,
                                                         inference::TraceSettingResponse*) {
  if (auto refused = refusal(context, ApiCategory::kTrace)) return finished(context, *refused);
  return unimplemented(context, "TraceSetting", "tracing is not supported");
}
grpc::ServerUnaryReactor* InferenceService::LogSettings(Context* context,
                                                        const inference::LogSettingsRequest*,
                                                        inference::LogSettingsResponse*) {
  if (auto refused = refusal(context, ApiCategory::kLogging)) return finished(context, *refused);
  return unimplemented(context, "LogSettings", "set the log level with --log-verbose at startup");
}

// -----------------------------------------------------------------------------------------------
// GrpcServer

GrpcServer::GrpcServer(InferenceService& service, const std::string& address, int port, int max_message_bytes,
                       int max_concurrent_streams, const TlsSettings& tls) {
  const bool ipv6 = address.find(':') != std::string::npos && address.front() != '[';
  const std::string endpoint =
      (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls.enabled) {
    grpc::SslServerCredentialsOptions ssl(tls.mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_root_certs = tls.root_cert;
    ssl.pem_key_cert_pairs.push_back({tls.server_key, tls.server_cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(endpoint, credentials, &port_);
  builder.RegisterService(&service);
  // Received messages are bounded (one message is held whole in memory); sent ones are the models'
  // outputs, as large as they make them.
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_concurrent_streams);
  // A busy port must fail loudly rather than be shared with another server.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE,
                   "failed to listen on " + endpoint +
                       (tls.enabled ? " (with TLS: check that --grpc-server-cert and --grpc-server-key are a "
                                      "certificate and its private key)"
                                    : ""));
  }
}

GrpcServer::~GrpcServer() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now());
  }
}

void GrpcServer::shutdown() {
  if (server_) {
    // An immediate deadline: gRPC cancels the remaining calls (their OnCancel cancels the
    // requests in the backends) and drops idle connections instead of waiting for clients.
    server_->Shutdown(std::chrono::system_clock::now());
  }
}

}  // namespace llm_server
