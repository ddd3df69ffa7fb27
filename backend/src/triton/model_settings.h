#pragma once
// The backend's view of a model's config.pbtxt (received as Triton's JSON): the `parameters`
// it understands and the transaction policy. No Triton calls here, so it is unit-tested alone.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/tensorrtllm/options.h"

namespace llm::triton {

struct ModelSettings {
  std::string engine = "cpu";            // cpu | tensorrtllm
  std::filesystem::path checkpoint_dir;  // cpu: the TensorRT-LLM checkpoint (absolute, resolved against the version folder)
  std::filesystem::path tokenizer_dir;   // folder of tokenizer.model; defaults to checkpoint_dir / engine_dir
  int64_t max_concurrent_requests = 8;   // cpu: sequences stepped together (tensorrtllm: tensorrtllm.max_batch_size)
  int64_t max_context_tokens = 0;        // prompt + new tokens per request; 0 = the model's context
  int64_t threads = 0;                   // cpu: engine threads; 0 = one per core
  TensorRtLlmOptions tensorrtllm;        // tensorrtllm: engine_dir and tensorrtllm_backend's knobs
  bool exclude_input_in_output = true;   // default for requests that do not say
  bool decoupled = false;                // model_transaction_policy.decoupled
  int64_t max_batch_size = 0;

  // Parses the model config JSON. Unknown parameters, parameters of the other engine and
  // ill-formed values throw llm::Error naming the parameter; `version_dir` resolves relative paths.
  // Parses the tensorrtllm settings in every build: whether this build can run them is the
  // engine factory's question.
  static ModelSettings parse(const nlohmann::json& config, const std::filesystem::path& version_dir);
};

}  // namespace llm::triton
