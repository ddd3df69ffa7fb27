// tokenizer.model: SentencePiece's protobuf, read by the project's own reader, then a model that
// loads must encode and decode without fault.
#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = llm::fuzz::write_scratch_file("tokenizer.model", std::span(data, size));
  try {
    const llm::Tokenizer tokenizer(path);
    const auto ids = tokenizer.encode("Hello world,  caf\xC3\xA9 \xF0\x9F\x98\x80\n\tend", true);
    const std::string text = tokenizer.decode(ids);
    llm::StreamDecoder stream(tokenizer);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    if (streamed != text) __builtin_trap();  // the streamed chunks concatenate to decode()
  } catch (const llm::Error&) {
  }
  return 0;
}
