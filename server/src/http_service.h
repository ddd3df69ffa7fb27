#pragma once
// The KServe v2 HTTP/REST protocol and Triton's generate extension, on the same repository,
// request builder and lifecycle (shutdown, in-flight calls) as the gRPC endpoint:
//   GET  /v2/health/live | /v2/health/ready | /v2 | /v2/models/stats
//   GET  /v2/models/{m}[/versions/{v}][/ready | /config | /stats]
//   POST /v2/models/{m}[/versions/{v}]/infer            JSON tensors, binary tensor data extension
//   POST /v2/models/{m}[/versions/{v}]/generate         one JSON response
//   POST /v2/models/{m}[/versions/{v}]/generate_stream  Server-Sent Events, one per response
//   POST /v2/repository/index | /v2/repository/models/{m}/load | /unload
// Errors are {"error": "..."} with tritonserver's status codes. A client that disconnects while
// its request runs cancels it in the backend. Categories named in --http-restricted-api answer
// 403 without their header.
#include "grpc_service.h"
#include "http_server.h"
#include "restricted_api.h"

namespace llm_server {

class HttpService {
 public:
  HttpService(InferenceService& core, RestrictedApis restricted) : core_(core), restricted_(std::move(restricted)) {}
  void handle(const HttpRequest& request, HttpExchange& exchange);

 private:
  InferenceService& core_;
  RestrictedApis restricted_;
};

}  // namespace llm_server
