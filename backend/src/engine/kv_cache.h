#pragma once
// The CPU engine's paged KV cache: one pool of fixed-size blocks shared by every sequence, as
// TensorRT-LLM's KV cache manager keeps it. A sequence holds a block table (block ids in position
// order); blocks are taken as its tokens are computed and given back the moment it ends, is
// cancelled or is preempted. The scheduler owns the pool and decides who gets blocks; the model
// only reads and writes the blocks a batch names.
//
// Prefix reuse: a full block can be published under the tokens it holds and the prefix before it.
// Another sequence whose tokens match from position 0 takes the same block instead of computing it
// again (the KV of a position depends only on the tokens up to it). Published blocks no sequence
// holds stay cached until the pool needs room, and are evicted least recently used first.
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "checkpoint/model_config.h"
#include "common/dtype.h"
#include "kernels/kernels.h"

namespace llm {

class KvBlockPool {
 public:
  // A pool of `blocks` blocks of `tokens_per_block` positions for the model's layers and KV heads,
  // in its activation dtype (float16 for float16 and quantized checkpoints, bfloat16, float32), as
  // TensorRT-LLM keeps its cache. The memory is reserved, not committed: a block's pages are
  // committed when positions are written to it and returned to the system when it is freed.
  KvBlockPool(const ModelConfig& config, size_t tokens_per_block, size_t blocks);
  ~KvBlockPool();
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // Bytes one position takes in every layer (keys and values), before rounding blocks to pages.
  static size_t bytes_per_token(const ModelConfig& config);

  size_t tokens_per_block() const { return tokens_per_block_; }
  size_t total_blocks() const { return holders_.size(); }
  size_t block_bytes() const { return block_bytes_; }
  DType dtype() const { return dtype_; }
  size_t layers() const { return layers_; }
  size_t kv_heads() const { return kv_heads_; }
  size_t head_size() const { return head_size_; }
  // Blocks for `tokens` positions.
  size_t blocks_for(size_t tokens) const { return (tokens + tokens_per_block_ - 1) / tokens_per_block_; }

  // Blocks held by at least one sequence; published blocks no sequence holds (reusable, evictable);
  // the rest. available_blocks() = cached + free: what allocate() can hand out.
  size_t used_blocks() const { return total_blocks() - available_blocks(); }
  size_t cached_blocks() const { return lru_.size(); }
  size_t free_blocks() const { return free_.size(); }
  size_t available_blocks() const { return free_.size() + lru_.size(); }
  // Blocks sequences took from published prefixes instead of computing them, since the start.
  uint64_t reused_blocks() const { return reused_; }

  // A block for one sequence: the free block with the lowest id (so the committed memory stays
  // compact), else the least recently used cached block, which loses its published prefix.
  // Throws Error when none is available (the scheduler checks available_blocks() first).
  int32_t allocate();
  // The sequence holding `block` lets it go: at no holders a published block becomes cached, any
  // other block free (its pages returned to the system).
  void release(int32_t block);
  // Sequences holding the block (0: cached or free).
  size_t holders(int32_t block) const { return holders_.at(static_cast<size_t>(block)); }

  // Prefix reuse. A prefix is named by the id of its last published block's entry; kNoPrefix is the
  // empty prefix before position 0.
  static constexpr uint64_t kNoPrefix = 0;
  struct PublishedBlock {
    int32_t block;
    uint64_t prefix;  // names the prefix that ends with this block
  };
  // The published block holding `tokens` (one block's worth) right after `prefix`, if any.
  std::optional<PublishedBlock> find(uint64_t prefix, std::span<const int32_t> tokens) const;
  // One more sequence holds a published block found by find() (a cached block stops being evictable).
  void reuse(int32_t block);
  // Publishes a full block a sequence computed, holding `tokens` after `prefix`. Returns the prefix
  // that ends with these tokens: this block's, or that of a block published earlier with the same
  // tokens (this one then stays private to its sequence).
  uint64_t publish(int32_t block, uint64_t prefix, std::span<const int32_t> tokens);

  // Where one KV head's keys (values) of one layer lie for a sequence's block table.
  kernels::PagedRows keys(size_t layer, size_t kv_head, std::span<const int32_t> blocks) const;
  kernels::PagedRows values(size_t layer, size_t kv_head, std::span<const int32_t> blocks) const;
  // Stores one position's key and value (kv_heads x head_size floats each) in row `row` of `block`,
  // rounded to dtype(). It writes only that slot's bytes: threads may store distinct slots at once.
  void store(int32_t block, size_t row, size_t layer, const float* key, const float* value);

 private:
  struct PrefixKey {
    uint64_t prefix;
    std::vector<int32_t> tokens;
    bool operator==(const PrefixKey& other) const = default;
  };
  struct PrefixKeyHash {
    size_t operator()(const PrefixKey& key) const;
  };
  struct Published {
    uint64_t id = kNoPrefix;  // kNoPrefix: not published
    PrefixKey key;
    std::list<int32_t>::iterator lru;  // valid while cached
  };
  // Byte offset of a layer's keys (kv = 0) or values (kv = 1) of one head within a block.
  size_t offset(size_t layer, size_t kv, size_t kv_head) const {
    return ((layer * 2 + kv) * kv_heads_ + kv_head) * tokens_per_block_ * head_bytes_;
  }
  std::byte* block_data(int32_t block) const { return memory_ + static_cast<size_t>(block) * block_bytes_; }
  void return_pages(int32_t block);

  size_t tokens_per_block_;
  size_t layers_;
  size_t kv_heads_;
  size_t head_size_;
  DType dtype_;
  size_t head_bytes_;
  size_t block_bytes_;  // a whole number of pages
  std::byte* memory_ = nullptr;
  size_t mapped_bytes_ = 0;
  std::vector<uint32_t> holders_;      // per block
  std::set<int32_t> free_;             // unpublished blocks nobody holds
  std::list<int32_t> lru_;             // cached blocks, least recently used first
  std::vector<Published> published_;   // per block
  std::unordered_map<PrefixKey, int32_t, PrefixKeyHash> index_;
  uint64_t next_prefix_id_ = kNoPrefix + 1;
  uint64_t reused_ = 0;
};

}  // namespace llm
