#include "quantization/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "checkpoint/hf_convert.h"
#include "checkpoint/model_config.h"
#include "checkpoint/quantized_format.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "common/half.h"
#include "common/thread_pool.h"
#include "engine/cpu/llama_model.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"

namespace llm {

std::optional<QuantMethod> quant_method_from_name(std::string_view name) {
  if (name == "int8") return QuantMethod::Int8;
  if (name == "int4-rtn") return QuantMethod::Int4Rtn;
  if (name == "awq") return QuantMethod::Awq;
  return std::nullopt;
}

const char* quant_method_name(QuantMethod method) {
  switch (method) {
    case QuantMethod::Int8: return "int8";
    case QuantMethod::Int4Rtn: return "int4-rtn";
    case QuantMethod::Awq: return "awq";
  }
  return "?";
}

uint16_t quantize_int8_row(const float* w, size_t cols, int8_t* codes) {
  float max_abs = 0.0f;
  for (size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::fabs(w[c]));
  uint16_t bits = f32_to_fp16(max_abs > 0.0f ? max_abs / 127.0f : 1.0f);
  if (fp16_to_f32(bits) == 0.0f) bits = f32_to_fp16(std::numeric_limits<float>::min());  // below fp16's range
  // Codes are taken against the scale as stored, so dequantisation reproduces what was rounded.
  const float scale = fp16_to_f32(bits);
  for (size_t c = 0; c < cols; ++c) {
    codes[c] = static_cast<int8_t>(std::clamp(std::nearbyint(w[c] / scale), -127.0f, 127.0f));
  }
  return bits;
}

namespace {

// The fp16 scale of a symmetric int4 group whose kept range is [-limit, limit]: limit / 7, or the
// smallest normal fp16 where that rounds to zero (a group of zeros gets scale 1). The quantizer
// and the AWQ search's simulation of it both take their scales from here.
uint16_t int4_scale_bits(float limit) {
  const uint16_t bits = f32_to_fp16(limit > 0.0f ? limit / 7.0f : 1.0f);
  return fp16_to_f32(bits) == 0.0f ? f32_to_fp16(6.1e-5f) : bits;
}

}  // namespace

void quantize_int4_row(const float* w, size_t cols, size_t group_size, const float* clip, uint8_t* codes,
                       uint16_t* scales) {
  const size_t padded = quantized_format::int4_padded_columns(cols, group_size);
  std::fill(codes + cols, codes + padded, kernels::kInt4SymmetricZero);  // zero weights
  for (size_t g = 0; g * group_size < cols; ++g) {
    const size_t begin = g * group_size;
    const size_t end = std::min(begin + group_size, cols);
    float max_abs = 0.0f;
    for (size_t c = begin; c < end; ++c) max_abs = std::max(max_abs, std::fabs(w[c]));
    scales[g] = int4_scale_bits(max_abs * (clip != nullptr ? clip[g] : 1.0f));
    const float scale = fp16_to_f32(scales[g]);
    for (size_t c = begin; c < end; ++c) {
      const float q = std::clamp(std::nearbyint(w[c] / scale), -8.0f, 7.0f);
      codes[c] = static_cast<uint8_t>(static_cast<int>(q) + kernels::kInt4SymmetricZero);
    }
  }
}

std::vector<float> simulate_int4_quantization(ThreadPool& pool, const std::vector<float>& w, size_t rows, size_t cols,
                                              size_t group_size, const std::vector<float>& s,
                                              const std::vector<float>& clip) {
  const size_t groups = quantized_format::int4_groups(cols, group_size);
  std::vector<float> inverse_s(cols);
  for (size_t c = 0; c < cols; ++c) inverse_s[c] = fp16_to_f32(f32_to_fp16(1.0f / s[c]));
  std::vector<float> out(rows * cols);
  pool.run(rows, [&](size_t r) {
    const float* row = w.data() + r * cols;
    float* dst = out.data() + r * cols;
    for (size_t g = 0; g < groups; ++g) {
      const size_t begin = g * group_size, end = std::min(begin + group_size, cols);
      float max_abs = 0.0f;
      for (size_t c = begin; c < end; ++c) max_abs = std::max(max_abs, std::fabs(row[c] * s[c]));
      const float scale = fp16_to_f32(int4_scale_bits(max_abs * (clip.empty() ? 1.0f : clip[r * groups + g])));
      for (size_t c = begin; c < end; ++c) {
        // The same arithmetic as quantize_int4 (w * s, then / scale), so ties round alike.
        dst[c] = std::clamp(std::nearbyint(row[c] * s[c] / scale), -8.0f, 7.0f) * scale * inverse_s[c];
      }
    }
  });
  return out;
}

namespace {

// AWQ's search grids (the paper's reference implementation uses 20 scale exponents and shrinks
// the clipping range down to half).
constexpr size_t kScaleGrid = 20;
constexpr size_t kClipGrid = 20;  // ratios 1, 0.975, ..., 0.525
// Calibration tokens whose inputs are kept for the scale search and for the clipping search
// (strided over the whole calibration set); the mean |x| statistics use every token.
constexpr size_t kSearchTokens = 512;
constexpr size_t kClipTokens = 128;

void log_line(const QuantizeOptions& options, const std::string& message) {
  if (options.log) options.log(message);
}

// Every linear layer's float weights as one row-major float32 matrix.
std::vector<float> float_matrix(const TensorView& t, size_t rows, size_t cols) {
  std::vector<float> out(rows * cols);
  const kernels::WeightView view{t.dtype, t.bytes.data(), rows, cols};
  for (size_t r = 0; r < rows; ++r) kernels::weight_row_to_f32(view, r, out.data() + r * cols);
  return out;
}

// Statistics of one linear layer's inputs over the calibration set.
struct InputStatistics {
  size_t cols = 0;
  std::vector<double> abs_sum;  // sum over tokens of |x_c|
  size_t tokens = 0;
  std::vector<float> samples;   // kept token rows, row-major
  size_t sample_rows() const { return cols == 0 ? 0 : samples.size() / cols; }
};

// Collects InputStatistics for the inputs that AWQ scales: qkv, dense, fc (gate shares its input)
// and proj of every layer.
class CalibrationObserver : public LinearInputObserver {
 public:
  CalibrationObserver(size_t layers, size_t sample_stride) : stats_(layers * 4), stride_(sample_stride) {}

