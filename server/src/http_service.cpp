#include "http_service.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <regex>

#include <google/protobuf/descriptor.h>
#include <nlohmann/json.hpp>

#include "api_error.h"
#include "datatypes.h"
#include "model.h"
#include "request.h"
#include "request_builder.h"
#include "utf8.h"

namespace llm_server {
namespace {

using nlohmann::json;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr std::string_view kJson = "application/json";

// tritonserver's HTTP status for an error code.
int http_status(TRITONSERVER_Error_Code code) {
  switch (code) {
    case TRITONSERVER_ERROR_INTERNAL: return 500;
    case TRITONSERVER_ERROR_NOT_FOUND: return 404;
    case TRITONSERVER_ERROR_UNAVAILABLE: return 503;
    case TRITONSERVER_ERROR_UNSUPPORTED: return 501;
    case TRITONSERVER_ERROR_UNKNOWN:
    case TRITONSERVER_ERROR_INVALID_ARG:
    case TRITONSERVER_ERROR_ALREADY_EXISTS:
    case TRITONSERVER_ERROR_CANCELLED: return 400;
  }
  return 400;
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(std::string_view message) { return dump(json{{"error", message}}); }

void respond_json(HttpExchange& exchange, const json& value, int status = 200) {
  exchange.respond(status, kJson, dump(value));
}

ApiError bad_request(const std::string& message) { return ApiError(TRITONSERVER_ERROR_INVALID_ARG, message); }

// ---------------------------------------------------------------------------------------------
// Protobuf messages as Triton's REST protocol writes them: proto field names, 64-bit integers as
// JSON numbers (protobuf's own JSON mapping would quote them), enums by name, every primitive
// field even at its default, unset oneof members and sub-messages left out.

json field_value(const Message& message, const FieldDescriptor& field, int index);

json message_json(const Message& message) {
  json out = json::object();
  const auto* descriptor = message.GetDescriptor();
  const auto* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor& field = *descriptor->field(i);
    if (field.is_map()) {
      json map = json::object();
      const int size = reflection->FieldSize(message, &field);
      for (int k = 0; k < size; ++k) {
        const Message& entry = reflection->GetRepeatedMessage(message, &field, k);
        const FieldDescriptor& key_field = *entry.GetDescriptor()->field(0);
        const FieldDescriptor& value_field = *entry.GetDescriptor()->field(1);
        const json key = field_value(entry, key_field, -1);
        map[key.is_string() ? key.get<std::string>() : key.dump()] = field_value(entry, value_field, -1);
      }
      out[field.name()] = std::move(map);
    } else if (field.is_repeated()) {
      json list = json::array();
      const int size = reflection->FieldSize(message, &field);
      for (int k = 0; k < size; ++k) list.push_back(field_value(message, field, k));
      out[field.name()] = std::move(list);
    } else if ((field.containing_oneof() != nullptr || field.type() == FieldDescriptor::TYPE_MESSAGE) &&
               !reflection->HasField(message, &field)) {
      continue;
    } else {
      out[field.name()] = field_value(message, field, -1);
    }
  }
  return out;
}

// One value of a field: index >= 0 for an element of a repeated field.
json field_value(const Message& message, const FieldDescriptor& field, int index) {
  const auto* reflection = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? reflection->GetRepeatedInt32(message, &field, index) : reflection->GetInt32(message, &field);
    case FieldDescriptor::CPPTYPE_INT64:
      return repeated ? reflection->GetRepeatedInt64(message, &field, index) : reflection->GetInt64(message, &field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? reflection->GetRepeatedUInt32(message, &field, index) : reflection->GetUInt32(message, &field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? reflection->GetRepeatedUInt64(message, &field, index) : reflection->GetUInt64(message, &field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? reflection->GetRepeatedDouble(message, &field, index) : reflection->GetDouble(message, &field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return repeated ? reflection->GetRepeatedFloat(message, &field, index) : reflection->GetFloat(message, &field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return repeated ? reflection->GetRepeatedBool(message, &field, index) : reflection->GetBool(message, &field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return (repeated ? reflection->GetRepeatedEnum(message, &field, index) : reflection->GetEnum(message, &field))->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return valid_utf8(repeated ? reflection->GetRepeatedString(message, &field, index)
                                 : reflection->GetString(message, &field));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return message_json(repeated ? reflection->GetRepeatedMessage(message, &field, index)
                                   : reflection->GetMessage(message, &field));
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Tensors between JSON and the protocol's bytes

template <class T>
void append_value(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <class T>
void append_integer(std::string& out, const json& value, const std::string& where) {
  if (!value.is_number_integer()) {
    throw bad_request(where + ": expected an integer, got " + dump(value));
  }
  const bool fits = value.is_number_unsigned()
                        ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                        : value.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                              (value.get<int64_t>() < 0 ||
                               static_cast<uint64_t>(value.get<int64_t>()) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
  if (!fits) throw bad_request(where + ": " + dump(value) + " is out of range for the tensor's datatype");
  append_value<T>(out, value.is_number_unsigned() ? static_cast<T>(value.get<uint64_t>()) : static_cast<T>(value.get<int64_t>()));
}

// Appends one JSON element in the protocol's byte layout (BYTES: 4-byte little-endian length, then
// the bytes). `where` names the input for errors.
void append_element(std::string& out, const json& value, TRITONSERVER_DataType type, const std::string& where) {
  switch (type) {
    case TRITONSERVER_TYPE_BOOL:
      if (!value.is_boolean()) throw bad_request(where + ": expected true or false, got " + dump(value));
      out.push_back(value.get<bool>() ? 1 : 0);
      return;
    case TRITONSERVER_TYPE_INT8: return append_integer<int8_t>(out, value, where);
    case TRITONSERVER_TYPE_INT16: return append_integer<int16_t>(out, value, where);
    case TRITONSERVER_TYPE_INT32: return append_integer<int32_t>(out, value, where);
    case TRITONSERVER_TYPE_INT64: return append_integer<int64_t>(out, value, where);
    case TRITONSERVER_TYPE_UINT8: return append_integer<uint8_t>(out, value, where);
    case TRITONSERVER_TYPE_UINT16: return append_integer<uint16_t>(out, value, where);
    case TRITONSERVER_TYPE_UINT32: return append_integer<uint32_t>(out, value, where);
    case TRITONSERVER_TYPE_UINT64: return append_integer<uint64_t>(out, value, where);
    case TRITONSERVER_TYPE_FP32:
    case TRITONSERVER_TYPE_FP64:
      if (!value.is_number()) throw bad_request(where + ": expected a number, got " + dump(value));
      if (type == TRITONSERVER_TYPE_FP32) {
        append_value<float>(out, value.get<float>());
      } else {
        append_value<double>(out, value.get<double>());
      }
      return;
    case TRITONSERVER_TYPE_BYTES: {
      if (!value.is_string()) throw bad_request(where + ": expected a string, got " + dump(value));
      const auto& text = value.get_ref<const std::string&>();
      append_value<uint32_t>(out, static_cast<uint32_t>(text.size()));
      out += text;
      return;
    }
    default:
      throw bad_request(std::string("receiving ") + datatype_name(type) + " data via JSON is not supported; send " +
                        where + " as binary tensor data");
  }
}

// Flattens (possibly nested) JSON arrays into bytes; returns the element count.
size_t append_elements(std::string& out, const json& data, TRITONSERVER_DataType type, const std::string& where) {
  if (!data.is_array()) {
    append_element(out, data, type, where);
    return 1;
  }
  size_t count = 0;
  for (const json& item : data) count += append_elements(out, item, type, where);
  return count;
}

// The elements of an output as JSON values.
json output_elements(const OutputTensor& tensor) {
  json values = json::array();
  const std::string& data = tensor.data;
  const auto each = [&]<class T>(auto convert) {
    for (size_t at = 0; at + sizeof(T) <= data.size(); at += sizeof(T)) {
      T value;
      std::memcpy(&value, data.data() + at, sizeof(T));
      values.push_back(convert(value));
    }
  };
  const auto same = [](auto value) { return value; };
  switch (tensor.datatype) {
    case TRITONSERVER_TYPE_BOOL: each.template operator()<uint8_t>([](uint8_t v) { return v != 0; }); break;
    case TRITONSERVER_TYPE_INT8: each.template operator()<int8_t>(same); break;
    case TRITONSERVER_TYPE_INT16: each.template operator()<int16_t>(same); break;
    case TRITONSERVER_TYPE_INT32: each.template operator()<int32_t>(same); break;
    case TRITONSERVER_TYPE_INT64: each.template operator()<int64_t>(same); break;
    case TRITONSERVER_TYPE_UINT8: each.template operator()<uint8_t>(same); break;
    case TRITONSERVER_TYPE_UINT16: each.template operator()<uint16_t>(same); break;
    case TRITONSERVER_TYPE_UINT32: each.template operator()<uint32_t>(same); break;
    case TRITONSERVER_TYPE_UINT64: each.template operator()<uint64_t>(same); break;
    case TRITONSERVER_TYPE_FP32: each.template operator()<float>(same); break;
    case TRITONSERVER_TYPE_FP64: each.template operator()<double>(same); break;
    case TRITONSERVER_TYPE_FP16:
    case TRITONSERVER_TYPE_BF16:
      throw bad_request(std::string("sending ") + datatype_name(tensor.datatype) +
                        " data via JSON is not supported; request output '" + tensor.name + "' as binary data");
    case TRITONSERVER_TYPE_BYTES:
      for (size_t at = 0; at + 4 <= data.size();) {
        uint32_t length;
        std::memcpy(&length, data.data() + at, 4);
        at += 4;
        if (length > data.size() - at) break;
        values.push_back(valid_utf8(data.substr(at, length)));
        at += length;
      }
      break;
    default: break;
  }
  return values;
}

json parameter_value(const TRITONSERVER_Parameter& parameter) {
  switch (parameter.type) {
    case TRITONSERVER_PARAMETER_STRING: return valid_utf8(parameter.string_value);
    case TRITONSERVER_PARAMETER_INT: return parameter.int_value;
    case TRITONSERVER_PARAMETER_BOOL: return parameter.bool_value;
    case TRITONSERVER_PARAMETER_DOUBLE: return parameter.double_value;
    case TRITONSERVER_PARAMETER_BYTES:
      return valid_utf8(std::string(static_cast<const char*>(parameter.bytes_value), parameter.bytes_size));
  }
  return nullptr;
}

// A JSON request parameter as the protocol's InferParameter.
void set_parameter(inference::InferParameter& out, const json& value, const std::string& name) {
  if (value.is_boolean()) {
    out.set_bool_param(value.get<bool>());
  } else if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    out.set_uint64_param(value.get<uint64_t>());
  } else if (value.is_number_integer()) {
    out.set_int64_param(value.get<int64_t>());
  } else if (value.is_number()) {
    out.set_double_param(value.get<double>());
  } else if (value.is_string()) {
    out.set_string_param(value.get<std::string>());
  } else {
    throw bad_request("parameter '" + name + "' has invalid type. It should be either 'int', 'bool', or 'string'.");
  }
}

// ---------------------------------------------------------------------------------------------
// Running a request for an HTTP exchange

// Collects a request's results for the connection's thread, which waits on it while watching the
// client. Output bytes waiting for a slow client are bounded, as on the gRPC endpoint.
class ResultQueue final : public ResponseSink {
 public:
  ResultQueue(std::shared_ptr<CancellationFlag> cancellation, size_t max_pending_bytes)
      : cancellation_(std::move(cancellation)), max_pending_bytes_(max_pending_bytes) {}

  void deliver(InferResult result) override {
    size_t bytes = 0;
    for (const OutputTensor& output : result.outputs) bytes += output.data.size();
    bool overflowed = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_bytes_ += bytes;
      if (pending_bytes_ > max_pending_bytes_ && !results_.empty() && !result.final) {
        overflowed = true;
        overflow_bytes_ = pending_bytes_;
      }
      results_.push_back(std::move(result));
    }
    if (overflowed) cancellation_->cancel();
    ready_.notify_one();
  }

  // The next result, or nothing after `wait`.
  std::optional<InferResult> next(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, wait, [this] { return !results_.empty(); })) return std::nullopt;
    InferResult result = std::move(results_.front());
    results_.pop_front();
    for (const OutputTensor& output : result.outputs) pending_bytes_ -= output.data.size();
    return result;
  }

  size_t overflow_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return overflow_bytes_;
  }

 private:
  std::shared_ptr<CancellationFlag> cancellation_;
  size_t max_pending_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<InferResult> results_;
  size_t pending_bytes_ = 0;
  size_t overflow_bytes_ = 0;
};

struct Submitted {
  std::shared_ptr<ResultQueue> results;
  std::shared_ptr<CancellationFlag> cancellation;
};

// Builds and queues the request; results arrive in the returned queue.
Submitted submit(InferenceService& core, const std::shared_ptr<ModelVersion>& model,
                 inference::ModelInferRequest& request) {
  auto cancellation = std::make_shared<CancellationFlag>();
  auto results = std::make_shared<ResultQueue>(cancellation, core.max_pending_response_bytes());
  std::unique_ptr<InferenceRequest> inference = build_inference_request(request, RequestTarget{model, results, cancellation});
  model->submit(std::move(inference));
  return {results, cancellation};
}

// Hands each result to on_result (false: stop) until the final one. A client that goes away
// cancels the request; false is returned then.
template <class OnResult>
bool drain(const Submitted& submitted, HttpExchange& exchange, OnResult&& on_result) {
  while (true) {
    std::optional<InferResult> result = submitted.results->next(std::chrono::milliseconds(50));
    if (exchange.client_gone()) {  // one poll(2) per result or wait: cheap beside a token
      submitted.cancellation->cancel();
      return false;
    }
    if (!result) continue;
    const bool final = result->final;
    if (!on_result(*result)) {
      submitted.cancellation->cancel();
      return false;
    }
    if (final) return true;
  }
}

std::string overflow_message(const Submitted& submitted, size_t limit) {
  return "the request was cancelled: " + std::to_string(submitted.results->overflow_bytes()) +
         " bytes of responses were waiting for the client to read them, more than llm-server's "
         "--grpc-max-pending-response-bytes (" + std::to_string(limit) + ")";
}

// ---------------------------------------------------------------------------------------------
// Routes

struct ModelRoute {
  std::string name;
  std::string version;
  std::string action;  // "" (metadata), ready, config, stats, infer, generate, generate_stream
};

std::optional<ModelRoute> match_model_route(const std::string& path) {
  static const std::regex pattern("^/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/([a-z_]+))?/?$");
  std::smatch match;
  if (!std::regex_match(path, match, pattern)) return std::nullopt;
  return ModelRoute{match[1].str(), match[2].str(), match[3].str()};
}

// The --http-restricted-api category of a path, as tritonserver groups its routes; nullopt for
// paths that are none of them (they get 404). `route` is match_model_route(path), matched once per
// request by the caller.
std::optional<ApiCategory> api_category(const std::string& path, const std::optional<ModelRoute>& route) {
  const auto starts = [&](std::string_view prefix) { return path.rfind(prefix, 0) == 0; };
  if (starts("/v2/health/")) return ApiCategory::kHealth;
  if (path == "/v2" || path == "/v2/") return ApiCategory::kMetadata;
  if (starts("/v2/repository/")) return ApiCategory::kModelRepository;
  if (starts("/v2/systemsharedmemory") || starts("/v2/cudasharedmemory")) return ApiCategory::kSharedMemory;
  if (starts("/v2/trace/")) return ApiCategory::kTrace;
  if (starts("/v2/logging")) return ApiCategory::kLogging;
  if (path == "/v2/models/stats") return ApiCategory::kStatistics;
  if (!route) {
    if (starts("/v2/models/") && path.find("/trace/setting") != std::string::npos) return ApiCategory::kTrace;
    return std::nullopt;
  }
  const std::string& action = route->action;
  if (action.empty()) return ApiCategory::kMetadata;
  if (action == "ready") return ApiCategory::kHealth;
  if (action == "config") return ApiCategory::kModelConfig;
  if (action == "stats") return ApiCategory::kStatistics;
  if (action == "infer" || action == "generate" || action == "generate_stream") return ApiCategory::kInference;
  return std::nullopt;
}

json parse_body(const HttpRequest& request, size_t length) {
  try {
    return json::parse(request.body.begin(), request.body.begin() + static_cast<std::ptrdiff_t>(length));
  } catch (const json::parse_error& e) {
    throw bad_request(std::string("the request body is not valid JSON: ") + e.what());
  }
}

// POST .../infer: KServe v2 JSON, with Triton's binary tensor data extension.
void infer(InferenceService& core, const ModelRoute& route, const HttpRequest& http, HttpExchange& exchange) {
  std::shared_ptr<ModelVersion> model = core.repository().get_model(route.name, parse_model_version(route.version));
  if (model->decoupled()) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "HTTP end point doesn't support models with decoupled transaction policy; use the generate_stream "
                   "endpoint or gRPC ModelStreamInfer for model '" + route.name + "'");
  }
  size_t header_length = http.body.size();
  if (const std::string* value = http.header("Inference-Header-Content-Length")) {
    if (*value == "0") {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                     "raw binary requests (Inference-Header-Content-Length: 0) are not supported; send a JSON header");
    }
    try {
      size_t used = 0;
      header_length = std::stoul(*value, &used);
      if (used != value->size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      throw bad_request("Inference-Header-Content-Length must be a byte count, got '" + *value + "'");
    }
    if (header_length > http.body.size()) {
      throw bad_request("Inference-Header-Content-Length (" + *value + ") is larger than the request body (" +
                        std::to_string(http.body.size()) + " bytes)");
    }
  }
  const json body = parse_body(http, header_length);
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  inference::ModelInferRequest request;
  request.set_model_name(route.name);
  request.set_model_version(route.version);
  if (body.contains("id")) {
    if (!body["id"].is_string()) throw bad_request("'id' must be a string");
    request.set_id(body["id"].get<std::string>());
  }
  bool binary_output_default = false;
  if (body.contains("parameters")) {
    if (!body["parameters"].is_object()) throw bad_request("'parameters' must be a JSON object");
    for (const auto& [name, value] : body["parameters"].items()) {
      if (name == "binary_data_output") {
        if (!value.is_boolean()) throw bad_request("parameter 'binary_data_output' must be a boolean");
        binary_output_default = value.get<bool>();
        continue;
      }
      if (name.rfind("triton_", 0) == 0) {
        throw bad_request("parameter keys starting with 'triton_' are reserved for Triton usage and should not be "
                          "specified, got '" + name + "'");
      }
      set_parameter((*request.mutable_parameters())[name], value, name);
    }
  }
  if (!body.contains("inputs") || !body["inputs"].is_array()) {
    throw bad_request("the request must have an 'inputs' array");
  }
  size_t binary_at = header_length;
  for (const json& input : body["inputs"]) {
    if (!input.is_object() || !input.contains("name") || !input["name"].is_string()) {
      throw bad_request("every element of 'inputs' must be an object with a 'name'");
    }
    const std::string name = input["name"].get<std::string>();
    const std::string where = "input '" + name + "'";
    auto* tensor = request.add_inputs();
    tensor->set_name(name);
    if (!input.contains("datatype") || !input["datatype"].is_string()) throw bad_request(where + " needs a 'datatype'");
    tensor->set_datatype(input["datatype"].get<std::string>());
    if (!input.contains("shape") || !input["shape"].is_array()) throw bad_request(where + " needs a 'shape' array");
    for (const json& d : input["shape"]) {
      if (!d.is_number_integer()) throw bad_request(where + ": 'shape' must hold integers, got " + dump(input["shape"]));
      tensor->add_shape(d.get<int64_t>());
    }
    std::string& raw = *request.add_raw_input_contents();
    std::optional<size_t> binary_size;
    if (input.contains("parameters")) {
      if (!input["parameters"].is_object()) throw bad_request(where + ": 'parameters' must be a JSON object");
      for (const auto& [key, value] : input["parameters"].items()) {
        if (key == "binary_data_size") {
          if (!value.is_number_unsigned()) throw bad_request(where + ": 'binary_data_size' must be a byte count");
          binary_size = value.get<size_t>();
        } else {
          set_parameter((*tensor->mutable_parameters())[key], value, key);
        }
      }
    }
    if (binary_size) {
      if (*binary_size > http.body.size() - binary_at) {
        throw bad_request(where + ": binary_data_size " + std::to_string(*binary_size) + " goes beyond the " +
                          std::to_string(http.body.size() - header_length) + " bytes of binary data in the request");
      }
      raw.assign(http.body, binary_at, *binary_size);
      binary_at += *binary_size;
      continue;
    }
    if (!input.contains("data")) throw bad_request(where + " has neither 'data' nor a 'binary_data_size' parameter");
    const TRITONSERVER_DataType type = datatype_from_name(tensor->datatype());
    if (type == TRITONSERVER_TYPE_INVALID) throw bad_request(where + ": unknown datatype '" + tensor->datatype() + "'");
    const size_t count = append_elements(raw, input["data"], type, where);
    const int64_t expected = element_count(std::span<const int64_t>(tensor->shape().data(), tensor->shape().size()));
    if (expected >= 0 && static_cast<size_t>(expected) != count) {
      throw bad_request(where + ": shape " + dims_to_string(std::span<const int64_t>(tensor->shape().data(), tensor->shape().size())) +
                        " has " + std::to_string(expected) + " elements but 'data' has " + std::to_string(count));
    }
  }
  if (binary_at != http.body.size()) {
    throw bad_request("the request has " + std::to_string(http.body.size() - binary_at) +
                      " bytes of binary data that no input's binary_data_size accounts for");
  }
  std::map<std::string, bool> binary_outputs;
  if (body.contains("outputs")) {
    if (!body["outputs"].is_array()) throw bad_request("'outputs' must be an array");
    for (const json& output : body["outputs"]) {
      if (!output.is_object() || !output.contains("name") || !output["name"].is_string()) {
        throw bad_request("every element of 'outputs' must be an object with a 'name'");
      }
      const std::string name = output["name"].get<std::string>();
      request.add_outputs()->set_name(name);
      bool binary = binary_output_default;
      if (output.contains("parameters") && output["parameters"].is_object()) {
        for (const auto& [key, value] : output["parameters"].items()) {
          if (key == "binary_data" && value.is_boolean()) {
            binary = value.get<bool>();
          } else if (key == "classification") {
            throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED, "output '" + name + "': classification is not supported");
          }
        }
      }
      binary_outputs[name] = binary;
    }
  }

  const Submitted submitted = submit(core, model, request);
  std::optional<InferResult> answer;
  const bool completed = drain(submitted, exchange, [&](InferResult& result) {
    if (result.has_response || result.error) answer = std::move(result);
    return true;
  });
  if (!completed) return;  // the client is gone
  if (!answer) throw ApiError(TRITONSERVER_ERROR_INTERNAL, "the model sent no response");
  if (answer->error) throw ApiError(answer->error->code, answer->error->message);

  json response{{"model_name", answer->model_name}, {"model_version", answer->model_version}};
  if (!answer->request_id.empty()) response["id"] = answer->request_id;
  if (!answer->parameters.empty()) {
    json parameters = json::object();
    for (const TRITONSERVER_Parameter& parameter : answer->parameters) parameters[parameter.name] = parameter_value(parameter);
    response["parameters"] = std::move(parameters);
  }
  json outputs = json::array();
  std::string binary;
  for (const OutputTensor& output : answer->outputs) {
    json entry{{"name", output.name}, {"datatype", datatype_name(output.datatype)}, {"shape", output.shape}};
    const auto requested = binary_outputs.find(output.name);
    const bool as_binary = requested != binary_outputs.end() ? requested->second : binary_output_default;
    if (as_binary) {
      entry["parameters"] = json{{"binary_data_size", output.data.size()}};
      binary += output.data;
    } else {
      entry["data"] = output_elements(output);
    }
    outputs.push_back(std::move(entry));
  }
  response["outputs"] = std::move(outputs);
  std::string text = dump(response);
  if (binary.empty()) {
    exchange.respond(200, kJson, text);
  } else {
    const std::string header_size = std::to_string(text.size());
    exchange.respond(200, "application/octet-stream", text + binary, {{"Inference-Header-Content-Length", header_size}});
  }
}

// The generate extension's shape for an input of `count` elements: the model metadata's shape
// (batch dimension -1 first when the model batches), each fixed dimension divided out from the
// last, the innermost -1 taking what is left and the other -1s 1 — as tritonserver does.
std::vector<int64_t> generate_shape(const inference::ModelInput& input, bool batching, size_t count) {
  std::vector<int64_t> shape;
  if (batching) shape.push_back(-1);
  shape.insert(shape.end(), input.dims().begin(), input.dims().end());
  auto left = static_cast<int64_t>(count);
  for (auto d = shape.rbegin(); d != shape.rend(); ++d) {
    if (*d == -1) continue;
    if (*d == 0 || left % *d != 0) {
      left = -1;
      break;
    }
    left /= *d;
  }
  bool innermost = true;
  for (auto d = shape.rbegin(); d != shape.rend() && left >= 0; ++d) {
    if (*d != -1) continue;
    *d = innermost ? left : 1;
    if (innermost) left = 1;
    innermost = false;
  }
  if (left != 1) {
    throw bad_request("The schema can not convert input '" + input.name() + "' to tensor with proper shape: " +
                      std::to_string(count) + " elements for dims " +
                      dims_to_string(std::span<const int64_t>(input.dims().data(), input.dims().size())));
  }
  return shape;
}

// The generate extension's request: keys naming inputs become tensors (the config's datatype,
// generate_shape); "parameters" holds more of the same; every other key becomes a request
// parameter.
void add_generate_fields(const inference::ModelConfig& config, const json& fields, bool nested,
                         inference::ModelInferRequest& request) {
  const bool batching = config.max_batch_size() > 0;
  for (const auto& [key, value] : fields.items()) {
    const auto input = std::find_if(config.input().begin(), config.input().end(),
                                    [&key](const inference::ModelInput& candidate) { return candidate.name() == key; });
    if (key == "parameters" && !nested) {
      if (input != config.input().end()) {
        throw bad_request("Keyword 'parameters' for nested schema also given as input tensor name");
      }
      if (!value.is_object()) throw bad_request("Expected JSON object for keyword: 'parameters'");
      add_generate_fields(config, value, true, request);
      continue;
    }
    if (input == config.input().end()) {
      if (key == "id" && value.is_string()) request.set_id(value.get<std::string>());
      set_parameter((*request.mutable_parameters())[key], value, key);
      continue;
    }
    auto* tensor = request.add_inputs();
    tensor->set_name(key);
    tensor->set_datatype(config_datatype_name(input->data_type()));
    const TRITONSERVER_DataType type = from_config_datatype(input->data_type());
    const size_t count = append_elements(*request.add_raw_input_contents(), value, type, "input '" + key + "'");
    for (int64_t d : generate_shape(*input, batching, count)) tensor->add_shape(d);
  }
}

inference::ModelInferRequest generate_request(const ModelVersion& model, const ModelRoute& route, const json& body) {
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  inference::ModelInferRequest request;
  request.set_model_name(route.name);
  request.set_model_version(route.version);
  add_generate_fields(model.config(), body, false, request);
  return request;
}

// A response of the generate extension: model name and version, the response's parameters and
// each output by name, a single element as a scalar, more as an array (the first of clashing
// names wins, as in tritonserver).
json generate_response(const InferResult& result) {
  json response{{"model_name", result.model_name}, {"model_version", result.model_version}};
  if (!result.request_id.empty()) response["id"] = result.request_id;
  for (const TRITONSERVER_Parameter& parameter : result.parameters) {
    if (!response.contains(parameter.name)) response[parameter.name] = parameter_value(parameter);
  }
  for (const OutputTensor& output : result.outputs) {
    if (response.contains(output.name)) continue;
    json values = output_elements(output);
    response[output.name] = values.size() == 1 ? std::move(values[0]) : std::move(values);
  }
  return response;
}

void generate(InferenceService& core, const ModelRoute& route, const HttpRequest& http, HttpExchange& exchange,
              bool stream) {
  std::shared_ptr<ModelVersion> model = core.repository().get_model(route.name, parse_model_version(route.version));
  inference::ModelInferRequest request = generate_request(*model, route, parse_body(http, http.body.size()));
  const Submitted submitted = submit(core, model, request);
  const size_t limit = core.max_pending_response_bytes();
  if (!stream) {
    std::optional<InferResult> answer;
    std::optional<ResultError> failure;
    const bool completed = drain(submitted, exchange, [&](InferResult& result) {
      if (result.error) {
        failure = result.error;
        return true;
      }
      if (!result.has_response) return true;
      if (answer) {
        failure = ResultError{TRITONSERVER_ERROR_INVALID_ARG,
                              "generate expects model to produce exactly 1 response, use generate stream for model "
                              "that generates various number of responses"};
        return false;
      }
      answer = std::move(result);
      return true;
    });
    if (failure) throw ApiError(failure->code, failure->message);
    if (!completed) return;
    if (!answer) throw ApiError(TRITONSERVER_ERROR_INTERNAL, "the model sent no response");
    respond_json(exchange, generate_response(*answer));
    return;
  }
  // As in tritonserver, the first response decides the HTTP status: a request refused at once
  // gets a plain error answer; later errors arrive as events.
  bool started = false;
  const bool completed = drain(submitted, exchange, [&](InferResult& result) {
    if (!result.has_response && !result.error) return true;  // the final flag alone
    if (!started && result.error) throw ApiError(result.error->code, result.error->message);
    if (!started && !exchange.start_chunked(200, "text/event-stream; charset=utf-8")) return false;
    started = true;
    const std::string event = result.error ? error_body(result.error->message) : dump(generate_response(result));
    return exchange.write_chunk("data: " + event + "\n\n");
  });
  if (!started) {  // the request ended without a response (or the client left first)
    if (completed) exchange.start_chunked(200, "text/event-stream; charset=utf-8");
    exchange.end_chunked();
    return;
  }
  if (!completed && submitted.results->overflow_bytes() > 0) {
    exchange.write_chunk("data: " + error_body(overflow_message(submitted, limit)) + "\n\n");
  }
  exchange.end_chunked();
}

}  // namespace

void HttpService::handle(const HttpRequest& request, HttpExchange& exchange) {
  ModelRepository& repository = core_.repository();
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  const auto method_not_allowed = [&] {
    exchange.respond(405, kJson, error_body("Method Not Allowed"));
  };
  try {
    const std::string& path = request.path;
    const std::optional<ModelRoute> route = match_model_route(path);
    if (const std::optional<ApiCategory> category = api_category(path, route)) {
      if (const std::optional<ApiRestriction>& restriction = restricted_.restriction(*category)) {
        const std::string* value = request.header(restriction->header);
        if (value == nullptr || *value != restriction->value) {
          return exchange.respond(403, kJson, error_body(restricted_message("API", *restriction)));
        }
      }
    }
    if (path == "/v2/health/live") {
      if (!get) return method_not_allowed();
      return exchange.respond(200, kJson, "");
    }
    if (path == "/v2/health/ready") {
      if (!get) return method_not_allowed();
      const bool ready = !core_.shutting_down() && repository.all_models_ready();
      return exchange.respond(ready ? 200 : 400, kJson, "");
    }
    if (path == "/v2" || path == "/v2/") {
      if (!get) return method_not_allowed();
      inference::ServerMetadataResponse metadata;
      fill_server_metadata(core_.identity(), metadata);
      return respond_json(exchange, message_json(metadata));
    }
    if (path == "/v2/models/stats") {
      if (!get) return method_not_allowed();
      inference::ModelStatisticsResponse statistics;
      fill_model_statistics(repository, "", "", statistics);
      return respond_json(exchange, message_json(statistics));
    }
    if (path == "/v2/repository/index") {
      if (!post) return method_not_allowed();
      bool ready_only = false;
      if (!request.body.empty()) {
        const json body = parse_body(request, request.body.size());
        if (body.is_object() && body.contains("ready")) {
          if (!body["ready"].is_boolean()) throw bad_request("'ready' must be a boolean");
          ready_only = body["ready"].get<bool>();
        }
      }
      inference::RepositoryIndexResponse index;
      fill_repository_index(repository, ready_only, index);
      json models = json::array();
      for (const auto& model : index.models()) {
        json entry{{"name", model.name()}, {"state", model.state()}};
        if (!model.version().empty()) entry["version"] = model.version();
        if (!model.reason().empty()) entry["reason"] = model.reason();
        models.push_back(std::move(entry));
      }
      return respond_json(exchange, models);
    }
    static const std::regex repository_action("^/v2/repository/models/([^/]+)/(load|unload)$");
    std::smatch action;
    if (std::regex_match(path, action, repository_action)) {
      if (!post) return method_not_allowed();
      if (core_.shutting_down()) throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "llm-server is shutting down");
      if (!request.body.empty()) {
        const json body = parse_body(request, request.body.size());
        if (body.is_object() && body.contains("parameters") && !body["parameters"].empty()) {
          throw bad_request("Unrecognized load parameter '" + body["parameters"].begin().key() +
                            "': llm-server loads models from the repository only");
        }
      }
      const InflightCounter::Token active = core_.active_calls().acquire();
      if (action[2].str() == "load") {
        repository.load_model(action[1].str());
      } else {
        repository.unload_model(action[1].str());
      }
      return exchange.respond(200, kJson, "");
    }
    if (!route) {
      return exchange.respond(404, kJson, error_body("Not Found"));
    }
    const std::string& what = route->action;
    if (what.empty() || what == "ready" || what == "config" || what == "stats") {
      if (!get) return method_not_allowed();
      if (what == "ready") {
        const bool ready = repository.is_model_ready(route->name, parse_model_version(route->version));
        return ready ? exchange.respond(200, kJson, "") : exchange.respond(400, kJson, error_body("Model version not ready"));
      }
      if (what == "config") {
        return respond_json(exchange, message_json(repository.get_model(route->name, parse_model_version(route->version))->config()));
      }
      if (what == "stats") {
        inference::ModelStatisticsResponse statistics;
        fill_model_statistics(repository, route->name, route->version, statistics);
        return respond_json(exchange, message_json(statistics));
      }
      inference::ModelMetadataResponse metadata;
      fill_model_metadata(repository, route->name, route->version, metadata);
      return respond_json(exchange, message_json(metadata));
    }
    if (what == "infer" || what == "generate" || what == "generate_stream") {
      if (!post) return method_not_allowed();
      if (core_.shutting_down()) throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "llm-server is shutting down");
      const InflightCounter::Token active = core_.active_calls().acquire();
      if (what == "infer") return infer(core_, *route, request, exchange);
      return generate(core_, *route, request, exchange, what == "generate_stream");
    }
    return exchange.respond(404, kJson, error_body("Not Found"));
  } catch (const ApiError& e) {
    exchange.respond(http_status(e.code()), kJson, error_body(e.what()));
  } catch (const std::exception& e) {
    exchange.respond(500, kJson, error_body(e.what()));
  }
}

}  // namespace llm_server
