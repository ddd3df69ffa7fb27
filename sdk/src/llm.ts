// TritonLlmClient: text generation over the tensor interface of NVIDIA's tensorrtllm_backend
// (text_input / max_tokens / stream / ... -> text_output), which this project's backend shares.
import { performance } from 'node:perf_hooks';
import { TritonClient, type TritonClientOptions } from './client.js';
import { cancelledError, invalidArgument, Status, TritonError, type ErrorContext } from './errors.js';
import type { ModelInferRequest } from './generated/inference/ModelInferRequest.js';
import { AsyncQueue, InferStream, type CallOptions } from './stream.js';
import { buildInferRequest, type DataType, type InferInput, type InferResult, type ParameterMap } from './tensors.js';

/** The model `TritonLlmClient` addresses when none is given: `ensemble`, as in NVIDIA's tensorrtllm_backend model repositories. */
export const defaultLlmModel = 'ensemble';

/** `maxTokens` when a request does not say (64, as `llm generate`). */
export const defaultMaxTokens = 64;

/** Options of {@link TritonLlmClient}: the client options plus the model to address. */
export interface TritonLlmClientOptions extends TritonClientOptions {
  /**
   * Model name (default `"ensemble"`, the name NVIDIA's tensorrtllm_backend uses for its
   * text-in/text-out model). This project's model repository calls its model `"llama_fp16"`.
   */
  model?: string | undefined;
  /** Model version (default: the server's choice). */
  modelVersion?: string | undefined;
  /**
   * Send every `generate()` / `stream()` call over one shared `ModelStreamInfer` stream
   * (opened when needed, closed when idle) instead of one stream per call (the default).
   * Cancelling a request on a shared stream cannot cancel the gRPC call (that would end the
   * others too): the request ends locally at once, and when the model declares a `stop` input
   * (this project's backend does, as does tensorrtllm_backend's `tensorrt_llm` model) the SDK
   * also sends a `stop` request with the same id so the server frees it. Calls with per-call
   * `headers` always get their own stream.
   */
  sharedStream?: boolean | undefined;
}

/**
 * One generation request. Only the fields that are set are sent; each maps to the input of the
 * same meaning in tensorrtllm_backend's interface (shown in brackets). Inputs the model does not
 * declare are refused by the server.
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
   * [`return_log_probs`, read from `output_log_probs`]. The model must declare both (this project's
   * backend and tensorrtllm_backend's `tensorrt_llm` model do); otherwise the call fails with
   * `INVALID_ARGUMENT` before anything is sent.
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

/** Per-call options of `generate()` and `stream()`. */
export interface RequestOptions extends CallOptions {}

/**
 * Why generation ended: `stop` (end of sequence or a stop word) or `length` (`maxTokens` reached).
 * This project's backend reports it (response parameter `finish_reason`); for other models the SDK
 * infers it from the token count when the model reports generated tokens (`output_ids`):
 * `length` when it reached `maxTokens`, else `stop`. `unknown` when the model reports neither
 * (e.g. NVIDIA's `ensemble`) or `excludeInputInOutput` is false.
 */
export type FinishReason = 'stop' | 'length' | 'unknown';

