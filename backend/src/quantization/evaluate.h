#pragma once
// Measuring a checkpoint on text: perplexity, teacher-forced top-1 agreement with a reference
// checkpoint, and the output error of every linear layer against a float reference.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/cpu/llama_model.h"

namespace llm {

struct EvalOptions {
  size_t window = 0;  // tokens per independently evaluated window; 0: min(context, 512)
  // The model's logits (not the reference's) are divided by it before scoring: above 1 softens
  // its predictions, which shows how well calibrated their confidence is.
  double temperature = 1.0;
};

struct EvalResult {
  size_t windows = 0;
  size_t predicted_tokens = 0;  // positions with a next token to predict
  double mean_nll = 0.0;        // natural log
  double perplexity = 0.0;
  std::optional<double> reference_perplexity;
  // Fraction of positions where the model's most likely next token is the reference's.
  std::optional<double> top1_agreement;
  // Mean KL(reference || model) of the next-token distributions, in nats.
  std::optional<double> mean_kl_divergence;
};

// Throws an Error naming a bad option that needs no model to judge (the temperature); lets a
// caller refuse bad input before loading checkpoints. evaluate_text checks it too.
void check_eval_options(const EvalOptions& options);

// tokens: the text's ids, BOS first. The text is cut into consecutive windows, each run from an
// empty cache; every position but a window's last predicts the next token. With a reference
// (same vocabulary), both run on the same windows.
EvalResult evaluate_text(LlamaModel& model, std::span<const int32_t> tokens, LlamaModel* reference,
                         const EvalOptions& options);

struct LinearError {
  size_t layer = 0;
  Linear linear = Linear::Qkv;
  // sum (y - y_q)^2 / sum y^2 over the inputs the reference model gives this layer on the text.
  double relative_error = 0.0;
};

// Every linear layer of `model` against the same layer of `reference` (same shapes), on the
// inputs the reference sees for `tokens` (the first window only: at most options.window tokens).
std::vector<LinearError> linear_output_errors(LlamaModel& reference, const LlamaModel& model,
                                              std::span<const int32_t> tokens, const EvalOptions& options);

}  // namespace llm
