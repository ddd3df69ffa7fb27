#include "quantization/evaluate.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/thread_pool.h"
#include "kernels/kernels.h"

namespace llm {
namespace {

size_t window_length(const LlamaModel& model, const EvalOptions& options) {
  const auto context = static_cast<size_t>(model.config().max_position_embeddings);
  const size_t window = options.window == 0 ? std::min<size_t>(context, 512) : options.window;
  if (window < 2) throw Error("the evaluation window must hold at least 2 tokens");
  if (window > context)
    throw_error("the evaluation window of ", window, " tokens exceeds the model's context of ", context);
  return window;
}

// log sum_i exp(logits[i]): log p(i) = logits[i] - this, for p = softmax(logits). Computed once
// per row and shared by the perplexity and the KL divergence (the exponentials dominate the cost
// of evaluating beside the forward pass).
double log_normalizer(const float* logits, size_t vocab) {
  const float max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  return std::log(sum) + max_logit;
}

// KL(p || q) for p = softmax(reference), q = softmax(model), given their log normalizers.
double kl_divergence(const float* reference, double reference_norm, const float* model, double model_norm,
                     size_t vocab) {
  double kl = 0.0;
  for (size_t i = 0; i < vocab; ++i) {
    const double log_p = reference[i] - reference_norm, log_q = model[i] - model_norm;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return kl;
}

size_t argmax(const float* logits, size_t vocab) {
  return static_cast<size_t>(std::max_element(logits, logits + vocab) - logits);
}

}  // namespace

void check_eval_options(const EvalOptions& options) {
  if (!(options.temperature > 0.0) || !std::isfinite(options.temperature))
    throw_error("the evaluation temperature must be a positive, finite number, got ", options.temperature);
}

EvalResult evaluate_text(LlamaModel& model, std::span<const int32_t> tokens, LlamaModel* reference,
                         const EvalOptions& options) {
  const size_t vocab = static_cast<size_t>(model.config().vocab_size);
  if (reference != nullptr && static_cast<size_t>(reference->config().vocab_size) != vocab)
    throw Error("the reference checkpoint has a different vocabulary size");
  if (tokens.size() < 2) throw Error("the text is too short to evaluate: it needs at least 2 tokens");
  check_eval_options(options);
  const auto inverse_temperature = static_cast<float>(1.0 / options.temperature);
  const size_t window = window_length(model, options);

  EvalResult result;
  double nll = 0.0, reference_nll = 0.0, kl = 0.0;
  size_t agreeing = 0;
  std::vector<float> logits, reference_logits;
  for (size_t begin = 0; begin + 1 < tokens.size(); begin += window) {
    const auto chunk = tokens.subspan(begin, std::min(window, tokens.size() - begin));
    if (chunk.size() < 2) break;
    logits.resize(chunk.size() * vocab);
    model.forward_prompt(chunk, logits, true);
    if (options.temperature != 1.0)
      for (float& logit : logits) logit *= inverse_temperature;
    if (reference != nullptr) {
      reference_logits.resize(chunk.size() * vocab);
      reference->forward_prompt(chunk, reference_logits, true);
    }
    for (size_t t = 0; t + 1 < chunk.size(); ++t) {
      const auto target = static_cast<size_t>(chunk[t + 1]);
      const float* row = &logits[t * vocab];
      const double norm = log_normalizer(row, vocab);
      nll += norm - row[target];
      if (reference != nullptr) {
        const float* reference_row = &reference_logits[t * vocab];
        const double reference_norm = log_normalizer(reference_row, vocab);
        reference_nll += reference_norm - reference_row[target];
        kl += kl_divergence(reference_row, reference_norm, row, norm, vocab);
        agreeing += argmax(row, vocab) == argmax(reference_row, vocab) ? 1 : 0;
      }
      ++result.predicted_tokens;
    }
    ++result.windows;
  }
  const auto n = static_cast<double>(result.predicted_tokens);
  result.mean_nll = nll / n;
  result.perplexity = std::exp(result.mean_nll);
  if (reference != nullptr) {
    result.reference_perplexity = std::exp(reference_nll / n);
    result.top1_agreement = static_cast<double>(agreeing) / n;
    result.mean_kl_divergence = kl / n;
  }
  return result;
}

namespace {

// Copies every linear layer's input during one forward pass.
class InputRecorder : public LinearInputObserver {
 public:
  void on_linear_input(size_t layer, Linear linear, const float* x, size_t n_tokens, size_t cols) override {
    inputs_[{layer, linear}] = {std::vector<float>(x, x + n_tokens * cols), n_tokens};
  }
  struct Input {
    std::vector<float> values;
    size_t rows = 0;
  };
  const std::map<std::pair<size_t, Linear>, Input>& inputs() const { return inputs_; }

 private:
  std::map<std::pair<size_t, Linear>, Input> inputs_;
};

}  // namespace

std::vector<LinearError> linear_output_errors(LlamaModel& reference, const LlamaModel& model,
                                              std::span<const int32_t> tokens, const EvalOptions& options) {
  if (reference.num_layers() != model.num_layers() || reference.config().hidden_size != model.config().hidden_size ||
      reference.config().intermediate_size != model.config().intermediate_size) {
    throw Error("linear output errors need two checkpoints of the same shape");
  }
  if (tokens.empty()) throw Error("no tokens to measure linear layers on");
  const auto chunk = tokens.subspan(0, std::min(tokens.size(), window_length(reference, options)));
  InputRecorder recorder;
  std::vector<float> logits(static_cast<size_t>(reference.config().vocab_size));
  reference.forward_prompt(chunk, logits, false, &recorder);

  ThreadPool pool;
  const kernels::Context ctx{kernels::detect_isa(), &pool};
  std::vector<LinearError> errors;
  std::vector<float> expected, actual;
  for (const auto& [key, input] : recorder.inputs()) {
    const auto [layer, which] = key;
    const kernels::WeightView& w_reference = reference.linear(layer, which);
    const kernels::WeightView& w_model = model.linear(layer, which);
    expected.resize(input.rows * w_reference.rows);
    actual.resize(input.rows * w_model.rows);
    kernels::matmul(ctx, input.values.data(), input.rows, w_reference, expected.data());
    kernels::matmul(ctx, input.values.data(), input.rows, w_model, actual.data());
    double difference = 0.0, magnitude = 0.0;
    for (size_t i = 0; i < expected.size(); ++i) {
      const double d = static_cast<double>(expected[i]) - actual[i];
      difference += d * d;
      magnitude += static_cast<double>(expected[i]) * expected[i];
    }
    errors.push_back({layer, which, magnitude > 0 ? difference / magnitude : 0.0});
  }
  return errors;
}

}  // namespace llm
