#include "request.h"

#include <algorithm>

#include "api_error.h"
#include "logging.h"
#include "model.h"

namespace llm_server {

// ---------------------------------------------------------------------------------------------
// ResponseRouter

ResponseRouter::ResponseRouter(RouterSetup setup)
    : model_(std::move(setup.model)),
      inflight_(model_->inflight().acquire()),
      request_id_(std::move(setup.request_id)),
      sink_(std::move(setup.sink)),
      cancellation_(std::move(setup.cancellation)),
      client_requested_outputs_(std::move(setup.client_requested_outputs)),
      send_empty_final_(setup.send_empty_final),
      decoupled_(model_->decoupled()),
      request_start_ns_(setup.request_start_ns) {}

ResponseRouter::~ResponseRouter() {
  // The request, its factories and responses are all gone. If nothing completed the request,
  // complete it now so the client is not left waiting.
  std::lock_guard<std::mutex> lock(mutex_);
  if (final_sent_) {
    return;
  }
  final_sent_ = true;
  InferResult result = make_result(true, true);
  if (is_cancelled()) {
    result.error = ResultError{TRITONSERVER_ERROR_CANCELLED, log_prefix() + "request cancelled"};
  } else {
    result.error = ResultError{TRITONSERVER_ERROR_INTERNAL,
                               log_prefix() + "backend '" + model_->config().backend() +
                                   "' released the request for model '" + model_->name() +
                                   "' without sending a final response"};
    log_error(result.error->message);
  }
  try {
    deliver_locked(std::move(result));
  } catch (const std::exception& e) {
    log_error(std::string("failed to deliver a response: ") + e.what());
  }
}

std::string ResponseRouter::log_prefix() const {
  return "[request id: " + (request_id_.empty() ? std::string("<id_unknown>") : request_id_) +
         "] ";
}

bool ResponseRouter::is_cancelled() const noexcept {
  return cancellation_ && cancellation_->is_cancelled();
}

uint64_t ResponseRouter::next_statistics_index() noexcept { return statistics_index_.fetch_add(1); }

InferResult ResponseRouter::make_result(bool has_response, bool final) const {
  InferResult result;
  result.request_id = request_id_;
  result.model_name = model_->name();
  result.model_version = model_->version_string();
  result.has_response = has_response;
  result.final = final;
  result.send_empty_final = send_empty_final_;
  return result;
}

void ResponseRouter::deliver_locked(InferResult result) {
  // Delivered under the router's lock so that one request's results keep their order; sinks never
  // call back into the router.
  sink_->deliver(std::move(result));
}

void ResponseRouter::send_response(std::vector<OutputTensor> outputs,
                                   std::vector<TRITONSERVER_Parameter> params,
                                   std::optional<ResultError> error, uint32_t flags) {
  const bool final = (flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL) != 0;
  InferResult result = make_result(true, final);
  if (error) {
    result.error = std::move(error);
  } else {
    if (!client_requested_outputs_.empty()) {
      std::erase_if(outputs, [this](const OutputTensor& output) {
        return std::find(client_requested_outputs_.begin(), client_requested_outputs_.end(),
                         output.name) == client_requested_outputs_.end();
      });
    }
    result.outputs = std::move(outputs);
  }
  result.parameters = std::move(params);

  std::lock_guard<std::mutex> lock(mutex_);
  if (final_sent_) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   log_prefix() + "a response was sent after the final response of the request");
  }
  if (decoupled_) {
    if (!first_response_seen_) {
      first_response_seen_ = true;
      model_->statistics().record_first_response(request_start_ns_);
    }
    if (final) {
      final_sent_ = true;
    }
    deliver_locked(std::move(result));
    return;
  }
  // Non-decoupled: exactly one response, delivered when FINAL arrives.
  if (held_response_) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   log_prefix() + "model '" + model_->name() +
                       "' is not decoupled and can send only one response per request");
  }
  if (!final) {
    held_response_ = std::move(result);
    return;
  }
  final_sent_ = true;
  deliver_locked(std::move(result));
}

void ResponseRouter::send_flags(uint32_t flags) {
  if ((flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL) == 0) {
    return;  // FINAL is the only flag there is
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (final_sent_) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   log_prefix() + "the final flag was already sent for this request");
  }
  final_sent_ = true;
  if (decoupled_) {
    deliver_locked(make_result(false, true));
    return;
  }
  if (held_response_) {
    InferResult result = std::move(*held_response_);
    held_response_.reset();
    result.final = true;
    deliver_locked(std::move(result));
    return;
  }
  InferResult result = make_result(true, true);
  result.error = ResultError{TRITONSERVER_ERROR_INTERNAL,
                             log_prefix() + "model '" + model_->name() +
                                 "' completed the request without sending a response"};
  deliver_locked(std::move(result));
}

void ResponseRouter::fail(TRITONSERVER_Error_Code code, const std::string& message) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    if (final_sent_) {
      return;
    }
    final_sent_ = true;
    held_response_.reset();
    InferResult result = make_result(true, true);
    result.error = ResultError{code, message};
    deliver_locked(std::move(result));
  } catch (const std::exception& e) {
    log_error(std::string("failed to deliver an error response: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// InferenceRequest, Response

const InputTensor* InferenceRequest::find_input(std::string_view name) const noexcept {
  for (const auto& input : inputs) {
    if (input->name == name) {
      return input.get();
    }
  }
  return nullptr;
}

ResponseOutput& Response::add_output(const char* name, TRITONSERVER_DataType datatype,
                                     const int64_t* shape, uint32_t dims_count) {
  if (name == nullptr) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "output name must not be null");
  }
  if (dims_count > 0 && shape == nullptr) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, "output shape must not be null");
  }
  if (find_output(name) != nullptr) {
    throw ApiError(TRITONSERVER_ERROR_ALREADY_EXISTS,
                   "output '" + std::string(name) + "' already exists in response");
  }
  auto output = std::make_unique<ResponseOutput>();
  output->tensor.name = name;
  output->tensor.datatype = datatype;
  output->tensor.shape.assign(shape, shape + dims_count);
  outputs_.push_back(std::move(output));
  return *outputs_.back();
}

void Response::set_parameter(TRITONSERVER_Parameter parameter) {
  auto same = std::find_if(parameters_.begin(), parameters_.end(),
                           [&](const auto& existing) { return existing.name == parameter.name; });
  if (same != parameters_.end()) {
    *same = std::move(parameter);
  } else {
    parameters_.push_back(std::move(parameter));
  }
}

const ResponseOutput& Response::output(size_t index) const {
  if (index >= outputs_.size()) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   "out of bounds index " + std::to_string(index) + ": response has " +
                       std::to_string(outputs_.size()) + " outputs");
  }
  return *outputs_[index];
}

const ResponseOutput* Response::find_output(std::string_view name) const noexcept {
  for (const auto& output : outputs_) {
    if (output->tensor.name == name) {
      return output.get();
    }
  }
  return nullptr;
}

void Response::send(uint32_t flags, const TRITONSERVER_Error* error) {
  std::optional<ResultError> result_error;
  if (error != nullptr) {
    result_error = ResultError{error->code, error->message};
  }
  std::vector<OutputTensor> tensors;
  tensors.reserve(outputs_.size());
  for (auto& output : outputs_) {
    tensors.push_back(std::move(output->tensor));
  }
  outputs_.clear();
  router_->send_response(std::move(tensors), std::move(parameters_), std::move(result_error), flags);
}

}  // namespace llm_server
