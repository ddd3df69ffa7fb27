#include "model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "api_error.h"
#include "datatypes.h"
#include "utf8.h"

namespace llm_server {
namespace {

using OrderedJson = nlohmann::ordered_json;

// Keeps the first error protobuf reports while parsing text format (lines are 0-based there).
class FirstErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      line_ = line + 1;
      column_ = column + 1;
      message_ = message;
    }
  }
  bool has_error() const { return has_error_; }
  std::string describe(const std::string& file) const {
    return file + ":" + std::to_string(line_) + ":" + std::to_string(column_) + ": " + message_;
  }

 private:
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

[[noreturn]] void invalid(const std::string& message) {
  throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, message);
}

// The path (e.g. "parameters[0].key") of the first string field holding bytes that are not UTF-8,
// or "". Text format accepts them ("\377" escapes), but protobuf strings must be UTF-8: strict
// clients would refuse every ModelConfig answer, and backends get the config as JSON.
std::string first_non_utf8_field(const google::protobuf::Message& message, const std::string& prefix = "") {
  using google::protobuf::FieldDescriptor;
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  const auto valid = [](const std::string& text) { return valid_utf8(text) == text; };
  for (const FieldDescriptor* field : fields) {
    const bool text = field->type() == FieldDescriptor::TYPE_STRING;
    const bool nested = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    if (!text && !nested) continue;
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      std::string path = prefix + field->name();
      if (field->is_repeated()) path.append("[").append(std::to_string(i)).append("]");
      if (text) {
        const std::string value = field->is_repeated() ? reflection->GetRepeatedString(message, field, i)
                                                       : reflection->GetString(message, field);
        if (!valid(value)) return path;
      } else {
        const auto& inner = field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                 : reflection->GetMessage(message, field);
        std::string found = first_non_utf8_field(inner, path + ".");
        if (!found.empty()) return found;
      }
    }
  }
  return "";
}

// Triton's ValidateIOShape, for one input or output.
template <typename ModelIO>
void validate_io_shape(const ModelIO& io, int32_t max_batch_size, const std::string& prefix,
                       const std::string& model_name) {
  const std::string suffix = " for " + model_name;
  if (io.name().empty()) {
    invalid(prefix + "must specify 'name'" + suffix);
  }
  const std::string named = prefix + "'" + io.name() + "' ";
  if (io.data_type() == inference::TYPE_INVALID) {
    invalid(named + "must specify 'data_type'" + suffix);
  }
  if (io.dims_size() == 0) {
    invalid(named + "must specify 'dims'" + suffix);
  }
  if (io.has_reshape() && io.reshape().shape_size() == 0 && max_batch_size == 0) {
    invalid(named +
            "cannot have empty reshape for non-batching model as scalar tensors are not "
            "supported" +
            suffix);
  }
  for (int64_t dim : io.dims()) {
    if (dim < 1 && dim != -1) {
      invalid(named + "dimension must be integer >= 1, or -1 to indicate a variable-size dimension" +
              suffix);
    }
  }
  if (io.has_reshape()) {
    for (int64_t dim : io.reshape().shape()) {
      if (dim < 1 && dim != -1) {
        invalid(named +
                "reshape dimensions must be integer >= 1, or -1 to indicate a variable-size "
                "dimension" +
                suffix);
      }
    }
    // Fixed-size runs between variable-size dimensions must hold the same number of elements.
    auto runs = [](const auto& dims) {
      std::vector<int64_t> counts{1};
      for (int64_t d : dims) {
        if (d == -1) {
          counts.push_back(1);
        } else {
          counts.back() *= d;
        }
      }
      return counts;
    };
    const auto dims_runs = runs(io.dims());
    const auto reshape_runs = runs(io.reshape().shape());
    const bool empty_reshape_of_one = io.reshape().shape_size() == 0 && dims_runs.size() == 1 &&
                                      dims_runs[0] == 1;
    if (!empty_reshape_of_one) {
      if (dims_runs.size() != reshape_runs.size()) {
        invalid(named +
                "has different number of variable-size dimensions for dims and reshape" + suffix);
      }
      if (dims_runs != reshape_runs) {
        invalid(named + "has different size for dims and reshape" + suffix);
      }
    }
  }
}

// Triton's FixInt / FixIntArray: protobuf prints 64-bit integers as JSON strings.
void fix_int(OrderedJson& object, const char* key) {
  auto it = object.find(key);
  if (it != object.end() && it->is_string()) {
    *it = std::stoll(it->get<std::string>());
  }
}

void fix_int_array(OrderedJson& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) {
    return;
  }
  for (auto& element : *it) {
    if (element.is_string()) {
      element = std::stoll(element.get<std::string>());
    }
  }
}

OrderedJson* find_object(OrderedJson& object, const char* key) {
  auto it = object.find(key);
  return (it != object.end() && it->is_object()) ? &*it : nullptr;
}

}  // namespace

