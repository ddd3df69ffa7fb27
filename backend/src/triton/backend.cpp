// libtriton_llm.so: the Triton backend C API entry points. C ABI glue only: requests become
// GenerationRequests for the model's Engine (CPU or TensorRT-LLM, made by engine_factory; the
// glue does not know which), engine events become Triton responses.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "kernels/kernels.h"
#include "triton/engine_factory.h"
#include "triton/llm_metrics.h"
#include "triton/model_settings.h"
#include "triton/request_parser.h"
#include "triton/triton_utils.h"

namespace llm::triton {
namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// Reports a request's statistics and hands it back to Triton: the last thing done with any request.
void finish_request(TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request* request, bool success,
                    uint64_t exec_start_ns, uint64_t compute_start_ns, uint64_t end_ns) {
  log_failure(TRITONBACKEND_ModelInstanceReportStatistics(instance, request, success, exec_start_ns, compute_start_ns,
                                                          end_ns, end_ns),
              "reporting request statistics");
  log_failure(TRITONBACKEND_RequestRelease(request, TRITONSERVER_REQUEST_RELEASE_ALL), "releasing a request");
}

class ResponseSender;

// Per model: the loaded engine, shared by all instances so weights are held once.
struct ModelState {
  TRITONBACKEND_Model* triton_model = nullptr;
  std::string name;
  ModelSettings settings;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<LlmMetrics> metrics;  // null when the server has no metrics; outlives the engine's requests
  std::unique_ptr<Engine> engine;  // declared after the tokenizer and metrics it uses: destroyed first
  int64_t context_tokens = 0;
  std::vector<int32_t> default_end_ids;

  // Running requests by request id, for the `stop` input; clients may reuse an id, so one id may
  // name several.
  std::mutex running_mutex;
  std::multimap<std::string, std::weak_ptr<ResponseSender>> running;

  ~ModelState() {
    if (metrics) metrics->stop_engine_updates();  // its thread reads the engine, destroyed first
  }
};

// Per instance: tracks its in-flight requests so finalizing the instance can end them first.
struct InstanceState {
  TRITONBACKEND_ModelInstance* triton_instance = nullptr;
  ModelState* model = nullptr;
  std::mutex mutex;
  std::condition_variable all_done;
  std::vector<std::weak_ptr<ResponseSender>> in_flight;
  size_t live = 0;
};

// The engine's observer for one request: sends its responses, reports its statistics and
// releases the request after the final response. Called on the engine thread.
class ResponseSender : public GenerationObserver {
 public:
  ResponseSender(InstanceState& instance, TRITONBACKEND_Request* request, ParsedRequest parsed, uint64_t exec_start_ns,
                 std::string request_id)
      : instance_(instance), request_(request), parsed_(std::move(parsed)), exec_start_ns_(exec_start_ns),
        compute_start_ns_(now_ns()), request_id_(std::move(request_id)) {
    TRITONBACKEND_ResponseFactory* factory = nullptr;
    check(TRITONBACKEND_ResponseFactoryNew(&factory, request_), "creating a response factory");
    factory_.reset(factory);
    uint32_t count = 0;
    check(TRITONBACKEND_RequestOutputCount(request_, &count), "reading requested outputs");
    for (uint32_t i = 0; i < count; ++i) {
      const char* name = nullptr;
      check(TRITONBACKEND_RequestOutputName(request_, i, &name), "reading requested outputs");
      requested_.insert(name);
    }
  }

  void request_stop() { stop_requested_ = true; }

  bool cancelled() override {
    if (stop_requested_) return true;
    bool cancelled = false;
    if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseFactoryIsCancelled(factory_.get(), &cancelled)) TRITONSERVER_ErrorDelete(e);
    return cancelled;
  }

