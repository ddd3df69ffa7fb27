#pragma once
// The backend's view of a model's config.pbtxt (received as Triton's JSON): the `parameters`
// it understands and the transaction policy. No Triton calls here, so it is unit-tested alone.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace llm::triton {

struct ModelSettings {
  std::filesystem::path checkpoint_dir;  // absolute, resolved against the version folder
  std::filesystem::path tokenizer_dir;   // defaults to checkpoint_dir
  std::string engine = "cpu";            // cpu | tensorrtllm
  int64_t max_concurrent_requests = 8;   // sequences stepped together; more wait in FIFO order
  int64_t max_context_tokens = 0;        // prompt + new tokens per request; 0 = the model's context
  int64_t threads = 0;                   // engine threads; 0 = one per core
  bool exclude_input_in_output = true;   // default for requests that do not say
  bool decoupled = false;                // model_transaction_policy.decoupled
  int64_t max_batch_size = 0;

  // Parses the model config JSON. Unknown parameters and ill-formed values throw llm::Error
  // naming the parameter; `version_dir` resolves relative paths.
  static ModelSettings parse(const nlohmann::json& config, const std::filesystem::path& version_dir);
};

}  // namespace llm::triton
