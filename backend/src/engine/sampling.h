#pragma once
// Next-token selection: greedy, temperature, top-k, top-p and repetition penalty, with a
// seeded generator of our own so the same seed gives the same tokens on every platform.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace llm {

struct SamplingParams {
  float temperature = 1.0f;         // 0 selects greedy decoding
  int32_t top_k = 0;                // 0: no limit
  float top_p = 1.0f;               // nucleus mass in (0, 1]
  float repetition_penalty = 1.0f;  // > 1 discourages tokens already in the prompt or output
  float presence_penalty = 0.0f;    // subtracted once from every token already generated
  float frequency_penalty = 0.0f;   // subtracted per occurrence in the generated tokens
  uint64_t seed = 0;

  // Throws Error naming the field and its allowed range.
  void validate() const;
  bool greedy() const { return temperature == 0.0f || top_k == 1; }
};

// xoshiro256** seeded through splitmix64: fast, small state, identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from logits (modified in place: penalties applied). `history` holds the
  // prompt and generated ids; its first `prompt_length` are the prompt (the repetition penalty
  // covers both, presence and frequency penalties only generated tokens).
  int32_t sample(std::span<float> logits, std::span<const int32_t> history, size_t prompt_length);

 private:
  SamplingParams params_;
  Rng rng_;
  // Scratch reused across tokens (no per-token allocation on the sampling path).
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<double> probabilities_;
};

}  // namespace llm
