// TritonLlmClient: text generation over the tensor interface of NVIDIA's tensorrtllm_backend
// (text_input / max_tokens / stream / ... -> text_output), which this project's backend shares.
import { performance } from 'node:perf_hooks';
import { TritonClient, type TritonClientOptions } from './client.js';
import { cancelledError, invalidArgument, Status, TritonError, type ErrorContext } from './errors.js';
import type { ModelInferRequest } from './generated/inference/ModelInferRequest.js';
import { AsyncQueue } from './async-queue.js';
import {
  declaredUsageOutputs,
  defaultLlmModel,
  defaultMaxTokens,
  GenerationStream,
  llmModelInfo,
  logProbsSource,
  maxBufferedChunks,
  planRequest,
  ReportedUsage,
  stoppedReading,
  vllmLogProbs,
  type GenerateOptions,
  type GenerateResult,
  type GenerationChunk,
  type LlmModelInfo,
  type LogProbsSource,
} from './generation.js';
import { InferStream, type CallOptions } from './stream.js';
import { buildInferRequest, type DataType, type InferInput, type InferResult } from './tensors.js';

export {
  defaultLlmModel,
  defaultMaxTokens,
  GenerationStream,
  maxBufferedChunks,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerationChunk,
  type LlmModelInfo,
  type Timings,
  type Usage,
} from './generation.js';

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

/** Per-call options of `generate()` and `stream()`. */
export interface RequestOptions extends CallOptions {}

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

function firstText(result: InferResult, name = 'text_output'): string {
  return result.strings(name)[0] ?? '';
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
   * cached until this client loads or unloads the model, or {@link forgetModelInfo}; a failed
   * fetch is not cached).
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

  /** Loads (or reloads) a model, then forgets its cached config: the next request fetches the new one. */
  override async loadModel(model: string, options: CallOptions = {}): Promise<void> {
    try {
      await super.loadModel(model, options);
    } finally {
      this.forgetModelInfo(model);
    }
  }

  /** Unloads a model, then forgets its cached config. */
  override async unloadModel(model: string, options: CallOptions = {}): Promise<void> {
    try {
      await super.unloadModel(model, options);
    } finally {
      this.forgetModelInfo(model);
    }
  }

  /**
   * Forgets the cached config of a model (every version), or of every model: for a model that
   * another client reloaded with a changed config.
   */
  forgetModelInfo(model?: string): void {
    for (const key of [...this.infos.keys()]) {
      if (model === undefined || key.startsWith(`${model}\u0000`)) this.infos.delete(key);
    }
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
    return llmModelInfo(config, model);
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
    const logProbsFrom = request.returnLogProbs ? logProbsSource(info, model, call) : undefined;
    const message = this.buildRequest(request, info, model, version, streaming, call, logProbsFrom);
    const maxTokens = request.maxTokens ?? defaultMaxTokens;
    const wantsIds = info.outputs.includes('output_ids');

    const stream = this.streamFor(options, deadline);
    // A stream() whose loop lags stops reading; generate() reads no chunks, so it never pauses.
    if (streamed) {
      chunks.setBackpressure(maxBufferedChunks, (paused) => {
        stream.setPaused(paused);
        this.log('debug', paused ? `${call}: the reader lags; stopped reading` : `${call}: the reader caught up; reading again`, { call, model, buffered: chunks.size });
      });
    }
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
      const reported = new ReportedUsage();
      const sent = stream.send(
        message,
        {
          response: (result) => {
            answeringModel = result.model || answeringModel;
            if (result.has('finish_reason')) reported.takeFinishReason(firstText(result, 'finish_reason'));
            if (result.has('num_input_tokens')) reported.takePromptTokens(firstRow(result, 'num_input_tokens')[0]);
            if (result.has('num_output_tokens')) reported.addCompletionTokens(firstRow(result, 'num_output_tokens')[0]);
            const piece = result.has('text_output') ? firstText(result) : '';
            let pieceIds: number[] | undefined;
            if (wantsIds && result.has('output_ids')) {
              pieceIds = firstTokenIds(result);
              ids.push(...pieceIds);
              idsSeen = true;
            }
            let pieceLogProbs: number[] | undefined;
            if (logProbsFrom && result.has(logProbsFrom.output)) {
              pieceLogProbs = logProbsFrom.output === 'logprobs' ? vllmLogProbs(firstText(result, 'logprobs')) : firstRow(result, 'output_log_probs');
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
            const counted = idsSeen && request.excludeInputInOutput !== false ? ids.length : undefined;
            const outcome: GenerateResult = {
              text,
              ...reported.summary(counted, maxTokens),
              timings: { ttftMs: (firstAt ?? finished) - started, totalMs: finished - started },
              model: answeringModel,
              id,
            };
            if (idsSeen) outcome.tokenIds = ids;
            if (request.returnLogProbs) outcome.logProbs = logProbs;
            resolve(outcome);
          },
          error: (error) =>
            reject((error.cancelled && signal.reason === stoppedReading ? cancelledError(context, undefined, 'the reader stopped the stream') : error).withPartialText(text)),
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

  private buildRequest(request: GenerateOptions, info: LlmModelInfo, model: string, version: string, streaming: boolean, call: string,
    logProbsFrom: LogProbsSource | undefined): ModelInferRequest {
    const batch = info.maxBatchSize > 0;
    const shapeOf = (count: number): number[] => (batch ? [1, count] : [count]);
    const tensor = (name: string, fallback: DataType, data: readonly unknown[]): InferInput =>
      ({ name, datatype: info.inputs[name] ?? fallback, shape: shapeOf(data.length), data }) as InferInput;

    // Options the model does not declare are sent all the same: the server's error names them.
    const plan = planRequest(request, info, model, call, logProbsFrom !== undefined);
    const inputs: InferInput[] = [tensor('text_input', 'BYTES', [request.prompt])];
    if (plan.samplingParameters !== undefined) inputs.push(tensor('sampling_parameters', 'BYTES', [plan.samplingParameters]));
    for (const scalar of plan.scalars) inputs.push(tensor(scalar.input, scalar.datatype, [scalar.value]));
    for (const words of plan.words) inputs.push(tensor(words.input, 'BYTES', words.list));
    if (streaming) inputs.push(tensor('stream', 'BOOL', [true]));
    if (logProbsFrom) inputs.push(tensor(logProbsFrom.flag, 'BOOL', [true]));
    const usage = declaredUsageOutputs(info);
    for (const [flag] of usage) inputs.push(tensor(flag, 'BOOL', [true]));
    inputs.push(...(request.inputs ?? []));

    const outputs = ['text_output'];
    if (info.outputs.includes('output_ids')) outputs.push('output_ids');
    if (logProbsFrom) outputs.push(logProbsFrom.output);
    for (const [, output] of usage) outputs.push(output);
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

