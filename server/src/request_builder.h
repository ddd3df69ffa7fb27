#pragma once
// Turns a KServe ModelInferRequest into an InferenceRequest for a model version, with the checks
// tritonserver makes: its gRPC frontend's (parameters, typed vs raw contents) and its core's
// (inputs against the model config: names, required inputs, datatypes, shapes, byte sizes).
// Failures are ApiErrors with Triton's messages; core checks carry Triton's "[request id: ...] "
// prefix.
#include <cstddef>
#include <memory>
#include <string>

#include "grpc_service.pb.h"
#include "request.h"

namespace llm_server {

struct RequestTarget {
  std::shared_ptr<ModelVersion> model;
  std::shared_ptr<ResponseSink> sink;
  std::shared_ptr<CancellationFlag> cancellation;
};

// Longest request id accepted (tritonserver sets no limit; ids are echoed in every response).
inline constexpr size_t kMaxRequestIdBytes = 1024;

// Tensor data is moved out of 'proto' where possible (raw_input_contents).
std::unique_ptr<InferenceRequest> build_inference_request(inference::ModelInferRequest& proto,
                                                          RequestTarget target);

// Triton's GetModelVersionFromString: "" means -1 (latest); otherwise an integer >= 0.
int64_t parse_model_version(const std::string& version);

}  // namespace llm_server
