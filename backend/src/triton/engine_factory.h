#pragma once
// Creates the engine a model's settings ask for. The one place that knows which engines exist:
// the rest of the Triton glue sees only llm::Engine.
#include <memory>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"
#include "triton/model_settings.h"

namespace llm::triton {

// Whether this build has the TensorRT-LLM engine (-DLLM_WITH_TENSORRTLLM=ON), and the
// TensorRT-LLM release it was written against.
bool tensorrtllm_available();
const char* tensorrtllm_target_release();

// Throws Error, before anything loads, when this build cannot run the engine the settings name, or
// its checkpoint_dir / engine_dir is not such a folder (missing, not a directory, no config.json).
void check_engine_available(const ModelSettings& settings);

// Throws Error for a model that cannot load: a bad checkpoint or engine folder, or engine
// "tensorrtllm" in a build without TensorRT-LLM. `tokenizer` must outlive the engine.
std::unique_ptr<Engine> make_engine(const ModelSettings& settings, const Tokenizer& tokenizer, EngineLog log);

}  // namespace llm::triton
