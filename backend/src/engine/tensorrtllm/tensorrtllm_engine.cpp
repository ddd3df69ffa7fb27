// The TensorRT-LLM engine adapter. Written against TensorRT-LLM 0.13.0's executor API
// (cpp/include/tensorrt_llm/executor/executor.h and types.h at tag v0.13.0), the release in
// NVIDIA's tritonserver:24.09-trtllm-python-py3 container. Only these parts of it are used:
//   Executor(path, ModelType::kDECODER_ONLY, ExecutorConfig), enqueueRequest, awaitResponses(timeout),
//   cancelRequest, getLatestIterationStats, shutdown; initTrtLlmPlugins() (plugins/api/tllmPlugin.h),
//   which registers the plugins (GPT attention, GEMM, weight-only GEMM) before an engine loads;
//   Request(inputTokenIds, maxTokens, streaming, SamplingConfig, OutputConfig) + setEndId, setPadId,
//   setStopWords, setBadWords; SamplingConfig setters; OutputConfig's public fields;
//   Response::hasError/getErrorMsg/getResult/getRequestId; Result::isFinal/outputTokenIds/logProbs/finishReasons;
//   ExecutorConfig setters; SchedulerConfig; KvCacheConfig setters; IterationStats and KvCacheStats fields.
// The unit tests compile this same file against a test double of that surface
// (backend/test/tensorrtllm_double/), selected by LLM_TENSORRTLLM_TEST_DOUBLE and the include path.
#include "engine/tensorrtllm/tensorrtllm_engine.h"

#include <cuda_runtime_api.h>
#include <tensorrt_llm/executor/executor.h>
#include <tensorrt_llm/plugins/api/tllmPlugin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "checkpoint/model_config.h"
#include "common/error.h"
#include "engine/stop_strings.h"

// The double must never reach a production build, and the tests must never get the real library.
#if defined(LLM_TENSORRTLLM_TEST_DOUBLE) && !defined(LLM_TENSORRTLLM_EXECUTOR_IS_TEST_DOUBLE)
#error "LLM_TENSORRTLLM_TEST_DOUBLE is set but <tensorrt_llm/executor/executor.h> is not the test double"
#endif
#if !defined(LLM_TENSORRTLLM_TEST_DOUBLE) && defined(LLM_TENSORRTLLM_EXECUTOR_IS_TEST_DOUBLE)
#error "the TensorRT-LLM executor test double is on the include path of a production build"
#endif

