// @triton-llm/sdk/http: generate() and stream() over Triton's HTTP generate extension
// (POST /v2/models/{m}/generate and /generate_stream, Server-Sent Events) with fetch only — no
// Node.js module, no gRPC — so the same calls run on Node, Deno, Bun, edge runtimes and browsers.
import { AsyncQueue } from '../async-queue.js';
import { cancelledError, inBandCode, invalidArgument, Status, TritonError, type ErrorContext } from '../errors.js';
import { readEvents } from './sse.js';
import {
  declaredUsageOutputs,
  defaultLlmModel,
  defaultMaxTokens,
  GenerationStream,
  llmModelConfigFromJson,
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
  type JsonValue,
  type LlmModelInfo,
  type LogProbsSource,
} from '../generation.js';

export {
  GenerationStream,
  maxBufferedChunks,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerationChunk,
  type LlmModelInfo,
  type Usage,
} from '../generation.js';
export { Status, TritonError, type TritonErrorKind } from '../errors.js';

/** Options of {@link TritonHttpLlmClient}. */
export interface TritonHttpLlmClientOptions {
  /** Triton's HTTP endpoint, e.g. `http://localhost:8000` (the default). */
  url?: string | undefined;
  /** Model requests address unless they name another (default `"ensemble"`). */
  model?: string | undefined;
  /** Model version (default: the server's choice). */
  modelVersion?: string | undefined;
  /** Headers sent with every request (e.g. an Authorization header for a gateway in front). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch | undefined;
}

/** Per-call options of {@link TritonHttpLlmClient.generate} and {@link TritonHttpLlmClient.stream}. */
export interface HttpRequestOptions {
  /** Cancels the request; the server frees it when the connection closes. */
  signal?: AbortSignal | undefined;
  /** Gives up after this long (`DEADLINE_EXCEEDED`), the request cancelled. */
  timeoutMs?: number | undefined;
  /** Headers for this call, added to the client's. */
  headers?: Readonly<Record<string, string>> | undefined;
}

/** tritonserver's HTTP status codes back to the gRPC codes the rest of the SDK uses. */
function statusOf(httpStatus: number): Status {
  switch (httpStatus) {
    case 400: return Status.INVALID_ARGUMENT;
    case 404: return Status.NOT_FOUND;
    case 409: return Status.ALREADY_EXISTS;
    case 413: return Status.RESOURCE_EXHAUSTED;
    case 499: return Status.CANCELLED;
    case 501: return Status.UNIMPLEMENTED;
    case 503: return Status.UNAVAILABLE;
    case 504: return Status.DEADLINE_EXCEEDED;
    default: return httpStatus >= 500 ? Status.INTERNAL : Status.UNKNOWN;
  }
}

/** Elements of an output as the generate extension writes it: a scalar, or a list. */
function elements(value: unknown): unknown[] {
  return Array.isArray(value) ? value.flat(Infinity) : value === undefined ? [] : [value];
}

function numbers(value: unknown): number[] {
  return elements(value).filter((v): v is number => typeof v === 'number');
}

/**
 * Generates text through Triton's HTTP endpoint with fetch. Same calls and results as the gRPC
 * {@link TritonLlmClient}'s `generate()` / `stream()` (`import { TritonLlmClient } from '@triton-llm/sdk'`),
 * for runtimes without Node.js:
 *
 * ```ts
 * import { TritonHttpLlmClient } from '@triton-llm/sdk/http';
 * const llm = new TritonHttpLlmClient({ url: 'http://localhost:8000', model: 'llama_fp16' });
 * for await (const chunk of llm.stream({ prompt: 'Once upon a time', maxTokens: 32 })) console.log(chunk.text);
 * ```
 *
 * Requests are shaped after the model's config (`GET /v2/models/{m}/config`, cached): options map
 * to the inputs the model declares, and an option for an input it does not declare is refused
 * before sending (the generate extension would otherwise pass it on as a parameter, unused).
 */
export class TritonHttpLlmClient {
  /** The HTTP endpoint, without a trailing slash. */
  readonly url: string;
  /** The model requests address unless they name another. */
  readonly model: string;
  /** The model version requests address unless they name another (empty: the server's choice). */
  readonly modelVersion: string;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly fetchFn: typeof fetch;
  private readonly infos = new Map<string, Promise<LlmModelInfo>>();

