// In-flight batching: the iteration scheduler over the paged KV cache (run on the test's thread,
// with requests arriving at chosen iterations), and the CPU engine that drives it on its own thread.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "checkpoint/hf_convert.h"
#include "common/error.h"
#include "engine/cpu_engine.h"
#include "engine/scheduler.h"
#include "scheduler_util.h"
#include "test_util.h"
#include "tiny_hf_model.h"

namespace llm {
namespace {

using test::Arrival;
using test::RecordingObserver;
using test::run_alone;
using test::run_arrivals;
using test::TempDir;

struct Fixture {
  TempDir dir;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  explicit Fixture(DType dtype = DType::F32) {
    const test::TinyHfModel hf(11);
    hf.write(dir.path() / "hf");
    convert_hf_checkpoint({dir.path() / "hf", dir.path() / "trt", dtype, {}});
    model = LlamaModel::load(dir.path() / "trt", {2});
    tokenizer = std::make_unique<Tokenizer>(test::write_fake_llama_tokenizer(dir.path()));
  }
  // A greedy request with a prompt of `prompt_length` tokens that starts with `first_token`.
  static GenerationRequest request(int32_t first_token, int32_t max_tokens, size_t prompt_length = 3) {
    GenerationRequest r;
    r.prompt_ids = {1};
    for (size_t i = 1; i < prompt_length; ++i) r.prompt_ids.push_back(static_cast<int32_t>((first_token + 7 * i) % 60 + 3));
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }
};

SchedulerOptions batching(size_t max_batch, size_t max_num_tokens, size_t tokens_per_block, size_t blocks) {
  SchedulerOptions options;
  options.max_batch_size = max_batch;
  options.max_num_tokens = max_num_tokens;
  options.tokens_per_block = tokens_per_block;
  options.kv_cache_blocks = blocks;
  return options;
}

// Sixteen requests of mixed prompt lengths (1 to 20 tokens) and lengths, arriving two iterations apart.
std::vector<Arrival> staggered_sixteen() {
  std::vector<Arrival> arrivals;
  for (int i = 0; i < 16; ++i) {
    arrivals.push_back({static_cast<size_t>(2 * i), Fixture::request(3 + i, 8 + (i * 5) % 17, 1 + (i * 7) % 20)});
  }
  return arrivals;
}

void expect_same_as_alone(Fixture& f, const std::vector<Arrival>& arrivals,
                          const std::vector<std::shared_ptr<RecordingObserver>>& batched) {
  ASSERT_EQ(batched.size(), arrivals.size());
  for (size_t i = 0; i < arrivals.size(); ++i) {
    const auto alone = run_alone(*f.model, *f.tokenizer, arrivals[i].request);
    EXPECT_EQ(batched[i]->wait(), alone->wait()) << "request " << i;
    EXPECT_EQ(batched[i]->ids(), alone->ids()) << "request " << i;
    EXPECT_EQ(batched[i]->text(), alone->text()) << "request " << i;
  }
}

struct BatchingCase {
  const char* name;
  CapacityPolicy policy;
  bool reuse;
  bool chunked;
};

class BatchedOutputs : public ::testing::TestWithParam<BatchingCase> {};

TEST_P(BatchedOutputs, GreedyTokensAreTheSameAsEachRequestAlone) {
  const BatchingCase c = GetParam();
  Fixture f;
  SchedulerOptions options = batching(16, c.chunked ? 24 : 40, 4, 200);
  options.policy = c.policy;
  options.enable_kv_cache_reuse = c.reuse;
  options.enable_chunked_context = c.chunked;
  Scheduler scheduler(*f.model, *f.tokenizer, options);
  size_t most_active = 0;
  const auto arrivals = staggered_sixteen();
  const auto batched = run_arrivals(scheduler, arrivals, [&](const Scheduler& s) {
    most_active = std::max(most_active, s.stats().active);
  });
  EXPECT_GE(most_active, 8u) << "the requests must actually have run together";
  expect_same_as_alone(f, arrivals, batched);
  const EngineStats stats = scheduler.stats();
  EXPECT_EQ(stats.active, 0u);
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(*stats.kv_cache_used_blocks, 0) << "every block is back once the sequences ended";
  EXPECT_EQ(*stats.kv_cache_free_blocks, 200);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, BatchedOutputs,
    ::testing::Values(BatchingCase{"no_evict", CapacityPolicy::GuaranteedNoEvict, false, true},
                      BatchingCase{"no_evict_reuse", CapacityPolicy::GuaranteedNoEvict, true, true},
                      BatchingCase{"max_utilization", CapacityPolicy::MaxUtilization, false, true},
                      BatchingCase{"max_utilization_reuse", CapacityPolicy::MaxUtilization, true, true},
                      BatchingCase{"unchunked", CapacityPolicy::GuaranteedNoEvict, false, false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Scheduler, PreemptionUnderMaxUtilizationPausesButKeepsTheTokens) {
  Fixture f;
  // 10 blocks of 4 positions; each request needs up to 7 blocks (6 + 20 positions): the pool runs
  // dry as they decode, and the latest started is preempted and recomputed later.
  for (bool reuse : {false, true}) {
    SCOPED_TRACE(reuse ? "with prefix reuse" : "without prefix reuse");
    SchedulerOptions options = batching(6, 12, 4, 10);
    options.policy = CapacityPolicy::MaxUtilization;
    options.enable_kv_cache_reuse = reuse;
    Scheduler scheduler(*f.model, *f.tokenizer, options);
    std::vector<Arrival> arrivals;
    for (int i = 0; i < 6; ++i) arrivals.push_back({static_cast<size_t>(i), Fixture::request(3 + i, 20, 6)});
    size_t most_preempted = 0;
    const auto batched = run_arrivals(scheduler, arrivals, [&](const Scheduler& s) {
      most_preempted = std::max(most_preempted, *s.stats().preempted);
      EXPECT_LE(*s.stats().kv_cache_used_blocks, 10);
    });
    EXPECT_GT(*scheduler.stats().preemptions, 0u);
    EXPECT_GT(most_preempted, 0u);
    expect_same_as_alone(f, arrivals, batched);
    for (const auto& observer : batched) EXPECT_EQ(observer->ids().size(), 20u);
  }
}

TEST(Scheduler, GuaranteedNoEvictWaitsForBlocksInsteadOfPreempting) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, batching(6, 12, 4, 10));
  std::vector<Arrival> arrivals;
  for (int i = 0; i < 6; ++i) arrivals.push_back({0, Fixture::request(3 + i, 20, 6)});
  size_t most_active = 0, most_queued = 0;
  const auto batched = run_arrivals(scheduler, arrivals, [&](const Scheduler& s) {
    most_active = std::max(most_active, s.stats().active);
    most_queued = std::max(most_queued, s.stats().queued);
  });
  EXPECT_EQ(*scheduler.stats().preemptions, 0u);
  EXPECT_EQ(most_active, 1u) << "7 blocks reserved per request: only one fits the 10 at a time";
  EXPECT_GE(most_queued, 4u);
  expect_same_as_alone(f, arrivals, batched);
}

TEST(Scheduler, PrefixReuseSharesTheBlocksOfACommonPromptAndChangesNoToken) {
  Fixture f;
  // A 13-token "system prompt" shared by every request, then a question of its own.
  const GenerationRequest system = Fixture::request(5, 1, 13);
  std::vector<Arrival> arrivals;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r = system;
    r.prompt_ids.push_back(10 + i);
    r.prompt_ids.push_back(20 + i);
    r.max_tokens = 10;
    arrivals.push_back({static_cast<size_t>(3 * i), r});
  }
  std::vector<std::vector<int32_t>> outputs[2];
  for (bool reuse : {false, true}) {
    SchedulerOptions options = batching(8, 32, 4, 64);
    options.enable_kv_cache_reuse = reuse;
    Scheduler scheduler(*f.model, *f.tokenizer, options);
    const auto batched = run_arrivals(scheduler, arrivals);
    for (const auto& observer : batched) outputs[reuse].push_back(observer->ids());
    if (reuse) {
      // The 3 full blocks of the shared 13 tokens are computed once and reused by the 5 later requests.
      EXPECT_GE(*scheduler.stats().kv_cache_reused_blocks, 15u);
      EXPECT_EQ(*scheduler.stats().kv_cache_used_blocks, 0);
      EXPECT_EQ(*scheduler.stats().kv_cache_free_blocks, 64) << "cached blocks count as free: they can be evicted";
    } else {
      EXPECT_EQ(*scheduler.stats().kv_cache_reused_blocks, 0u);
    }
  }
  EXPECT_EQ(outputs[0], outputs[1]);
}

TEST(Scheduler, CancellingASequenceMidBatchReturnsItsBlocksAtOnce) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, batching(4, 16, 4, 40));
  auto survivor = std::make_shared<RecordingObserver>();
  auto cancelled = std::make_shared<RecordingObserver>(/*cancel_after_steps=*/5);
  const GenerationRequest survivor_request = Fixture::request(5, 40, 9);
  int64_t used_at_cancel = -1;
  size_t survivor_tokens_at_cancel = 0;
  cancelled->on_cancelled_hook = [&] {
    used_at_cancel = *scheduler.stats().kv_cache_used_blocks;
    survivor_tokens_at_cancel = survivor->ids().size();
  };
  scheduler.submit(survivor_request, survivor);
  scheduler.submit(Fixture::request(6, 40, 9), cancelled);
  while (!cancelled->ended()) ASSERT_TRUE(scheduler.run_iteration());
  EXPECT_EQ(cancelled->wait(), "cancelled");
  EXPECT_EQ(cancelled->steps(), 5) << "no step runs after the cancellation is seen";
  // Only the survivor's blocks are still held when the cancelled one hears of it: its computed
  // positions are the prompt and every token but the last sampled one.
  const size_t survivor_positions = survivor_request.prompt_ids.size() + survivor_tokens_at_cancel - 1;
  EXPECT_EQ(used_at_cancel, static_cast<int64_t>((survivor_positions + 3) / 4));
  while (scheduler.run_iteration()) {
  }
  EXPECT_EQ(survivor->wait(), "finished:length");
  EXPECT_EQ(survivor->ids(), run_alone(*f.model, *f.tokenizer, survivor_request)->ids());
}

