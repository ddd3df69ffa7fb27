// TritonClient: a typed client of Triton's KServe v2 gRPC protocol (GRPCInferenceService) for any
// Triton server and backend.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { cancelledError, Status, toTritonError, TritonError, type ErrorContext } from './errors.js';
import { descriptor } from './generated/descriptor.js';
import type { ProtoGrpcType } from './generated/grpc_service.js';
import type { GRPCInferenceServiceClient } from './generated/inference/GRPCInferenceService.js';
import type { ModelConfig__Output } from './generated/camel-case/inference/ModelConfig.js';
import type { ModelConfigResponse__Output } from './generated/camel-case/inference/ModelConfigResponse.js';
import type { ModelStatistics__Output } from './generated/camel-case/inference/ModelStatistics.js';
import type { ModelStatisticsResponse__Output } from './generated/camel-case/inference/ModelStatisticsResponse.js';
import type { ModelInferResponse__Output } from './generated/inference/ModelInferResponse.js';
import type { ModelMetadataResponse__Output } from './generated/inference/ModelMetadataResponse.js';
import type { ModelReadyResponse__Output } from './generated/inference/ModelReadyResponse.js';
import type { RepositoryIndexResponse__Output } from './generated/inference/RepositoryIndexResponse.js';
import type { RepositoryModelLoadResponse__Output } from './generated/inference/RepositoryModelLoadResponse.js';
import type { RepositoryModelUnloadResponse__Output } from './generated/inference/RepositoryModelUnloadResponse.js';
import type { ServerLiveResponse__Output } from './generated/inference/ServerLiveResponse.js';
import type { ServerMetadataResponse__Output } from './generated/inference/ServerMetadataResponse.js';
import type { ServerReadyResponse__Output } from './generated/inference/ServerReadyResponse.js';
import {
  absoluteDeadline,
  InferResponseStream,
  InferStream,
  type CallOptions,
  type Headers,
  type InferDuplex,
  type StreamHost,
} from './stream.js';
import { buildInferRequest, InferResult, type InferRequestFields } from './tensors.js';

/** TLS settings; `tls: true` uses the system's root certificates. */
export interface TlsOptions {
  /** PEM root certificates that sign the server's certificate (default: the system's). */
  rootCerts?: string | Buffer | undefined;
  /** PEM client certificate chain, for servers that require client authentication (mutual TLS). */
  certChain?: string | Buffer | undefined;
  /** PEM private key of `certChain`. */
  privateKey?: string | Buffer | undefined;
  /** Name to verify the server's certificate against, when it differs from the URL's host. */
  serverName?: string | undefined;
}

/** HTTP/2 keepalive pings, to notice dead connections and keep idle ones through proxies. */
export interface KeepaliveOptions {
  /** Interval between pings, in milliseconds (gRPC `keepalive_time_ms`). */
  timeMs?: number | undefined;
  /** How long to wait for a ping's answer before dropping the connection (`keepalive_timeout_ms`; default 20000). */
  timeoutMs?: number | undefined;
  /** Ping even with no call in progress (`keepalive_permit_without_calls`; default false). */
  permitWithoutCalls?: boolean | undefined;
}

/**
 * Retries of idempotent calls (health, metadata, config, repository index, statistics) with
 * exponential backoff and jitter, by gRPC itself: the options become the `retryPolicy` of those
 * methods in the channel's service config (gRFC A6), so a retry happens only while no response has
 * started, and within the call's deadline. Inference calls (`infer`, `streamInfer`, `generate`,
 * `stream`) and load/unload are never retried.
 */
export interface RetryOptions {
  /** Attempts in all, including the first (default 3, at most 5 as gRPC allows; 1 disables retries). */
  maxAttempts?: number | undefined;
  /** Wait before the first retry, in milliseconds (default 100). */
  initialBackoffMs?: number | undefined;
  /** Upper bound of a wait, in milliseconds (default 2000). */
  maxBackoffMs?: number | undefined;
  /** Factor between consecutive waits (default 2). */
  backoffMultiplier?: number | undefined;
  /** Status codes worth retrying (default `[Status.UNAVAILABLE]`). */
  retryOn?: readonly Status[] | undefined;
}

/** A function returning headers for each call, e.g. to attach a fresh auth token. */
export type HeadersProvider = () => Headers | Promise<Headers>;

/**
 * How calls are spread over the servers a target names: `pick_first` (gRPC's default: one server,
 * the next only when it fails) or `round_robin` (each call to the next ready server in turn).
 */
export type LoadBalancing = 'pick_first' | 'round_robin';

/** Fields of a log entry: the call, the model, codes and timings. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * Where the client reports what it does on its own: retries, waits for a connection, streams it
 * pauses for a lagging reader, and (at `debug`) each call's end with its outcome and duration.
 * `console` is one; pino, winston and the like fit with a one-line adapter.
 */
export interface Logger {
  debug?(message: string, fields: LogFields): void;
  info?(message: string, fields: LogFields): void;
  warn?(message: string, fields: LogFields): void;
  error?(message: string, fields: LogFields): void;
}

