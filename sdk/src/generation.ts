// What the gRPC client (llm.ts) and the fetch client (http/) share: generation options and
// results, the stream of chunks, and how a model's config shapes requests. No Node.js modules.
import { AsyncQueue } from './async-queue.js';
import { invalidArgument } from './errors.js';
import type { DataType, InferInput, ParameterMap } from './tensors.js';

/** The model `TritonLlmClient` addresses when none is given: `ensemble`, as in NVIDIA's tensorrtllm_backend model repositories. */
export const defaultLlmModel = 'ensemble';

/** `maxTokens` when a request does not say (64, as `llm generate`). */
export const defaultMaxTokens = 64;

/**
 * One generation request. Only the fields that are set are sent; each maps to the input of the
 * same meaning in tensorrtllm_backend's interface (shown in brackets). Inputs the model does not
 * declare are refused by the server. A model that takes a `sampling_parameters` JSON input and no
 * `max_tokens` (Triton's vLLM backend) gets there every option without an input of its own, by
 * vLLM's names (`max_tokens`, `temperature`, `top_k`, `top_p`, `seed`, `stop`, `bad_words`,
 * `min_tokens`, `stop_token_ids` for `endId`, ...); vLLM's defaults then apply (it samples at
 * temperature 1 unless `temperature: 0`).
 */
export interface GenerateOptions {
  /** The prompt [`text_input`]. */
  prompt: string;
  /** Tokens to generate at most [`max_tokens`] (default 64). */
  maxTokens?: number | undefined;
  /** Sampling temperature [`temperature`]; applies when `topK` or `topP` asks for sampling. */
  temperature?: number | undefined;
  /** Sample from the k most likely tokens [`top_k`]; 0 = off. Greedy when neither `topK` nor `topP` is set. */
  topK?: number | undefined;
  /** Nucleus sampling threshold [`top_p`]; 0 = off. */
  topP?: number | undefined;
  /** Sampling seed [`random_seed`, or `seed` when the model names it so]. */
  seed?: number | bigint | undefined;
  /** Strings that end generation; the output ends before them [`stop_words`]. */
  stopWords?: readonly string[] | undefined;
  /** Words never to generate [`bad_words`]. */
  badWords?: readonly string[] | undefined;
  /** Repetition penalty [`repetition_penalty`]; 1 = off. */
  repetitionPenalty?: number | undefined;
  /** Presence penalty [`presence_penalty`]. */
  presencePenalty?: number | undefined;
  /** Frequency penalty [`frequency_penalty`]. */
  frequencyPenalty?: number | undefined;
  /** Tokens to generate at least [`min_length`, or `min_tokens`]. */
  minTokens?: number | undefined;
  /** Length penalty for beam search [`length_penalty`]. */
  lengthPenalty?: number | undefined;
  /** Beams [`beam_width`]; results carry the first beam. */
  beamWidth?: number | undefined;
  /** End-of-sequence token id [`end_id`]. */
  endId?: number | undefined;
  /** Padding token id [`pad_id`]. */
  padId?: number | undefined;
  /** `false` makes a non-streamed `text` start with the prompt [`exclude_input_in_output`]. */
  excludeInputInOutput?: boolean | undefined;
  /**
   * Return the log probability of each generated token (`logProbs` of the result and chunks)
   * [`return_log_probs`, read from `output_log_probs`, as this project's backend and
   * tensorrtllm_backend's `tensorrt_llm` model declare them; or vLLM's `return_logprobs` with
   * `logprobs: 0` in `sampling_parameters`, read from `logprobs`]. A model with neither fails the
   * call with `INVALID_ARGUMENT` before anything is sent.
   */
  returnLogProbs?: boolean | undefined;
  /** Model for this request (default: the client's). */
  model?: string | undefined;
  /** Model version for this request (default: the client's). */
  modelVersion?: string | undefined;
  /** Request id (default: a unique one). */
  id?: string | undefined;
  /** More input tensors, sent as given (include the batch dimension when the model batches). */
  inputs?: readonly InferInput[] | undefined;
  /** Request parameters (e.g. Triton's `priority`). */
  parameters?: ParameterMap | undefined;
}

