// End-to-end tests of llm-server: a real server process, a temporary model repository served by the
// repeat test backend (libtriton_repeat.so), and a gRPC client built from the same protos.
#include <signal.h>
#include <sys/wait.h>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <future>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "server_process.h"

namespace llm_server_test {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;
using Stub = GRPCInferenceService::Stub;

// --- the model repository ------------------------------------------------------------------------

constexpr const char* kEchoConfig = R"(backend: "repeat"
max_batch_size: 0
input [
  { name: "IN" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "AUX" data_type: TYPE_INT32 dims: [ 2 ] optional: true }
]
output [
  { name: "OUT" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "AUX_OUT" data_type: TYPE_INT32 dims: [ 2 ] }
]
)";

constexpr const char* kBatchedConfig = R"(name: "batched"
backend: "repeat"
max_batch_size: 4
dynamic_batching { }
input [ { name: "X" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
)";

constexpr const char* kStreamerConfig = R"(backend: "repeat"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "IN" data_type: TYPE_STRING dims: [ 1 ] } ]
output [
  { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "INDEX" data_type: TYPE_INT32 dims: [ 1 ] }
]
)";

constexpr const char* kMinimalConfig = R"(backend: "repeat"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
)";

std::string with_parameter(const std::string& config, const std::string& key,
                           const std::string& value) {
  return config + "parameters { key: \"" + key + "\" value { string_value: \"" + value + "\" } }\n";
}

// Every kind of model the tests need, in one repository.
void write_repository(const std::filesystem::path& repository) {
  write_model(repository, "echo", kEchoConfig);
  write_model(repository, "batched", kBatchedConfig);
  write_model(repository, "batched_pair",
              "backend: \"repeat\"\nmax_batch_size: 4\n"
              "input [ { name: \"A\" data_type: TYPE_FP32 dims: [ 1 ] }, { name: \"B\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
              "output [ { name: \"A_OUT\" data_type: TYPE_FP32 dims: [ 1 ] }, "
              "{ name: \"B_OUT\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n");
  write_model(repository, "streamer", kStreamerConfig);
  write_model(repository, "minimal", kMinimalConfig);
  write_model(repository, "counted", kMinimalConfig);
  write_model(repository, "blocker",
              std::string(kEchoConfig) + "instance_group [ { count: 2 kind: KIND_CPU } ]\n");
  write_model(repository, "broken",
              with_parameter(kMinimalConfig, "fail_model_initialize", "asked to by the test"));
  write_model(repository, "broken_instance",
              with_parameter(kMinimalConfig, "fail_instance_initialize", "asked to by the test"));
  write_model(repository, "badconfig", "backend: \"repeat\"\nbogus_field: 1\n");
  write_model(repository, "wrongname", std::string("name: \"other\"\n") + kMinimalConfig);
  write_model(repository, "nobackend",
              "backend: \"doesnotexist\"\n"
              "input [ { name: \"IN\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
              "output [ { name: \"OUT\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n");
  write_model(repository, "versions", kMinimalConfig, {1, 2, 3});
  // A config.pbtxt that is a FIFO: opening it would block the repository's load for good.
  std::filesystem::create_directories(repository / "fifo_config" / "1");
  if (::mkfifo((repository / "fifo_config" / "config.pbtxt").c_str(), 0600) != 0) {
    throw std::runtime_error("mkfifo failed");
  }
  // A folder name that is not UTF-8 (names are the filesystem's bytes).
  write_model(repository, "latin1_\xE9t\xE9", kMinimalConfig);
  write_model(repository, "autocomplete",
              with_parameter("backend: \"repeat\"\n"
                             "input [ { name: \"IN\" data_type: TYPE_INT64 dims: [ 4 ] } ]\n",
                             "auto_complete_outputs", "true"));
  // A backend found in the model's version directory instead of the backend directory.
  write_model(repository, "local",
              "backend: \"localrepeat\"\n"
              "input [ { name: \"IN\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
              "output [ { name: \"OUT\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n");
  std::filesystem::copy_file(LLM_REPEAT_BACKEND_PATH,
                             repository / "local" / "1" / "libtriton_localrepeat.so");
}

// --- request helpers ---------------------------------------------------------------------------

ModelInferRequest::InferInputTensor* add_input(ModelInferRequest& request, const std::string& name,
                                               const std::string& datatype,
                                               std::vector<int64_t> shape) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  for (int64_t d : shape) {
    input->add_shape(d);
  }
  return input;
}

ModelInferRequest text_request(const std::string& model, const std::vector<std::string>& texts,
                               const std::string& id = "") {
  ModelInferRequest request;
  request.set_model_name(model);
  request.set_id(id);
  auto* input = add_input(request, "IN", "BYTES", {static_cast<int64_t>(texts.size())});
  for (const std::string& text : texts) {
    input->mutable_contents()->add_bytes_contents(text);
  }
  return request;
}

void set_int(ModelInferRequest& request, const std::string& key, int64_t value) {
  (*request.mutable_parameters())[key].set_int64_param(value);
}
void set_bool(ModelInferRequest& request, const std::string& key, bool value) {
  (*request.mutable_parameters())[key].set_bool_param(value);
}
void set_string(ModelInferRequest& request, const std::string& key, const std::string& value) {
  (*request.mutable_parameters())[key].set_string_param(value);
}

grpc::Status infer(Stub& stub, const ModelInferRequest& request, ModelInferResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  return stub.ModelInfer(&context, request, response);
}

const std::string* raw_output(const ModelInferResponse& response, const std::string& name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == name && i < response.raw_output_contents_size()) {
      return &response.raw_output_contents(i);
    }
  }
  return nullptr;
}

std::vector<int64_t> output_shape(const ModelInferResponse& response, const std::string& name) {
  for (const auto& output : response.outputs()) {
    if (output.name() == name) {
      return {output.shape().begin(), output.shape().end()};
    }
  }
  return {};
}

bool final_flag(const ModelInferResponse& response) {
  auto it = response.parameters().find("triton_final_response");
  return it != response.parameters().end() && it->second.bool_param();
}

int32_t index_of(const ModelInferResponse& response) {
  const std::string* raw = raw_output(response, "INDEX");
  int32_t value = -1;
  if (raw != nullptr && raw->size() == sizeof(value)) {
    std::memcpy(&value, raw->data(), sizeof(value));
  }
  return value;
}

#define EXPECT_STATUS(status, expected_code, text)                                      \
  do {                                                                                  \
    const grpc::Status status_ = (status);                                              \
    EXPECT_EQ(status_.error_code(), (expected_code)) << status_.error_message();        \
    EXPECT_NE(status_.error_message().find(text), std::string::npos)                    \
        << "message: " << status_.error_message() << "\nexpected to contain: " << (text); \
  } while (false)

