#include "engine/generate.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace llm {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::None: return "none";
    case FinishReason::Length: return "length";
    case FinishReason::EndId:
    case FinishReason::StopString: return "stop";
  }
  return "none";
}

void validate_generation_request(const GenerationRequest& request, int64_t vocab_size, int64_t context_tokens,
                                 const char* context_source) {
  const int64_t context = context_tokens;
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt == 0) throw Error("the prompt is empty: it needs at least one token");
  if (request.max_tokens <= 0) throw_error("max_tokens must be at least 1, got ", request.max_tokens);
  if (request.min_tokens < 0) throw_error("min_tokens must be >= 0, got ", request.min_tokens);
  if (prompt + request.max_tokens > context) {
    throw_error("the prompt (", prompt, " tokens) plus max_tokens (", request.max_tokens, ") is ",
                prompt + request.max_tokens, " tokens, beyond the model's context of ", context,
                " tokens (", context_source, "): shorten the prompt or lower max_tokens");
  }
  for (const auto& stop : request.stop_strings)
    if (stop.empty()) throw Error("stop strings must not be empty");
  const int64_t vocab = vocab_size;
  auto check_ids = [&](const std::vector<std::vector<int32_t>>& sequences, const char* what) {
    for (const auto& sequence : sequences) {
      if (sequence.empty()) throw_error(what, " must not contain empty sequences");
      for (int32_t id : sequence)
        if (id < 0 || id >= vocab) throw_error(what, " holds token id ", id, ", outside the vocabulary [0, ", vocab, ")");
    }
  };
  check_ids(request.stop_token_sequences, "stop words");
  check_ids(request.bad_token_sequences, "bad words");
  for (int32_t id : request.prompt_ids)
    if (id < 0 || id >= vocab) throw_error("prompt token id ", id, " is outside the vocabulary [0, ", vocab, ")");
}

Generation::Generation(const Tokenizer& tokenizer, GenerationRequest request)
    : request_(std::move(request)),
      sampler_(request_.sampling),
      decoder_(tokenizer),
      history_(request_.prompt_ids),
      stop_filter_(request_.stop_strings) {}

std::string Generation::accept(std::span<float> logits) {
  if (finished()) return {};
  // NaN logits (corrupt weights, or activations that overflowed) would be sampled as some token
  // all the same; the request fails with the cause instead.
  if (std::any_of(logits.begin(), logits.end(), [](float l) { return std::isnan(l); })) {
    throw_error("the model produced NaN logits at generated token ", output_ids_.size() + 1,
                ": its weights may hold NaN or infinite values, or its activations overflowed; check the checkpoint "
                "(`llm eval` reports its perplexity)");
  }
  const bool can_end = !request_.ignore_eos && static_cast<int32_t>(output_ids_.size()) >= request_.min_tokens;
  if (!can_end) {
    for (int32_t id : request_.end_ids) {
      if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
    }
  }
  mask_bad_tokens(logits);
  const int32_t token = sampler_.sample(logits, history_, request_.prompt_ids.size());
  if (request_.return_log_probs) {
    // log softmax of the penalised logits at the chosen token.
    const float max_logit = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (float l : logits) total += std::exp(static_cast<double>(l - max_logit));
    log_probs_.push_back(static_cast<float>(static_cast<double>(logits[static_cast<size_t>(token)] - max_logit) - std::log(total)));
  }
  if (can_end && std::find(request_.end_ids.begin(), request_.end_ids.end(), token) != request_.end_ids.end()) {
    finish(FinishReason::EndId);
    return accept_text(decoder_.finish(), true);
  }
  output_ids_.push_back(token);
  history_.push_back(token);
  std::string delta = decoder_.push(token);
  bool stop_tokens = false;
  for (const auto& sequence : request_.stop_token_sequences) stop_tokens = stop_tokens || ends_with(sequence);
  const bool at_limit = static_cast<int32_t>(output_ids_.size()) >= request_.max_tokens;
  const bool last = at_limit || stop_tokens;
  if (last) delta += decoder_.finish();
  std::string visible = accept_text(std::move(delta), last);
  if (!finished() && stop_tokens) finish(FinishReason::StopString);
  if (!finished() && at_limit) finish(FinishReason::Length);
  return visible;
}

bool Generation::ends_with(const std::vector<int32_t>& sequence) const {
  return sequence.size() <= output_ids_.size() &&
         std::equal(sequence.rbegin(), sequence.rend(), output_ids_.rbegin());
}

void Generation::mask_bad_tokens(std::span<float> logits) const {
  for (const auto& sequence : request_.bad_token_sequences) {
    const size_t prefix = sequence.size() - 1;
    if (prefix > history_.size() ||
        !std::equal(sequence.begin(), sequence.begin() + static_cast<std::ptrdiff_t>(prefix),
                    history_.end() - static_cast<std::ptrdiff_t>(prefix))) {
      continue;
    }
    logits[static_cast<size_t>(sequence.back())] = -std::numeric_limits<float>::infinity();
  }
}

std::string Generation::accept_text(std::string delta, bool final) {
  std::string visible = stop_filter_.accept(std::move(delta), final);
  if (stop_filter_.stopped()) finish(FinishReason::StopString);
  return visible;
}

}  // namespace llm