  void begin_sequence(size_t first_token_index) { first_token_ = first_token_index; }

  void on_linear_input(size_t layer, Linear linear, const float* x, size_t n_tokens, size_t cols) override {
    if (linear == Linear::Gate) return;
    InputStatistics& s = stats(layer, linear);
    if (s.cols == 0) {
      s.cols = cols;
      s.abs_sum.assign(cols, 0.0);
    }
    for (size_t t = 0; t < n_tokens; ++t) {
      const float* row = x + t * cols;
      for (size_t c = 0; c < cols; ++c) s.abs_sum[c] += std::fabs(row[c]);
      if ((first_token_ + t) % stride_ == 0) s.samples.insert(s.samples.end(), row, row + cols);
    }
    s.tokens += n_tokens;
  }

  InputStatistics& stats(size_t layer, Linear linear) {
    const size_t slot = linear == Linear::Qkv ? 0 : linear == Linear::Dense ? 1 : linear == Linear::Proj ? 3 : 2;
    return stats_[layer * 4 + slot];
  }

 private:
  std::vector<InputStatistics> stats_;
  size_t stride_;
  size_t first_token_ = 0;
};

// One quantized linear layer, ready to write.
struct QuantizedLinear {
  std::vector<uint8_t> weight;        // int8 codes or packed int4 codes
  std::vector<uint16_t> scales;       // fp16: per row (int8) or per row and group (int4)
  std::vector<uint16_t> input_scale;  // fp16 prequant_scaling_factor (int4), per input column
};

QuantizedLinear quantize_int8(const std::vector<float>& w, size_t rows, size_t cols) {
  QuantizedLinear out;
  out.weight.resize(rows * cols);
  out.scales.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    out.scales[r] = quantize_int8_row(w.data() + r * cols, cols, reinterpret_cast<int8_t*>(out.weight.data() + r * cols));
  }
  return out;
}

// Group-wise int4 of w * s (s per input column), with optional clip ratios per row and group;
// the stored pre-quant scale is 1 / s.
QuantizedLinear quantize_int4(const std::vector<float>& w, size_t rows, size_t cols, size_t group_size,
                              const std::vector<float>& s, const std::vector<float>& clip) {
  const size_t padded = quantized_format::int4_padded_columns(cols, group_size);
  const size_t groups = quantized_format::int4_groups(cols, group_size);
  QuantizedLinear out;
  out.weight.resize(rows * padded / 2);
  out.scales.resize(rows * groups);
  std::vector<float> scaled(cols);
  std::vector<uint8_t> codes(padded);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) scaled[c] = w[r * cols + c] * s[c];
    quantize_int4_row(scaled.data(), cols, group_size, clip.empty() ? nullptr : clip.data() + r * groups, codes.data(),
                      out.scales.data() + r * groups);
    quantized_format::pack_int4_row(codes.data(), padded, out.weight.data() + r * padded / 2);
  }
  out.input_scale.resize(cols);
  for (size_t c = 0; c < cols; ++c) out.input_scale[c] = f32_to_fp16(1.0f / s[c]);
  return out;
}