  void on_step(const StepOutput& step) override {
    const bool final = step.finish != FinishReason::None;
    record_tokens(step.new_ids.size());
    const std::vector<float> log_probs(step.log_probs.begin(), step.log_probs.end());
    if (parsed_.stream) {
      // A last step without new tokens still answers with outputs when it must say why it ended.
      if (!step.new_ids.empty() || !step.text.empty() || (final && parsed_.return_finish_reason)) {
        send_outputs(std::string(step.text), std::vector<int32_t>(step.new_ids.begin(), step.new_ids.end()), log_probs,
                     final ? TRITONSERVER_RESPONSE_COMPLETE_FINAL : 0, step.finish, step.new_ids.size());
      } else if (final) {
        send_flags(TRITONSERVER_RESPONSE_COMPLETE_FINAL);
      }
    } else {
      text_ += step.text;
      output_ids_.insert(output_ids_.end(), step.new_ids.begin(), step.new_ids.end());
      all_log_probs_.insert(all_log_probs_.end(), log_probs.begin(), log_probs.end());
      if (final) {
        std::string full_text = parsed_.exclude_input_in_output || !parsed_.text_style ? text_ : parsed_.prompt_text + text_;
        std::vector<int32_t> ids = output_ids_;
        if (!parsed_.exclude_input_in_output) ids.insert(ids.begin(), parsed_.generation.prompt_ids.begin(), parsed_.generation.prompt_ids.end());
        send_outputs(std::move(full_text), std::move(ids), all_log_probs_, TRITONSERVER_RESPONSE_COMPLETE_FINAL, step.finish,
                     output_ids_.size());
      }
    }
    if (final) complete(true, LlmMetrics::Outcome::Completed);
  }

  void on_error(const std::string& message) override { fail(TRITONSERVER_ERROR_INTERNAL, "generation failed: " + message); }

  // Ends the request with an error response (for requests the engine refused or could not finish).
  void fail(TRITONSERVER_Error_Code code, const std::string& message) {
    send_error(code, message);
    complete(false, LlmMetrics::Outcome::Failed);
  }

  void on_cancelled() override {
    send_error(TRITONSERVER_ERROR_CANCELLED, stop_requested_ ? "request stopped by a `stop` request" : "request cancelled");
    complete(false, LlmMetrics::Outcome::Cancelled);
  }

 private:
  void record_tokens(size_t count) {
    LlmMetrics* metrics = instance_.model->metrics.get();
    if (metrics == nullptr || count == 0) return;
    const uint64_t now = now_ns();
    if (generated_tokens_ == 0) {
      first_token_ns_ = now;
      metrics->first_token(static_cast<double>(now - exec_start_ns_) / 1e9);
    }
    generated_tokens_ += count;
    last_token_ns_ = now;
    metrics->tokens_generated(count);
  }

  bool wants(const char* output) const { return requested_.empty() || requested_.count(output) != 0; }