/** The least severe entries a {@link Logger} gets; `silent` turns logging off. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Options of {@link TritonClient}. */
export interface TritonClientOptions {
  /**
   * Server address: `host:port` (default: the `TRITON_URL` environment variable, else
   * `localhost:8001`, Triton's gRPC port). A `grpcs://` prefix turns TLS on; `grpc://` / `http://`
   * prefixes are accepted and ignored.
   *
   * Several servers, for client-side load balancing: a gRPC target such as
   * `dns:///triton-headless.default.svc.cluster.local:8001` (every address the name resolves to,
   * re-resolved as servers come and go) or `ipv4:10.0.0.5:8001,10.0.0.6:8001`, or a list of
   * `ip:port` addresses. A list defaults to `loadBalancing: 'round_robin'`.
   */
  url?: string | readonly string[] | undefined;
  /** Load-balancing policy over the servers of `url` (default `pick_first`; `round_robin` for a list). */
  loadBalancing?: LoadBalancing | undefined;
  /** TLS: `true` for the system roots, or certificates; default off unless the URL says `grpcs://`. */
  tls?: boolean | TlsOptions | undefined;
  /** gRPC metadata headers for every call (e.g. `{ authorization: 'Bearer TOKEN' }`), or a function giving them per call. */
  headers?: Headers | HeadersProvider | undefined;
  /**
   * Default deadline of every call, in milliseconds from its start. Without it, health,
   * metadata, config, repository-index and statistics calls get 30000 and the others
   * (inference, load / unload) none.
   */
  timeoutMs?: number | undefined;
  /**
   * How long a call waits for a connection before failing with `cannot reach Triton at
   * HOST:PORT` (default 5000). A refused connection fails at once.
   */
  connectTimeoutMs?: number | undefined;
  /** Keepalive pings (default: gRPC's, i.e. none). */
  keepalive?: KeepaliveOptions | undefined;
  /** Retries of idempotent calls; `false` disables them (default: 3 attempts on `UNAVAILABLE`). */
  retry?: RetryOptions | false | undefined;
  /** Largest message the client accepts, in bytes (default 2^31 - 1, as Triton's own clients). */
  maxReceiveMessageBytes?: number | undefined;
  /** Largest message the client sends, in bytes (default 2^31 - 1). */
  maxSendMessageBytes?: number | undefined;
  /** Extra gRPC channel options, applied last (e.g. `{ 'grpc.primary_user_agent': 'my-app' }`). */
  channelOptions?: grpc.ChannelOptions | undefined;
  /**
   * gRPC-js client interceptors, run on every call in order (e.g. to add a W3C `traceparent` from
   * the active span, or to time calls). Static headers are simpler with `headers`.
   */
  interceptors?: readonly grpc.Interceptor[] | undefined;
  /** Receives the client's log entries (default: none). */
  logger?: Logger | undefined;
  /** The least severe entries the logger gets (default `info`). */
  logLevel?: LogLevel | undefined;
}

/** Per-call options of calls that address a model version. */
export interface ModelCallOptions extends CallOptions {
  /** Model version; empty or absent lets the server choose by its version policy. */
  version?: string | undefined;
}

/** What `serverMetadata()` returns. */
export interface ServerMetadata {
  /** Server name, e.g. `"triton"`. */
  name: string;
  /** Server version. */
  version: string;
  /** Protocol extensions the server supports. */
  extensions: string[];
}

/** A tensor of a model's metadata. */
export interface TensorMetadata {
  /** Tensor name. */
  name: string;
  /** Datatype name, e.g. `"FP32"` or `"BYTES"`. */
  datatype: string;
  /** Shape including the batch dimension when the model batches; -1 marks a variable dimension. */
  shape: number[];
}

/** What `modelMetadata()` returns. */
export interface ModelMetadata {
  /** Model name. */
  name: string;
  /** Versions of the model that are available. */
  versions: string[];
  /** Platform or backend, e.g. `"ensemble"`, `"tensorrt_llm"` or `"llm"`. */
  platform: string;
  /** Input tensors. */
  inputs: TensorMetadata[];
  /** Output tensors. */
  outputs: TensorMetadata[];
}

/**
 * A model's configuration (`config.pbtxt` as Triton completed it): camelCase fields
 * (`maxBatchSize`, `input[].dataType`, `modelTransactionPolicy.decoupled`), enums as their names,
 * 64-bit integers (`dims`) as numbers.
 */
export type ModelConfig = ModelConfig__Output;

/** Per-model inference statistics: camelCase fields, 64-bit counters and nanoseconds as numbers. */
export type ModelStatistics = ModelStatistics__Output;

/** A model of the repository index. */
export interface RepositoryModel {
  /** Model name. */
  name: string;
  /** Version (empty when the model is not loaded). */
  version: string;
  /** State, e.g. `"READY"`, `"UNAVAILABLE"`, `"LOADING"`. */
  state: string;
  /** Why the model is in that state (a load error, for example). */
  reason: string;
}