// The per-input-column scale for exponent alpha: s = mean|x|^alpha, normalised so that
// max(s) * min(s) = 1 as in the reference implementation, then rounded so that 1 / s is exactly
// the fp16 pre-quant scale stored.
std::vector<float> awq_scales(const InputStatistics& x, double alpha) {
  std::vector<double> s(x.cols);
  double smallest = std::numeric_limits<double>::max(), largest = 0.0;
  for (size_t c = 0; c < x.cols; ++c) {
    const double mean_abs = std::max(x.abs_sum[c] / static_cast<double>(std::max<size_t>(x.tokens, 1)), 1e-6);
    s[c] = std::pow(mean_abs, alpha);
    smallest = std::min(smallest, s[c]);
    largest = std::max(largest, s[c]);
  }
  const double norm = std::sqrt(smallest * largest);
  std::vector<float> out(x.cols);
  for (size_t c = 0; c < x.cols; ++c) out[c] = 1.0f / fp16_to_f32(f32_to_fp16(static_cast<float>(norm / s[c])));
  return out;
}

struct Weights {
  std::vector<float> values;
  size_t rows = 0;
  size_t cols = 0;
};

// The output a scale search judges, computed from the sampled inputs and candidate float weights
// of the linears sharing them.
using BlockOutput = std::function<std::vector<float>(const std::vector<const float*>& weights)>;

// The linears' own outputs, one after another.
BlockOutput linear_outputs(const kernels::Context& ctx, const std::vector<Weights>& ws, const InputStatistics& x) {
  return [&ctx, &ws, &x](const std::vector<const float*>& weights) {
    const size_t n = x.sample_rows();
    std::vector<float> out;
    for (size_t k = 0; k < ws.size(); ++k) {
      const size_t offset = out.size();
      out.resize(offset + n * ws[k].rows);
      kernels::matmul(ctx, x.samples.data(), n, kernels::WeightView{DType::F32, weights[k], ws[k].rows, x.cols},
                      out.data() + offset);
    }
    return out;
  };
}

// The MLP's output proj(silu(fc x) * gate x) with proj in float: AWQ judges the fc/gate scales by
// the whole MLP, whose SiLU weighs the fc errors unevenly.
BlockOutput mlp_output(const kernels::Context& ctx, const std::vector<Weights>& fc_gate, const Weights& proj,
                       const InputStatistics& x) {
  return [&ctx, &fc_gate, &proj, &x](const std::vector<const float*>& weights) {
    const size_t n = x.sample_rows(), inter = fc_gate[0].rows;
    std::vector<float> a(n * inter), b(n * inter), out(n * proj.rows);
    kernels::matmul(ctx, x.samples.data(), n, kernels::WeightView{DType::F32, weights[0], inter, x.cols}, a.data());
    kernels::matmul(ctx, x.samples.data(), n, kernels::WeightView{DType::F32, weights[1], inter, x.cols}, b.data());
    kernels::silu_mul(ctx.isa, a.data(), b.data(), a.size());
    kernels::matmul(ctx, a.data(), n, kernels::WeightView{DType::F32, proj.values.data(), proj.rows, inter}, out.data());
    return out;
  };
}

