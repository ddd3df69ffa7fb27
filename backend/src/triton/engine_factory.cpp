#include "triton/engine_factory.h"

#include <filesystem>

#include "common/error.h"
#include "engine/cpu_engine.h"

// CMake defines LLM_WITH_TENSORRTLLM=1 with -DLLM_WITH_TENSORRTLLM=ON.
#ifndef LLM_WITH_TENSORRTLLM
#define LLM_WITH_TENSORRTLLM 0
#endif
#if LLM_WITH_TENSORRTLLM
#include "engine/tensorrtllm/tensorrtllm_engine.h"
#endif

namespace llm::triton {

bool tensorrtllm_available() { return LLM_WITH_TENSORRTLLM != 0; }

const char* tensorrtllm_target_release() { return "0.13.0"; }

void check_engine_available(const ModelSettings& settings) {
  if (settings.engine == "tensorrtllm" && !tensorrtllm_available()) {
    throw Error(std::string("engine \"tensorrtllm\": this libtriton_llm.so was built without TensorRT-LLM; rebuild it "
                            "where TensorRT-LLM ") + tensorrtllm_target_release() +
                " is installed with cmake -DLLM_WITH_TENSORRTLLM=ON (deploy/Dockerfile does), or use engine \"cpu\"");
  }
  // The folder first: otherwise the first file looked for (the tokenizer) would be reported missing.
  const bool cpu = settings.engine == "cpu";
  const std::filesystem::path& dir = cpu ? settings.cpu.checkpoint_dir : settings.tensorrtllm.engine_dir;
  const char* parameter = cpu ? "checkpoint_dir" : "engine_dir";
  const char* what = cpu ? "a TensorRT-LLM checkpoint (made by `llm convert`, `llm synth` or TensorRT-LLM's convert_checkpoint.py)"
                         : "a TensorRT-LLM engine (trtllm-build's output folder)";
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) {
    throw_error("parameter ", parameter, ": ", dir.string(), " does not exist; point it at ", what);
  }
  if (!std::filesystem::is_directory(dir, error)) {
    throw_error("parameter ", parameter, ": ", dir.string(), " is not a directory; point it at ", what);
  }
  if (!std::filesystem::exists(dir / "config.json", error)) {
    throw_error("parameter ", parameter, ": ", dir.string(), " has no config.json, so it is not ", what);
  }
}

std::unique_ptr<Engine> make_engine(const ModelSettings& settings, const Tokenizer& tokenizer, EngineLog log) {
  check_engine_available(settings);
  if (settings.engine == "cpu") {
    return std::make_unique<CpuEngine>(settings.cpu, tokenizer, std::move(log));
  }
#if LLM_WITH_TENSORRTLLM
  return std::make_unique<TensorRtLlmEngine>(settings.tensorrtllm, tokenizer, std::move(log));
#else
  (void)tokenizer;
  (void)log;
  throw Error("unreachable: check_engine_available refuses engine \"tensorrtllm\" in this build");
#endif
}

}  // namespace llm::triton
