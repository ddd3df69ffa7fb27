#pragma once
// The text side of stop strings, shared by both engines: decoded text arrives in deltas; the
// visible text ends before the first occurrence of any stop string, even one that straddles
// deltas. Text that might be the start of a stop string is held back until it is known not to be.
#include <string>
#include <vector>

namespace llm {

class StopStringFilter {
 public:
  // Empty strings are not allowed (the engines reject them with the request).
  explicit StopStringFilter(std::vector<std::string> stop_strings);

  // Returns the newly visible text. `final` (the sequence's last delta) releases what was held
  // back. Once a stop string matched, stopped() is true and later calls return nothing.
  std::string accept(std::string delta, bool final);

  bool stopped() const { return stopped_; }
  // Everything made visible so far.
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stop_strings_;
  size_t longest_ = 0;
  std::string text_;       // text emitted so far
  std::string held_back_;  // decoded text that may be the start of a stop string
  bool stopped_ = false;
};

}  // namespace llm