inference::ModelConfig read_model_config(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "config.pbtxt";
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) {
    invalid("failed to read text proto from " + path.string() + ": file not found");
  }
  // Opening a FIFO would wait for a writer, and the repository's load with it; refuse it (and
  // devices, directories) by type first.
  if (!std::filesystem::is_regular_file(status)) {
    invalid("failed to read text proto from " + path.string() + ": not a regular file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    invalid("failed to read text proto from " + path.string() + ": cannot open it");
  }
  std::stringstream text;
  text << file.rdbuf();
  return parse_model_config(text.str(), path.string(), model_dir.filename().string());
}

inference::ModelConfig parse_model_config(const std::string& text, const std::string& source,
                                          const std::string& directory_name) {
  inference::ModelConfig config;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    invalid("failed to read text proto from " + (errors.has_error() ? errors.describe(source) : source));
  }
  if (const std::string field = first_non_utf8_field(config); !field.empty()) {
    invalid("failed to read text proto from " + source + ": " + field +
            " is not valid UTF-8 (protobuf strings must be; check the file's encoding and \\ escapes)");
  }

  if (config.name().empty()) {
    config.set_name(directory_name);
  } else if (config.name() != directory_name) {
    invalid("unexpected directory name '" + directory_name + "' for model '" + config.name() +
            "', directory name must equal model name");
  }
  return config;
}

void complete_backend_fields(inference::ModelConfig& config) {
  if (!config.backend().empty() || config.platform().empty()) {
    return;
  }
  const std::string& platform = config.platform();
  if (platform == "tensorflow_graphdef" || platform == "tensorflow_savedmodel") {
    config.set_backend("tensorflow");
  } else if (platform == "tensorrt_plan") {
    config.set_backend("tensorrt");
  } else if (platform == "onnxruntime_onnx") {
    config.set_backend("onnxruntime");
  } else if (platform == "pytorch_libtorch") {
    config.set_backend("pytorch");
  }
}

void normalize_model_config(inference::ModelConfig& config) {
  if (!config.has_version_policy()) {
    config.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  }
  if (config.has_dynamic_batching() &&
      config.dynamic_batching().preferred_batch_size_size() == 0 && config.max_batch_size() > 0) {
    config.mutable_dynamic_batching()->add_preferred_batch_size(config.max_batch_size());
  }
  if (config.has_sequence_batching()) {
    auto* sequence = config.mutable_sequence_batching();
    if (sequence->max_sequence_idle_microseconds() == 0) {
      sequence->set_max_sequence_idle_microseconds(1000 * 1000);  // Triton's default: 1 s
    }
    if (sequence->has_oldest() && sequence->oldest().preferred_batch_size_size() == 0 &&
        config.max_batch_size() > 0) {
      sequence->mutable_oldest()->add_preferred_batch_size(config.max_batch_size());
    }
  }
  if (!config.has_ensemble_scheduling()) {
    auto* optimization = config.mutable_optimization();
    if (!optimization->has_input_pinned_memory()) {
      optimization->mutable_input_pinned_memory()->set_enable(true);
    }
    if (!optimization->has_output_pinned_memory()) {
      optimization->mutable_output_pinned_memory()->set_enable(true);
    }
  }
}

void normalize_instance_groups(inference::ModelConfig& config,
                               const std::vector<inference::ModelInstanceGroup>& preferred) {
  if (config.has_ensemble_scheduling()) {
    return;
  }
  if (config.instance_group_size() == 0) {
    auto* group = config.add_instance_group();
    group->set_name(config.name());
    for (const auto& candidate : preferred) {
      if (candidate.kind() == inference::ModelInstanceGroup::KIND_GPU) {
        continue;  // no GPUs here
      }
      group->set_kind(candidate.kind());
      group->set_count(candidate.count());
      break;
    }
  }
  int index = 0;
  for (auto& group : *config.mutable_instance_group()) {
    if (group.name().empty()) {
      group.set_name(config.name() + "_" + std::to_string(index));
    }
    ++index;
    if (group.kind() == inference::ModelInstanceGroup::KIND_AUTO) {
      group.set_kind(inference::ModelInstanceGroup::KIND_CPU);
    }
    for (const auto& candidate : preferred) {
      if (candidate.kind() == group.kind() && group.count() < 1 && candidate.count() > 0) {
        group.set_count(candidate.count());
      }
    }
    if (group.count() < 1) {
      const bool two_cpu_instances =
          group.kind() == inference::ModelInstanceGroup::KIND_CPU &&
          (config.backend() == "tensorflow" || config.backend() == "onnxruntime");
      group.set_count(two_cpu_instances ? 2 : 1);
    }
  }
}