double squared_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  return sum;
}

// AWQ for the linear layers that share one input: the scale exponent that minimises their summed
// output error on the sampled calibration inputs (alpha = 0, no scaling, is on the grid, so the
// result is never worse than round-to-nearest there), then per row and group the clipping ratio
// that minimises that group's output error. The first `unclipped_rows` rows of each weight keep
// their full range. Returns one QuantizedLinear per weight.
std::vector<QuantizedLinear> awq_search(const kernels::Context& ctx, ThreadPool& pool, const std::vector<Weights>& ws,
                                        const InputStatistics& x, const BlockOutput& block, size_t group_size,
                                        size_t unclipped_rows, std::string& report) {
  const size_t cols = x.cols;
  const size_t n = x.sample_rows();
  std::vector<const float*> float_weights;
  for (const auto& w : ws) float_weights.push_back(w.values.data());
  const std::vector<float> reference = block(float_weights);
  const auto error_of = [&](const std::vector<float>& s, const std::vector<std::vector<float>>& clips) {
    std::vector<std::vector<float>> dequantized;
    std::vector<const float*> pointers;
    dequantized.reserve(ws.size());
    for (size_t k = 0; k < ws.size(); ++k) {
      dequantized.push_back(simulate_int4_quantization(pool, ws[k].values, ws[k].rows, cols, group_size, s, clips[k]));
      pointers.push_back(dequantized.back().data());
    }
    return squared_difference(reference, block(pointers));
  };
  const std::vector<std::vector<float>> no_clip(ws.size());

  double best_error = std::numeric_limits<double>::infinity();
  double rtn_error = 0.0;
  double best_alpha = 0.0;
  std::vector<float> best_s;
  for (size_t step = 0; step < kScaleGrid; ++step) {
    const double alpha = static_cast<double>(step) / kScaleGrid;
    std::vector<float> s = awq_scales(x, alpha);
    const double error = error_of(s, no_clip);
    if (step == 0) rtn_error = error;
    if (error < best_error) {
      best_error = error;
      best_alpha = alpha;
      best_s = std::move(s);
    }
  }

  std::vector<std::vector<float>> clips(ws.size());
  if (std::any_of(ws.begin(), ws.end(), [&](const Weights& w) { return w.rows > unclipped_rows; })) {
    // Inputs and weights in the scaled space, grouped: xg[g] holds the clip samples' columns of
    // group g contiguously.
    const size_t clip_rows = std::min(n, kClipTokens);
    const size_t clip_stride = std::max<size_t>(1, n / clip_rows);
    const size_t groups = quantized_format::int4_groups(cols, group_size);
    const size_t padded = groups * group_size;
    std::vector<float> xg(groups * clip_rows * group_size, 0.0f);
    for (size_t i = 0; i < clip_rows; ++i) {
      const float* row = x.samples.data() + i * clip_stride * cols;
      for (size_t c = 0; c < cols; ++c) {
        xg[(c / group_size * clip_rows + i) * group_size + c % group_size] = row[c] / best_s[c];
      }
    }
    for (size_t k = 0; k < ws.size(); ++k) {
      const size_t rows = ws[k].rows;
      clips[k].assign(rows * groups, 1.0f);
      pool.run(rows, [&](size_t r) {
        if (r < unclipped_rows) return;
        std::vector<float> scaled(padded, 0.0f), diff(group_size);
        for (size_t c = 0; c < cols; ++c) scaled[c] = ws[k].values[r * cols + c] * best_s[c];
        for (size_t g = 0; g < groups; ++g) {
          const float* wg = scaled.data() + g * group_size;
          float max_abs = 0.0f;
          for (size_t c = 0; c < group_size; ++c) max_abs = std::max(max_abs, std::fabs(wg[c]));
          if (max_abs == 0.0f) continue;
          double best = std::numeric_limits<double>::infinity();
          for (size_t step = 0; step < kClipGrid; ++step) {
            const float ratio = 1.0f - 0.5f * static_cast<float>(step) / kClipGrid;
            const float scale = fp16_to_f32(int4_scale_bits(max_abs * ratio));  // as quantize_int4_row
            for (size_t c = 0; c < group_size; ++c) {
              diff[c] = wg[c] - std::clamp(std::nearbyint(wg[c] / scale), -8.0f, 7.0f) * scale;
            }
            double error = 0.0;
            for (size_t i = 0; i < clip_rows; ++i) {
              const double d = kernels::dot(ctx.isa, xg.data() + (g * clip_rows + i) * group_size, diff.data(), group_size);
              error += d * d;
            }
            if (error < best) {
              best = error;
              clips[k][r * groups + g] = ratio;
            }
          }
        }
      });
    }
    const double clipped_error = error_of(best_s, clips);
    // Clipping is chosen per group on a subsample of the inputs; keep it only if it also lowers the
    // whole block's error on every sampled input.
    if (clipped_error < best_error) {
      best_error = clipped_error;
    } else {
      clips.assign(ws.size(), {});
    }
  }

  std::ostringstream line;
  line << std::fixed << std::setprecision(2) << "alpha " << best_alpha << ", output error "
       << std::setprecision(4) << (rtn_error > 0 ? best_error / rtn_error : 1.0) << " x round-to-nearest's";
  report = line.str();
  std::vector<QuantizedLinear> out;
  for (size_t k = 0; k < ws.size(); ++k) {
    out.push_back(quantize_int4(ws[k].values, ws[k].rows, cols, group_size, best_s, clips[k]));
  }
  return out;
}

