#include "request_builder.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

#include "api_error.h"
#include "datatypes.h"
#include "model.h"
#include "statistics.h"

namespace llm_server {
namespace {

[[noreturn]] void invalid(const std::string& message) {
  throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, message);
}

std::string request_prefix(const std::string& id) {
  return "[request id: " + (id.empty() ? std::string("<id_unknown>") : id) + "] ";
}

// Copies repeated numeric contents into a byte buffer, narrowing each element to 'element_size'
// bytes (INT8/INT16/UINT8/UINT16 travel as 32-bit values; little-endian keeps the low bytes).
template <typename Repeated>
std::string pack_elements(const Repeated& values, size_t element_size) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(values.size()) * element_size);
  for (const auto& value : values) {
    bytes.append(reinterpret_cast<const char*>(&value), element_size);
  }
  return bytes;
}

// The data of one input given through typed contents, with the frontend's checks
// (InferGRPCToInputHelper): one list only, and the list must match the declared datatype.
std::string typed_contents_data(const inference::ModelInferRequest::InferInputTensor& io,
                                TRITONSERVER_DataType declared, const std::string& model_name) {
  const auto& contents = io.contents();
  std::string data;
  bool supplied = false;
  auto take = [&](TRITONSERVER_DataType list_type, auto&& pack) {
    if (supplied) {
      invalid("unexpected explicit tensor data for input tensor '" + io.name() + "' for model '" +
              model_name + "', binary data was already supplied.");
    }
    if (list_type != declared) {
      invalid("unexpected explicit tensor data for input tensor '" + io.name() + "' for model '" +
              model_name + "' of type '" + datatype_name(list_type) + "', expected datatype '" +
              datatype_name(declared) + "'");
    }
    data = pack();
    supplied = true;
  };
  if (contents.bool_contents_size() > 0) {
    take(TRITONSERVER_TYPE_BOOL, [&] { return pack_elements(contents.bool_contents(), 1); });
  }
  if (contents.int_contents_size() > 0) {
    const bool narrow = declared == TRITONSERVER_TYPE_INT8 || declared == TRITONSERVER_TYPE_INT16;
    take(narrow ? declared : TRITONSERVER_TYPE_INT32, [&] {
      return pack_elements(contents.int_contents(), narrow ? datatype_byte_size(declared) : 4);
    });
  }
  if (contents.int64_contents_size() > 0) {
    take(TRITONSERVER_TYPE_INT64, [&] { return pack_elements(contents.int64_contents(), 8); });
  }
  if (contents.uint_contents_size() > 0) {
    const bool narrow = declared == TRITONSERVER_TYPE_UINT8 || declared == TRITONSERVER_TYPE_UINT16;
    take(narrow ? declared : TRITONSERVER_TYPE_UINT32, [&] {
      return pack_elements(contents.uint_contents(), narrow ? datatype_byte_size(declared) : 4);
    });
  }
  if (contents.uint64_contents_size() > 0) {
    take(TRITONSERVER_TYPE_UINT64, [&] { return pack_elements(contents.uint64_contents(), 8); });
  }
  if (contents.fp32_contents_size() > 0) {
    take(TRITONSERVER_TYPE_FP32, [&] { return pack_elements(contents.fp32_contents(), 4); });
  }
  if (contents.fp64_contents_size() > 0) {
    take(TRITONSERVER_TYPE_FP64, [&] { return pack_elements(contents.fp64_contents(), 8); });
  }
  if (contents.bytes_contents_size() > 0) {
    take(TRITONSERVER_TYPE_BYTES, [&] {
      // Triton's internal BYTES layout: a 4-byte little-endian length before each element.
      std::string serialized;
      for (const std::string& element : contents.bytes_contents()) {
        const uint32_t length = static_cast<uint32_t>(element.size());
        serialized.append(reinterpret_cast<const char*>(&length), sizeof(length));
        serialized.append(element);
      }
      return serialized;
    });
  }
  return data;
}

// Request parameters, split as tritonserver does: sequence/priority/timeout keys become request
// properties, "triton_" keys are reserved, the rest go to the backend.
struct ParsedParameters {
  std::vector<TRITONSERVER_Parameter> for_backend;
  std::variant<std::monostate, uint64_t, std::string> correlation_id;
  uint32_t flags = 0;
  uint64_t priority = 0;
  uint64_t timeout_microseconds = 0;
  bool enable_empty_final_response = false;
};