/** Options of `repositoryIndex()`. */
export interface RepositoryIndexOptions extends CallOptions {
  /** Only models that are ready to serve. */
  ready?: boolean | undefined;
  /** Repository to list (default: all). */
  repositoryName?: string | undefined;
}

/** A request of `infer()` / `streamInfer()`. */
export interface InferRequest extends InferRequestFields {}

const int32Max = 2 ** 31 - 1;

/** Default deadline of health, metadata, config, index and statistics calls. */
const controlCallTimeoutMs = 30_000;

/** The calls that change nothing on the server: retried (service config) and given a default deadline. */
const idempotentMethods: readonly string[] = [
  'ServerLive', 'ServerReady', 'ServerMetadata', 'ModelReady', 'ModelMetadata', 'ModelConfig', 'RepositoryIndex', 'ModelStatistics',
];

/** gRPC's upper bound on `maxAttempts` (grpc-js clamps larger values to it). */
const maxRetryAttempts = 5;

type RetrySettings = { [K in keyof RetryOptions]-?: Exclude<RetryOptions[K], undefined> };

/** The retry options with their defaults, checked (gRPC would refuse the whole service config). */
function retrySettings(options: RetryOptions): RetrySettings {
  const settings: RetrySettings = {
    maxAttempts: options.maxAttempts ?? 3,
    initialBackoffMs: options.initialBackoffMs ?? 100,
    maxBackoffMs: options.maxBackoffMs ?? 2000,
    backoffMultiplier: options.backoffMultiplier ?? 2,
    retryOn: options.retryOn ?? [Status.UNAVAILABLE],
  };
  const refuse = (what: string): never => {
    throw new TritonError({ code: Status.INVALID_ARGUMENT, details: `retry.${what}`, call: 'TritonClient', source: 'client' });
  };
  if (!Number.isInteger(settings.maxAttempts) || settings.maxAttempts < 1 || settings.maxAttempts > maxRetryAttempts) {
    refuse(`maxAttempts must be an integer from 1 to ${maxRetryAttempts} (gRPC's limit), got ${settings.maxAttempts}`);
  }
  for (const key of ['initialBackoffMs', 'maxBackoffMs'] as const) {
    if (!(settings[key] > 0) || !Number.isFinite(settings[key])) refuse(`${key} must be a number of milliseconds above 0, got ${settings[key]}`);
  }
  if (!(settings.backoffMultiplier > 0) || !Number.isFinite(settings.backoffMultiplier)) {
    refuse(`backoffMultiplier must be a number above 0, got ${settings.backoffMultiplier}`);
  }
  if (settings.retryOn.length === 0 || settings.retryOn.some((code) => Status[code] === undefined || code === Status.OK)) {
    refuse(`retryOn must list gRPC status codes other than OK, got [${settings.retryOn.join(', ')}]`);
  }
  return settings;
}

/** A duration as the service config writes it: seconds with up to 9 decimals. */
function serviceConfigDuration(ms: number): string {
  return `${(ms / 1000).toFixed(9).replace(/\.?0+$/, '')}s`;
}

/** The channel's service config: the load-balancing policy and the idempotent methods' retry policy. */
function serviceConfig(loadBalancing: LoadBalancing | undefined, retry: RetrySettings | undefined): string | undefined {
  const config: Record<string, unknown> = {};
  if (loadBalancing !== undefined) config['loadBalancingConfig'] = [{ [loadBalancing]: {} }];
  if (retry !== undefined && retry.maxAttempts >= 2) {
    config['methodConfig'] = [{
      name: idempotentMethods.map((method) => ({ service: 'inference.GRPCInferenceService', method })),
      retryPolicy: {
        maxAttempts: retry.maxAttempts,
        initialBackoff: serviceConfigDuration(retry.initialBackoffMs),
        maxBackoff: serviceConfigDuration(retry.maxBackoffMs),
        backoffMultiplier: retry.backoffMultiplier,
        retryableStatusCodes: retry.retryOn.map((code) => Status[code]),
      },
    }];
  }
  return Object.keys(config).length > 0 ? JSON.stringify(config) : undefined;
}

const loaderOptions: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

let serviceConstructor: ProtoGrpcType['inference']['GRPCInferenceService'] | undefined;

/** protobuf.js's camelCase of a proto name, as proto-loader-gen-types wrote generated/camel-case/. */
const camelCase = (name: string): string => name.slice(0, 1) + name.slice(1).replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** The descriptor with every field and oneof named in camelCase (decoding by field number is unchanged). */
function camelCaseDescriptor(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(camelCaseDescriptor);
  if (node === null || typeof node !== 'object') return node;
  const renamed = (members: object, rename: (value: unknown) => unknown): Record<string, unknown> =>
    Object.fromEntries(Object.entries(members).map(([name, value]) => [camelCase(name), rename(value)]));
  return Object.fromEntries(
    Object.entries(node).map(([key, value]): [string, unknown] => {
      if (key === 'fields' && value !== null && typeof value === 'object') return [key, renamed(value, (field) => field)];
      if (key === 'oneofs' && value !== null && typeof value === 'object') {
        return [key, renamed(value, (oneof) => ({ ...(oneof as object), oneof: ((oneof as { oneof: string[] }).oneof).map(camelCase) }))];
      }
      return [key, camelCaseDescriptor(value)];
    }),
  );
}

