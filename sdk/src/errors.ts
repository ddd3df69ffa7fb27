// TritonError: the one error class the SDK throws, and the mapping from gRPC failures to it.

/**
 * gRPC status codes (the values of gRPC's `status` enum), e.g. `Status.UNAVAILABLE` or
 * `Status.INVALID_ARGUMENT`. Declared here rather than taken from gRPC-js so that the fetch-only
 * entry point (`@triton-llm/sdk/http`) loads no Node.js module.
 */
export enum Status {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/**
 * Where a {@link TritonError} came from.
 *
 * - `status`: the gRPC call ended with a non-OK status, sent by the server (e.g.
 *   `INVALID_ARGUMENT`, `NOT_FOUND`) or produced by gRPC itself (`UNAVAILABLE` when the server
 *   cannot be reached, `DEADLINE_EXCEEDED`, `CANCELLED`).
 * - `in-band`: Triton reported the error inside a `ModelStreamInfer` stream as an
 *   `error_message`. Triton sends only the message there, no status code, so `code` comes from
 *   the message's documented shape ({@link inBandCode}; `UNKNOWN` when it has none); the
 *   stream itself stays open for other requests.
 * - `client`: the SDK refused the call before sending it (a tensor that does not match its
 *   shape or datatype, a closed client) or the caller cancelled it (`AbortSignal`, leaving a
 *   `for await` loop early, a deadline on a shared stream).
 */
export type TritonErrorSource = 'status' | 'in-band' | 'client';

/**
 * What went wrong, in the categories HTTP APIs use (as openai-node's error classes do), so that
 * callers need not know gRPC codes:
 *
 * | kind | codes | typical cause |
 * | --- | --- | --- |
 * | `bad-request` | `INVALID_ARGUMENT`, `OUT_OF_RANGE`, `FAILED_PRECONDITION`; in-band errors | a bad prompt or option, a limit |
 * | `not-found` | `NOT_FOUND` | an unknown or unloaded model |
 * | `unauthenticated` | `UNAUTHENTICATED` | missing or bad credentials |
 * | `permission-denied` | `PERMISSION_DENIED` | credentials without access |
 * | `rate-limited` | `RESOURCE_EXHAUSTED` | a full queue, a message over the size limit |
 * | `timeout` | `DEADLINE_EXCEEDED` | the deadline passed |
 * | `cancelled` | `CANCELLED` | the caller cancelled, or the server did |
 * | `unavailable` | `UNAVAILABLE` | the server is down, unreachable, shutting down, or restricted |
 * | `unimplemented` | `UNIMPLEMENTED` | a feature the server lacks |
 * | `conflict` | `ALREADY_EXISTS`, `ABORTED` | a concurrent change |
 * | `server` | `INTERNAL`, `DATA_LOSS`, `UNKNOWN` | the server failed |
 *
 * In-band errors (a model's refusal sent on a shared stream, without a code) whose message has no
 * known shape are `bad-request`: Triton sends them for requests the model could not run as given.
 */
export type TritonErrorKind =
  | 'bad-request'
  | 'not-found'
  | 'unauthenticated'
  | 'permission-denied'
  | 'rate-limited'
  | 'timeout'
  | 'cancelled'
  | 'unavailable'
  | 'unimplemented'
  | 'conflict'
  | 'server';

/**
 * Codes for the messages Triton sends in-band, by the shapes tritonserver's core and this
 * project's backend give them (`[request id: ...]` and `in ensemble '...', ` prefixes allowed).
 */
const inBandMessageCodes: readonly (readonly [RegExp, Status])[] = [
  [/^Request for unknown model\b|^unknown model\b/, Status.NOT_FOUND],
  [/^(input '[^']*': |unexpected shape for input |inference input '[^']*' data-type |expected \d+ inputs? but got |expected number of inputs between |All input dimensions should be specified |input byte size mismatch |unexpected inference (input|output) )/, Status.INVALID_ARGUMENT],
  [/^(Exceeds maximum queue size|the request queue is full\b|llm-server is shutting down)/, Status.UNAVAILABLE],
  [/^(request cancelled$|request stopped by a `stop` request$)/, Status.CANCELLED],
];

/**
 * The status code an in-band error message stands for: `NOT_FOUND` for an unknown model,
 * `INVALID_ARGUMENT` for a refused input, `UNAVAILABLE` for a full queue or a server shutting
 * down, `CANCELLED` for a request the server cancelled; `UNKNOWN` for any other message.
 */
export function inBandCode(message: string): Status {
  const core = message.replace(/^\[request id: [^\]]*\] /, '').replace(/^in ensemble '[^']*', /, '');
  for (const [pattern, code] of inBandMessageCodes) if (pattern.test(core)) return code;
  return Status.UNKNOWN;
}

