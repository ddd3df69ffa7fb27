// @triton-llm/sdk: a typed client of Triton Inference Server's KServe v2 gRPC protocol, with an
// LLM layer for the tensor interface of NVIDIA's tensorrtllm_backend.

export {
  TritonClient,
  type HeadersProvider,
  type InferRequest,
  type KeepaliveOptions,
  type LoadBalancing,
  type ModelCallOptions,
  type ModelConfig,
  type ModelMetadata,
  type ModelStatistics,
  type RepositoryIndexOptions,
  type RepositoryModel,
  type RetryOptions,
  type ServerMetadata,
  type TensorMetadata,
  type TlsOptions,
  type TritonClientOptions,
} from './client.js';
export {
  defaultLlmModel,
  defaultMaxTokens,
  GenerationStream,
  maxBufferedChunks,
  TritonLlmClient,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerationChunk,
  type LlmModelInfo,
  type RequestOptions,
  type Timings,
  type TritonLlmClientOptions,
  type Usage,
} from './llm.js';
export { InferResponseStream, InferStream, type CallOptions, type HeaderValue, type Headers } from './stream.js';
export { errorKind, Status, statusName, TritonError, type TritonErrorInit, type TritonErrorKind, type TritonErrorSource } from './errors.js';
export {
  dataTypes,
  decodeBytes,
  elementCount,
  encodeBytes,
  InferResult,
  type DataType,
  type InferInput,
  type InferInputOf,
  type InferOutput,
  type InferOutputOf,
  type InputEncoding,
  type ParameterMap,
  type ParameterValue,
  type RequestedOutput,
  type TensorInputData,
  type TensorOutputData,
} from './tensors.js';