type CamelCaseMethod = 'ModelConfig' | 'ModelStatistics';
let camelCaseMethods: Record<CamelCaseMethod, grpc.MethodDefinition<object, unknown>> | undefined;

/**
 * ModelConfig and ModelStatistics as callers get them (camelCase, 64-bit integers as numbers, like
 * the other calls' results): the same RPCs, decoded by a second definition of the service.
 */
function camelCaseMethod(name: CamelCaseMethod): grpc.MethodDefinition<object, unknown> {
  if (!camelCaseMethods) {
    const definition = protoLoader.fromJSON(camelCaseDescriptor(descriptor) as Parameters<typeof protoLoader.fromJSON>[0], {
      ...loaderOptions,
      longs: Number,
    });
    camelCaseMethods = definition['inference.GRPCInferenceService'] as unknown as typeof camelCaseMethods;
  }
  return camelCaseMethods![name];
}

function service(): ProtoGrpcType['inference']['GRPCInferenceService'] {
  if (!serviceConstructor) {
    const definition = protoLoader.fromJSON(descriptor as Parameters<typeof protoLoader.fromJSON>[0], loaderOptions);
    serviceConstructor = (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).inference.GRPCInferenceService;
  }
  return serviceConstructor;
}

interface ParsedUrl {
  target: string;
  tls: boolean | undefined;
  /** Whether the target names several servers explicitly (an address list). */
  several?: boolean | undefined;
}

const grpcTargetScheme = /^(dns|ipv4|ipv6|unix|unix-abstract):/i;
const ipv4Address = /^\d{1,3}(\.\d{1,3}){3}:\d+$/;
const ipv6Address = /^\[[0-9a-f:.%]+\]:\d+$/i;

/**
 * Splits a client URL into the gRPC target and whether its scheme asks for TLS. gRPC target names
 * (`dns:`, `ipv4:`, `ipv6:`, `unix:`) pass through unchanged; a list of `ip:port` addresses
 * becomes one `ipv4:` / `ipv6:` target.
 */
export function parseUrl(url: string | readonly string[]): ParsedUrl {
  if (typeof url !== 'string') return parseUrlList(url);
  if (grpcTargetScheme.test(url.trim())) {
    const target = url.trim();
    return { target, tls: undefined, ...(/^ipv[46]:.*,/i.test(target) ? { several: true } : {}) };
  }
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url.trim());
  let rest = url.trim();
  let tls: boolean | undefined;
  if (match) {
    const scheme = match[1]!.toLowerCase();
    rest = match[2]!;
    if (scheme === 'grpcs' || scheme === 'https') tls = true;
    else if (scheme === 'grpc' || scheme === 'http') tls = false;
    else throw new TritonError({ code: Status.INVALID_ARGUMENT, details: `unsupported URL scheme "${scheme}://" in "${url}"`, call: 'TritonClient', source: 'client' });
  }
  rest = rest.replace(/\/+$/, '');
  if (rest === '' || rest.includes('/')) {
    throw new TritonError({ code: Status.INVALID_ARGUMENT, details: `"${url}" is not a host:port address`, call: 'TritonClient', source: 'client' });
  }
  const hasPort = /:\d+$/.test(rest) && !/^\[[^\]]*\]$/.test(rest);
  return { target: hasPort ? rest : `${rest}:${tls ? 443 : 8001}`, tls };
}

function parseUrlList(urls: readonly string[]): ParsedUrl {
  const invalid = (details: string): TritonError =>
    new TritonError({ code: Status.INVALID_ARGUMENT, details, call: 'TritonClient', source: 'client' });
  if (urls.length === 0) throw invalid('url is an empty list: give at least one address');
  if (urls.length === 1) return parseUrl(urls[0]!);
  const parsed = urls.map((u) => parseUrl(u));
  const tls = parsed[0]!.tls;
  if (parsed.some((p) => p.tls !== tls)) throw invalid(`the addresses of ${JSON.stringify(urls)} mix TLS and plain schemes`);
  const v4 = parsed.every((p) => ipv4Address.test(p.target));
  const v6 = parsed.every((p) => ipv6Address.test(p.target));
  if (!v4 && !v6) {
    throw invalid(
      `a list of servers must be IPv4 or IPv6 ip:port addresses (gRPC resolves no host names in a list), got ${JSON.stringify(urls)}; ` +
        'for host names give one dns:///NAME:PORT target whose name resolves to every server (e.g. a headless Kubernetes Service)',
    );
  }
  return { target: `${v4 ? 'ipv4' : 'ipv6'}:${parsed.map((p) => p.target).join(',')}`, tls, several: true };
}

