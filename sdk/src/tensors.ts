// Typed tensors for the KServe v2 protocol: validation, raw_input_contents / typed contents
// encoding, and decoding of raw or typed outputs.
import { endianness } from 'node:os';
import { invalidArgument, Status, TritonError } from './errors.js';
import type { InferParameter, InferParameter__Output } from './generated/inference/InferParameter.js';
import type { InferTensorContents, InferTensorContents__Output } from './generated/inference/InferTensorContents.js';
import type { ModelInferRequest } from './generated/inference/ModelInferRequest.js';
import type {
  ModelInferResponse__Output,
  _inference_ModelInferResponse_InferOutputTensor__Output as OutputTensorMessage,
} from './generated/inference/ModelInferResponse.js';

/** Tensor datatypes of the KServe v2 protocol, as Triton names them. */
export type DataType =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

/** Every {@link DataType}, in protocol order. */
export const dataTypes: readonly DataType[] = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'BF16',
  'FP32',
  'FP64',
  'BYTES',
];

/**
 * What an input tensor's `data` may be, per datatype. Elements are in row-major order.
 *
 * - Integers: the matching typed array or plain numbers (checked to be integers in range);
 *   64-bit ones also take `bigint`s (plain numbers must be safe integers).
 * - `FP16` / `BF16`: numbers (a `Float32Array` or `number[]`, rounded to the nearest
 *   half / bfloat16 value) or a `Uint16Array` of raw bit patterns sent unchanged.
 * - `BYTES`: strings (sent as UTF-8) or `Uint8Array`s / `Buffer`s (sent as they are).
 */
export interface TensorInputData {
  /** `true` / `false` per element. */
  BOOL: readonly boolean[];
  /** 0 .. 255. */
  UINT8: Uint8Array | readonly number[];
  /** 0 .. 65535. */
  UINT16: Uint16Array | readonly number[];
  /** 0 .. 2^32 - 1. */
  UINT32: Uint32Array | readonly number[];
  /** 0 .. 2^64 - 1. */
  UINT64: BigUint64Array | readonly (bigint | number)[];
  /** -128 .. 127. */
  INT8: Int8Array | readonly number[];
  /** -32768 .. 32767. */
  INT16: Int16Array | readonly number[];
  /** -2^31 .. 2^31 - 1. */
  INT32: Int32Array | readonly number[];
  /** -2^63 .. 2^63 - 1. */
  INT64: BigInt64Array | readonly (bigint | number)[];
  /** Numbers (rounded to half precision) or a `Uint16Array` of binary16 bit patterns. */
  FP16: Float32Array | Uint16Array | readonly number[];
  /** Numbers (rounded to bfloat16) or a `Uint16Array` of bfloat16 bit patterns. */
  BF16: Float32Array | Uint16Array | readonly number[];
  /** Single-precision numbers. */
  FP32: Float32Array | readonly number[];
  /** Double-precision numbers. */
  FP64: Float64Array | readonly number[];
  /** Strings (UTF-8 encoded) or bytes. */
  BYTES: readonly (string | Uint8Array)[];
}

/**
 * What a decoded output tensor's `data` is, per datatype: typed arrays for numbers (`FP16` and
 * `BF16` widened to `Float32Array`), `boolean[]` for `BOOL`, one `Buffer` per element for
 * `BYTES` (see {@link InferResult.strings} for text).
 */
export interface TensorOutputData {
  /** One boolean per element. */
  BOOL: boolean[];
  /** Unsigned bytes. */
  UINT8: Uint8Array;
  /** Unsigned 16-bit integers. */
  UINT16: Uint16Array;
  /** Unsigned 32-bit integers. */
  UINT32: Uint32Array;
  /** Unsigned 64-bit integers. */
  UINT64: BigUint64Array;
  /** Signed bytes. */
  INT8: Int8Array;
  /** Signed 16-bit integers. */
  INT16: Int16Array;
  /** Signed 32-bit integers. */
  INT32: Int32Array;
  /** Signed 64-bit integers. */
  INT64: BigInt64Array;
  /** Half-precision values widened to single precision. */
  FP16: Float32Array;
  /** bfloat16 values widened to single precision. */
  BF16: Float32Array;
  /** Single-precision values. */
  FP32: Float32Array;
  /** Double-precision values. */
  FP64: Float64Array;
  /** One buffer per element. */
  BYTES: Buffer[];
}

