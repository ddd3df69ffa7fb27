#pragma once
// A tiny random Hugging Face Llama checkpoint written by the tests themselves, and an
// independent double-precision forward pass over its Hugging Face tensors (separate q/k/v,
// gate/up/down; rotate-half rotary) to check the converter and the engine against.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/model_config.h"
#include "checkpoint/safetensors.h"
#include "common/half.h"
#include "engine/cpu/llama_model.h"
#include "tokenizer/tokenizer.h"

namespace llm::test {

struct TinyHfModel {
  int hidden = 32, layers = 2, heads = 4, kv_heads = 2, head = 8, inter = 48, vocab = 64, context = 64;
  double eps = 1e-5, theta = 10000.0;
  bool tied = false;
  std::map<std::string, std::vector<float>> tensors;
  std::map<std::string, std::vector<size_t>> shapes;

  // intermediate: e.g. 64 where group-wise int4 needs whole groups of 32 input columns.
  explicit TinyHfModel(uint32_t seed, bool tie = false, int intermediate = 48) : inter(intermediate), tied(tie) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto make = [&](const std::string& name, std::vector<size_t> shape, float scale, float offset = 0.0f) {
      size_t n = 1;
      for (size_t d : shape) n *= d;
      std::vector<float> values(n);
      for (auto& v : values) v = offset + scale * uniform(rng);
      tensors[name] = std::move(values);
      shapes[name] = std::move(shape);
    };
    const size_t h = hidden, q = heads * head, kv = kv_heads * head;
    make("model.embed_tokens.weight", {size_t(vocab), h}, 1.0f);
    for (int l = 0; l < layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      make(p + "input_layernorm.weight", {h}, 0.2f, 1.0f);
      make(p + "self_attn.q_proj.weight", {q, h}, 0.5f);
      make(p + "self_attn.k_proj.weight", {kv, h}, 0.5f);
      make(p + "self_attn.v_proj.weight", {kv, h}, 0.3f);
      make(p + "self_attn.o_proj.weight", {h, q}, 0.3f);
      make(p + "post_attention_layernorm.weight", {h}, 0.2f, 1.0f);
      make(p + "mlp.gate_proj.weight", {size_t(inter), h}, 0.3f);
      make(p + "mlp.up_proj.weight", {size_t(inter), h}, 0.3f);
      make(p + "mlp.down_proj.weight", {h, size_t(inter)}, 0.3f);
    }
    make("model.norm.weight", {h}, 0.2f, 1.0f);
    if (!tied) make("lm_head.weight", {size_t(vocab), h}, 0.4f);
  }

