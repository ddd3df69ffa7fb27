// ModelStreamInfer: one bidirectional gRPC stream carrying one or many requests, responses routed
// by request id, each request ended by Triton's `triton_final_response` flag.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { cancelledError, inBandCode, invalidArgument, Status, toTritonError, TritonError, type ErrorContext } from './errors.js';
import type { ModelInferRequest } from './generated/inference/ModelInferRequest.js';
import type { ModelStreamInferResponse__Output } from './generated/inference/ModelStreamInferResponse.js';
import { buildInferRequest, InferResult, type InferRequestFields } from './tensors.js';
import { AsyncQueue } from './async-queue.js';


/** The gRPC call behind an {@link InferStream}. */
export type InferDuplex = grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse__Output>;

/** Header values: strings, or `Buffer`s for keys ending in `-bin`; several values as an array. */
export type HeaderValue = string | Buffer | readonly (string | Buffer)[];

/** gRPC metadata headers, e.g. `{ authorization: 'Bearer TOKEN' }`. */
export type Headers = Readonly<Record<string, HeaderValue>>;

/** Per-call options shared by every SDK method. */
export interface CallOptions {
  /** Cancels the call when aborted; the server sees the cancellation (the call rejects with a `CANCELLED` {@link TritonError}). */
  signal?: AbortSignal | undefined;
  /** Deadline relative to the call's start, in milliseconds (gRPC deadline; `DEADLINE_EXCEEDED` when it passes). */
  timeoutMs?: number | undefined;
  /** Absolute deadline (a `Date` or milliseconds since the epoch); wins over `timeoutMs`. */
  deadline?: Date | number | undefined;
  /** Extra gRPC metadata headers for this call, added to the client's `headers`. */
  headers?: Headers | undefined;
}

/** What an {@link InferStream} needs from its client (implemented by `TritonClient`). */
export interface StreamHost {
  /** `host:port` of the server. */
  readonly target: string;
  /** Opens a `ModelStreamInfer` call: waits for the connection, adds headers and deadline. */
  openInferStream(options: CallOptions, context: ErrorContext): Promise<InferDuplex>;
  /** Forgets a call once it is over. */
  releaseCall(call: { cancel(): void }): void;
}

/** Receives the responses of one request sent on an {@link InferStream}. */
export interface RequestHandlers {
  /** Every response of the request, including an empty final one. */
  response(result: InferResult): void;
  /** The final response has arrived (after its `response`). */
  end(): void;
  /** The request failed or was cancelled; nothing follows. */
  error(error: TritonError): void;
}

/** Options of one request sent on an {@link InferStream}. */
export interface SendOptions {
  /** Cancels this request when aborted. */
  signal?: AbortSignal | undefined;
  /**
   * Deadline for this request (ms since the epoch). On a dedicated stream it is the call's gRPC
   * deadline (set when opening); on a shared stream the SDK enforces it itself.
   */
  deadline?: number | undefined;
  /** The SDK method, for error messages. */
  call: string;
  /** Runs after this request is cancelled on a shared stream (e.g. to send a `stop` request). */
  onCancel?: ((id: string, stream: InferStream) => void) | undefined;
}

/** A request in flight on an {@link InferStream}. */
export interface SentRequest {
  /** The request id responses are routed by. */
  readonly id: string;
  /** Cancels the request: on a dedicated stream the gRPC call is cancelled, on a shared one only this request ends locally. */
  cancel(reason?: unknown): void;
}

interface Pending {
  id: string;
  /** Whether the request went out on the wire (a `stop` for it makes sense only then). */
  written: boolean;
  model: string;
  handlers: RequestHandlers;
  options: SendOptions;
  cleanup: () => void;
}

let streamCounter = 0;

/**
 * One `ModelStreamInfer` gRPC stream. Requests sent on it get unique ids (unless they bring
 * their own); responses are routed back by id, and a request ends when Triton flags a response
 * with `triton_final_response` (the SDK sets `triton_enable_empty_final_response` on every
 * request, so this works for decoupled and non-decoupled models alike). Errors Triton reports
 * in-band (`error_message`) end only their request.
 *
 * Get one from `TritonClient.openStream()`; close it with {@link InferStream.close}.
 * Cancelling one request on a shared stream cannot cancel it at the gRPC level (that would
 * cancel all of them): it ends locally and late responses are dropped.
 */