inference::ModelStatistics statistics_of(Stub& stub, const std::string& model) {
  inference::ModelStatisticsRequest request;
  request.set_name(model);
  inference::ModelStatisticsResponse response;
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  const grpc::Status status = stub.ModelStatistics(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.model_stats_size() > 0 ? response.model_stats(0) : inference::ModelStatistics{};
}

// Polls 'condition' every 20 ms for at most 'limit'.
template <typename Condition>
bool eventually(Condition condition, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::map<std::string, inference::RepositoryIndexResponse::ModelIndex> repository_index(
    Stub& stub, bool ready_only) {
  inference::RepositoryIndexRequest request;
  request.set_ready(ready_only);
  inference::RepositoryIndexResponse response;
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  EXPECT_TRUE(stub.RepositoryIndex(&context, request, &response).ok());
  std::map<std::string, inference::RepositoryIndexResponse::ModelIndex> by_name;
  for (const auto& model : response.models()) {
    by_name[model.name() + (model.version().empty() ? "" : "/" + model.version())] = model;
  }
  return by_name;
}

// --- the shared server --------------------------------------------------------------------------

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    write_repository(dir_->path() / "models");
    // No --backend-directory: the default (<bin>/../backends) must find libtriton_repeat.so.
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--model-repository", (dir_->path() / "models").string()},
        dir_->path() / "server.log");
  }
  static void TearDownTestSuite() {
    // A clean exit after everything the tests did (and, under ASan, no leaks reported).
    const int status = server_->stop(SIGTERM, std::chrono::seconds(60));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "wait status " << status << "\n" << server_->log();
    server_.reset();
    dir_.reset();
  }
  void SetUp() override { stub_ = server_->stub(); }

  static std::unique_ptr<TempDir> dir_;
  static std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Stub> stub_;
};

std::unique_ptr<TempDir> ServerTest::dir_;
std::unique_ptr<ServerProcess> ServerTest::server_;

TEST_F(ServerTest, Health) {
  grpc::ClientContext live_context;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(&live_context, {}, &live).ok());
  EXPECT_TRUE(live.live());

  // Ready although some models failed to load (no --strict-readiness): the others serve.
  grpc::ClientContext ready_context;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&ready_context, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  auto model_ready = [&](const std::string& name, const std::string& version) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->ModelReady(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.ready();
  };
  EXPECT_TRUE(model_ready("echo", ""));
  EXPECT_TRUE(model_ready("echo", "1"));
  EXPECT_FALSE(model_ready("echo", "7"));
  EXPECT_FALSE(model_ready("broken", ""));
  EXPECT_FALSE(model_ready("no_such_model", ""));

  inference::ModelReadyRequest bad_version;
  bad_version.set_name("echo");
  bad_version.set_version("one");
  inference::ModelReadyResponse response;
  grpc::ClientContext context;
  EXPECT_STATUS(stub_->ModelReady(&context, bad_version, &response),
                grpc::StatusCode::INVALID_ARGUMENT,
                "failed to get model version from specified version string 'one'");
}

TEST_F(ServerTest, ServerMetadata) {
  grpc::ClientContext context;
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "llm-server");
  EXPECT_EQ(metadata.version(), LLM_PROJECT_VERSION);
  const std::set<std::string> extensions(metadata.extensions().begin(), metadata.extensions().end());
  EXPECT_TRUE(extensions.count("model_repository"));
  EXPECT_TRUE(extensions.count("statistics"));
}

TEST_F(ServerTest, ModelMetadata) {
  inference::ModelMetadataRequest request;
  request.set_name("echo");
  inference::ModelMetadataResponse metadata;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  }
  EXPECT_EQ(metadata.name(), "echo");
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  EXPECT_EQ(metadata.platform(), "repeat");
  ASSERT_EQ(metadata.inputs_size(), 2);
  EXPECT_EQ(metadata.inputs(0).name(), "IN");
  EXPECT_EQ(metadata.inputs(0).datatype(), "BYTES");
  EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(), metadata.inputs(0).shape().end()),
            std::vector<int64_t>({-1}));
  EXPECT_EQ(metadata.inputs(1).datatype(), "INT32");
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(1).name(), "AUX_OUT");

  // With max_batch_size > 0 the shapes start with the batch dimension (-1).
  request.set_name("batched");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  }
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(), metadata.inputs(0).shape().end()),
            std::vector<int64_t>({-1, 3}));

  request.set_name("no_such_model");
  grpc::ClientContext context;
  EXPECT_STATUS(stub_->ModelMetadata(&context, request, &metadata), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'no_such_model' is not found");
}

TEST_F(ServerTest, ModelConfigDefaultsAndTheBackendsJson) {
  inference::ModelConfigRequest request;
  request.set_name("minimal");
  inference::ModelConfigResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ModelConfig(&context, request, &response).ok());
  const inference::ModelConfig& config = response.config();
  EXPECT_EQ(config.name(), "minimal");  // from the directory
  EXPECT_EQ(config.backend(), "repeat");
  ASSERT_TRUE(config.version_policy().has_latest());
  EXPECT_EQ(config.version_policy().latest().num_versions(), 1u);
  ASSERT_EQ(config.instance_group_size(), 1);
  EXPECT_EQ(config.instance_group(0).name(), "minimal");
  EXPECT_EQ(config.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(config.instance_group(0).count(), 1);
  EXPECT_TRUE(config.optimization().input_pinned_memory().enable());
  EXPECT_TRUE(config.optimization().output_pinned_memory().enable());

  // The JSON the backend got from TRITONBACKEND_ModelConfig describes the same config.
  ModelInferRequest infer_request;
  infer_request.set_model_name("minimal");
  const float values[2] = {1.5f, -2.0f};
  add_input(infer_request, "IN", "FP32", {2});
  infer_request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  set_bool(infer_request, "return_config", true);
  ModelInferResponse infer_response;
  ASSERT_TRUE(infer(*stub_, infer_request, &infer_response).ok());
  const std::string json = infer_response.parameters().at("model_config_json").string_param();

  inference::ModelConfig from_json;
  google::protobuf::util::JsonParseOptions options;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &from_json, options).ok()) << json;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_json, config))
      << from_json.DebugString() << "\nvs\n" << config.DebugString();

  // Triton's form: proto field names, enums by name, primitive fields always present, and the
  // int64 fields it fixes (dims) as numbers.
  const nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["max_batch_size"], 0);
  EXPECT_EQ(parsed["platform"], "");
  EXPECT_EQ(parsed["instance_group"][0]["kind"], "KIND_CPU");
  EXPECT_EQ(parsed["input"][0]["data_type"], "TYPE_FP32");
  EXPECT_EQ(parsed["input"][0]["dims"], nlohmann::json::array({-1}));
  EXPECT_EQ(parsed["version_policy"]["latest"]["num_versions"], 1);
}