function toBuffer(value: string | Buffer | undefined): Buffer | null {
  if (value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value) : value;
}

type UnaryInvoker<T> = (metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<T>) => grpc.ClientUnaryCall;

interface UnaryContext {
  model?: string | undefined;
  requestId?: string | undefined;
}

/**
 * A typed client of Triton's KServe v2 gRPC protocol: health, metadata, model configuration,
 * repository control, statistics, and inference with typed tensors. Works with any Triton server
 * (NVIDIA's tritonserver with any backend, or this project's dev server).
 *
 * ```ts
 * const client = new TritonClient({ url: 'localhost:8001' });
 * if (await client.serverReady()) console.log(await client.modelMetadata('llama_fp16'));
 * client.close();
 * ```
 */
export class TritonClient {
  /** `host:port` the client connects to. */
  readonly target: string;
  private readonly stub: GRPCInferenceServiceClient;
  private readonly headers: Headers | HeadersProvider | undefined;
  private readonly timeoutMs: number | undefined;
  private readonly connectTimeoutMs: number;
  private readonly retry: RetrySettings | undefined;
  private readonly active = new Set<{ cancel(): void }>();
  private closed = false;
  private readonly logger: Logger | undefined;
  private readonly minLogLevel: number;
  /** What streams need from the client. @internal */
  protected readonly streamHost: StreamHost;

