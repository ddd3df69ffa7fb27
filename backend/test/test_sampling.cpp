#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "engine/sampling.h"

namespace llm {
namespace {

std::vector<float> logits_of(std::vector<double> probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(p > 0 ? static_cast<float>(std::log(p)) : -INFINITY);
  return logits;
}

std::map<int32_t, int> draw(const SamplingParams& params, const std::vector<float>& logits, int n) {
  Sampler sampler(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) {
    auto copy = logits;
    ++counts[sampler.sample(copy, {}, 0)];
  }
  return counts;
}

TEST(Sampling, GreedyTakesTheFirstMaximum) {
  SamplingParams params;
  params.temperature = 0;
  Sampler sampler(params);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(sampler.sample(logits, {}, 0), 1);
  params.temperature = 0.7f;
  params.top_k = 1;
  Sampler top1(params);
  logits = {0.1f, 3.0f, -1.0f, 3.5f};
  EXPECT_EQ(top1.sample(logits, {}, 0), 3);
}

TEST(Sampling, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const auto logits = logits_of({0.2, 0.2, 0.2, 0.2, 0.2});
  auto sequence = [&](uint64_t seed) {
    SamplingParams params;
    params.seed = seed;
    Sampler sampler(params);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      auto copy = logits;
      out.push_back(sampler.sample(copy, {}, 0));
    }
    return out;
  };
  EXPECT_EQ(sequence(7), sequence(7));
  EXPECT_NE(sequence(7), sequence(8));
}

TEST(Sampling, FrequenciesFollowTheDistribution) {
  const auto counts = draw({}, logits_of({0.5, 0.3, 0.2}), 20000);
  EXPECT_NEAR(counts.at(0) / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts.at(1) / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts.at(2) / 20000.0, 0.2, 0.02);
}

TEST(Sampling, TopKKeepsOnlyTheKMostLikely) {
  SamplingParams params;
  params.top_k = 2;
  const auto counts = draw(params, logits_of({0.1, 0.4, 0.05, 0.3, 0.15}), 5000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts.at(1) / 5000.0, 0.4 / 0.7, 0.03);
  EXPECT_NEAR(counts.at(3) / 5000.0, 0.3 / 0.7, 0.03);
}

TEST(Sampling, TopPKeepsTheSmallestNucleus) {
  SamplingParams params;
  params.top_p = 0.75f;
  const auto counts = draw(params, logits_of({0.05, 0.5, 0.3, 0.15}), 5000);
  // 0.5 + 0.3 reaches 0.75: tokens 1 and 2 only.
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_TRUE(counts.count(1) && counts.count(2));
  params.top_p = 0.4f;  // the top token alone already holds 0.5
  EXPECT_EQ(draw(params, logits_of({0.05, 0.5, 0.3, 0.15}), 500).size(), 1u);
}

// A Llama-sized vocabulary whose nucleus spans several of the blocks the sampler sorts in turn:
// 1,000 equally likely tokens scattered over 32,000 ids hold 0.9 of the mass, the rest share 0.1.
// With top_p 0.8 the nucleus is the 889 of them with the smallest ids (ties go to the smaller id).
TEST(Sampling, TopPNucleusOverALargeVocabulary) {
  constexpr size_t kVocab = 32000, kHeavy = 1000, kNucleus = 889;  // 888 * 0.0009 < 0.8 <= 889 * 0.0009
  std::vector<double> probs(kVocab, 0.1 / (kVocab - kHeavy));
  std::vector<int32_t> heavy;
  for (size_t i = 0; i < kHeavy; ++i) heavy.push_back(static_cast<int32_t>(i * 7919 % kVocab));
  for (int32_t id : heavy) probs[static_cast<size_t>(id)] = 0.9 / kHeavy;
  std::sort(heavy.begin(), heavy.end());
  const std::vector<int32_t> nucleus(heavy.begin(), heavy.begin() + kNucleus);

  SamplingParams params;
  params.top_p = 0.8f;
  const auto counts = draw(params, logits_of(probs), 4000);
  size_t beyond_the_first_blocks = 0;
  for (const auto& [id, count] : counts) {
    const auto rank = std::lower_bound(nucleus.begin(), nucleus.end(), id) - nucleus.begin();
    ASSERT_TRUE(static_cast<size_t>(rank) < kNucleus && nucleus[static_cast<size_t>(rank)] == id)
        << "token " << id << " is outside the nucleus";
    beyond_the_first_blocks += rank >= 320 ? static_cast<size_t>(count) : 0;  // blocks of 64 and 256
  }
  EXPECT_GT(counts.size(), kNucleus * 9 / 10);
  // 569 of the 889 equally likely tokens rank past 320.
  EXPECT_NEAR(static_cast<double>(beyond_the_first_blocks) / 4000.0, 569.0 / 889.0, 0.04);
}

TEST(Sampling, LowTemperatureSharpens) {
  SamplingParams params;
  params.temperature = 0.05f;  // p(1) = 1 / (1 + 2 * (3/4)^20) = 0.994
  const auto counts = draw(params, logits_of({0.3, 0.4, 0.3}), 2000);
  EXPECT_GT(counts.at(1), 1950);
}

TEST(Sampling, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams params;
  params.temperature = 0;
  params.repetition_penalty = 1.5f;
  Sampler sampler(params);
  std::vector<float> logits = {2.0f, 1.8f, -1.0f};
  const std::vector<int32_t> history = {0, 0, 2};
  EXPECT_EQ(sampler.sample(logits, history, 0), 1);
  EXPECT_FLOAT_EQ(logits[0], 2.0f / 1.5f);
  EXPECT_FLOAT_EQ(logits[2], -1.5f);  // negative logits are multiplied
}

TEST(Sampling, PresenceAndFrequencyPenaltiesCountOnlyGeneratedTokens) {
  SamplingParams params;
  params.temperature = 0;
  params.presence_penalty = 0.5f;
  params.frequency_penalty = 0.25f;
  Sampler sampler(params);
  std::vector<float> logits = {3.0f, 2.0f, 1.0f, 0.0f};
  // Prompt {0, 0}; generated {0, 1, 0}: token 0 twice (-0.5 - 0.5), token 1 once (-0.5 - 0.25).
  const std::vector<int32_t> history = {0, 0, 0, 1, 0};
  sampler.sample(logits, history, 2);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], 1.25f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f);
}

TEST(Sampling, InvalidParametersNameTheField) {
  auto message = [](SamplingParams p) {
    try {
      p.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SamplingParams p;
  p.temperature = -1;
  EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {};
  p.top_p = 0;
  EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {};
  p.top_p = 1.5f;
  EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {};
  p.top_k = -2;
  EXPECT_NE(message(p).find("top_k"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_NE(message(p).find("repetition_penalty"), std::string::npos);
  p.temperature = NAN;
  EXPECT_FALSE(message(p).empty());
}

}  // namespace
}  // namespace llm