/**
 * Why generation ended: `stop` (end of sequence or a stop word) or `length` (`maxTokens` reached),
 * as the model reports it in its `finish_reason` output (this project's backend and Triton's vLLM
 * backend, asked with `return_finish_reason`). For other models the SDK infers it from the token
 * count when the model reports generated tokens (`output_ids`): `length` when it reached
 * `maxTokens`, else `stop`. `unknown` when the model reports neither (e.g. NVIDIA's `ensemble`) or
 * `excludeInputInOutput` is false.
 */
export type FinishReason = 'stop' | 'length' | 'unknown';

/** Token counts, where the server reports them. */
export interface Usage {
  /** Prompt tokens, from the model's `num_input_tokens` output (this project's backend, Triton's vLLM backend). */
  promptTokens?: number | undefined;
  /** Generated tokens: the model's `num_output_tokens` outputs summed, else counted from `output_ids`. */
  completionTokens?: number | undefined;
}

/** Client-side timings of a request, measured from the moment it is sent. */
export interface Timings {
  /** Until the first response carrying text (for a non-streamed request: the whole text). */
  ttftMs: number;
  /** Until the final response. */
  totalMs: number;
}

/** The outcome of `generate()`, and of a `stream()` once it has ended. */
export interface GenerateResult {
  /** The generated text (streamed: the chunks concatenated). */
  text: string;
  /** Why generation ended; see {@link FinishReason}. */
  finishReason: FinishReason;
  /** Token counts the server reported. */
  usage: Usage;
  /** Client-side timings. */
  timings: Timings;
  /** Generated token ids, when the model reports `output_ids`. */
  tokenIds?: number[] | undefined;
  /** Log probability of each generated token (natural log), with `returnLogProbs`. */
  logProbs?: number[] | undefined;
  /** The model that answered. */
  model: string;
  /** The request id. */
  id: string;
}

/** One piece of streamed text: the `text_output` of one response. */
export interface GenerationChunk {
  /** The new text. */
  text: string;
  /** 0 for the first chunk, then 1, 2, ... */
  index: number;
  /** The new token ids, when the model reports `output_ids`. */
  tokenIds?: number[] | undefined;
  /** Their log probabilities, with `returnLogProbs`. */
  logProbs?: number[] | undefined;
}

/** What the client learned from a model's config, which decides how requests are shaped. */
export interface LlmModelInfo {
  /** Model name. */
  name: string;
  /** Platform (`"ensemble"`) or backend (`"llm"`, `"tensorrtllm"`, `"python"`). */
  platform: string;
  /** `max_batch_size`: when > 0, every tensor gets a leading batch dimension of 1. */
  maxBatchSize: number;
  /** Whether the model is decoupled (may send many responses per request). */
  decoupled: boolean;
  /** Whether `stream()` asks for streamed responses (`stream` = true): the model declares a `stream` input and is decoupled or an ensemble. */
  streaming: boolean;
  /** Declared inputs and their datatypes. */
  inputs: Readonly<Record<string, DataType>>;
  /** Declared outputs. */
  outputs: readonly string[];
}

export const configDataTypes: Readonly<Record<string, DataType>> = {
  TYPE_BOOL: 'BOOL',
  TYPE_UINT8: 'UINT8',
  TYPE_UINT16: 'UINT16',
  TYPE_UINT32: 'UINT32',
  TYPE_UINT64: 'UINT64',
  TYPE_INT8: 'INT8',
  TYPE_INT16: 'INT16',
  TYPE_INT32: 'INT32',
  TYPE_INT64: 'INT64',
  TYPE_FP16: 'FP16',
  TYPE_BF16: 'BF16',
  TYPE_FP32: 'FP32',
  TYPE_FP64: 'FP64',
  TYPE_STRING: 'BYTES',
};

