// `llm`: the engine's command line — convert, synth, generate.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/hf_convert.h"
#include "checkpoint/model_config.h"
#include "checkpoint/synth.h"
#include "common/error.h"
#include "engine/cpu/llama_model.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"

namespace {

using llm::Error;
using llm::throw_error;

constexpr const char* kUsage = R"(usage: llm COMMAND [OPTIONS]

Commands:
  convert   Hugging Face Llama checkpoint -> TensorRT-LLM checkpoint
            --hf DIR --out DIR [--dtype float16|float32|bfloat16]
  synth     random-weight checkpoint of a real model's shape
            --shape tiny|110m|1b|7b --out DIR [--dtype float16|float32|bfloat16] [--seed N]
            (--vocab llama2-vocab.json | --tokenizer tokenizer.model) [--threads N]
  generate  generate text from a TensorRT-LLM checkpoint
            --checkpoint DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
            [--top-p P] [--repetition-penalty R] [--seed S] [--min-tokens N] [--stop STR]...
            [--ignore-eos] [--tokenizer FILE] [--threads N] [--json]

Run `llm COMMAND --help` for details.
)";

// Parsed `--name value` / `--flag` arguments of one command, checked against what it accepts.
class Args {
 public:
  Args(const std::string& command, int argc, char** argv, const std::vector<std::string>& valued,
       const std::vector<std::string>& flags) {
    for (int i = 0; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        help = true;
        continue;
      }
      const std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2) : std::string();
      if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
        values_[name].push_back("1");
      } else if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
        if (i + 1 >= argc) throw_error("llm ", command, ": option --", name, " needs a value");
        values_[name].push_back(argv[++i]);
      } else {
        throw_error("llm ", command, ": unknown argument '", arg, "' (see `llm ", command, " --help`)");
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& name) const {
    const auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  std::string required(const std::string& command, const std::string& name) const {
    if (!has(name)) throw_error("llm ", command, ": --", name, " is required (see `llm ", command, " --help`)");
    return get(name);
  }
  template <typename T>
  T number(const std::string& name, T fallback) const {
    if (!has(name)) return fallback;
    const std::string text = get(name);
    try {
      size_t used = 0;
      T value;
      if constexpr (std::is_floating_point_v<T>) {
        value = static_cast<T>(std::stod(text, &used));
      } else if constexpr (std::is_unsigned_v<T>) {
        if (!text.empty() && text[0] == '-') throw std::invalid_argument("negative");
        value = static_cast<T>(std::stoull(text, &used));
      } else {
        value = static_cast<T>(std::stoll(text, &used));
      }
      if (used != text.size()) throw std::invalid_argument("trailing characters");
      return value;
    } catch (const std::logic_error&) {
      throw_error("--", name, " expects a number, got '", text, "'");
    }
  }

  bool help = false;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

llm::DType parse_dtype(const std::string& text) {
  const auto dtype = llm::dtype_from_config(text);
  if (!dtype) throw_error("--dtype must be float16, float32 or bfloat16, got '", text, "'");
  return *dtype;
}

int cmd_convert(int argc, char** argv) {
  const Args args("convert", argc, argv, {"hf", "out", "dtype"}, {});
  if (args.help) {
    std::cout << "llm convert --hf DIR --out DIR [--dtype float16|float32|bfloat16]\n"
                 "  Converts a Hugging Face Llama checkpoint (config.json, model.safetensors or sharded\n"
                 "  model-*.safetensors with model.safetensors.index.json, tokenizer.model) into a\n"
                 "  TensorRT-LLM checkpoint (config.json + rank0.safetensors + tokenizer files).\n"
                 "  Default dtype: float16.\n";
    return 0;
  }
  llm::HfConvertOptions options;
  options.hf_dir = args.required("convert", "hf");
  options.out_dir = args.required("convert", "out");
  options.dtype = parse_dtype(args.get("dtype", "float16"));
  options.log = [](const std::string& message) { std::cerr << message << '\n'; };
  llm::convert_hf_checkpoint(options);
  std::cerr << "wrote " << options.out_dir.string() << '\n';
  return 0;
}

int cmd_synth(int argc, char** argv) {
  const Args args("synth", argc, argv, {"shape", "out", "dtype", "seed", "vocab", "tokenizer", "threads"}, {});
  if (args.help) {
    std::cout << "llm synth --shape NAME --out DIR [--dtype float16] [--seed 0] (--vocab FILE | --tokenizer FILE)\n"
                 "  Writes a deterministic random-weight TensorRT-LLM checkpoint of a real model's shape.\n"
                 "  Shapes:\n";
    for (const auto& shape : llm::synth_shapes()) std::cout << "    " << shape.name << ": " << shape.description << '\n';
    std::cout << "  --vocab: Llama-2 vocabulary JSON (piece -> id) to build tokenizer.model from;\n"
                 "  --tokenizer: an existing tokenizer.model to copy.\n";
    return 0;
  }
  llm::SynthOptions options;
  options.shape = args.required("synth", "shape");
  options.out_dir = args.required("synth", "out");
  options.dtype = parse_dtype(args.get("dtype", "float16"));
  options.seed = args.number<uint64_t>("seed", 0);
  options.vocab_json = args.get("vocab");
  options.tokenizer_model = args.get("tokenizer");
  options.threads = args.number<size_t>("threads", 0);
  llm::write_synthetic_checkpoint(options);
  std::cerr << "wrote " << options.out_dir.string() << " (" << options.shape << ", "
            << llm::config_name(options.dtype) << ", seed " << options.seed << ")\n";
  return 0;
}

int cmd_generate(int argc, char** argv) {
  const Args args("generate", argc, argv,
                  {"checkpoint", "prompt", "max-tokens", "temperature", "top-k", "top-p", "repetition-penalty",
                   "seed", "min-tokens", "stop", "tokenizer", "threads"},
                  {"json", "ignore-eos"});
  if (args.help) {
    std::cout << "llm generate --checkpoint DIR --prompt TEXT [options]\n"
                 "  Prints only the generated text, as it is produced (pipeable). With --json, prints one\n"
                 "  JSON object: text, token_ids, prompt_tokens, completion_tokens, finish_reason, seed,\n"
                 "  timings {ttft_ms, total_ms, prefill_tokens_per_s, decode_tokens_per_s}.\n"
                 "  --max-tokens N          new tokens at most (default 64)\n"
                 "  --temperature T         0 = greedy (default 1.0)\n"
                 "  --top-k K               0 = off (default)      --top-p P   (default 1.0)\n"
                 "  --repetition-penalty R  1 = off (default)      --seed S    (default: random, reported)\n"
                 "  --min-tokens N          EOS is suppressed until N tokens\n"
                 "  --stop STR              stop before STR (repeatable)\n"
                 "  --ignore-eos            always generate --max-tokens tokens (benchmarks)\n"
                 "  --tokenizer FILE        default: CHECKPOINT/tokenizer.model\n"
                 "  --threads N             default: one per core\n";
    return 0;
  }
  const std::filesystem::path checkpoint = args.required("generate", "checkpoint");
  const std::string prompt = args.required("generate", "prompt");
  const std::filesystem::path tokenizer_path = args.get("tokenizer", (checkpoint / "tokenizer.model").string());
  if (!std::filesystem::exists(tokenizer_path)) {
    throw_error("tokenizer not found: ", tokenizer_path.string(),
                " (a checkpoint made by `llm convert` or `llm synth` has one; otherwise pass --tokenizer FILE)");
  }

  llm::GenerationRequest request;
  request.max_tokens = args.number<int32_t>("max-tokens", 64);
  request.min_tokens = args.number<int32_t>("min-tokens", 0);
  request.sampling.temperature = args.number<float>("temperature", 1.0f);
  request.sampling.top_k = args.number<int32_t>("top-k", 0);
  request.sampling.top_p = args.number<float>("top-p", 1.0f);
  request.sampling.repetition_penalty = args.number<float>("repetition-penalty", 1.0f);
  request.sampling.seed = args.has("seed") ? args.number<uint64_t>("seed", 0) : std::random_device{}();
  request.sampling.validate();
  request.ignore_eos = args.has("ignore-eos");
  request.stop_strings = args.all("stop");
  const bool as_json = args.has("json");

  const llm::Tokenizer tokenizer(tokenizer_path);
  llm::validate_utf8(prompt, "--prompt");
  request.prompt_ids = tokenizer.encode(prompt, true);
  request.end_ids = llm::default_end_ids(checkpoint, tokenizer.eos_id());
  auto model = llm::LlamaModel::load(checkpoint, {args.number<size_t>("threads", 0)});
  if (tokenizer.vocab_size() > model->config().vocab_size) {
    throw_error("tokenizer ", tokenizer_path.string(), " has ", tokenizer.vocab_size(),
                " pieces but the checkpoint's vocab_size is ", model->config().vocab_size);
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  llm::Generation generation(*model, tokenizer, request);
  std::optional<Clock::time_point> first_token;
  while (!generation.finished()) {
    const std::string delta = generation.step();
    if (!first_token) first_token = Clock::now();
    if (!as_json && !delta.empty()) {
      std::fwrite(delta.data(), 1, delta.size(), stdout);
      std::fflush(stdout);
    }
  }
  const auto end = Clock::now();
  const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const size_t generated = generation.output_ids().size();
  if (as_json) {
    const double ttft = ms(*first_token - start);
    const double decode_ms = ms(end - *first_token);
    nlohmann::json out = {
        {"text", generation.text()},
        {"token_ids", generation.output_ids()},
        {"prompt_tokens", generation.prompt_tokens()},
        {"completion_tokens", generated},
        {"finish_reason", llm::finish_reason_name(generation.finish_reason())},
        {"seed", request.sampling.seed},
        {"timings",
         {{"ttft_ms", ttft},
          {"total_ms", ms(end - start)},
          {"prefill_tokens_per_s", generation.prompt_tokens() / (ttft / 1000.0)},
          {"decode_tokens_per_s", generated > 1 && decode_ms > 0 ? (generated - 1) / (decode_ms / 1000.0) : 0.0}}},
        {"engine", {{"isa", llm::kernels::isa_name(model->isa())}, {"threads", model->threads()}}},
    };
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else if (isatty(STDOUT_FILENO)) {
    std::cout << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "convert") return cmd_convert(argc - 2, argv + 2);
    if (command == "synth") return cmd_synth(argc - 2, argv + 2);
    if (command == "generate") return cmd_generate(argc - 2, argv + 2);
    std::cerr << "llm: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const Error& e) {
    std::cerr << "llm " << command << ": error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "llm " << command << ": unexpected error: " << e.what() << '\n';
    return 1;
  }
}
