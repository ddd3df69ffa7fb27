// libtriton_repeat.so: a Triton backend for testing llm-server. It uses only Triton's C API, so
// it would load in NVIDIA's tritonserver as well.
//
// Non-decoupled models echo input i (config order) as output i, and echo every request parameter
// back as a response parameter "param_<name>" of the same type.
// Decoupled models answer each request from a thread of their own: 'repeat' responses (request
// parameter, default 3) each carrying the first input and, if the config has an output named
// INDEX, the response index; then the FINAL flag alone (or on the last response with
// final_with_last=true). until_cancelled=true keeps responding until the client cancels.
//
// Request parameters: delay_ms (between responses), fail_request (error response with that
// text), block_until_cancelled (non-decoupled: wait in Execute until cancelled),
// rendezvous/rendezvous_count (decoupled: hold responses until that many requests with the same
// rendezvous key are in flight), return_config (response parameter model_config_json).
// Every response carries the parameters cancelled_requests (cancellations this model observed)
// and, for non-decoupled models, blocked_requests (requests that began block_until_cancelled).
//
// Model config parameters: fail_model_initialize, fail_instance_initialize (refuse to load),
// initialize_delay_ms (the model's load takes that long),
// auto_complete_outputs ("true": add <input>_OUT outputs through TRITONBACKEND_ModelSetConfig).
// Backend config (--backend-config repeat,event-log=FILE): lifecycle events are appended to FILE.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "triton/core/tritonbackend.h"

namespace {

using Json = nlohmann::json;

// An error to return through the C API; thrown inside the backend, converted at its edges.
struct BackendFailure {
  TRITONSERVER_Error* error;
};

void check(TRITONSERVER_Error* error) {
  if (error != nullptr) {
    throw BackendFailure{error};
  }
}

[[noreturn]] void fail(TRITONSERVER_Error_Code code, const std::string& message) {
  throw BackendFailure{TRITONSERVER_ErrorNew(code, message.c_str())};
}

template <typename Body>
TRITONSERVER_Error* guarded(Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const BackendFailure& failure) {
    return failure.error;
  } catch (const std::exception& e) {
    return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, e.what());
  } catch (...) {
    return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, "unknown exception");
  }
}