  /** Creates the client; the connection is made on the first call. */
  constructor(options: TritonClientOptions = {}) {
    const { target, tls: urlTls, several } = parseUrl(options.url ?? (process.env['TRITON_URL'] || 'localhost:8001'));
    this.target = target;
    this.headers = options.headers;
    this.timeoutMs = options.timeoutMs;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.retry = options.retry === false ? undefined : retrySettings(options.retry ?? {});

    const tls = options.tls ?? urlTls ?? false;
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? int32Max,
      'grpc.max_send_message_length': options.maxSendMessageBytes ?? int32Max,
    };
    if (options.keepalive) {
      if (options.keepalive.timeMs !== undefined) channelOptions['grpc.keepalive_time_ms'] = options.keepalive.timeMs;
      if (options.keepalive.timeoutMs !== undefined) channelOptions['grpc.keepalive_timeout_ms'] = options.keepalive.timeoutMs;
      if (options.keepalive.permitWithoutCalls !== undefined) {
        channelOptions['grpc.keepalive_permit_without_calls'] = options.keepalive.permitWithoutCalls ? 1 : 0;
      }
    }
    const loadBalancing = options.loadBalancing ?? (several ? 'round_robin' : undefined);
    if (loadBalancing !== undefined) {
      if (loadBalancing !== 'pick_first' && loadBalancing !== 'round_robin') {
        throw new TritonError({ code: Status.INVALID_ARGUMENT, details: `loadBalancing must be "pick_first" or "round_robin", got "${String(loadBalancing)}"`, call: 'TritonClient', source: 'client' });
      }
    }
    const config = serviceConfig(loadBalancing, this.retry);
    if (config !== undefined) channelOptions['grpc.service_config'] = config;
    let credentials: grpc.ChannelCredentials;
    if (tls === false) {
      credentials = grpc.credentials.createInsecure();
    } else {
      const settings: TlsOptions = tls === true ? {} : tls;
      credentials = grpc.credentials.createSsl(toBuffer(settings.rootCerts), toBuffer(settings.privateKey), toBuffer(settings.certChain));
      if (settings.serverName) {
        channelOptions['grpc.ssl_target_name_override'] = settings.serverName;
        channelOptions['grpc.default_authority'] = settings.serverName;
      }
    }
    this.streamHost = {
      target,
      openInferStream: (streamOptions, context) => this.openInferStream(streamOptions, context),
      releaseCall: (call) => {
        this.active.delete(call);
      },
    };
    const Service = service();
    this.stub = new Service(target, credentials, {
      ...channelOptions,
      ...(options.channelOptions ?? {}),
      ...(options.interceptors ? { interceptors: [...options.interceptors] } : {}),
    });
    const logLevel = options.logLevel ?? 'info';
    if (!logLevels.includes(logLevel)) {
      throw new TritonError({ code: Status.INVALID_ARGUMENT, details: `logLevel must be one of ${logLevels.join(', ')}, got "${String(logLevel)}"`, call: 'TritonClient', source: 'client' });
    }
    this.logger = options.logger;
    this.minLogLevel = logLevels.indexOf(logLevel);
  }

  // ---- health and metadata ---------------------------------------------------------------------

  /** Whether the server is live (`ServerLive`). Retried on `UNAVAILABLE`. */
  async serverLive(options: CallOptions = {}): Promise<boolean> {
    const response = await this.unary<ServerLiveResponse__Output>('ServerLive', options, {}, (m, o, cb) => this.stub.ServerLive({}, m, o, cb));
    return response.live;
  }

  /** Whether the server is ready (`ServerReady`): live and all its models loaded. Retried on `UNAVAILABLE`. */
  async serverReady(options: CallOptions = {}): Promise<boolean> {
    const response = await this.unary<ServerReadyResponse__Output>('ServerReady', options, {}, (m, o, cb) => this.stub.ServerReady({}, m, o, cb));
    return response.ready;
  }

  /** The server's name, version and protocol extensions (`ServerMetadata`). Retried on `UNAVAILABLE`. */
  async serverMetadata(options: CallOptions = {}): Promise<ServerMetadata> {
    const r = await this.unary<ServerMetadataResponse__Output>('ServerMetadata', options, {}, (m, o, cb) => this.stub.ServerMetadata({}, m, o, cb));
    return { name: r.name, version: r.version, extensions: [...r.extensions] };
  }

  /** Whether a model (version) is ready to serve (`ModelReady`). Retried on `UNAVAILABLE`. */
  async modelReady(model: string, options: ModelCallOptions = {}): Promise<boolean> {
    const request = { name: model, version: options.version ?? '' };
    const r = await this.unary<ModelReadyResponse__Output>('ModelReady', options, { model }, (m, o, cb) => this.stub.ModelReady(request, m, o, cb));
    return r.ready;
  }

  /** A model's inputs, outputs, versions and platform (`ModelMetadata`). Retried on `UNAVAILABLE`. */
  async modelMetadata(model: string, options: ModelCallOptions = {}): Promise<ModelMetadata> {
    const request = { name: model, version: options.version ?? '' };
    const r = await this.unary<ModelMetadataResponse__Output>('ModelMetadata', options, { model }, (m, o, cb) => this.stub.ModelMetadata(request, m, o, cb));
    const tensor = (t: { name: string; datatype: string; shape: string[] }): TensorMetadata => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape.map(Number),
    });
    return { name: r.name, versions: [...r.versions], platform: r.platform, inputs: r.inputs.map(tensor), outputs: r.outputs.map(tensor) };
  }

  /** A model's configuration (`ModelConfig`), as the server completed it. Retried on `UNAVAILABLE`. */
  async modelConfig(model: string, options: ModelCallOptions = {}): Promise<ModelConfig> {
    const request = { name: model, version: options.version ?? '' };
    const r = await this.unary<ModelConfigResponse__Output>('ModelConfig', options, { model }, (m, o, cb) => this.camelCaseCall('ModelConfig', request, m, o, cb));
    if (!r.config) {
      throw new TritonError({ code: Status.INTERNAL, details: 'the server sent no config', call: 'ModelConfig', source: 'status', target: this.target, model });
    }
    return r.config;
  }

  /** The models of the repository with their state (`RepositoryIndex`). Retried on `UNAVAILABLE`. */
  async repositoryIndex(options: RepositoryIndexOptions = {}): Promise<RepositoryModel[]> {
    const request = { repository_name: options.repositoryName ?? '', ready: options.ready ?? false };
    const r = await this.unary<RepositoryIndexResponse__Output>('RepositoryIndex', options, {}, (m, o, cb) => this.stub.RepositoryIndex(request, m, o, cb));
    return r.models.map((model) => ({ name: model.name, version: model.version, state: model.state, reason: model.reason }));
  }

  /** Loads (or reloads) a model (`RepositoryModelLoad`; the server must run with `--model-control-mode explicit`). Not retried. */
  async loadModel(model: string, options: CallOptions = {}): Promise<void> {
    const request = { model_name: model, repository_name: '', parameters: {} };
    await this.unary<RepositoryModelLoadResponse__Output>('RepositoryModelLoad', options, { model }, (m, o, cb) => this.stub.RepositoryModelLoad(request, m, o, cb));
  }

  /** Unloads a model (`RepositoryModelUnload`). Not retried. */
  async unloadModel(model: string, options: CallOptions = {}): Promise<void> {
    const request = { model_name: model, repository_name: '', parameters: {} };
    await this.unary<RepositoryModelUnloadResponse__Output>('RepositoryModelUnload', options, { model }, (m, o, cb) => this.stub.RepositoryModelUnload(request, m, o, cb));
  }

  /** Inference statistics of one model, or of every model when `model` is omitted (`ModelStatistics`). Retried on `UNAVAILABLE`. */
  async modelStatistics(model?: string, options: ModelCallOptions = {}): Promise<ModelStatistics[]> {
    const request = { name: model ?? '', version: options.version ?? '' };
    const context = model === undefined ? {} : { model };
    const r = await this.unary<ModelStatisticsResponse__Output>('ModelStatistics', options, context, (m, o, cb) => this.camelCaseCall('ModelStatistics', request, m, o, cb));
    return r.modelStats;
  }

  // ---- inference -------------------------------------------------------------------------------

  /**
   * One inference (`ModelInfer`): validates and encodes the inputs (raw contents by default,
   * `encoding: 'typed'` for typed contents), and decodes the outputs whichever way the server
   * sent them. Decoupled models (streaming LLMs) answer only through {@link streamInfer}.
   * Not retried.
   */
  async infer(request: InferRequest, options: CallOptions = {}): Promise<InferResult> {
    const message = buildInferRequest(request, 'infer');
    const response = await this.unary<ModelInferResponse__Output>('ModelInfer', options, { model: request.model, requestId: request.id }, (m, o, cb) =>
      this.stub.ModelInfer(message, m, o, cb),
    );
    return new InferResult(response, true);
  }

  /**
   * One request on its own `ModelStreamInfer` stream: yields each response (a decoupled model
   * may send many) until Triton flags the final one. Leaving the loop early, aborting `signal`
   * or the deadline passing cancels the gRPC call, which the server sees.
   *
   * ```ts
   * for await (const response of client.streamInfer({ model, inputs })) console.log(response.outputNames);
   * ```
   */
  streamInfer(request: InferRequest, options: CallOptions = {}): InferResponseStream {
    const deadline = absoluteDeadline(options, this.timeoutMs);
    const stream = new InferStream(this.streamHost, { ...options, deadline, dedicated: true });
    return stream.infer(request, { signal: options.signal });
  }

  /**
   * Opens a `ModelStreamInfer` stream that several requests can share ({@link InferStream.infer});
   * close it with {@link InferStream.close}. `options.signal` and the deadline apply to the whole
   * stream.
   */
  openStream(options: CallOptions = {}): InferStream {
    return new InferStream(this.streamHost, { ...options, deadline: absoluteDeadline(options, undefined) });
  }

  /**
   * Closes the client: calls in progress are cancelled (they reject with `CANCELLED`) and the
   * channel is shut down. Later calls fail.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of [...this.active]) call.cancel();
    this.active.clear();
    this.stub.close();
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private async openInferStream(options: CallOptions, context: ErrorContext): Promise<InferDuplex> {
    this.assertOpen(context);
    const deadline = absoluteDeadline(options, undefined);
    const metadata = await this.metadataFor(options.headers, context);
    await this.waitForConnection(deadline, options.signal, context);
    this.assertOpen(context);
    if (options.signal?.aborted) throw cancelledError(context, options.signal.reason);
    const duplex = this.stub.ModelStreamInfer(metadata, deadline === undefined ? {} : { deadline });
    this.active.add(duplex);
    if (options.signal) {
      const signal = options.signal;
      const onAbort = (): void => duplex.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      duplex.on('status', () => signal.removeEventListener('abort', onAbort));
    }
    return duplex;
  }

  /** Sends an entry to the logger when its level is enabled. @internal */
  protected log(level: Exclude<LogLevel, 'silent'>, message: string, fields: LogFields): void {
    if (!this.logger || logLevels.indexOf(level) < this.minLogLevel) return;
    try {
      this.logger[level]?.(message, { target: this.target, ...fields });
    } catch {
      // A failing logger must not fail the call it reports on.
    }
  }

  /** The context errors of a call carry. @internal */
  protected errorContext(call: string, model?: string, requestId?: string): ErrorContext {
    const context: ErrorContext = { call, target: this.target };
    if (model !== undefined) context.model = model;
    if (requestId !== undefined && requestId !== '') context.requestId = requestId;
    return context;
  }

  /** The absolute deadline of a call: its own, or the client's default `timeoutMs`. @internal */
  protected deadlineOf(options: CallOptions): number | undefined {
    return absoluteDeadline(options, this.timeoutMs);
  }

  private assertOpen(context: ErrorContext): void {
    if (this.closed) {
      throw new TritonError({ ...context, code: Status.CANCELLED, details: 'the client is closed', source: 'client' });
    }
  }

  private async metadataFor(extra: Headers | undefined, context: ErrorContext): Promise<grpc.Metadata> {
    const metadata = new grpc.Metadata();
    let base: Headers | undefined;
    try {
      base = typeof this.headers === 'function' ? await this.headers() : this.headers;
    } catch (error) {
      throw new TritonError({ ...context, code: Status.UNAUTHENTICATED, details: `the headers function failed: ${String(error)}`, source: 'client', cause: error });
    }
    for (const headers of [base, extra]) {
      for (const [key, value] of Object.entries(headers ?? {})) {
        const name = key.toLowerCase();
        const values: readonly (string | Buffer)[] = Array.isArray(value) ? value : [value as string | Buffer];
        for (const item of values) {
          if (name.endsWith('-bin')) metadata.add(name, typeof item === 'string' ? Buffer.from(item) : item);
          else if (typeof item === 'string') metadata.add(name, item);
          else throw new TritonError({ ...context, code: Status.INVALID_ARGUMENT, details: `header "${key}" has a binary value; binary header names end in -bin`, source: 'client' });
        }
      }
    }
    return metadata;
  }

  /**
   * Waits (at most `connectTimeoutMs`) while the channel is connecting, so that a server that
   * does not answer fails fast and clearly. A refused connection is left to the call itself,
   * which fails at once with gRPC's reason.
   */
  private async waitForConnection(deadline: number | undefined, signal: AbortSignal | undefined, context: ErrorContext): Promise<void> {
    const channel = this.stub.getChannel();
    let state = channel.getConnectivityState(true);
    if (state === grpc.connectivityState.READY || state === grpc.connectivityState.TRANSIENT_FAILURE) return;
    const connectLimit = Date.now() + this.connectTimeoutMs;
    const limit = Math.min(connectLimit, deadline ?? Number.POSITIVE_INFINITY);
    while (state === grpc.connectivityState.IDLE || state === grpc.connectivityState.CONNECTING) {
      if (signal?.aborted) throw cancelledError(context, signal.reason);
      const changed = await new Promise<boolean>((resolve) => {
        const onAbort = (): void => resolve(true);
        signal?.addEventListener('abort', onAbort, { once: true });
        channel.watchConnectivityState(state, limit, (error) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(!error);
        });
      });
      if (signal?.aborted) throw cancelledError(context, signal.reason);
      if (!changed) {
        if (deadline !== undefined && deadline <= connectLimit) {
          throw new TritonError({ ...context, code: Status.DEADLINE_EXCEEDED, details: 'deadline exceeded while connecting', source: 'client' });
        }
        throw new TritonError({
          ...context,
          code: Status.UNAVAILABLE,
          details: `no connection within ${this.connectTimeoutMs} ms`,
          source: 'status',
          message: `cannot reach Triton at ${this.target} (${context.call}): no connection within ${this.connectTimeoutMs} ms`,
        });
      }
      state = channel.getConnectivityState(true);
    }
    if (state === grpc.connectivityState.SHUTDOWN) this.assertOpen(context);
  }

  /** A unary call decoded by {@link camelCaseMethod}'s definition. */
  private camelCaseCall<T>(method: CamelCaseMethod, request: object, metadata: grpc.Metadata, options: grpc.CallOptions,
    callback: grpc.requestCallback<T>): grpc.ClientUnaryCall {
    const definition = camelCaseMethod(method);
    return this.stub.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize as (bytes: Buffer) => T,
      request, metadata, options, callback);
  }

  private async unary<T>(call: string, options: CallOptions, ctx: UnaryContext, invoke: UnaryInvoker<T>): Promise<T> {
    const context = this.errorContext(call, ctx.model, ctx.requestId);
    this.assertOpen(context);
    const idempotent = idempotentMethods.includes(call);
    const deadline = absoluteDeadline(options, this.timeoutMs ?? (idempotent ? controlCallTimeoutMs : undefined));
    const signal = options.signal;
    if (signal?.aborted) throw cancelledError(context, signal.reason);
    const metadata = await this.metadataFor(options.headers, context);
    const started = performance.now();
    const fields = { call, model: ctx.model };
    try {
      await this.waitForConnection(deadline, signal, context);
      const { response, attempts } = await this.unaryOnce(invoke, metadata, deadline, signal, context);
      if (attempts > 1) {
        this.log('warn', `${call} succeeded at attempt ${attempts} of ${this.retry?.maxAttempts ?? attempts} (gRPC retried it)`, fields);
      }
      this.log('debug', `${call} ended`, { ...fields, code: 'OK', attempts, ms: Math.round(performance.now() - started) });
      return response;
    } catch (error) {
      const code = error instanceof TritonError ? error.codeName : 'UNKNOWN';
      this.log('debug', `${call} ended`, { ...fields, code, ms: Math.round(performance.now() - started) });
      throw error;
    }
  }

  /** One call, with gRPC's retries: `attempts` from the header grpc-js adds to a retried call's response. */
  private unaryOnce<T>(invoke: UnaryInvoker<T>, metadata: grpc.Metadata, deadline: number | undefined, signal: AbortSignal | undefined,
    context: ErrorContext): Promise<{ response: T; attempts: number }> {
    return new Promise((resolve, reject) => {
      let cancelledByCaller = false;
      let attempts = 1;
      const onAbort = (): void => {
        cancelledByCaller = true;
        call.cancel();
      };
      const call = invoke(metadata, deadline === undefined ? {} : { deadline }, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        this.active.delete(handle);
        if (cancelledByCaller) reject(cancelledError(context, signal?.reason));
        else if (error) reject(this.closed ? cancelledError(context, undefined, 'the client was closed') : toTritonError(error, context));
        else if (response === undefined) reject(new TritonError({ ...context, code: Status.INTERNAL, details: 'empty response', source: 'status' }));
        else resolve({ response, attempts });
      });
      call.on('metadata', (received: grpc.Metadata) => {
        const previous = Number(received.get('grpc-previous-rpc-attempts')[0] ?? 0);
        if (Number.isSafeInteger(previous) && previous > 0) attempts = previous + 1;
      });
      const handle = { cancel: (): void => call.cancel() };
      this.active.add(handle);
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
