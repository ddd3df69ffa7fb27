// One Triton request's input tensors, as a client may send them: any names the backend reads, any
// datatype and shape (the batch dimension included), any bytes, BYTES length prefixes included.
// The parser either builds a request within the model's limits or refuses it with InvalidInput.
//
// Input layout, repeated until the bytes run out: a name index (1 byte), a datatype (1 byte), a
// dimension count (1 byte, at most 4), that many dimensions (2 bytes each, signed), a data length
// (2 bytes), the data.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "fuzz_util.h"
#include "triton/request_parser.h"

namespace {

constexpr const char* kNames[] = {
    "text_input", "input_ids", "input_lengths", "max_tokens", "request_output_len", "bad_words", "stop_words",
    "stop_words_list", "bad_words_list", "end_id", "pad_id", "top_k", "top_p", "runtime_top_k", "runtime_top_p",
    "temperature", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_length", "min_tokens",
    "random_seed", "seed", "beam_width", "stream", "streaming", "stop", "exclude_input_in_output", "return_log_probs",
    "return_context_logits", "return_generation_logits", "embedding_bias_words", "embedding_bias_weights",
    "len_penalty", "early_stopping", "runtime_top_p_decay", "unknown_input"};

uint16_t read_u16(const uint8_t*& data, size_t& size) {
  if (size < 2) {
    size = 0;
    return 0;
  }
  const uint16_t value = static_cast<uint16_t>(data[0] | (data[1] << 8));
  data += 2;
  size -= 2;
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llm::triton;
  RequestInputs inputs;
  while (size >= 3) {
    const std::string name = kNames[data[0] % std::size(kNames)];
    InputTensor tensor;
    tensor.datatype = static_cast<TRITONSERVER_DataType>(data[1] % 15);  // INVALID .. BYTES and BF16
    const size_t dims = data[2] % 5;
    data += 3;
    size -= 3;
    for (size_t d = 0; d < dims; ++d) tensor.shape.push_back(static_cast<int16_t>(read_u16(data, size)));
    const size_t length = std::min<size_t>(read_u16(data, size), size);
    tensor.data.assign(reinterpret_cast<const char*>(data), length);
    data += length;
    size -= length;
    inputs[name] = std::move(tensor);
  }
  static const ModelSettings settings;
  const RequestLimits limits{settings, llm::fuzz::small_tokenizer(), llm::fuzz::small_tokenizer().vocab_size(), 64, {2}};
  try {
    const ParsedRequest parsed = parse_request(inputs, limits);
    if (parsed.stop_request) return 0;
    const auto& g = parsed.generation;
    // What the parser lets through is within the limits it was given.
    if (g.prompt_ids.empty() || g.max_tokens < 1 ||
        static_cast<int64_t>(g.prompt_ids.size()) + g.max_tokens > limits.context_tokens) {
      __builtin_trap();
    }
    for (int32_t id : g.prompt_ids) {
      if (id < 0 || id >= limits.vocab_size) __builtin_trap();
    }
  } catch (const InvalidInput&) {
  } catch (const llm::Error&) {
  }
  return 0;
}
