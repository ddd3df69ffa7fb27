#pragma once
// One generation request from prompt ids to text: sampling, stop conditions and streaming text.
// The model's work is the scheduler's (engine/scheduler.h): it runs the sequence's tokens() in
// batches and hands each Generation the logits of its last token.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "engine/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace llm {

enum class FinishReason { None, Length, EndId, StopString };
// "length" (max_tokens reached) or "stop" (end id or stop string), as OpenAI-style APIs say.
const char* finish_reason_name(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;  // end ids are masked until this many tokens exist
  SamplingParams sampling;
  std::vector<int32_t> end_ids;  // generation stops at any of these (not part of the output)
  bool ignore_eos = false;       // benchmarks: always generate max_tokens
  std::vector<std::string> stop_strings;  // output stops before the first occurrence
  // Token sequences that end generation once the output ends with one (the tokens stay in the output).
  std::vector<std::vector<int32_t>> stop_token_sequences;
  // Token sequences never to complete: the last token is masked whenever the text so far ends
  // with the others.
  std::vector<std::vector<int32_t>> bad_token_sequences;
  bool return_log_probs = false;  // record log p(token) for each generated token
};

// Checks a request against a model's vocabulary and context (prompt + max_tokens tokens):
// lengths, token ids, stop strings and word lists. Throws Error naming what is wrong. Both
// engines run it before accepting a request; `context_source` names where the context length
// comes from in messages.
void validate_generation_request(const GenerationRequest& request, int64_t vocab_size, int64_t context_tokens,
                                 const char* context_source = "max_position_embeddings");

class Generation {
 public:
  // `request` must have passed validate_generation_request; throws Error for bad sampling values.
  // `tokenizer` must outlive the generation.
  Generation(const Tokenizer& tokenizer, GenerationRequest request);

  bool finished() const { return finish_ != FinishReason::None; }
  FinishReason finish_reason() const { return finish_; }
  const GenerationRequest& request() const { return request_; }
  // The prompt followed by the generated tokens: what the model must have run before the next
  // token is sampled (the last of them is the input of the next decode step).
  std::span<const int32_t> tokens() const { return history_; }
  // Samples the next token from the logits of the last of tokens() (masking end ids and bad words
  // in place), applies the stop conditions and returns the newly visible text.
  std::string accept(std::span<float> logits);

  const std::vector<int32_t>& output_ids() const { return output_ids_; }
  // Natural-log probability of each generated token under the (penalised) model distribution;
  // filled only when the request asked for it.
  const std::vector<float>& output_log_probs() const { return log_probs_; }

 private:
  std::string accept_text(std::string delta, bool final);  // applies the stop strings
  void finish(FinishReason reason) { finish_ = reason; }
  void mask_bad_tokens(std::span<float> logits) const;
  bool ends_with(const std::vector<int32_t>& sequence) const;

  GenerationRequest request_;
  Sampler sampler_;
  StreamDecoder decoder_;
  std::vector<int32_t> history_;  // prompt + output: the model's input, and the repetition penalty's
  std::vector<int32_t> output_ids_;
  std::vector<float> log_probs_;
  StopStringFilter stop_filter_;  // visible text, ending before the first stop string
  FinishReason finish_ = FinishReason::None;
};

}  // namespace llm
