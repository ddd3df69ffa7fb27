// A bare KServe v2 gRPC client for end-to-end tests of the server (the SDK has its own).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { protosDir } from './paths.js';

export interface InferParameter {
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  parameter_choice?: string;
}

export interface InputTensor {
  name: string;
  datatype: string;
  shape: number[];
  contents?: { bytes_contents?: Buffer[]; int_contents?: number[]; fp32_contents?: number[]; bool_contents?: boolean[]; uint64_contents?: string[] };
}

export interface InferRequest {
  model_name: string;
  id?: string;
  inputs: InputTensor[];
  outputs?: { name: string }[];
  parameters?: Record<string, InferParameter>;
  raw_input_contents?: Buffer[];
}

export interface OutputTensor {
  name: string;
  datatype: string;
  shape: string[];
}

export interface InferResponse {
  model_name: string;
  id: string;
  outputs: OutputTensor[];
  raw_output_contents: Buffer[];
  parameters: Record<string, InferParameter>;
}

export interface StreamResponse {
  error_message: string;
  infer_response: InferResponse | null;
}

type Unary = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => grpc.ClientUnaryCall;

export class TestClient {
  private readonly client: grpc.Client & Record<string, unknown>;

  constructor(address: string) {
    const definition = protoLoader.loadSync(join(protosDir, 'grpc_service.proto'), {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: [protosDir],
    });
    const proto = grpc.loadPackageDefinition(definition) as unknown as {
      inference: { GRPCInferenceService: new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client };
    };
    this.client = new proto.inference.GRPCInferenceService(address, grpc.credentials.createInsecure()) as grpc.Client &
      Record<string, unknown>;
  }

  call<T>(method: string, request: object, deadlineMs = 60_000): Promise<T> {
    const fn = this.client[method] as Unary;
    return new Promise<T>((resolve, reject) => {
      fn.call(this.client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) =>
        error ? reject(error) : resolve(response as T),
      );
    });
  }

  infer(request: InferRequest): Promise<InferResponse> {
    return this.call<InferResponse>('ModelInfer', request);
  }

  stream(): grpc.ClientDuplexStream<InferRequest, StreamResponse> {
    const fn = this.client['ModelStreamInfer'] as (metadata?: grpc.Metadata) => grpc.ClientDuplexStream<InferRequest, StreamResponse>;
    return fn.call(this.client);
  }

  close(): void {
    this.client.close();
  }
}

/** Triton's BYTES wire layout for raw_input_contents: 4-byte little-endian length before each element. */
export function encodeBytesRaw(values: string[]): Buffer {
  return Buffer.concat(
    values.flatMap((value) => {
      const data = Buffer.from(value, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(data.length);
      return [length, data];
    }),
  );
}

export function decodeBytesRaw(raw: Buffer): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < raw.length; ) {
    const length = raw.readUInt32LE(offset);
    out.push(raw.subarray(offset + 4, offset + 4 + length).toString('utf8'));
    offset += 4 + length;
  }
  return out;
}

export function int32Raw(values: number[]): Buffer {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buffer.writeInt32LE(v, i * 4));
  return buffer;
}

export function readInt32s(raw: Buffer): number[] {
  const out: number[] = [];
  for (let offset = 0; offset + 4 <= raw.length; offset += 4) out.push(raw.readInt32LE(offset));
  return out;
}

/** An output's raw bytes by name. */
export function output(response: InferResponse, name: string): Buffer {
  const index = response.outputs.findIndex((o) => o.name === name);
  if (index < 0) throw new Error(`response has no output ${name}; outputs: ${response.outputs.map((o) => o.name).join(', ')}`);
  const raw = response.raw_output_contents[index];
  if (!raw) throw new Error(`output ${name} has no raw contents`);
  return raw;
}

/** Text-style inputs as typed contents (the other encoding is raw_input_contents). */
export function textRequest(model: string, prompt: string, maxTokens: number, extra: InputTensor[] = []): InferRequest {
  return {
    model_name: model,
    inputs: [
      { name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from(prompt, 'utf8')] } },
      { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [maxTokens] } },
      ...extra,
    ],
  };
}

export function boolInput(name: string, value: boolean): InputTensor {
  return { name, datatype: 'BOOL', shape: [1, 1], contents: { bool_contents: [value] } };
}

export function fp32Input(name: string, value: number): InputTensor {
  return { name, datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [value] } };
}

export function int32Input(name: string, value: number): InputTensor {
  return { name, datatype: 'INT32', shape: [1, 1], contents: { int_contents: [value] } };
}
