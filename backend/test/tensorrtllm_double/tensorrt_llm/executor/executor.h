#pragma once
// Test double of TensorRT-LLM 0.13.0's <tensorrt_llm/executor/executor.h>. The classes the llm
// backend's adapter uses (SamplingConfig, OutputConfig, Request, Result, Response,
// SchedulerConfig, KvCacheConfig, ExecutorConfig, Executor) have the same names and the same
// signatures for what the adapter calls, so backend/src/engine/tensorrtllm/tensorrtllm_engine.cpp
// compiles unchanged against either. Written for this project; it is not NVIDIA's header.
//
// The fake Executor is driven by a testing::Control (namespace testing is the double's own):
//   * installed by a unit test (testing::install) before the engine is created: the test sees
//     every enqueued request, scripts responses and iteration stats, injects errors, and reads
//     the time of every cancelRequest call;
//   * otherwise made from <engine_dir>/test_double.json: the fake answers by itself (a
//     deterministic token sequence, N tokens per response, one response per step), so a backend
//     built against the double can be served by llm-server in end-to-end tests.
#define LLM_TENSORRTLLM_EXECUTOR_IS_TEST_DOUBLE 1

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tensorrt_llm/executor/types.h"

namespace tensorrt_llm::executor {

// Version of TRT-LLM (the library's, not an engine's).
inline char const* version() noexcept { return "0.13.0"; }

class SamplingConfig {
 public:
  explicit SamplingConfig(SizeType32 beamWidth = 1, std::optional<SizeType32> const& topK = std::nullopt,
                          std::optional<FloatType> const& topP = std::nullopt, std::optional<FloatType> const& topPMin = std::nullopt,
                          std::optional<TokenIdType> const& topPResetIds = std::nullopt,
                          std::optional<FloatType> const& topPDecay = std::nullopt,
                          std::optional<RandomSeedType> const& seed = std::nullopt,
                          std::optional<FloatType> const& temperature = std::nullopt,
                          std::optional<SizeType32> const& minTokens = std::nullopt,
                          std::optional<FloatType> const& beamSearchDiversityRate = std::nullopt,
                          std::optional<FloatType> const& repetitionPenalty = std::nullopt,
                          std::optional<FloatType> const& presencePenalty = std::nullopt,
                          std::optional<FloatType> const& frequencyPenalty = std::nullopt,
                          std::optional<FloatType> const& lengthPenalty = std::nullopt,
                          std::optional<SizeType32> const& earlyStopping = std::nullopt,
                          std::optional<SizeType32> const& noRepeatNgramSize = std::nullopt)
      : mBeamWidth(beamWidth), mPresencePenalty(presencePenalty), mFrequencyPenalty(frequencyPenalty) {
    (void)topPMin, (void)topPResetIds, (void)topPDecay, (void)beamSearchDiversityRate, (void)lengthPenalty,
        (void)earlyStopping, (void)noRepeatNgramSize;
    check(beamWidth > 0, "beamWidth > 0");
    setTopK(topK);
    setTopP(topP);
    setSeed(seed);
    setTemperature(temperature);
    setMinTokens(minTokens);
    setRepetitionPenalty(repetitionPenalty);
  }

  [[nodiscard]] SizeType32 getBeamWidth() const { return mBeamWidth; }
  [[nodiscard]] std::optional<SizeType32> getTopK() const { return mTopK; }
  [[nodiscard]] std::optional<FloatType> getTopP() const { return mTopP; }
  [[nodiscard]] std::optional<RandomSeedType> getSeed() const { return mSeed; }
  [[nodiscard]] std::optional<FloatType> getTemperature() const { return mTemperature; }
  [[nodiscard]] std::optional<SizeType32> getMinTokens() const { return mMinTokens; }
  [[nodiscard]] std::optional<FloatType> getRepetitionPenalty() const { return mRepetitionPenalty; }
  [[nodiscard]] std::optional<FloatType> getPresencePenalty() const { return mPresencePenalty; }
  [[nodiscard]] std::optional<FloatType> getFrequencyPenalty() const { return mFrequencyPenalty; }