/** The {@link TritonErrorKind} of a code, given where the error came from. */
export function errorKind(code: Status, source: TritonErrorSource): TritonErrorKind {
  if (source === 'in-band' && code === Status.UNKNOWN) return 'bad-request';
  switch (code) {
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
    case Status.FAILED_PRECONDITION:
      return 'bad-request';
    case Status.NOT_FOUND:
      return 'not-found';
    case Status.UNAUTHENTICATED:
      return 'unauthenticated';
    case Status.PERMISSION_DENIED:
      return 'permission-denied';
    case Status.RESOURCE_EXHAUSTED:
      return 'rate-limited';
    case Status.DEADLINE_EXCEEDED:
      return 'timeout';
    case Status.CANCELLED:
      return 'cancelled';
    case Status.UNAVAILABLE:
      return 'unavailable';
    case Status.UNIMPLEMENTED:
      return 'unimplemented';
    case Status.ALREADY_EXISTS:
    case Status.ABORTED:
      return 'conflict';
    default:
      return 'server';
  }
}

/** What a {@link TritonError} knows about the call that failed. */
export interface TritonErrorInit {
  /** gRPC status code ({@link Status}). */
  code: Status;
  /** The server's message (or gRPC's, or the SDK's), unchanged. */
  details: string;
  /** The RPC or SDK method that failed, e.g. `"ModelInfer"`, `"ModelStreamInfer"`, `"generate"`. */
  call: string;
  /** Where the error came from; see {@link TritonErrorSource}. */
  source: TritonErrorSource;
  /** `host:port` of the server the client talks to. */
  target?: string | undefined;
  /** The model the call addressed, when it addressed one. */
  model?: string | undefined;
  /** The request id, for inference calls. */
  requestId?: string | undefined;
  /** The underlying error (a gRPC `ServiceError`, an abort reason, ...). */
  cause?: unknown | undefined;
  /** Replaces the default message built from the other fields. */
  message?: string | undefined;
  /** The text a generation had produced before it failed. */
  partialText?: string | undefined;
}

/**
 * The error every SDK call rejects with: a gRPC status code, the server's message and the call
 * that failed.
 *
 * ```ts
 * try {
 *   await llm.generate('Hello');
 * } catch (e) {
 *   if (e instanceof TritonError && e.kind === 'unavailable') console.error(e.message);
 * }
 * ```
 */
export class TritonError extends Error {
  override readonly name = 'TritonError';
  /** gRPC status code ({@link Status}); for errors Triton sends in-band on a stream, {@link inBandCode} of the message. */
  readonly code: Status;
  /** The status code's name, e.g. `"INVALID_ARGUMENT"`. */
  readonly codeName: string;
  /** The server's message (or gRPC's, or the SDK's), unchanged; `message` adds context to it. */
  readonly details: string;
  /** The RPC or SDK method that failed, e.g. `"ModelInfer"`, `"ModelStreamInfer"`, `"generate"`. */
  readonly call: string;
  /** Where the error came from; see {@link TritonErrorSource}. */
  readonly source: TritonErrorSource;
  /** What went wrong, independent of gRPC's codes; see {@link TritonErrorKind}. */
  readonly kind: TritonErrorKind;
  /** `host:port` of the server, when known. */
  readonly target: string | undefined;
  /** The model the call addressed, when it addressed one. */
  readonly model: string | undefined;
  /** The request id, for inference calls. */
  readonly requestId: string | undefined;
  /**
   * For `generate()` / `stream()`: the text received before the request failed or was cancelled
   * (chunks concatenated), when there was any, so a caller can keep what was produced.
   */
  readonly partialText: string | undefined;