namespace llm {

namespace tle = tensorrt_llm::executor;

namespace {

// What trtllm-build wrote in engine_dir/config.json that the adapter needs.
struct EngineConfig {
  int64_t vocab_size = 0;
  int64_t max_seq_len = 0;     // prompt + new tokens
  int64_t max_input_len = 0;   // prompt; 0 = not stated
  int64_t max_batch_size = 0;  // 0 = not stated
  std::string architecture;
  std::string dtype;
  std::string quantization;    // quant_algo, e.g. W8A16 or W4A16_AWQ; empty = none
  std::string version;         // TensorRT-LLM version that built the engine
};

EngineConfig read_engine_config(const std::filesystem::path& engine_dir) {
  const auto path = engine_dir / "config.json";
  if (!std::filesystem::exists(path)) {
    throw_error("engine_dir ", engine_dir.string(), " has no config.json: it must be the output folder of trtllm-build "
                "(config.json and rank0.engine)");
  }
  const nlohmann::json j = read_json_file(path);
  const std::string where = path.string();
  auto section = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name) || !j[name].is_object()) throw_error(where, ": missing object \"", name, "\" (not a trtllm-build engine config)");
    return j[name];
  };
  auto integer = [&](const nlohmann::json& object, const char* object_name, const char* key, bool required) -> int64_t {
    if (!object.contains(key) || object[key].is_null()) {
      if (required) throw_error(where, ": missing ", object_name, ".", key);
      return 0;
    }
    if (!object[key].is_number_integer() || object[key].get<int64_t>() <= 0)
      throw_error(where, ": ", object_name, ".", key, " must be a positive integer");
    return object[key].get<int64_t>();
  };
  const nlohmann::json& pretrained = section("pretrained_config");
  const nlohmann::json& build = section("build_config");
  EngineConfig c;
  c.vocab_size = integer(pretrained, "pretrained_config", "vocab_size", true);
  c.max_seq_len = integer(build, "build_config", "max_seq_len", false);
  if (c.max_seq_len == 0) c.max_seq_len = integer(pretrained, "pretrained_config", "max_position_embeddings", true);
  c.max_input_len = integer(build, "build_config", "max_input_len", false);
  c.max_batch_size = integer(build, "build_config", "max_batch_size", false);
  c.architecture = pretrained.value("architecture", std::string("unknown architecture"));
  c.dtype = pretrained.value("dtype", std::string("unknown dtype"));
  if (pretrained.contains("quantization") && pretrained["quantization"].is_object()) {
    const auto& q = pretrained["quantization"];
    if (q.contains("quant_algo") && q["quant_algo"].is_string()) c.quantization = q["quant_algo"].get<std::string>();
  }
  if (j.contains("version") && j["version"].is_string()) c.version = j["version"].get<std::string>();
  // A tensor- or pipeline-parallel engine needs one process per GPU rank (or the executor's
  // orchestrator mode): refused here, rather than failing deep inside TensorRT-LLM.
  if (pretrained.contains("mapping") && pretrained["mapping"].is_object()) {
    const nlohmann::json& mapping = pretrained["mapping"];
    const int64_t tp = integer(mapping, "pretrained_config.mapping", "tp_size", false);
    const int64_t pp = integer(mapping, "pretrained_config.mapping", "pp_size", false);
    const int64_t world = integer(mapping, "pretrained_config.mapping", "world_size", false);
    if (std::max({tp, pp, world}) > 1) {
      throw_error(where, ": the engine was built for ", std::max({world, tp * pp}), " GPUs (tp_size ", std::max<int64_t>(tp, 1),
                  ", pp_size ", std::max<int64_t>(pp, 1), "), but this backend runs single-GPU engines: rebuild it with ",
                  "convert_checkpoint.py --tp_size 1 --pp_size 1, or serve it with tensorrtllm_backend");
    }
  }
  return c;
}

tle::ExecutorConfig executor_config(const TensorRtLlmOptions& o) {
  tle::ExecutorConfig config;
  config.setMaxBeamWidth(1);  // the glue serves one beam
  config.setBatchingType(tle::BatchingType::kINFLIGHT);
  config.setSchedulerConfig(tle::SchedulerConfig(o.scheduler_policy == TensorRtLlmOptions::SchedulerPolicy::MaxUtilization
                                                     ? tle::CapacitySchedulerPolicy::kMAX_UTILIZATION
                                                     : tle::CapacitySchedulerPolicy::kGUARANTEED_NO_EVICT));
  tle::KvCacheConfig kv;
  kv.setEnableBlockReuse(o.enable_kv_cache_reuse);
  if (o.max_tokens_in_paged_kv_cache) kv.setMaxTokens(*o.max_tokens_in_paged_kv_cache);
  if (o.kv_cache_free_gpu_mem_fraction) kv.setFreeGpuMemoryFraction(*o.kv_cache_free_gpu_mem_fraction);
  config.setKvCacheConfig(kv);
  config.setEnableChunkedContext(o.enable_chunked_context);
  if (o.max_batch_size) config.setMaxBatchSize(*o.max_batch_size);
  if (o.max_num_tokens) config.setMaxNumTokens(*o.max_num_tokens);
  return config;
}

// The largest top_k TensorRT-LLM's sampling layers take; larger values are clipped to it.
constexpr int32_t kMaxTopK = 1024;

// Sampling follows the glue's rules (already TensorRT-LLM's: greedy unless top_k or top_p asks
// for sampling); greedy is sent as top_k = 1 so no executor default can turn it into sampling.
tle::SamplingConfig sampling_config(const GenerationRequest& g) {
  const SamplingParams& s = g.sampling;
  tle::SamplingConfig config;
  if (s.greedy()) {
    config.setTopK(1);
  } else {
    config.setTopK(s.top_k);   // 0: no limit
    config.setTopP(s.top_p);   // 1: the whole distribution
    config.setTemperature(s.temperature);
    config.setSeed(s.seed);
  }
  if (s.repetition_penalty != 1.0f) config.setRepetitionPenalty(s.repetition_penalty);
  if (s.presence_penalty != 0.0f) config.setPresencePenalty(s.presence_penalty);
  if (s.frequency_penalty != 0.0f) config.setFrequencyPenalty(s.frequency_penalty);
  if (g.min_tokens > 0) config.setMinTokens(g.min_tokens);
  return config;
}