TEST_F(ServerTest, RepositoryIndexShowsFailuresWhileOthersServe) {
  auto index = repository_index(*stub_, false);
  EXPECT_EQ(index["echo/1"].state(), "READY");
  EXPECT_EQ(index["streamer/1"].state(), "READY");
  EXPECT_EQ(index["local/1"].state(), "READY");

  EXPECT_EQ(index["broken/1"].state(), "UNAVAILABLE");
  EXPECT_NE(index["broken/1"].reason().find(
                "repeat backend: model 'broken' refuses to load: asked to by the test"),
            std::string::npos)
      << index["broken/1"].reason();
  EXPECT_EQ(index["broken_instance/1"].state(), "UNAVAILABLE");
  EXPECT_NE(index["broken_instance/1"].reason().find("instance 'broken_instance' refuses to load"),
            std::string::npos);

  // A config that does not parse: the reason names file, line and column.
  EXPECT_EQ(index["badconfig"].state(), "UNAVAILABLE");
  EXPECT_NE(index["badconfig"].reason().find("badconfig/config.pbtxt:2:"), std::string::npos)
      << index["badconfig"].reason();
  EXPECT_NE(index["badconfig"].reason().find("bogus_field"), std::string::npos);

  EXPECT_NE(index["wrongname"].reason().find(
                "unexpected directory name 'wrongname' for model 'other', directory name must "
                "equal model name"),
            std::string::npos);
  EXPECT_EQ(index["nobackend/1"].state(), "UNAVAILABLE");
  EXPECT_NE(index["nobackend/1"].reason().find("unable to find backend library "
                                                "'libtriton_doesnotexist.so'"),
            std::string::npos);

  EXPECT_EQ(index["fifo_config"].state(), "UNAVAILABLE");
  EXPECT_NE(index["fifo_config"].reason().find("fifo_config/config.pbtxt: not a regular file"), std::string::npos)
      << index["fifo_config"].reason();

  // Names and reasons are protobuf strings: bytes that are not UTF-8 would make this whole listing
  // fail to parse (repository_index expects OK), so they arrive replaced by U+FFFD.
  EXPECT_EQ(index["latin1_\xEF\xBF\xBDt\xEF\xBF\xBD/1"].state(), "READY");

  // Only the latest version is served by default.
  EXPECT_EQ(index.count("versions/1"), 0u);
  EXPECT_EQ(index["versions/3"].state(), "READY");

  const auto ready = repository_index(*stub_, true);
  EXPECT_EQ(ready.count("echo/1"), 1u);
  EXPECT_EQ(ready.count("broken/1"), 0u);
  EXPECT_EQ(ready.count("badconfig"), 0u);
}

TEST_F(ServerTest, UnaryInferWithTypedBytes) {
  ModelInferRequest request = text_request("echo", {"hello", "", "wörld"}, "typed-1");
  auto* aux = add_input(request, "AUX", "INT32", {2});
  aux->mutable_contents()->add_int_contents(7);
  aux->mutable_contents()->add_int_contents(-9);
  ModelInferResponse response;
  const grpc::Status status = infer(*stub_, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "echo");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "typed-1");
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(output_shape(response, "OUT"), std::vector<int64_t>({3}));
  EXPECT_EQ(deserialize_bytes(*raw_output(response, "OUT")),
            std::vector<std::string>({"hello", "", "wörld"}));
  const std::string* aux_out = raw_output(response, "AUX_OUT");
  ASSERT_NE(aux_out, nullptr);
  ASSERT_EQ(aux_out->size(), 8u);
  int32_t values[2];
  std::memcpy(values, aux_out->data(), sizeof(values));
  EXPECT_EQ(values[0], 7);
  EXPECT_EQ(values[1], -9);
  EXPECT_EQ(response.parameters().count("triton_final_response"), 0u);  // unary: no such flag
}