/**
 * A value of a request, input, output or response parameter. On the wire a `boolean` is
 * `bool_param`, a `string` is `string_param`, a safe-integer `number` or a `bigint` is
 * `int64_param` (`uint64_param` above 2^63 - 1), any other `number` is `double_param`.
 * Decoded 64-bit integers are `number`s when they are safe integers, else `bigint`s.
 */
export type ParameterValue = boolean | number | bigint | string;

/** Named parameters, e.g. Triton's `priority` or `timeout` request parameters. */
export type ParameterMap = Readonly<Record<string, ParameterValue>>;

/** An input tensor of one datatype `D`; {@link InferInput} is the union over all datatypes. */
export interface InferInputOf<D extends DataType> {
  /** Input name, as in the model's config. */
  name: string;
  /** Datatype; decides what `data` may be ({@link TensorInputData}). */
  datatype: D;
  /** Shape, including the batch dimension when the model batches (`max_batch_size` > 0). */
  shape: readonly number[];
  /** The elements, row-major; their number must equal the product of `shape`. */
  data: TensorInputData[D];
  /** Input parameters (rarely needed). */
  parameters?: ParameterMap | undefined;
}

/**
 * An input tensor. The `datatype` field selects what `data` may be, so TypeScript checks e.g.
 * that an `INT32` input gets an `Int32Array` or numbers:
 *
 * ```ts
 * const input: InferInput = { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: [64] };
 * ```
 */
export type InferInput = { [D in DataType]: InferInputOf<D> }[DataType];

/** A decoded output tensor of one datatype `D`; {@link InferOutput} is the union. */
export interface InferOutputOf<D extends DataType> {
  /** Output name. */
  name: string;
  /** Datatype; narrows `data` ({@link TensorOutputData}). */
  datatype: D;
  /** Shape as the server reported it. */
  shape: number[];
  /** The elements, row-major. */
  data: TensorOutputData[D];
  /** Output parameters the server attached. */
  parameters: Record<string, ParameterValue>;
}

/** A decoded output tensor; check `datatype` to narrow `data`. */
export type InferOutput = { [D in DataType]: InferOutputOf<D> }[DataType];

/** How input tensors travel: `raw` (`raw_input_contents`, what Triton's own clients send) or `typed` (`InferTensorContents`). */
export type InputEncoding = 'raw' | 'typed';

const bigEndian = endianness() === 'BE';

function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && (dataTypes as readonly string[]).includes(value);
}

/** Bytes per element of fixed-size datatypes (BYTES has none). */
const elementSize: Record<Exclude<DataType, 'BYTES'>, number> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  BF16: 2,
  FP32: 4,
  FP64: 8,
};

const integerRange: Partial<Record<DataType, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;
const uint64Max = 2n ** 64n - 1n;