  // The real setters check their values (TLLM_CHECK, which throws): so does the double.
  void setBeamWidth(SizeType32 beamWidth) {
    check(beamWidth > 0, "beamWidth > 0");
    mBeamWidth = beamWidth;
  }
  void setTopK(std::optional<SizeType32> const& topK) {
    check(!topK || *topK >= 0, "topK.value() >= 0");
    mTopK = topK;
  }
  void setTopP(std::optional<FloatType> const& topP) {
    check(!topP || (*topP > 0.f && *topP <= 1.f), "topP.value() > 0.f && topP.value() <= 1.f");
    mTopP = topP;
  }
  void setSeed(std::optional<RandomSeedType> const& seed) { mSeed = seed; }
  void setTemperature(std::optional<FloatType> const& temperature) {
    check(!temperature || *temperature >= 0.f, "temperature.value() >= 0.f");
    mTemperature = temperature;
  }
  void setMinTokens(std::optional<SizeType32> const& minTokens) {
    check(!minTokens || *minTokens >= 0, "minTokens.value() >= 0");
    mMinTokens = minTokens;
  }
  void setRepetitionPenalty(std::optional<FloatType> const& repetitionPenalty) {
    check(!repetitionPenalty || *repetitionPenalty > 0.f, "repetitionPenalty.value() > 0.f");
    mRepetitionPenalty = repetitionPenalty;
  }
  void setPresencePenalty(std::optional<FloatType> const& presencePenalty) { mPresencePenalty = presencePenalty; }
  void setFrequencyPenalty(std::optional<FloatType> const& frequencyPenalty) { mFrequencyPenalty = frequencyPenalty; }

 private:
  static void check(bool holds, const char* condition) {
    if (!holds) throw std::runtime_error(std::string("[TensorRT-LLM][ERROR] Assertion failed: ") + condition);
  }
  SizeType32 mBeamWidth;
  std::optional<SizeType32> mTopK;
  std::optional<FloatType> mTopP;
  std::optional<RandomSeedType> mSeed;
  std::optional<FloatType> mTemperature;
  std::optional<SizeType32> mMinTokens;
  std::optional<FloatType> mRepetitionPenalty;
  std::optional<FloatType> mPresencePenalty;
  std::optional<FloatType> mFrequencyPenalty;
};

class OutputConfig {
 public:
  explicit OutputConfig(bool returnLogProbs = false, bool returnContextLogits = false, bool returnGenerationLogits = false,
                        bool excludeInputFromOutput = false, bool returnEncoderOutput = false)
      : returnLogProbs(returnLogProbs), returnContextLogits(returnContextLogits), returnGenerationLogits(returnGenerationLogits),
        excludeInputFromOutput(excludeInputFromOutput), returnEncoderOutput(returnEncoderOutput) {}

  bool returnLogProbs;
  bool returnContextLogits;
  bool returnGenerationLogits;
  bool excludeInputFromOutput;
  bool returnEncoderOutput;
};

class Request {
 public:
  // The real constructor has further defaulted parameters after stopWords (embedding bias,
  // LoRA, ...); the adapter passes only the first five.
  Request(VecTokens inputTokenIds, SizeType32 maxTokens, bool streaming = false,
          SamplingConfig const& samplingConfig = SamplingConfig(), OutputConfig const& outputConfig = OutputConfig(),
          std::optional<SizeType32> const& endId = std::nullopt, std::optional<SizeType32> const& padId = std::nullopt,
          std::optional<std::vector<SizeType32>> positionIds = std::nullopt,
          std::optional<std::list<VecTokens>> badWords = std::nullopt, std::optional<std::list<VecTokens>> stopWords = std::nullopt)
      : mInputTokenIds(std::move(inputTokenIds)), mMaxTokens(maxTokens), mStreaming(streaming), mSamplingConfig(samplingConfig),
        mOutputConfig(outputConfig), mEndId(endId), mPadId(padId), mBadWords(std::move(badWords)), mStopWords(std::move(stopWords)) {
    (void)positionIds;
  }

