// The paged KV cache's block pool: allocation, release, prefix publication and reuse, eviction,
// where rows lie, and that its memory is committed only while blocks hold tokens.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "common/error.h"
#include "common/half.h"
#include "engine/kv_cache.h"

namespace llm {
namespace {

ModelConfig small_config(DType dtype = DType::F16) {
  ModelConfig config;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_size = 8;
  config.dtype = dtype;
  return config;
}

std::vector<int32_t> tokens(int32_t first, size_t count) {
  std::vector<int32_t> t(count);
  for (size_t i = 0; i < count; ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

TEST(KvBlockPool, HandsOutTheLowestFreeBlockAndTakesItBack) {
  KvBlockPool pool(small_config(), 4, 5);
  EXPECT_EQ(pool.total_blocks(), 5u);
  EXPECT_EQ(pool.blocks_for(0), 0u);
  EXPECT_EQ(pool.blocks_for(4), 1u);
  EXPECT_EQ(pool.blocks_for(5), 2u);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.used_blocks(), 3u);
  EXPECT_EQ(pool.available_blocks(), 2u);
  pool.release(1);
  EXPECT_EQ(pool.holders(1), 0u);
  EXPECT_EQ(pool.allocate(), 1) << "the lowest free id first, so committed memory stays compact";
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), 4);
  EXPECT_EQ(pool.available_blocks(), 0u);
  EXPECT_THROW(pool.allocate(), Error);
  for (int32_t b = 0; b < 5; ++b) pool.release(b);
  EXPECT_EQ(pool.free_blocks(), 5u);
  EXPECT_THROW(pool.release(2), Error) << "released more often than taken";
}

TEST(KvBlockPool, PublishedPrefixesAreFoundByTheirTokensAfterTheSamePrefix) {
  KvBlockPool pool(small_config(), 4, 6);
  const int32_t first = pool.allocate(), second = pool.allocate();
  const uint64_t after_first = pool.publish(first, KvBlockPool::kNoPrefix, tokens(10, 4));
  const uint64_t after_second = pool.publish(second, after_first, tokens(20, 4));
  EXPECT_NE(after_first, KvBlockPool::kNoPrefix);
  EXPECT_NE(after_second, after_first);

  const auto hit = pool.find(KvBlockPool::kNoPrefix, tokens(10, 4));
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->block, first);
  EXPECT_EQ(hit->prefix, after_first);
  ASSERT_TRUE(pool.find(after_first, tokens(20, 4)));
  EXPECT_FALSE(pool.find(KvBlockPool::kNoPrefix, tokens(20, 4))) << "the same tokens at another position are another prefix";
  EXPECT_FALSE(pool.find(KvBlockPool::kNoPrefix, tokens(11, 4)));

  // A second sequence computing the same tokens keeps its block private and continues the chain.
  const int32_t duplicate = pool.allocate();
  EXPECT_EQ(pool.publish(duplicate, KvBlockPool::kNoPrefix, tokens(10, 4)), after_first);
  pool.release(duplicate);
  EXPECT_EQ(pool.free_blocks(), 4u) << "an unpublished block goes back to the free list";

  // Reuse holds the block; when every holder lets go it stays cached, still found.
  pool.reuse(first);
  EXPECT_EQ(pool.holders(first), 2u);
  EXPECT_EQ(pool.reused_blocks(), 1u);
  pool.release(first);
  pool.release(first);
  EXPECT_EQ(pool.holders(first), 0u);
  EXPECT_EQ(pool.cached_blocks(), 1u);
  EXPECT_EQ(pool.available_blocks(), 5u) << "cached blocks can be handed out";
  EXPECT_TRUE(pool.find(KvBlockPool::kNoPrefix, tokens(10, 4)));
  pool.reuse(first);  // taken back from the cache
  EXPECT_EQ(pool.cached_blocks(), 0u);
  EXPECT_EQ(pool.used_blocks(), 2u);
  EXPECT_THROW(pool.publish(pool.allocate(), KvBlockPool::kNoPrefix, tokens(1, 3)), Error) << "only full blocks";
}

TEST(KvBlockPool, CachedBlocksAreEvictedLeastRecentlyUsedFirstWhenTheFreeListIsEmpty) {
  KvBlockPool pool(small_config(), 4, 3);
  std::vector<int32_t> blocks;
  uint64_t prefix = KvBlockPool::kNoPrefix;
  for (int i = 0; i < 3; ++i) {
    blocks.push_back(pool.allocate());
    prefix = pool.publish(blocks.back(), prefix, tokens(10 * i, 4));
  }
  // Released last block first, as the scheduler does: the tail of a prefix is evicted before its head.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) pool.release(*it);
  EXPECT_EQ(pool.cached_blocks(), 3u);
  EXPECT_EQ(pool.allocate(), blocks[2]);
  EXPECT_FALSE(pool.find(pool.find(pool.find(KvBlockPool::kNoPrefix, tokens(0, 4))->prefix, tokens(10, 4))->prefix,
                         tokens(20, 4)))
      << "an evicted block is no longer found";
  EXPECT_TRUE(pool.find(KvBlockPool::kNoPrefix, tokens(0, 4)));
  EXPECT_EQ(pool.allocate(), blocks[1]);
  EXPECT_EQ(pool.allocate(), blocks[0]);
  EXPECT_FALSE(pool.find(KvBlockPool::kNoPrefix, tokens(0, 4)));
}