// The GPU the executor runs on and what its driver supports, for describe(): a benchmark that
// records the engine's description then says what served its numbers.
std::string gpu_description() {
  int device = 0;
  cudaDeviceProp properties{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&properties, device) != cudaSuccess) {
    return "GPU: unknown (the CUDA runtime did not answer)";
  }
  std::string text = std::string("GPU ") + std::to_string(device) + ": " + properties.name + " (sm_" +
                     std::to_string(properties.major) + std::to_string(properties.minor) + ", " +
                     std::to_string(properties.totalGlobalMem >> 20) + " MiB)";
  const auto cuda_version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  int driver = 0;
  int runtime = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess) text += ", driver for CUDA " + cuda_version(driver);
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) text += ", CUDA runtime " + cuda_version(runtime);
  return text;
}

// TensorRT-LLM's plugins must be registered with TensorRT once per process before any engine
// that uses them is deserialised.
void register_plugins_once() {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [] { registered = initTrtLlmPlugins(); });
  if (!registered) throw Error("initTrtLlmPlugins() failed: TensorRT-LLM's plugins could not be registered with TensorRT");
}

}  // namespace

struct TensorRtLlmEngine::Impl {
  // One request in flight. `mutex` serialises the observer calls (response thread, poll thread);
  // `done` is set by whichever call ends the sequence.
  struct Sequence {
    Sequence(std::shared_ptr<GenerationObserver> o, const Tokenizer& tokenizer, const GenerationRequest& g)
        : observer(std::move(o)), decoder(tokenizer), filter(g.stop_strings), end_ids(g.ignore_eos ? std::vector<int32_t>{} : g.end_ids),
          return_log_probs(g.return_log_probs), min_tokens(g.min_tokens) {
      if (glue_watches_end_ids(g)) watched_end_ids.assign(g.end_ids.begin() + 1, g.end_ids.end());
    }
    std::mutex mutex;
    bool done = false;
    std::shared_ptr<GenerationObserver> observer;
    StreamDecoder decoder;
    StopStringFilter filter;
    std::vector<int32_t> end_ids;
    bool return_log_probs;
    int32_t min_tokens;
    std::vector<int32_t> watched_end_ids;  // see glue_watches_end_ids
    size_t generated = 0;                  // tokens received so far
  };

  // The executor takes one end id, which min_tokens holds back; the others could only go as stop
  // words, which it does not hold back. With min_tokens set, the glue watches them itself: the
  // first one past min_tokens ends the request (an earlier one is an ordinary token).
  static bool glue_watches_end_ids(const GenerationRequest& g) {
    return !g.ignore_eos && g.end_ids.size() > 1 && g.min_tokens > 0;
  }

  Impl(const TensorRtLlmOptions& o, const Tokenizer& t, EngineLog l)
      : options(o), tokenizer(t), log(std::move(l)), config(read_engine_config(o.engine_dir)) {}

  void say(LogLevel level, const std::string& message) const {
    if (log) log(level, "tensorrtllm engine: " + message);
  }

  std::shared_ptr<Sequence> find(tle::IdType id) {
    std::lock_guard lock(map_mutex);
    const auto it = sequences.find(id);
    return it == sequences.end() ? nullptr : it->second;
  }

  void forget(tle::IdType id) {
    std::lock_guard lock(map_mutex);
    sequences.erase(id);
  }

  // Asks the executor to stop a request; a failure is logged (`when` says at what point), since
  // the request has already ended for its client.
  void stop_in_executor(tle::IdType id, const std::string& when) {
    try {
      executor->cancelRequest(id);
    } catch (const std::exception& e) {
      say(LogLevel::Warning, "cancelRequest(" + std::to_string(id) + ")" + when + " failed: " + e.what());
    }
  }