TEST(Scheduler, SampledTokensWithASeedDoNotDependOnTheBatch) {
  Fixture f;
  GenerationRequest sampled = Fixture::request(9, 24, 5);
  sampled.sampling.temperature = 0.9f;
  sampled.sampling.top_k = 20;
  sampled.sampling.top_p = 0.95f;
  sampled.sampling.seed = 1234;
  sampled.return_log_probs = true;
  const auto alone = run_alone(*f.model, *f.tokenizer, sampled);
  std::vector<Arrival> arrivals = staggered_sixteen();
  arrivals[5].request = sampled;
  Scheduler scheduler(*f.model, *f.tokenizer, batching(16, 24, 4, 200));
  const auto batched = run_arrivals(scheduler, arrivals);
  EXPECT_EQ(batched[5]->ids(), alone->ids());
  EXPECT_EQ(batched[5]->log_probs(), alone->log_probs());
}

TEST(Scheduler, ChunkedPrefillLeavesARowForEveryDecodingSequenceInEachIteration) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, batching(4, 8, 4, 64));
  auto a = std::make_shared<RecordingObserver>();
  auto b = std::make_shared<RecordingObserver>();
  auto long_prompt = std::make_shared<RecordingObserver>();
  scheduler.submit(Fixture::request(3, 40, 4), a);
  scheduler.submit(Fixture::request(4, 40, 4), b);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler.run_iteration());
  // 40 prompt tokens with 8 rows per iteration: 6 rows of each iteration go to the prompt, in 7
  // chunks; the two decoding sequences still get a token in every one of those iterations.
  scheduler.submit(Fixture::request(5, 4, 40), long_prompt);
  int iterations_to_first_token = 0;
  while (long_prompt->steps() == 0) {
    const int a_before = a->steps(), b_before = b->steps();
    ASSERT_TRUE(scheduler.run_iteration());
    ++iterations_to_first_token;
    EXPECT_EQ(a->steps(), a_before + 1);
    EXPECT_EQ(b->steps(), b_before + 1);
  }
  EXPECT_EQ(iterations_to_first_token, 7);
  while (scheduler.run_iteration()) {
  }
  EXPECT_EQ(long_prompt->ids(), run_alone(*f.model, *f.tokenizer, Fixture::request(5, 4, 40))->ids());
}

