#pragma once
// One exception type for every user-facing failure in the engine. Messages say what went wrong,
// where (file, tensor, field) and, where possible, how to fix it. The Triton glue and the CLI
// catch it at their edges; it never crosses the C ABI.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace llm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: throw_error("tensor ", name, ": bad shape").
template <typename... Parts>
[[noreturn]] void throw_error(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  throw Error(out.str());
}

}  // namespace llm
