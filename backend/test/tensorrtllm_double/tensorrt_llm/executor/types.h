#pragma once
// Test double of TensorRT-LLM 0.13.0's <tensorrt_llm/executor/types.h>: the declarations the
// llm backend's adapter (backend/src/engine/tensorrtllm/) uses, with the same names, types and
// enumerator values, and nothing else. Written for this project; it is not NVIDIA's header.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tensorrt_llm::executor {

using SizeType32 = std::int32_t;
using FloatType = float;
using TokenIdType = std::int32_t;
using VecTokens = std::vector<TokenIdType>;
using BeamTokens = std::vector<VecTokens>;
using IdType = std::uint64_t;
using IterationType = std::uint64_t;
using RandomSeedType = std::uint64_t;
using VecLogProbs = std::vector<FloatType>;

enum class ModelType { kDECODER_ONLY = 0, kENCODER_ONLY = 1, kENCODER_DECODER = 2 };

enum class BatchingType { kSTATIC = 0, kINFLIGHT = 1 };

enum class CapacitySchedulerPolicy { kMAX_UTILIZATION = 0, kGUARANTEED_NO_EVICT = 1 };

enum class ContextChunkingPolicy { kFIRST_COME_FIRST_SERVED = 0, kEQUAL_PROGRESS = 1 };

struct KvCacheStats {
  SizeType32 maxNumBlocks;
  SizeType32 freeNumBlocks;
  SizeType32 usedNumBlocks;
  SizeType32 tokensPerBlock;
  SizeType32 allocTotalBlocks;
  SizeType32 allocNewBlocks;
  SizeType32 reusedBlocks;
};

struct InflightBatchingStats {
  SizeType32 numScheduledRequests;
  SizeType32 numContextRequests;
  SizeType32 numGenRequests;
  SizeType32 numPausedRequests;
  SizeType32 numCtxTokens;
  SizeType32 microBatchId;
  float avgNumDecodedTokensPerIter;
};

struct IterationStats {
  std::string timestamp;
  IterationType iter;
  double iterLatencyMS;
  double newActiveRequestsQueueLatencyMS;
  SizeType32 numActiveRequests;
  SizeType32 numQueuedRequests;
  SizeType32 numCompletedRequests;
  SizeType32 maxNumActiveRequests;
  std::size_t gpuMemUsage;
  std::size_t cpuMemUsage;
  std::size_t pinnedMemUsage;
  std::optional<KvCacheStats> kvCacheStats;
  std::optional<KvCacheStats> crossKvCacheStats;
  std::optional<InflightBatchingStats> inflightBatchingStats;
};

enum class FinishReason { kNOT_FINISHED = 0, kEND_ID = 1, kSTOP_WORDS = 2, kLENGTH = 3 };

}  // namespace tensorrt_llm::executor