TEST(Scheduler, RequestsThatCanNeverRunAreRefusedNamingTheLimit) {
  Fixture f;
  const auto error_of = [&](Scheduler& scheduler, const GenerationRequest& request) -> std::string {
    try {
      scheduler.submit(request, std::make_shared<RecordingObserver>());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  Scheduler small_pool(*f.model, *f.tokenizer, batching(2, 8, 4, 4));  // 16 positions
  EXPECT_NE(error_of(small_pool, Fixture::request(3, 10, 10)).find("max_tokens_in_paged_kv_cache"), std::string::npos);
  EXPECT_EQ(error_of(small_pool, Fixture::request(3, 6, 10)), "") << "16 positions fit exactly";

  SchedulerOptions unchunked = batching(2, 8, 4, 40);
  unchunked.enable_chunked_context = false;
  Scheduler whole_prompts(*f.model, *f.tokenizer, unchunked);
  EXPECT_NE(error_of(whole_prompts, Fixture::request(3, 4, 9)).find("max_num_tokens (8"), std::string::npos);
  EXPECT_EQ(error_of(whole_prompts, Fixture::request(3, 4, 8)), "");

  EXPECT_NE(error_of(small_pool, Fixture::request(3, 70, 3)).find("context of 64"), std::string::npos);
  GenerationRequest bad_sampling = Fixture::request(3, 4);
  bad_sampling.sampling.top_p = 2;
  EXPECT_NE(error_of(small_pool, bad_sampling), "");

  try {
    Scheduler(*f.model, *f.tokenizer, batching(8, 4, 4, 40));
    ADD_FAILURE() << "max_num_tokens below max_concurrent_requests was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_num_tokens (4) must be at least max_concurrent_requests (8)"), std::string::npos);
  }
}

