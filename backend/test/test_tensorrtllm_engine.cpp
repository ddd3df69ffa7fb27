// The TensorRT-LLM engine adapter (backend/src/engine/tensorrtllm/tensorrtllm_engine.cpp),
// compiled against the executor test double (tensorrtllm_double/): request mapping, streamed
// partial results, one final per request, end ids and stop words, stop strings on the text side,
// cancellation within one check period, executor errors with their message kept, statistics.
#include <gtest/gtest.h>

#include <tensorrt_llm/executor/executor.h>
#include <tensorrt_llm/plugins/api/tllmPlugin.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "engine/tensorrtllm/tensorrtllm_engine.h"
#include "test_util.h"
#include "tiny_hf_model.h"

namespace llm {
namespace {

namespace tle = tensorrt_llm::executor;
using namespace std::chrono_literals;

// Records everything an engine tells one sequence; thread-safe (the engine calls from its threads).
class Recorder : public GenerationObserver {
 public:
  struct Step {
    std::vector<int32_t> ids;
    std::string text;
    std::vector<float> log_probs;
    FinishReason finish;
  };

  bool cancelled() override { return cancel_.load(); }
  void on_step(const StepOutput& step) override {
    std::lock_guard lock(mutex_);
    steps_.push_back({{step.new_ids.begin(), step.new_ids.end()}, std::string(step.text), {step.log_probs.begin(), step.log_probs.end()}, step.finish});
    if (step.finish != FinishReason::None) end_locked(std::string("finished:") + finish_reason_name(step.finish));
  }
  void on_error(const std::string& message) override {
    std::lock_guard lock(mutex_);
    end_locked("error:" + message);
  }
  void on_cancelled() override {
    std::lock_guard lock(mutex_);
    end_locked("cancelled");
  }

  void cancel() { cancel_.store(true); }

  // Waits (bounded) for the sequence's end; "" if it did not end.
  std::string wait(std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return !ending_.empty(); });
    return ending_.empty() ? "" : ending_.front();
  }
  size_t endings() {
    std::lock_guard lock(mutex_);
    return ending_.size();
  }
  std::vector<Step> steps() {
    std::lock_guard lock(mutex_);
    return steps_;
  }
  std::vector<int32_t> ids() {
    std::vector<int32_t> all;
    for (const auto& s : steps()) all.insert(all.end(), s.ids.begin(), s.ids.end());
    return all;
  }
  std::string text() {
    std::string all;
    for (const auto& s : steps()) all += s.text;
    return all;
  }

 private:
  void end_locked(const std::string& how) {
    ending_.push_back(how);  // more than one entry is a contract violation the tests check
    changed_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Step> steps_;
  std::vector<std::string> ending_;
  std::atomic<bool> cancel_{false};
};

tle::Result result(std::vector<int32_t> ids, bool final, tle::FinishReason reason = tle::FinishReason::kNOT_FINISHED) {
  return tle::Result{final, {std::move(ids)}, std::nullopt, std::nullopt, {final ? reason : tle::FinishReason::kNOT_FINISHED}, 0, 0, final};
}

class TensorRtLlmEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = std::make_unique<Tokenizer>(test::write_fake_llama_tokenizer(dir_.path()));
    engine_dir_ = dir_.path() / "engine";
    std::filesystem::create_directories(engine_dir_);
    write_engine_config(R"({
      "version": "0.13.0",
      "pretrained_config": {"architecture": "LlamaForCausalLM", "dtype": "float16", "vocab_size": 32000,
                            "max_position_embeddings": 4096, "quantization": {"quant_algo": "W4A16_AWQ"}},
      "build_config": {"max_input_len": 64, "max_seq_len": 128, "max_batch_size": 8}
    })");
    options_.engine_dir = engine_dir_;
    options_.cancellation_check_period = 50ms;
    options_.stats_check_period = 20ms;
  }
  void TearDown() override {
    engine_.reset();
    tle::testing::installed() = nullptr;
  }

  void write_engine_config(const std::string& text) { std::ofstream(engine_dir_ / "config.json") << text; }

  // Installs the fake executor's control and creates the engine.
  std::shared_ptr<tle::testing::Control> start(tle::testing::Behaviour behaviour = scripted()) {
    auto control = tle::testing::install(std::move(behaviour));
    engine_ = std::make_unique<TensorRtLlmEngine>(options_, *tokenizer_, [this](LogLevel level, const std::string& line) {
      std::lock_guard lock(log_mutex_);
      log_.emplace_back(level, line);
    });
    return control;
  }
  static tle::testing::Behaviour scripted() {
    tle::testing::Behaviour b;
    b.scripted = true;
    return b;
  }

  static GenerationRequest request(std::vector<int32_t> prompt = {1, 300, 301}, int32_t max_tokens = 8) {
    GenerationRequest r;
    r.prompt_ids = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.end_ids = {2};
    return r;
  }

  // Submits and returns the executor's id for the request.
  tle::IdType submit(tle::testing::Control& control, GenerationRequest r, const std::shared_ptr<Recorder>& recorder) {
    size_t before = 0;
    {
      std::lock_guard lock(control.mutex);
      before = control.enqueued.size();
    }
    engine_->submit(std::move(r), recorder);
    std::lock_guard lock(control.mutex);
    EXPECT_EQ(control.enqueued.size(), before + 1);
    return control.enqueued.back().first;
  }

  bool logged(const std::string& needle) {
    std::lock_guard lock(log_mutex_);
    for (const auto& [level, line] : log_)
      if (line.find(needle) != std::string::npos) return true;
    return false;
  }

  test::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::filesystem::path engine_dir_;
  TensorRtLlmOptions options_;
  std::unique_ptr<TensorRtLlmEngine> engine_;
  std::mutex log_mutex_;
  std::vector<std::pair<LogLevel, std::string>> log_;
};