TEST_F(ServerTest, UnaryInferWithRawBytes) {
  ModelInferRequest request;
  request.set_model_name("echo");
  add_input(request, "IN", "BYTES", {2});
  const std::string with_nul("nul\0inside", 10);
  request.add_raw_input_contents(serialize_bytes({"raw", with_nul}));
  ModelInferResponse response;
  const grpc::Status status = infer(*stub_, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(deserialize_bytes(*raw_output(response, "OUT")),
            std::vector<std::string>({"raw", with_nul}));
  EXPECT_EQ(raw_output(response, "AUX_OUT"), nullptr);  // AUX is optional and was not sent
}

TEST_F(ServerTest, ParametersReachTheBackendWithTheirTypes) {
  ModelInferRequest request = text_request("echo", {"x"});
  set_int(request, "max_tokens", 42);
  set_bool(request, "stream", true);
  set_string(request, "style", "terse");
  (*request.mutable_parameters())["temperature"].set_double_param(0.25);
  set_int(request, "sequence_id", 99);  // a request property, not a backend parameter
  ModelInferResponse response;
  ASSERT_TRUE(infer(*stub_, request, &response).ok());
  const auto& params = response.parameters();
  EXPECT_EQ(params.at("param_max_tokens").int64_param(), 42);
  EXPECT_TRUE(params.at("param_stream").bool_param());
  EXPECT_EQ(params.at("param_style").string_param(), "terse");
  EXPECT_DOUBLE_EQ(params.at("param_temperature").double_param(), 0.25);
  EXPECT_EQ(params.count("param_sequence_id"), 0u);
}

TEST_F(ServerTest, RequestedOutputsLimitTheResponse) {
  ModelInferRequest request = text_request("echo", {"x"});
  auto* aux = add_input(request, "AUX", "INT32", {2});
  aux->mutable_contents()->add_int_contents(1);
  aux->mutable_contents()->add_int_contents(2);
  request.add_outputs()->set_name("AUX_OUT");
  ModelInferResponse response;
  ASSERT_TRUE(infer(*stub_, request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "AUX_OUT");
}

TEST_F(ServerTest, UnknownModelsAndVersions) {
  ModelInferResponse response;
  EXPECT_STATUS(infer(*stub_, text_request("no_such_model", {"x"}), &response),
                grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'no_such_model' is not found");

  ModelInferRequest versioned = text_request("echo", {"x"});
  versioned.set_model_version("7");
  EXPECT_STATUS(infer(*stub_, versioned, &response), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'echo' version 7 is not found");

  ModelInferRequest broken = text_request("broken", {"x"});
  EXPECT_STATUS(infer(*stub_, broken, &response), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'broken' has no available versions");
  broken.set_model_version("1");
  EXPECT_STATUS(infer(*stub_, broken, &response), grpc::StatusCode::UNAVAILABLE,
                "Request for unknown model: 'broken' version 1 is not at ready state");

  ModelInferRequest old_version;
  old_version.set_model_name("versions");
  old_version.set_model_version("1");
  EXPECT_STATUS(infer(*stub_, old_version, &response), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'versions' version 1 is not found");
}

TEST_F(ServerTest, ValidationErrorsNameTheInput) {
  ModelInferResponse response;
  const auto invalid = grpc::StatusCode::INVALID_ARGUMENT;

  ModelInferRequest unexpected = text_request("echo", {"x"});
  add_input(unexpected, "BOGUS", "INT32", {1})->mutable_contents()->add_int_contents(1);
  EXPECT_STATUS(infer(*stub_, unexpected, &response), invalid,
                "unexpected inference input 'BOGUS' for model 'echo'");

  ModelInferRequest missing;
  missing.set_model_name("echo");
  auto* aux = add_input(missing, "AUX", "INT32", {2});
  aux->mutable_contents()->add_int_contents(1);
  aux->mutable_contents()->add_int_contents(2);
  EXPECT_STATUS(infer(*stub_, missing, &response), invalid,
                "expected number of inputs between 1 and 2 but got 1 inputs for model 'echo'. "
                "Got inputs ['AUX'], but missing required inputs ['IN']. Please provide all "
                "required inputs.");

  ModelInferRequest wrong_type;
  wrong_type.set_model_name("echo");
  add_input(wrong_type, "IN", "INT32", {1})->mutable_contents()->add_int_contents(3);
  EXPECT_STATUS(infer(*stub_, wrong_type, &response), invalid,
                "inference input 'IN' data-type is 'INT32', but model 'echo' expects 'BYTES'");

  ModelInferRequest wrong_shape = text_request("echo", {"x"}, "shape-1");
  auto* aux3 = add_input(wrong_shape, "AUX", "INT32", {3});
  for (int v : {1, 2, 3}) {
    aux3->mutable_contents()->add_int_contents(v);
  }
  EXPECT_STATUS(infer(*stub_, wrong_shape, &response), invalid,
                "[request id: shape-1] unexpected shape for input 'AUX' for model 'echo'. "
                "Expected [2], got [3]");

  ModelInferRequest short_raw;
  short_raw.set_model_name("echo");
  add_input(short_raw, "IN", "BYTES", {1});
  add_input(short_raw, "AUX", "INT32", {2});
  short_raw.add_raw_input_contents(serialize_bytes({"x"}));
  short_raw.add_raw_input_contents(std::string(4, '\0'));
  EXPECT_STATUS(infer(*stub_, short_raw, &response), invalid,
                "[request id: <id_unknown>] input byte size mismatch for input 'AUX' for model "
                "'echo'. Expected 8, got 4");

  // A shape whose byte size wraps around 64 bits to the bytes sent is still a mismatch.
  ModelInferRequest wrapping;
  wrapping.set_model_name("minimal");
  add_input(wrapping, "IN", "FP32", {int64_t{1} << 62});
  wrapping.add_raw_input_contents(std::string());
  EXPECT_STATUS(infer(*stub_, wrapping, &response), invalid,
                "[request id: <id_unknown>] input byte size mismatch for input 'IN' for model "
                "'minimal'. Expected more than 2^64, got 0");

  ModelInferRequest both = text_request("echo", {"x"});
  add_input(both, "AUX", "INT32", {2});
  both.add_raw_input_contents(std::string(8, '\0'));
  EXPECT_STATUS(infer(*stub_, both, &response), invalid,
                "contents field must not be specified when using raw_input_contents for 'IN' "
                "for model 'echo'");

  ModelInferRequest too_few_strings;
  too_few_strings.set_model_name("echo");
  add_input(too_few_strings, "IN", "BYTES", {2});
  too_few_strings.add_raw_input_contents(serialize_bytes({"only one"}));
  EXPECT_STATUS(infer(*stub_, too_few_strings, &response), invalid,
                "expected 2 string elements for inference input 'IN' for model 'echo', got 1");

  ModelInferRequest no_data;
  no_data.set_model_name("echo");
  add_input(no_data, "IN", "BYTES", {1});
  EXPECT_STATUS(infer(*stub_, no_data, &response), invalid,
                "unable to find data for input tensor 'IN' for model 'echo' in request.");

  ModelInferRequest typed_mismatch;
  typed_mismatch.set_model_name("echo");
  add_input(typed_mismatch, "IN", "BYTES", {1})->mutable_contents()->add_fp32_contents(1.0f);
  EXPECT_STATUS(infer(*stub_, typed_mismatch, &response), invalid,
                "unexpected explicit tensor data for input tensor 'IN' for model 'echo' of type "
                "'FP32', expected datatype 'BYTES'");

  ModelInferRequest unknown_output = text_request("echo", {"x"});
  unknown_output.add_outputs()->set_name("NOPE");
  EXPECT_STATUS(infer(*stub_, unknown_output, &response), invalid,
                "unexpected inference output 'NOPE' for model 'echo'");

  ModelInferRequest reserved = text_request("echo", {"x"});
  set_bool(reserved, "triton_secret", true);
  EXPECT_STATUS(infer(*stub_, reserved, &response), invalid,
                "parameter keys starting with 'triton_' are reserved for Triton usage");

  ModelInferRequest bad_sequence = text_request("echo", {"x"});
  set_bool(bad_sequence, "sequence_id", true);
  EXPECT_STATUS(infer(*stub_, bad_sequence, &response), invalid,
                "invalid value type for 'sequence_id' parameter, expected int64_param or "
                "string_param.");
}

TEST_F(ServerTest, BatchedModel) {
  ModelInferRequest request;
  request.set_model_name("batched");
  add_input(request, "X", "FP32", {2, 3});
  const float values[6] = {1, 2, 3, 4, 5, 6};
  request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  ModelInferResponse response;
  const grpc::Status status = infer(*stub_, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(output_shape(response, "Y"), std::vector<int64_t>({2, 3}));
  EXPECT_EQ(*raw_output(response, "Y"), request.raw_input_contents(0));

  ModelInferRequest no_batch_dim;
  no_batch_dim.set_model_name("batched");
  add_input(no_batch_dim, "X", "FP32", {3});
  no_batch_dim.add_raw_input_contents(std::string(12, '\0'));
  EXPECT_STATUS(infer(*stub_, no_batch_dim, &response), grpc::StatusCode::INVALID_ARGUMENT,
                "unexpected shape for input 'X' for model 'batched'. Expected [-1,3], got [3]. "
                "NOTE: Setting a non-zero max_batch_size");

  // A negative batch dimension is named on its own input, not as a mismatch on the next one.
  ModelInferRequest negative;
  negative.set_model_name("batched_pair");
  add_input(negative, "A", "FP32", {-1, 1});
  add_input(negative, "B", "FP32", {1, 1});
  negative.add_raw_input_contents(std::string(4, '\0'));
  negative.add_raw_input_contents(std::string(4, '\0'));
  EXPECT_STATUS(infer(*stub_, negative, &response), grpc::StatusCode::INVALID_ARGUMENT,
                "All input dimensions should be specified for input 'A' for model 'batched_pair', got [-1,1]");

  ModelInferRequest too_big;
  too_big.set_model_name("batched");
  add_input(too_big, "X", "FP32", {5, 3});
  too_big.add_raw_input_contents(std::string(60, '\0'));
  EXPECT_STATUS(infer(*stub_, too_big, &response), grpc::StatusCode::INVALID_ARGUMENT,
                "inference request batch-size must be <= 4 for 'batched'");
}

TEST_F(ServerTest, DecoupledModelRefusedOnUnaryInfer) {
  ModelInferResponse response;
  EXPECT_STATUS(infer(*stub_, text_request("streamer", {"x"}), &response),
                grpc::StatusCode::UNIMPLEMENTED,
                "ModelInfer RPC doesn't support models with decoupled transaction policy");
}

TEST_F(ServerTest, UnimplementedRpcsSaySo) {
  grpc::ClientContext context;
  inference::SystemSharedMemoryStatusResponse response;
  EXPECT_STATUS(stub_->SystemSharedMemoryStatus(&context, {}, &response),
                grpc::StatusCode::UNIMPLEMENTED,
                "llm-server does not implement SystemSharedMemoryStatus");
}

TEST_F(ServerTest, AnUnparseableInferRequestIsInternalAsInTritonserver) {
  // Bytes that are no ModelInferRequest (field 1, a string, claims 100 bytes and has 1): gRPC's
  // callback API would answer UNIMPLEMENTED without a message; tritonserver says this.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  const char garbage[] = {0x0a, 0x64, 0x41};
  grpc::Slice slice(garbage, sizeof(garbage));
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::promise<grpc::Status> done;
  generic.UnaryCall(&context, "/inference.GRPCInferenceService/ModelInfer", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status status) { done.set_value(std::move(status)); });
  EXPECT_STATUS(done.get_future().get(), grpc::StatusCode::INTERNAL, "Unable to parse request");
}

TEST_F(ServerTest, RepositoryLoadRefusedWithoutExplicitMode) {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name("echo");
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  EXPECT_STATUS(stub_->RepositoryModelLoad(&context, request, &response),
                grpc::StatusCode::UNAVAILABLE,
                "explicit model load / unload is not allowed if polling is enabled");
}

TEST_F(ServerTest, BackendFoundInTheModelsVersionDirectory) {
  ModelInferRequest request;
  request.set_model_name("local");
  add_input(request, "IN", "FP32", {1});
  const float value = 3.5f;
  request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(&value), sizeof(value)));
  ModelInferResponse response;
  const grpc::Status status = infer(*stub_, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(*raw_output(response, "OUT"), request.raw_input_contents(0));
}

TEST_F(ServerTest, BackendAutoCompletesTheConfig) {
  inference::ModelConfigRequest request;
  request.set_name("autocomplete");
  inference::ModelConfigResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ModelConfig(&context, request, &response).ok());
  ASSERT_EQ(response.config().output_size(), 1);
  EXPECT_EQ(response.config().output(0).name(), "IN_OUT");
  EXPECT_EQ(response.config().output(0).data_type(), inference::TYPE_INT64);
  EXPECT_EQ(response.config().output(0).dims(0), 4);
}

// --- streaming ------------------------------------------------------------------------------------

using Stream = grpc::ClientReaderWriter<ModelInferRequest, ModelStreamInferResponse>;

TEST_F(ServerTest, StreamWithSeveralRequestsInFlight) {
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  const std::vector<std::string> ids = {"a", "b", "c"};
  for (const std::string& id : ids) {
    ModelInferRequest request = text_request("streamer", {"text-" + id}, id);
    set_int(request, "repeat", 4);
    // The backend holds every response until all three requests are in flight at once.
    set_string(request, "rendezvous", "three");
    set_int(request, "rendezvous_count", 3);
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());

  std::map<std::string, std::vector<int32_t>> indices;
  ModelStreamInferResponse message;
  while (stream->Read(&message)) {
    ASSERT_EQ(message.error_message(), "");
    const ModelInferResponse& response = message.infer_response();
    EXPECT_FALSE(final_flag(response));
    EXPECT_EQ(deserialize_bytes(*raw_output(response, "OUT")),
              std::vector<std::string>({"text-" + response.id()}));
    indices[response.id()].push_back(index_of(response));
  }
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  for (const std::string& id : ids) {
    EXPECT_EQ(indices[id], std::vector<int32_t>({0, 1, 2, 3})) << "request " << id;
  }
}

TEST_F(ServerTest, StreamEmptyFinalResponseOnRequest) {
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);

  ModelInferRequest with_flag = text_request("streamer", {"w"}, "with");
  set_int(with_flag, "repeat", 2);
  set_bool(with_flag, "triton_enable_empty_final_response", true);
  ASSERT_TRUE(stream->Write(with_flag));
  std::vector<ModelStreamInferResponse> received(3);
  for (auto& message : received) {
    ASSERT_TRUE(stream->Read(&message));
  }
  EXPECT_FALSE(final_flag(received[0].infer_response()));
  EXPECT_FALSE(final_flag(received[1].infer_response()));
  EXPECT_TRUE(final_flag(received[2].infer_response()));
  EXPECT_EQ(received[2].infer_response().outputs_size(), 0);  // FINAL flag only, no outputs
  EXPECT_EQ(received[2].infer_response().id(), "with");
  EXPECT_EQ(received[2].infer_response().model_name(), "streamer");

  // FINAL sent with the last response: no extra empty response.
  ModelInferRequest final_with_last = text_request("streamer", {"l"}, "last");
  set_int(final_with_last, "repeat", 2);
  set_bool(final_with_last, "final_with_last", true);
  set_bool(final_with_last, "triton_enable_empty_final_response", true);
  ASSERT_TRUE(stream->Write(final_with_last));

  // Without the parameter the FINAL-only event is not sent to the client.
  ModelInferRequest without_flag = text_request("streamer", {"n"}, "without");
  set_int(without_flag, "repeat", 2);
  ASSERT_TRUE(stream->Write(without_flag));
  ASSERT_TRUE(stream->WritesDone());

  std::map<std::string, std::vector<bool>> finals;
  ModelStreamInferResponse message;
  while (stream->Read(&message)) {
    finals[message.infer_response().id()].push_back(final_flag(message.infer_response()));
    EXPECT_EQ(message.infer_response().outputs_size(), 2);
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(finals["last"], std::vector<bool>({false, true}));
  EXPECT_EQ(finals["without"], std::vector<bool>({false, false}));
}

TEST_F(ServerTest, StreamErrorsArriveInTheStreamWithoutClosingIt) {
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  ModelStreamInferResponse message;

  ASSERT_TRUE(stream->Write(text_request("no_such_model", {"x"}, "missing")));
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.error_message(), "Request for unknown model: 'no_such_model' is not found");
  EXPECT_EQ(message.infer_response().id(), "missing");

  ModelInferRequest failing = text_request("streamer", {"x"}, "failing");
  set_string(failing, "fail_request", "the backend says no");
  ASSERT_TRUE(stream->Write(failing));
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.error_message(), "the backend says no");
  EXPECT_EQ(message.infer_response().id(), "failing");
  EXPECT_TRUE(final_flag(message.infer_response()));

  ModelInferRequest good = text_request("streamer", {"fine"}, "good");
  set_int(good, "repeat", 1);
  ASSERT_TRUE(stream->Write(good));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.error_message(), "");
  EXPECT_EQ(message.infer_response().id(), "good");
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, StreamServesNonDecoupledModels) {
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(text_request("echo", {"one"}, "e1")));
  ASSERT_TRUE(stream->WritesDone());
  ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.error_message(), "");
  EXPECT_TRUE(final_flag(message.infer_response()));
  EXPECT_EQ(deserialize_bytes(*raw_output(message.infer_response(), "OUT")),
            std::vector<std::string>({"one"}));
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
}