TEST(Scheduler, AFullQueueRefusesNewRequestsUntilOneStarts) {
  Fixture f;
  SchedulerOptions options = batching(1, 8, 4, 40);
  options.max_queue_size = 2;
  Scheduler scheduler(*f.model, *f.tokenizer, options);
  auto first = std::make_shared<RecordingObserver>();
  scheduler.submit(Fixture::request(3, 5), first);
  scheduler.submit(Fixture::request(4, 5), std::make_shared<RecordingObserver>());
  EXPECT_THROW(scheduler.submit(Fixture::request(5, 5), std::make_shared<RecordingObserver>()), QueueFullError);
  EXPECT_EQ(scheduler.stats().queued, 2u);
  ASSERT_TRUE(scheduler.run_iteration());  // the first starts (one slot): one place in the queue frees
  EXPECT_EQ(scheduler.stats().queued, 1u);
  EXPECT_EQ(scheduler.stats().active, 1u);
  EXPECT_NO_THROW(scheduler.submit(Fixture::request(5, 5), std::make_shared<RecordingObserver>()));
  EXPECT_THROW(scheduler.submit(Fixture::request(6, 5), std::make_shared<RecordingObserver>()), QueueFullError);
}

TEST(Scheduler, StatisticsDescribeTheBatchAndTheKvCache) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, batching(2, 16, 4, 30));
  const EngineStats idle = scheduler.stats();
  EXPECT_EQ(*idle.kv_cache_max_blocks, 30);
  EXPECT_EQ(*idle.kv_cache_free_blocks, 30);
  EXPECT_EQ(*idle.kv_cache_used_blocks, 0);
  EXPECT_EQ(*idle.kv_cache_tokens_per_block, 4);
  for (int i = 0; i < 3; ++i) scheduler.submit(Fixture::request(3 + i, 10, 5), std::make_shared<RecordingObserver>());
  EXPECT_EQ(scheduler.stats().queued, 3u);
  ASSERT_TRUE(scheduler.run_iteration());
  const EngineStats running = scheduler.stats();
  EXPECT_EQ(running.active, 2u);
  EXPECT_EQ(running.queued, 1u);
  EXPECT_EQ(*running.kv_cache_used_blocks, 4) << "5 prompt positions each: 2 blocks of 4 per sequence";
  EXPECT_EQ(*running.kv_cache_free_blocks, 26);
  EXPECT_EQ(*running.iterations, 1u);
  EXPECT_GT(*running.last_iteration_ms, 0.0);
  EXPECT_NE(describe_stats(running).find("2 active, 1 queued"), std::string::npos) << describe_stats(running);
}

// The CPU engine: the same scheduler on an engine thread, requests from other threads.
struct EngineFixture : Fixture {
  std::unique_ptr<CpuEngine> engine(size_t max_concurrent, size_t cache_tokens = 1024) {
    CpuEngineOptions options;
    options.checkpoint_dir = dir.path() / "trt";
    options.threads = 2;
    options.scheduler.max_batch_size = max_concurrent;
    options.scheduler.max_num_tokens = 32;
    options.scheduler.tokens_per_block = 8;
    options.max_tokens_in_paged_kv_cache = cache_tokens;
    return std::make_unique<CpuEngine>(options, *tokenizer);
  }
};