  constructor(options: TritonHttpLlmClientOptions = {}) {
    const url = options.url ?? 'http://localhost:8000';
    if (!/^https?:\/\//.test(url)) {
      throw invalidArgument(`url must start with http:// or https:// (Triton's HTTP port, 8000), got '${url}'`, { call: 'TritonHttpLlmClient' });
    }
    this.url = url.replace(/\/+$/, '');
    this.model = options.model ?? defaultLlmModel;
    this.modelVersion = options.modelVersion ?? '';
    this.headers = options.headers ?? {};
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== 'function') throw invalidArgument('no fetch in this runtime: pass options.fetch', { call: 'TritonHttpLlmClient' });
    this.fetchFn = fetchFn;
  }

  /** Generates text (not streamed) and resolves to it with the finish reason, usage and timings. */
  async generate(input: string | GenerateOptions, options: HttpRequestOptions = {}): Promise<GenerateResult> {
    return this.start(input, options, false).result;
  }

  /** Streams generated text as chunks (`for await`), with the final `result`; see the gRPC client's `stream()`. */
  stream(input: string | GenerateOptions, options: HttpRequestOptions = {}): GenerationStream {
    return this.start(input, options, true);
  }

  /** What the client uses of a model's config (fetched on first use and cached; failures are not). */
  async modelInfo(model: string = this.model, options: HttpRequestOptions = {}): Promise<LlmModelInfo> {
    const version = this.modelVersion;
    const key = `${model}\u0000${version}`;
    let info = this.infos.get(key);
    if (!info) {
      info = (async () => {
        const config = (await this.request('GET', `${this.modelPath(model, version)}/config`, undefined, options.signal, options.headers, { call: 'modelConfig', target: this.url, model })).json;
        return llmModelInfo(llmModelConfigFromJson(config), model);
      })();
      this.infos.set(key, info);
      info.catch(() => this.infos.delete(key));
    }
    return info;
  }