TEST_F(TensorRtLlmEngineTest, ExecutorGetsTheEngineFolderAndTheKnobs) {
  options_.scheduler_policy = TensorRtLlmOptions::SchedulerPolicy::MaxUtilization;
  options_.max_tokens_in_paged_kv_cache = 4096;
  options_.kv_cache_free_gpu_mem_fraction = 0.5f;
  options_.enable_kv_cache_reuse = true;
  options_.enable_chunked_context = true;
  options_.max_batch_size = 4;
  options_.max_num_tokens = 2048;
  const int registrations = tle::testing::plugin_registrations().load();
  auto control = start();
  std::lock_guard lock(control->mutex);
  EXPECT_EQ(control->executors_created, 1);
  EXPECT_EQ(control->model_path, engine_dir_);
  EXPECT_EQ(control->model_type, tle::ModelType::kDECODER_ONLY);
  ASSERT_TRUE(control->config);
  const tle::ExecutorConfig& c = *control->config;
  EXPECT_EQ(c.getMaxBeamWidth(), 1);
  EXPECT_EQ(c.getBatchingType(), tle::BatchingType::kINFLIGHT);
  EXPECT_EQ(c.getSchedulerConfig().getCapacitySchedulerPolicy(), tle::CapacitySchedulerPolicy::kMAX_UTILIZATION);
  EXPECT_EQ(c.getKvCacheConfig().getMaxTokens(), 4096);
  EXPECT_EQ(c.getKvCacheConfig().getFreeGpuMemoryFraction(), 0.5f);
  EXPECT_TRUE(c.getKvCacheConfig().getEnableBlockReuse());
  EXPECT_TRUE(c.getEnableChunkedContext());
  EXPECT_EQ(c.getMaxBatchSize(), 4);
  EXPECT_EQ(c.getMaxNumTokens(), 2048);
  // Plugins are registered once per process, before the first engine loads.
  EXPECT_GE(tle::testing::plugin_registrations().load(), 1);
  EXPECT_LE(tle::testing::plugin_registrations().load() - registrations, 1);
  EXPECT_EQ(engine_->vocab_size(), 32000);
  EXPECT_EQ(engine_->context_tokens(), 128) << "build_config.max_seq_len, not max_position_embeddings";
  const std::string description = engine_->describe();
  EXPECT_NE(description.find("W4A16_AWQ"), std::string::npos) << description;
  EXPECT_NE(description.find("built by TensorRT-LLM 0.13.0"), std::string::npos) << description;
  // What runs it, for nv_llm_engine_info and the bench's results: the library and the GPU.
  EXPECT_NE(description.find("run by TensorRT-LLM 0.13.0 on GPU 0: Test Double GPU (sm_90, 81920 MiB), driver for CUDA 12.6, "
                             "CUDA runtime 12.4"),
            std::string::npos)
      << description;
}