export type ScalarField = 'maxTokens' | 'temperature' | 'topK' | 'topP' | 'seed' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'minTokens' | 'lengthPenalty' | 'beamWidth' | 'endId' | 'padId' | 'excludeInputInOutput';

/** Option -> input names (first declared one wins) and the datatype when the config does not say. */
const scalarInputs: readonly (readonly [ScalarField, readonly string[], DataType])[] = [
  ['maxTokens', ['max_tokens'], 'INT32'],
  ['temperature', ['temperature'], 'FP32'],
  ['topK', ['top_k'], 'INT32'],
  ['topP', ['top_p'], 'FP32'],
  ['seed', ['random_seed', 'seed'], 'UINT64'],
  ['repetitionPenalty', ['repetition_penalty'], 'FP32'],
  ['presencePenalty', ['presence_penalty'], 'FP32'],
  ['frequencyPenalty', ['frequency_penalty'], 'FP32'],
  ['minTokens', ['min_length', 'min_tokens'], 'INT32'],
  ['lengthPenalty', ['length_penalty'], 'FP32'],
  ['beamWidth', ['beam_width'], 'INT32'],
  ['endId', ['end_id'], 'INT32'],
  ['padId', ['pad_id'], 'INT32'],
  ['excludeInputInOutput', ['exclude_input_in_output'], 'BOOL'],
];

/** The request's value for each scalar option (undefined where it gives none; no defaults applied). */
function scalarValues(request: GenerateOptions): Record<ScalarField, number | bigint | boolean | undefined> {
  return {
    maxTokens: request.maxTokens,
    temperature: request.temperature,
    topK: request.topK,
    topP: request.topP,
    seed: request.seed,
    repetitionPenalty: request.repetitionPenalty,
    presencePenalty: request.presencePenalty,
    frequencyPenalty: request.frequencyPenalty,
    minTokens: request.minTokens,
    lengthPenalty: request.lengthPenalty,
    beamWidth: request.beamWidth,
    endId: request.endId,
    padId: request.padId,
    excludeInputInOutput: request.excludeInputInOutput,
  };
}

/**
 * Outputs a model sends only when a boolean input of its own asks for them (flag -> output), named
 * as Triton's vLLM backend names them; this project's backend declares them too. The SDK sets every
 * flag whose output the model declares.
 */
export const usageOutputs: readonly (readonly [flag: string, output: string])[] = [
  ['return_finish_reason', 'finish_reason'],
  ['return_num_input_tokens', 'num_input_tokens'],
  ['return_num_output_tokens', 'num_output_tokens'],
];

/** The usage flags and outputs a model declares. */
export function declaredUsageOutputs(info: LlmModelInfo): (readonly [flag: string, output: string])[] {
  return usageOutputs.filter(([flag, output]) => flag in info.inputs && info.outputs.includes(output));
}

/** Where a model's per-token log probabilities come from, with the flag that asks for them. */
export interface LogProbsSource {
  flag: 'return_log_probs' | 'return_logprobs';
  /** `output_log_probs` (FP32, tensorrtllm_backend and this project's backend) or `logprobs` (JSON text, Triton's vLLM backend). */
  output: 'output_log_probs' | 'logprobs';
}

/** How `returnLogProbs` is asked of this model; throws `INVALID_ARGUMENT` when it cannot be. */
export function logProbsSource(info: LlmModelInfo, model: string, call: string): LogProbsSource {
  if ('return_log_probs' in info.inputs && info.outputs.includes('output_log_probs')) return { flag: 'return_log_probs', output: 'output_log_probs' };
  if ('return_logprobs' in info.inputs && info.outputs.includes('logprobs') && 'sampling_parameters' in info.inputs) {
    return { flag: 'return_logprobs', output: 'logprobs' };
  }
  throw invalidArgument(
    `returnLogProbs: model "${model}" declares neither input return_log_probs with output output_log_probs (tensorrtllm_backend) nor ` +
      'input return_logprobs with output logprobs (vLLM), so it cannot return log probabilities',
    { call, model },
  );
}