// The engine thread frees a sequence right after its last callback: wait (bounded) for that.
bool becomes_idle(const Engine& engine) {
  for (int i = 0; i < 400; ++i) {
    const EngineStats s = engine.stats();
    if (s.active == 0 && s.queued == 0 && *s.kv_cache_used_blocks == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(CpuEngine, ConcurrentRequestsFromManyThreadsGetTheirOwnTokens) {
  EngineFixture f;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(run_alone(*f.model, *f.tokenizer, Fixture::request(3 + i, 10 + i, 2 + i))->ids());
  auto engine = f.engine(3);  // 8 requests, 3 in flight: some wait
  std::vector<std::shared_ptr<RecordingObserver>> observers(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    observers[size_t(i)] = std::make_shared<RecordingObserver>();
    clients.emplace_back([&, i] { engine->submit(Fixture::request(3 + i, 10 + i, 2 + i), observers[size_t(i)]); });
  }
  for (auto& client : clients) client.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(observers[size_t(i)]->wait(), "finished:length");
    EXPECT_EQ(observers[size_t(i)]->ids(), expected[size_t(i)]) << "request " << i;
  }
  EXPECT_TRUE(becomes_idle(*engine));
}

TEST(CpuEngine, CancellationStopsASequenceWithinOneIteration) {
  EngineFixture f;
  auto engine = f.engine(4);
  auto cancelled = std::make_shared<RecordingObserver>(/*cancel_after_steps=*/3);
  auto survivor = std::make_shared<RecordingObserver>();
  engine->submit(Fixture::request(5, 40), cancelled);
  engine->submit(Fixture::request(6, 12), survivor);
  EXPECT_EQ(cancelled->wait(), "cancelled");
  EXPECT_EQ(cancelled->steps(), 3) << "no step runs after cancellation is seen";
  EXPECT_EQ(survivor->wait(), "finished:length");
  EXPECT_EQ(survivor->ids().size(), 12u);
  EXPECT_TRUE(becomes_idle(*engine));
}

TEST(CpuEngine, InvalidRequestsFailOnSubmitAndOthersKeepRunning) {
  EngineFixture f;
  auto engine = f.engine(2, 32);
  EXPECT_THROW(engine->submit(Fixture::request(3, 63), std::make_shared<RecordingObserver>()), Error);
  EXPECT_THROW(engine->submit(Fixture::request(3, 30, 10), std::make_shared<RecordingObserver>()), Error)
      << "beyond the 32-token KV cache";
  auto ok = std::make_shared<RecordingObserver>();
  engine->submit(Fixture::request(3, 4), ok);
  EXPECT_EQ(ok->wait(), "finished:length");
  EXPECT_NE(engine->describe().find("4 blocks x 8 tokens = 32 tokens"), std::string::npos) << engine->describe();
}

TEST(CpuEngine, ShutdownCancelsWhatIsLeft) {
  EngineFixture f;
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  {
    auto engine = f.engine(1);
    for (int i = 0; i < 3; ++i) {
      observers.push_back(std::make_shared<RecordingObserver>());
      engine->submit(Fixture::request(3, 60), observers.back());
    }
  }
  int cancelled = 0;
  for (auto& o : observers) {
    const std::string how = o->wait();
    cancelled += how == "cancelled";
    EXPECT_TRUE(how == "cancelled" || how == "finished:length") << how;
  }
  EXPECT_GE(cancelled, 2) << "queued requests never started and must be cancelled";
}

TEST(CpuEngine, DefaultKvCacheHoldsEveryConcurrentRequestAtFullContextWithinHalfTheMemory) {
  ModelConfig config;
  config.num_hidden_layers = 2;
  config.num_key_value_heads = 2;
  config.head_size = 8;
  config.dtype = DType::F16;
  config.max_position_embeddings = 64;  // 128 bytes per token
  CpuEngineOptions options;
  options.scheduler.max_batch_size = 8;
  options.scheduler.tokens_per_block = 16;
  EXPECT_EQ(kv_cache_blocks(options, config, size_t{1} << 30), 8u * 64 / 16);
  options.context_tokens = 32;  // max_context_tokens
  EXPECT_EQ(kv_cache_blocks(options, config, size_t{1} << 30), 8u * 32 / 16);
  EXPECT_EQ(kv_cache_blocks(options, config, 2 * 128 * 48), 3u) << "half of a small machine's memory: 48 tokens";
  options.max_tokens_in_paged_kv_cache = 100;
  EXPECT_EQ(kv_cache_blocks(options, config, size_t{1} << 30), 7u);
  options.max_tokens_in_paged_kv_cache.reset();
  options.kv_cache_memory_bytes = 128 * 40;
  EXPECT_EQ(kv_cache_blocks(options, config, size_t{1} << 30), 2u) << "whole blocks within the bytes given";
  options.kv_cache_memory_bytes = 128 * 15;
  EXPECT_THROW(kv_cache_blocks(options, config, size_t{1} << 30), Error) << "less than one block";
}

}  // namespace
}  // namespace llm
