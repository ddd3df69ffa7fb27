#pragma once
// Model configuration (config.pbtxt) handling with Triton's rules: reading the text proto,
// filling defaults, validation, and the JSON form handed to backends.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "model_config.pb.h"

namespace llm_server {

// Parses <model_dir>/config.pbtxt. A config without a name takes the directory's name; a different
// name is an error, as in Triton. Parse errors name the file, line and column. Throws ApiError.
inference::ModelConfig read_model_config(const std::filesystem::path& model_dir);
// The same for config text read elsewhere: `source` names it in errors, `directory_name` is the
// model directory's name.
inference::ModelConfig parse_model_config(const std::string& text, const std::string& source,
                                          const std::string& directory_name);

// Fills 'backend' from well-known platforms (onnxruntime_onnx -> onnxruntime, ...), as Triton's
// server-side auto-complete does.
void complete_backend_fields(inference::ModelConfig& config);

// Triton's NormalizeModelConfig: version_policy defaults to latest{num_versions: 1}, dynamic and
// sequence batching defaults, pinned-memory defaults.
void normalize_model_config(inference::ModelConfig& config);

// Triton's NormalizeInstanceGroup for a machine without GPUs: a missing instance_group becomes one
// group named after the model (taking the backend's preferred group when it gave one), KIND_AUTO
// resolves to KIND_CPU, unnamed groups become <model>_<index> and count defaults to 1.
void normalize_instance_groups(inference::ModelConfig& config,
                               const std::vector<inference::ModelInstanceGroup>& preferred);

// Checks done before the backend sees the model (scheduling, batch size, instance groups).
void validate_model_config(const inference::ModelConfig& config);
// Checks of inputs and outputs, done after TRITONBACKEND_ModelInitialize (which may auto-complete
// them).
void validate_model_io(const inference::ModelConfig& config);

// The JSON given to backends by TRITONBACKEND_ModelConfig (config version 1), exactly as
// tritonserver produces it: protobuf's JSON printer with proto field names and all primitive
// fields, enums as names, then Triton's fix-up that turns the int64 fields it knows (dims,
// reshape shapes, specific versions, queue delays/timeouts, sequence idle time, ensemble step
// versions, warmup dims) from JSON strings back into numbers.
std::string model_config_to_json(const inference::ModelConfig& config);
// Parses the JSON form (numbers or strings for 64-bit fields, enum names case-insensitively).
inference::ModelConfig model_config_from_json(std::string_view json);

// TRITONBACKEND_ModelSetConfig: takes the fields a backend may auto-complete (inputs, outputs,
// max_batch_size, and the scheduling choice when none was set) from 'completed'.
void apply_auto_completed_config(inference::ModelConfig& config,
                                 const inference::ModelConfig& completed);

}  // namespace llm_server