void log(TRITONSERVER_LogLevel level, const std::string& message) {
  TRITONSERVER_ErrorDelete(TRITONSERVER_LogMessage(level, __FILE__, __LINE__, message.c_str()));
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Json message_json(TRITONSERVER_Message* message) {
  const char* base = nullptr;
  size_t size = 0;
  check(TRITONSERVER_MessageSerializeToJson(message, &base, &size));
  return Json::parse(std::string(base, size));
}

struct BackendState {
  std::string event_log;
  std::mutex mutex;

  void event(const std::string& line) {
    if (event_log.empty()) {
      return;
    }
    std::lock_guard<std::mutex> lock(mutex);
    std::ofstream(event_log, std::ios::app) << line << "\n";
  }
};

struct ModelState {
  BackendState* backend = nullptr;
  std::string name;
  std::string config_json;
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  bool decoupled = false;
  int64_t max_batch_size = 0;
  Json parameters;
  std::atomic<int64_t> cancelled_requests{0};
  std::atomic<int64_t> blocked_requests{0};  // requests that started waiting for cancellation

  std::mutex rendezvous_mutex;
  std::condition_variable rendezvous_arrived;
  std::map<std::string, int> rendezvous_arrivals;

  std::string parameter(const std::string& key) const {
    if (parameters.contains(key)) {
      return parameters[key].value("string_value", "");
    }
    return "";
  }
};

struct RunningJob {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done;
};

struct InstanceState {
  ModelState* model = nullptr;
  TRITONBACKEND_ModelInstance* handle = nullptr;
  std::string name;
  std::mutex jobs_mutex;
  std::vector<RunningJob> jobs;  // decoupled requests; finished ones are joined as new ones start

  void join_finished_jobs_locked() {
    for (auto it = jobs.begin(); it != jobs.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
  }
};

using ParameterValue = std::variant<std::string, int64_t, bool, double>;

std::map<std::string, ParameterValue> request_parameters(TRITONBACKEND_Request* request) {
  std::map<std::string, ParameterValue> parameters;
  uint32_t count = 0;
  check(TRITONBACKEND_RequestParameterCount(request, &count));
  for (uint32_t i = 0; i < count; ++i) {
    const char* key = nullptr;
    TRITONSERVER_ParameterType type;
    const void* value = nullptr;
    check(TRITONBACKEND_RequestParameter(request, i, &key, &type, &value));
    switch (type) {
      case TRITONSERVER_PARAMETER_STRING:
        parameters[key] = std::string(static_cast<const char*>(value));
        break;
      case TRITONSERVER_PARAMETER_INT:
        parameters[key] = *static_cast<const int64_t*>(value);
        break;
      case TRITONSERVER_PARAMETER_BOOL:
        parameters[key] = *static_cast<const bool*>(value);
        break;
      case TRITONSERVER_PARAMETER_DOUBLE:
        parameters[key] = *static_cast<const double*>(value);
        break;
      case TRITONSERVER_PARAMETER_BYTES:
        break;
    }
  }
  return parameters;
}

template <typename T>
T parameter_or(const std::map<std::string, ParameterValue>& parameters, const std::string& key,
               T fallback) {
  auto it = parameters.find(key);
  if (it != parameters.end()) {
    if (const T* value = std::get_if<T>(&it->second)) {
      return *value;
    }
  }
  return fallback;
}

struct TensorCopy {
  std::string name;
  TRITONSERVER_DataType datatype = TRITONSERVER_TYPE_INVALID;
  std::vector<int64_t> shape;
  std::string data;
};

std::optional<TensorCopy> copy_input(TRITONBACKEND_Request* request, const std::string& name) {
  TRITONBACKEND_Input* input = nullptr;
  TRITONSERVER_Error* missing = TRITONBACKEND_RequestInput(request, name.c_str(), &input);
  if (missing != nullptr) {
    TRITONSERVER_ErrorDelete(missing);  // optional input not given
    return std::nullopt;
  }
  TensorCopy copy;
  copy.name = name;
  const int64_t* shape = nullptr;
  uint32_t dims = 0;
  uint64_t byte_size = 0;
  uint32_t buffers = 0;
  check(TRITONBACKEND_InputProperties(input, nullptr, &copy.datatype, &shape, &dims, &byte_size,
                                      &buffers));
  copy.shape.assign(shape, shape + dims);
  for (uint32_t b = 0; b < buffers; ++b) {
    const void* buffer = nullptr;
    uint64_t size = 0;
    TRITONSERVER_MemoryType memory_type = TRITONSERVER_MEMORY_CPU;
    int64_t memory_type_id = 0;
    check(TRITONBACKEND_InputBuffer(input, b, &buffer, &size, &memory_type, &memory_type_id));
    copy.data.append(static_cast<const char*>(buffer), size);
  }
  if (copy.data.size() != byte_size) {
    fail(TRITONSERVER_ERROR_INTERNAL, "input buffers do not add up to the input's byte size");
  }
  return copy;
}

void add_output(TRITONBACKEND_Response* response, const std::string& name,
                TRITONSERVER_DataType datatype, const std::vector<int64_t>& shape,
                const std::string& data) {
  TRITONBACKEND_Output* output = nullptr;
  check(TRITONBACKEND_ResponseOutput(response, &output, name.c_str(), datatype, shape.data(),
                                     static_cast<uint32_t>(shape.size())));
  void* buffer = nullptr;
  TRITONSERVER_MemoryType memory_type = TRITONSERVER_MEMORY_CPU;
  int64_t memory_type_id = 0;
  check(TRITONBACKEND_OutputBuffer(output, &buffer, data.size(), &memory_type, &memory_type_id));
  if (memory_type != TRITONSERVER_MEMORY_CPU) {
    fail(TRITONSERVER_ERROR_INTERNAL, "expected a CPU output buffer");
  }
  if (!data.empty()) {
    std::memcpy(buffer, data.data(), data.size());
  }
}

void send_error(TRITONBACKEND_Response* response, uint32_t flags, TRITONSERVER_Error_Code code,
                const std::string& message) {
  TRITONSERVER_Error* error = TRITONSERVER_ErrorNew(code, message.c_str());
  TRITONSERVER_Error* send_error = TRITONBACKEND_ResponseSend(response, flags, error);
  TRITONSERVER_ErrorDelete(error);
  TRITONSERVER_ErrorDelete(send_error);
}

// --- non-decoupled -------------------------------------------------------------------------------

void echo_parameters(TRITONBACKEND_Response* response,
                     const std::map<std::string, ParameterValue>& parameters) {
  for (const auto& [key, value] : parameters) {
    const std::string name = "param_" + key;
    if (const auto* s = std::get_if<std::string>(&value)) {
      check(TRITONBACKEND_ResponseSetStringParameter(response, name.c_str(), s->c_str()));
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      check(TRITONBACKEND_ResponseSetIntParameter(response, name.c_str(), *i));
    } else if (const auto* b = std::get_if<bool>(&value)) {
      check(TRITONBACKEND_ResponseSetBoolParameter(response, name.c_str(), *b));
    } else if (const auto* d = std::get_if<double>(&value)) {
      check(TRITONBACKEND_ResponseSetDoubleParameter(response, name.c_str(), *d));
    }
  }
}

// Answers one request; returns whether it succeeded (for the statistics).
bool execute_one(InstanceState& instance, TRITONBACKEND_Request* request) {
  ModelState& model = *instance.model;
  const auto parameters = request_parameters(request);
  const char* request_id = "";
  check(TRITONBACKEND_RequestId(request, &request_id));

  TRITONBACKEND_Response* response = nullptr;
  check(TRITONBACKEND_ResponseNew(&response, request));

  const std::string failure = parameter_or<std::string>(parameters, "fail_request", "");
  if (!failure.empty()) {
    send_error(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, TRITONSERVER_ERROR_INVALID_ARG,
               failure);
    return false;
  }
  if (parameter_or<bool>(parameters, "block_until_cancelled", false)) {
    ++model.blocked_requests;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool cancelled = false;
    while (!cancelled && std::chrono::steady_clock::now() < give_up) {
      check(TRITONBACKEND_RequestIsCancelled(request, &cancelled));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (cancelled) {
      ++model.cancelled_requests;
      instance.model->backend->event("cancelled " + model.name + " " + request_id);
      send_error(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, TRITONSERVER_ERROR_CANCELLED,
                 "request cancelled");
      return false;
    }
  }

  try {
    for (size_t i = 0; i < model.output_names.size() && i < model.input_names.size(); ++i) {
      if (auto input = copy_input(request, model.input_names[i])) {
        add_output(response, model.output_names[i], input->datatype, input->shape, input->data);
      }
    }
    echo_parameters(response, parameters);
    if (parameter_or<bool>(parameters, "return_config", false)) {
      check(TRITONBACKEND_ResponseSetStringParameter(response, "model_config_json",
                                                     model.config_json.c_str()));
    }
    check(TRITONBACKEND_ResponseSetIntParameter(response, "cancelled_requests",
                                                model.cancelled_requests.load()));
    check(TRITONBACKEND_ResponseSetIntParameter(response, "blocked_requests",
                                                model.blocked_requests.load()));
  } catch (const BackendFailure& failure) {
    send_error(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, TRITONSERVER_ErrorCode(failure.error),
               TRITONSERVER_ErrorMessage(failure.error));
    TRITONSERVER_ErrorDelete(failure.error);
    return false;
  }
  check(TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, nullptr));
  return true;
}

// --- decoupled -----------------------------------------------------------------------------------

struct Job {
  std::string request_id;
  std::optional<TensorCopy> input;
  int64_t repeat = 3;
  int64_t delay_ms = 0;
  bool until_cancelled = false;
  bool final_with_last = false;
  std::string fail_request;
  std::string rendezvous;
  int64_t rendezvous_count = 0;
};

void report_response(InstanceState& instance, TRITONBACKEND_ResponseFactory* factory,
                     uint64_t start, uint64_t output_start, uint32_t flags,
                     TRITONSERVER_Error* error) {
  TRITONSERVER_ErrorDelete(TRITONBACKEND_ModelInstanceReportResponseStatistics(
      instance.handle, factory, start, output_start, now_ns(), flags, error));
}

void run_job(InstanceState& instance, TRITONBACKEND_ResponseFactory* factory, const Job& job) {
  ModelState& model = *instance.model;
  auto send_failure = [&](TRITONSERVER_Error_Code code, const std::string& message) {
    const uint64_t start = now_ns();
    TRITONBACKEND_Response* response = nullptr;
    check(TRITONBACKEND_ResponseNewFromFactory(&response, factory));
    TRITONSERVER_Error* error = TRITONSERVER_ErrorNew(code, message.c_str());
    TRITONSERVER_ErrorDelete(
        TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error));
    report_response(instance, factory, start, 0, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error);
    TRITONSERVER_ErrorDelete(error);
  };

  if (!job.fail_request.empty()) {
    send_failure(TRITONSERVER_ERROR_INVALID_ARG, job.fail_request);
    return;
  }
  if (!job.rendezvous.empty()) {
    std::unique_lock<std::mutex> lock(model.rendezvous_mutex);
    ++model.rendezvous_arrivals[job.rendezvous];
    model.rendezvous_arrived.notify_all();
    const bool met = model.rendezvous_arrived.wait_for(lock, std::chrono::seconds(60), [&] {
      return model.rendezvous_arrivals[job.rendezvous] >= job.rendezvous_count;
    });
    if (!met) {
      lock.unlock();
      send_failure(TRITONSERVER_ERROR_INTERNAL, "rendezvous '" + job.rendezvous + "' timed out");
      return;
    }
  }

  const bool has_index_output =
      std::find(model.output_names.begin(), model.output_names.end(), "INDEX") !=
      model.output_names.end();
  const int64_t limit = job.until_cancelled ? 100000 : job.repeat;
  for (int64_t index = 0; index < limit; ++index) {
    bool cancelled = false;
    check(TRITONBACKEND_ResponseFactoryIsCancelled(factory, &cancelled));
    if (cancelled) {
      ++model.cancelled_requests;
      model.backend->event("cancelled " + model.name + " " + job.request_id);
      send_failure(TRITONSERVER_ERROR_CANCELLED, "request cancelled");
      return;
    }
    if (job.delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(job.delay_ms));
    }
    const uint64_t start = now_ns();
    const bool last = !job.until_cancelled && job.final_with_last && index + 1 == limit;
    TRITONBACKEND_Response* response = nullptr;
    check(TRITONBACKEND_ResponseNewFromFactory(&response, factory));
    const uint64_t output_start = now_ns();
    if (job.input && !model.output_names.empty()) {
      add_output(response, model.output_names[0], job.input->datatype, job.input->shape,
                 job.input->data);
    }
    if (has_index_output) {
      const int32_t value = static_cast<int32_t>(index);
      add_output(response, "INDEX", TRITONSERVER_TYPE_INT32, {1},
                 std::string(reinterpret_cast<const char*>(&value), sizeof(value)));
    }
    check(TRITONBACKEND_ResponseSetIntParameter(response, "cancelled_requests",
                                                model.cancelled_requests.load()));
    const uint32_t flags = last ? TRITONSERVER_RESPONSE_COMPLETE_FINAL : 0;
    check(TRITONBACKEND_ResponseSend(response, flags, nullptr));
    report_response(instance, factory, start, output_start, flags, nullptr);
    if (last) {
      return;
    }
  }
  const uint64_t start = now_ns();
  check(TRITONBACKEND_ResponseFactorySendFlags(factory, TRITONSERVER_RESPONSE_COMPLETE_FINAL));
  report_response(instance, factory, start, 0, TRITONSERVER_RESPONSE_COMPLETE_FINAL, nullptr);
}