  [[nodiscard]] VecTokens getInputTokenIds() const { return mInputTokenIds; }
  [[nodiscard]] SizeType32 getMaxTokens() const { return mMaxTokens; }
  [[nodiscard]] bool getStreaming() const { return mStreaming; }
  [[nodiscard]] SamplingConfig getSamplingConfig() const { return mSamplingConfig; }
  [[nodiscard]] OutputConfig getOutputConfig() const { return mOutputConfig; }
  [[nodiscard]] std::optional<SizeType32> getEndId() const { return mEndId; }
  [[nodiscard]] std::optional<SizeType32> getPadId() const { return mPadId; }
  [[nodiscard]] std::optional<std::list<VecTokens>> getBadWords() const { return mBadWords; }
  [[nodiscard]] std::optional<std::list<VecTokens>> getStopWords() const { return mStopWords; }

  void setStreaming(bool streaming) { mStreaming = streaming; }
  void setSamplingConfig(SamplingConfig const& config) { mSamplingConfig = config; }
  void setOutputConfig(OutputConfig const& outputConfig) { mOutputConfig = outputConfig; }
  void setEndId(SizeType32 endId) { mEndId = endId; }
  void setPadId(SizeType32 padId) { mPadId = padId; }
  void setBadWords(std::list<VecTokens> const& badWords) { mBadWords = badWords; }
  void setStopWords(std::list<VecTokens> const& stopWords) { mStopWords = stopWords; }

 private:
  VecTokens mInputTokenIds;
  SizeType32 mMaxTokens;
  bool mStreaming;
  SamplingConfig mSamplingConfig;
  OutputConfig mOutputConfig;
  std::optional<SizeType32> mEndId;
  std::optional<SizeType32> mPadId;
  std::optional<std::list<VecTokens>> mBadWords;
  std::optional<std::list<VecTokens>> mStopWords;
};

// The real Result also carries logits and encoder outputs (executor Tensors), which the adapter
// never asks for.
struct Result {
  bool isFinal;
  BeamTokens outputTokenIds;
  std::optional<VecLogProbs> cumLogProbs;
  std::optional<std::vector<VecLogProbs>> logProbs;
  std::vector<FinishReason> finishReasons;
  SizeType32 decodingIter{0};
  SizeType32 sequenceIndex{0};
  bool isSequenceFinal;
};

class Response {
 public:
  Response(IdType requestId, std::string errorMsg) : mRequestId(requestId), mError(std::move(errorMsg)) {}
  Response(IdType requestId, Result Result) : mRequestId(requestId), mResult(std::move(Result)) {}

  [[nodiscard]] IdType getRequestId() const { return mRequestId; }
  [[nodiscard]] bool hasError() const { return mError.has_value(); }
  [[nodiscard]] std::string const& getErrorMsg() const {
    if (!mError) throw std::runtime_error("Response::getErrorMsg on a response without an error");
    return *mError;
  }
  [[nodiscard]] Result const& getResult() const {
    if (!mResult) throw std::runtime_error("Response::getResult on an error response");
    return *mResult;
  }

 private:
  IdType mRequestId;
  std::optional<std::string> mError;
  std::optional<Result> mResult;
};

class SchedulerConfig {
 public:
  explicit SchedulerConfig(CapacitySchedulerPolicy capacitySchedulerPolicy = CapacitySchedulerPolicy::kGUARANTEED_NO_EVICT,
                           std::optional<ContextChunkingPolicy> contextChunkingPolicy = std::nullopt)
      : mCapacitySchedulerPolicy(capacitySchedulerPolicy), mContextChunkingPolicy(contextChunkingPolicy) {}