uint64_t cancelled_responses(const inference::ModelStatistics& stats) {
  uint64_t total = 0;
  for (const auto& [index, response] : stats.response_stats()) {
    total += response.cancel().count();
  }
  return total;
}

TEST_F(ServerTest, CancellingAStreamReachesTheBackend) {
  const uint64_t before = cancelled_responses(statistics_of(*stub_, "streamer"));
  {
    grpc::ClientContext context;
    context.set_deadline(call_deadline());
    std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
    ModelInferRequest endless = text_request("streamer", {"x"}, "endless");
    set_bool(endless, "until_cancelled", true);
    set_int(endless, "delay_ms", 5);
    ASSERT_TRUE(stream->Write(endless));
    ModelStreamInferResponse message;
    ASSERT_TRUE(stream->Read(&message));  // the request is running in the backend
    context.TryCancel();
    while (stream->Read(&message)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The backend saw TRITONBACKEND_ResponseFactoryIsCancelled and reported a cancelled response.
  EXPECT_TRUE(eventually([&] { return cancelled_responses(statistics_of(*stub_, "streamer")) > before; }));
}

int64_t blocker_counter(Stub& stub, const std::string& name) {
  ModelInferResponse probe;
  if (!infer(stub, text_request("blocker", {"probe"}), &probe).ok()) {
    return -1;
  }
  return probe.parameters().at(name).int64_param();
}

TEST_F(ServerTest, CancellingAUnaryCallReachesTheBackend) {
  // 'blocker' has two instances: one waits in Execute for the cancellation, the other answers
  // the probes that watch the backend's counters.
  const int64_t blocked_before = blocker_counter(*stub_, "blocked_requests");
  const int64_t cancelled_before = blocker_counter(*stub_, "cancelled_requests");
  const uint64_t failed_before = statistics_of(*stub_, "blocker").inference_stats().fail().count();
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  grpc::Status status;
  std::thread call([&] {
    ModelInferRequest blocking = text_request("blocker", {"x"});
    set_bool(blocking, "block_until_cancelled", true);
    ModelInferResponse response;
    status = stub_->ModelInfer(&context, blocking, &response);
  });
  const bool blocked =
      eventually([&] { return blocker_counter(*stub_, "blocked_requests") > blocked_before; });
  context.TryCancel();
  call.join();
  ASSERT_TRUE(blocked);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // TRITONBACKEND_RequestIsCancelled turned true in the backend, which failed the request.
  EXPECT_TRUE(eventually(
      [&] { return blocker_counter(*stub_, "cancelled_requests") > cancelled_before; }));
  EXPECT_TRUE(eventually([&] {
    return statistics_of(*stub_, "blocker").inference_stats().fail().count() == failed_before + 1;
  }));
}

TEST_F(ServerTest, ARequestCancelledWhileQueuedCountsAsAFailure) {
  // Both 'blocker' instances wait in Execute; a probe sent then stays in the server's queue until
  // its deadline cancels it there; it never reaches the backend, so the server counts it
  // (tritonserver's CANCELED failure reason) when an instance takes it off the queue.
  const int64_t blocked_before = blocker_counter(*stub_, "blocked_requests");
  const uint64_t failed_before = statistics_of(*stub_, "blocker").inference_stats().fail().count();
  std::array<grpc::ClientContext, 2> contexts;
  std::vector<std::thread> calls;
  for (grpc::ClientContext& context : contexts) {
    context.set_deadline(call_deadline());
    calls.emplace_back([&] {
      ModelInferRequest blocking = text_request("blocker", {"x"});
      set_bool(blocking, "block_until_cancelled", true);
      ModelInferResponse response;
      stub_->ModelInfer(&context, blocking, &response);
    });
    if (calls.size() == 1) {
      ASSERT_TRUE(eventually([&] { return blocker_counter(*stub_, "blocked_requests") > blocked_before; }));
    }
  }
  // Until the second blocking request holds the other instance, probes are answered.
  bool queued = false;
  for (int attempt = 0; attempt < 50 && !queued; ++attempt) {
    grpc::ClientContext probe_context;
    probe_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    ModelInferResponse response;
    queued = stub_->ModelInfer(&probe_context, text_request("blocker", {"probe"}), &response).error_code() ==
             grpc::StatusCode::DEADLINE_EXCEEDED;
  }
  for (grpc::ClientContext& context : contexts) context.TryCancel();
  for (std::thread& call : calls) call.join();
  ASSERT_TRUE(queued);
  // The two blocked requests failed in the backend, the probe in the server's queue.
  EXPECT_TRUE(eventually([&] {
    return statistics_of(*stub_, "blocker").inference_stats().fail().count() == failed_before + 3;
  })) << statistics_of(*stub_, "blocker").inference_stats().fail().count() - failed_before;
}

TEST_F(ServerTest, UnaryDeadlineCancelsTheRequest) {
  ModelInferRequest blocking = text_request("blocker", {"x"});
  set_bool(blocking, "block_until_cancelled", true);
  ModelInferResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  EXPECT_EQ(stub_->ModelInfer(&context, blocking, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // The deadline cancels the request wherever it is: a request that reached the backend sees
  // TRITONBACKEND_RequestIsCancelled, one still queued is never executed. Either way every
  // request that blocked is eventually released by its cancellation.
  EXPECT_TRUE(eventually([&] {
    const int64_t blocked = blocker_counter(*stub_, "blocked_requests");
    return blocked >= 0 && blocked == blocker_counter(*stub_, "cancelled_requests");
  }));
}

TEST_F(ServerTest, StatisticsCountWhatTheBackendReports) {
  const inference::ModelStatistics before = statistics_of(*stub_, "counted");
  for (int i = 0; i < 3; ++i) {
    ModelInferRequest request;
    request.set_model_name("counted");
    add_input(request, "IN", "FP32", {2});
    request.add_raw_input_contents(std::string(8, '\0'));
    ModelInferResponse response;
    ASSERT_TRUE(infer(*stub_, request, &response).ok());
  }
  // A backend reports statistics after it sends the response, as Triton's backends do, so the
  // client can hold the response before the counts move: wait for the last report of the three.
  const auto batch_executions = [](const inference::ModelStatistics& statistics) {
    return statistics.batch_stats_size() == 0 ? uint64_t{0}
                                              : statistics.batch_stats(0).compute_infer().count();
  };
  inference::ModelStatistics after;
  ASSERT_TRUE(eventually([&] {
    after = statistics_of(*stub_, "counted");
    return batch_executions(after) >= batch_executions(before) + 3;
  }));
  EXPECT_EQ(after.name(), "counted");
  EXPECT_EQ(after.version(), "1");
  EXPECT_EQ(after.inference_count() - before.inference_count(), 3u);
  EXPECT_EQ(after.execution_count() - before.execution_count(), 3u);
  EXPECT_EQ(after.inference_stats().success().count() - before.inference_stats().success().count(), 3u);
  EXPECT_EQ(after.inference_stats().queue().count() - before.inference_stats().queue().count(), 3u);
  EXPECT_EQ(after.inference_stats().fail().count(), before.inference_stats().fail().count());
  EXPECT_GT(after.last_inference(), 0u);
  ASSERT_EQ(after.batch_stats_size(), 1);
  EXPECT_EQ(after.batch_stats(0).batch_size(), 1u);
  EXPECT_GE(after.batch_stats(0).compute_infer().count(), 3u);
  ASSERT_EQ(after.memory_usage_size(), 1);
  EXPECT_EQ(after.memory_usage(0).type(), "CPU");
  EXPECT_EQ(after.memory_usage(0).byte_size(), 4096u + 1024u);  // model + its one instance

  // A failed request counts as a failure.
  ModelInferRequest failing;
  failing.set_model_name("counted");
  add_input(failing, "IN", "FP32", {1});
  failing.add_raw_input_contents(std::string(4, '\0'));
  set_string(failing, "fail_request", "no");
  ModelInferResponse response;
  EXPECT_STATUS(infer(*stub_, failing, &response), grpc::StatusCode::INVALID_ARGUMENT, "no");
  EXPECT_TRUE(eventually([&] {
    return statistics_of(*stub_, "counted").inference_stats().fail().count() ==
           before.inference_stats().fail().count() + 1;
  }));

  // Decoupled models report per-response statistics, keyed by the response's index.
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  ModelInferRequest request = text_request("streamer", {"s"});
  set_int(request, "repeat", 2);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->WritesDone());
  ModelStreamInferResponse message;
  while (stream->Read(&message)) {
  }
  ASSERT_TRUE(stream->Finish().ok());
  // The final, empty response (index 2) is reported after the stream has ended for the client.
  inference::ModelStatistics streamer;
  ASSERT_TRUE(eventually([&] {
    streamer = statistics_of(*stub_, "streamer");
    return streamer.response_stats().count("2") > 0;
  }));
  ASSERT_TRUE(streamer.response_stats().count("0"));
  EXPECT_GE(streamer.response_stats().at("0").success().count(), 1u);
  EXPECT_GE(streamer.response_stats().at("2").empty_response().count(), 1u);

  inference::ModelStatisticsRequest unknown;
  unknown.set_name("no_such_model");
  inference::ModelStatisticsResponse none;
  grpc::ClientContext unknown_context;
  EXPECT_STATUS(stub_->ModelStatistics(&unknown_context, unknown, &none), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'no_such_model' is not found");
}

// --- servers of their own -------------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start));
    start = end == std::string::npos ? text.size() : end + 1;
  }
  return lines;
}

// Position of the first line equal to 'line', or -1.
int position_of(const std::vector<std::string>& lines, const std::string& line) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == line) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

TEST(ServerProcessTest, ExplicitModelControlLoadsAndUnloads) {
  TempDir dir;
  write_repository(dir.path() / "models");
  const auto events = dir.path() / "events.txt";
  ServerProcess server({"--model-repository", (dir.path() / "models").string(),
                        "--model-control-mode", "explicit", "--load-model", "echo",
                        "--strict-readiness", "true",
                        "--backend-config", "repeat,event-log=" + events.string()},
                       dir.path() / "server.log");
  auto stub = server.stub();

  auto index = repository_index(*stub, false);
  EXPECT_EQ(index["echo/1"].state(), "READY");
  EXPECT_EQ(index["streamer"].state(), "");  // present in the repository, never loaded
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  ModelInferResponse response;
  EXPECT_STATUS(infer(*stub, text_request("streamer", {"x"}), &response), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'streamer' is not found");

  auto load = [&](const std::string& name) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelLoadResponse load_response;
    grpc::ClientContext context;
    context.set_deadline(call_deadline());
    return stub->RepositoryModelLoad(&context, request, &load_response);
  };
  auto unload = [&](const std::string& name) {
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelUnloadResponse unload_response;
    grpc::ClientContext context;
    context.set_deadline(call_deadline());
    return stub->RepositoryModelUnload(&context, request, &unload_response);
  };

  ASSERT_TRUE(load("minimal").ok());
  EXPECT_EQ(repository_index(*stub, true).count("minimal/1"), 1u);

  const grpc::Status broken = load("broken");
  EXPECT_STATUS(broken, grpc::StatusCode::INVALID_ARGUMENT, "load failed for model 'broken'");
  EXPECT_NE(broken.error_message().find("refuses to load: asked to by the test"), std::string::npos);
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &ready).ok());
    EXPECT_FALSE(ready.ready());  // strict readiness: a model failed
  }
  EXPECT_STATUS(load("no_such_model"), grpc::StatusCode::INVALID_ARGUMENT,
                "failed to load 'no_such_model', failed to poll from model repository");

  ASSERT_TRUE(unload("echo").ok());
  index = repository_index(*stub, false);
  EXPECT_EQ(index["echo/1"].state(), "UNAVAILABLE");
  EXPECT_EQ(index["echo/1"].reason(), "unloaded");
  EXPECT_STATUS(infer(*stub, text_request("echo", {"x"}), &response), grpc::StatusCode::NOT_FOUND,
                "Request for unknown model: 'echo' has no available versions");
  ASSERT_TRUE(load("echo").ok());
  EXPECT_TRUE(infer(*stub, text_request("echo", {"x"}), &response).ok());

  // Lifecycle order: backend once, model before instance, finalize in reverse on unload.
  const auto lines = lines_of(read_file(events));
  const int backend_init = position_of(lines, "backend initialize repeat");
  const int model_init = position_of(lines, "model initialize echo");
  const int instance_init = position_of(lines, "instance initialize echo");
  const int instance_fini = position_of(lines, "instance finalize echo");
  const int model_fini = position_of(lines, "model finalize echo");
  EXPECT_EQ(backend_init, 0);
  EXPECT_LT(backend_init, model_init);
  EXPECT_LT(model_init, instance_init);
  EXPECT_LT(instance_init, instance_fini);
  EXPECT_LT(instance_fini, model_fini);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "backend initialize repeat"), 1);
  // A failed ModelInitialize is not followed by ModelFinalize.
  EXPECT_EQ(position_of(lines, "model finalize broken"), -1);

  const int status = server.stop(SIGINT, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status)) << server.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << server.log();
  const auto final_lines = lines_of(read_file(events));
  EXPECT_EQ(final_lines.back(), "backend finalize repeat");
}

