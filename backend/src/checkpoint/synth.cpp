#include "checkpoint/synth.h"

#include <cmath>
#include <cstring>
#include <functional>

#include "checkpoint/hf_convert.h"
#include "checkpoint/safetensors.h"
#include "common/error.h"
#include "common/half.h"
#include "common/thread_pool.h"
#include "engine/sampling.h"
#include "tokenizer/tokenizer.h"

namespace llm {

namespace {

ModelConfig make_config(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads, int64_t intermediate,
                        int64_t vocab, int64_t context) {
  ModelConfig c;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_size = hidden / heads;
  c.intermediate_size = intermediate;
  c.vocab_size = vocab;
  c.max_position_embeddings = context;
  c.norm_epsilon = 1e-5;
  c.rotary_base = 10000.0;
  return c;
}

uint64_t fnv1a(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : text) h = (h ^ static_cast<uint8_t>(ch)) * 0x100000001b3ull;
  return h;
}

}  // namespace

const std::vector<SynthShape>& synth_shapes() {
  static const std::vector<SynthShape> shapes = {
      {"tiny", "4 layers, hidden 256, 8 heads / 4 KV heads (GQA), Llama-2 vocabulary: for tests",
       make_config(256, 4, 8, 4, 688, 32000, 2048)},
      {"110m", "llama2.c stories110M shape: hidden 768, 12 layers, 12 heads", make_config(768, 12, 12, 12, 2048, 32000, 2048)},
      {"1b", "TinyLlama-1.1B shape: hidden 2048, 22 layers, 32 heads / 4 KV heads",
       make_config(2048, 22, 32, 4, 5632, 32000, 2048)},
      {"7b", "Llama-2-7B shape: hidden 4096, 32 layers, 32 heads", make_config(4096, 32, 32, 32, 11008, 32000, 4096)},
  };
  return shapes;
}

const SynthShape& synth_shape(std::string_view name) {
  std::string valid;
  for (const auto& shape : synth_shapes()) {
    if (shape.name == name) return shape;
    valid += (valid.empty() ? "" : ", ") + shape.name;
  }
  throw_error("unknown shape \"", name, "\"; valid shapes: ", valid);
}

void write_synthetic_checkpoint(const SynthOptions& options) {
  ModelConfig config = synth_shape(options.shape).config;
  config.dtype = options.dtype;
  config.validate("synthetic shape " + options.shape);
  if (options.tokenizer_model.empty() && options.vocab_json.empty()) {
    throw Error("a synthetic checkpoint needs a tokenizer: pass --vocab FILE (the Llama-2 vocabulary JSON that "
                "`npm run setup` exports to build/llama2-vocab.json) or --tokenizer PATH/tokenizer.model");
  }
  if (options.dtype != DType::F32 && options.dtype != DType::F16 && options.dtype != DType::BF16)
    throw Error("synthetic checkpoints are float32, float16 or bfloat16");

  const size_t hidden = static_cast<size_t>(config.hidden_size);
  const size_t inter = static_cast<size_t>(config.intermediate_size);
  const size_t vocab = static_cast<size_t>(config.vocab_size);
  const size_t q_size = static_cast<size_t>(config.q_size());
  const size_t qkv_rows = q_size + 2 * static_cast<size_t>(config.kv_size());
  const double residual_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(config.num_hidden_layers));

  ThreadPool pool(options.threads);
  SafetensorsWriter writer;
  writer.set_metadata("producer", "triton-llm synth");
  const DType dtype = options.dtype;
  const size_t elem = dtype_size(dtype);
  // Uniform values of standard deviation `stddev` (0: all ones, for norm weights). Each block
  // of elements has its own generator seeded from (seed, tensor, block), so the bytes do not
  // depend on the thread count.
  auto add = [&](const std::string& name, std::vector<size_t> shape, double stddev) {
    const uint64_t tensor_seed = options.seed ^ fnv1a(name);
    writer.add(name, dtype, shape, [&pool, tensor_seed, stddev, dtype, elem](std::span<uint8_t> out) {
      constexpr size_t kBlock = 1 << 16;
      const size_t count = out.size() / elem;
      const size_t blocks = (count + kBlock - 1) / kBlock;
      const float amplitude = static_cast<float>(stddev * std::sqrt(3.0));
      pool.run(blocks, [&](size_t block) {
        Rng rng(tensor_seed + 0x9e3779b97f4a7c15ull * (block + 1));
        const size_t begin = block * kBlock;
        const size_t end = std::min(count, begin + kBlock);
        float values[256];
        for (size_t i = begin; i < end; i += 256) {
          const size_t n = std::min<size_t>(256, end - i);
          for (size_t k = 0; k < n; ++k) {
            values[k] = stddev == 0 ? 1.0f : amplitude * static_cast<float>(2.0 * rng.uniform() - 1.0);
          }
          convert_elements(DType::F32, values, dtype, out.data() + i * elem, n);
        }
      });
    });
  };

  add("transformer.vocab_embedding.weight", {vocab, hidden}, 1.0);
  for (size_t i = 0; i < static_cast<size_t>(config.num_hidden_layers); ++i) {
    const std::string p = "transformer.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {hidden}, 0);
    add(p + "attention.qkv.weight", {qkv_rows, hidden}, 1.0 / std::sqrt(static_cast<double>(hidden)));
    add(p + "attention.dense.weight", {hidden, q_size}, residual_scale / std::sqrt(static_cast<double>(q_size)));
    add(p + "post_layernorm.weight", {hidden}, 0);
    add(p + "mlp.fc.weight", {inter, hidden}, 1.0 / std::sqrt(static_cast<double>(hidden)));
    add(p + "mlp.gate.weight", {inter, hidden}, 1.0 / std::sqrt(static_cast<double>(hidden)));
    add(p + "mlp.proj.weight", {hidden, inter}, residual_scale / std::sqrt(static_cast<double>(inter)));
  }
  add("transformer.ln_f.weight", {hidden}, 0);
  // Logits of unit scale: sampled text is varied, greedy text well defined.
  add("lm_head.weight", {vocab, hidden}, 1.0 / std::sqrt(static_cast<double>(hidden)));

  std::filesystem::create_directories(options.out_dir);
  const auto tokenizer_out = options.out_dir / "tokenizer.model";
  if (!options.tokenizer_model.empty()) {
    if (!std::filesystem::exists(options.tokenizer_model))
      throw_error("tokenizer not found: ", options.tokenizer_model.string());
    std::filesystem::copy_file(options.tokenizer_model, tokenizer_out, std::filesystem::copy_options::overwrite_existing);
  } else {
    write_llama2_tokenizer_model(read_vocab_json(options.vocab_json), tokenizer_out);
  }
  const Tokenizer check(tokenizer_out);
  if (check.vocab_size() != config.vocab_size) {
    throw_error("tokenizer ", tokenizer_out.string(), " has ", check.vocab_size(), " pieces but the ", options.shape,
                " shape needs ", config.vocab_size);
  }
  writer.write(options.out_dir / "rank0.safetensors");
  nlohmann::json j = config.to_json();
  j["synthetic"] = {{"shape", options.shape}, {"seed", options.seed}};
  write_json_file(options.out_dir / "config.json", j);
}

}  // namespace llm