void start_job(InstanceState& instance, TRITONBACKEND_Request* request) {
  ModelState& model = *instance.model;
  const auto parameters = request_parameters(request);
  Job job;
  const char* request_id = "";
  check(TRITONBACKEND_RequestId(request, &request_id));
  job.request_id = request_id;
  if (!model.input_names.empty()) {
    job.input = copy_input(request, model.input_names[0]);
  }
  job.repeat = parameter_or<int64_t>(parameters, "repeat", 3);
  job.delay_ms = parameter_or<int64_t>(parameters, "delay_ms", 0);
  job.until_cancelled = parameter_or<bool>(parameters, "until_cancelled", false);
  job.final_with_last = parameter_or<bool>(parameters, "final_with_last", false);
  job.fail_request = parameter_or<std::string>(parameters, "fail_request", "");
  job.rendezvous = parameter_or<std::string>(parameters, "rendezvous", "");
  job.rendezvous_count = parameter_or<int64_t>(parameters, "rendezvous_count", 0);

  TRITONBACKEND_ResponseFactory* factory = nullptr;
  check(TRITONBACKEND_ResponseFactoryNew(&factory, request));
  std::lock_guard<std::mutex> lock(instance.jobs_mutex);
  instance.join_finished_jobs_locked();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([&instance, factory, job, done] {
    TRITONSERVER_Error* error = guarded([&] { run_job(instance, factory, job); });
    if (error != nullptr) {
      log(TRITONSERVER_LOG_ERROR, std::string("repeat job failed: ") + TRITONSERVER_ErrorMessage(error));
      TRITONSERVER_ErrorDelete(error);
    }
    TRITONSERVER_ErrorDelete(TRITONBACKEND_ResponseFactoryDelete(factory));
    done->store(true);
  });
  instance.jobs.push_back(RunningJob{std::move(thread), std::move(done)});
}