TEST_F(TensorRtLlmEngineTest, DefaultKnobsAreTensorRtLlmDefaults) {
  auto control = start();
  std::lock_guard lock(control->mutex);
  const tle::ExecutorConfig& c = *control->config;
  EXPECT_EQ(c.getBatchingType(), tle::BatchingType::kINFLIGHT);
  EXPECT_EQ(c.getSchedulerConfig().getCapacitySchedulerPolicy(), tle::CapacitySchedulerPolicy::kGUARANTEED_NO_EVICT);
  EXPECT_FALSE(c.getKvCacheConfig().getMaxTokens());
  EXPECT_FALSE(c.getKvCacheConfig().getFreeGpuMemoryFraction());
  EXPECT_FALSE(c.getEnableChunkedContext());
  EXPECT_FALSE(c.getMaxBatchSize());
  EXPECT_FALSE(c.getMaxNumTokens());
}

TEST_F(TensorRtLlmEngineTest, RequestMapping) {
  auto control = start();
  GenerationRequest r = request({1, 300, 301}, 5);
  r.end_ids = {2, 7};  // the executor takes one; the other, with min_tokens, the engine watches
  r.min_tokens = 2;
  r.return_log_probs = true;
  r.stop_token_sequences = {{400, 401}};
  r.bad_token_sequences = {{500}, {501, 502}};
  submit(*control, r, std::make_shared<Recorder>());

  GenerationRequest sampled = request({1, 310}, 3);
  sampled.sampling.temperature = 0.7f;
  sampled.sampling.top_k = 40;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.seed = 42;
  sampled.sampling.repetition_penalty = 1.1f;
  sampled.sampling.presence_penalty = 0.5f;
  sampled.sampling.frequency_penalty = 0.25f;
  sampled.ignore_eos = true;
  submit(*control, sampled, std::make_shared<Recorder>());

  std::lock_guard lock(control->mutex);
  const tle::Request& a = control->enqueued[0].second;
  EXPECT_EQ(a.getInputTokenIds(), (std::vector<int32_t>{1, 300, 301}));
  EXPECT_EQ(a.getMaxTokens(), 5);
  EXPECT_TRUE(a.getStreaming()) << "always streamed: the glue gathers non-streamed requests itself";
  EXPECT_TRUE(a.getOutputConfig().excludeInputFromOutput);
  EXPECT_TRUE(a.getOutputConfig().returnLogProbs);
  EXPECT_EQ(a.getEndId(), 2);
  ASSERT_TRUE(a.getStopWords());
  EXPECT_EQ(*a.getStopWords(), (std::list<tle::VecTokens>{{400, 401}}));
  ASSERT_TRUE(a.getBadWords());
  EXPECT_EQ(*a.getBadWords(), (std::list<tle::VecTokens>{{500}, {501, 502}}));
  EXPECT_EQ(a.getSamplingConfig().getTopK(), 1) << "greedy is explicit";
  EXPECT_FALSE(a.getSamplingConfig().getTemperature());
  EXPECT_EQ(a.getSamplingConfig().getMinTokens(), 2);
  EXPECT_FALSE(a.getSamplingConfig().getRepetitionPenalty()) << "neutral values are left to the executor";

  const tle::Request& b = control->enqueued[1].second;
  const tle::SamplingConfig s = b.getSamplingConfig();
  EXPECT_EQ(s.getTopK(), 40);
  EXPECT_EQ(s.getTopP(), 0.9f);
  EXPECT_EQ(s.getTemperature(), 0.7f);
  EXPECT_EQ(s.getSeed(), 42u);
  EXPECT_EQ(s.getRepetitionPenalty(), 1.1f);
  EXPECT_EQ(s.getPresencePenalty(), 0.5f);
  EXPECT_EQ(s.getFrequencyPenalty(), 0.25f);
  EXPECT_EQ(b.getEndId(), -1) << "ignore_eos: no end id";
  EXPECT_FALSE(b.getStopWords());
  EXPECT_FALSE(b.getOutputConfig().returnLogProbs);
}