/**
 * The log probability of each new token from a `logprobs` output of Triton's vLLM backend: a JSON
 * list with one `{token_id: {logprob, rank, decoded_token}}` object per token, holding only the
 * sampled token when the request asked for `logprobs: 0`. Anything else yields no numbers.
 */
export function vllmLogProbs(text: string): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.map((position: unknown) => {
    const entries = position !== null && typeof position === 'object' ? Object.values(position) : [];
    const first: unknown = entries[0];
    const logprob = first !== null && typeof first === 'object' ? (first as { logprob?: unknown }).logprob : undefined;
    return typeof logprob === 'number' ? logprob : Number.NaN;
  });
}

/** Options that go into Triton's vLLM backend's `sampling_parameters` JSON, by vLLM's `SamplingParams` names. */
const samplingParameterNames: Partial<Record<ScalarField, string>> = {
  maxTokens: 'max_tokens',
  temperature: 'temperature',
  topK: 'top_k',
  topP: 'top_p',
  seed: 'seed',
  repetitionPenalty: 'repetition_penalty',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  minTokens: 'min_tokens',
  lengthPenalty: 'length_penalty',
};

/** JSON the SDK sends. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** An option sent as an input of its own. */
export interface ScalarInput {
  field: ScalarField;
  /** The names its input goes by (tensorrtllm_backend's first). */
  names: readonly string[];
  /** The one the model declares, else the first. */
  input: string;
  declared: boolean;
  /** The declared datatype, else the usual one. */
  datatype: DataType;
  value: number | bigint | boolean;
}

/** A word list sent as an input of its own. */
export interface WordsInput {
  field: 'stopWords' | 'badWords';
  input: 'stop_words' | 'bad_words';
  declared: boolean;
  list: readonly string[];
}

/** What a request sends besides its prompt, flags and extra inputs: decided once, for either transport. */
export interface RequestPlan {
  /**
   * For a model that takes its sampling options as one JSON text (`sampling_parameters`, Triton's
   * vLLM backend) and does not declare `max_tokens`: that JSON, holding every option whose own
   * input the model does not declare (and `logprobs: 0` when log probabilities are asked for).
   */
  samplingParameters: string | undefined;
  scalars: ScalarInput[];
  words: WordsInput[];
}

export function planRequest(request: GenerateOptions, info: LlmModelInfo, model: string, call: string, logProbs: boolean): RequestPlan {
  const values = scalarValues(request);
  const defaulted = values.maxTokens === undefined;
  values.maxTokens ??= defaultMaxTokens;
  const vllm = 'sampling_parameters' in info.inputs && !('max_tokens' in info.inputs);
  const json: Record<string, JsonValue> = {};
  const plan: RequestPlan = { samplingParameters: undefined, scalars: [], words: [] };
  for (const [field, names, fallback] of scalarInputs) {
    const value = values[field];
    if (value === undefined) continue;
    const declared = names.find((input) => input in info.inputs);
    const jsonName = samplingParameterNames[field];
    if (vllm && declared === undefined && jsonName !== undefined) {
      if (typeof value === 'bigint' && value > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw invalidArgument(`${field}: ${value} is too large to send in sampling_parameters`, { call, model });
      }
      json[jsonName] = typeof value === 'bigint' ? Number(value) : value;
    } else if (vllm && field === 'endId' && declared === undefined) {
      json['stop_token_ids'] = [Number(value)];
    } else if (declared !== undefined || !(field === 'maxTokens' && defaulted)) {
      // (the default max_tokens goes only to a model that takes it)
      const input = declared ?? names[0]!;
      plan.scalars.push({ field, names, input, declared: declared !== undefined, datatype: info.inputs[input] ?? fallback, value });
    }
  }
  const words = [['stopWords', request.stopWords, 'stop_words', 'stop'], ['badWords', request.badWords, 'bad_words', 'bad_words']] as const;
  for (const [field, list, input, jsonName] of words) {
    if (!list || list.length === 0) continue;
    if (vllm && !(input in info.inputs)) json[jsonName] = [...list];
    else plan.words.push({ field, input, declared: input in info.inputs, list });
  }
  if (vllm) {
    // 0: the sampled token's log probability only, no alternatives.
    if (logProbs) json['logprobs'] = 0;
    plan.samplingParameters = JSON.stringify(json);
  }
  return plan;
}