  nlohmann::json config() const {
    return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", hidden},
            {"intermediate_size", inter}, {"num_hidden_layers", layers}, {"num_attention_heads", heads},
            {"num_key_value_heads", kv_heads}, {"vocab_size", vocab}, {"max_position_embeddings", context},
            {"rms_norm_eps", eps}, {"rope_theta", theta}, {"hidden_act", "silu"}, {"tie_word_embeddings", tied},
            {"torch_dtype", "float32"}};
  }

  // Writes config.json and the weights, in one file or split over `shards` files with an index.
  void write(const std::filesystem::path& dir, int shards = 1) const {
    std::filesystem::create_directories(dir);
    write_json_file(dir / "config.json", config());
    std::vector<SafetensorsWriter> writers(static_cast<size_t>(shards));
    nlohmann::json weight_map = nlohmann::json::object();
    size_t i = 0;
    for (const auto& [name, values] : tensors) {
      const size_t shard = i++ % static_cast<size_t>(shards);
      writers[shard].add_copy(name, DType::F32, shapes.at(name),
                              {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)});
      weight_map[name] = "model-0000" + std::to_string(shard + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    }
    if (shards == 1) {
      writers[0].write(dir / "model.safetensors");
      return;
    }
    for (size_t s = 0; s < writers.size(); ++s)
      writers[s].write(dir / ("model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors"));
    write_json_file(dir / "model.safetensors.index.json", {{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}});
  }

  // Logits for every position of `tokens` (full causal attention), in double. Keys and values are
  // rounded to kv_dtype first, as the engine's KV cache stores them for checkpoints of that dtype.
  std::vector<std::vector<double>> reference_logits(const std::vector<int>& tokens, DType kv_dtype = DType::F32) const {
    const size_t n = tokens.size(), h = hidden;
    auto w = [&](const std::string& name) -> const std::vector<float>& { return tensors.at(name); };
    auto matvec = [](const std::vector<float>& m, const std::vector<double>& x, size_t rows) {
      std::vector<double> y(rows, 0.0);
      const size_t cols = x.size();
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) y[r] += double(m[r * cols + c]) * x[c];
      return y;
    };
    auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& weight) {
      double ss = 0;
      for (double v : x) ss += v * v;
      const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
      std::vector<double> y(x.size());
      for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * weight[i];
      return y;
    };
    auto rope = [&](std::vector<double>& v, size_t n_heads, size_t pos) {
      const size_t half = size_t(head) / 2;
      for (size_t hh = 0; hh < n_heads; ++hh) {
        for (size_t i = 0; i < half; ++i) {
          const double freq = std::pow(theta, -2.0 * double(i) / double(head));
          const double c = std::cos(double(pos) * freq), s = std::sin(double(pos) * freq);
          double& a = v[hh * head + i];
          double& b = v[hh * head + i + half];
          const double a0 = a, b0 = b;
          a = a0 * c - b0 * s;
          b = b0 * c + a0 * s;
        }
      }
    };
    std::vector<std::vector<double>> x(n, std::vector<double>(h));
    for (size_t t = 0; t < n; ++t)
      for (size_t i = 0; i < h; ++i) x[t][i] = w("model.embed_tokens.weight")[size_t(tokens[t]) * h + i];
    for (int l = 0; l < layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (size_t t = 0; t < n; ++t) {
        const auto hn = rmsnorm(x[t], w(p + "input_layernorm.weight"));
        q[t] = matvec(w(p + "self_attn.q_proj.weight"), hn, size_t(heads * head));
        k[t] = matvec(w(p + "self_attn.k_proj.weight"), hn, size_t(kv_heads * head));
        v[t] = matvec(w(p + "self_attn.v_proj.weight"), hn, size_t(kv_heads * head));
        rope(q[t], size_t(heads), t);
        rope(k[t], size_t(kv_heads), t);
        for (auto* row : {&k[t], &v[t]}) {
          for (double& value : *row) {
            const auto f = static_cast<float>(value);
            if (kv_dtype == DType::F16) value = fp16_to_f32(f32_to_fp16(f));
            if (kv_dtype == DType::BF16) value = bf16_to_f32(f32_to_bf16(f));
          }
        }
      }
      for (size_t t = 0; t < n; ++t) {
        std::vector<double> attn(size_t(heads * head), 0.0);
        for (int hh = 0; hh < heads; ++hh) {
          const int g = hh / (heads / kv_heads);
          std::vector<double> scores(t + 1);
          double mx = -1e300;
          for (size_t j = 0; j <= t; ++j) {
            double s = 0;
            for (int d = 0; d < head; ++d) s += q[t][size_t(hh * head + d)] * k[j][size_t(g * head + d)];
            scores[j] = s / std::sqrt(double(head));
            mx = std::max(mx, scores[j]);
          }
          double total = 0;
          for (auto& s : scores) total += (s = std::exp(s - mx));
          for (size_t j = 0; j <= t; ++j)
            for (int d = 0; d < head; ++d) attn[size_t(hh * head + d)] += scores[j] / total * v[j][size_t(g * head + d)];
        }
        const auto o = matvec(w(p + "self_attn.o_proj.weight"), attn, h);
        for (size_t i = 0; i < h; ++i) x[t][i] += o[i];
        const auto hn = rmsnorm(x[t], w(p + "post_attention_layernorm.weight"));
        auto gate = matvec(w(p + "mlp.gate_proj.weight"), hn, size_t(inter));
        const auto up = matvec(w(p + "mlp.up_proj.weight"), hn, size_t(inter));
        for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
        const auto down = matvec(w(p + "mlp.down_proj.weight"), gate, h);
        for (size_t i = 0; i < h; ++i) x[t][i] += down[i];
      }
    }
    std::vector<std::vector<double>> logits(n);
    const auto& head_w = tied ? w("model.embed_tokens.weight") : w("lm_head.weight");
    for (size_t t = 0; t < n; ++t) logits[t] = matvec(head_w, rmsnorm(x[t], w("model.norm.weight")), size_t(vocab));
    return logits;
  }
};

// Largest |a - b| over all logits, relative to the largest |b|.
inline double relative_error(const std::vector<float>& engine, const std::vector<std::vector<double>>& reference) {
  double max_diff = 0, max_ref = 0;
  const size_t vocab = reference[0].size();
  for (size_t t = 0; t < reference.size(); ++t) {
    for (size_t i = 0; i < vocab; ++i) {
      max_diff = std::max(max_diff, std::abs(double(engine[t * vocab + i]) - reference[t][i]));
      max_ref = std::max(max_ref, std::abs(reference[t][i]));
    }
  }
  return max_diff / max_ref;
}

// Logits of every position of `tokens`, run as one prefill from an empty cache.
inline std::vector<float> all_logits(LlamaModel& model, const std::vector<int>& tokens) {
  std::vector<float> logits(tokens.size() * size_t(model.config().vocab_size));
  const std::vector<int32_t> ids(tokens.begin(), tokens.end());
  model.forward_prompt(ids, logits, true);
  return logits;
}

// A 32000-piece Llama-style vocabulary written without any downloaded file: specials, 256 byte
// pieces, then made-up pieces. Returns the tokenizer.model path.
inline std::filesystem::path write_fake_llama_tokenizer(const std::filesystem::path& dir) {
  std::map<std::string, int32_t> vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  char name[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  for (int id = 259; id < 32000; ++id) vocab["\xE2\x96\x81p" + std::to_string(id)] = id;
  const auto path = dir / "tokenizer.model";
  write_llama2_tokenizer_model(vocab, path);
  return path;
}

}  // namespace llm::test