TEST_F(TensorRtLlmEngineTest, StreamedPartialResultsThenExactlyOneFinal) {
  auto control = start();
  auto recorder = std::make_shared<Recorder>();
  GenerationRequest r = request();
  r.return_log_probs = true;
  const tle::IdType id = submit(*control, r, recorder);
  EXPECT_EQ(engine_->stats().active, 1u);
  auto first = result({300, 301}, false);
  first.logProbs = std::vector<tle::VecLogProbs>{{-0.5f, -0.25f}};
  control->push(tle::Response(id, first));
  auto second = result({302}, false);
  second.logProbs = std::vector<tle::VecLogProbs>{{-0.5f, -0.25f, -1.0f}};  // all so far: the adapter takes the tail
  control->push(tle::Response(id, second));
  control->push(tle::Response(id, result({303, 304}, true, tle::FinishReason::kLENGTH)));
  EXPECT_EQ(recorder->wait(), "finished:length");

  const auto steps = recorder->steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].finish, FinishReason::None);
  EXPECT_EQ(steps[1].finish, FinishReason::None);
  EXPECT_EQ(steps[2].finish, FinishReason::Length);
  EXPECT_EQ(steps[0].log_probs, (std::vector<float>{-0.5f, -0.25f}));
  EXPECT_EQ(steps[1].log_probs, (std::vector<float>{-1.0f}));
  EXPECT_EQ(recorder->ids(), (std::vector<int32_t>{300, 301, 302, 303, 304}));
  EXPECT_EQ(recorder->text(), tokenizer_->decode(recorder->ids())) << "the chunks concatenate to the full decode";
  EXPECT_EQ(recorder->text(), "p300 p301 p302 p303 p304");

  // A response after the final one (it cannot happen, but must not reach the observer).
  control->push(tle::Response(id, result({305}, true, tle::FinishReason::kLENGTH)));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(recorder->endings(), 1u);
  EXPECT_EQ(recorder->steps().size(), 3u);
  EXPECT_EQ(engine_->stats().active, 0u);
}

TEST_F(TensorRtLlmEngineTest, EndIdsAreNotOutputAndStopWordsAre) {
  auto control = start();
  GenerationRequest r = request();
  r.end_ids = {2, 7};
  r.stop_token_sequences = {{400, 401}};

  auto on_end_id = std::make_shared<Recorder>();
  const tle::IdType a = submit(*control, r, on_end_id);
  control->push(tle::Response(a, result({300, 2}, true, tle::FinishReason::kEND_ID)));
  EXPECT_EQ(on_end_id->wait(), "finished:stop");
  EXPECT_EQ(on_end_id->ids(), (std::vector<int32_t>{300}));
  EXPECT_EQ(on_end_id->steps().back().finish, FinishReason::EndId);

  auto on_second_end_id = std::make_shared<Recorder>();
  const tle::IdType b = submit(*control, r, on_second_end_id);
  control->push(tle::Response(b, result({300, 7}, true, tle::FinishReason::kSTOP_WORDS)));
  EXPECT_EQ(on_second_end_id->wait(), "finished:stop");
  EXPECT_EQ(on_second_end_id->ids(), (std::vector<int32_t>{300}));
  EXPECT_EQ(on_second_end_id->steps().back().finish, FinishReason::EndId);

  auto on_stop_word = std::make_shared<Recorder>();
  const tle::IdType c = submit(*control, r, on_stop_word);
  control->push(tle::Response(c, result({300, 400, 401}, true, tle::FinishReason::kSTOP_WORDS)));
  EXPECT_EQ(on_stop_word->wait(), "finished:stop");
  EXPECT_EQ(on_stop_word->ids(), (std::vector<int32_t>{300, 400, 401})) << "token stop words stay in the output, as in TensorRT-LLM";
  EXPECT_EQ(on_stop_word->steps().back().finish, FinishReason::StopString);

  auto on_end_without_token = std::make_shared<Recorder>();
  const tle::IdType d = submit(*control, r, on_end_without_token);
  control->push(tle::Response(d, result({301}, false)));
  control->push(tle::Response(d, result({}, true, tle::FinishReason::kEND_ID)));
  EXPECT_EQ(on_end_without_token->wait(), "finished:stop");
  EXPECT_EQ(on_end_without_token->ids(), (std::vector<int32_t>{301}));
}

