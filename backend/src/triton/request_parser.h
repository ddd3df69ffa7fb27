#pragma once
// Turns one Triton request's input tensors into a GenerationRequest: both tensor interfaces of
// NVIDIA's tensorrtllm_backend (text style as its `ensemble`, token style as its
// `tensorrt_llm` model). All validation of client input happens here, once, with errors that
// name the input. No Triton calls, so it is unit-tested alone.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoint/model_config.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"
#include "triton/core/tritonserver.h"
#include "triton/model_settings.h"

namespace llm::triton {

struct InputTensor {
  TRITONSERVER_DataType datatype = TRITONSERVER_TYPE_INVALID;
  std::vector<int64_t> shape;  // as the client sent it, batch dimension included
  std::string data;            // contiguous bytes; BYTES elements are 4-byte-length prefixed
};
using RequestInputs = std::map<std::string, InputTensor>;

// A client error about one input; becomes TRITONSERVER_ERROR_INVALID_ARG.
class InvalidInput : public std::runtime_error {
 public:
  InvalidInput(const std::string& input, const std::string& message)
      : std::runtime_error("input '" + input + "': " + message), input_(input) {}
  const std::string& input() const { return input_; }

 private:
  std::string input_;
};

struct ParsedRequest {
  GenerationRequest generation;
  bool text_style = true;  // text_input given (else input_ids)
  bool stream = false;
  bool exclude_input_in_output = true;
  std::string prompt_text;       // text style: echoed when the input is included in the output
  // Outputs the client asked for by flag, named as in Triton's vLLM backend.
  bool return_finish_reason = false;      // finish_reason
  bool return_num_input_tokens = false;   // num_input_tokens
  bool return_num_output_tokens = false;  // num_output_tokens
  bool stop_request = false;     // `stop` = true: cancel the running request with this id
};

// What a request is checked against.
struct RequestLimits {
  const ModelSettings& settings;
  const Tokenizer& tokenizer;
  int64_t vocab_size = 0;
  int64_t context_tokens = 0;             // bound on prompt + new tokens
  std::vector<int32_t> default_end_ids;   // when the request sends no end_id
};

// Throws InvalidInput.
ParsedRequest parse_request(const RequestInputs& inputs, const RequestLimits& limits);

// Splits a BYTES tensor's Triton layout (4-byte little-endian length, then the bytes, per element).
std::vector<std::string> decode_bytes_elements(const std::string& data, const std::string& input_name);

}  // namespace llm::triton