  // `finish`: set on the request's last response, which then says why it ended; `new_tokens`: the
  // tokens generated since the previous response (the prompt never counts).
  void send_outputs(std::string text, std::vector<int32_t> ids, const std::vector<float>& log_probs, uint32_t flags,
                    FinishReason finish, size_t new_tokens) {
    TRITONBACKEND_Response* response = nullptr;
    if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNewFromFactory(&response, factory_.get())) {
      log_failure(e, "creating a response");
      return;
    }
    TRITONSERVER_Error* error = nullptr;
    try {
      // Text-style requests get text_output; token-style ones output_ids and sequence_length
      // (as tensorrtllm_backend's two models do), each when the client asked for it.
      const bool text_out = parsed_.text_style ? wants("text_output") : requested_.count("text_output") != 0;
      const bool ids_out = parsed_.text_style ? requested_.count("output_ids") != 0 : wants("output_ids");
      const bool length_out = parsed_.text_style ? requested_.count("sequence_length") != 0 : wants("sequence_length");
      if (text_out) add_string_output(response, "text_output", {1}, text);
      const int64_t n = static_cast<int64_t>(ids.size());
      if (ids_out) add_output(response, "output_ids", TRITONSERVER_TYPE_INT32, {1, 1, n}, ids.data(), ids.size() * 4);
      if (length_out) {
        const int32_t length = static_cast<int32_t>(n);
        add_output(response, "sequence_length", TRITONSERVER_TYPE_INT32, {1, 1}, &length, 4);
      }
      if (parsed_.generation.return_log_probs) {
        float cumulative = 0;
        for (float lp : log_probs) cumulative += lp;
        if (wants("cum_log_probs")) add_output(response, "cum_log_probs", TRITONSERVER_TYPE_FP32, {1, 1}, &cumulative, 4);
        if (wants("output_log_probs")) {
          add_output(response, "output_log_probs", TRITONSERVER_TYPE_FP32, {1, 1, static_cast<int64_t>(log_probs.size())},
                     log_probs.data(), log_probs.size() * 4);
        }
      }
      if (requested_.count("batch_index") != 0) {
        const int32_t index = 0;
        add_output(response, "batch_index", TRITONSERVER_TYPE_INT32, {1, 1}, &index, 4);
      }
      // Usage and finish reason, asked for by flag, with the names and types of Triton's vLLM backend:
      // on every response, the finish reason empty until the last one.
      if (parsed_.return_finish_reason && wants("finish_reason")) {
        add_string_output(response, "finish_reason", {1, 1}, finish == FinishReason::None ? "" : finish_reason_name(finish));
      }
      // In the type the model declares (UINT32, or tensorrtllm_backend's INT32): both fit 4 bytes.
      const auto add_count = [&](const char* name, size_t value) {
        if (instance_.model->settings.token_counts_int32) {
          const auto count = static_cast<int32_t>(value);
          add_output(response, name, TRITONSERVER_TYPE_INT32, {1, 1}, &count, 4);
        } else {
          const auto count = static_cast<uint32_t>(value);
          add_output(response, name, TRITONSERVER_TYPE_UINT32, {1, 1}, &count, 4);
        }
      };
      // Sent when the flag asks (Triton's vLLM backend's way), or, for token-style requests, when
      // the request names the output (tensorrtllm_backend's tensorrt_llm model has no flag).
      const auto counted = [&](bool flag, const char* name) {
        return (flag && wants(name)) || (!parsed_.text_style && requested_.count(name) != 0);
      };
      if (counted(parsed_.return_num_input_tokens, "num_input_tokens")) {
        add_count("num_input_tokens", parsed_.generation.prompt_ids.size());
      }
      if (counted(parsed_.return_num_output_tokens, "num_output_tokens")) add_count("num_output_tokens", new_tokens);
    } catch (const std::exception& e) {
      error = new_error(TRITONSERVER_ERROR_INTERNAL, e.what());
    }
    send(response, flags, error);
  }

  // One BYTES element: its 4-byte little-endian length, then the bytes.
  static void add_string_output(TRITONBACKEND_Response* response, const char* name, std::vector<int64_t> shape,
                                std::string_view value) {
    std::string element(4, '\0');
    const auto size = static_cast<uint32_t>(value.size());
    std::memcpy(element.data(), &size, 4);
    element += value;
    add_output(response, name, TRITONSERVER_TYPE_BYTES, std::move(shape), element.data(), element.size());
  }

  static void add_output(TRITONBACKEND_Response* response, const char* name, TRITONSERVER_DataType datatype,
                         std::vector<int64_t> shape, const void* data, size_t bytes) {
    TRITONBACKEND_Output* output = nullptr;
    check(TRITONBACKEND_ResponseOutput(response, &output, name, datatype, shape.data(), static_cast<uint32_t>(shape.size())),
          name);
    void* buffer = nullptr;
    TRITONSERVER_MemoryType memory_type = TRITONSERVER_MEMORY_CPU;
    int64_t memory_type_id = 0;
    check(TRITONBACKEND_OutputBuffer(output, &buffer, bytes, &memory_type, &memory_type_id), name);
    if (memory_type == TRITONSERVER_MEMORY_GPU) throw TritonException(TRITONSERVER_ERROR_UNSUPPORTED, "output buffer in GPU memory");
    if (bytes > 0) std::memcpy(buffer, data, bytes);
  }

  void send(TRITONBACKEND_Response* response, uint32_t flags, TRITONSERVER_Error* error) {
    log_failure(TRITONBACKEND_ResponseSend(response, flags, error), "sending a response");
    if (error != nullptr) TRITONSERVER_ErrorDelete(error);  // ResponseSend does not take ownership
  }

  void send_flags(uint32_t flags) {
    log_failure(TRITONBACKEND_ResponseFactorySendFlags(factory_.get(), flags), "sending the final flag");
  }

  void send_error(TRITONSERVER_Error_Code code, const std::string& message) {
    TRITONBACKEND_Response* response = nullptr;
    if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNewFromFactory(&response, factory_.get())) {
      TRITONSERVER_ErrorDelete(e);
      send_flags(TRITONSERVER_RESPONSE_COMPLETE_FINAL);
      return;
    }
    send(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, new_error(code, message));
  }

  void complete(bool success, LlmMetrics::Outcome outcome);

  InstanceState& instance_;
  TRITONBACKEND_Request* request_;
  struct FactoryDeleter {
    void operator()(TRITONBACKEND_ResponseFactory* factory) const {
      log_failure(TRITONBACKEND_ResponseFactoryDelete(factory), "deleting a response factory");
    }
  };
  std::unique_ptr<TRITONBACKEND_ResponseFactory, FactoryDeleter> factory_;
  ParsedRequest parsed_;
  std::set<std::string> requested_;
  uint64_t exec_start_ns_;
  // Inputs read and parsed (tokenized): Triton's compute_input ends here. Waiting in the engine's
  // queue, prefill and decode all count as compute_infer, as the executor's queue does in
  // tensorrtllm_backend.
  uint64_t compute_start_ns_;
  std::string request_id_;
  std::atomic<bool> stop_requested_{false};
  std::string text_;
  std::vector<int32_t> output_ids_;
  std::vector<float> all_log_probs_;
  size_t generated_tokens_ = 0;
  uint64_t first_token_ns_ = 0;
  uint64_t last_token_ns_ = 0;
};