// With min_tokens the executor holds back its end id but not stop words, so the other end ids are
// not sent as stop words: the engine watches them and ends the request at the first one past
// min_tokens, stopping the executor.
TEST_F(TensorRtLlmEngineTest, OtherEndIdsWaitForMinTokens) {
  auto control = start();
  GenerationRequest r = request();
  r.end_ids = {2, 7};
  r.min_tokens = 3;
  auto recorder = std::make_shared<Recorder>();
  const tle::IdType id = submit(*control, r, recorder);
  {
    std::lock_guard lock(control->mutex);
    const tle::Request& sent = control->enqueued.back().second;
    EXPECT_EQ(sent.getEndId(), 2);
    EXPECT_FALSE(sent.getStopWords().has_value() && !sent.getStopWords()->empty()) << "7 is not a stop word here";
  }
  control->push(tle::Response(id, result({7, 300}, false)));   // tokens 1-2: 7 is an ordinary token
  control->push(tle::Response(id, result({301, 7, 302}, false)));  // token 4 is past min_tokens: the end
  EXPECT_EQ(recorder->wait(), "finished:stop");
  EXPECT_EQ(recorder->ids(), (std::vector<int32_t>{7, 300, 301}));
  EXPECT_EQ(recorder->steps().back().finish, FinishReason::EndId);
  ASSERT_TRUE(control->wait_for([&] { return !control->cancelled.empty(); }));
  {
    std::lock_guard lock(control->mutex);
    EXPECT_EQ(control->cancelled.back().first, id);
  }

  // Without min_tokens they go to the executor as stop words.
  r.min_tokens = 0;
  submit(*control, r, std::make_shared<Recorder>());
  std::lock_guard lock(control->mutex);
  const auto stop_words = control->enqueued.back().second.getStopWords();
  ASSERT_TRUE(stop_words.has_value());
  EXPECT_EQ(stop_words->back(), (tle::VecTokens{7}));
}

TEST_F(TensorRtLlmEngineTest, StopStringsEndTheTextAndStopTheExecutor) {
  auto control = start();
  auto recorder = std::make_shared<Recorder>();
  GenerationRequest r = request();
  r.stop_strings = {" p302"};
  const tle::IdType id = submit(*control, r, recorder);
  control->push(tle::Response(id, result({300, 301}, false)));
  control->push(tle::Response(id, result({302, 303}, false)));
  EXPECT_EQ(recorder->wait(), "finished:stop");
  EXPECT_EQ(recorder->text(), "p300 p301") << "the output ends before the stop string";
  EXPECT_EQ(recorder->steps().back().finish, FinishReason::StopString);
  ASSERT_TRUE(control->wait_for([&] { return !control->cancelled.empty(); }));
  {
    std::lock_guard lock(control->mutex);
    EXPECT_EQ(control->cancelled.front().first, id) << "the executor would go on generating";
  }
  control->push(tle::Response(id, result({304}, true, tle::FinishReason::kLENGTH)));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(recorder->endings(), 1u);
}

// "Within one check period" counted in checks, not milliseconds (the machine's load must not
// decide the result): with stats read at every check, each check of the poll thread looks for
// cancellations and then reads the stats once. The first check that starts after the cancel must
// call cancelRequest, so at most one stats read (of a check already past its look when the cancel
// came) lies between the cancel and cancelRequest.
TEST_F(TensorRtLlmEngineTest, CancellationReachesCancelRequestAtTheFirstCheckAfterIt) {
  options_.cancellation_check_period = 20ms;
  options_.stats_check_period = 0ms;
  auto control = start();
  for (int round = 0; round < 3; ++round) {
    auto recorder = std::make_shared<Recorder>();
    const tle::IdType id = submit(*control, request(), recorder);
    control->push(tle::Response(id, result({300}, false)));
    for (int i = 0; i < 500 && recorder->steps().empty(); ++i) std::this_thread::sleep_for(2ms);
    ASSERT_EQ(recorder->steps().size(), 1u);
    std::this_thread::sleep_for(std::chrono::milliseconds(7 * round));  // cancel at different points of the period
    int reads_before = 0;
    {
      std::lock_guard lock(control->mutex);
      reads_before = control->stats_reads;
    }
    recorder->cancel();
    ASSERT_TRUE(control->wait_for([&] {
      return std::any_of(control->cancelled.begin(), control->cancelled.end(), [&](const auto& c) { return c.first == id; });
    }));
    int reads_at_cancel_request = 0;
    {
      std::lock_guard lock(control->mutex);
      reads_at_cancel_request =
          std::find_if(control->cancelled.begin(), control->cancelled.end(), [&](const auto& c) { return c.first == id; })->second;
    }
    EXPECT_LE(reads_at_cancel_request, reads_before + 1)
        << "round " << round << ": " << reads_at_cancel_request - reads_before << " checks passed before cancelRequest";
    EXPECT_EQ(recorder->wait(), "cancelled");
    // The executor's own final response for the cancelled request is dropped.
    control->push(tle::Response(id, result({}, true, tle::FinishReason::kNOT_FINISHED)));
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(recorder->endings(), 1u);
    EXPECT_EQ(recorder->steps().size(), 1u);
  }
  EXPECT_EQ(engine_->stats().active, 0u);
}