/** Usage and finish reason as a model reports them over a request's responses. */
export class ReportedUsage {
  promptTokens: number | undefined;
  completionTokens: number | undefined;
  finishReason: 'stop' | 'length' | undefined;

  /** A response's `finish_reason` (empty, or vLLM's "None", until the last response). */
  takeFinishReason(value: unknown): void {
    if (value === 'stop' || value === 'length') this.finishReason = value;
  }

  /** A response's `num_input_tokens`. */
  takePromptTokens(value: unknown): void {
    const count = Number(value);
    if (Number.isSafeInteger(count) && count >= 0) this.promptTokens = count;
  }

  /** A response's `num_output_tokens`: the tokens it adds. */
  addCompletionTokens(value: unknown): void {
    const count = Number(value);
    if (Number.isSafeInteger(count) && count >= 0) this.completionTokens = (this.completionTokens ?? 0) + count;
  }

  /**
   * The request's usage and finish reason once it has ended: what the model reported, else what the
   * client counted (`countedTokens`: new token ids received, undefined when it could not count them).
   */
  summary(countedTokens: number | undefined, maxTokens: number): { usage: Usage; finishReason: FinishReason } {
    const completionTokens = this.completionTokens ?? countedTokens;
    const usage: Usage = {};
    if (this.promptTokens !== undefined) usage.promptTokens = this.promptTokens;
    if (completionTokens !== undefined) usage.completionTokens = completionTokens;
    const finishReason = this.finishReason ?? (completionTokens === undefined ? 'unknown' : completionTokens >= maxTokens ? 'length' : 'stop');
    return { usage, finishReason };
  }
}

/** The parts of a model config that shape requests, named as `modelConfig()` returns them. */
export interface LlmModelConfig {
  name?: string | undefined;
  platform?: string | undefined;
  backend?: string | undefined;
  maxBatchSize?: number | undefined;
  modelTransactionPolicy?: { decoupled?: boolean | undefined } | null | undefined;
  input?: readonly { name: string; dataType: string }[] | undefined;
  output?: readonly { name: string }[] | undefined;
}

/** Those parts of the JSON config of Triton's HTTP endpoint, which keeps the proto field names. */
export function llmModelConfigFromJson(json: unknown): LlmModelConfig {
  const config = (json ?? {}) as {
    name?: string; platform?: string; backend?: string; max_batch_size?: number;
    model_transaction_policy?: { decoupled?: boolean } | null;
    input?: { name: string; data_type: string }[]; output?: { name: string }[];
  };
  return {
    name: config.name,
    platform: config.platform,
    backend: config.backend,
    maxBatchSize: config.max_batch_size,
    modelTransactionPolicy: config.model_transaction_policy,
    input: config.input?.map((input) => ({ name: input.name, dataType: input.data_type })),
    output: config.output,
  };
}

/** What the clients use of a model's config. */
export function llmModelInfo(config: LlmModelConfig, model: string): LlmModelInfo {
  const inputs: Record<string, DataType> = {};
  for (const input of config.input ?? []) {
    const datatype = configDataTypes[input.dataType];
    if (datatype) inputs[input.name] = datatype;
  }
  const platform = config.platform || config.backend || '';
  const decoupled = config.modelTransactionPolicy?.decoupled ?? false;
  return {
    name: config.name || model,
    platform,
    maxBatchSize: config.maxBatchSize ?? 0,
    decoupled,
    streaming: 'stream' in inputs && (decoupled || platform === 'ensemble'),
    inputs,
    outputs: (config.output ?? []).map((o) => o.name),
  };
}

/** Marker reason for a stream the consumer stopped reading. */
export const stoppedReading = Symbol('stopped reading');