void ResponseSender::complete(bool success, LlmMetrics::Outcome outcome) {
  const uint64_t end = now_ns();
  if (LlmMetrics* metrics = instance_.model->metrics.get()) {
    metrics->request_finished(outcome, generated_tokens_ >= 2 ? static_cast<double>(last_token_ns_ - first_token_ns_) /
                                                                    1e9 / static_cast<double>(generated_tokens_ - 1)
                                                              : -1.0);
  }
  const uint64_t compute_start = compute_start_ns_;
  TRITONBACKEND_ModelInstance* triton_instance = instance_.triton_instance;
  log_failure(TRITONBACKEND_ModelInstanceReportBatchStatistics(triton_instance, 1, exec_start_ns_, compute_start, end, end),
              "reporting batch statistics");
  finish_request(triton_instance, request_, success, exec_start_ns_, compute_start, end);
  request_ = nullptr;
  if (!request_id_.empty()) {
    std::lock_guard lock(instance_.model->running_mutex);
    auto& running = instance_.model->running;
    const auto [first, last] = running.equal_range(request_id_);
    for (auto it = first; it != last; ++it) {
      if (it->second.lock().get() == this) {  // only this request's entry: others with its id keep theirs
        running.erase(it);
        break;
      }
    }
  }
  std::lock_guard lock(instance_.mutex);
  --instance_.live;
  instance_.all_done.notify_all();
}

// Copies one input's buffers (CPU memory) into contiguous bytes.
InputTensor read_input(TRITONBACKEND_Request* request, uint32_t index, std::string* name_out) {
  TRITONBACKEND_Input* input = nullptr;
  check(TRITONBACKEND_RequestInputByIndex(request, index, &input), "reading an input");
  const char* name = nullptr;
  InputTensor tensor;
  const int64_t* shape = nullptr;
  uint32_t dims = 0;
  uint64_t byte_size = 0;
  uint32_t buffer_count = 0;
  check(TRITONBACKEND_InputProperties(input, &name, &tensor.datatype, &shape, &dims, &byte_size, &buffer_count),
        "reading an input's properties");
  *name_out = name;
  tensor.shape.assign(shape, shape + dims);
  tensor.data.reserve(byte_size);
  for (uint32_t b = 0; b < buffer_count; ++b) {
    const void* buffer = nullptr;
    uint64_t size = 0;
    TRITONSERVER_MemoryType memory_type = TRITONSERVER_MEMORY_CPU;
    int64_t memory_type_id = 0;
    check(TRITONBACKEND_InputBuffer(input, b, &buffer, &size, &memory_type, &memory_type_id), name);
    if (memory_type == TRITONSERVER_MEMORY_GPU) throw InvalidInput(name, "GPU memory inputs are not supported");
    tensor.data.append(static_cast<const char*>(buffer), size);
  }
  return tensor;
}

