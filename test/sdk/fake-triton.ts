// An in-process fake of Triton's gRPC service for the SDK's unit tests: health and metadata,
// configurable failures, an echo ModelInfer, and a fake LLM on ModelStreamInfer that follows
// Triton's streaming rules (request ids, triton_final_response, in-band errors, `stop`).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { descriptor } from '../../sdk/src/generated/descriptor.js';
import type { ProtoGrpcType } from '../../sdk/src/generated/grpc_service.js';
import type { GRPCInferenceServiceHandlers } from '../../sdk/src/generated/inference/GRPCInferenceService.js';
import type { ModelConfig } from '../../sdk/src/generated/inference/ModelConfig.js';
import type { InferParameter } from '../../sdk/src/generated/inference/InferParameter.js';
import type { ModelInferRequest__Output } from '../../sdk/src/generated/inference/ModelInferRequest.js';
import type { ModelInferResponse } from '../../sdk/src/generated/inference/ModelInferResponse.js';
import type { ModelStreamInferResponse } from '../../sdk/src/generated/inference/ModelStreamInferResponse.js';
import { decodeOutput, encodeBytes, encodeRaw, encodeTyped, type InferInput, type InferOutput } from '../../sdk/src/tensors.js';

export interface Failure {
  remaining: number;
  code: grpc.status;
  details: string;
}

/** A text-style input of the fake LLM's config. */
function input(name: string, dataType: string, dims: number[] = [1]): NonNullable<ModelConfig['input']>[number] {
  return { name, data_type: dataType as 'TYPE_INT32', dims, optional: true };
}

/** NVIDIA's ensemble, as tensorrtllm_backend ships it: batching, not decoupled, no token outputs. */
export const ensembleConfig: ModelConfig = {
  name: 'ensemble',
  platform: 'ensemble',
  max_batch_size: 64,
  input: [
    input('text_input', 'TYPE_STRING'),
    input('max_tokens', 'TYPE_INT32'),
    input('bad_words', 'TYPE_STRING', [-1]),
    input('stop_words', 'TYPE_STRING', [-1]),
    input('end_id', 'TYPE_INT32'),
    input('pad_id', 'TYPE_INT32'),
    input('top_k', 'TYPE_INT32'),
    input('top_p', 'TYPE_FP32'),
    input('temperature', 'TYPE_FP32'),
    input('length_penalty', 'TYPE_FP32'),
    input('repetition_penalty', 'TYPE_FP32'),
    input('min_length', 'TYPE_INT32'),
    input('presence_penalty', 'TYPE_FP32'),
    input('frequency_penalty', 'TYPE_FP32'),
    input('random_seed', 'TYPE_UINT64'),
    input('return_log_probs', 'TYPE_BOOL'),
    input('beam_width', 'TYPE_INT32'),
    input('stream', 'TYPE_BOOL'),
  ],
  output: [{ name: 'text_output', data_type: 'TYPE_STRING', dims: [-1] }, { name: 'cum_log_probs', data_type: 'TYPE_FP32', dims: [-1] }],
};

/** A decoupled model without batching, with token outputs, `stop`, and the alternative input names `seed` / `min_tokens`. */
export const nobatchConfig: ModelConfig = {
  name: 'nobatch',
  backend: 'llm',
  max_batch_size: 0,
  model_transaction_policy: { decoupled: true },
  input: [
    input('text_input', 'TYPE_STRING'),
    input('max_tokens', 'TYPE_INT32'),
    input('stop_words', 'TYPE_STRING', [-1]),
    input('seed', 'TYPE_INT64'),
    input('min_tokens', 'TYPE_INT32'),
    input('stream', 'TYPE_BOOL'),
    input('stop', 'TYPE_BOOL'),
    input('exclude_input_in_output', 'TYPE_BOOL'),
  ],
  output: [{ name: 'text_output', data_type: 'TYPE_STRING', dims: [-1] }, { name: 'output_ids', data_type: 'TYPE_INT32', dims: [-1, -1] }],
};