const typedArrayFor: Partial<Record<DataType, abstract new (...args: never[]) => ArrayBufferView>> = {
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

/** Number of elements a shape holds (1 for the scalar shape `[]`). */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map(String).join(', ')}]`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return `a ${typeof value}`;
}

function fail(call: string, message: string): never {
  throw invalidArgument(message, { call });
}

/**
 * Checks an input tensor before it is sent: name, datatype, shape (non-negative integers) and
 * data (the right kind for the datatype, integers in range, as many elements as the shape
 * holds). Throws a {@link TritonError} with code `INVALID_ARGUMENT` naming the input.
 */
export function validateInput(input: InferInput, call = 'infer'): void {
  const candidate: { name?: unknown; datatype?: unknown; shape?: unknown; data?: unknown } = input;
  if (typeof candidate.name !== 'string' || candidate.name === '') fail(call, 'every input needs a non-empty name');
  const where = `input "${candidate.name}"`;
  if (!isDataType(candidate.datatype)) {
    fail(call, `${where}: unknown datatype ${JSON.stringify(candidate.datatype)}; expected one of ${dataTypes.join(', ')}`);
  }
  const datatype = candidate.datatype;
  if (!Array.isArray(candidate.shape)) fail(call, `${where}: shape must be an array of dimensions`);
  const shape: readonly unknown[] = candidate.shape;
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      fail(call, `${where}: shape ${formatShape(shape)} has an invalid dimension ${String(dim)} (dimensions are integers >= 0)`);
    }
  }
  const expected = elementCount(shape as number[]);
  const data: unknown = candidate.data;
  let length: number;
  if (Array.isArray(data)) {
    length = data.length;
    checkArrayElements(datatype, data, where, call);
  } else if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    length = (data as unknown as { length: number }).length;
    const accepted = acceptedTypedArray(datatype, data);
    if (!accepted) {
      fail(call, `${where}: ${datatype} data cannot be ${describe(data)}${typedArrayHint(datatype)}`);
    }
  } else {
    fail(call, `${where}: data must be an array or a typed array, got ${describe(data)}`);
  }
  if (length !== expected) {
    fail(call, `${where}: ${datatype} data has ${length} element${length === 1 ? '' : 's'} but shape ${formatShape(shape)} holds ${expected}`);
  }
}

function typedArrayHint(datatype: DataType): string {
  if (datatype === 'FP16' || datatype === 'BF16') return ' (use a Float32Array, numbers, or a Uint16Array of bit patterns)';
  if (datatype === 'BOOL') return ' (use an array of booleans)';
  if (datatype === 'BYTES') return ' (use an array of strings or Uint8Arrays)';
  const ctor = typedArrayFor[datatype];
  return ctor ? ` (use a ${ctor.name} or an array of numbers)` : '';
}

function acceptedTypedArray(datatype: DataType, data: ArrayBufferView): boolean {
  if (datatype === 'FP16' || datatype === 'BF16') return data instanceof Float32Array || data instanceof Uint16Array;
  const ctor = typedArrayFor[datatype];
  if (!ctor) return false;
  // A Buffer is a Uint8Array: accept it for UINT8.
  return data.constructor === ctor || (ctor === Uint8Array && data instanceof Uint8Array);
}

function checkArrayElements(datatype: DataType, data: readonly unknown[], where: string, call: string): void {
  const bad = (index: number, why: string): never => fail(call, `${where}: element ${index} (${String(data[index])}) ${why}`);
  switch (datatype) {
    case 'BOOL':
      data.forEach((v, i) => typeof v === 'boolean' || bad(i, 'is not a boolean'));
      return;
    case 'BYTES':
      data.forEach((v, i) => typeof v === 'string' || v instanceof Uint8Array || bad(i, 'is neither a string nor a Uint8Array'));
      return;
    case 'INT64':
    case 'UINT64': {
      const [min, max] = datatype === 'INT64' ? [int64Min, int64Max] : [0n, uint64Max];
      data.forEach((v, i) => {
        if (typeof v === 'bigint') {
          if (v < min || v > max) bad(i, `is out of ${datatype} range`);
        } else if (typeof v === 'number') {
          if (!Number.isSafeInteger(v)) bad(i, 'is not a safe integer (pass a bigint)');
          if (BigInt(v) < min) bad(i, `is out of ${datatype} range`);
        } else {
          bad(i, 'is neither a number nor a bigint');
        }
      });
      return;
    }
    case 'FP16':
    case 'BF16':
    case 'FP32':
    case 'FP64':
      data.forEach((v, i) => typeof v === 'number' || bad(i, 'is not a number'));
      return;
    default: {
      const range = integerRange[datatype];
      if (!range) return;
      data.forEach((v, i) => {
        if (typeof v !== 'number' || !Number.isInteger(v)) bad(i, 'is not an integer');
        if ((v as number) < range[0] || (v as number) > range[1]) bad(i, `is out of ${datatype} range ${range[0]} .. ${range[1]}`);
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Half precision and bfloat16

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** Rounds a number to the nearest IEEE binary16 value (ties to even) and returns its bit pattern. */
export function float16Bits(value: number): number {
  scratchFloat[0] = value;
  const x = scratchBits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1; // a carry into the exponent is right
  return sign | half;
}

/** The number an IEEE binary16 bit pattern stands for. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Rounds a number to the nearest bfloat16 value (ties to even) and returns its bit pattern. */
export function bfloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const x = scratchBits[0]!;
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The number a bfloat16 bit pattern stands for. */
export function bfloat16Value(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0]!;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Triton's BYTES layout for raw contents: each element as a 4-byte little-endian length
 * followed by its bytes; strings are UTF-8 encoded.
 */
export function encodeBytes(values: readonly (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) {
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(data.length);
    parts.push(length, data);
  }
  return Buffer.concat(parts);
}

/**
 * Splits raw BYTES contents into elements (copies, safe to keep). With `expected`, checks the
 * element count. Throws a {@link TritonError} on a truncated buffer.
 */
export function decodeBytes(raw: Uint8Array, expected?: number, what = 'BYTES contents'): Buffer[] {
  const buffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + 4 > buffer.length) throw malformed(`${what}: truncated length prefix at byte ${offset}`);
    const length = buffer.readUInt32LE(offset);
    offset += 4;
    if (offset + length > buffer.length) {
      throw malformed(`${what}: element ${out.length} claims ${length} bytes but only ${buffer.length - offset} remain`);
    }
    out.push(Buffer.from(buffer.subarray(offset, offset + length)));
    offset += length;
  }
  if (expected !== undefined && out.length !== expected) {
    throw malformed(`${what}: ${out.length} elements where the shape holds ${expected}`);
  }
  return out;
}

function malformed(details: string): TritonError {
  return new TritonError({ code: Status.INTERNAL, details, call: 'decode', source: 'client', message: `malformed response: ${details}` });
}

function toBigInt(value: bigint | number): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}

function halfBitsOf(datatype: 'FP16' | 'BF16', data: TensorInputData['FP16']): Uint16Array {
  if (data instanceof Uint16Array) return data;
  const convert = datatype === 'FP16' ? float16Bits : bfloat16Bits;
  const bits = new Uint16Array(data.length);
  for (let i = 0; i < data.length; ++i) bits[i] = convert(data[i]!);
  return bits;
}

function viewBytes(view: ArrayBufferView): Buffer {
  const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  return bigEndian ? swapped(bytes, view) : Buffer.from(bytes);
}

function swapped(bytes: Buffer, view: ArrayBufferView): Buffer {
  const copy = Buffer.from(bytes);
  const size = (view as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  if (size === 2) copy.swap16();
  else if (size === 4) copy.swap32();
  else if (size === 8) copy.swap64();
  return copy;
}

/** An input's elements as raw little-endian bytes (`raw_input_contents`). Validate first. */
export function encodeRaw(input: InferInput): Buffer {
  switch (input.datatype) {
    case 'BYTES':
      return encodeBytes(input.data);
    case 'BOOL':
      return Buffer.from(input.data.map((v) => (v ? 1 : 0)));
    case 'FP16':
    case 'BF16':
      return viewBytes(halfBitsOf(input.datatype, input.data));
    case 'INT64':
      return viewBytes(input.data instanceof BigInt64Array ? input.data : BigInt64Array.from(input.data, toBigInt));
    case 'UINT64':
      return viewBytes(input.data instanceof BigUint64Array ? input.data : BigUint64Array.from(input.data, toBigInt));
    case 'UINT8':
      return Buffer.from(input.data instanceof Uint8Array ? input.data : Uint8Array.from(input.data));
    case 'UINT16':
      return viewBytes(input.data instanceof Uint16Array ? input.data : Uint16Array.from(input.data));
    case 'UINT32':
      return viewBytes(input.data instanceof Uint32Array ? input.data : Uint32Array.from(input.data));
    case 'INT8':
      return viewBytes(input.data instanceof Int8Array ? input.data : Int8Array.from(input.data));
    case 'INT16':
      return viewBytes(input.data instanceof Int16Array ? input.data : Int16Array.from(input.data));
    case 'INT32':
      return viewBytes(input.data instanceof Int32Array ? input.data : Int32Array.from(input.data));
    case 'FP32':
      return viewBytes(input.data instanceof Float32Array ? input.data : Float32Array.from(input.data));
    case 'FP64':
      return viewBytes(input.data instanceof Float64Array ? input.data : Float64Array.from(input.data));
  }
}

/**
 * An input's elements as typed contents (`InferTensorContents`). FP16 and BF16 have no typed
 * field in the protocol: they throw, use the raw encoding. Validate first.
 */
export function encodeTyped(input: InferInput, call = 'infer'): InferTensorContents {
  switch (input.datatype) {
    case 'BOOL':
      return { bool_contents: [...input.data] };
    case 'BYTES':
      return { bytes_contents: input.data.map((v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v))) };
    case 'INT8':
    case 'INT16':
    case 'INT32':
      return { int_contents: Array.from(input.data) };
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
      return { uint_contents: Array.from(input.data) };
    case 'INT64':
      return { int64_contents: Array.from(input.data as ArrayLike<bigint | number>, (v) => v.toString()) };
    case 'UINT64':
      return { uint64_contents: Array.from(input.data as ArrayLike<bigint | number>, (v) => v.toString()) };
    case 'FP32':
      return { fp32_contents: Array.from(input.data) };
    case 'FP64':
      return { fp64_contents: Array.from(input.data) };
    case 'FP16':
    case 'BF16':
      return fail(call, `input "${input.name}": ${input.datatype} has no typed contents in the protocol; use the raw encoding`);
  }
}

/** A parameter value in protocol form. */
export function encodeParameter(value: ParameterValue): InferParameter {
  switch (typeof value) {
    case 'boolean':
      return { bool_param: value };
    case 'string':
      return { string_param: value };
    case 'bigint':
      if (value > int64Max && value <= uint64Max) return { uint64_param: value.toString() };
      if (value < int64Min || value > uint64Max) throw invalidArgument(`parameter value ${value} is out of 64-bit range`, { call: 'parameters' });
      return { int64_param: value.toString() };
    default:
      return Number.isSafeInteger(value) ? { int64_param: String(value) } : { double_param: value };
  }
}

/** Parameters in protocol form. */
export function encodeParameters(parameters: ParameterMap | undefined): Record<string, InferParameter> {
  const out: Record<string, InferParameter> = {};
  for (const [key, value] of Object.entries(parameters ?? {})) out[key] = encodeParameter(value);
  return out;
}

function integerValue(text: string): number | bigint {
  const big = BigInt(text);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** A protocol parameter as a plain value (`undefined` when none of its fields is set). */
export function decodeParameter(parameter: InferParameter__Output): ParameterValue | undefined {
  switch (parameter.parameter_choice) {
    case 'bool_param':
      return parameter.bool_param ?? false;
    case 'string_param':
      return parameter.string_param ?? '';
    case 'double_param':
      return parameter.double_param ?? 0;
    case 'int64_param':
      return integerValue(parameter.int64_param ?? '0');
    case 'uint64_param':
      return integerValue(parameter.uint64_param ?? '0');
    default:
      return undefined;
  }
}

/** Protocol parameters as plain values. */
export function decodeParameters(parameters: Record<string, InferParameter__Output> | undefined): Record<string, ParameterValue> {
  const out: Record<string, ParameterValue> = {};
  for (const [key, parameter] of Object.entries(parameters ?? {})) {
    const value = decodeParameter(parameter);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** A request output to ask for: its name, or its name and output parameters. */
export type RequestedOutput = string | { name: string; parameters?: ParameterMap };

/** The fields {@link buildInferRequest} turns into a `ModelInferRequest`. */
export interface InferRequestFields {
  /** Model name. */
  model: string;
  /** Model version; empty or absent lets the server choose. */
  modelVersion?: string | undefined;
  /** Request id, echoed in responses. */
  id?: string | undefined;
  /** Input tensors. */
  inputs: readonly InferInput[];
  /** Outputs to return; absent: all of them. */
  outputs?: readonly RequestedOutput[] | undefined;
  /** Request parameters (Triton's `priority`, `timeout`, backend-specific ones). */
  parameters?: ParameterMap | undefined;
  /** `raw` (default) or `typed`. */
  encoding?: InputEncoding | undefined;
}

/** Validates the inputs and builds the protocol request. */
export function buildInferRequest(fields: InferRequestFields, call = 'infer'): ModelInferRequest {
  if (typeof fields.model !== 'string' || fields.model === '') fail(call, 'a request needs a model name');
  const encoding = fields.encoding ?? 'raw';
  if (encoding !== 'raw' && encoding !== 'typed') fail(call, `unknown encoding ${JSON.stringify(encoding)}; use "raw" or "typed"`);
  const names = new Set<string>();
  for (const input of fields.inputs) {
    validateInput(input, call);
    if (names.has(input.name)) fail(call, `input "${input.name}" appears twice`);
    names.add(input.name);
  }
  const request: ModelInferRequest = {
    model_name: fields.model,
    model_version: fields.modelVersion ?? '',
    id: fields.id ?? '',
    parameters: encodeParameters(fields.parameters),
    inputs: fields.inputs.map((input) => ({
      name: input.name,
      datatype: input.datatype,
      shape: [...input.shape],
      parameters: encodeParameters(input.parameters),
      ...(encoding === 'typed' ? { contents: encodeTyped(input, call) } : {}),
    })),
    outputs: (fields.outputs ?? []).map((output) =>
      typeof output === 'string' ? { name: output } : { name: output.name, parameters: encodeParameters(output.parameters) },
    ),
  };
  if (encoding === 'raw') request.raw_input_contents = fields.inputs.map((input) => encodeRaw(input));
  return request;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function copyAligned(raw: Buffer, size: number): ArrayBuffer {
  const copy = new ArrayBuffer(raw.length);
  const bytes = new Uint8Array(copy);
  bytes.set(raw);
  if (bigEndian && size > 1) {
    const view = Buffer.from(copy);
    if (size === 2) view.swap16();
    else if (size === 4) view.swap32();
    else view.swap64();
  }
  return copy;
}

function decodeRawData(datatype: DataType, raw: Buffer, count: number, name: string): TensorOutputData[DataType] {
  if (datatype === 'BYTES') return decodeBytes(raw, count, `output "${name}"`);
  const size = elementSize[datatype];
  if (raw.length !== count * size) {
    throw malformed(`output "${name}": ${raw.length} bytes of ${datatype} where the shape needs ${count * size}`);
  }
  const buffer = copyAligned(raw, size);
  switch (datatype) {
    case 'BOOL':
      return Array.from(new Uint8Array(buffer), (v) => v !== 0);
    case 'UINT8':
      return new Uint8Array(buffer);
    case 'UINT16':
      return new Uint16Array(buffer);
    case 'UINT32':
      return new Uint32Array(buffer);
    case 'UINT64':
      return new BigUint64Array(buffer);
    case 'INT8':
      return new Int8Array(buffer);
    case 'INT16':
      return new Int16Array(buffer);
    case 'INT32':
      return new Int32Array(buffer);
    case 'INT64':
      return new BigInt64Array(buffer);
    case 'FP16':
      return Float32Array.from(new Uint16Array(buffer), float16Value);
    case 'BF16':
      return Float32Array.from(new Uint16Array(buffer), bfloat16Value);
    case 'FP32':
      return new Float32Array(buffer);
    case 'FP64':
      return new Float64Array(buffer);
  }
}

function decodeTypedData(datatype: DataType, contents: InferTensorContents__Output | null, count: number, name: string): TensorOutputData[DataType] {
  const pick = <T>(values: T[] | undefined, field: string): T[] => {
    const list = values ?? [];
    if (list.length !== count) throw malformed(`output "${name}": ${field} has ${list.length} elements where the shape holds ${count}`);
    return list;
  };
  const c = contents;
  switch (datatype) {
    case 'BOOL':
      return [...pick(c?.bool_contents, 'bool_contents')];
    case 'BYTES':
      return pick(c?.bytes_contents, 'bytes_contents').map((b) => Buffer.from(b));
    case 'INT8':
      return Int8Array.from(pick(c?.int_contents, 'int_contents'));
    case 'INT16':
      return Int16Array.from(pick(c?.int_contents, 'int_contents'));
    case 'INT32':
      return Int32Array.from(pick(c?.int_contents, 'int_contents'));
    case 'UINT8':
      return Uint8Array.from(pick(c?.uint_contents, 'uint_contents'));
    case 'UINT16':
      return Uint16Array.from(pick(c?.uint_contents, 'uint_contents'));
    case 'UINT32':
      return Uint32Array.from(pick(c?.uint_contents, 'uint_contents'));
    case 'INT64':
      return BigInt64Array.from(pick(c?.int64_contents, 'int64_contents'), (v) => BigInt(v));
    case 'UINT64':
      return BigUint64Array.from(pick(c?.uint64_contents, 'uint64_contents'), (v) => BigInt(v));
    case 'FP32':
      return Float32Array.from(pick(c?.fp32_contents, 'fp32_contents'));
    case 'FP64':
      return Float64Array.from(pick(c?.fp64_contents, 'fp64_contents'));
    case 'FP16':
    case 'BF16':
      throw malformed(`output "${name}": ${datatype} arrived without raw contents (the protocol has no typed field for it)`);
  }
}

/**
 * Decodes one output tensor from its raw bytes (`raw_output_contents`) when given, else from its
 * typed contents. Throws a {@link TritonError} when the data does not match the shape.
 */
export function decodeOutput(output: OutputTensorMessage, raw: Buffer | undefined): InferOutput {
  const datatype = output.datatype;
  if (!isDataType(datatype)) throw malformed(`output "${output.name}": unsupported datatype ${JSON.stringify(datatype)}`);
  const shape = output.shape.map((d) => Number(d));
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw malformed(`output "${output.name}": shape ${formatShape(output.shape)} has a dimension that is negative or too large`);
  }
  const count = elementCount(shape);
  if (!Number.isSafeInteger(count)) {
    throw malformed(`output "${output.name}": shape ${formatShape(output.shape)} holds more elements than can be addressed`);
  }
  const data = raw !== undefined ? decodeRawData(datatype, raw, count, output.name) : decodeTypedData(datatype, output.contents, count, output.name);
  return { name: output.name, datatype, shape, data, parameters: decodeParameters(output.parameters) } as InferOutput;
}

/**
 * One inference response: outputs decoded on demand, from raw or typed contents.
 *
 * ```ts
 * const result = await client.infer({ model: 'add', inputs: [...] });
 * const sum = result.output('OUTPUT0');
 * if (sum.datatype === 'FP32') console.log(sum.data); // Float32Array
 * ```
 */
export class InferResult {
  /** Model that answered. */
  readonly model: string;
  /** Version of the model that answered. */
  readonly modelVersion: string;
  /** The request id (as sent, or as the SDK assigned it on streams). */
  readonly id: string;
  /** Response parameters, e.g. `triton_final_response` on streams. */
  readonly parameters: Readonly<Record<string, ParameterValue>>;
  /** True for the last response of a request (always for `infer()`). */
  readonly final: boolean;
  private readonly response: ModelInferResponse__Output;
  private readonly decoded = new Map<string, InferOutput>();

  /** Wraps a protocol response (the SDK builds these; users receive them). */
  constructor(response: ModelInferResponse__Output, final = true) {
    this.response = response;
    this.model = response.model_name;
    this.modelVersion = response.model_version;
    this.id = response.id;
    this.parameters = decodeParameters(response.parameters);
    this.final = final;
  }

  /** Names of the outputs in this response, in order. */
  get outputNames(): string[] {
    return this.response.outputs.map((o) => o.name);
  }

  /** Whether the response has an output of that name. */
  has(name: string): boolean {
    return this.response.outputs.some((o) => o.name === name);
  }

  /** The decoded output of that name; throws a {@link TritonError} when there is none. */
  output(name: string): InferOutput {
    const cached = this.decoded.get(name);
    if (cached) return cached;
    const index = this.response.outputs.findIndex((o) => o.name === name);
    const message = this.response.outputs[index];
    if (!message) {
      throw new TritonError({
        code: Status.NOT_FOUND,
        details: `the response has no output "${name}" (outputs: ${this.outputNames.join(', ') || 'none'})`,
        call: 'output',
        source: 'client',
        model: this.model,
        requestId: this.id,
      });
    }
    const raw = this.response.raw_output_contents.length > 0 ? (this.response.raw_output_contents[index] ?? Buffer.alloc(0)) : undefined;
    const output = decodeOutput(message, raw);
    this.decoded.set(name, output);
    return output;
  }

  /** Every output, decoded. */
  outputs(): InferOutput[] {
    return this.outputNames.map((name) => this.output(name));
  }

  /** A BYTES output's elements as UTF-8 strings; throws when the output is not BYTES. */
  strings(name: string): string[] {
    const output = this.output(name);
    if (output.datatype !== 'BYTES') {
      throw new TritonError({
        code: Status.INVALID_ARGUMENT,
        details: `output "${name}" is ${output.datatype}, not BYTES`,
        call: 'strings',
        source: 'client',
        model: this.model,
        requestId: this.id,
      });
    }
    return output.data.map((b) => b.toString('utf8'));
  }

  /** The protocol response as received (for fields this class does not surface). */
  get raw(): ModelInferResponse__Output {
    return this.response;
  }
}