// The request's batch size: its first dimension for batching models, else 1.
uint64_t request_batch_size(const ModelState& model, TRITONBACKEND_Request* request) {
  if (model.max_batch_size <= 0 || model.input_names.empty()) {
    return 1;
  }
  TRITONBACKEND_Input* input = nullptr;
  const int64_t* shape = nullptr;
  uint32_t dims = 0;
  TRITONSERVER_Error* error = TRITONBACKEND_RequestInputByIndex(request, 0, &input);
  if (error == nullptr) {
    error = TRITONBACKEND_InputProperties(input, nullptr, nullptr, &shape, &dims, nullptr, nullptr);
  }
  if (error != nullptr || dims == 0) {
    TRITONSERVER_ErrorDelete(error);
    return 1;
  }
  return static_cast<uint64_t>(shape[0]);
}

}  // namespace

extern "C" {

TRITONSERVER_Error* TRITONBACKEND_Initialize(TRITONBACKEND_Backend* backend) {
  return guarded([&] {
    uint32_t major = 0;
    uint32_t minor = 0;
    check(TRITONBACKEND_ApiVersion(&major, &minor));
    if (major != TRITONBACKEND_API_VERSION_MAJOR || minor < TRITONBACKEND_API_VERSION_MINOR) {
      fail(TRITONSERVER_ERROR_UNSUPPORTED, "triton backend API version does not support this backend");
    }
    const char* name = nullptr;
    check(TRITONBACKEND_BackendName(backend, &name));
    TRITONSERVER_Message* config_message = nullptr;
    check(TRITONBACKEND_BackendConfig(backend, &config_message));
    const Json config = message_json(config_message);
    auto state = std::make_unique<BackendState>();
    state->event_log = config["cmdline"].value("event-log", "");
    state->event("backend initialize " + std::string(name));
    check(TRITONBACKEND_BackendSetState(backend, state.release()));
  });
}

TRITONSERVER_Error* TRITONBACKEND_Finalize(TRITONBACKEND_Backend* backend) {
  return guarded([&] {
    void* state = nullptr;
    check(TRITONBACKEND_BackendState(backend, &state));
    std::unique_ptr<BackendState> owned(static_cast<BackendState*>(state));
    const char* name = nullptr;
    check(TRITONBACKEND_BackendName(backend, &name));
    owned->event("backend finalize " + std::string(name));
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInitialize(TRITONBACKEND_Model* model) {
  return guarded([&] {
    TRITONBACKEND_Backend* backend = nullptr;
    check(TRITONBACKEND_ModelBackend(model, &backend));
    void* backend_state = nullptr;
    check(TRITONBACKEND_BackendState(backend, &backend_state));
    auto state = std::make_unique<ModelState>();
    state->backend = static_cast<BackendState*>(backend_state);
    const char* name = nullptr;
    check(TRITONBACKEND_ModelName(model, &name));
    state->name = name;
    state->backend->event("model initialize " + state->name);

    TRITONSERVER_Message* config_message = nullptr;
    check(TRITONBACKEND_ModelConfig(model, 1, &config_message));
    Json config = message_json(config_message);
    TRITONSERVER_ErrorDelete(TRITONSERVER_MessageDelete(config_message));
    state->parameters = config.value("parameters", Json::object());

    bool auto_complete = false;
    check(TRITONBACKEND_ModelAutoCompleteConfig(model, &auto_complete));
    if (auto_complete && state->parameter("auto_complete_outputs") == "true" &&
        config["output"].empty()) {
      for (const auto& input : config["input"]) {
        Json output = {{"name", input["name"].get<std::string>() + "_OUT"},
                       {"data_type", input["data_type"]},
                       {"dims", input["dims"]}};
        config["output"].push_back(output);
      }
      const std::string completed = config.dump();
      TRITONSERVER_Message* message = nullptr;
      check(TRITONSERVER_MessageNewFromSerializedJson(&message, completed.data(), completed.size()));
      TRITONSERVER_Error* set_error = TRITONBACKEND_ModelSetConfig(model, 1, message);
      TRITONSERVER_ErrorDelete(TRITONSERVER_MessageDelete(message));
      check(set_error);
      check(TRITONBACKEND_ModelConfig(model, 1, &config_message));
      config = message_json(config_message);
      TRITONSERVER_ErrorDelete(TRITONSERVER_MessageDelete(config_message));
    }

    state->config_json = config.dump();
    for (const auto& input : config["input"]) {
      state->input_names.push_back(input["name"].get<std::string>());
    }
    for (const auto& output : config["output"]) {
      state->output_names.push_back(output["name"].get<std::string>());
    }
    state->decoupled = config.value("model_transaction_policy", Json::object()).value("decoupled", false);
    state->max_batch_size = config.value("max_batch_size", 0);

    // A load that takes this long (as a large model's can); the process may be signalled meanwhile.
    const std::string delay = state->parameter("initialize_delay_ms");
    if (!delay.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(std::stoll(delay)));

    const std::string refusal = state->parameter("fail_model_initialize");
    if (!refusal.empty()) {
      fail(TRITONSERVER_ERROR_INVALID_ARG,
           "repeat backend: model '" + state->name + "' refuses to load: " + refusal);
    }

    TRITONSERVER_BufferAttributes* usage = nullptr;
    check(TRITONSERVER_BufferAttributesNew(&usage));
    TRITONSERVER_ErrorDelete(TRITONSERVER_BufferAttributesSetMemoryType(usage, TRITONSERVER_MEMORY_CPU));
    TRITONSERVER_ErrorDelete(TRITONSERVER_BufferAttributesSetByteSize(usage, 4096));
    TRITONSERVER_Error* report_error = TRITONBACKEND_ModelReportMemoryUsage(model, &usage, 1);
    TRITONSERVER_ErrorDelete(TRITONSERVER_BufferAttributesDelete(usage));
    check(report_error);

    check(TRITONBACKEND_ModelSetState(model, state.release()));
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelFinalize(TRITONBACKEND_Model* model) {
  return guarded([&] {
    void* state = nullptr;
    check(TRITONBACKEND_ModelState(model, &state));
    std::unique_ptr<ModelState> owned(static_cast<ModelState*>(state));
    owned->backend->event("model finalize " + owned->name);
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance* instance) {
  return guarded([&] {
    TRITONBACKEND_Model* model = nullptr;
    check(TRITONBACKEND_ModelInstanceModel(instance, &model));
    void* model_state = nullptr;
    check(TRITONBACKEND_ModelState(model, &model_state));
    auto state = std::make_unique<InstanceState>();
    state->model = static_cast<ModelState*>(model_state);
    state->handle = instance;
    const char* name = nullptr;
    check(TRITONBACKEND_ModelInstanceName(instance, &name));
    state->name = name;
    TRITONSERVER_InstanceGroupKind kind;
    check(TRITONBACKEND_ModelInstanceKind(instance, &kind));
    if (kind != TRITONSERVER_INSTANCEGROUPKIND_CPU && kind != TRITONSERVER_INSTANCEGROUPKIND_MODEL) {
      fail(TRITONSERVER_ERROR_INVALID_ARG, "repeat backend runs on CPU only");
    }
    const std::string refusal = state->model->parameter("fail_instance_initialize");
    if (!refusal.empty()) {
      fail(TRITONSERVER_ERROR_INVALID_ARG,
           "repeat backend: instance '" + state->name + "' refuses to load: " + refusal);
    }
    state->model->backend->event("instance initialize " + state->name);

    TRITONSERVER_BufferAttributes* usage = nullptr;
    check(TRITONSERVER_BufferAttributesNew(&usage));
    TRITONSERVER_ErrorDelete(TRITONSERVER_BufferAttributesSetByteSize(usage, 1024));
    TRITONSERVER_Error* report_error = TRITONBACKEND_ModelInstanceReportMemoryUsage(instance, &usage, 1);
    TRITONSERVER_ErrorDelete(TRITONSERVER_BufferAttributesDelete(usage));
    check(report_error);

    check(TRITONBACKEND_ModelInstanceSetState(instance, state.release()));
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  return guarded([&] {
    void* state = nullptr;
    check(TRITONBACKEND_ModelInstanceState(instance, &state));
    std::unique_ptr<InstanceState> owned(static_cast<InstanceState*>(state));
    std::vector<RunningJob> jobs;
    {
      std::lock_guard<std::mutex> lock(owned->jobs_mutex);
      jobs.swap(owned->jobs);
    }
    for (auto& job : jobs) {
      job.thread.join();
    }
    owned->model->backend->event("instance finalize " + owned->name);
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* instance,
                                                       TRITONBACKEND_Request** requests,
                                                       const uint32_t request_count) {
  // Once Execute returns success, every request must have been answered and released (or handed
  // to a job); failures are reported per request, never as Execute's result.
  void* state = nullptr;
  TRITONSERVER_Error* state_error = TRITONBACKEND_ModelInstanceState(instance, &state);
  if (state_error != nullptr) {
    return state_error;
  }
  InstanceState& instance_state = *static_cast<InstanceState*>(state);
  const uint64_t exec_start = now_ns();
  uint64_t batch_size = 0;
  for (uint32_t r = 0; r < request_count; ++r) {
    TRITONBACKEND_Request* request = requests[r];
    const uint64_t request_start = now_ns();
    bool success = false;
    TRITONSERVER_Error* error = guarded([&] {
      if (instance_state.model->decoupled) {
        start_job(instance_state, request);
        success = true;
      } else {
        success = execute_one(instance_state, request);
      }
    });
    if (error != nullptr) {
      log(TRITONSERVER_LOG_ERROR, std::string("repeat: ") + TRITONSERVER_ErrorMessage(error));
      TRITONBACKEND_Response* response = nullptr;
      if (TRITONBACKEND_ResponseNew(&response, request) == nullptr) {
        send_error(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, TRITONSERVER_ErrorCode(error),
                   TRITONSERVER_ErrorMessage(error));
      }
      TRITONSERVER_ErrorDelete(error);
    }
    const uint64_t request_end = now_ns();
    TRITONSERVER_ErrorDelete(TRITONBACKEND_ModelInstanceReportStatistics(
        instance, request, success, request_start, request_start, request_end, request_end));
    batch_size += request_batch_size(*instance_state.model, request);
    TRITONSERVER_ErrorDelete(TRITONBACKEND_RequestRelease(request, TRITONSERVER_REQUEST_RELEASE_ALL));
  }
  const uint64_t exec_end = now_ns();
  TRITONSERVER_ErrorDelete(TRITONBACKEND_ModelInstanceReportBatchStatistics(
      instance, batch_size, exec_start, exec_start, exec_end, exec_end));
  return nullptr;
}

}  // extern "C"