  // Ends a sequence as cancelled: the executor stops it, the observer hears at once. Called with
  // the sequence's mutex held.
  void cancel_locked(tle::IdType id, Sequence& sequence) {
    sequence.done = true;
    stop_in_executor(id, "");
    forget(id);
    sequence.observer->on_cancelled();
  }

  void fail_locked(tle::IdType id, Sequence& sequence, const std::string& message) {
    sequence.done = true;
    forget(id);
    sequence.observer->on_error(message);
  }

  void handle(const tle::Response& response) {
    const tle::IdType id = response.getRequestId();
    const auto sequence = find(id);
    if (!sequence) return;  // already ended here (cancelled, stop string): late responses are dropped
    std::lock_guard lock(sequence->mutex);
    if (sequence->done) return;
    if (response.hasError()) {
      fail_locked(id, *sequence, "TensorRT-LLM: " + response.getErrorMsg());
      return;
    }
    if (sequence->observer->cancelled()) {
      cancel_locked(id, *sequence);
      return;
    }
    const tle::Result& result = response.getResult();
    std::vector<int32_t> ids;
    if (!result.outputTokenIds.empty()) ids.assign(result.outputTokenIds[0].begin(), result.outputTokenIds[0].end());
    std::vector<float> log_probs;
    if (sequence->return_log_probs && result.logProbs && !result.logProbs->empty()) {
      // This response's tokens are the last ids.size() of the beam's log probs (whether the
      // executor sends the new ones or all so far).
      const auto& beam = result.logProbs->front();
      const size_t n = std::min(ids.size(), beam.size());
      log_probs.assign(beam.end() - static_cast<std::ptrdiff_t>(n), beam.end());
    }

    bool watched_end = false;
    for (size_t k = 0; k < ids.size() && !sequence->watched_end_ids.empty(); ++k) {
      const bool past_min_tokens = sequence->generated + k + 1 > static_cast<size_t>(sequence->min_tokens);
      if (past_min_tokens && std::find(sequence->watched_end_ids.begin(), sequence->watched_end_ids.end(), ids[k]) !=
                                 sequence->watched_end_ids.end()) {
        ids.resize(k);  // end ids are not part of the output
        if (log_probs.size() > k) log_probs.resize(k);
        watched_end = true;
        break;
      }
    }
    sequence->generated += ids.size();

    FinishReason finish = FinishReason::None;
    if (watched_end) {
      finish = FinishReason::EndId;
      if (!result.isFinal) stop_in_executor(id, " after an end id");  // it would go on generating
    } else if (result.isFinal) {
      const tle::FinishReason reason = result.finishReasons.empty() ? tle::FinishReason::kNOT_FINISHED : result.finishReasons.front();
      switch (reason) {
        case tle::FinishReason::kEND_ID: finish = FinishReason::EndId; break;
        case tle::FinishReason::kSTOP_WORDS: finish = FinishReason::StopString; break;
        case tle::FinishReason::kLENGTH: finish = FinishReason::Length; break;
        default: {
          // kNOT_FINISHED on a final result, or a reason later releases added (timed out,
          // cancelled by the executor itself): the request did not complete.
          fail_locked(id, *sequence, "TensorRT-LLM ended the request without completing it (finish reason " +
                                         std::to_string(static_cast<int>(reason)) + ")");
          return;
        }
      }
      // End ids are not part of the output (as in the CPU engine): the executor's end id, or
      // one of the other end ids the request sent as single-token stop words.
      const bool ends_on_end_id = !ids.empty() && std::find(sequence->end_ids.begin(), sequence->end_ids.end(), ids.back()) !=
                                                       sequence->end_ids.end();
      if ((finish == FinishReason::EndId || finish == FinishReason::StopString) && ends_on_end_id) {
        ids.pop_back();
        if (log_probs.size() > ids.size()) log_probs.pop_back();
        finish = FinishReason::EndId;
      }
    }

    std::string delta;
    try {
      for (int32_t token : ids) delta += sequence->decoder.push(token);
    } catch (const std::exception& e) {
      fail_locked(id, *sequence, std::string("TensorRT-LLM returned a token the tokenizer cannot decode: ") + e.what());
      return;
    }
    if (finish != FinishReason::None) delta += sequence->decoder.finish();
    const std::string visible = sequence->filter.accept(std::move(delta), finish != FinishReason::None);
    if (sequence->filter.stopped() && finish == FinishReason::None) {
      // A stop string, matched on the text: TensorRT-LLM would go on generating, so stop it.
      finish = FinishReason::StopString;
      stop_in_executor(id, " after a stop string");
    } else if (sequence->filter.stopped()) {
      finish = FinishReason::StopString;
    }

    StepOutput step;
    step.new_ids = ids;
    step.text = visible;
    step.log_probs = log_probs;
    step.finish = finish;
    if (finish != FinishReason::None) {
      sequence->done = true;
      forget(id);
    }
    sequence->observer->on_step(step);
  }