ParsedParameters parse_parameters(const inference::ModelInferRequest& proto) {
  using Choice = inference::InferParameter::ParameterChoiceCase;
  ParsedParameters parsed;
  // Map order is unspecified; sort by key so the backend sees a stable order.
  std::vector<std::pair<std::string, const inference::InferParameter*>> entries;
  for (const auto& [key, value] : proto.parameters()) {
    entries.emplace_back(key, &value);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  for (const auto& [key, value_ptr] : entries) {
    const inference::InferParameter& value = *value_ptr;
    const Choice choice = value.parameter_choice_case();
    if (key == "sequence_id") {
      if (choice == Choice::kInt64Param) {
        parsed.correlation_id = static_cast<uint64_t>(value.int64_param());
      } else if (choice == Choice::kStringParam) {
        parsed.correlation_id = value.string_param();
      } else {
        invalid("invalid value type for 'sequence_id' parameter, expected int64_param or "
                "string_param.");
      }
    } else if (key == "sequence_start" || key == "sequence_end") {
      if (choice != Choice::kBoolParam) {
        invalid("invalid value type for '" + key + "' parameter, expected bool_param.");
      }
      if (value.bool_param()) {
        parsed.flags |= key == "sequence_start" ? TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
                                                : TRITONSERVER_REQUEST_FLAG_SEQUENCE_END;
      }
    } else if (key == "priority") {
      if (choice == Choice::kInt64Param) {
        if (value.int64_param() < 0) {
          invalid("invalid value for 'priority', expected value >= 0.");
        }
        parsed.priority = static_cast<uint64_t>(value.int64_param());
      } else if (choice == Choice::kUint64Param) {
        parsed.priority = value.uint64_param();
      } else {
        invalid("invalid value type for 'priority' parameter, expected int64_param or "
                "uint64_param.");
      }
    } else if (key == "timeout") {
      if (choice != Choice::kInt64Param) {
        invalid("invalid value type for 'timeout' parameter, expected int64_param.");
      }
      parsed.timeout_microseconds = static_cast<uint64_t>(std::max<int64_t>(0, value.int64_param()));
    } else if (key.rfind("triton_", 0) == 0) {
      if (key != "triton_enable_empty_final_response") {
        invalid("parameter keys starting with 'triton_' are reserved for Triton usage. Only the "
                "following keys starting with 'triton_' are allowed: "
                "triton_enable_empty_final_response");
      }
      if (choice != Choice::kBoolParam) {
        invalid("invalid value type for '" + key + "' parameter, expected bool_param.");
      }
      parsed.enable_empty_final_response = value.bool_param();
    } else {
      TRITONSERVER_Parameter parameter;
      parameter.name = key;
      switch (choice) {
        case Choice::kInt64Param:
          parameter.type = TRITONSERVER_PARAMETER_INT;
          parameter.int_value = value.int64_param();
          break;
        case Choice::kBoolParam:
          parameter.type = TRITONSERVER_PARAMETER_BOOL;
          parameter.bool_value = value.bool_param();
          break;
        case Choice::kStringParam:
          parameter.type = TRITONSERVER_PARAMETER_STRING;
          parameter.string_value = value.string_param();
          break;
        case Choice::kDoubleParam:
          parameter.type = TRITONSERVER_PARAMETER_DOUBLE;
          parameter.double_value = value.double_param();
          break;
        default:
          invalid("invalid value type for '" + key +
                  "' parameter, expected int64_param, bool_param, or string_param.");
      }
      parsed.for_backend.push_back(std::move(parameter));
    }
  }
  return parsed;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string text = "[";
  for (size_t i = 0; i < names.size(); ++i) {
    text += (i > 0 ? ",'" : "'") + names[i] + "'";
  }
  return text + "]";
}

// Triton's BYTES validation: exactly 'expected' length-prefixed elements filling the buffer.
void validate_bytes_elements(const InputTensor& input, int64_t expected,
                             const std::string& model_name, const std::string& prefix) {
  const std::string& data = input.data;
  size_t offset = 0;
  int64_t count = 0;
  while (offset < data.size()) {
    if (data.size() - offset < sizeof(uint32_t)) {
      invalid(prefix + "element byte size indicator exceeds the end of the buffer for inference "
                       "input '" +
              input.name + "' for model '" + model_name + "'");
    }
    uint32_t length = 0;
    std::memcpy(&length, data.data() + offset, sizeof(length));
    offset += sizeof(length);
    ++count;
    if (count > expected) {
      invalid(prefix + "unexpected number of string elements " + std::to_string(count) +
              " for inference input '" + input.name + "' for model '" + model_name +
              "', expecting " + std::to_string(expected));
    }
    if (length > data.size() - offset) {
      invalid(prefix + "incomplete string data for inference input '" + input.name +
              "' for model '" + model_name + "', expecting string of length " +
              std::to_string(length) + " but only " + std::to_string(data.size() - offset) +
              " bytes available");
    }
    offset += length;
  }
  if (count != expected) {
    invalid(prefix + "expected " + std::to_string(expected) + " string elements for inference input '" +
            input.name + "' for model '" + model_name + "', got " + std::to_string(count));
  }
}

}  // namespace