// Answers a request that never reaches the engine with one final error response.
void reject(TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request* request, TRITONSERVER_Error_Code code,
            const std::string& message, uint64_t exec_start_ns) {
  TRITONBACKEND_Response* response = nullptr;
  TRITONSERVER_Error* create_error = TRITONBACKEND_ResponseNew(&response, request);
  if (create_error == nullptr) {
    TRITONSERVER_Error* error = new_error(code, message);
    log_failure(TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error), "sending an error response");
    TRITONSERVER_ErrorDelete(error);
  }
  log_failure(create_error, "creating an error response");
  const uint64_t end = now_ns();
  finish_request(instance, request, false, exec_start_ns, end, end);
}

// Answers a `stop` request (tensorrtllm_backend's way to end a running request by id): every
// running request of this model with that id is stopped.
void answer_stop(InstanceState& instance, TRITONBACKEND_Request* request, const std::string& request_id,
                 uint64_t exec_start_ns) {
  std::vector<std::shared_ptr<ResponseSender>> targets;
  {
    std::lock_guard lock(instance.model->running_mutex);
    const auto [first, last] = instance.model->running.equal_range(request_id);
    for (auto it = first; it != last; ++it) {
      if (auto target = it->second.lock()) targets.push_back(std::move(target));
    }
  }
  if (request_id.empty() || targets.empty()) {
    reject(instance.triton_instance, request, TRITONSERVER_ERROR_INVALID_ARG,
           "input 'stop': no running request has id '" + request_id + "'", exec_start_ns);
    return;
  }
  for (const auto& target : targets) target->request_stop();
  TRITONBACKEND_ResponseFactory* factory = nullptr;
  check(TRITONBACKEND_ResponseFactoryNew(&factory, request), "creating a response factory");
  log_failure(TRITONBACKEND_ResponseFactorySendFlags(factory, TRITONSERVER_RESPONSE_COMPLETE_FINAL), "sending the final flag");
  log_failure(TRITONBACKEND_ResponseFactoryDelete(factory), "deleting a response factory");
  const uint64_t end = now_ns();
  finish_request(instance.triton_instance, request, true, exec_start_ns, end, end);
}

void execute_one(InstanceState& instance, TRITONBACKEND_Request* request) {
  const uint64_t exec_start = now_ns();
  ModelState& model = *instance.model;
  std::string request_id;
  try {
    const char* id = nullptr;
    check(TRITONBACKEND_RequestId(request, &id), "reading the request id");
    if (id != nullptr) request_id = id;
    uint32_t input_count = 0;
    check(TRITONBACKEND_RequestInputCount(request, &input_count), "counting inputs");
    RequestInputs inputs;
    for (uint32_t i = 0; i < input_count; ++i) {
      std::string name;
      InputTensor tensor = read_input(request, i, &name);
      inputs.emplace(std::move(name), std::move(tensor));
    }
    const RequestLimits limits{model.settings, *model.tokenizer, model.engine->vocab_size(), model.context_tokens,
                               model.default_end_ids};
    ParsedRequest parsed = parse_request(inputs, limits);
    if (parsed.stop_request) {
      answer_stop(instance, request, request_id, exec_start);
      return;
    }
    if (parsed.stream && !model.settings.decoupled) {
      throw InvalidInput(inputs.count("stream") ? "stream" : "streaming",
                         "streaming needs a decoupled model (model_transaction_policy { decoupled: true })");
    }
    GenerationRequest generation = parsed.generation;
    const size_t prompt_tokens = generation.prompt_ids.size();
    auto sender = std::make_shared<ResponseSender>(instance, request, std::move(parsed), exec_start, request_id);
    {
      std::lock_guard lock(instance.mutex);
      ++instance.live;
      std::erase_if(instance.in_flight, [](const auto& weak) { return weak.expired(); });
      instance.in_flight.push_back(sender);
    }
    if (!request_id.empty()) {
      std::lock_guard lock(model.running_mutex);
      model.running.emplace(request_id, sender);
    }
    try {
      model.engine->submit(std::move(generation), sender);
      if (model.metrics) model.metrics->request_started(prompt_tokens);
    } catch (const QueueFullError& e) {
      // Not queued: the engine's queue is full (max_queue_size); the client may retry.
      sender->fail(TRITONSERVER_ERROR_UNAVAILABLE, e.what());
    } catch (const Error& e) {
      // Not queued (e.g. a request the engine finds too long): the sender answers and releases it.
      sender->fail(TRITONSERVER_ERROR_INVALID_ARG, e.what());
    } catch (const std::exception& e) {
      // The engine itself failed (e.g. TensorRT-LLM refused to enqueue): its message is kept.
      sender->fail(TRITONSERVER_ERROR_INTERNAL, e.what());
    }
  } catch (const InvalidInput& e) {
    reject(instance.triton_instance, request, TRITONSERVER_ERROR_INVALID_ARG, e.what(), exec_start);
  } catch (const TritonException& e) {
    reject(instance.triton_instance, request, e.code(), e.what(), exec_start);
  } catch (const std::exception& e) {
    reject(instance.triton_instance, request, TRITONSERVER_ERROR_INTERNAL, e.what(), exec_start);
  }
}

