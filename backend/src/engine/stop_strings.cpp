#include "engine/stop_strings.h"

#include <algorithm>

namespace llm {

StopStringFilter::StopStringFilter(std::vector<std::string> stop_strings) : stop_strings_(std::move(stop_strings)) {
  for (const auto& s : stop_strings_) longest_ = std::max(longest_, s.size());
}

std::string StopStringFilter::accept(std::string delta, bool final) {
  if (stopped_) return {};
  std::string pending = held_back_ + delta;
  held_back_.clear();
  if (longest_ > 0) {
    // Stop strings may straddle deltas: search from where the longest one could have begun.
    const std::string window = text_.substr(text_.size() - std::min(text_.size(), longest_ - 1)) + pending;
    const size_t carried = window.size() - pending.size();
    size_t earliest = std::string::npos;
    for (const auto& s : stop_strings_) earliest = std::min(earliest, window.find(s));
    if (earliest != std::string::npos) {
      // The stop string and what follows are dropped; text before it is emitted. A match always
      // starts inside `pending`: earlier text never ends with a held-back stop-string prefix.
      std::string visible = pending.substr(0, earliest - std::min(earliest, carried));
      text_ += visible;
      stopped_ = true;
      return visible;
    }
    if (!final) {
      // Hold back the longest suffix that could still grow into a stop string.
      size_t hold = 0;
      for (const auto& s : stop_strings_) {
        for (size_t len = std::min(s.size() - 1, pending.size()); len > hold; --len) {
          if (pending.compare(pending.size() - len, len, s, 0, len) == 0) {
            hold = len;
            break;
          }
        }
      }
      held_back_ = pending.substr(pending.size() - hold);
      pending.resize(pending.size() - hold);
    }
  }
  text_ += pending;
  return pending;
}

}  // namespace llm