export class InferStream {
  private readonly host: StreamHost;
  private readonly dedicated: boolean;
  private readonly autoClose: boolean;
  private readonly pending = new Map<string, Pending>();
  private readonly prefix = `sdk-${process.pid.toString(36)}-${(++streamCounter).toString(36)}-${randomBytes(3).toString('hex')}`;
  private readonly opened: Promise<InferDuplex>;
  private duplex: InferDuplex | undefined;
  private readonly outbox: { message: ModelInferRequest; stillWanted: () => boolean }[] = [];
  private counter = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private failure: TritonError | undefined;
  private cancelRequested = false;
  private pausedByReader = false;
  private sentCount = 0;

  /**
   * Opens the stream (the gRPC call starts right away). Not meant to be called directly: use
   * `TritonClient.openStream()` (or `streamInfer()`).
   */
  constructor(host: StreamHost, options: CallOptions & { dedicated?: boolean; autoClose?: boolean } = {}) {
    this.host = host;
    this.dedicated = options.dedicated ?? false;
    this.autoClose = options.autoClose ?? false;
    const context: ErrorContext = { call: 'ModelStreamInfer', target: host.target };
    // A dedicated stream asks for real gRPC status codes (tritonserver 24.08+ and llm-server): an
    // error then ends the call with its code (INVALID_ARGUMENT, ...) instead of arriving in-band
    // without one. A shared stream cannot: the first error would end every request on it.
    const openOptions = this.dedicated ? { ...options, headers: { ...options.headers, triton_grpc_error: 'true' } } : options;
    this.opened = host.openInferStream(openOptions, context).then(
      (duplex) => {
        this.duplex = duplex;
        duplex.on('data', (message: ModelStreamInferResponse__Output) => this.onData(message));
        duplex.on('error', (error: unknown) => this.onClosed(this.cancelRequested ? undefined : toTritonError(error, context), duplex));
        duplex.on('end', () => this.onClosed(undefined, duplex));
        for (const { message, stillWanted } of this.outbox.splice(0)) {
          if (!this.cancelRequested && stillWanted()) duplex.write(message);
        }
        if (this.pausedByReader) duplex.pause();
        if (this.cancelRequested) duplex.cancel();
        else if (this.state === 'closing' && this.pending.size === 0) duplex.end();
        return duplex;
      },
      (error: unknown) => {
        const failure = toTritonError(error, context);
        this.failure = failure;
        this.state = 'closed';
        this.failAll(failure);
        throw failure;
      },
    );
    this.opened.catch(() => undefined);
  }