// Calibration sequences: the text's tokens cut into sequences of `length` (each starting with
// BOS), spread evenly over the text.
std::vector<std::vector<int32_t>> calibration_sequences(const QuantizeOptions& options, const Tokenizer& tokenizer,
                                                        size_t context) {
  const std::string text = read_utf8_file(options.calib_text);
  const std::vector<int32_t> ids = tokenizer.encode(text, false);
  const size_t length = std::min(options.calib_sequence_length, context);
  if (length < 2 || options.calib_samples == 0) throw Error("--calib-samples and the sequence length must be positive");
  const size_t body = length - 1;
  const size_t available = ids.size() / body;
  if (available == 0) {
    throw_error("calibration text ", options.calib_text.string(), " has only ", ids.size(),
                " tokens; AWQ needs at least one sequence of ", length, " (use a longer text)");
  }
  const size_t count = std::min(options.calib_samples, available);
  if (count < options.calib_samples) {
    log_line(options, "note: the calibration text holds " + std::to_string(available) + " sequences of " +
                          std::to_string(length) + " tokens; using all of them instead of " +
                          std::to_string(options.calib_samples));
  }
  std::vector<std::vector<int32_t>> sequences;
  for (size_t i = 0; i < count; ++i) {
    const size_t chunk = i * available / count;
    std::vector<int32_t> sequence{tokenizer.bos_id()};
    sequence.insert(sequence.end(), ids.begin() + static_cast<std::ptrdiff_t>(chunk * body),
                    ids.begin() + static_cast<std::ptrdiff_t>((chunk + 1) * body));
    sequences.push_back(std::move(sequence));
  }
  return sequences;
}

}  // namespace