std::unique_ptr<ModelState> load_model(TRITONBACKEND_Model* triton_model) {
  auto state = std::make_unique<ModelState>();
  state->triton_model = triton_model;
  const char* name = nullptr;
  check(TRITONBACKEND_ModelName(triton_model, &name), "reading the model name");
  state->name = name;
  uint64_t version = 0;
  check(TRITONBACKEND_ModelVersion(triton_model, &version), "reading the model version");
  TRITONBACKEND_ArtifactType artifact_type = TRITONBACKEND_ARTIFACT_FILESYSTEM;
  const char* location = nullptr;
  check(TRITONBACKEND_ModelRepository(triton_model, &artifact_type, &location), "reading the model repository");
  if (artifact_type != TRITONBACKEND_ARTIFACT_FILESYSTEM)
    throw TritonException(TRITONSERVER_ERROR_UNSUPPORTED, "model " + state->name + ": only filesystem repositories are supported");

  TRITONSERVER_Message* message = nullptr;
  check(TRITONBACKEND_ModelConfig(triton_model, 1, &message), "reading the model config");
  const char* json_text = nullptr;
  size_t json_size = 0;
  TRITONSERVER_Error* serialize_error = TRITONSERVER_MessageSerializeToJson(message, &json_text, &json_size);
  const std::string config_text = serialize_error == nullptr ? std::string(json_text, json_size) : std::string();
  log_failure(TRITONSERVER_MessageDelete(message), "deleting the model config message");
  check(serialize_error, "serializing the model config");

  const auto version_dir = std::filesystem::path(location) / std::to_string(version);
  try {
    state->settings = ModelSettings::parse(nlohmann::json::parse(config_text), version_dir);
  } catch (const std::exception& e) {
    throw TritonException(TRITONSERVER_ERROR_INVALID_ARG, "model " + state->name + ": config.pbtxt: " + e.what());
  }
  for (const std::string& note : state->settings.notes) LLM_LOG_INFO("model " + state->name + ": config.pbtxt: " + note);
  const auto tokenizer_file = state->settings.tokenizer_dir / "tokenizer.model";
  const std::string model_name = state->name;
  EngineLog log = [model_name](LogLevel level, const std::string& message) {
    const std::string line = "model " + model_name + ": " + message;
    switch (level) {
      case LogLevel::Verbose: LLM_LOG_VERBOSE(line); break;
      case LogLevel::Info: LLM_LOG_INFO(line); break;
      case LogLevel::Warning: LLM_LOG_WARN(line); break;
      case LogLevel::Error: LLM_LOG_ERROR(line); break;
    }
  };
  try {
    check_engine_available(state->settings);
    state->tokenizer = std::make_unique<Tokenizer>(tokenizer_file);
    state->engine = make_engine(state->settings, *state->tokenizer, std::move(log));
    state->default_end_ids = state->engine->default_end_ids();
    state->metrics = LlmMetrics::create(state->name, version, state->engine->describe());
    if (state->metrics) state->metrics->start_engine_updates(*state->engine);
  } catch (const std::exception& e) {
    throw TritonException(TRITONSERVER_ERROR_INVALID_ARG, "model " + state->name + ": " + e.what());
  }
  const int64_t model_context = state->engine->context_tokens();
  state->context_tokens = state->settings.max_context_tokens > 0 ? std::min(state->settings.max_context_tokens, model_context)
                                                                 : model_context;
  LLM_LOG_INFO("model " + state->name + ": loaded " + state->engine->describe() + "; context " +
               std::to_string(state->context_tokens) + " tokens, decoupled " + (state->settings.decoupled ? "true" : "false"));
  return state;
}

}  // namespace
}  // namespace llm::triton

