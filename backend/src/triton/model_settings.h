#pragma once
// The backend's view of a model's config.pbtxt (received as Triton's JSON): the `parameters`
// it understands and the transaction policy. No Triton calls here, so it is unit-tested alone.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/cpu_engine.h"
#include "engine/tensorrtllm/options.h"

namespace llm::triton {

// max_prompt_bytes's default per token of the context: generous for text (Llama tokens average
// about 4 bytes; a piece is at most 16 spaces), small enough that tokenizing a refused-anyway
// prompt never stalls the model (the check comes before the tokenizer runs).
inline constexpr int64_t kDefaultPromptBytesPerToken = 32;

struct ModelSettings {
  std::string engine = "cpu";            // cpu | tensorrtllm
  std::filesystem::path tokenizer_dir;   // folder of tokenizer.model; defaults to the checkpoint / engine folder
  int64_t max_context_tokens = 0;        // prompt + new tokens per request; 0 = the model's context
  // Bytes of text a request may send as its prompt (and as each of its stop/bad word lists),
  // checked before tokenizing; 0 = kDefaultPromptBytesPerToken per token of the context.
  int64_t max_prompt_bytes = 0;
  // The engine's settings. The batching and KV cache parameters both engines take have
  // tensorrtllm_backend's names and meanings and go to the engine the model uses.
  CpuEngineOptions cpu;                  // cpu: checkpoint_dir (absolute), threads, batching, KV cache
  TensorRtLlmOptions tensorrtllm;        // tensorrtllm: engine_dir and tensorrtllm_backend's knobs
  bool exclude_input_in_output = true;   // default for requests that do not say
  bool decoupled = false;                // model_transaction_policy.decoupled
  bool token_counts_int32 = false;       // num_input/output_tokens declared TYPE_INT32 (else UINT32)
  int64_t max_batch_size = 0;
  // What parsing took as given but did not apply (tensorrtllm_backend parameters this backend
  // ignores, unfilled template values), one line each, for the model's log.
  std::vector<std::string> notes;

  // Parses the model config JSON. Unknown parameters, parameters of the other engine and
  // ill-formed values throw llm::Error naming the parameter; `version_dir` resolves relative paths.
  // tensorrtllm_backend's parameters are taken by its names (gpt_model_path, gpt_model_type, ...),
  // so its tensorrt_llm model's config.pbtxt loads with only `backend` changed.
  // Parses the tensorrtllm settings in every build: whether this build can run them is the
  // engine factory's question.
  static ModelSettings parse(const nlohmann::json& config, const std::filesystem::path& version_dir);
};

}  // namespace llm::triton
