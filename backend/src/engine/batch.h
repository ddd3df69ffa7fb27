#pragma once
// One iteration's work for the model: the tokens of every sequence in the batch, where they go in
// the KV cache and which of them produce logits. A plain value the scheduler builds and
// LlamaModel::forward reads; the linear layers run once over all its rows.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace llm {

// Which of a sequence's rows produce logits: none (a prompt chunk that is not the last), the last
// (the next token is sampled from it), or all (perplexity).
enum class LogitRows : uint8_t { None, Last, All };

struct BatchSequence {
  size_t first_row = 0;       // its rows are [first_row, first_row + rows) of Batch::tokens
  size_t rows = 0;
  size_t first_position = 0;  // position of its first row; positions before it are in the cache
  std::span<const int32_t> blocks;  // block table covering positions [0, first_position + rows)
  LogitRows logits = LogitRows::Last;
};

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<BatchSequence> sequences;

  // Appends a sequence's next tokens, run at positions first_position, first_position + 1, ...
  // `blocks` must stay valid until the forward pass has run.
  void add(std::span<const int32_t> new_tokens, size_t first_position, std::span<const int32_t> blocks,
           LogitRows logits) {
    sequences.push_back({tokens.size(), new_tokens.size(), first_position, blocks, logits});
    tokens.insert(tokens.end(), new_tokens.begin(), new_tokens.end());
  }
  // Rows of logits forward writes: for each sequence in order, none, its last row or all its rows.
  size_t logit_rows() const {
    size_t rows = 0;
    for (const auto& s : sequences) rows += s.logits == LogitRows::All ? s.rows : s.logits == LogitRows::Last ? 1 : 0;
    return rows;
  }
  void clear() {
    tokens.clear();
    sequences.clear();
  }
};

}  // namespace llm