/** Token counts, where the server reports them. */
export interface Usage {
  /** Prompt tokens, as this project's backend reports them (response parameter `prompt_tokens`); tensorrtllm_backend's text models do not. */
  promptTokens?: number | undefined;
  /** Generated tokens, counted from `output_ids` when the model has that output. */
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

const configDataTypes: Readonly<Record<string, DataType>> = {
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

type ScalarField = 'maxTokens' | 'temperature' | 'topK' | 'topP' | 'seed' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'minTokens' | 'lengthPenalty' | 'beamWidth' | 'endId' | 'padId' | 'excludeInputInOutput';

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

/** The first row of an output (its last dimension) as numbers; values that are not numbers become NaN. */
function firstRow(result: InferResult, name: string): number[] {
  const output = result.output(name);
  const data = output.data;
  if (!ArrayBuffer.isView(data) && !Array.isArray(data)) return [];
  const last = output.shape.length > 0 ? output.shape[output.shape.length - 1]! : 1;
  return Array.from(data as ArrayLike<unknown>)
    .slice(0, last)
    .map((value) => (typeof value === 'bigint' ? Number(value) : typeof value === 'number' ? value : Number.NaN));
}

/** The first row of `output_ids`, without its -1 padding. */
function firstTokenIds(result: InferResult): number[] {
  return firstRow(result, 'output_ids').filter((id) => id >= 0);
}

function firstText(result: InferResult): string {
  return result.strings('text_output')[0] ?? '';
}

/**
 * Races a shared promise with a caller's abort signal and deadline (the shared work goes on
 * for the others waiting on it).
 */
function raceCall<T>(promise: Promise<T>, signal: AbortSignal, deadline: number | undefined, context: ErrorContext): Promise<T> {
  if (signal.aborted) return Promise.reject(cancelledError(context, signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => done(() => reject(cancelledError(context, signal.reason)));
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(
            () => done(() => reject(new TritonError({ ...context, code: Status.DEADLINE_EXCEEDED, details: 'deadline exceeded', source: 'client' }))),
            Math.max(0, deadline - Date.now()),
          );
    const done = (settle: () => void): void => {
      signal.removeEventListener('abort', onAbort);
      if (timer !== undefined) clearTimeout(timer);
      settle();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => done(() => resolve(value)),
      (error: unknown) => done(() => reject(error)),
    );
  });
}

/** Marker reason for a stream the consumer stopped reading. */
const stoppedReading = Symbol('stopped reading');

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

  /** Iterates the chunks once. */
  [Symbol.asyncIterator](): AsyncIterator<GenerationChunk, undefined> {
    if (this.iterated) throw invalidArgument('a generation stream can be iterated once', { call: 'stream' });
    this.iterated = true;
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

/**
 * Generates text with a Llama (or any) model served through Triton with the tensor interface
 * of NVIDIA's tensorrtllm_backend — its `ensemble` model, or this project's `llm` backend. Also
 * a full {@link TritonClient} (health, metadata, generic `infer()`).
 *
 * Requests are shaped after the model's config, fetched once per model and cached: a leading
 * batch dimension of 1 when `max_batch_size` > 0, each input's datatype as declared, token ids
 * requested when the model has an `output_ids` output. Every request goes through
 * `ModelStreamInfer` (which works for decoupled and non-decoupled models), and ends when Triton
 * flags its final response (`triton_final_response`), so it works alike with NVIDIA's
 * tritonserver and with this project's dev server.
 *
 * ```ts
 * const llm = new TritonLlmClient({ url: 'localhost:8001', model: 'llama_fp16' });
 * const { text } = await llm.generate({ prompt: 'The capital of France is', maxTokens: 16 });
 * llm.close();
 * ```
 */
export class TritonLlmClient extends TritonClient {
  /** The model requests address unless they name another. */
  readonly model: string;
  /** The model version requests address unless they name another (empty: the server's choice). */
  readonly modelVersion: string;
  private readonly modelGiven: boolean;
  private readonly useSharedStream: boolean;
  private readonly infos = new Map<string, Promise<LlmModelInfo>>();
  private shared: InferStream | undefined;

  /** Creates the client; nothing is sent until the first call. */
  constructor(options: TritonLlmClientOptions = {}) {
    super(options);
    this.model = options.model ?? defaultLlmModel;
    this.modelVersion = options.modelVersion ?? '';
    this.modelGiven = options.model !== undefined;
    this.useSharedStream = options.sharedStream ?? false;
  }

  /**
   * Generates text and resolves to it with the finish reason, token usage and timings. The
   * request is not streamed (`stream` is not set), so `text` is the model's whole output.
   *
   * ```ts
   * const result = await llm.generate({ prompt: 'Hello', maxTokens: 32, temperature: 0.7, topP: 0.9 }, { timeoutMs: 30_000 });
   * ```
   */
  async generate(input: string | GenerateOptions, options: RequestOptions = {}): Promise<GenerateResult> {
    const stream = this.start(input, options, false, 'generate');
    return stream.result;
  }

  /**
   * Streams generated text: returns at once, the request starts right away, and the result is
   * an async iterable of chunks (the `text_output` of each response; responses with no new text
   * are skipped) with the final {@link GenerationStream.result}. With this project's backend the
   * chunks concatenate exactly to the text `generate()` gives. A model that cannot stream
   * (neither decoupled nor an ensemble) answers in one chunk.
   */
  stream(input: string | GenerateOptions, options: RequestOptions = {}): GenerationStream {
    return this.start(input, options, true, 'stream');
  }

  /**
   * What the client uses of a model's config (fetched with `ModelConfig` on first use and
   * cached; a failed fetch is not cached).
   */
  async modelInfo(model: string = this.model, options: CallOptions & { version?: string } = {}): Promise<LlmModelInfo> {
    const version = options.version ?? this.modelVersion;
    const key = `${model}\u0000${version}`;
    let info = this.infos.get(key);
    if (!info) {
      const fetchOptions: CallOptions & { version: string } = { version };
      if (options.headers) fetchOptions.headers = options.headers;
      info = this.fetchModelInfo(model, fetchOptions);
      this.infos.set(key, info);
      info.catch(() => this.infos.delete(key));
    }
    const context = this.errorContext('ModelConfig', model);
    return raceCall(info, options.signal ?? new AbortController().signal, this.deadlineOf(options), context);
  }

  /** Closes the client: requests in progress are cancelled, the shared stream too. */
  override close(): void {
    this.shared?.cancel();
    this.shared = undefined;
    super.close();
  }

  private async fetchModelInfo(model: string, options: CallOptions & { version: string }): Promise<LlmModelInfo> {
    let config;
    try {
      config = await this.modelConfig(model, options);
    } catch (error) {
      const unknownModel = error instanceof TritonError && (error.code === Status.NOT_FOUND || /unknown model/i.test(error.details));
      if (error instanceof TritonError && unknownModel && !this.modelGiven && model === defaultLlmModel) {
        throw new TritonError({
          code: error.code,
          details: error.details,
          call: error.call,
          source: error.source,
          target: this.target,
          model,
          cause: error,
          message: `${error.message} (no model was given and the default is "${defaultLlmModel}"; pass { model: NAME }, e.g. "llama_fp16" for this project's model repository)`,
        });
      }
      throw error;
    }
    const inputs: Record<string, DataType> = {};
    for (const input of config.input) {
      const datatype = configDataTypes[input.data_type];
      if (datatype) inputs[input.name] = datatype;
    }
    const platform = config.platform || config.backend;
    const decoupled = config.model_transaction_policy?.decoupled ?? false;
    return {
      name: config.name || model,
      platform,
      maxBatchSize: config.max_batch_size,
      decoupled,
      streaming: 'stream' in inputs && (decoupled || platform === 'ensemble'),
      inputs,
      outputs: config.output.map((o) => o.name),
    };
  }

  private start(input: string | GenerateOptions, options: RequestOptions, streamed: boolean, call: string): GenerationStream {
    const request: GenerateOptions = typeof input === 'string' ? { prompt: input } : input;
    const controller = new AbortController();
    const userSignal = options.signal;
    const onUserAbort = (): void => controller.abort(userSignal?.reason);
    if (userSignal?.aborted) controller.abort(userSignal.reason);
    else userSignal?.addEventListener('abort', onUserAbort, { once: true });
    const chunks = new AsyncQueue<GenerationChunk>();
    const result = this.run(request, options, streamed, call, controller.signal, chunks);
    result.then(
      () => chunks.end(),
      (error: unknown) => chunks.fail(error, error instanceof TritonError && error.cancelled),
    );
    result.finally(() => userSignal?.removeEventListener('abort', onUserAbort)).catch(() => undefined);
    return new GenerationStream(result, chunks, controller);
  }

  private async run(
    request: GenerateOptions,
    options: RequestOptions,
    streamed: boolean,
    call: string,
    signal: AbortSignal,
    chunks: AsyncQueue<GenerationChunk>,
  ): Promise<GenerateResult> {
    const model = request.model ?? this.model;
    const version = request.modelVersion ?? this.modelVersion;
    const context = this.errorContext(call, model, request.id);
    if (typeof request.prompt !== 'string') throw invalidArgument('prompt must be a string', context);
    const deadline = this.deadlineOf(options);
    const infoOptions: CallOptions & { version: string } = { version, signal };
    if (deadline !== undefined) infoOptions.deadline = deadline;
    if (options.headers) infoOptions.headers = options.headers;
    const info = await this.modelInfo(model, infoOptions);
    const streaming = streamed && info.streaming;
    const message = this.buildRequest(request, info, model, version, streaming, call);
    const maxTokens = request.maxTokens ?? defaultMaxTokens;
    const wantsIds = info.outputs.includes('output_ids');

    const stream = this.streamFor(options, deadline);
    return new Promise<GenerateResult>((resolve, reject) => {
      const started = performance.now();
      let firstAt: number | undefined;
      let text = '';
      let index = 0;
      const ids: number[] = [];
      let idsSeen = false;
      const logProbs: number[] = [];
      let id = message.id ?? '';
      let answeringModel = model;
      // Reported by this project's backend as response parameters; other models leave them out.
      let promptTokens: number | undefined;
      let reportedFinish: FinishReason | undefined;
      const sent = stream.send(
        message,
        {
          response: (result) => {
            answeringModel = result.model || answeringModel;
            const reportedPrompt = result.parameters['prompt_tokens'];
            if (typeof reportedPrompt === 'number' || typeof reportedPrompt === 'bigint') promptTokens = Number(reportedPrompt);
            const finish = result.parameters['finish_reason'];
            if (finish === 'stop' || finish === 'length') reportedFinish = finish;
            const piece = result.has('text_output') ? firstText(result) : '';
            let pieceIds: number[] | undefined;
            if (wantsIds && result.has('output_ids')) {
              pieceIds = firstTokenIds(result);
              ids.push(...pieceIds);
              idsSeen = true;
            }
            let pieceLogProbs: number[] | undefined;
            if (request.returnLogProbs && result.has('output_log_probs')) {
              pieceLogProbs = firstRow(result, 'output_log_probs');
              logProbs.push(...pieceLogProbs);
            }
            if (piece !== '') {
              firstAt ??= performance.now();
              text += piece;
              const chunk: GenerationChunk = { text: piece, index: index++ };
              if (pieceIds) chunk.tokenIds = pieceIds;
              if (pieceLogProbs) chunk.logProbs = pieceLogProbs;
              chunks.push(chunk);
            }
          },
          end: () => {
            const finished = performance.now();
            const completionTokens = idsSeen && request.excludeInputInOutput !== false ? ids.length : undefined;
            const usage: Usage = {};
            if (promptTokens !== undefined) usage.promptTokens = promptTokens;
            if (completionTokens !== undefined) usage.completionTokens = completionTokens;
            const outcome: GenerateResult = {
              text,
              finishReason: reportedFinish ?? (completionTokens === undefined ? 'unknown' : completionTokens >= maxTokens ? 'length' : 'stop'),
              usage,
              timings: { ttftMs: (firstAt ?? finished) - started, totalMs: finished - started },
              model: answeringModel,
              id,
            };
            if (idsSeen) outcome.tokenIds = ids;
            if (request.returnLogProbs) outcome.logProbs = logProbs;
            resolve(outcome);
          },
          error: (error) => reject(error.cancelled && signal.reason === stoppedReading ? cancelledError(context, undefined, 'the reader stopped the stream') : error),
        },
        {
          call,
          signal,
          ...(deadline === undefined ? {} : { deadline }),
          ...('stop' in info.inputs ? { onCancel: (requestId: string, s: InferStream) => s.sendDetached(this.stopRequest(info, model, version, requestId)) } : {}),
        },
      );
      id = sent.id;
    });
  }

  private streamFor(options: RequestOptions, deadline: number | undefined): InferStream {
    if (this.useSharedStream && !options.headers) {
      if (!this.shared || this.shared.closed) this.shared = new InferStream(this.streamHost, { autoClose: true });
      return this.shared;
    }
    const streamOptions: CallOptions & { dedicated: boolean } = { dedicated: true };
    if (deadline !== undefined) streamOptions.deadline = deadline;
    if (options.headers) streamOptions.headers = options.headers;
    return new InferStream(this.streamHost, streamOptions);
  }

  private buildRequest(request: GenerateOptions, info: LlmModelInfo, model: string, version: string, streaming: boolean, call: string): ModelInferRequest {
    const batch = info.maxBatchSize > 0;
    const shapeOf = (count: number): number[] => (batch ? [1, count] : [count]);
    const pick = (names: readonly string[]): string => names.find((name) => name in info.inputs) ?? names[0]!;
    const tensor = (name: string, fallback: DataType, data: readonly unknown[]): InferInput =>
      ({ name, datatype: info.inputs[name] ?? fallback, shape: shapeOf(data.length), data }) as InferInput;

    const inputs: InferInput[] = [tensor('text_input', 'BYTES', [request.prompt])];
    const values: Record<ScalarField, number | bigint | boolean | undefined> = {
      maxTokens: request.maxTokens ?? defaultMaxTokens,
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
    for (const [field, names, fallback] of scalarInputs) {
      const value = values[field];
      if (value !== undefined) inputs.push(tensor(pick(names), fallback, [value]));
    }
    if (request.stopWords && request.stopWords.length > 0) inputs.push(tensor('stop_words', 'BYTES', request.stopWords));
    if (request.badWords && request.badWords.length > 0) inputs.push(tensor('bad_words', 'BYTES', request.badWords));
    if (streaming) inputs.push(tensor('stream', 'BOOL', [true]));
    if (request.returnLogProbs) {
      const missing = [!('return_log_probs' in info.inputs) && 'input return_log_probs', !info.outputs.includes('output_log_probs') && 'output output_log_probs'].filter(Boolean);
      if (missing.length > 0) {
        throw invalidArgument(`returnLogProbs: model "${model}" does not declare ${missing.join(' or ')}, so it cannot return log probabilities`, { call, model });
      }
      inputs.push(tensor('return_log_probs', 'BOOL', [true]));
    }
    inputs.push(...(request.inputs ?? []));

    const outputs = ['text_output'];
    if (info.outputs.includes('output_ids')) outputs.push('output_ids');
    if (request.returnLogProbs) outputs.push('output_log_probs');
    const fields: Parameters<typeof buildInferRequest>[0] = { model, modelVersion: version, inputs, outputs };
    if (request.id !== undefined) fields.id = request.id;
    if (request.parameters) fields.parameters = request.parameters;
    return buildInferRequest(fields, call);
  }

  private stopRequest(info: LlmModelInfo, model: string, version: string, id: string): ModelInferRequest {
    const shape = info.maxBatchSize > 0 ? [1, 1] : [1];
    return buildInferRequest({ model, modelVersion: version, id, inputs: [{ name: 'stop', datatype: 'BOOL', shape, data: [true] }] }, 'stop');
  }
}

