#include "engine/kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/half.h"

namespace llm {

namespace {

size_t page_size() {
  const long size = ::sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<size_t>(size) : 4096;
}

}  // namespace

size_t KvBlockPool::bytes_per_token(const ModelConfig& config) {
  return static_cast<size_t>(config.num_hidden_layers) * 2 * static_cast<size_t>(config.kv_size()) *
         dtype_size(config.dtype);
}

KvBlockPool::KvBlockPool(const ModelConfig& config, size_t tokens_per_block, size_t blocks)
    : tokens_per_block_(tokens_per_block),
      layers_(static_cast<size_t>(config.num_hidden_layers)),
      kv_heads_(static_cast<size_t>(config.num_key_value_heads)),
      head_size_(static_cast<size_t>(config.head_size)),
      dtype_(config.dtype),
      head_bytes_(head_size_ * dtype_size(dtype_)) {
  if (dtype_ != DType::F32 && dtype_ != DType::F16 && dtype_ != DType::BF16) {
    throw_error("KV cache: activation dtype ", safetensors_name(dtype_), " is not float32, float16 or bfloat16");
  }
  if (tokens_per_block == 0) throw Error("KV cache: tokens_per_block must be at least 1");
  if (blocks == 0) throw Error("KV cache: the pool needs at least one block");
  if (blocks > static_cast<size_t>(INT32_MAX)) throw_error("KV cache: ", blocks, " blocks are more than block ids can name");
  const size_t page = page_size();
  const size_t raw = layers_ * 2 * kv_heads_ * tokens_per_block_ * head_bytes_;
  block_bytes_ = (raw + page - 1) / page * page;  // whole pages, so a free block's pages can be returned
  if (block_bytes_ != 0 && blocks > SIZE_MAX / block_bytes_) throw Error("KV cache: the pool is larger than memory can address");
  mapped_bytes_ = blocks * block_bytes_;
  // Reserved, not committed: pages are committed as positions are written.
  void* memory = ::mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) {
    throw_error("KV cache: cannot reserve ", mapped_bytes_ >> 20, " MiB of address space for ", blocks, " blocks: ",
                std::strerror(errno), " (lower max_tokens_in_paged_kv_cache or kv_cache_memory_bytes)");
  }
  memory_ = static_cast<std::byte*>(memory);
  holders_.assign(blocks, 0);
  published_.resize(blocks);
  for (size_t b = 0; b < blocks; ++b) free_.insert(free_.end(), static_cast<int32_t>(b));
}

KvBlockPool::~KvBlockPool() { ::munmap(memory_, mapped_bytes_); }

size_t KvBlockPool::PrefixKeyHash::operator()(const PrefixKey& key) const {
  // FNV-1a over the prefix id and the tokens: equal keys are compared in full, so collisions only cost time.
  uint64_t hash = 1469598103934665603ull;
  const auto mix = [&hash](uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash ^= (value >> (8 * i)) & 0xFF;
      hash *= 1099511628211ull;
    }
  };
  mix(key.prefix);
  for (int32_t token : key.tokens) mix(static_cast<uint32_t>(token));
  return static_cast<size_t>(hash);
}

int32_t KvBlockPool::allocate() {
  int32_t block = 0;
  if (!free_.empty()) {
    block = *free_.begin();
    free_.erase(free_.begin());
  } else if (!lru_.empty()) {
    block = lru_.front();
    lru_.pop_front();
    Published& entry = published_[static_cast<size_t>(block)];
    index_.erase(entry.key);
    entry = Published{};
  } else {
    throw Error("KV cache: no block is available");
  }
  holders_[static_cast<size_t>(block)] = 1;
  return block;
}

void KvBlockPool::release(int32_t block) {
  uint32_t& holders = holders_.at(static_cast<size_t>(block));
  if (holders == 0) throw_error("KV cache: block ", block, " released more often than it was taken");
  if (--holders > 0) return;
  Published& entry = published_[static_cast<size_t>(block)];
  if (entry.id != kNoPrefix) {
    entry.lru = lru_.insert(lru_.end(), block);
  } else {
    return_pages(block);
    free_.insert(block);
  }
}

void KvBlockPool::return_pages(int32_t block) {
  // Advisory: if the kernel declines, the pages stay committed and are reused as they are.
  ::madvise(block_data(block), block_bytes_, MADV_DONTNEED);
}

std::optional<KvBlockPool::PublishedBlock> KvBlockPool::find(uint64_t prefix, std::span<const int32_t> tokens) const {
  const auto it = index_.find(PrefixKey{prefix, std::vector<int32_t>(tokens.begin(), tokens.end())});
  if (it == index_.end()) return std::nullopt;
  return PublishedBlock{it->second, published_[static_cast<size_t>(it->second)].id};
}

void KvBlockPool::reuse(int32_t block) {
  Published& entry = published_.at(static_cast<size_t>(block));
  if (entry.id == kNoPrefix) throw_error("KV cache: block ", block, " holds no published prefix to reuse");
  if (holders_[static_cast<size_t>(block)]++ == 0) lru_.erase(entry.lru);
  ++reused_;
}

uint64_t KvBlockPool::publish(int32_t block, uint64_t prefix, std::span<const int32_t> tokens) {
  if (tokens.size() != tokens_per_block_) throw_error("KV cache: only full blocks are published, got ", tokens.size(), " tokens");
  Published& entry = published_.at(static_cast<size_t>(block));
  if (entry.id != kNoPrefix) return entry.id;
  PrefixKey key{prefix, std::vector<int32_t>(tokens.begin(), tokens.end())};
  const auto [it, inserted] = index_.try_emplace(key, block);
  if (!inserted) return published_[static_cast<size_t>(it->second)].id;
  entry.id = next_prefix_id_++;
  entry.key = std::move(key);
  return entry.id;
}

kernels::PagedRows KvBlockPool::keys(size_t layer, size_t kv_head, std::span<const int32_t> blocks) const {
  return kernels::PagedRows{memory_ + offset(layer, 0, kv_head), blocks.data(), block_bytes_, tokens_per_block_,
                            head_bytes_, dtype_};
}

kernels::PagedRows KvBlockPool::values(size_t layer, size_t kv_head, std::span<const int32_t> blocks) const {
  return kernels::PagedRows{memory_ + offset(layer, 1, kv_head), blocks.data(), block_bytes_, tokens_per_block_,
                            head_bytes_, dtype_};
}

void KvBlockPool::store(int32_t block, size_t row, size_t layer, const float* key, const float* value) {
  std::byte* data = block_data(block) + row * head_bytes_;
  uint16_t (*const to_half)(float) = dtype_ == DType::BF16 ? f32_to_bf16 : f32_to_fp16;
  for (size_t h = 0; h < kv_heads_; ++h) {
    std::byte* k = data + offset(layer, 0, h);
    std::byte* v = data + offset(layer, 1, h);
    const float* key_head = key + h * head_size_;
    const float* value_head = value + h * head_size_;
    if (dtype_ == DType::F32) {
      std::memcpy(k, key_head, head_bytes_);
      std::memcpy(v, value_head, head_bytes_);
      continue;
    }
    for (size_t i = 0; i < head_size_; ++i) {
      const uint16_t key_bits = to_half(key_head[i]), value_bits = to_half(value_head[i]);
      std::memcpy(k + 2 * i, &key_bits, 2);
      std::memcpy(v + 2 * i, &value_bits, 2);
    }
  }
}

}  // namespace llm