/** Triton's vLLM backend as its auto-complete declares it: options in `sampling_parameters`, usage and log probabilities asked by flag. */
export const vllmConfig: ModelConfig = {
  name: 'vllm',
  backend: 'vllm',
  max_batch_size: 0,
  model_transaction_policy: { decoupled: true },
  input: [
    input('text_input', 'TYPE_STRING'),
    input('stream', 'TYPE_BOOL'),
    input('sampling_parameters', 'TYPE_STRING'),
    input('exclude_input_in_output', 'TYPE_BOOL'),
    input('return_finish_reason', 'TYPE_BOOL'),
    input('return_cumulative_logprob', 'TYPE_BOOL'),
    input('return_logprobs', 'TYPE_BOOL'),
    input('return_num_input_tokens', 'TYPE_BOOL'),
    input('return_num_output_tokens', 'TYPE_BOOL'),
  ],
  output: [
    { name: 'text_output', data_type: 'TYPE_STRING', dims: [-1] },
    { name: 'finish_reason', data_type: 'TYPE_STRING', dims: [-1] },
    { name: 'cumulative_logprob', data_type: 'TYPE_FP32', dims: [-1] },
    { name: 'logprobs', data_type: 'TYPE_STRING', dims: [-1] },
    { name: 'num_input_tokens', data_type: 'TYPE_UINT32', dims: [1] },
    { name: 'num_output_tokens', data_type: 'TYPE_UINT32', dims: [-1] },
  ],
};

/** The fake's log probability of the token with id `id`. */
export const fakeLogProb = (id: number): number => -(id - 99) / 8;

/** A model that is neither decoupled nor an ensemble: one response per request. */
export const unaryConfig: ModelConfig = {
  ...nobatchConfig,
  name: 'unary',
  max_batch_size: 1,
  model_transaction_policy: { decoupled: false },
};

export interface RecordedCall {
  method: string;
  metadata: Record<string, string[]>;
}

interface Generation {
  timer: NodeJS.Timeout | undefined;
  stop(): void;
}

function metadataRecord(metadata: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const key of Object.keys(metadata.getMap())) {
    out[key] = metadata.get(key).map((v) => (Buffer.isBuffer(v) ? `bin:${v.toString('hex')}` : String(v)));
  }
  return out;
}

/** The request's inputs, decoded (raw or typed) with the SDK's own decoder. */
export function requestInputs(request: ModelInferRequest__Output): Map<string, InferOutput> {
  const inputs = new Map<string, InferOutput>();
  request.inputs.forEach((tensor, index) => {
    const raw = request.raw_input_contents.length > 0 ? request.raw_input_contents[index] : undefined;
    inputs.set(tensor.name, decodeOutput({ ...tensor }, raw));
  });
  return inputs;
}

function scalar(inputs: Map<string, InferOutput>, name: string): unknown {
  const tensor = inputs.get(name);
  if (!tensor) return undefined;
  const data = tensor.data as ArrayLike<unknown>;
  const value = data[0];
  return Buffer.isBuffer(value) ? value.toString('utf8') : value;
}

function final(flag: boolean): Record<string, InferParameter> {
  return { triton_final_response: { bool_param: flag } };
}

export class FakeTriton {
  readonly server = new grpc.Server();
  address = '';
  readonly calls: RecordedCall[] = [];
  readonly failures = new Map<string, Failure>();
  readonly models = new Map<string, ModelConfig>([
    ['ensemble', ensembleConfig],
    ['nobatch', nobatchConfig],
    ['unary', unaryConfig],
    ['vllm', vllmConfig],
  ]);
  /** Every request received on ModelStreamInfer calls, in order. */
  readonly streamRequests: ModelInferRequest__Output[] = [];
  /** Every ModelInfer request. */
  readonly inferRequests: ModelInferRequest__Output[] = [];
  /** Ids of `stop` requests received. */
  readonly stopRequests: string[] = [];
  /** ModelStreamInfer calls opened / cancelled by the client. */
  streamsOpened = 0;
  streamsCancelled = 0;
  /** ModelStreamInfer calls neither ended by the server nor cancelled by the client yet. */
  openStreams = 0;
  /** Unary calls cancelled by the client (or by their deadline). */
  unaryCancelled = 0;
  /** Delay between streamed tokens. */
  tokenDelayMs = 1;