  void response_loop() {
    // Bounded waits, so the destructor's stop flag is seen promptly.
    const auto wait = std::min(options.cancellation_check_period, std::chrono::milliseconds(100));
    while (!stopping.load()) {
      std::vector<tle::Response> responses;
      try {
        responses = executor->awaitResponses(wait);
      } catch (const std::exception& e) {
        say(LogLevel::Error, std::string("awaitResponses failed: ") + e.what());
        std::this_thread::sleep_for(wait);
        continue;
      }
      for (const auto& response : responses) handle(response);
    }
  }

  void check_cancellations() {
    std::vector<std::pair<tle::IdType, std::shared_ptr<Sequence>>> snapshot;
    {
      std::lock_guard lock(map_mutex);
      snapshot.assign(sequences.begin(), sequences.end());
    }
    for (auto& [id, sequence] : snapshot) {
      if (!sequence->observer->cancelled()) continue;
      std::lock_guard lock(sequence->mutex);
      if (!sequence->done) cancel_locked(id, *sequence);
    }
  }

  void collect_stats() {
    std::deque<tle::IterationStats> latest;
    try {
      latest = executor->getLatestIterationStats();
    } catch (const std::exception& e) {
      say(LogLevel::Warning, std::string("getLatestIterationStats failed: ") + e.what());
      return;
    }
    if (latest.empty()) return;
    const tle::IterationStats& last = latest.back();
    EngineStats line;  // the executor's own counts of this iteration, for the log
    line.active = last.numActiveRequests < 0 ? 0 : static_cast<size_t>(last.numActiveRequests);
    line.queued = last.numQueuedRequests < 0 ? 0 : static_cast<size_t>(last.numQueuedRequests);
    line.iterations = static_cast<uint64_t>(last.iter) + 1;
    line.last_iteration_ms = last.iterLatencyMS;
    line.gpu_memory_bytes = static_cast<uint64_t>(last.gpuMemUsage);
    if (last.kvCacheStats) {
      line.kv_cache_max_blocks = last.kvCacheStats->maxNumBlocks;
      line.kv_cache_used_blocks = last.kvCacheStats->usedNumBlocks;
      line.kv_cache_free_blocks = last.kvCacheStats->freeNumBlocks;
      line.kv_cache_tokens_per_block = last.kvCacheStats->tokensPerBlock;
      line.kv_cache_reused_blocks = static_cast<uint64_t>(last.kvCacheStats->reusedBlocks);
    }
    {
      std::lock_guard lock(stats_mutex);
      published = line;
    }
    say(LogLevel::Verbose,
        describe_stats(line) + " (" + std::to_string(latest.size()) + " iterations since the last report)");
  }

  void poll_loop() {
    auto next_stats = std::chrono::steady_clock::now();
    std::unique_lock lock(poll_mutex);
    while (!stopping.load()) {
      poll_wake.wait_for(lock, options.cancellation_check_period, [&] { return stopping.load(); });
      if (stopping.load()) break;
      lock.unlock();
      check_cancellations();
      if (std::chrono::steady_clock::now() >= next_stats) {
        collect_stats();
        next_stats = std::chrono::steady_clock::now() + options.stats_check_period;
      }
      lock.lock();
    }
  }

  TensorRtLlmOptions options;
  const Tokenizer& tokenizer;
  EngineLog log;
  EngineConfig config;
  std::unique_ptr<tle::Executor> executor;
  std::string gpu;  // gpu_description(), once the executor holds the device

  mutable std::mutex map_mutex;
  std::unordered_map<tle::IdType, std::shared_ptr<Sequence>> sequences;

