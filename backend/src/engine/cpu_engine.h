#pragma once
// The CPU engine as an Engine: the project's Llama forward pass over a TensorRT-LLM checkpoint,
// with in-flight batching over a paged KV cache (engine/scheduler.h) driven by one engine thread.
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "engine/cpu/llama_model.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace llm {

struct CpuEngineOptions {
  std::filesystem::path checkpoint_dir;
  size_t threads = 0;  // 0: one per core
  // Batching. scheduler.kv_cache_blocks is derived from the sizes below.
  SchedulerOptions scheduler;
  // The paged KV cache's size, as tokens or as bytes (at most one of them); neither: room for
  // max_concurrent_requests requests of the whole context each, within half the machine's memory.
  std::optional<size_t> max_tokens_in_paged_kv_cache;
  std::optional<size_t> kv_cache_memory_bytes;
  size_t context_tokens = 0;  // a request's context for the default size; 0: the model's
  std::chrono::milliseconds stats_period{100};  // verbose statistics lines at most this often
};

// The KV cache blocks the options ask for, for a model of `config` (the default as described
// above); `physical_memory_bytes` bounds the default. Throws Error naming the option when it is
// too small for a single block.
size_t kv_cache_blocks(const CpuEngineOptions& options, const ModelConfig& config, size_t physical_memory_bytes);

class CpuEngine final : public Engine {
 public:
  // Loads the checkpoint; throws Error naming the file, tensor, field or option. `tokenizer` must
  // outlive the engine; `log` receives the statistics lines (verbose).
  CpuEngine(const CpuEngineOptions& options, const Tokenizer& tokenizer, EngineLog log = {});
  // Stops the engine thread; what is still running or queued ends as cancelled.
  ~CpuEngine() override;

  void submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) override;
  EngineStats stats() const override;
  int64_t vocab_size() const override;
  int64_t context_tokens() const override;
  std::vector<int32_t> default_end_ids() const override;
  std::string describe() const override;

 private:
  void run();

  CpuEngineOptions options_;
  const Tokenizer& tokenizer_;
  EngineLog log_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Scheduler> scheduler_;  // declared after the model it runs
  std::thread thread_;
};

}  // namespace llm
