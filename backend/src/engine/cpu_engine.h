#pragma once
// The CPU engine as an Engine: the project's Llama forward pass over a TensorRT-LLM checkpoint,
// with the Scheduler stepping concurrent generations round-robin.
#include <filesystem>
#include <memory>

#include "engine/cpu/llama_model.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace llm {

struct CpuEngineOptions {
  std::filesystem::path checkpoint_dir;
  size_t threads = 0;          // 0: one per core
  size_t max_concurrent = 8;   // sequences stepped together; more wait in FIFO order
};

class CpuEngine final : public Engine {
 public:
  // Loads the checkpoint; throws Error naming the file, tensor or field. `tokenizer` must
  // outlive the engine.
  CpuEngine(const CpuEngineOptions& options, const Tokenizer& tokenizer);
  ~CpuEngine() override = default;  // the scheduler (declared last) stops before the model goes

  void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) override;
  EngineStats stats() const override;
  int64_t vocab_size() const override;
  int64_t context_tokens() const override;
  std::vector<int32_t> default_end_ids() const override;
  std::string describe() const override;

 private:
  CpuEngineOptions options_;
  const Tokenizer& tokenizer_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace llm