  [[nodiscard]] CapacitySchedulerPolicy getCapacitySchedulerPolicy() const { return mCapacitySchedulerPolicy; }
  [[nodiscard]] std::optional<ContextChunkingPolicy> getContextChunkingPolicy() const { return mContextChunkingPolicy; }

 private:
  CapacitySchedulerPolicy mCapacitySchedulerPolicy;
  std::optional<ContextChunkingPolicy> mContextChunkingPolicy;
};

class KvCacheConfig {
 public:
  // noinline (here and in ExecutorConfig): inlined into callers, GCC 12's -Wmaybe-uninitialized
  // misreads the disengaged std::optional default arguments (a known false positive).
  [[gnu::noinline]] explicit KvCacheConfig(bool enableBlockReuse = false, std::optional<SizeType32> const& maxTokens = std::nullopt,
                         std::optional<std::vector<SizeType32>> const& maxAttentionWindowVec = std::nullopt,
                         std::optional<SizeType32> const& sinkTokenLength = std::nullopt,
                         std::optional<FloatType> const& freeGpuMemoryFraction = std::nullopt,
                         std::optional<size_t> const& hostCacheSize = std::nullopt, bool onboardBlocks = true)
      : mEnableBlockReuse(enableBlockReuse) {
    if (maxTokens) setMaxTokens(*maxTokens);
    if (freeGpuMemoryFraction) setFreeGpuMemoryFraction(*freeGpuMemoryFraction);
    (void)maxAttentionWindowVec, (void)sinkTokenLength, (void)hostCacheSize, (void)onboardBlocks;
  }

  [[nodiscard]] bool getEnableBlockReuse() const { return mEnableBlockReuse; }
  [[nodiscard]] std::optional<SizeType32> getMaxTokens() const {
    return mHasMaxTokens ? std::optional<SizeType32>(mMaxTokens) : std::nullopt;
  }
  [[nodiscard]] std::optional<FloatType> getFreeGpuMemoryFraction() const {
    return mHasFraction ? std::optional<FloatType>(mFreeGpuMemoryFraction) : std::nullopt;
  }

  void setEnableBlockReuse(bool enableBlockReuse) { mEnableBlockReuse = enableBlockReuse; }
  void setMaxTokens(SizeType32 maxTokens) {
    mMaxTokens = maxTokens;
    mHasMaxTokens = true;
  }
  void setFreeGpuMemoryFraction(FloatType freeGpuMemoryFraction) {
    mFreeGpuMemoryFraction = freeGpuMemoryFraction;
    mHasFraction = true;
  }

 private:
  // Plain fields rather than std::optional, for the same GCC false positive when the class is copied.
  bool mEnableBlockReuse;
  bool mHasMaxTokens = false;
  SizeType32 mMaxTokens = 0;
  bool mHasFraction = false;
  FloatType mFreeGpuMemoryFraction = 0;
};

SizeType32 const kDefaultIterStatsMaxIterations = 1000;
SizeType32 const kDefaultRequestStatsMaxIterations = 0;

class ExecutorConfig {
 public:
  // The real constructor continues with parallel, PEFT, logits post-processor, decoding and
  // debug settings (all defaulted); the adapter default-constructs and uses setters.
  [[gnu::noinline]] explicit ExecutorConfig(SizeType32 maxBeamWidth = 1, SchedulerConfig const& schedulerConfig = SchedulerConfig(),
                          KvCacheConfig const& kvCacheConfig = KvCacheConfig(), bool enableChunkedContext = false,
                          bool normalizeLogProbs = true, SizeType32 iterStatsMaxIterations = kDefaultIterStatsMaxIterations,
                          SizeType32 requestStatsMaxIterations = kDefaultRequestStatsMaxIterations,
                          BatchingType batchingType = BatchingType::kINFLIGHT,
                          std::optional<SizeType32> maxBatchSize = std::nullopt,
                          std::optional<SizeType32> maxNumTokens = std::nullopt)
      : mMaxBeamWidth(maxBeamWidth), mSchedulerConfig(schedulerConfig), mKvCacheConfig(kvCacheConfig),
        mEnableChunkedContext(enableChunkedContext), mNormalizeLogProbs(normalizeLogProbs),
        mIterStatsMaxIterations(iterStatsMaxIterations), mRequestStatsMaxIterations(requestStatsMaxIterations),
        mBatchingType(batchingType), mMaxBatchSize(maxBatchSize), mMaxNumTokens(maxNumTokens) {}