  static async start(credentials = grpc.ServerCredentials.createInsecure()): Promise<FakeTriton> {
    const fake = new FakeTriton();
    const definition = protoLoader.fromJSON(descriptor as Parameters<typeof protoLoader.fromJSON>[0], {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    fake.server.addService(proto.inference.GRPCInferenceService.service, fake.handlers() as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      fake.server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    fake.address = `127.0.0.1:${port}`;
    return fake;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }

  private failure(method: string): grpc.ServiceError | null {
    const failure = this.failures.get(method);
    if (!failure || failure.remaining <= 0) return null;
    failure.remaining -= 1;
    return Object.assign(new Error(failure.details), { code: failure.code, details: failure.details, metadata: new grpc.Metadata() });
  }

  private record(method: string, metadata: grpc.Metadata): void {
    this.calls.push({ method, metadata: metadataRecord(metadata) });
  }

  private unknownModel(name: string): grpc.ServiceError {
    const details = `Request for unknown model: '${name}' is not found`;
    return Object.assign(new Error(details), { code: grpc.status.NOT_FOUND, details, metadata: new grpc.Metadata() });
  }

  private handlers(): Partial<GRPCInferenceServiceHandlers> {
    return {
      ServerLive: (call, callback) => {
        this.record('ServerLive', call.metadata);
        const error = this.failure('ServerLive');
        if (error) callback(error);
        else callback(null, { live: true });
      },
      ServerReady: (call, callback) => {
        this.record('ServerReady', call.metadata);
        callback(this.failure('ServerReady'), { ready: true });
      },
      ServerMetadata: (call, callback) => {
        this.record('ServerMetadata', call.metadata);
        const headers = Object.entries(metadataRecord(call.metadata)).flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`));
        callback(null, { name: 'fake', version: '0.0.0', extensions: headers });
      },
      ModelReady: (call, callback) => {
        this.record('ModelReady', call.metadata);
        callback(null, { ready: this.models.has(call.request.name) });
      },
      ModelMetadata: (call, callback) => {
        this.record('ModelMetadata', call.metadata);
        const config = this.models.get(call.request.name);
        if (!config) return callback(this.unknownModel(call.request.name));
        const batching = (config.max_batch_size ?? 0) > 0;
        const tensor = (t: { name?: string; data_type?: string | number; dims?: unknown[] }) => ({
          name: t.name ?? '',
          datatype: String(t.data_type ?? '').replace('TYPE_', '').replace('STRING', 'BYTES'),
          shape: [...(batching ? [-1] : []), ...(t.dims ?? []).map(Number)],
        });
        callback(null, {
          name: config.name ?? '',
          versions: ['1'],
          platform: config.platform || config.backend || '',
          inputs: (config.input ?? []).map(tensor),
          outputs: (config.output ?? []).map(tensor),
        });
      },
      ModelConfig: (call, callback) => {
        this.record('ModelConfig', call.metadata);
        const error = this.failure('ModelConfig');
        if (error) return callback(error);
        const config = this.models.get(call.request.name);
        if (!config) return callback(this.unknownModel(call.request.name));
        callback(null, { config });
      },
      RepositoryIndex: (call, callback) => {
        this.record('RepositoryIndex', call.metadata);
        callback(null, { models: [...this.models.keys()].map((name) => ({ name, version: '1', state: 'READY', reason: '' })) });
      },
      ModelStatistics: (call, callback) => {
        this.record('ModelStatistics', call.metadata);
        callback(null, { model_stats: [{ name: call.request.name || 'all', version: '1', inference_count: '3', inference_stats: { success: { count: '3', ns: '123456789012' } } }] });
      },
      RepositoryModelLoad: (call, callback) => {
        this.record('RepositoryModelLoad', call.metadata);
        callback(this.failure('RepositoryModelLoad'), {});
      },
      RepositoryModelUnload: (call, callback) => {
        this.record('RepositoryModelUnload', call.metadata);
        callback(null, {});
      },
      ModelInfer: (call, callback) => {
        this.record('ModelInfer', call.metadata);
        this.inferRequests.push(call.request);
        const error = this.failure('ModelInfer');
        if (error) return callback(error);
        const sleep = call.request.parameters['sleep_ms'];
        if (sleep) {
          // Never answers before the client gives up; counts the cancellation.
          call.on('cancelled', () => {
            this.unaryCancelled += 1;
          });
          return;
        }
        callback(null, this.echo(call.request));
      },
      ModelStreamInfer: (call) => this.streamInfer(call),
    };
  }

  /** Echoes every input as `<name>_out`; typed contents when the request parameter `typed_response` is true. */
  private echo(request: ModelInferRequest__Output): ModelInferResponse {
    const typed = request.parameters['typed_response']?.bool_param === true;
    const inputs = requestInputs(request);
    // Decoded data re-encodes as the same datatype (FP16 / BF16 decode to exact Float32Arrays).
    const outputs = [...inputs.values()].map(
      (tensor) => ({ name: `${tensor.name}_out`, datatype: tensor.datatype, shape: tensor.shape, data: tensor.data }) as InferInput,
    );
    return {
      model_name: request.model_name,
      model_version: '1',
      id: request.id,
      outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: [...o.shape], ...(typed ? { contents: encodeTyped(o) } : {}) })),
      raw_output_contents: typed ? [] : outputs.map((o) => encodeRaw(o)),
    };
  }

  private streamInfer(call: grpc.ServerDuplexStream<ModelInferRequest__Output, ModelStreamInferResponse>): void {
    this.record('ModelStreamInfer', call.metadata);
    this.streamsOpened += 1;
    this.openStreams += 1;
    const running = new Map<string, Generation>();
    let readsDone = false;
    let ended = false;
    const close = (): void => {
      if (!ended) this.openStreams -= 1;
      ended = true;
    };
    const maybeEnd = (): void => {
      if (readsDone && running.size === 0 && !ended) {
        close();
        call.end();
      }
    };
    const send = (message: ModelStreamInferResponse): void => {
      if (!ended && !call.cancelled) call.write(message);
    };
    call.on('cancelled', () => {
      close();
      this.streamsCancelled += 1;
      for (const generation of running.values()) generation.stop();
      running.clear();
    });
    call.on('end', () => {
      readsDone = true;
      maybeEnd();
    });
    call.on('data', (request: ModelInferRequest__Output) => {
      this.streamRequests.push(request);
      const id = request.id;
      const wantsFinal = request.parameters['triton_enable_empty_final_response']?.bool_param === true;
      const config = this.models.get(request.model_name);
      if (!config) {
        send({ error_message: `Request for unknown model: '${request.model_name}' is not found`, infer_response: { id } });
        return;
      }
      const inputs = requestInputs(request);
      if (scalar(inputs, 'stop') === true) {
        this.stopRequests.push(id);
        const target = running.get(id);
        if (target) {
          running.delete(id);
          target.stop();
          send({ error_message: 'request stopped by a `stop` request', infer_response: { id } });
        }
        send({ infer_response: { id, model_name: request.model_name, parameters: final(true) } });
        maybeEnd();
        return;
      }
      const prompt = scalar(inputs, 'text_input');
      const sampling = JSON.parse(String(scalar(inputs, 'sampling_parameters') ?? '{}')) as { max_tokens?: number };
      const maxTokens = Number(scalar(inputs, 'max_tokens') ?? sampling.max_tokens ?? 16);
      const flag = (name: string): boolean => scalar(inputs, name) === true;
      if (prompt === 'fail') {
        send({ error_message: "input 'text_input': the fake refuses this prompt", infer_response: { id } });
        return;
      }
      const streaming = scalar(inputs, 'stream') === true;
      const requested = new Set(request.outputs.map((o) => o.name));
      const wants = (name: string): boolean => requested.size === 0 || requested.has(name);
      const declared = new Set((config.output ?? []).map((o) => o.name));
      const response = (words: string[], ids: number[], isFinal: boolean): ModelStreamInferResponse => {
        const tensors: InferInput[] = [];
        if (words.length > 0 || ids.length > 0) {
          if (wants('text_output')) tensors.push({ name: 'text_output', datatype: 'BYTES', shape: [1, 1], data: [words.join('')] });
          if (declared.has('output_ids') && requested.has('output_ids')) tensors.push({ name: 'output_ids', datatype: 'INT32', shape: [1, 1, ids.length], data: ids });
        }
        // The vLLM backend's flagged outputs, on every response ("None" until the last, as vLLM says it).
        const flagged = (name: string, output: string): boolean => flag(name) && declared.has(output) && wants(output);
        if (flagged('return_finish_reason', 'finish_reason')) {
          tensors.push({ name: 'finish_reason', datatype: 'BYTES', shape: [1], data: [isFinal ? (length === maxTokens ? 'length' : 'stop') : 'None'] });
        }
        if (flagged('return_num_input_tokens', 'num_input_tokens')) {
          tensors.push({ name: 'num_input_tokens', datatype: 'UINT32', shape: [1], data: [String(prompt).split(' ').length] });
        }
        if (flagged('return_num_output_tokens', 'num_output_tokens')) tensors.push({ name: 'num_output_tokens', datatype: 'UINT32', shape: [1], data: [ids.length] });
        if (flagged('return_logprobs', 'logprobs')) {
          const positions = ids.map((tokenId, i) => ({ [tokenId]: { logprob: fakeLogProb(tokenId), rank: 1, decoded_token: words[i] } }));
          tensors.push({ name: 'logprobs', datatype: 'BYTES', shape: [1], data: [JSON.stringify(positions)] });
        }
        return {
          infer_response: {
            id,
            model_name: request.model_name,
            model_version: '1',
            parameters: wantsFinal ? final(isFinal) : {},
            outputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] })),
            raw_output_contents: tensors.map((t) => (t.datatype === 'BYTES' ? encodeBytes(t.data) : encodeRaw(t))),
          },
        };
      };
      // Prompts starting with "short" end (as at an end-of-sequence token) after 2 tokens.
      const length = typeof prompt === 'string' && prompt.startsWith('short') ? Math.min(2, maxTokens) : maxTokens;
      const words = Array.from({ length }, (_, i) => `t${i} `);
      const ids = words.map((_, i) => 100 + i);
      let step = 0;
      const generation: Generation = {
        timer: undefined,
        stop: () => {
          if (generation.timer) clearTimeout(generation.timer);
        },
      };
      running.set(id, generation);
      const tick = (): void => {
        if (running.get(id) !== generation) return;
        if (!streaming) {
          running.delete(id);
          send(response(words, ids, true));
          maybeEnd();
          return;
        }
        if (step < words.length) {
          send(response([words[step]!], [ids[step]!], false));
          step += 1;
          generation.timer = setTimeout(tick, this.tokenDelayMs);
          return;
        }
        running.delete(id);
        if (wantsFinal) send(response([], [], true));
        maybeEnd();
      };
      // A non-streamed answer takes as long as streaming all its tokens would.
      generation.timer = setTimeout(tick, streaming ? this.tokenDelayMs : this.tokenDelayMs * words.length);
    });
  }
}

/** Inputs of a recorded request, as name -> { datatype, shape, values }. */
export function describeInputs(request: ModelInferRequest__Output): Record<string, { datatype: string; shape: number[]; values: unknown[] }> {
  const out: Record<string, { datatype: string; shape: number[]; values: unknown[] }> = {};
  for (const [name, tensor] of requestInputs(request)) {
    const values = Array.from(tensor.data as ArrayLike<unknown>, (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
    out[name] = { datatype: tensor.datatype, shape: tensor.shape, values };
  }
  return out;
}
