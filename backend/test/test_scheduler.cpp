#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "checkpoint/hf_convert.h"
#include "common/error.h"
#include "engine/scheduler.h"
#include "test_util.h"
#include "tiny_hf_model.h"

namespace llm {
namespace {

using test::TempDir;

// Collects one sequence's output; can ask for cancellation after a number of steps.
class RecordingObserver : public GenerationObserver {
 public:
  explicit RecordingObserver(int cancel_after_steps = -1) : cancel_after_(cancel_after_steps) {}
  bool cancelled() override { return cancel_after_ >= 0 && steps_ >= cancel_after_; }
  void on_step(const StepOutput& step) override {
    ++steps_;
    ids_.insert(ids_.end(), step.new_ids.begin(), step.new_ids.end());
    text_ += step.text;
    if (step.finish != FinishReason::None) end(std::string("finished:") + finish_reason_name(step.finish));
  }
  void on_error(const std::string& message) override { end("error:" + message); }
  void on_cancelled() override { end("cancelled"); }

  // Waits for the sequence's last call and returns how it ended.
  std::string wait() { return ended_future_.get(); }
  const std::vector<int32_t>& ids() const { return ids_; }
  const std::string& text() const { return text_; }
  int steps() const { return steps_; }

 private:
  void end(const std::string& how) {
    ASSERT_FALSE(ended_) << "a sequence ended twice";
    ended_ = true;
    ended_.notify_all();
    ended_promise_.set_value(how);
  }
  int cancel_after_;
  std::atomic<int> steps_{0};
  std::vector<int32_t> ids_;
  std::string text_;
  std::atomic<bool> ended_{false};
  std::promise<std::string> ended_promise_;
  std::future<std::string> ended_future_ = ended_promise_.get_future();
};

// The engine thread frees a sequence right after its last callback: wait (bounded) for that.
bool becomes_idle(const Scheduler& scheduler) {
  for (int i = 0; i < 400; ++i) {
    if (scheduler.active_count() == 0 && scheduler.queued_count() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  Fixture() {
    const test::TinyHfModel hf(11);
    hf.write(dir.path() / "hf");
    convert_hf_checkpoint({dir.path() / "hf", dir.path() / "trt", DType::F32, {}});
    model = LlamaModel::load(dir.path() / "trt", {2});
    tokenizer = std::make_unique<Tokenizer>(test::write_fake_llama_tokenizer(dir.path()));
  }
  GenerationRequest request(int32_t first_token, int32_t max_tokens) const {
    GenerationRequest r;
    r.prompt_ids = {1, first_token, 17};
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }
  std::vector<int32_t> run_alone(const GenerationRequest& r) {
    Generation g(*model, *tokenizer, r);
    while (!g.finished()) g.step();
    return g.output_ids();
  }
};

TEST(Scheduler, ConcurrentSequencesAllCompleteWithTheirOwnTokens) {
  Fixture f;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(f.run_alone(f.request(3 + i, 10 + i)));
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  {
    Scheduler scheduler(*f.model, *f.tokenizer, /*max_active=*/3);  // 8 requests, 3 slots: some wait
    for (int i = 0; i < 8; ++i) {
      observers.push_back(std::make_shared<RecordingObserver>());
      scheduler.submit(f.request(3 + i, 10 + i), observers.back());
    }
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(observers[size_t(i)]->wait(), "finished:length");
      EXPECT_EQ(observers[size_t(i)]->ids(), expected[size_t(i)]) << "request " << i;
    }
    EXPECT_TRUE(becomes_idle(scheduler));
  }
}

TEST(Scheduler, CancellationStopsWithinOneStepAndFreesTheSequence) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, 4);
  auto cancelled = std::make_shared<RecordingObserver>(/*cancel_after_steps=*/3);
  auto survivor = std::make_shared<RecordingObserver>();
  scheduler.submit(f.request(5, 40), cancelled);
  scheduler.submit(f.request(6, 12), survivor);
  EXPECT_EQ(cancelled->wait(), "cancelled");
  EXPECT_EQ(cancelled->steps(), 3) << "no step runs after cancellation is seen";
  EXPECT_EQ(survivor->wait(), "finished:length");
  EXPECT_EQ(survivor->ids().size(), 12u);
  EXPECT_TRUE(becomes_idle(scheduler));
}

TEST(Scheduler, InvalidRequestsFailOnSubmitAndOthersKeepRunning) {
  Fixture f;
  Scheduler scheduler(*f.model, *f.tokenizer, 2);
  GenerationRequest too_long = f.request(3, 63);
  EXPECT_THROW(scheduler.submit(too_long, std::make_shared<RecordingObserver>()), Error);
  GenerationRequest bad_sampling = f.request(3, 4);
  bad_sampling.sampling.top_p = 2;
  EXPECT_THROW(scheduler.submit(bad_sampling, std::make_shared<RecordingObserver>()), Error);
  auto ok = std::make_shared<RecordingObserver>();
  scheduler.submit(f.request(3, 4), ok);
  EXPECT_EQ(ok->wait(), "finished:length");
}

TEST(Scheduler, ShutdownCancelsWhatIsLeft) {
  Fixture f;
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  {
    Scheduler scheduler(*f.model, *f.tokenizer, 1);
    for (int i = 0; i < 3; ++i) {
      observers.push_back(std::make_shared<RecordingObserver>());
      scheduler.submit(f.request(3, 60), observers.back());
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

}  // namespace
}  // namespace llm