  private modelPath(model: string, version: string): string {
    return `/v2/models/${encodeURIComponent(model)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
  }

  /** Sends one request; non-2xx answers become TritonErrors with the server's message. */
  private async request(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal | undefined,
                        headers: Readonly<Record<string, string>> | undefined, context: ErrorContext): Promise<{ response: Response; json: unknown }> {
    let response: Response;
    try {
      const init: RequestInit = { method, headers: { ...this.headers, ...headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) } };
      if (body !== undefined) init.body = body;
      if (signal) init.signal = signal;
      response = await this.fetchFn(`${this.url}${path}`, init);
    } catch (error) {
      if (signal?.aborted) throw cancelledError(context, signal.reason);
      throw new TritonError({ ...context, code: Status.UNAVAILABLE, details: (error as Error)?.message ?? String(error), source: 'status', cause: error,
        message: `cannot reach Triton at ${this.url} (${context.call}): ${(error as Error)?.message ?? String(error)}` });
    }
    if (response.ok && path.endsWith('/generate_stream')) return { response, json: undefined };
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const details = typeof (json as { error?: unknown })?.error === 'string' ? (json as { error: string }).error : text || response.statusText;
      throw new TritonError({ ...context, code: statusOf(response.status), details, source: 'status' });
    }
    return { response, json };
  }

  private start(input: string | GenerateOptions, options: HttpRequestOptions, streamed: boolean): GenerationStream {
    const request: GenerateOptions = typeof input === 'string' ? { prompt: input } : input;
    const controller = new AbortController();
    const userSignal = options.signal;
    const onUserAbort = (): void => controller.abort(userSignal?.reason);
    if (userSignal?.aborted) controller.abort(userSignal.reason);
    else userSignal?.addEventListener('abort', onUserAbort, { once: true });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(deadlineExceeded), options.timeoutMs);
    const chunks = new AsyncQueue<GenerationChunk>();
    const result = this.run(request, options, streamed, controller.signal, chunks);
    result.then(
      () => chunks.end(),
      (error: unknown) => chunks.fail(error, error instanceof TritonError && error.cancelled),
    );
    result
      .finally(() => {
        userSignal?.removeEventListener('abort', onUserAbort);
        if (timer !== undefined) clearTimeout(timer);
      })
      .catch(() => undefined);
    return new GenerationStream(result, chunks, controller);
  }

  private body(request: GenerateOptions, info: LlmModelInfo, model: string, streaming: boolean, call: string,
    logProbsFrom: LogProbsSource | undefined): string {
    const body: Record<string, JsonValue> = { text_input: request.prompt };
    // JSON keys the model does not declare would be ignored or refused without naming the option: refused here.
    const plan = planRequest(request, info, model, call, logProbsFrom !== undefined);
    if (plan.samplingParameters !== undefined) body['sampling_parameters'] = plan.samplingParameters;
    for (const { field, names, input, declared, value } of plan.scalars) {
      if (!declared) throw invalidArgument(`${field}: model "${model}" declares no input ${names.join(' or ')}`, { call, model });
      if (typeof value === 'bigint' && value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`${field}: ${value} is too large to send as JSON`, { call, model });
      body[input] = typeof value === 'bigint' ? Number(value) : value;
    }
    for (const { field, input, declared, list } of plan.words) {
      if (!declared) throw invalidArgument(`${field}: model "${model}" declares no input ${input}`, { call, model });
      body[input] = [...list];
    }
    if (streaming) body['stream'] = true;
    if (logProbsFrom) body[logProbsFrom.flag] = true;
    for (const [flag] of declaredUsageOutputs(info)) body[flag] = true;
    for (const tensor of request.inputs ?? []) {
      const data = tensor.data as unknown;
      const list = Array.isArray(data) ? data : ArrayBuffer.isView(data) && !(data instanceof DataView) ? Array.from(data as unknown as ArrayLike<unknown>) : undefined;
      if (!list) throw invalidArgument(`inputs: ${tensor.name} must give its data as an array or typed array for the HTTP transport`, { call, model });
      body[tensor.name] = list.map((v) => (typeof v === 'bigint' ? Number(v) : v)) as JsonValue;
    }
    if (request.parameters) {
      const parameters: Record<string, JsonValue> = {};
      for (const [key, value] of Object.entries(request.parameters)) parameters[key] = typeof value === 'bigint' ? Number(value) : value;
      body['parameters'] = parameters;
    }
    if (request.id !== undefined) body['id'] = request.id;
    return JSON.stringify(body);
  }

  private async run(request: GenerateOptions, options: HttpRequestOptions, streamed: boolean, signal: AbortSignal,
                    chunks: AsyncQueue<GenerationChunk>): Promise<GenerateResult> {
    const call = streamed ? 'stream' : 'generate';
    const model = request.model ?? this.model;
    const version = request.modelVersion ?? this.modelVersion;
    const context: ErrorContext = { call, target: this.url, model, requestId: request.id };
    // The text received so far goes with the error (`text` is declared below; fail() runs later).
    const fail = (error: unknown): never => {
      let failure = error;
      if (signal.aborted) {
        failure = signal.reason === deadlineExceeded
          ? new TritonError({ ...context, code: Status.DEADLINE_EXCEEDED, details: 'deadline exceeded', source: 'client' })
          : cancelledError(context, signal.reason, signal.reason === stoppedReading ? 'the reader stopped the stream' : undefined);
      }
      throw failure instanceof TritonError ? failure.withPartialText(text) : failure;
    };
    if (typeof request.prompt !== 'string') throw invalidArgument('prompt must be a string', context);
    const started = performance.now();
    let firstAt: number | undefined;
    let text = '';
    const ids: number[] = [];
    let idsSeen = false;
    const logProbs: number[] = [];
    const reported = new ReportedUsage();
    let logProbsFrom: LogProbsSource | undefined;
    let answeringModel = model;
    let index = 0;
    const take = (event: Record<string, unknown>): void => {
      if (typeof event['model_name'] === 'string') answeringModel = event['model_name'];
      if ('finish_reason' in event) reported.takeFinishReason(elements(event['finish_reason'])[0]);
      if ('num_input_tokens' in event) reported.takePromptTokens(elements(event['num_input_tokens'])[0]);
      if ('num_output_tokens' in event) reported.addCompletionTokens(elements(event['num_output_tokens'])[0]);
      const piece = elements(event['text_output']).filter((v): v is string => typeof v === 'string').join('');
      let pieceIds: number[] | undefined;
      if ('output_ids' in event) {
        pieceIds = numbers(event['output_ids']).filter((id) => id >= 0);
        ids.push(...pieceIds);
        idsSeen = true;
      }
      let pieceLogProbs: number[] | undefined;
      if (logProbsFrom && logProbsFrom.output in event) {
        const value = event[logProbsFrom.output];
        pieceLogProbs = logProbsFrom.output === 'logprobs' ? vllmLogProbs(String(elements(value)[0] ?? '')) : numbers(value);
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
    };
    try {
      const info = await this.modelInfo(model, { signal });
      const streaming = streamed && info.streaming;
      logProbsFrom = request.returnLogProbs ? logProbsSource(info, model, call) : undefined;
      const body = this.body(request, info, model, streaming, call, logProbsFrom);
      const path = `${this.modelPath(model, version)}/${streamed ? 'generate_stream' : 'generate'}`;
      const { response, json } = await this.request('POST', path, body, signal, options.headers, context);
      if (!streamed) {
        take(json as Record<string, unknown>);
      } else {
        // A loop that lags holds the body back (TCP flow control then holds the server's events).
        let paused: { promise: Promise<void>; resume: () => void } | undefined;
        // An abort must reach the read it would fail, paused or not.
        signal.addEventListener('abort', () => paused?.resume(), { once: true });
        chunks.setBackpressure(maxBufferedChunks, (pause) => {
          if (pause) {
            let resume = (): void => undefined;
            const promise = new Promise<void>((r) => (resume = r));
            paused = { promise, resume };
          } else {
            paused?.resume();
            paused = undefined;
          }
        });
        await readEvents(response, (data) => {
          let event: unknown;
          try {
            event = JSON.parse(data);
          } catch {
            throw new TritonError({ ...context, code: Status.INTERNAL, details: `the server sent an event that is not JSON: ${data.slice(0, 200)}`, source: 'status' });
          }
          const record = event as Record<string, unknown>;
          if (typeof record['error'] === 'string') {
            // Sent in-band once the response had started: the HTTP status says nothing.
            throw new TritonError({ ...context, code: inBandCode(record['error']), details: record['error'], source: 'in-band' });
          }
          take(record);
        }, () => paused?.promise);
      }
    } catch (error) {
      fail(error);
    }
    const finished = performance.now();
    const counted = idsSeen && request.excludeInputInOutput !== false ? ids.length : undefined;
    const outcome: GenerateResult = {
      text,
      ...reported.summary(counted, request.maxTokens ?? defaultMaxTokens),
      timings: { ttftMs: (firstAt ?? finished) - started, totalMs: finished - started },
      model: answeringModel,
      id: request.id ?? '',
    };
    if (idsSeen) outcome.tokenIds = ids;
    if (request.returnLogProbs) outcome.logProbs = logProbs;
    return outcome;
  }
}

/** Marker reason for a call past its timeoutMs. */
const deadlineExceeded = Symbol('deadline exceeded');