  [[nodiscard]] SizeType32 getMaxBeamWidth() const { return mMaxBeamWidth; }
  [[nodiscard]] SchedulerConfig getSchedulerConfig() const { return mSchedulerConfig; }
  [[nodiscard]] KvCacheConfig getKvCacheConfig() const { return mKvCacheConfig; }
  [[nodiscard]] bool getEnableChunkedContext() const { return mEnableChunkedContext; }
  [[nodiscard]] bool getNormalizeLogProbs() const { return mNormalizeLogProbs; }
  [[nodiscard]] SizeType32 getIterStatsMaxIterations() const { return mIterStatsMaxIterations; }
  [[nodiscard]] BatchingType getBatchingType() const { return mBatchingType; }
  [[nodiscard]] std::optional<SizeType32> getMaxBatchSize() const { return mMaxBatchSize; }
  [[nodiscard]] std::optional<SizeType32> getMaxNumTokens() const { return mMaxNumTokens; }

  void setMaxBeamWidth(SizeType32 maxBeamWidth) { mMaxBeamWidth = maxBeamWidth; }
  void setMaxBatchSize(SizeType32 maxBatchSize) { mMaxBatchSize = maxBatchSize; }
  void setMaxNumTokens(SizeType32 maxNumTokens) { mMaxNumTokens = maxNumTokens; }
  void setSchedulerConfig(SchedulerConfig const& schedulerConfig) { mSchedulerConfig = schedulerConfig; }
  void setKvCacheConfig(KvCacheConfig const& kvCacheConfig) { mKvCacheConfig = kvCacheConfig; }
  void setEnableChunkedContext(bool enableChunkedContext) { mEnableChunkedContext = enableChunkedContext; }
  void setNormalizeLogProbs(bool normalizeLogProbs) { mNormalizeLogProbs = normalizeLogProbs; }
  void setIterStatsMaxIterations(SizeType32 iterStatsMaxIterations) { mIterStatsMaxIterations = iterStatsMaxIterations; }
  void setBatchingType(BatchingType batchingType) { mBatchingType = batchingType; }

 private:
  SizeType32 mMaxBeamWidth;
  SchedulerConfig mSchedulerConfig;
  KvCacheConfig mKvCacheConfig;
  bool mEnableChunkedContext;
  bool mNormalizeLogProbs;
  SizeType32 mIterStatsMaxIterations;
  SizeType32 mRequestStatsMaxIterations;
  BatchingType mBatchingType;
  std::optional<SizeType32> mMaxBatchSize;
  std::optional<SizeType32> mMaxNumTokens;
};

// ---- the double's own test controls (not part of TensorRT-LLM) --------------------------------
namespace testing {

// How the fake answers when no test scripts it.
struct Behaviour {
  bool scripted = false;                   // true: nothing is sent unless the test pushes it
  int tokens_per_response = 1;             // tokens per streamed response
  std::chrono::milliseconds step{1};       // time between responses
  TokenIdType first_token = 300;           // token k of a request is first_token + (prompt.back() + k) % token_span
  int token_span = 100;
  std::optional<int> end_after;            // emit the end id after this many tokens
  std::optional<TokenIdType> fail_on_prompt_token;  // a prompt holding it gets an error response
  std::string failure_message = "injected executor failure";
  std::optional<std::string> construct_error;  // the Executor constructor throws this
  std::optional<std::string> enqueue_error;    // enqueueRequest throws this
  bool can_enqueue = true;                     // canEnqueueRequests() (false: not the leader process)
  bool log = false;                        // print enqueue/cancel calls on stderr (end-to-end tests read them)
};

// Shared between a test and the fake executors: records and scripted output. All fields are
// guarded by `mutex`; `changed` is notified on every change.
struct Control {
  Behaviour behaviour;

