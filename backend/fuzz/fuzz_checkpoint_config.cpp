// config.json of a TensorRT-LLM checkpoint: JSON, then the fields the engine sizes everything from.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "checkpoint/model_config.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    const llm::ModelConfig config = llm::ModelConfig::from_json(json, "config.json");
    // A config that passes validation round-trips.
    (void)llm::ModelConfig::from_json(config.to_json(), "config.json (written back)");
  } catch (const llm::Error&) {
  }
  return 0;
}
