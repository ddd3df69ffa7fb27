#include "engine/cpu_engine.h"

#include "checkpoint/model_config.h"
#include "kernels/kernels.h"

namespace llm {

CpuEngine::CpuEngine(const CpuEngineOptions& options, const Tokenizer& tokenizer)
    : options_(options), tokenizer_(tokenizer) {
  model_ = LlamaModel::load(options_.checkpoint_dir, {options_.threads});
  scheduler_ = std::make_unique<Scheduler>(*model_, tokenizer_, options_.max_concurrent);
}

void CpuEngine::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  scheduler_->submit(std::move(request), std::move(observer));
}

EngineStats CpuEngine::stats() const {
  EngineStats s;
  s.active = scheduler_->active_count();
  s.queued = scheduler_->queued_count();
  return s;
}

int64_t CpuEngine::vocab_size() const { return model_->config().vocab_size; }

int64_t CpuEngine::context_tokens() const { return model_->config().max_position_embeddings; }

std::vector<int32_t> CpuEngine::default_end_ids() const {
  return llm::default_end_ids(options_.checkpoint_dir, tokenizer_.eos_id());
}

std::string CpuEngine::describe() const {
  return "cpu engine: " + options_.checkpoint_dir.string() + " (" + std::to_string(model_->weight_bytes() >> 20) +
         " MiB of weights, " + kernels::isa_name(model_->isa()) + ", " + std::to_string(model_->threads()) +
         " threads, " + std::to_string(options_.max_concurrent) + " concurrent sequences)";
}

}  // namespace llm