int64_t parse_model_version(const std::string& version) {
  if (version.empty()) {
    return -1;
  }
  int64_t parsed = 0;
  try {
    size_t used = 0;
    parsed = std::stoll(version, &used);
    if (used != version.size()) {
      throw std::invalid_argument("trailing characters");
    }
  } catch (const std::exception& e) {
    invalid("failed to get model version from specified version string '" + version +
            "' (details: " + e.what() + "), version should be an integral value > 0");
  }
  if (parsed < 0) {
    invalid("invalid model version specified '" + version +
            "' , version should be an integral value > 0");
  }
  return parsed;
}

std::unique_ptr<InferenceRequest> build_inference_request(inference::ModelInferRequest& proto,
                                                          RequestTarget target) {
  const uint64_t request_start_ns = steady_now_ns();
  const ModelVersion& model = *target.model;
  const inference::ModelConfig& config = model.config();
  const std::string& model_name = proto.model_name();
  // Every response and error echoes the id: an unbounded one multiplies into the traffic.
  if (proto.id().size() > kMaxRequestIdBytes) {
    invalid("the request id is " + std::to_string(proto.id().size()) + " bytes, more than the " +
            std::to_string(kMaxRequestIdBytes) + " allowed: use a shorter id");
  }
  const std::string prefix = request_prefix(proto.id());

  ParsedParameters parameters = parse_parameters(proto);

  // --- tensor data, as the gRPC frontend extracts it ---
  std::vector<std::unique_ptr<InputTensor>> inputs;
  std::vector<std::vector<int64_t>> original_shapes;
  int raw_index = 0;
  for (auto& io : *proto.mutable_inputs()) {
    for (const auto& existing : inputs) {
      if (existing->name == io.name()) {
        invalid(prefix + "input '" + io.name() + "' already exists in request");
      }
    }
    auto input = std::make_unique<InputTensor>();
    input->name = io.name();
    input->datatype = datatype_from_name(io.datatype());
    if (io.has_contents() && proto.raw_input_contents_size() > 0) {
      invalid("contents field must not be specified when using raw_input_contents for '" +
              io.name() + "' for model '" + model_name + "'");
    } else if (io.has_contents()) {
      input->data = typed_contents_data(io, input->datatype, model_name);
    } else if (raw_index < proto.raw_input_contents_size()) {
      input->data.swap(*proto.mutable_raw_input_contents(raw_index++));
    } else {
      invalid("unable to find data for input tensor '" + io.name() + "' for model '" + model_name +
              "' in request.");
    }
    original_shapes.emplace_back(io.shape().begin(), io.shape().end());
    inputs.push_back(std::move(input));
  }
  if (raw_index < proto.raw_input_contents_size()) {
    invalid("unexpected number of raw_input_contents for model '" + model_name + "': got " +
            std::to_string(proto.raw_input_contents_size()) + ", but only " +
            std::to_string(raw_index) + " inputs take their data from raw_input_contents");
  }

  // --- requested outputs ---
  std::vector<std::string> client_outputs;
  for (const auto& output : proto.outputs()) {
    const bool known = std::any_of(config.output().begin(), config.output().end(),
                                   [&](const auto& o) { return o.name() == output.name(); });
    if (!known) {
      invalid("unexpected inference output '" + output.name() + "' for model '" + model_name + "'");
    }
    if (std::find(client_outputs.begin(), client_outputs.end(), output.name()) ==
        client_outputs.end()) {
      client_outputs.push_back(output.name());
    }
  }

  // --- the inputs against the model configuration (Triton core's Normalize) ---
  auto config_input = [&](const std::string& name) -> const inference::ModelInput* {
    for (const auto& candidate : config.input()) {
      if (candidate.name() == name) {
        return &candidate;
      }
    }
    return nullptr;
  };
  for (const auto& input : inputs) {
    if (config_input(input->name) == nullptr) {
      invalid("unexpected inference input '" + input->name + "' for model '" + model_name + "'");
    }
  }
  std::vector<std::string> missing;
  size_t required = 0;
  for (const auto& candidate : config.input()) {
    if (!candidate.optional()) {
      ++required;
      const bool present = std::any_of(inputs.begin(), inputs.end(),
                                       [&](const auto& i) { return i->name == candidate.name(); });
      if (!present) {
        missing.push_back(candidate.name());
      }
    }
  }
  if (!missing.empty()) {
    std::vector<std::string> given;
    for (const auto& input : inputs) {
      given.push_back(input->name);
    }
    const std::string expected =
        required == static_cast<size_t>(config.input_size())
            ? "expected " + std::to_string(config.input_size()) + " inputs"
            : "expected number of inputs between " + std::to_string(required) + " and " +
                  std::to_string(config.input_size());
    invalid(prefix + expected + " but got " + std::to_string(inputs.size()) +
            " inputs for model '" + model_name + "'. Got inputs " + quoted_list(given) +
            ", but missing required inputs " + quoted_list(missing) +
            ". Please provide all required inputs.");
  }

  // Before any size is taken from a shape (the batch size first), so the error names the input
  // with the negative dimension rather than the next one compared with it.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int64_t>& original = original_shapes[i];
    if (std::any_of(original.begin(), original.end(), [](int64_t d) { return d < 0; })) {
      invalid(prefix + "All input dimensions should be specified for input '" + inputs[i]->name + "' for model '" +
              model_name + "', got " + dims_to_string(original));
    }
  }

  const bool batching = config.max_batch_size() > 0;
  int64_t batch_size = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const inference::ModelInput& spec = *config_input(inputs[i]->name);
    if (!batching || spec.is_shape_tensor()) {
      continue;
    }
    if (original_shapes[i].empty()) {
      invalid(prefix + "input '" + inputs[i]->name +
              "' has no shape but model requires batch dimension for '" + model_name + "'");
    }
    if (batch_size == 0) {
      batch_size = original_shapes[i][0];
    } else if (original_shapes[i][0] != batch_size) {
      invalid(prefix + "input '" + inputs[i]->name +
              "' batch size does not match other inputs for '" + model_name + "'");
    }
  }
  if (batch_size > config.max_batch_size()) {
    invalid(prefix + "inference request batch-size must be <= " +
            std::to_string(config.max_batch_size()) + " for '" + model_name + "'");
  }

  for (size_t i = 0; i < inputs.size(); ++i) {
    InputTensor& input = *inputs[i];
    const std::vector<int64_t>& original = original_shapes[i];
    const inference::ModelInput& spec = *config_input(input.name);
    const TRITONSERVER_DataType expected_type = from_config_datatype(spec.data_type());
    if (input.datatype != expected_type) {
      invalid(prefix + "inference input '" + input.name + "' data-type is '" +
              datatype_name(input.datatype) + "', but model '" + model_name + "' expects '" +
              datatype_name(expected_type) + "'");
    }
    const bool strip_batch = batching && !spec.is_shape_tensor();
    const std::vector<int64_t> dims(original.begin() + (strip_batch ? 1 : 0), original.end());
    bool matches = dims.size() == static_cast<size_t>(spec.dims_size());
    for (size_t d = 0; matches && d < dims.size(); ++d) {
      if (spec.dims(static_cast<int>(d)) != -1 && spec.dims(static_cast<int>(d)) != dims[d]) {
        matches = false;
      }
    }
    if (!matches) {
      std::vector<int64_t> full(batching ? 1 : 0, -1);
      full.insert(full.end(), spec.dims().begin(), spec.dims().end());
      const std::string note =
          batching ? "NOTE: Setting a non-zero max_batch_size in the model config requires a "
                     "batch dimension to be prepended to each input shape. If you want to "
                     "specify the full shape including the batch dim in your input dims config, "
                     "try setting max_batch_size to zero. See the model configuration docs for "
                     "more info on max_batch_size."
                   : "";
      invalid(prefix + "unexpected shape for input '" + input.name + "' for model '" + model_name +
              "'. Expected " + dims_to_string(full) + ", got " + dims_to_string(original) + ". " +
              note);
    }
    // What the backend sees: the batch dimension, then the dims or their reshape.
    std::vector<int64_t> shape = dims;
    if (spec.has_reshape()) {
      std::vector<int64_t> variable;
      for (int d = 0; d < spec.dims_size(); ++d) {
        if (spec.dims(d) == -1) {
          variable.push_back(dims[static_cast<size_t>(d)]);
        }
      }
      shape.clear();
      size_t next_variable = 0;
      for (int64_t d : spec.reshape().shape()) {
        shape.push_back(d == -1 && next_variable < variable.size() ? variable[next_variable++] : d);
      }
    }
    if (strip_batch) {
      shape.insert(shape.begin(), original[0]);
    }
    input.shape = std::move(shape);

    const int64_t elements = element_count(original);
    if (elements < 0) {
      invalid(prefix + "the shape " + dims_to_string(original) + " of input '" + input.name +
              "' for model '" + model_name + "' holds more elements than 64 bits can count");
    }
    if (input.datatype == TRITONSERVER_TYPE_BYTES) {
      validate_bytes_elements(input, elements, model_name, prefix);
    } else {
      // Compared without overflow: a huge shape must not wrap around to the bytes sent.
      const uint64_t element_bytes = datatype_byte_size(input.datatype);
      const bool fits = element_bytes == 0 || static_cast<uint64_t>(elements) <= UINT64_MAX / element_bytes;
      const uint64_t expected_bytes = fits ? static_cast<uint64_t>(elements) * element_bytes : 0;
      if (!fits || expected_bytes != input.data.size()) {
        invalid(prefix + "input byte size mismatch for input '" + input.name + "' for model '" +
                model_name + "'. Expected " +
                (fits ? std::to_string(expected_bytes) : std::string("more than 2^64")) + ", got " +
                std::to_string(input.data.size()));
      }
    }
    input.attributes.memory_type = TRITONSERVER_MEMORY_CPU;
    input.attributes.memory_type_id = 0;
    input.attributes.byte_size = input.data.size();
  }

  // --- the request; its router is made last, once nothing can fail any more ---
  RouterSetup router_setup;
  router_setup.model = target.model;
  router_setup.request_id = proto.id();
  router_setup.request_start_ns = request_start_ns;
  router_setup.sink = std::move(target.sink);
  router_setup.cancellation = std::move(target.cancellation);
  router_setup.client_requested_outputs = client_outputs;
  router_setup.send_empty_final = parameters.enable_empty_final_response;

  std::vector<std::string> backend_outputs = client_outputs;
  if (backend_outputs.empty()) {
    for (const auto& output : config.output()) {
      backend_outputs.push_back(output.name());
    }
  }

  auto request =
      std::make_unique<InferenceRequest>(std::make_shared<ResponseRouter>(std::move(router_setup)));
  request->id = proto.id();
  request->correlation_id = std::move(parameters.correlation_id);
  request->flags = parameters.flags;
  request->timeout_microseconds = parameters.timeout_microseconds;
  request->priority = parameters.priority;
  request->parameters = std::move(parameters.for_backend);
  request->inputs = std::move(inputs);
  request->requested_outputs = std::move(backend_outputs);
  request->batch_size = batch_size;
  request->request_start_ns = request_start_ns;
  return request;
}

}  // namespace llm_server