/** Chunks `stream()` buffers for a lagging reader before it stops reading from the server. */
export const maxBufferedChunks = 64;

/**
 * The chunks of a streamed generation, read with `for await`, and its final {@link result}.
 * The request starts when `stream()` is called. Leaving the loop early (`break`, `return`, an
 * exception) or aborting the signal cancels the request on the server; an aborted signal makes
 * the loop throw a `CANCELLED` {@link TritonError}, an early exit just ends it.
 *
 * ```ts
 * const s = llm.stream('Once upon a time');
 * for await (const chunk of s) process.stdout.write(chunk.text);
 * const { finishReason, timings } = await s.result;
 * ```
 */
export class GenerationStream implements AsyncIterable<GenerationChunk> {
  /**
   * Resolves when the request has ended, with the same text as the chunks concatenated; rejects
   * with a {@link TritonError} when it fails or is cancelled (also after an early `break`).
   * Awaiting it is optional: a rejection nobody awaits is not reported as unhandled.
   */
  readonly result: Promise<GenerateResult>;
  private readonly chunks: AsyncQueue<GenerationChunk>;
  private readonly controller: AbortController;
  private iterated = false;

  /** Wraps a generation in progress; `TritonLlmClient.stream()` creates these. */
  constructor(result: Promise<GenerateResult>, chunks: AsyncQueue<GenerationChunk>, controller: AbortController) {
    this.result = result;
    this.chunks = chunks;
    this.controller = controller;
    result.catch(() => undefined);
  }

  /** Cancels the request (as aborting its signal would). */
  cancel(reason?: unknown): void {
    this.controller.abort(reason);
  }

  /**
   * Chunks received but not yet read. `stream()` stops reading from the server once
   * {@link maxBufferedChunks} wait (gRPC: HTTP/2 flow control then holds the rest back; fetch: the
   * body is not read, beyond the network read in progress) and reads on when the loop has caught
   * up halfway, so a slow consumer does not fill the client's memory.
   */
  get bufferedChunks(): number {
    return this.chunks.size;
  }

  /**
   * The chunks as a WHATWG `ReadableStream`, for web APIs that take one. It reads the same queue
   * as `for await` (so a slow reader pauses the server the same way), and cancelling it cancels
   * the request. Use one way of reading a stream, once.
   */
  toReadableStream(): ReadableStream<GenerationChunk> {
    return this.webStream((chunk) => chunk);
  }

  /**
   * The generated text as a stream of UTF-8 bytes, ready to be a response body:
   * `return new Response(llm.stream(prompt).toTextStream(), { headers: { 'content-type': 'text/plain; charset=utf-8' } })`.
   * A request that fails mid-way errors the stream (the body ends abruptly).
   */
  toTextStream(): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    return this.webStream((chunk) => encoder.encode(chunk.text));
  }

  private webStream<T>(convert: (chunk: GenerationChunk) => T): ReadableStream<T> {
    const iterator = this[Symbol.asyncIterator]();
    return new ReadableStream<T>(
      {
        async pull(controller) {
          try {
            const next = await iterator.next();
            if (next.done) controller.close();
            else controller.enqueue(convert(next.value));
          } catch (error) {
            controller.error(error);
          }
        },
        async cancel() {
          await iterator.return?.();
        },
      },
      // Nothing read ahead: chunks stay in the queue, where backpressure sees them.
      { highWaterMark: 0 },
    );
  }

  /** Iterates the chunks once. */
  [Symbol.asyncIterator](): AsyncIterator<GenerationChunk, undefined> {
    if (this.iterated) throw invalidArgument('a generation stream can be iterated once', { call: 'stream' });
    this.iterated = true;
    // Backpressure only for a loop: `result` alone must be able to take the whole generation.
    this.chunks.startReading();
    return {
      next: () => this.chunks.next(),
      return: async () => {
        if (!this.chunks.closed) this.controller.abort(stoppedReading);
        this.chunks.discard();
        return { value: undefined, done: true };
      },
    };
  }
}