  std::mutex mutex;
  std::condition_variable changed;
  int executors_created = 0;
  std::filesystem::path model_path;
  std::optional<ModelType> model_type;
  std::optional<ExecutorConfig> config;
  std::vector<std::pair<IdType, Request>> enqueued;
  // cancelRequest calls: the id, and how many getLatestIterationStats calls had come before it.
  std::vector<std::pair<IdType, int>> cancelled;
  bool shut_down = false;
  IdType next_id = 1;
  std::deque<Response> pending;       // handed out by awaitResponses
  std::deque<IterationStats> stats;   // handed out by getLatestIterationStats
  int stats_reads = 0;

  void push(Response response) {
    {
      std::lock_guard lock(mutex);
      pending.push_back(std::move(response));
    }
    changed.notify_all();
  }
  void push_stats(IterationStats s) {
    {
      std::lock_guard lock(mutex);
      stats.push_back(std::move(s));
    }
    changed.notify_all();
  }
  // Waits until `ready()` (evaluated under the lock) or the timeout; returns ready().
  template <typename Ready>
  bool wait_for(Ready ready, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, ready);
  }

  // <engine_dir>/test_double.json, or the default behaviour when absent.
  static std::shared_ptr<Control> from_engine_dir(const std::filesystem::path& engine_dir) {
    auto control = std::make_shared<Control>();
    const auto file = engine_dir / "test_double.json";
    if (!std::filesystem::exists(file)) return control;
    std::ifstream in(file);
    const nlohmann::json j = nlohmann::json::parse(in);
    Behaviour& b = control->behaviour;
    b.tokens_per_response = j.value("tokens_per_response", b.tokens_per_response);
    b.step = std::chrono::milliseconds(j.value("step_ms", static_cast<int>(b.step.count())));
    b.first_token = j.value("first_token", b.first_token);
    b.token_span = j.value("token_span", b.token_span);
    if (j.contains("end_after")) b.end_after = j["end_after"].get<int>();
    if (j.contains("fail_on_prompt_token")) b.fail_on_prompt_token = j["fail_on_prompt_token"].get<TokenIdType>();
    b.failure_message = j.value("failure_message", b.failure_message);
    if (j.contains("construct_error")) b.construct_error = j["construct_error"].get<std::string>();
    b.log = j.value("log", b.log);
    return control;
  }
};

// The control the next Executor uses; nullptr: each Executor reads its engine folder.
inline std::shared_ptr<Control>& installed() {
  static std::shared_ptr<Control> control;
  return control;
}
inline std::shared_ptr<Control> install(Behaviour behaviour = {}) {
  auto control = std::make_shared<Control>();
  control->behaviour = std::move(behaviour);
  installed() = control;
  return control;
}

}  // namespace testing

class Executor {
 public:
  Executor(std::filesystem::path const& modelPath, ModelType modelType, ExecutorConfig const& executorConfig)
      : mControl(testing::installed() ? testing::installed() : testing::Control::from_engine_dir(modelPath)) {
    testing::Control& c = *mControl;
    if (c.behaviour.construct_error) throw std::runtime_error(*c.behaviour.construct_error);
    {
      std::lock_guard lock(c.mutex);
      ++c.executors_created;
      c.model_path = modelPath;
      c.model_type = modelType;
      c.config = executorConfig;
    }
    if (!c.behaviour.scripted) mWorker = std::thread([this] { run(); });
  }
  ~Executor() { stop(); }
  Executor(Executor const&) = delete;
  Executor& operator=(Executor const&) = delete;