  /** True once the stream no longer accepts requests (closed, cancelled, failed or ended). */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Requests sent on this stream that have not ended yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and yields its responses. Responses without outputs that only carry the
   * final flag are not yielded; every yielded {@link InferResult} says whether it is `final`.
   * Leaving the loop early cancels the request (see the class notes for shared streams).
   */
  infer(request: InferRequestFields, options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined; deadline?: Date | number | undefined } = {}): InferResponseStream {
    const message = buildInferRequest(request, 'streamInfer');
    const queue = new AsyncQueue<InferResult>();
    const sent = this.send(
      message,
      {
        response: (result) => {
          if (!(result.final && result.outputNames.length === 0)) queue.push(result);
        },
        end: () => queue.end(),
        error: (error) => queue.fail(error, error.cancelled),
      },
      { call: 'streamInfer', signal: options.signal, deadline: absoluteDeadline(options) },
    );
    return new InferResponseStream(sent, queue);
  }

  /**
   * Sends a protocol request with handlers for its responses (the layer `infer()` and the LLM
   * client are built on).
   * @internal
   */
  send(request: ModelInferRequest, handlers: RequestHandlers, options: SendOptions): SentRequest {
    const context = { call: options.call, target: this.host.target, model: request.model_name ?? '' };
    if (this.state !== 'open') {
      throw this.failure ?? new TritonError({ ...context, code: Status.FAILED_PRECONDITION, details: 'the stream is closed', source: 'client' });
    }
    if (this.dedicated && this.sentCount > 0) throw invalidArgument('a dedicated stream carries one request', context);
    const id = request.id || `${this.prefix}-${++this.counter}`;
    if (this.pending.has(id)) throw invalidArgument(`request id "${id}" is already in flight on this stream`, context);
    this.sentCount += 1;

    const entry: Pending = { id, written: false, model: request.model_name ?? '', handlers, options, cleanup: () => undefined };
    this.pending.set(id, entry);
    const cancel = (reason?: unknown): void =>
      this.cancelRequest(id, cancelledError({ ...context, requestId: id }, reason));

    const cleanups: (() => void)[] = [];
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => cancel(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    if (!this.dedicated && options.deadline !== undefined) {
      const timer = setTimeout(() => {
        const error = new TritonError({ ...context, requestId: id, code: Status.DEADLINE_EXCEEDED, details: 'deadline exceeded', source: 'client' });
        this.cancelRequest(id, error);
      }, Math.max(0, options.deadline - Date.now()));
      cleanups.push(() => clearTimeout(timer));
    }
    entry.cleanup = () => cleanups.forEach((fn) => fn());

    if (signal?.aborted) {
      cancel(signal.reason);
      return { id, cancel };
    }
    const message: ModelInferRequest = {
      ...request,
      id,
      parameters: { ...(request.parameters ?? {}), triton_enable_empty_final_response: { bool_param: true } },
    };
    this.write(message, () => {
      if (this.pending.get(id) !== entry) return false;
      entry.written = true;
      return true;
    });
    return { id, cancel };
  }

  /**
   * Writes a request whose responses nobody waits for (e.g. a `stop` request); the server's
   * answers to it are dropped.
   * @internal
   */
  sendDetached(request: ModelInferRequest): void {
    if (this.state === 'closed') return;
    const message: ModelInferRequest = {
      ...request,
      parameters: { ...(request.parameters ?? {}), triton_enable_empty_final_response: { bool_param: true } },
    };
    this.write(message, () => this.state !== 'closed');
  }

  /**
   * Writes now when the call is open (so that a later `end()` comes after it), else once it
   * opens; `stillWanted` is asked right before writing.
   */
  private write(message: ModelInferRequest, stillWanted: () => boolean): void {
    if (this.duplex) {
      if (stillWanted()) this.duplex.write(message);
    } else {
      this.outbox.push({ message, stillWanted });
    }
  }

  /**
   * Stops accepting requests and half-closes the stream once the requests in flight have ended;
   * they still complete.
   */
  close(): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    if (this.pending.size === 0) this.duplex?.end();
  }

  /** Cancels the gRPC call: every request in flight fails with `CANCELLED`. */
  cancel(reason?: unknown): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.cancelRequested = true;
    this.failAll(cancelledError({ call: 'ModelStreamInfer', target: this.host.target }, reason));
    this.duplex?.cancel();
  }

  private cancelRequest(id: string, error: TritonError): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    entry.cleanup();
    if (this.dedicated) {
      this.state = 'closed';
      this.cancelRequested = true;
      this.duplex?.cancel();
    } else {
      try {
        if (entry.written) entry.options.onCancel?.(id, this);
      } catch {
        // best effort: the request has ended locally either way
      }
      this.afterRequest();
    }
    entry.handlers.error(error);
  }

  /**
   * Stops or restarts reading responses (HTTP/2 flow control then holds the server's back): for a
   * reader that lags. Only on a dedicated stream: a shared one would stall its other requests.
   */
  setPaused(paused: boolean): void {
    if (!this.dedicated) return;
    this.pausedByReader = paused;
    if (!this.duplex) return;  // applied when the call opens
    if (paused) this.duplex.pause();
    else this.duplex.resume();
  }

  private onData(message: ModelStreamInferResponse__Output): void {
    const response = message.infer_response;
    const id = response?.id ?? '';
    let entry = this.pending.get(id);
    if (!entry && id === '' && this.pending.size === 1) entry = this.pending.values().next().value;
    if (message.error_message) {
      // An error Triton could not attribute to a request id fails every request in flight:
      // better than leaving the one it belongs to waiting forever.
      const targets = entry ? [entry] : id === '' ? [...this.pending.values()] : [];
      for (const target of targets) {
        this.finish(target);
        target.handlers.error(
          new TritonError({
            code: inBandCode(message.error_message),
            details: message.error_message,
            call: target.options.call,
            source: 'in-band',
            target: this.host.target,
            model: target.model,
            requestId: target.id,
          }),
        );
      }
      return;
    }
    if (!entry || !response) return;
    // Servers that ignore triton_enable_empty_final_response send no flag: one response per request.
    const flag = response.parameters?.['triton_final_response'];
    const final = flag ? flag.bool_param === true : true;
    const result = new InferResult(response, final);
    if (final) this.finish(entry);
    entry.handlers.response(result);
    if (final) entry.handlers.end();
  }

  private finish(entry: Pending): void {
    this.pending.delete(entry.id);
    entry.cleanup();
    this.afterRequest();
  }

  private afterRequest(): void {
    if (this.pending.size > 0) return;
    if (this.dedicated || this.autoClose || this.state === 'closing') {
      if (this.state === 'open') this.state = 'closing';
      this.duplex?.end();
    }
  }

  private onClosed(error: TritonError | undefined, duplex: InferDuplex): void {
    this.state = 'closed';
    this.host.releaseCall(duplex);
    if (error) duplex.cancel(); // a local failure (e.g. a refused write) must not leave the call open
    if (error) {
      this.failure = error;
      this.failAll(error);
    } else if (this.pending.size > 0) {
      this.failAll(
        new TritonError({
          code: Status.UNAVAILABLE,
          details: 'the server ended the stream before the final response',
          call: 'ModelStreamInfer',
          source: 'status',
          target: this.host.target,
        }),
      );
    }
  }

  private failAll(error: TritonError): void {
    const entries = [...this.pending.values()];
    this.pending.clear();
    // Errors name the method the caller used (generate, stream, ...) and the model, unless they
    // carry a message of their own (e.g. "cannot reach Triton at ...").
    const plain = `${error.call} failed with ${error.codeName}: ${error.details}`;
    for (const entry of entries) {
      entry.cleanup();
      entry.handlers.error(
        new TritonError({
          code: error.code,
          details: error.details,
          call: entry.options.call,
          source: error.source,
          target: error.target,
          model: entry.model || undefined,
          requestId: entry.id,
          cause: error.cause,
          message: error.message === plain ? undefined : error.message,
        }),
      );
    }
  }
}

