// config.pbtxt as the dev server reads it: text proto, Triton's defaults and checks, the JSON
// handed to backends. Bad text must end in ApiError, never a crash; any config that parses must
// come back unchanged from its JSON form (what TRITONBACKEND_ModelSetConfig parses), checks passed
// or not.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "api_error.h"
#include "model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    inference::ModelConfig config = llm_server::parse_model_config(text, "config.pbtxt", "model");
    llm_server::complete_backend_fields(config);
    llm_server::normalize_model_config(config);
    llm_server::normalize_instance_groups(config, {});
    const std::string json = llm_server::model_config_to_json(config);
    const std::string again = llm_server::model_config_to_json(llm_server::model_config_from_json(json));
    // Compared as JSON values: map fields may print their entries in another order.
    if (nlohmann::json::parse(json) != nlohmann::json::parse(again)) std::abort();
    llm_server::validate_model_config(config);
    llm_server::validate_model_io(config);
  } catch (const llm_server::ApiError&) {
  }
  return 0;
}