using llm::triton::check;
using llm::triton::guard;
using llm::triton::InstanceState;
using llm::triton::ModelState;
using llm::triton::TritonException;

extern "C" {

TRITONSERVER_Error* TRITONBACKEND_Initialize(TRITONBACKEND_Backend* backend) {
  return guard([&] {
    uint32_t major = 0, minor = 0;
    check(TRITONBACKEND_ApiVersion(&major, &minor), "reading the backend API version");
    if (major != TRITONBACKEND_API_VERSION_MAJOR || minor < TRITONBACKEND_API_VERSION_MINOR) {
      throw TritonException(TRITONSERVER_ERROR_UNSUPPORTED,
                            "the llm backend needs backend API " + std::to_string(TRITONBACKEND_API_VERSION_MAJOR) + "." +
                                std::to_string(TRITONBACKEND_API_VERSION_MINOR) + " or a later minor version; the server has " +
                                std::to_string(major) + "." + std::to_string(minor));
    }
    const char* name = nullptr;
    check(TRITONBACKEND_BackendName(backend, &name), "reading the backend name");
    LLM_LOG_INFO(std::string("llm backend initialized as '") + name + "' (CPU engine: " +
                 llm::kernels::isa_name(llm::kernels::detect_isa()) + "; TensorRT-LLM engine: " +
                 (llm::triton::tensorrtllm_available() ? std::string("built for TensorRT-LLM ") + llm::triton::tensorrtllm_target_release()
                                                       : std::string("not built")) +
                 ")");
  });
}

TRITONSERVER_Error* TRITONBACKEND_Finalize(TRITONBACKEND_Backend*) { return nullptr; }

TRITONSERVER_Error* TRITONBACKEND_ModelInitialize(TRITONBACKEND_Model* model) {
  return guard([&] {
    auto state = llm::triton::load_model(model);
    check(TRITONBACKEND_ModelSetState(model, state.get()), "storing the model state");
    state.release();  // owned by Triton until TRITONBACKEND_ModelFinalize
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelFinalize(TRITONBACKEND_Model* model) {
  return guard([&] {
    void* state = nullptr;
    check(TRITONBACKEND_ModelState(model, &state), "reading the model state");
    std::unique_ptr<ModelState> owned(static_cast<ModelState*>(state));  // stops the engine, frees its memory
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance* instance) {
  return guard([&] {
    TRITONBACKEND_Model* model = nullptr;
    check(TRITONBACKEND_ModelInstanceModel(instance, &model), "reading the instance's model");
    void* model_state = nullptr;
    check(TRITONBACKEND_ModelState(model, &model_state), "reading the model state");
    auto state = std::make_unique<InstanceState>();
    state->triton_instance = instance;
    state->model = static_cast<ModelState*>(model_state);
    check(TRITONBACKEND_ModelInstanceSetState(instance, state.get()), "storing the instance state");
    state.release();  // owned by Triton until TRITONBACKEND_ModelInstanceFinalize
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  return guard([&] {
    void* state = nullptr;
    check(TRITONBACKEND_ModelInstanceState(instance, &state), "reading the instance state");
    std::unique_ptr<InstanceState> owned(static_cast<InstanceState*>(state));
    // Requests still running hold this instance for their statistics: stop them and wait.
    std::unique_lock lock(owned->mutex);
    for (auto& weak : owned->in_flight)
      if (auto sender = weak.lock()) sender->request_stop();
    owned->all_done.wait(lock, [&] { return owned->live == 0; });
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* instance,
                                                      TRITONBACKEND_Request** requests, const uint32_t request_count) {
  return guard([&] {
    void* state = nullptr;
    check(TRITONBACKEND_ModelInstanceState(instance, &state), "reading the instance state");
    // Each request is answered (and released) by the backend from here on, even on error:
    // returning an error from Execute would make Triton answer them a second time.
    for (uint32_t i = 0; i < request_count; ++i) llm::triton::execute_one(*static_cast<InstanceState*>(state), requests[i]);
  });
}

}  // extern "C"