void validate_model_config(const inference::ModelConfig& config) {
  const std::string& name = config.name();
  if (config.platform() == "ensemble" || config.has_ensemble_scheduling()) {
    throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                   "ensemble model '" + name + "' is not supported by llm-server");
  }
  if (config.backend().empty()) {
    invalid("must specify 'platform' or 'backend' for '" + name + "'");
  }
  if (config.max_batch_size() < 0) {
    invalid("'max_batch_size' must be non-negative value for " + name);
  }
  if (config.version_policy().has_latest() && config.version_policy().latest().num_versions() == 0) {
    invalid("version policy 'latest' must specify 'num_versions' > 0 for " + name);
  }
  if (config.has_dynamic_batching()) {
    for (int32_t size : config.dynamic_batching().preferred_batch_size()) {
      if (size < 1) {
        invalid("dynamic batching preferred size must be positive for " + name);
      }
      if (size > config.max_batch_size()) {
        invalid("dynamic batching preferred size must be <= max batch size for " + name);
      }
    }
  }
  for (const auto& group : config.instance_group()) {
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      throw ApiError(TRITONSERVER_ERROR_UNSUPPORTED,
                     "instance group " + group.name() + " of model " + name +
                         " has kind KIND_GPU, but llm-server has no GPU support; use KIND_CPU "
                         "or KIND_MODEL");
    }
    if (group.count() < 1) {
      invalid("instance group " + group.name() + " of model " + name +
              " must have count greater than 0");
    }
  }
}

void validate_model_io(const inference::ModelConfig& config) {
  std::set<std::string> names;
  for (const auto& input : config.input()) {
    validate_io_shape(input, config.max_batch_size(), "model input ", config.name());
    if (!names.insert(input.name()).second) {
      invalid("model input '" + input.name() + "' is specified more than once for " +
              config.name());
    }
  }
  names.clear();
  for (const auto& output : config.output()) {
    validate_io_shape(output, config.max_batch_size(), "model output ", config.name());
    if (!names.insert(output.name()).second) {
      invalid("model output '" + output.name() + "' is specified more than once for " +
              config.name());
    }
  }
}

std::string model_config_to_json(const inference::ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string printed;
  const auto status = google::protobuf::util::MessageToJsonString(config, &printed, options);
  if (!status.ok()) {
    throw ApiError(TRITONSERVER_ERROR_INTERNAL,
                   "failed to convert the model configuration to JSON: " + status.ToString());
  }

  OrderedJson json = OrderedJson::parse(printed);
  for (const char* io_kind : {"input", "output"}) {
    auto ios = json.find(io_kind);
    if (ios == json.end() || !ios->is_array()) {
      continue;
    }
    for (auto& io : *ios) {
      fix_int_array(io, "dims");
      if (OrderedJson* reshape = find_object(io, "reshape")) {
        fix_int_array(*reshape, "shape");
      }
    }
  }
  if (OrderedJson* policy = find_object(json, "version_policy")) {
    if (OrderedJson* specific = find_object(*policy, "specific")) {
      fix_int_array(*specific, "versions");
    }
  }
  if (OrderedJson* dynamic = find_object(json, "dynamic_batching")) {
    fix_int(*dynamic, "max_queue_delay_microseconds");
    if (OrderedJson* queue = find_object(*dynamic, "default_queue_policy")) {
      fix_int(*queue, "default_timeout_microseconds");
    }
    if (OrderedJson* queues = find_object(*dynamic, "priority_queue_policy")) {
      for (auto& [level, queue] : queues->items()) {
        (void)level;
        if (queue.is_object()) {
          fix_int(queue, "default_timeout_microseconds");
        }
      }
    }
  }
  if (OrderedJson* sequence = find_object(json, "sequence_batching")) {
    fix_int(*sequence, "max_sequence_idle_microseconds");
    for (const char* strategy : {"oldest", "direct"}) {
      if (OrderedJson* object = find_object(*sequence, strategy)) {
        fix_int(*object, "max_queue_delay_microseconds");
      }
    }
  }
  if (OrderedJson* ensemble = find_object(json, "ensemble_scheduling")) {
    auto steps = ensemble->find("step");
    if (steps != ensemble->end() && steps->is_array()) {
      for (auto& step : *steps) {
        fix_int(step, "model_version");
      }
    }
  }
  auto warmups = json.find("model_warmup");
  if (warmups != json.end() && warmups->is_array()) {
    for (auto& warmup : *warmups) {
      if (OrderedJson* inputs = find_object(warmup, "inputs")) {
        for (auto& [input_name, input] : inputs->items()) {
          (void)input_name;
          if (input.is_object()) {
            fix_int_array(input, "dims");
          }
        }
      }
    }
  }
  return json.dump();
}

inference::ModelConfig model_config_from_json(std::string_view json) {
  google::protobuf::util::JsonParseOptions options;
  options.case_insensitive_enum_parsing = true;
  options.ignore_unknown_fields = false;
  inference::ModelConfig config;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    invalid("failed to parse the model configuration JSON: " + status.ToString());
  }
  return config;
}

void apply_auto_completed_config(inference::ModelConfig& config,
                                 const inference::ModelConfig& completed) {
  *config.mutable_input() = completed.input();
  *config.mutable_output() = completed.output();
  config.set_max_batch_size(completed.max_batch_size());
  const bool has_scheduling = config.has_dynamic_batching() || config.has_sequence_batching() ||
                              config.has_ensemble_scheduling();
  if (!has_scheduling) {
    if (completed.has_dynamic_batching()) {
      *config.mutable_dynamic_batching() = completed.dynamic_batching();
    } else if (completed.has_sequence_batching()) {
      *config.mutable_sequence_batching() = completed.sequence_batching();
    }
  }
  normalize_model_config(config);
}

}  // namespace llm_server