TEST(KvBlockPool, RowsOfAHeadFollowTheBlockTable) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    SCOPED_TRACE(safetensors_name(dtype));
    const ModelConfig config = small_config(dtype);
    KvBlockPool pool(config, 2, 4);
    const std::vector<int32_t> table = {3, 1};  // positions 0-1 in block 3, 2-3 in block 1
    const size_t kv = 2 * 8;
    for (size_t position = 0; position < 4; ++position) {
      std::vector<float> key(kv), value(kv);
      for (size_t i = 0; i < kv; ++i) {
        key[i] = static_cast<float>(20 * position + i);
        value[i] = -static_cast<float>(20 * position + i);
      }
      pool.store(table[position / 2], position % 2, 1, key.data(), value.data());
    }
    for (size_t head = 0; head < 2; ++head) {
      const kernels::PagedRows keys = pool.keys(1, head, table);
      const kernels::PagedRows values = pool.values(1, head, table);
      EXPECT_EQ(keys.dtype, dtype);
      EXPECT_EQ(keys.tokens_per_block, 2u);
      for (size_t position = 0; position < 4; ++position) {
        const std::byte* key_row = keys.base + static_cast<size_t>(table[position / 2]) * keys.block_stride +
                                   position % 2 * keys.row_stride;
        const std::byte* value_row = values.base + static_cast<size_t>(table[position / 2]) * values.block_stride +
                                     position % 2 * values.row_stride;
        for (size_t i = 0; i < 8; ++i) {
          float k = 0, v = 0;
          if (dtype == DType::F32) {
            std::memcpy(&k, key_row + 4 * i, 4);
            std::memcpy(&v, value_row + 4 * i, 4);
          } else {
            uint16_t kb = 0, vb = 0;
            std::memcpy(&kb, key_row + 2 * i, 2);
            std::memcpy(&vb, value_row + 2 * i, 2);
            k = dtype == DType::F16 ? fp16_to_f32(kb) : bf16_to_f32(kb);
            v = dtype == DType::F16 ? fp16_to_f32(vb) : bf16_to_f32(vb);
          }
          const auto expected = static_cast<float>(20 * position + 8 * head + i);
          EXPECT_EQ(k, expected) << "position " << position << " head " << head;  // small integers are exact in every dtype
          EXPECT_EQ(v, -expected);
        }
      }
    }
  }
}

// This process's resident memory in bytes (the second field of /proc/self/statm, in pages).
size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

TEST(KvBlockPool, MemoryIsCommittedOnlyWhileBlocksHoldTokens) {
  // 64 blocks of 1 MiB: 64 MiB reserved. Writing 32 blocks commits about 32 MiB; releasing them
  // returns it. (Bounds are loose: other allocations of this process move RSS a little.)
  ModelConfig config = small_config(DType::F32);
  config.num_hidden_layers = 8;
  config.num_key_value_heads = 8;
  config.head_size = 64;  // 8 * 2 * 8 * 64 * 4 = 32 KiB per token
  KvBlockPool pool(config, 32, 64);
  ASSERT_EQ(pool.block_bytes(), size_t{1} << 20);
  const size_t start = resident_bytes();
  EXPECT_LT(resident_bytes(), start + (size_t{8} << 20)) << "a new pool commits nothing";
  std::vector<int32_t> blocks;
  const std::vector<float> key(8 * 64, 1.0f), value(8 * 64, 2.0f);
  for (int b = 0; b < 32; ++b) {
    blocks.push_back(pool.allocate());
    for (size_t row = 0; row < 32; ++row) {
      for (size_t layer = 0; layer < 8; ++layer) pool.store(blocks.back(), row, layer, key.data(), value.data());
    }
  }
  const size_t written = resident_bytes();
  EXPECT_GT(written, start + (size_t{28} << 20));
  for (int32_t b : blocks) pool.release(b);
  EXPECT_LT(resident_bytes(), written - (size_t{28} << 20)) << "freed blocks give their pages back";
}

TEST(KvBlockPool, RefusesLayoutsItCannotHold) {
  EXPECT_THROW(KvBlockPool(small_config(), 0, 4), Error);
  EXPECT_THROW(KvBlockPool(small_config(), 4, 0), Error);
  EXPECT_THROW(KvBlockPool(small_config(DType::I8), 4, 4), Error);
}

}  // namespace
}  // namespace llm