void quantize_checkpoint(const QuantizeOptions& options) {
  const ModelConfig source = ModelConfig::load(options.checkpoint_dir);
  if (source.quantization.algo != QuantAlgo::None) {
    throw_error(options.checkpoint_dir.string(), " is already quantized (", quant_algo_name(source.quantization.algo),
                "); quantize a float checkpoint");
  }
  if (options.method == QuantMethod::Awq && options.calib_text.empty()) {
    throw Error("awq needs calibration text: pass --calib FILE (plain UTF-8 text like the prompts the model will see)");
  }
  if (options.method != QuantMethod::Int8 && !kernels::int4_group_size_supported(options.group_size)) {
    throw_error("--group-size must be 32, 64 or a multiple of 128, got ", options.group_size);
  }
  if (std::filesystem::exists(options.out_dir) && std::filesystem::equivalent(options.checkpoint_dir, options.out_dir)) {
    throw Error("--out must differ from the input checkpoint");
  }
  const size_t layers = static_cast<size_t>(source.num_hidden_layers);
  const size_t hidden = static_cast<size_t>(source.hidden_size);
  const size_t inter = static_cast<size_t>(source.intermediate_size);
  const size_t qkv_rows = static_cast<size_t>(source.q_size() + 2 * source.kv_size());
  const size_t q_size = static_cast<size_t>(source.q_size());
  const bool int4 = options.method != QuantMethod::Int8;
  const size_t group_size = options.group_size;

  // AWQ: run the float model over the calibration text and keep its linear layers' inputs.
  std::unique_ptr<CalibrationObserver> calibration;
  if (options.method == QuantMethod::Awq) {
    const auto tokenizer_path = options.tokenizer.empty() ? options.checkpoint_dir / "tokenizer.model" : options.tokenizer;
    const Tokenizer tokenizer(tokenizer_path);
    const auto sequences =
        calibration_sequences(options, tokenizer, static_cast<size_t>(source.max_position_embeddings));
    size_t total = 0;
    for (const auto& s : sequences) total += s.size();
    calibration = std::make_unique<CalibrationObserver>(layers, std::max<size_t>(1, total / kSearchTokens));
    auto model = LlamaModel::load(options.checkpoint_dir, {options.threads});
    std::vector<float> logits(static_cast<size_t>(source.vocab_size));
    size_t first = 0;
    for (const auto& sequence : sequences) {
      calibration->begin_sequence(first);
      model->forward_prompt(sequence, logits, false, calibration.get());
      first += sequence.size();
    }
    log_line(options, "calibrated on " + std::to_string(sequences.size()) + " sequences, " + std::to_string(total) +
                          " tokens of " + options.calib_text.string());
  }

  const SafetensorsFile file(options.checkpoint_dir / "rank0.safetensors");
  ThreadPool pool(options.threads);
  const kernels::Context ctx{kernels::detect_isa(), &pool};

  // Quantize every layer's linears (held in memory until written: a quarter to half the float size).
  std::map<std::string, QuantizedLinear> quantized;
  const std::array<std::pair<size_t, size_t>, kLinearsPerLayer> shapes = {
      {{qkv_rows, hidden}, {hidden, q_size}, {inter, hidden}, {inter, hidden}, {hidden, inter}}};
  auto load_weights = [&](const std::string& name, Linear which) {
    const auto [rows, cols] = shapes[static_cast<size_t>(which)];
    const TensorView& t = file.get(name + ".weight", {rows, cols});
    return Weights{float_matrix(t, rows, cols), rows, cols};
  };
  for (size_t l = 0; l < layers; ++l) {
    const std::string prefix = "transformer.layers." + std::to_string(l) + ".";
    if (options.method != QuantMethod::Awq) {
      for (Linear which : kLinears) {
        const std::string name = prefix + linear_name(which);
        const Weights w = load_weights(name, which);
        quantized[name] = int4 ? quantize_int4(w.values, w.rows, w.cols, group_size, std::vector<float>(w.cols, 1.0f), {})
                               : quantize_int8(w.values, w.rows, w.cols);
      }
      continue;
    }
    // Linears sharing one input are scaled together: qkv; dense; proj; fc and gate. proj goes
    // before fc and gate so that its float weights, once searched, serve their MLP objective.
    const std::vector<std::vector<Linear>> sharing = {{Linear::Qkv}, {Linear::Dense}, {Linear::Proj}, {Linear::Fc, Linear::Gate}};
    Weights proj;
    for (const auto& group : sharing) {
      std::vector<Weights> ws;
      for (Linear which : group) ws.push_back(load_weights(prefix + linear_name(which), which));
      const InputStatistics& x = calibration->stats(l, group.front());
      const BlockOutput block =
          group.front() == Linear::Fc ? mlp_output(ctx, ws, proj, x) : linear_outputs(ctx, ws, x);
      // AWQ clips the value projection but not the query and key ones, whose errors multiply
      // each other in the attention scores.
      const size_t unclipped_rows = group.front() == Linear::Qkv ? q_size + static_cast<size_t>(source.kv_size()) : 0;
      std::string report;
      auto results = awq_search(ctx, pool, ws, x, block, group_size, unclipped_rows, report);
      std::string names;
      for (size_t k = 0; k < group.size(); ++k) {
        if (k > 0) names += '+';
        names += linear_name(group[k]);
        quantized[prefix + linear_name(group[k])] = std::move(results[k]);
      }
      log_line(options, "layer " + std::to_string(l) + " " + names + ": " + report);
      if (group.front() == Linear::Proj) proj = std::move(ws.front());
    }
  }

  ModelConfig config = source;
  config.quantization.algo = int4 ? QuantAlgo::W4A16_AWQ : QuantAlgo::W8A16;
  config.quantization.group_size = int4 ? static_cast<int64_t>(group_size) : 0;
  config.quantization.has_zero_point = false;
  config.quantization.pre_quant_scale = int4;
  config.quantization.exclude_modules = {"lm_head"};

  SafetensorsWriter writer;
  writer.set_metadata("producer", std::string("triton-llm quantize ") + quant_method_name(options.method));
  writer.set_metadata(quantized_format::kPackingKey, quantized_format::kPackingVersion);
  const auto bytes_of = [](const auto& values) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(values[0]));
  };
  for (const auto& [name, tensor] : file.tensors()) {
    const std::string module = name.size() > 7 ? name.substr(0, name.size() - 7) : "";  // strip ".weight"
    const auto it = name.ends_with(".weight") ? quantized.find(module) : quantized.end();
    if (it == quantized.end()) {
      writer.add_copy(name, tensor.dtype, tensor.shape, tensor.bytes);
      continue;
    }
    const QuantizedLinear& q = it->second;
    const size_t rows = tensor.shape[0];
    if (!int4) {
      writer.add_copy(name, DType::I8, tensor.shape, bytes_of(q.weight));
      writer.add_copy(module + ".per_channel_scale", DType::F16, {rows}, bytes_of(q.scales));
      continue;
    }
    const size_t cols = tensor.shape[1];
    const size_t padded = quantized_format::int4_padded_columns(cols, group_size);
    writer.add_copy(name, DType::I8, {rows, padded / 2}, bytes_of(q.weight));
    writer.add_copy(module + ".weights_scaling_factor", DType::F16, {rows, quantized_format::int4_groups(cols, group_size)},
                    bytes_of(q.scales));
    writer.add_copy(module + ".prequant_scaling_factor", DType::F16, {cols}, bytes_of(q.input_scale));
  }
  if (int4 && (hidden % group_size != 0 || q_size % group_size != 0 || inter % group_size != 0)) {
    log_line(options, "note: input sizes that are not a multiple of group size " + std::to_string(group_size) +
                          " are padded with zero weights to whole groups, as TensorRT-LLM pads them");
  }
  std::filesystem::create_directories(options.out_dir);
  writer.write(options.out_dir / "rank0.safetensors");
  copy_tokenizer_files(options.checkpoint_dir, options.out_dir);
  nlohmann::json j = config.to_json();
  const nlohmann::json source_json = read_json_file(options.checkpoint_dir / "config.json");
  if (source_json.contains("synthetic")) j["synthetic"] = source_json["synthetic"];
  write_json_file(options.out_dir / "config.json", j);
}

}  // namespace llm