TEST_F(TensorRtLlmEngineTest, CancellationIsAlsoSeenWhenAResponseArrives) {
  options_.cancellation_check_period = std::chrono::milliseconds(60'000);  // the poll thread never gets there
  auto control = start();
  auto recorder = std::make_shared<Recorder>();
  const tle::IdType id = submit(*control, request(), recorder);
  recorder->cancel();
  control->push(tle::Response(id, result({300}, false)));
  EXPECT_EQ(recorder->wait(), "cancelled");
  EXPECT_TRUE(recorder->steps().empty());
  std::lock_guard lock(control->mutex);
  ASSERT_EQ(control->cancelled.size(), 1u);
  EXPECT_EQ(control->cancelled[0].first, id);
}

TEST_F(TensorRtLlmEngineTest, ExecutorErrorsKeepTheirMessage) {
  auto control = start();
  auto recorder = std::make_shared<Recorder>();
  const tle::IdType id = submit(*control, request(), recorder);
  control->push(tle::Response(id, result({300}, false)));
  control->push(tle::Response(id, std::string("[TensorRT-LLM][ERROR] CUDA runtime error: out of memory (kvCacheManager.cpp:412)")));
  EXPECT_EQ(recorder->wait(), "error:TensorRT-LLM: [TensorRT-LLM][ERROR] CUDA runtime error: out of memory (kvCacheManager.cpp:412)");
  EXPECT_EQ(recorder->steps().size(), 1u);

  auto unfinished = std::make_shared<Recorder>();
  const tle::IdType other = submit(*control, request(), unfinished);
  control->push(tle::Response(other, result({}, true, tle::FinishReason::kNOT_FINISHED)));
  const std::string how = unfinished->wait();
  EXPECT_EQ(how.rfind("error:", 0), 0u) << how;
  EXPECT_NE(how.find("without completing"), std::string::npos) << how;
}

TEST_F(TensorRtLlmEngineTest, EnqueueFailuresAreEngineErrorsAndTheObserverIsNeverCalled) {
  tle::testing::Behaviour b = scripted();
  b.enqueue_error = "[TensorRT-LLM][ERROR] Maximum queue size of 16 has been reached";
  auto control = start(b);
  auto recorder = std::make_shared<Recorder>();
  try {
    engine_->submit(request(), recorder);
    FAIL() << "submit did not throw";
  } catch (const Error&) {
    FAIL() << "an executor failure is not the client's error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("Maximum queue size of 16 has been reached"), std::string::npos) << e.what();
  }
  std::this_thread::sleep_for(80ms);
  EXPECT_EQ(recorder->endings(), 0u);
  EXPECT_EQ(engine_->stats().active, 0u);
}

TEST_F(TensorRtLlmEngineTest, RequestsBeyondTheEngineAreRefusedBeforeTheExecutor) {
  auto control = start();
  auto expect_error = [&](GenerationRequest r, const std::string& needle) {
    try {
      engine_->submit(std::move(r), std::make_shared<Recorder>());
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(request(std::vector<int32_t>(65, 300), 1), "max_input_len of 64");
  expect_error(request(std::vector<int32_t>(60, 300), 69), "max_seq_len");
  expect_error(request({1, 32000}, 4), "outside the vocabulary");
  expect_error(request({}, 4), "the prompt is empty");
  GenerationRequest empty_stop = request();
  empty_stop.stop_strings = {""};
  expect_error(empty_stop, "stop strings must not be empty");
  GenerationRequest wide = request();
  wide.sampling.temperature = 1;
  wide.sampling.top_k = 1025;
  expect_error(wide, "top_k is 1025, more than the 1024 TensorRT-LLM's sampling supports");
  std::lock_guard lock(control->mutex);
  EXPECT_TRUE(control->enqueued.empty());
}

TEST_F(TensorRtLlmEngineTest, AProcessThatCannotEnqueueSaysSo) {
  tle::testing::Behaviour b = scripted();
  b.can_enqueue = false;
  auto control = start(b);
  try {
    engine_->submit(request(), std::make_shared<Recorder>());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not take requests in this process"), std::string::npos) << e.what();
  }
  std::lock_guard lock(control->mutex);
  EXPECT_TRUE(control->enqueued.empty());
}

TEST_F(TensorRtLlmEngineTest, RequestsBeyondMaxQueueSizeAreRefusedAsQueueFull) {
  options_.max_batch_size = 1;
  options_.max_queue_size = 2;
  auto control = start();
  for (int i = 0; i < 3; ++i) submit(*control, request(), std::make_shared<Recorder>());  // one running, two waiting
  auto refused = std::make_shared<Recorder>();
  EXPECT_THROW(engine_->submit(request(), refused), QueueFullError);
  EXPECT_EQ(refused->endings(), 0u) << "a refused request is never called back";
  {
    std::lock_guard lock(control->mutex);
    EXPECT_EQ(control->enqueued.size(), 3u);
  }
  // One ends: there is room again.
  tle::IdType first = 0;
  {
    std::lock_guard lock(control->mutex);
    first = control->enqueued.front().first;
  }
  auto recorder = std::make_shared<Recorder>();
  control->push(tle::Response(first, result({300}, true, tle::FinishReason::kLENGTH)));
  for (int i = 0; i < 500 && engine_->stats().active + engine_->stats().queued > 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_NO_THROW(engine_->submit(request(), recorder));
}

TEST_F(TensorRtLlmEngineTest, LoadErrorsNameTheEngineFolder) {
  tle::testing::Behaviour b = scripted();
  b.construct_error = "[TensorRT-LLM][ERROR] Assertion failed: Failed to deserialize cuda engine";
  tle::testing::install(b);
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(engine_dir_.string()), std::string::npos) << message;
    EXPECT_NE(message.find("Failed to deserialize cuda engine"), std::string::npos) << message;
  }

  tle::testing::install(scripted());
  std::filesystem::remove(engine_dir_ / "config.json");
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no config.json"), std::string::npos) << e.what();
  }
  write_engine_config(R"({"pretrained_config": {"architecture": "LlamaForCausalLM"}, "build_config": {"max_seq_len": 128}})");
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing pretrained_config.vocab_size"), std::string::npos) << e.what();
  }
  write_engine_config(R"({"pretrained_config": {"vocab_size": 32000}, "build_config": {"max_seq_len": 128, "max_batch_size": 8}})");
  options_.max_batch_size = 9;
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"max_concurrent_requests\" is 9, more than the engine's max_batch_size of 8"),
              std::string::npos) << e.what();
  }
  options_.max_batch_size.reset();
  write_engine_config(R"({"pretrained_config": {"vocab_size": 32000, "mapping": {"world_size": 2, "tp_size": 2, "pp_size": 1}},
                          "build_config": {"max_seq_len": 128}})");
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the engine was built for 2 GPUs (tp_size 2, pp_size 1), but this backend runs "
                                         "single-GPU engines"),
              std::string::npos) << e.what();
  }
  write_engine_config(R"({"pretrained_config": {"vocab_size": 1000}, "build_config": {"max_seq_len": 128}})");
  try {
    TensorRtLlmEngine engine(options_, *tokenizer_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_dir must hold the tokenizer"), std::string::npos) << e.what();
  }
}