TEST(ServerProcessTest, SigtermCancelsInFlightStreamsAndExitsZero) {
  TempDir dir;
  write_repository(dir.path() / "models");
  const auto events = dir.path() / "events.txt";
  ServerProcess server({"--model-repository", (dir.path() / "models").string(),
                        "--exit-timeout-secs", "1",
                        "--backend-config", "repeat,event-log=" + events.string()},
                       dir.path() / "server.log");
  auto stub = server.stub();

  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub->ModelStreamInfer(&context);
  ModelInferRequest endless = text_request("streamer", {"x"}, "endless");
  set_bool(endless, "until_cancelled", true);
  set_int(endless, "delay_ms", 5);
  ASSERT_TRUE(stream->Write(endless));
  ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));

  const int status = server.stop(SIGTERM, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status)) << server.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << server.log();
  while (stream->Read(&message)) {
  }
  EXPECT_FALSE(stream->Finish().ok());

  const auto lines = lines_of(read_file(events));
  const int cancelled = position_of(lines, "cancelled streamer endless");
  const int instance_fini = position_of(lines, "instance finalize streamer");
  const int model_fini = position_of(lines, "model finalize streamer");
  EXPECT_GE(cancelled, 0) << read_file(events);
  EXPECT_LT(cancelled, instance_fini);
  EXPECT_LT(instance_fini, model_fini);
  EXPECT_EQ(lines.back(), "backend finalize repeat");
}

