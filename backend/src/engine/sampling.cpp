#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace llm {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    throw_error("temperature must be a finite number >= 0 (0 = greedy), got ", temperature);
  if (top_k < 0) throw_error("top_k must be >= 0 (0 = no limit), got ", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw_error("top_p must be in (0, 1], got ", top_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    throw_error("repetition_penalty must be a finite number > 0 (1 = off), got ", repetition_penalty);
  if (!std::isfinite(presence_penalty)) throw_error("presence_penalty must be a finite number, got ", presence_penalty);
  if (!std::isfinite(frequency_penalty)) throw_error("frequency_penalty must be a finite number, got ", frequency_penalty);
}

namespace {
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& word : s_) word = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { params_.validate(); }

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history, size_t prompt_length) {
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    // OpenAI's definition: logit -= frequency * count + presence * (count > 0), generated tokens only.
    std::vector<int32_t> generated(history.begin() + static_cast<std::ptrdiff_t>(std::min(prompt_length, history.size())),
                                   history.end());
    std::sort(generated.begin(), generated.end());
    for (size_t i = 0; i < generated.size();) {
      size_t j = i;
      while (j < generated.size() && generated[j] == generated[i]) ++j;
      const int32_t id = generated[i];
      if (id >= 0 && static_cast<size_t>(id) < logits.size()) {
        logits[static_cast<size_t>(id)] -= params_.frequency_penalty * static_cast<float>(j - i) + params_.presence_penalty;
      }
      i = j;
    }
  }
  if (params_.repetition_penalty != 1.0f) {
    // As Hugging Face's RepetitionPenaltyLogitsProcessor: once per distinct token.
    std::vector<int32_t> seen(history.begin(), history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.greedy()) {
    // First maximum wins ties, as argmax does.
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }

  candidates_.clear();
  candidates_.reserve(logits.size());
  const float inv_temperature = 1.0f / params_.temperature;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != -std::numeric_limits<float>::infinity())
      candidates_.emplace_back(logits[i] * inv_temperature, static_cast<int32_t>(i));
  }
  if (candidates_.empty()) throw Error("sampling: every token is masked");
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < candidates_.size()) {
    const auto keep = static_cast<std::ptrdiff_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
    candidates_.resize(static_cast<size_t>(keep));
  }

  // Softmax over the candidates (probabilities in double: small tails matter for top_p).
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const auto& c : candidates_) max_logit = std::max(max_logit, c.first);
  std::vector<double>& probs = probabilities_;
  probs.clear();
  double total = 0;
  if (params_.top_p < 1.0f) {
    // The smallest nucleus whose mass reaches top_p, at least one token, without sorting the whole
    // vocabulary: after the total over every candidate, the largest ones in order, a block 4x
    // longer each time (selected in linear time, then sorted; top_k's are sorted already).
    for (const auto& c : candidates_) total += std::exp(static_cast<double>(c.first - max_logit));
    double mass = 0;
    const auto first = candidates_.begin();
    for (size_t sorted = 0, block = 64; mass < params_.top_p && sorted < candidates_.size(); block *= 4) {
      const size_t end = std::min(sorted + block, candidates_.size());
      const auto begin = first + static_cast<std::ptrdiff_t>(sorted);
      if (end < candidates_.size()) std::nth_element(begin, first + static_cast<std::ptrdiff_t>(end), candidates_.end(), by_logit);
      std::sort(begin, first + static_cast<std::ptrdiff_t>(end), by_logit);
      for (; sorted < end && mass < params_.top_p; ++sorted) {
        probs.push_back(std::exp(static_cast<double>(candidates_[sorted].first - max_logit)));
        mass += probs.back() / total;
      }
    }
    total = 0;
    for (double p : probs) total += p;
  } else {
    for (const auto& c : candidates_) total += probs.emplace_back(std::exp(static_cast<double>(c.first - max_logit)));
  }
  double target = rng_.uniform() * total;
  for (size_t i = 0; i < probs.size(); ++i) {
    target -= probs[i];
    if (target < 0) return candidates_[i].second;
  }
  return candidates_[probs.size() - 1].second;
}

}  // namespace llm