  [[nodiscard]] IdType enqueueRequest(Request const& request) {
    testing::Control& c = *mControl;
    std::unique_lock lock(c.mutex);
    if (c.behaviour.enqueue_error) throw std::runtime_error(*c.behaviour.enqueue_error);
    const IdType id = c.next_id++;
    c.enqueued.emplace_back(id, request);
    if (!c.behaviour.scripted) mActive.push_back(Active{id, request, 0, {}});
    if (c.behaviour.log) {
      std::fprintf(stderr, "tensorrtllm test double: enqueueRequest(%llu): %zu prompt tokens, maxTokens %d, streaming %d\n",
                   static_cast<unsigned long long>(id), request.getInputTokenIds().size(), request.getMaxTokens(),
                   request.getStreaming() ? 1 : 0);
    }
    lock.unlock();
    c.changed.notify_all();
    return id;
  }

  [[nodiscard]] std::vector<Response> awaitResponses(std::optional<std::chrono::milliseconds> const& timeout = std::nullopt) {
    testing::Control& c = *mControl;
    std::unique_lock lock(c.mutex);
    auto ready = [&] { return !c.pending.empty() || c.shut_down; };
    if (timeout) {
      c.changed.wait_for(lock, *timeout, ready);
    } else {
      c.changed.wait(lock, ready);
    }
    std::vector<Response> out(std::make_move_iterator(c.pending.begin()), std::make_move_iterator(c.pending.end()));
    c.pending.clear();
    lock.unlock();
    if (!out.empty()) c.changed.notify_all();  // tests wait for the responses to be taken
    return out;
  }

  void cancelRequest(IdType requestId) {
    testing::Control& c = *mControl;
    {
      std::lock_guard lock(c.mutex);
      c.cancelled.emplace_back(requestId, c.stats_reads);
      if (c.behaviour.log) std::fprintf(stderr, "tensorrtllm test double: cancelRequest(%llu)\n", static_cast<unsigned long long>(requestId));
      const auto it = std::find_if(mActive.begin(), mActive.end(), [&](const Active& a) { return a.id == requestId; });
      if (it != mActive.end()) {
        mActive.erase(it);
        // As the executor does, a cancelled request still gets a final (unfinished) response.
        c.pending.push_back(Response(requestId, Result{true, {{}}, std::nullopt, std::nullopt, {FinishReason::kNOT_FINISHED}, 0, 0, true}));
      }
    }
    c.changed.notify_all();
  }

  void shutdown() {
    stop();
    {
      std::lock_guard lock(mControl->mutex);
      mControl->shut_down = true;
    }
    mControl->changed.notify_all();
  }

  std::deque<IterationStats> getLatestIterationStats() {
    std::lock_guard lock(mControl->mutex);
    ++mControl->stats_reads;
    std::deque<IterationStats> out;
    out.swap(mControl->stats);
    return out;
  }

  [[nodiscard]] bool canEnqueueRequests() const {
    std::lock_guard lock(mControl->mutex);
    return mControl->behaviour.can_enqueue;
  }

 private:
  struct Active {
    IdType id;
    Request request;
    int produced;
    VecTokens gathered;  // non-streamed requests: everything so far
  };

  void stop() {
    {
      std::lock_guard lock(mControl->mutex);
      mStopping = true;
    }
    mControl->changed.notify_all();
    if (mWorker.joinable()) mWorker.join();
  }

  static bool ends_with(const VecTokens& tokens, const VecTokens& word) {
    return !word.empty() && word.size() <= tokens.size() && std::equal(word.rbegin(), word.rend(), tokens.rbegin());
  }