  std::atomic<bool> stopping{false};
  std::mutex poll_mutex;
  std::condition_variable poll_wake;
  std::thread response_thread;
  std::thread poll_thread;

  mutable std::mutex stats_mutex;
  EngineStats published;  // from the latest iteration statistics; `active` is counted by the engine
};

TensorRtLlmEngine::TensorRtLlmEngine(const TensorRtLlmOptions& options, const Tokenizer& tokenizer, EngineLog log)
    : impl_(std::make_unique<Impl>(options, tokenizer, std::move(log))) {
  Impl& m = *impl_;
  if (tokenizer.vocab_size() > m.config.vocab_size) {
    throw_error(tokenizer.path().string(), " has ", tokenizer.vocab_size(), " pieces, more than the engine's vocabulary of ",
                m.config.vocab_size, " (", (options.engine_dir / "config.json").string(),
                "): tokenizer_dir must hold the tokenizer of the model the engine was built from");
  }
  if (options.max_batch_size && m.config.max_batch_size > 0 && *options.max_batch_size > m.config.max_batch_size) {
    throw_error("parameter \"max_concurrent_requests\" is ", *options.max_batch_size, ", more than the engine's max_batch_size of ",
                m.config.max_batch_size, " (", (options.engine_dir / "config.json").string(),
                "): lower it, or rebuild the engine with a larger trtllm-build --max_batch_size");
  }
  register_plugins_once();
  try {
    m.executor = std::make_unique<tle::Executor>(options.engine_dir, tle::ModelType::kDECODER_ONLY, executor_config(options));
  } catch (const std::exception& e) {
    throw_error("TensorRT-LLM could not load the engine in ", options.engine_dir.string(), ": ", e.what());
  }
  m.gpu = gpu_description();
  m.response_thread = std::thread([&m] { m.response_loop(); });
  m.poll_thread = std::thread([&m] { m.poll_loop(); });
}

TensorRtLlmEngine::~TensorRtLlmEngine() {
  Impl& m = *impl_;
  m.stopping.store(true);
  {
    std::lock_guard lock(m.poll_mutex);
  }
  m.poll_wake.notify_all();
  if (m.poll_thread.joinable()) m.poll_thread.join();
  if (m.response_thread.joinable()) m.response_thread.join();
  std::unordered_map<tle::IdType, std::shared_ptr<Impl::Sequence>> left;
  {
    std::lock_guard lock(m.map_mutex);
    left.swap(m.sequences);
  }
  for (auto& [id, sequence] : left) {
    std::lock_guard lock(sequence->mutex);
    if (sequence->done) continue;
    sequence->done = true;
    m.stop_in_executor(id, " at shutdown");
    sequence->observer->on_cancelled();
  }
  if (m.executor) {
    try {
      m.executor->shutdown();
    } catch (const std::exception& e) {
      m.say(LogLevel::Warning, std::string("executor shutdown failed: ") + e.what());
    }
  }
}

