#include "triton/request_parser.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/error.h"

namespace llm::triton {

std::vector<std::string> decode_bytes_elements(const std::string& data, const std::string& input_name) {
  std::vector<std::string> elements;
  size_t offset = 0;
  while (offset < data.size()) {
    if (data.size() - offset < 4) throw InvalidInput(input_name, "BYTES element length is cut off");
    uint32_t length = 0;
    std::memcpy(&length, data.data() + offset, 4);
    offset += 4;
    if (length > data.size() - offset)
      throw InvalidInput(input_name, "BYTES element of " + std::to_string(length) + " bytes runs past the tensor's end");
    elements.emplace_back(data.data() + offset, length);
    offset += length;
  }
  return elements;
}

namespace {

// The elements a tensor's shape holds; a negative dimension or a count beyond 64 bits is the
// client's error, named.
int64_t element_count(const std::string& name, const InputTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) throw InvalidInput(name, "has a negative dimension (" + std::to_string(d) + ") in its shape");
    if (d != 0 && n > INT64_MAX / d) throw InvalidInput(name, "has a shape whose element count overflows 64 bits");
    n *= d;
  }
  return n;
}

// The tensor read as numbers of any integer/float dtype (clients differ: INT32 vs UINT32 vs INT64).
std::vector<double> numbers(const std::string& name, const InputTensor& t) {
  const int64_t n = element_count(name, t);
  auto read = [&](auto type_tag) {
    using T = decltype(type_tag);
    // The shape's byte size is compared without overflow: a huge shape with few bytes is a mismatch.
    if (static_cast<uint64_t>(n) > t.data.size() / sizeof(T) || t.data.size() != static_cast<size_t>(n) * sizeof(T))
      throw InvalidInput(name, "holds " + std::to_string(t.data.size()) + " bytes, which does not match its shape");
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, t.data.data() + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
      out[static_cast<size_t>(i)] = static_cast<double>(v);
    }
    return out;
  };
  switch (t.datatype) {
    case TRITONSERVER_TYPE_BOOL: return read(uint8_t{});
    case TRITONSERVER_TYPE_UINT8: return read(uint8_t{});
    case TRITONSERVER_TYPE_UINT16: return read(uint16_t{});
    case TRITONSERVER_TYPE_UINT32: return read(uint32_t{});
    case TRITONSERVER_TYPE_UINT64: return read(uint64_t{});
    case TRITONSERVER_TYPE_INT8: return read(int8_t{});
    case TRITONSERVER_TYPE_INT16: return read(int16_t{});
    case TRITONSERVER_TYPE_INT32: return read(int32_t{});
    case TRITONSERVER_TYPE_INT64: return read(int64_t{});
    case TRITONSERVER_TYPE_FP32: return read(float{});
    case TRITONSERVER_TYPE_FP64: return read(double{});
    default:
      throw InvalidInput(name, "is not a numeric tensor (datatype code " + std::to_string(static_cast<int>(t.datatype)) + ")");
  }
}

class Inputs {
 public:
  explicit Inputs(const RequestInputs& inputs) : inputs_(inputs) {}

  const InputTensor* find(const std::string& name) const {
    const auto it = inputs_.find(name);
    return it == inputs_.end() ? nullptr : &it->second;
  }
  // The first present of several names for the same setting (NVIDIA renamed some).
  const char* present(std::initializer_list<const char*> names) const {
    for (const char* name : names)
      if (find(name)) return name;
    return nullptr;
  }