/**
 * The responses of one request sent with `streamInfer()` or {@link InferStream.infer}: iterate
 * with `for await`; leaving the loop early cancels the request.
 */
export class InferResponseStream implements AsyncIterable<InferResult> {
  /** The request id. */
  readonly id: string;
  private readonly sent: SentRequest;
  private readonly queue: AsyncQueue<InferResult>;
  private iterated = false;

  /** Wraps a sent request and the queue its responses arrive in; `streamInfer()` and {@link InferStream.infer} create these. */
  constructor(sent: SentRequest, queue: AsyncQueue<InferResult>) {
    this.sent = sent;
    this.id = sent.id;
    this.queue = queue;
  }

  /** Cancels the request; a pending or later `next()` rejects with a `CANCELLED` {@link TritonError}. */
  cancel(reason?: unknown): void {
    this.sent.cancel(reason);
  }

  /** Iterates the responses once. */
  [Symbol.asyncIterator](): AsyncIterator<InferResult, undefined> {
    if (this.iterated) throw invalidArgument('the responses of a request can be iterated once', { call: 'streamInfer' });
    this.iterated = true;
    return {
      next: () => this.queue.next(),
      return: async () => {
        if (!this.queue.closed) this.sent.cancel();
        this.queue.discard();
        return { value: undefined, done: true };
      },
    };
  }
}

/** The absolute deadline (ms since the epoch) of call options, if any. */
export function absoluteDeadline(options: { timeoutMs?: number | undefined; deadline?: Date | number | undefined }, fallbackTimeoutMs?: number): number | undefined {
  if (options.deadline !== undefined) return options.deadline instanceof Date ? options.deadline.getTime() : options.deadline;
  const timeout = options.timeoutMs ?? fallbackTimeoutMs;
  return timeout === undefined ? undefined : Date.now() + timeout;
}