void TensorRtLlmEngine::submit(GenerationRequest request, std::shared_ptr<GenerationObserver> observer) {
  Impl& m = *impl_;
  validate_generation_request(request, m.config.vocab_size, m.config.max_seq_len, "the engine's max_seq_len");
  if (!request.sampling.greedy() && request.sampling.top_k > kMaxTopK) {
    throw_error("top_k is ", request.sampling.top_k, ", more than the ", kMaxTopK,
                " TensorRT-LLM's sampling supports (it would lower it silently): send at most ", kMaxTopK,
                ", or 0 for no limit");
  }
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (m.config.max_input_len > 0 && prompt > m.config.max_input_len) {
    throw_error("the prompt is ", prompt, " tokens, more than the engine's max_input_len of ", m.config.max_input_len,
                " (rebuild the engine with a larger trtllm-build --max_input_len)");
  }

  tle::OutputConfig output;
  output.returnLogProbs = request.return_log_probs;
  output.excludeInputFromOutput = true;  // the glue adds the prompt itself when a request wants it
  // Always streamed: the glue gets every token as it comes, checks stop strings and
  // cancellation between tokens, and gathers the text itself for non-streamed requests.
  tle::Request executor_request(std::vector<int32_t>(request.prompt_ids), request.max_tokens, true,
                                sampling_config(request), output);
  std::list<tle::VecTokens> stop_words(request.stop_token_sequences.begin(), request.stop_token_sequences.end());
  if (request.ignore_eos || request.end_ids.empty()) {
    executor_request.setEndId(-1);  // no end id: generate max_tokens
  } else {
    executor_request.setEndId(request.end_ids.front());
    executor_request.setPadId(request.end_ids.front());
    // The executor takes one end id; the others end generation as single-token stop words, or,
    // with min_tokens, are watched by the glue (Impl::glue_watches_end_ids).
    if (!Impl::glue_watches_end_ids(request)) {
      for (size_t i = 1; i < request.end_ids.size(); ++i) stop_words.push_back({request.end_ids[i]});
    }
  }
  if (!stop_words.empty()) executor_request.setStopWords(stop_words);
  if (!request.bad_token_sequences.empty()) {
    executor_request.setBadWords(std::list<tle::VecTokens>(request.bad_token_sequences.begin(), request.bad_token_sequences.end()));
  }

  auto sequence = std::make_shared<Impl::Sequence>(std::move(observer), m.tokenizer, request);
  // Enqueue and register under one lock: the response thread cannot see the id before it is known.
  std::lock_guard lock(m.map_mutex);
  if (!m.executor->canEnqueueRequests()) {
    throw_error("the TensorRT-LLM executor does not take requests in this process (not its leader)");
  }
  if (m.options.max_queue_size > 0) {
    size_t reported_queued = 0;
    {
      std::lock_guard stats_lock(m.stats_mutex);
      reported_queued = m.published.queued;
    }
    const size_t batch = static_cast<size_t>(m.options.max_batch_size.value_or(static_cast<int32_t>(m.config.max_batch_size)));
    const size_t beyond_batch = batch > 0 && m.sequences.size() > batch ? m.sequences.size() - batch : 0;
    if (std::max(reported_queued, beyond_batch) >= m.options.max_queue_size) {
      throw QueueFullError("the request queue is full (max_queue_size " + std::to_string(m.options.max_queue_size) +
                           " requests waiting to start): retry later");
    }
  }
  tle::IdType id = 0;
  try {
    id = m.executor->enqueueRequest(executor_request);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("TensorRT-LLM refused the request: ") + e.what());
  }
  m.sequences.emplace(id, std::move(sequence));
}

EngineStats TensorRtLlmEngine::stats() const {
  const Impl& m = *impl_;
  EngineStats s;
  {
    std::lock_guard lock(m.stats_mutex);
    s = m.published;
  }
  // Every request this engine has handed the executor and not seen end, less those the executor
  // last said it queues: those are counted as queued, not twice.
  std::lock_guard lock(m.map_mutex);
  s.active = m.sequences.size() > s.queued ? m.sequences.size() - s.queued : 0;
  return s;
}

int64_t TensorRtLlmEngine::vocab_size() const { return impl_->config.vocab_size; }

int64_t TensorRtLlmEngine::context_tokens() const { return impl_->config.max_seq_len; }

std::vector<int32_t> TensorRtLlmEngine::default_end_ids() const {
  // The Hugging Face folder the tokenizer comes from also holds generation_config.json.
  return llm::default_end_ids(impl_->tokenizer.path().parent_path(), impl_->tokenizer.eos_id());
}

std::string TensorRtLlmEngine::describe() const {
  const Impl& m = *impl_;
  const EngineConfig& c = m.config;
  std::string text = "tensorrtllm engine: " + m.options.engine_dir.string() + " (" + c.architecture + ", " + c.dtype +
                     (c.quantization.empty() ? "" : ", " + c.quantization) + ", max_seq_len " + std::to_string(c.max_seq_len);
  if (c.max_input_len > 0) text += ", max_input_len " + std::to_string(c.max_input_len);
  if (c.max_batch_size > 0) text += ", max_batch_size " + std::to_string(c.max_batch_size);
  text += ", built by TensorRT-LLM " + (c.version.empty() ? std::string("?") : c.version);
  text += ", run by TensorRT-LLM " + std::string(tle::version()) + " on " + m.gpu;
  text += ", in-flight batching";
  text += ", cancellation checked every " + std::to_string(m.options.cancellation_check_period.count()) + " ms)";
  return text;
}

}  // namespace llm