TEST_F(TensorRtLlmEngineTest, IterationStatsBecomeStatsAndLogLines) {
  auto control = start();
  for (int i = 0; i < 5; ++i) submit(*control, request(), std::make_shared<Recorder>());
  tle::IterationStats s{};
  s.iter = 41;
  s.iterLatencyMS = 12.5;
  s.numActiveRequests = 2;
  s.numQueuedRequests = 3;
  s.gpuMemUsage = size_t{5} << 30;
  s.kvCacheStats = tle::KvCacheStats{1000, 900, 100, 64, 0, 0, 7};
  control->push_stats(s);
  // The engine publishes the numbers and then writes the log line from its polling thread: wait for both.
  for (int i = 0; i < 500 && !(engine_->stats().iterations && logged("iteration 42")); ++i)
    std::this_thread::sleep_for(10ms);
  const EngineStats stats = engine_->stats();
  ASSERT_TRUE(stats.iterations);
  EXPECT_EQ(*stats.iterations, 42u);
  EXPECT_EQ(stats.last_iteration_ms, 12.5);
  EXPECT_EQ(stats.queued, 3u);
  EXPECT_EQ(stats.active, 2u) << "five requests in the executor, three of them queued: counted once each";
  EXPECT_EQ(stats.kv_cache_max_blocks, 1000);
  EXPECT_EQ(stats.kv_cache_used_blocks, 100);
  EXPECT_EQ(stats.kv_cache_tokens_per_block, 64);
  EXPECT_EQ(stats.kv_cache_free_blocks, 900);
  EXPECT_EQ(stats.kv_cache_reused_blocks, 7u);
  EXPECT_EQ(stats.gpu_memory_bytes, uint64_t{5} << 30);
  EXPECT_TRUE(logged("iteration 42: 12.5 ms, 2 active, 3 queued")) << "stats reach the log (the 42nd iteration is executor iteration 41)";
  EXPECT_TRUE(logged("KV cache blocks 100/1000 used"));
  std::lock_guard lock(control->mutex);
  EXPECT_GE(control->stats_reads, 1);
}

