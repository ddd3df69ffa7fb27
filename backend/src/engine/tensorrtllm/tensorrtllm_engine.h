#pragma once
// The TensorRT-LLM engine: an llm::Engine over TensorRT-LLM's C++ executor API
// (tensorrt_llm::executor::Executor, release 0.13.0) running a decoder-only engine folder built by
// trtllm-build. Requests become executor Requests (always streamed, input excluded from the
// output); a response thread turns executor Results into StepOutputs with the project's
// tokenizer and stop-string filter; a poll thread checks the observers' cancelled() every
// cancellation_check_period_ms (calling Executor::cancelRequest) and reads
// getLatestIterationStats every stats_check_period_ms.
//
// No TensorRT-LLM type appears here, so the Triton glue compiles without its headers. The .cpp
// compiles against TensorRT-LLM's <tensorrt_llm/executor/executor.h>, or, in the unit tests
// only, against a test double with the same class surface (backend/test/tensorrtllm_double/).
#include <filesystem>
#include <memory>

#include "engine/engine.h"
#include "engine/tensorrtllm/options.h"
#include "tokenizer/tokenizer.h"

namespace llm {

class TensorRtLlmEngine final : public Engine {
 public:
  // Reads engine_dir/config.json (vocabulary, max_seq_len, max_input_len), creates the
  // executor and starts the threads. Throws Error naming the file or field, or carrying
  // TensorRT-LLM's message when the executor cannot load the engine. `tokenizer` must outlive
  // the engine.
  TensorRtLlmEngine(const TensorRtLlmOptions& options, const Tokenizer& tokenizer, EngineLog log = {});
  // Cancels what is still running (observers get on_cancelled), stops the threads and shuts
  // the executor down.
  ~TensorRtLlmEngine() override;
  TensorRtLlmEngine(const TensorRtLlmEngine&) = delete;
  TensorRtLlmEngine& operator=(const TensorRtLlmEngine&) = delete;

  void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) override;
  EngineStats stats() const override;
  int64_t vocab_size() const override;
  int64_t context_tokens() const override;
  std::vector<int32_t> default_end_ids() const override;
  std::string describe() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llm