  double scalar(const std::string& name) const {
    const InputTensor& t = *find(name);
    if (const int64_t n = element_count(name, t); n != 1)
      throw InvalidInput(name, "must hold exactly one value (shape [1] or [1, 1]), got " + std::to_string(n));
    return numbers(name, t)[0];
  }
  bool boolean(const std::string& name) const {
    if (find(name)->datatype != TRITONSERVER_TYPE_BOOL) throw InvalidInput(name, "must be BOOL");
    return scalar(name) != 0;
  }
  int64_t integer(const std::string& name, int64_t min, int64_t max) const {
    const double v = scalar(name);
    if (v != std::floor(v) || v < static_cast<double>(min) || v > static_cast<double>(max)) {
      throw InvalidInput(name, "must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                   "], got " + std::to_string(v));
    }
    return static_cast<int64_t>(v);
  }
  float real(const std::string& name, double min, double max, const char* range_text) const {
    const double v = scalar(name);
    if (!std::isfinite(v) || v < min || v > max) throw InvalidInput(name, std::string("must be ") + range_text + ", got " + std::to_string(v));
    return static_cast<float>(v);
  }
  std::vector<std::string> strings(const std::string& name) const {
    const InputTensor& t = *find(name);
    if (t.datatype != TRITONSERVER_TYPE_BYTES) throw InvalidInput(name, "must be BYTES (strings)");
    auto elements = decode_bytes_elements(t.data, name);
    if (static_cast<int64_t>(elements.size()) != element_count(name, t))
      throw InvalidInput(name, "holds " + std::to_string(elements.size()) + " strings, which does not match its shape");
    for (const auto& element : elements) {
      try {
        validate_utf8(element, name);
      } catch (const Error& e) {
        throw InvalidInput(name, e.what());
      }
    }
    return elements;
  }

 private:
  const RequestInputs& inputs_;
};

// tensorrt_llm's [2, N] word list: flattened ids, then end offsets padded with -1.
std::vector<std::vector<int32_t>> word_list(const Inputs& in, const std::string& name) {
  const InputTensor& t = *in.find(name);
  const auto values = numbers(name, t);
  if (values.size() % 2 != 0 || t.shape.size() < 2 || t.shape[t.shape.size() - 2] != 2)
    throw InvalidInput(name, "must have shape [1, 2, N]: token ids, then end offsets padded with -1");
  const size_t n = values.size() / 2;
  std::vector<std::vector<int32_t>> words;
  size_t begin = 0;
  for (size_t i = 0; i < n; ++i) {
    const double offset = values[n + i];
    if (offset < 0) break;
    if (offset != std::floor(offset) || offset <= static_cast<double>(begin) || offset > static_cast<double>(n))
      throw InvalidInput(name, "offsets must increase strictly and stay within the token row");
    std::vector<int32_t> word;
    for (size_t j = begin; j < static_cast<size_t>(offset); ++j) {
      const double id = values[j];
      // Checked before the cast: a float or 64-bit value out of int32's range would be undefined.
      if (!(id >= static_cast<double>(INT32_MIN) && id <= static_cast<double>(INT32_MAX)) || id != std::floor(id))
        throw InvalidInput(name, "token ids must be integers in int32's range");
      word.push_back(static_cast<int32_t>(id));
    }
    words.push_back(std::move(word));
    begin = static_cast<size_t>(offset);
  }
  return words;
}

// Values a CPU, single-beam engine cannot honour are refused unless left at their neutral value.
void require_neutral(const Inputs& in, const std::string& name, double neutral, const char* why) {
  if (in.find(name) && in.scalar(name) != neutral) throw InvalidInput(name, why);
}

// Text is refused by its size before the tokenizer sees it: tokenizing takes time and memory in
// proportion to the bytes, on the model's execution thread, even for a prompt that cannot fit.
void check_text_bytes(const char* name, size_t bytes, const RequestLimits& limits) {
  const int64_t configured = limits.settings.max_prompt_bytes;
  const int64_t limit = configured > 0 ? configured : limits.context_tokens * kDefaultPromptBytesPerToken;
  if (bytes <= static_cast<size_t>(limit)) return;
  throw InvalidInput(name, "is " + std::to_string(bytes) + " bytes, more than this model's limit of " +
                               std::to_string(limit) + " (parameter max_prompt_bytes" +
                               (configured > 0 ? std::string(")")
                                               : ", by default " + std::to_string(kDefaultPromptBytesPerToken) +
                                                     " bytes per token of the context of " +
                                                     std::to_string(limits.context_tokens) + ")") +
                               ": send less text, or raise max_prompt_bytes in the model's config.pbtxt");
}

size_t total_bytes(const std::vector<std::string>& words) {
  size_t bytes = 0;
  for (const auto& word : words) bytes += word.size();
  return bytes;
}

}  // namespace

