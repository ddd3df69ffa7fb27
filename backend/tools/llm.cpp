// `llm`: the engine's command line — convert, quantize, synth, generate, eval, bench.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
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
#include "engine/scheduler.h"
#include "kernels/machine_peaks.h"
#include "quantization/evaluate.h"
#include "quantization/quantize.h"
#include "tokenizer/tokenizer.h"

namespace {

using llm::Error;
using llm::throw_error;

constexpr const char* kUsage = R"(usage: llm COMMAND [OPTIONS]

Commands:
  convert   Hugging Face Llama checkpoint -> TensorRT-LLM checkpoint
            --hf DIR --out DIR [--dtype float16|float32|bfloat16]
            [--quant int8|int4-rtn|awq [--calib FILE] [--group-size 128] [--calib-samples N]]
  quantize  float TensorRT-LLM checkpoint -> W8A16 or W4A16_AWQ checkpoint
            --checkpoint DIR --out DIR --quant int8|int4-rtn|awq [--calib FILE] [--group-size 128]
            [--calib-samples N] [--calib-seq-len N] [--threads N]
  synth     random-weight checkpoint of a real model's shape
            --shape tiny|110m|1b|7b --out DIR [--dtype float16|float32|bfloat16] [--seed N]
            (--vocab llama2-vocab.json | --tokenizer tokenizer.model) [--threads N]
  generate  generate text from a TensorRT-LLM checkpoint
            --checkpoint DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
            [--top-p P] [--repetition-penalty R] [--seed S] [--min-tokens N] [--stop STR]...
            [--ignore-eos] [--tokenizer FILE] [--threads N] [--json]
  eval      perplexity on a text, and agreement with a reference checkpoint
            --checkpoint DIR --text FILE [--reference DIR] [--window N] [--max-tokens N]
            [--layers] [--tokenizer FILE] [--threads N] [--json]
  bench     engine speed and memory: resident memory after load, prefill and decode tokens/s
            --checkpoint DIR [--batch 1] [--prompt-tokens 64] [--decode-tokens 128] [--threads N] [--tokenizer FILE] [--json]

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
    bool in_range = true;
    T value{};
    try {
      size_t used = 0;
      if constexpr (std::is_floating_point_v<T>) {
        value = static_cast<T>(std::stod(text, &used));
      } else if constexpr (std::is_unsigned_v<T>) {
        if (!text.empty() && text[0] == '-') throw std::invalid_argument("negative");
        const unsigned long long parsed = std::stoull(text, &used);
        in_range = parsed <= std::numeric_limits<T>::max();
        value = static_cast<T>(parsed);
      } else {
        const long long parsed = std::stoll(text, &used);
        in_range = parsed >= std::numeric_limits<T>::min() && parsed <= std::numeric_limits<T>::max();
        value = static_cast<T>(parsed);
      }
      if (used != text.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::logic_error&) {
      throw_error("--", name, " expects a number, got '", text, "'");
    }
    // A number that does not fit is refused, not wrapped (--max-tokens 3000000000 is not negative).
    if (!in_range) {
      throw_error("--", name, " must be at most ", +std::numeric_limits<T>::max(), " (and at least ",
                  +std::numeric_limits<T>::min(), "), got ", text);
    }
    return value;
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

// The quantization options shared by `convert --quant` and `quantize`.
const std::vector<std::string> kQuantOptions = {"quant", "calib", "group-size", "calib-samples", "calib-seq-len", "threads"};
constexpr const char* kQuantHelp =
    "  --quant int8       W8A16: int8 weights, one scale per output channel\n"
    "  --quant int4-rtn   W4A16_AWQ format, round-to-nearest (AWQ's baseline)\n"
    "  --quant awq        W4A16_AWQ: activation-aware scales searched on --calib text, then clipping\n"
    "  --calib FILE       calibration text (UTF-8) for awq\n"
    "  --group-size N     int4 input columns per scale (multiple of 32; default 128)\n"
    "  --calib-samples N  calibration sequences (default 32)   --calib-seq-len N  their tokens (default 128)\n"
    "  Embedding, norms and lm_head stay float (TensorRT-LLM's exclude_modules [\"lm_head\"]).\n";

llm::QuantizeOptions quantize_options(const Args& args) {
  llm::QuantizeOptions options;
  const std::string method = args.get("quant");
  const auto parsed = llm::quant_method_from_name(method);
  if (!parsed) throw_error("--quant must be int8, int4-rtn or awq, got '", method, "'");
  options.method = *parsed;
  options.calib_text = args.get("calib");
  if (options.method != llm::QuantMethod::Awq && args.has("calib"))
    throw_error("--calib is only used by --quant awq");
  options.group_size = args.number<size_t>("group-size", 128);
  if (options.method == llm::QuantMethod::Int8 && args.has("group-size"))
    throw Error("--group-size applies to int4 methods (int8 has one scale per output channel)");
  options.calib_samples = args.number<size_t>("calib-samples", 32);
  options.calib_sequence_length = args.number<size_t>("calib-seq-len", 128);
  options.threads = args.number<size_t>("threads", 0);
  options.log = [](const std::string& message) { std::cerr << message << '\n'; };
  return options;
}

int cmd_convert(int argc, char** argv) {
  std::vector<std::string> valued = {"hf", "out", "dtype"};
  valued.insert(valued.end(), kQuantOptions.begin(), kQuantOptions.end());
  const Args args("convert", argc, argv, valued, {});
  if (args.help) {
    std::cout << "llm convert --hf DIR --out DIR [--dtype float16|float32|bfloat16] [--quant METHOD ...]\n"
                 "  Converts a Hugging Face Llama checkpoint (config.json, model.safetensors or sharded\n"
                 "  model-*.safetensors with model.safetensors.index.json, tokenizer.model) into a\n"
                 "  TensorRT-LLM checkpoint (config.json + rank0.safetensors + tokenizer files).\n"
                 "  Default dtype: float16. AutoAWQ checkpoints (quantization_config quant_method \"awq\",\n"
                 "  GEMM layout) become W4A16_AWQ checkpoints with zero points, without --quant.\n"
              << kQuantHelp;
    return 0;
  }
  llm::HfConvertOptions options;
  options.hf_dir = args.required("convert", "hf");
  options.out_dir = args.required("convert", "out");
  options.dtype = parse_dtype(args.get("dtype", "float16"));
  options.log = [](const std::string& message) { std::cerr << message << '\n'; };
  if (!args.has("quant")) {
    for (const auto& name : kQuantOptions) {
      if (name != "threads" && args.has(name)) throw_error("--", name, " needs --quant");
    }
    llm::convert_hf_checkpoint(options);
    std::cerr << "wrote " << options.out_dir.string() << '\n';
    return 0;
  }
  // Convert to float beside the output, quantize from there, then drop the float copy.
  llm::QuantizeOptions quantize = quantize_options(args);
  const std::filesystem::path staging = options.out_dir.string() + ".float.partial";
  std::filesystem::remove_all(staging);
  options.out_dir = staging;
  llm::convert_hf_checkpoint(options);
  quantize.checkpoint_dir = staging;
  quantize.out_dir = args.get("out");
  try {
    llm::quantize_checkpoint(quantize);
  } catch (...) {
    std::filesystem::remove_all(staging);
    throw;
  }
  std::filesystem::remove_all(staging);
  std::cerr << "wrote " << quantize.out_dir.string() << " (" << llm::quant_method_name(quantize.method) << ")\n";
  return 0;
}

int cmd_quantize(int argc, char** argv) {
  std::vector<std::string> valued = {"checkpoint", "out", "tokenizer"};
  valued.insert(valued.end(), kQuantOptions.begin(), kQuantOptions.end());
  const Args args("quantize", argc, argv, valued, {});
  if (args.help) {
    std::cout << "llm quantize --checkpoint DIR --out DIR --quant int8|int4-rtn|awq [options]\n"
                 "  Quantizes a float TensorRT-LLM checkpoint (from `llm convert` or `llm synth`).\n"
              << kQuantHelp << "  --tokenizer FILE   for awq calibration (default: CHECKPOINT/tokenizer.model)\n";
    return 0;
  }
  args.required("quantize", "quant");
  llm::QuantizeOptions options = quantize_options(args);
  options.checkpoint_dir = args.required("quantize", "checkpoint");
  options.out_dir = args.required("quantize", "out");
  options.tokenizer = args.get("tokenizer");
  llm::quantize_checkpoint(options);
  std::cerr << "wrote " << options.out_dir.string() << " (" << llm::quant_method_name(options.method) << ")\n";
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

std::filesystem::path tokenizer_for(const Args& args, const std::filesystem::path& checkpoint) {
  const std::filesystem::path path = args.get("tokenizer", (checkpoint / "tokenizer.model").string());
  if (!std::filesystem::exists(path)) {
    throw_error("tokenizer not found: ", path.string(),
                " (a checkpoint made by `llm convert` or `llm synth` has one; otherwise pass --tokenizer FILE)");
  }
  return path;
}

// Scheduler options for running one request to completion on the calling thread: its prompt in
// one iteration, a KV cache of its own size.
llm::SchedulerOptions single_sequence_options(const llm::LlamaModel& model, const llm::GenerationRequest& request) {
  llm::SchedulerOptions options;
  options.max_batch_size = 1;
  options.max_num_tokens = static_cast<size_t>(model.config().max_position_embeddings);
  const size_t positions = request.prompt_ids.size() + static_cast<size_t>(std::max(request.max_tokens, 1));
  options.kv_cache_blocks = (positions + options.tokens_per_block - 1) / options.tokens_per_block;
  return options;
}

// Prints a sequence's text as it streams (or keeps it for --json) and records how it ended.
class PrintingObserver : public llm::GenerationObserver {
 public:
  explicit PrintingObserver(bool print) : print_(print) {}
  bool cancelled() override { return false; }
  void on_step(const llm::StepOutput& step) override {
    if (!first_token) first_token = std::chrono::steady_clock::now();
    ids.insert(ids.end(), step.new_ids.begin(), step.new_ids.end());
    text += step.text;
    finish = step.finish;
    if (print_ && !step.text.empty()) {
      std::fwrite(step.text.data(), 1, step.text.size(), stdout);
      std::fflush(stdout);
    }
  }
  void on_error(const std::string& message) override { error = message; }
  void on_cancelled() override { error = "the generation was cancelled"; }

  std::optional<std::chrono::steady_clock::time_point> first_token;
  std::vector<int32_t> ids;
  std::string text;
  llm::FinishReason finish = llm::FinishReason::None;
  std::string error;

 private:
  bool print_;
};

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
  const std::filesystem::path tokenizer_path = tokenizer_for(args, checkpoint);

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

  // One request through the serving path: the scheduler, run on this thread, one sequence.
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto printer = std::make_shared<PrintingObserver>(!as_json);
  {
    llm::Scheduler scheduler(*model, tokenizer, single_sequence_options(*model, request));
    scheduler.submit(request, printer);
    while (scheduler.run_iteration()) {
    }
  }
  if (!printer->error.empty()) throw Error(printer->error);
  const auto end = Clock::now();
  const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const size_t generated = printer->ids.size();
  if (as_json) {
    const double ttft = ms(*printer->first_token - start);
    const double decode_ms = ms(end - *printer->first_token);
    const size_t prompt_tokens = request.prompt_ids.size();
    nlohmann::json out = {
        {"text", printer->text},
        {"token_ids", printer->ids},
        {"prompt_tokens", prompt_tokens},
        {"completion_tokens", generated},
        {"finish_reason", llm::finish_reason_name(printer->finish)},
        {"seed", request.sampling.seed},
        {"timings",
         {{"ttft_ms", ttft},
          {"total_ms", ms(end - start)},
          {"prefill_tokens_per_s", prompt_tokens / (ttft / 1000.0)},
          {"decode_tokens_per_s", generated > 1 && decode_ms > 0 ? (generated - 1) / (decode_ms / 1000.0) : 0.0}}},
        {"engine", {{"isa", llm::kernels::isa_name(model->isa())}, {"threads", model->threads()}}},
    };
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else if (isatty(STDOUT_FILENO)) {
    std::cout << '\n';
  }
  return 0;
}

int cmd_eval(int argc, char** argv) {
  const Args args("eval", argc, argv, {"checkpoint", "text", "reference", "window", "max-tokens", "temperature", "tokenizer", "threads"},
                  {"json", "layers"});
  if (args.help) {
    std::cout << "llm eval --checkpoint DIR --text FILE [--reference DIR] [options]\n"
                 "  Perplexity of the checkpoint on the text (cut into windows, each run from an empty cache).\n"
                 "  --reference DIR   also run this checkpoint: its perplexity and the teacher-forced top-1\n"
                 "                    agreement (how often both predict the same next token)\n"
                 "  --layers          with --reference: each linear layer's relative output error\n"
                 "  --window N        tokens per window (default min(context, 512))\n"
                 "  --max-tokens N    evaluate only the first N tokens of the text\n"
                 "  --temperature T   divide the checkpoint's logits by T before scoring (default 1); a\n"
                 "                    lower perplexity at T a little above 1 means an over-confident model\n"
                 "  --json            one JSON object instead of text\n";
    return 0;
  }
  const std::filesystem::path checkpoint = args.required("eval", "checkpoint");
  const std::filesystem::path text_path = args.required("eval", "text");
  if (args.has("layers") && !args.has("reference")) throw Error("--layers needs --reference");
  llm::EvalOptions options;
  options.window = args.number<size_t>("window", 0);
  options.temperature = args.number<double>("temperature", 1.0);
  llm::check_eval_options(options);
  const std::string text = llm::read_utf8_file(text_path);
  const llm::Tokenizer tokenizer(tokenizer_for(args, checkpoint));
  std::vector<int32_t> tokens = tokenizer.encode(text, true);
  const size_t max_tokens = args.number<size_t>("max-tokens", 0);
  if (max_tokens > 0 && tokens.size() > max_tokens) tokens.resize(max_tokens);

  const size_t threads = args.number<size_t>("threads", 0);
  auto model = llm::LlamaModel::load(checkpoint, {threads});
  std::unique_ptr<llm::LlamaModel> reference;
  if (args.has("reference")) reference = llm::LlamaModel::load(args.get("reference"), {threads});
  const llm::EvalResult result = llm::evaluate_text(*model, tokens, reference.get(), options);
  std::vector<llm::LinearError> layers;
  if (args.has("layers")) layers = llm::linear_output_errors(*reference, *model, tokens, options);

  nlohmann::json out = {{"checkpoint", checkpoint.string()},
                        {"text", text_path.string()},
                        {"windows", result.windows},
                        {"predicted_tokens", result.predicted_tokens},
                        {"mean_nll", result.mean_nll},
                        {"temperature", options.temperature},
                        {"perplexity", result.perplexity}};
  if (reference) {
    out["reference"] = args.get("reference");
    out["reference_perplexity"] = *result.reference_perplexity;
    out["top1_agreement"] = *result.top1_agreement;
    out["mean_kl_divergence"] = *result.mean_kl_divergence;
  }
  for (const auto& e : layers) {
    out["linear_output_error"].push_back(
        {{"layer", e.layer}, {"linear", llm::linear_name(e.linear)}, {"relative_error", e.relative_error}});
  }
  if (args.has("json")) {
    std::cout << out.dump() << '\n';
    return 0;
  }
  std::cout << "perplexity " << result.perplexity << " over " << result.predicted_tokens << " tokens ("
            << result.windows << " windows)\n";
  if (reference) {
    std::cout << "reference perplexity " << *result.reference_perplexity << "\n"
              << "top-1 agreement with the reference " << *result.top1_agreement * 100.0 << "%\n"
              << "mean KL divergence from the reference " << *result.mean_kl_divergence << " nats\n";
  }
  for (const auto& e : layers) {
    std::cout << "layer " << e.layer << " " << llm::linear_name(e.linear) << ": relative output error "
              << e.relative_error << '\n';
  }
  return 0;
}

// This process's resident memory (VmRSS), in bytes.
size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Counts the tokens of one benchmark sequence and how it ended.
class CountingObserver : public llm::GenerationObserver {
 public:
  bool cancelled() override { return false; }
  void on_step(const llm::StepOutput& step) override {
    tokens += step.new_ids.size();
    finished = step.finish != llm::FinishReason::None;
  }
  void on_error(const std::string& message) override { error = message; }
  void on_cancelled() override { error = "cancelled"; }
  size_t tokens = 0;
  bool finished = false;
  std::string error;
};

int cmd_bench(int argc, char** argv) {
  const Args args("bench", argc, argv, {"checkpoint", "batch", "prompt-tokens", "decode-tokens", "threads", "tokenizer"},
                  {"json", "no-peaks"});
  if (args.help) {
    std::cout << "llm bench --checkpoint DIR [--batch 1] [--prompt-tokens 64] [--decode-tokens 128] [--threads N] [--json]\n"
                 "  Loads the checkpoint and reports resident memory, then runs --batch sequences through the\n"
                 "  engine's scheduler as a server would: their prompts (distinct fixed token ids, no tokenizer\n"
                 "  input) prefilled in one iteration, then --decode-tokens greedy steps each, all sequences\n"
                 "  decoding together in one batch per iteration (EOS ignored). Prefill and decode tokens/s\n"
                 "  are aggregates over the batch. --tokenizer FILE (default CHECKPOINT/tokenizer.model)\n"
                 "  decodes the tokens to text, as a server does.\n"
                 "  Then measures the machine's ceilings on as many threads (a STREAM triad; float32 FMA and\n"
                 "  bfloat16 dot-product peaks, registers only) and reports decode as weight bytes streamed per\n"
                 "  second, a share of the triad bandwidth, and prefill and decode as FLOP/s (2 per multiply-\n"
                 "  add of the linear layers, lm_head and attention), a share of the peak of the instructions\n"
                 "  the weights' kernels use (int4 in groups of 128 with AVX512_BF16: bf16 dot; else FMA).\n"
                 "  --no-peaks skips the ceilings.\n";
    return 0;
  }
  const std::filesystem::path checkpoint = args.required("bench", "checkpoint");
  const size_t batch = args.number<size_t>("batch", 1);
  const size_t prompt_tokens = args.number<size_t>("prompt-tokens", 64);
  const size_t decode_tokens = args.number<size_t>("decode-tokens", 128);
  if (batch == 0 || prompt_tokens == 0 || decode_tokens == 0)
    throw Error("--batch, --prompt-tokens and --decode-tokens must be positive");
  const llm::Tokenizer tokenizer(tokenizer_for(args, checkpoint));
  const size_t rss_before = resident_bytes();
  auto model = llm::LlamaModel::load(checkpoint, {args.number<size_t>("threads", 0)});
  const size_t rss_loaded = resident_bytes();
  const auto& config = model->config();
  if (prompt_tokens + decode_tokens + 1 > static_cast<size_t>(config.max_position_embeddings))
    throw_error("--prompt-tokens + --decode-tokens + 1 exceeds the model's context of ", config.max_position_embeddings);

  llm::SchedulerOptions options;
  options.max_batch_size = batch;
  options.max_num_tokens = batch * prompt_tokens;  // all prompts in the first iteration
  const size_t per_sequence = prompt_tokens + decode_tokens + 1;
  options.kv_cache_blocks = batch * ((per_sequence + options.tokens_per_block - 1) / options.tokens_per_block);
  llm::Scheduler scheduler(*model, tokenizer, options);
  const auto vocab = static_cast<size_t>(config.vocab_size);
  std::vector<std::shared_ptr<CountingObserver>> sequences;
  for (size_t s = 0; s < batch; ++s) {
    llm::GenerationRequest request;
    for (size_t i = 0; i < prompt_tokens; ++i)
      request.prompt_ids.push_back(static_cast<int32_t>(1 + ((i + s * 9973) * 7919) % (vocab - 1)));
    request.max_tokens = static_cast<int32_t>(decode_tokens + 1);  // the prefill's token, then decode_tokens steps
    request.sampling.temperature = 0;
    request.ignore_eos = true;
    sequences.push_back(std::make_shared<CountingObserver>());
    scheduler.submit(std::move(request), sequences.back());
  }
  using Clock = std::chrono::steady_clock;
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  const auto prefill_start = Clock::now();
  scheduler.run_iteration();
  const auto decode_start = Clock::now();
  size_t iterations = 0;
  while (scheduler.run_iteration()) ++iterations;
  const auto end = Clock::now();
  for (const auto& sequence : sequences) {
    if (!sequence->error.empty()) throw_error("a benchmark sequence failed: ", sequence->error);
    if (!sequence->finished || sequence->tokens != decode_tokens + 1)
      throw_error("a benchmark sequence made ", sequence->tokens, " tokens instead of ", decode_tokens + 1);
  }
  const double prefill_s = seconds(decode_start - prefill_start);
  const double decode_s = seconds(end - decode_start);
  const size_t rss_after = resident_bytes();

  // Work per phase: 2 FLOPs per multiply-add of the linear layers (every token), lm_head (only
  // the rows that give logits: each sequence's last prompt token, then every decoded token) and
  // attention (QK and PV over positions 0..p for the token at p).
  double linear_macs_per_token = 0;
  for (size_t layer = 0; layer < model->num_layers(); ++layer) {
    for (const llm::Linear which : llm::kLinears) {
      const auto& w = model->linear(layer, which);
      linear_macs_per_token += static_cast<double>(w.rows) * static_cast<double>(w.cols);
    }
  }
  const double lm_head_macs = static_cast<double>(config.vocab_size) * static_cast<double>(config.hidden_size);
  const double attention_macs_per_position =
      2.0 * static_cast<double>(config.num_hidden_layers) * static_cast<double>(config.q_size());
  const auto attention_macs = [&](size_t first, size_t last) {  // positions first..last, inclusive
    return attention_macs_per_position * (static_cast<double>(last + first + 2) * static_cast<double>(last - first + 1) / 2);
  };
  const double prefill_flops = 2.0 * static_cast<double>(batch) *
                               (static_cast<double>(prompt_tokens) * linear_macs_per_token + lm_head_macs +
                                attention_macs(0, prompt_tokens - 1));
  const double decode_flops = 2.0 * static_cast<double>(batch) *
                              (static_cast<double>(decode_tokens) * (linear_macs_per_token + lm_head_macs) +
                               attention_macs(prompt_tokens, prompt_tokens + decode_tokens - 1));

  nlohmann::json out = {
      {"checkpoint", checkpoint.string()},
      {"quant_algo", config.quantization.algo == llm::QuantAlgo::None
                         ? std::string(llm::config_name(config.dtype))
                         : std::string(llm::quant_algo_name(config.quantization.algo))},
      {"weight_bytes", model->weight_bytes()},
      {"resident_bytes_after_load", rss_loaded},
      {"resident_bytes_before_load", rss_before},
      {"resident_bytes_after_run", rss_after},
      {"batch", batch},
      {"prompt_tokens", prompt_tokens},
      {"decode_tokens", decode_tokens},
      {"decode_iterations", iterations},
      {"prefill_tokens_per_s", static_cast<double>(batch * prompt_tokens) / prefill_s},
      {"decode_tokens_per_s", static_cast<double>(batch * decode_tokens) / decode_s},
      {"engine", {{"isa", llm::kernels::isa_name(model->isa())}, {"threads", model->threads()}}},
      // Every decode iteration streams the weights held in memory once, for the whole batch.
      {"decode_weight_bytes_per_s", static_cast<double>(model->weight_bytes()) * static_cast<double>(iterations) / decode_s},
      {"prefill_flops_per_s", prefill_flops / prefill_s},
      {"decode_flops_per_s", decode_flops / decode_s},
  };
  if (!args.has("no-peaks")) {
    llm::ThreadPool pool(model->threads());
    const llm::kernels::MachinePeaks peaks = llm::kernels::measure_machine_peaks(pool);
    // The instructions the weights' matrix kernels run on: bfloat16 dot products for int4 weights
    // in whole 128-column groups where the engine chose them (kernels.h, WeightFormat::Int4),
    // float32 FMAs for everything else.
    const bool bf16_kernels = config.quantization.algo == llm::QuantAlgo::W4A16_AWQ &&
                              config.quantization.group_size % static_cast<int64_t>(llm::kernels::kInt4BlockColumns) == 0 &&
                              model->isa() >= llm::kernels::Isa::Avx512Bf16 && peaks.bf16_dot_flops_per_s > 0;
    const double compute_peak = bf16_kernels ? peaks.bf16_dot_flops_per_s : peaks.fma_flops_per_s;
    out["machine"] = {{"threads", peaks.threads},
                      {"triad_bytes_per_s", peaks.triad_bytes_per_s},
                      {"fma_flops_per_s", peaks.fma_flops_per_s},
                      {"fma_isa", llm::kernels::isa_name(peaks.fma_isa)},
                      {"bf16_dot_flops_per_s", peaks.bf16_dot_flops_per_s}};
    out["compute_peak"] = bf16_kernels ? "bfloat16 dot product" : "float32 FMA";
    out["decode_share_of_bandwidth"] = out["decode_weight_bytes_per_s"].get<double>() / peaks.triad_bytes_per_s;
    out["decode_share_of_compute"] = out["decode_flops_per_s"].get<double>() / compute_peak;
    out["prefill_share_of_compute"] = out["prefill_flops_per_s"].get<double>() / compute_peak;
  }
  if (args.has("json")) {
    std::cout << out.dump() << '\n';
    return 0;
  }
  const auto giga = [](double v) { return v / 1e9; };
  const auto percent = [](const nlohmann::json& share) { return 100.0 * share.get<double>(); };
  std::cout << std::fixed << std::setprecision(1);
  std::cout << checkpoint.string() << " (" << out["quant_algo"].get<std::string>() << ", batch " << batch << ")\n"
            << "  resident after load  " << static_cast<double>(rss_loaded) / (1 << 20) << " MiB\n"
            << "  prefill              " << out["prefill_tokens_per_s"].get<double>() << " tokens/s, "
            << giga(out["prefill_flops_per_s"].get<double>()) << " GFLOP/s\n"
            << "  decode               " << out["decode_tokens_per_s"].get<double>() << " tokens/s (all sequences), "
            << giga(out["decode_weight_bytes_per_s"].get<double>()) << " GB/s of weights, "
            << giga(out["decode_flops_per_s"].get<double>()) << " GFLOP/s\n";
  if (out.contains("machine")) {
    const auto& m = out["machine"];
    std::cout << "  machine              " << m["threads"].get<size_t>() << " threads: triad " << giga(m["triad_bytes_per_s"].get<double>())
              << " GB/s, float32 FMA (" << m["fma_isa"].get<std::string>() << ") " << giga(m["fma_flops_per_s"].get<double>())
              << " GFLOP/s, bfloat16 dot product ";
    if (m["bf16_dot_flops_per_s"].get<double>() > 0) {
      std::cout << giga(m["bf16_dot_flops_per_s"].get<double>()) << " GFLOP/s\n";
    } else {
      std::cout << "none\n";
    }
    std::cout << "  shares               decode " << percent(out["decode_share_of_bandwidth"]) << "% of the triad bandwidth, "
              << percent(out["decode_share_of_compute"]) << "% of the " << out["compute_peak"].get<std::string>()
              << " peak; prefill " << percent(out["prefill_share_of_compute"]) << "% of that peak\n";
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
    if (command == "quantize") return cmd_quantize(argc - 2, argv + 2);
    if (command == "eval") return cmd_eval(argc - 2, argv + 2);
    if (command == "bench") return cmd_bench(argc - 2, argv + 2);
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