  /** Builds an error; SDK users normally only catch these. */
  constructor(init: TritonErrorInit) {
    super(init.message ?? defaultMessage(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.codeName = statusName(init.code);
    this.details = init.details;
    this.call = init.call;
    this.source = init.source;
    this.kind = errorKind(init.code, init.source);
    this.target = init.target;
    this.model = init.model;
    this.requestId = init.requestId;
    this.partialText = init.partialText;
  }

  /** This error with `partialText` set (the same error when there is no text). */
  withPartialText(text: string): TritonError {
    if (text === '') return this;
    return new TritonError({
      code: this.code, details: this.details, call: this.call, source: this.source, target: this.target, model: this.model,
      requestId: this.requestId, cause: this.cause, message: this.message, partialText: text,
    });
  }

  /** True when the caller cancelled the call (abort signal, early `break`, `close()`). */
  get cancelled(): boolean {
    return this.code === Status.CANCELLED && this.source === 'client';
  }
}

/** The name of a gRPC status code, e.g. `statusName(3) === "INVALID_ARGUMENT"`. */
export function statusName(code: number): string {
  const name: unknown = (Status as unknown as Record<number, unknown>)[code];
  return typeof name === 'string' ? name : `STATUS_${code}`;
}

function defaultMessage(init: TritonErrorInit): string {
  const subject = init.model ? `${init.call} (model "${init.model}")` : init.call;
  return `${subject} failed with ${statusName(init.code)}: ${init.details}`;
}

/** The fields of a gRPC-js `ServiceError` this module reads. */
interface ServiceErrorLike {
  code: number;
  details: string;
}

function isServiceErrorLike(value: unknown): value is ServiceErrorLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'number' &&
    typeof (value as { details?: unknown }).details === 'string'
  );
}

// gRPC-js's wording when no connection could be made (refused, unresolvable, unreachable, TLS
// handshake failure) as opposed to a server that answered with UNAVAILABLE.
const unreachablePattern =
  /No connection established|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|Failed to connect|DNS resolution failed|Name resolution failed|handshake/i;

/** Context the SDK adds when it turns a failure into a {@link TritonError}. */
export interface ErrorContext {
  /** The RPC or SDK method. */
  call: string;
  /** `host:port` of the server. */
  target: string;
  /** The model, for model calls. */
  model?: string | undefined;
  /** The request id, for inference calls. */
  requestId?: string | undefined;
}

/**
 * Turns whatever a gRPC call failed with into a {@link TritonError}. A server that cannot be
 * reached becomes `cannot reach Triton at HOST:PORT: ...` with code `UNAVAILABLE`.
 */
export function toTritonError(error: unknown, context: ErrorContext): TritonError {
  if (error instanceof TritonError) return error;
  const base = { call: context.call, target: context.target, model: context.model, requestId: context.requestId, cause: error };
  if (isServiceErrorLike(error)) {
    // gRPC-js appends an empty "Resolution note:" (and timestamps) to connection failures.
    const details = (error.details || (error instanceof Error ? error.message : '')).replace(/\s*Resolution note:\s*$/, '');
    if (error.code === Status.UNAVAILABLE && unreachablePattern.test(details)) {
      // An HTTP/1.1 server (Triton's HTTP port, 8000) answers gRPC's HTTP/2 preface with garbage.
      const hint = /Protocol error/i.test(details)
        ? `; the server there does not speak gRPC (HTTP/2): Triton serves gRPC on port 8001 and HTTP/REST on 8000`
        : '';
      return new TritonError({
        ...base,
        code: Status.UNAVAILABLE,
        details,
        source: 'status',
        message: `cannot reach Triton at ${context.target} (${context.call}): ${details}${hint}`,
      });
    }
    // gRPC-js reports a call this process cancelled with this wording.
    if (error.code === Status.CANCELLED && details === 'Cancelled on client') {
      return new TritonError({ ...base, code: Status.CANCELLED, details: 'cancelled by the client', source: 'client' });
    }
    return new TritonError({ ...base, code: error.code, details, source: 'status' });
  }
  const details = error instanceof Error ? error.message : String(error);
  return new TritonError({ ...base, code: Status.UNKNOWN, details, source: 'client' });
}

/** The error for a request the caller cancelled (abort signal, early `break`, `close()`). */
export function cancelledError(context: ErrorContext, reason?: unknown, details = 'cancelled by the caller'): TritonError {
  return new TritonError({ ...context, code: Status.CANCELLED, details, source: 'client', cause: reason });
}

/** The error for a call the SDK refuses before sending it (bad tensor, bad option). */
export function invalidArgument(details: string, context: Partial<ErrorContext> & { call: string }): TritonError {
  return new TritonError({ ...context, code: Status.INVALID_ARGUMENT, details, source: 'client' });
}