ParsedRequest parse_request(const RequestInputs& inputs, const RequestLimits& limits) {
  const ModelSettings& settings = limits.settings;
  const Tokenizer& tokenizer = limits.tokenizer;
  const int64_t vocab_size = limits.vocab_size;
  const int64_t context_tokens = limits.context_tokens;
  const Inputs in(inputs);
  ParsedRequest r;
  GenerationRequest& g = r.generation;

  if (in.find("stop") && in.boolean("stop")) {
    r.stop_request = true;
    return r;
  }

  const bool has_text = in.find("text_input") != nullptr;
  const bool has_ids = in.find("input_ids") != nullptr;
  if (has_text == has_ids) {
    throw InvalidInput(has_text ? "input_ids" : "text_input",
                       "send exactly one of text_input (text style) or input_ids (token style)");
  }
  r.text_style = has_text;
  if (has_text) {
    const auto texts = in.strings("text_input");
    if (texts.size() != 1) throw InvalidInput("text_input", "must hold exactly one prompt, got " + std::to_string(texts.size()));
    r.prompt_text = texts[0];
    if (r.prompt_text.empty()) throw InvalidInput("text_input", "the prompt is empty");
    check_text_bytes("text_input", r.prompt_text.size(), limits);
    g.prompt_ids = tokenizer.encode(r.prompt_text, true);
  } else {
    const auto ids = numbers("input_ids", *in.find("input_ids"));
    size_t length = ids.size();
    if (in.find("input_lengths")) {
      const int64_t given = in.integer("input_lengths", 0, static_cast<int64_t>(ids.size()));
      length = static_cast<size_t>(given);
    }
    if (length == 0) throw InvalidInput("input_ids", "the prompt is empty");
    for (size_t i = 0; i < length; ++i) {
      if (ids[i] != std::floor(ids[i]) || ids[i] < 0 || ids[i] >= static_cast<double>(vocab_size))
        throw InvalidInput("input_ids", "token id " + std::to_string(ids[i]) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
      g.prompt_ids.push_back(static_cast<int32_t>(ids[i]));
    }
  }

  const int64_t prompt = static_cast<int64_t>(g.prompt_ids.size());
  const char* max_tokens_name = in.present({"max_tokens", "request_output_len"});
  if (max_tokens_name == nullptr) throw InvalidInput(r.text_style ? "max_tokens" : "request_output_len", "is required");
  const int64_t room = context_tokens - prompt;
  if (room < 1) {
    throw InvalidInput(r.text_style ? "text_input" : "input_ids",
                       "the prompt is " + std::to_string(prompt) + " tokens, which leaves no room in the context of " +
                           std::to_string(context_tokens) + " tokens");
  }
  const double requested = in.scalar(max_tokens_name);
  if (requested < 1 || requested != std::floor(requested) || requested > static_cast<double>(room)) {
    throw InvalidInput(max_tokens_name, "must be an integer from 1 to " + std::to_string(room) + " (the context of " +
                                            std::to_string(context_tokens) + " tokens minus the prompt's " +
                                            std::to_string(prompt) + "), got " + std::to_string(requested));
  }
  g.max_tokens = static_cast<int32_t>(requested);

  if (const char* name = in.present({"stream", "streaming"})) r.stream = in.boolean(name);
  r.exclude_input_in_output = in.find("exclude_input_in_output") ? in.boolean("exclude_input_in_output")
                                                                  : settings.exclude_input_in_output;

  // Sampling follows TensorRT-LLM: greedy unless top_k or top_p asks for sampling.
  SamplingParams& s = g.sampling;
  int64_t top_k = 0;
  float top_p = 0;
  if (const char* name = in.present({"top_k", "runtime_top_k"})) top_k = in.integer(name, 0, vocab_size);
  if (const char* name = in.present({"top_p", "runtime_top_p"})) top_p = in.real(name, 0, 1, "in [0, 1]");
  s.temperature = in.find("temperature") ? in.real("temperature", 0, 1e6, "a number >= 0") : 1.0f;
  if (top_k == 0 && top_p == 0) {
    s.temperature = 0;
  } else {
    s.top_k = static_cast<int32_t>(top_k);
    s.top_p = top_p == 0 ? 1.0f : top_p;
  }
  if (in.find("repetition_penalty")) s.repetition_penalty = in.real("repetition_penalty", 1e-6, 1e6, "a number > 0");
  if (in.find("presence_penalty")) s.presence_penalty = in.real("presence_penalty", -1e6, 1e6, "a finite number");
  if (in.find("frequency_penalty")) s.frequency_penalty = in.real("frequency_penalty", -1e6, 1e6, "a finite number");
  if (const char* name = in.present({"random_seed", "seed"})) {
    const InputTensor& t = *in.find(name);
    if (element_count(name, t) != 1 || t.data.size() != 8)
      throw InvalidInput(name, "must hold one UINT64 or INT64 value");
    std::memcpy(&s.seed, t.data.data(), 8);
  }
  if (const char* name = in.present({"min_length", "min_tokens"})) g.min_tokens = static_cast<int32_t>(in.integer(name, 0, g.max_tokens));

  if (in.find("end_id")) {
    const int64_t end_id = in.integer("end_id", -1, vocab_size - 1);
    if (end_id >= 0) g.end_ids = {static_cast<int32_t>(end_id)};
  } else {
    g.end_ids = limits.default_end_ids;
  }
  if (in.find("pad_id")) in.integer("pad_id", -1, vocab_size - 1);
  if (in.find("beam_width")) in.integer("beam_width", 1, 1);  // one beam: sampling or greedy
  if (in.find("return_log_probs")) g.return_log_probs = in.boolean("return_log_probs");
  if (in.find("return_finish_reason")) r.return_finish_reason = in.boolean("return_finish_reason");
  if (in.find("return_num_input_tokens")) r.return_num_input_tokens = in.boolean("return_num_input_tokens");
  if (in.find("return_num_output_tokens")) r.return_num_output_tokens = in.boolean("return_num_output_tokens");
  for (const char* name : {"return_context_logits", "return_generation_logits"}) {
    if (in.find(name) && in.boolean(name)) throw InvalidInput(name, "logits outputs are not served by this backend");
  }
  for (const char* name : {"length_penalty", "len_penalty"}) {
    if (in.find(name)) in.real(name, -1e6, 1e6, "a finite number");  // beam search only: no effect with one beam
  }
  if (in.find("early_stopping")) in.boolean("early_stopping");
  if (in.find("beam_search_diversity_rate")) in.real("beam_search_diversity_rate", 0, 1e6, "a number >= 0");
  require_neutral(in, "runtime_top_p_min", 0, "top-p decay is not supported");
  require_neutral(in, "runtime_top_p_decay", 0, "top-p decay is not supported");
  require_neutral(in, "runtime_top_p_reset_ids", 0, "top-p decay is not supported");
  for (const char* name : {"embedding_bias", "embedding_bias_weights"}) {
    if (in.find(name) && element_count(name, *in.find(name)) > 0) throw InvalidInput(name, "embedding bias is not supported");
  }
  if (in.find("embedding_bias_words")) {
    for (const auto& word : in.strings("embedding_bias_words"))
      if (!word.empty()) throw InvalidInput("embedding_bias_words", "embedding bias is not supported");
  }

  // Stop and bad words. Text style: strings; output ends before a stop string. Token style:
  // token sequences, kept in the output as TensorRT-LLM does.
  if (in.find("stop_words")) {
    auto words = in.strings("stop_words");
    check_text_bytes("stop_words", total_bytes(words), limits);
    for (auto& word : words) {
      if (!word.empty()) g.stop_strings.push_back(std::move(word));
    }
  }
  if (in.find("bad_words")) {
    const auto words = in.strings("bad_words");
    check_text_bytes("bad_words", total_bytes(words), limits);
    for (const auto& word : words) {
      if (word.empty()) continue;
      auto ids = tokenizer.encode(word, false);
      if (!ids.empty()) g.bad_token_sequences.push_back(std::move(ids));
    }
  }
  auto check_ids = [&](const char* name, const std::vector<std::vector<int32_t>>& words) {
    for (const auto& word : words)
      for (int32_t id : word)
        if (id < 0 || id >= vocab_size) throw InvalidInput(name, "token id " + std::to_string(id) + " is outside the vocabulary");
  };
  if (in.find("stop_words_list")) {
    g.stop_token_sequences = word_list(in, "stop_words_list");
    check_ids("stop_words_list", g.stop_token_sequences);
  }
  if (in.find("bad_words_list")) {
    auto words = word_list(in, "bad_words_list");
    check_ids("bad_words_list", words);
    g.bad_token_sequences.insert(g.bad_token_sequences.end(), words.begin(), words.end());
  }
  try {
    s.validate();
  } catch (const Error& e) {
    throw InvalidInput("sampling", e.what());
  }
  return r;
}

}  // namespace llm::triton