TEST_F(TensorRtLlmEngineTest, DestroyingTheEngineCancelsWhatRuns) {
  auto control = start();
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  const tle::IdType id_a = submit(*control, request(), a);
  const tle::IdType id_b = submit(*control, request(), b);
  control->push(tle::Response(id_a, result({300}, false)));
  ASSERT_TRUE(control->wait_for([&] { return control->pending.empty(); }));
  std::this_thread::sleep_for(20ms);
  engine_.reset();
  EXPECT_EQ(a->wait(0ms), "cancelled");
  EXPECT_EQ(b->wait(0ms), "cancelled");
  std::lock_guard lock(control->mutex);
  EXPECT_TRUE(control->shut_down);
  std::vector<tle::IdType> cancelled;
  for (const auto& c : control->cancelled) cancelled.push_back(c.first);
  std::sort(cancelled.begin(), cancelled.end());
  EXPECT_EQ(cancelled, (std::vector<tle::IdType>{id_a, id_b}));
}

// The fake answering by itself: several tokens per response, concurrent requests.
TEST_F(TensorRtLlmEngineTest, ConcurrentRequestsEachEndOnce) {
  tle::testing::Behaviour b;
  b.tokens_per_response = 3;
  b.step = 2ms;
  auto control = start(b);
  std::vector<std::shared_ptr<Recorder>> recorders;
  for (int i = 0; i < 8; ++i) {
    recorders.push_back(std::make_shared<Recorder>());
    GenerationRequest r = request({1, 300 + i}, 10);
    r.return_log_probs = i % 2 == 0;
    engine_->submit(std::move(r), recorders.back());
  }
  for (int i = 0; i < 8; ++i) {
    auto& recorder = *recorders[static_cast<size_t>(i)];
    EXPECT_EQ(recorder.wait(), "finished:length") << i;
    EXPECT_EQ(recorder.endings(), 1u);
    const auto steps = recorder.steps();
    ASSERT_EQ(steps.size(), 4u) << "3 + 3 + 3 + 1 tokens";
    EXPECT_EQ(recorder.ids().size(), 10u);
    EXPECT_EQ(recorder.ids().front(), 300 + (300 + i) % 100);
    EXPECT_EQ(recorder.text(), tokenizer_->decode(recorder.ids()));
    size_t log_probs = 0;
    for (const auto& s : steps) log_probs += s.log_probs.size();
    EXPECT_EQ(log_probs, i % 2 == 0 ? 10u : 0u);
  }
  EXPECT_EQ(engine_->stats().active, 0u);
}

}  // namespace
}  // namespace llm