// A model whose load takes long (or hangs) must not make the server deaf to SIGTERM: before it
// serves, a signal ends it at once.
TEST(ServerProcessTest, SigtermWhileAModelLoadsExitsAtOnce) {
  TempDir dir;
  write_model(dir.path() / "models", "slow", with_parameter(kMinimalConfig, "initialize_delay_ms", "60000"));
  std::string output;
  const int status = signal_server_after({"--model-repository", (dir.path() / "models").string(), "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"},
                                         std::chrono::milliseconds(1500), SIGTERM, std::chrono::seconds(10), &output);
  ASSERT_NE(status, -1) << "still loading 10 s after SIGTERM: " << output;
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(output.find("while starting (loading models): exiting immediately"), std::string::npos) << output;
  EXPECT_EQ(output.find("serving gRPC"), std::string::npos) << output;
}

// A request message is held whole in memory: its size is bounded (--grpc-max-message-bytes).
TEST(ServerProcessTest, MessagesBeyondTheLimitAreRefused) {
  TempDir dir;
  write_model(dir.path() / "models", "echo", kEchoConfig);
  ServerProcess server({"--model-repository", (dir.path() / "models").string(), "--grpc-max-message-bytes", "65536"},
                       dir.path() / "server.log");
  const auto stub = server.stub();
  ModelInferResponse response;
  EXPECT_TRUE(infer(*stub, text_request("echo", {std::string(30000, 'a')}), &response).ok());
  const grpc::Status status = infer(*stub, text_request("echo", {std::string(70000, 'a')}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(infer(*stub, text_request("echo", {"still serving"}), &response).ok());
  const int exit_status = server.stop(SIGTERM, std::chrono::seconds(60));
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << server.log();
}

// A client that stops reading must not make the server hold its responses without bound: past
// --grpc-max-pending-response-bytes the stream is cancelled, and its requests with it.
TEST(ServerProcessTest, AStreamWhoseClientStopsReadingIsCancelledAtTheBound) {
  TempDir dir;
  write_model(dir.path() / "models", "streamer", kStreamerConfig);
  ServerProcess server({"--model-repository", (dir.path() / "models").string(), "--grpc-max-pending-response-bytes",
                        "1048576"},
                       dir.path() / "server.log");
  const auto stub = server.stub();
  {
    grpc::ClientContext context;
    context.set_deadline(call_deadline());
    std::unique_ptr<Stream> stream = stub->ModelStreamInfer(&context);
    ModelInferRequest request = text_request("streamer", {std::string(64 * 1024, 'x')}, "flood");
    set_bool(request, "until_cancelled", true);  // 64 KiB responses until cancelled
    ASSERT_TRUE(stream->Write(request));
    ASSERT_TRUE(stream->WritesDone());
    std::this_thread::sleep_for(std::chrono::seconds(3));  // not reading
    ModelStreamInferResponse message;
    int64_t received = 0;
    while (stream->Read(&message)) ++received;
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find("more than llm-server's --grpc-max-pending-response-bytes (1048576)"),
              std::string::npos)
        << status.error_message();
    EXPECT_LT(received, 100000) << "the request was not cancelled";
  }
  // The server goes on serving.
  grpc::ClientContext context;
  context.set_deadline(call_deadline());
  std::unique_ptr<Stream> stream = stub->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(text_request("streamer", {"after"}, "after")));
  ASSERT_TRUE(stream->WritesDone());
  ModelStreamInferResponse message;
  int responses = 0;
  while (stream->Read(&message)) ++responses;
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(responses, 3);
  const int exit_status = server.stop(SIGTERM, std::chrono::seconds(60));
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << server.log();
}

TEST(ServerProcessTest, CommandLine) {
  std::string output;
  int status = run_server_command({"--help"}, &output);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(output.find("--model-repository"), std::string::npos);

  status = run_server_command({"--model-repository", "/x", "--bogus"}, &output);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(output.find("unrecognized option '--bogus'"), std::string::npos) << output;

  status = run_server_command({"--model-repository", "/no/such/directory", "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"},
                              &output);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(output.find("'/no/such/directory' does not exist"), std::string::npos) << output;
}

}  // namespace
}  // namespace llm_server_test