  // One step of every active request: the fake's "iteration".
  void step_locked(testing::Control& c) {
    const testing::Behaviour& b = c.behaviour;
    for (auto it = mActive.begin(); it != mActive.end();) {
      Active& a = *it;
      const VecTokens prompt = a.request.getInputTokenIds();
      if (b.fail_on_prompt_token && std::find(prompt.begin(), prompt.end(), *b.fail_on_prompt_token) != prompt.end()) {
        c.pending.push_back(Response(a.id, b.failure_message));
        it = mActive.erase(it);
        continue;
      }
      VecTokens fresh;
      FinishReason reason = FinishReason::kNOT_FINISHED;
      const std::optional<SizeType32> end_id = a.request.getEndId();
      const auto stop_words = a.request.getStopWords();
      for (int i = 0; i < b.tokens_per_response && reason == FinishReason::kNOT_FINISHED; ++i) {
        TokenIdType token = b.first_token + static_cast<TokenIdType>((prompt.back() + a.produced) % b.token_span);
        if (b.end_after && a.produced >= *b.end_after && end_id && *end_id >= 0) token = *end_id;
        ++a.produced;
        if (end_id && token == *end_id) {
          reason = FinishReason::kEND_ID;  // the end id is not part of the output
          break;
        }
        fresh.push_back(token);
        a.gathered.push_back(token);
        if (stop_words) {
          for (const auto& word : *stop_words)
            if (ends_with(a.gathered, word)) reason = FinishReason::kSTOP_WORDS;
        }
        if (reason == FinishReason::kNOT_FINISHED && a.produced >= a.request.getMaxTokens()) reason = FinishReason::kLENGTH;
      }
      const bool final = reason != FinishReason::kNOT_FINISHED;
      if (a.request.getStreaming() || final) {
        Result r{final, {a.request.getStreaming() ? fresh : a.gathered}, std::nullopt, std::nullopt, {reason}, a.produced, 0, final};
        // As in 0.13: the prompt only in a non-streamed result that asks for it, never streamed.
        if (!a.request.getOutputConfig().excludeInputFromOutput && !a.request.getStreaming())
          r.outputTokenIds[0].insert(r.outputTokenIds[0].begin(), prompt.begin(), prompt.end());
        if (a.request.getOutputConfig().returnLogProbs) {
          // The log probabilities of every token generated so far, streamed or not.
          VecLogProbs lp;
          for (TokenIdType t : a.gathered) lp.push_back(-0.001f * static_cast<float>(t));
          r.logProbs = std::vector<VecLogProbs>{lp};
        }
        c.pending.push_back(Response(a.id, std::move(r)));
      }
      it = final ? mActive.erase(it) : std::next(it);
    }
    IterationStats s{};
    s.iter = mIteration++;
    s.iterLatencyMS = static_cast<double>(b.step.count());
    s.numActiveRequests = static_cast<SizeType32>(mActive.size());
    s.gpuMemUsage = 1u << 30;
    s.kvCacheStats = KvCacheStats{1024, 1024 - 8 * static_cast<SizeType32>(mActive.size()), 8 * static_cast<SizeType32>(mActive.size()), 64, 0, 0, 0};
    c.stats.push_back(s);
    if (c.stats.size() > 1000) c.stats.pop_front();
  }

  void run() {
    testing::Control& c = *mControl;
    std::unique_lock lock(c.mutex);
    while (!mStopping) {
      c.changed.wait(lock, [&] { return mStopping || !mActive.empty(); });
      c.changed.wait_for(lock, c.behaviour.step, [&] { return mStopping; });
      if (mStopping) break;
      step_locked(c);
      c.changed.notify_all();
    }
  }

  std::shared_ptr<testing::Control> mControl;
  std::list<Active> mActive;  // guarded by mControl->mutex
  IterationType mIteration = 0;
  bool mStopping = false;
  std::thread mWorker;
};

}  // namespace tensorrt_llm::executor
