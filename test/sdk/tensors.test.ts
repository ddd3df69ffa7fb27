// Tensor encoding and decoding of the SDK, without a server.
import { describe, expect, it } from 'vitest';
import { Status, TritonError } from '../../sdk/src/index.js';
import type { ModelInferResponse__Output } from '../../sdk/src/generated/inference/ModelInferResponse.js';
import {
  bfloat16Bits,
  bfloat16Value,
  buildInferRequest,
  decodeBytes,
  decodeOutput,
  decodeParameters,
  encodeBytes,
  encodeParameter,
  encodeRaw,
  encodeTyped,
  float16Bits,
  float16Value,
  InferResult,
  validateInput,
  type InferInput,
} from '../../sdk/src/tensors.js';

function errorOf(fn: () => unknown): TritonError {
  try {
    fn();
  } catch (error) {
    if (error instanceof TritonError) return error;
    throw error;
  }
  throw new Error('expected a TritonError');
}

function outputMessage(name: string, datatype: string, shape: number[], contents: Partial<ModelInferResponse__Output['outputs'][number]['contents']> | null = null) {
  const empty = { bool_contents: [], int_contents: [], int64_contents: [], uint_contents: [], uint64_contents: [], fp32_contents: [], fp64_contents: [], bytes_contents: [] };
  return { name, datatype, shape: shape.map(String), parameters: {}, contents: contents === null ? null : { ...empty, ...contents } };
}

describe('BYTES encoding', () => {
  const samples: (string | Uint8Array)[] = ['', 'plain', 'héllo wörld', '日本語テキスト', '🦙 emoji 🚀', '', Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x00])];

  it('writes a 4-byte little-endian length before each element', () => {
    expect([...encodeBytes(['ab', ''])]).toEqual([2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0]);
    expect(encodeBytes([]).length).toBe(0);
    expect([...encodeBytes(['é'])]).toEqual([2, 0, 0, 0, 0xc3, 0xa9]);
  });

  it('round-trips empty strings, multi-byte UTF-8 and binary data', () => {
    const decoded = decodeBytes(encodeBytes(samples), samples.length);
    expect(decoded).toHaveLength(samples.length);
    samples.forEach((sample, i) => {
      const expected = typeof sample === 'string' ? Buffer.from(sample, 'utf8') : Buffer.from(sample);
      expect(decoded[i]!.equals(expected)).toBe(true);
    });
    expect(decoded.slice(0, 6).map((b) => b.toString('utf8'))).toEqual(samples.slice(0, 6));
  });

  it('decodes from an unaligned view and returns copies', () => {
    const encoded = encodeBytes(['xyz']);
    const padded = Buffer.concat([Buffer.from([9]), encoded]);
    const view = padded.subarray(1);
    const [element] = decodeBytes(view);
    padded.fill(0);
    expect(element!.toString()).toBe('xyz');
  });

  it('rejects truncated contents and a wrong element count', () => {
    expect(errorOf(() => decodeBytes(Buffer.from([5, 0, 0, 0, 1, 2]))).details).toMatch(/claims 5 bytes but only 2 remain/);
    expect(errorOf(() => decodeBytes(Buffer.from([1, 0]))).details).toMatch(/truncated length prefix/);
    expect(errorOf(() => decodeBytes(encodeBytes(['a', 'b']), 3)).details).toMatch(/2 elements where the shape holds 3/);
  });

  it('keeps binary elements byte for byte in typed contents', () => {
    const input: InferInput = { name: 'blob', datatype: 'BYTES', shape: [3], data: ['', 'ü', Buffer.from([0, 255])] };
    const typed = encodeTyped(input);
    expect(typed.bytes_contents?.map((b) => [...Buffer.from(b as Uint8Array)])).toEqual([[], [0xc3, 0xbc], [0, 255]]);
  });
});

describe('raw and typed input contents', () => {
  it('encodes every fixed-size datatype as little-endian raw bytes', () => {
    const cases: [InferInput, number[]][] = [
      [{ name: 'b', datatype: 'BOOL', shape: [3], data: [true, false, true] }, [1, 0, 1]],
      [{ name: 'u8', datatype: 'UINT8', shape: [2], data: [1, 255] }, [1, 255]],
      [{ name: 'i8', datatype: 'INT8', shape: [2], data: new Int8Array([-1, 2]) }, [0xff, 2]],
      [{ name: 'u16', datatype: 'UINT16', shape: [1], data: [0x1234] }, [0x34, 0x12]],
      [{ name: 'i16', datatype: 'INT16', shape: [1], data: [-2] }, [0xfe, 0xff]],
      [{ name: 'i32', datatype: 'INT32', shape: [1, 2], data: new Int32Array([1, -1]) }, [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
      [{ name: 'u32', datatype: 'UINT32', shape: [1], data: [0xdeadbeef] }, [0xef, 0xbe, 0xad, 0xde]],
      [{ name: 'i64', datatype: 'INT64', shape: [2], data: [-1n, 2] }, [255, 255, 255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 0, 0, 0]],
      [{ name: 'u64', datatype: 'UINT64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) }, [255, 255, 255, 255, 255, 255, 255, 255]],
      [{ name: 'f32', datatype: 'FP32', shape: [1], data: [1] }, [0, 0, 0x80, 0x3f]],
      [{ name: 'f64', datatype: 'FP64', shape: [1], data: new Float64Array([-2]) }, [0, 0, 0, 0, 0, 0, 0, 0xc0]],
      [{ name: 'h', datatype: 'FP16', shape: [2], data: [1, -2] }, [0x00, 0x3c, 0x00, 0xc0]],
      [{ name: 'hb', datatype: 'FP16', shape: [1], data: new Uint16Array([0x7bff]) }, [0xff, 0x7b]],
      [{ name: 'bf', datatype: 'BF16', shape: [1], data: new Float32Array([1.5]) }, [0xc0, 0x3f]],
    ];
    for (const [input, bytes] of cases) {
      validateInput(input);
      expect([...encodeRaw(input)], input.name).toEqual(bytes);
    }
  });

  it('puts each datatype in its typed contents field', () => {
    expect(encodeTyped({ name: 'a', datatype: 'INT32', shape: [2], data: new Int32Array([3, 4]) })).toEqual({ int_contents: [3, 4] });
    expect(encodeTyped({ name: 'a', datatype: 'INT16', shape: [1], data: [-3] })).toEqual({ int_contents: [-3] });
    expect(encodeTyped({ name: 'a', datatype: 'UINT8', shape: [1], data: [7] })).toEqual({ uint_contents: [7] });
    expect(encodeTyped({ name: 'a', datatype: 'INT64', shape: [2], data: [2n ** 62n, -5] })).toEqual({ int64_contents: [String(2n ** 62n), '-5'] });
    expect(encodeTyped({ name: 'a', datatype: 'UINT64', shape: [1], data: new BigUint64Array([18446744073709551615n]) })).toEqual({ uint64_contents: ['18446744073709551615'] });
    expect(encodeTyped({ name: 'a', datatype: 'FP32', shape: [1], data: [0.5] })).toEqual({ fp32_contents: [0.5] });
    expect(encodeTyped({ name: 'a', datatype: 'FP64', shape: [1], data: [0.25] })).toEqual({ fp64_contents: [0.25] });
    expect(encodeTyped({ name: 'a', datatype: 'BOOL', shape: [2], data: [false, true] })).toEqual({ bool_contents: [false, true] });
    expect(errorOf(() => encodeTyped({ name: 'h', datatype: 'FP16', shape: [1], data: [1] })).details).toMatch(/FP16 has no typed contents/);
  });

  it('builds requests with raw_input_contents in input order, or typed contents without them', () => {
    const inputs: InferInput[] = [
      { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: ['hi'] },
      { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: [8] },
    ];
    const raw = buildInferRequest({ model: 'm', inputs, outputs: ['text_output', { name: 'x', parameters: { p: 1 } }], parameters: { priority: 1 } });
    expect(raw.raw_input_contents?.map((b) => [...Buffer.from(b as Uint8Array)])).toEqual([[2, 0, 0, 0, 0x68, 0x69], [8, 0, 0, 0]]);
    expect(raw.inputs?.every((i) => i.contents === undefined)).toBe(true);
    expect(raw.outputs).toEqual([{ name: 'text_output' }, { name: 'x', parameters: { p: { int64_param: '1' } } }]);
    expect(raw.parameters).toEqual({ priority: { int64_param: '1' } });

    const typed = buildInferRequest({ model: 'm', inputs, encoding: 'typed' });
    expect(typed.raw_input_contents).toBeUndefined();
    expect(typed.inputs?.[1]?.contents).toEqual({ int_contents: [8] });
    expect(typed.inputs?.[0]?.shape).toEqual([1, 1]);
  });
});

describe('shape and datatype validation', () => {
  const cases: [unknown, RegExp][] = [
    [{ name: 'x', datatype: 'INT32', shape: [2, 2], data: [1, 2, 3] }, /input "x": INT32 data has 3 elements but shape \[2, 2\] holds 4/],
    [{ name: 'x', datatype: 'INT32', shape: [1], data: new Float32Array([1]) }, /INT32 data cannot be a Float32Array \(use a Int32Array or an array of numbers\)/],
    [{ name: 'x', datatype: 'INT32', shape: [1], data: [1.5] }, /element 0 \(1.5\) is not an integer/],
    [{ name: 'x', datatype: 'INT8', shape: [1], data: [200] }, /out of INT8 range -128 .. 127/],
    [{ name: 'x', datatype: 'UINT32', shape: [1], data: [-1] }, /out of UINT32 range/],
    [{ name: 'x', datatype: 'INT64', shape: [1], data: [2 ** 60] }, /not a safe integer \(pass a bigint\)/],
    [{ name: 'x', datatype: 'INT64', shape: [1], data: [2n ** 63n] }, /out of INT64 range/],
    [{ name: 'x', datatype: 'UINT64', shape: [1], data: [-1n] }, /out of UINT64 range/],
    [{ name: 'x', datatype: 'BOOL', shape: [1], data: [1] }, /element 0 \(1\) is not a boolean/],
    [{ name: 'x', datatype: 'BYTES', shape: [1], data: [42] }, /neither a string nor a Uint8Array/],
    [{ name: 'x', datatype: 'FP32', shape: [1], data: ['1'] }, /is not a number/],
    [{ name: 'x', datatype: 'FP32', shape: [-1], data: [] }, /invalid dimension -1/],
    [{ name: 'x', datatype: 'FP32', shape: [1.5], data: [1] }, /invalid dimension 1.5/],
    [{ name: 'x', datatype: 'FP32', shape: '1', data: [1] }, /shape must be an array/],
    [{ name: 'x', datatype: 'FLOAT', shape: [1], data: [1] }, /unknown datatype "FLOAT"/],
    [{ name: '', datatype: 'FP32', shape: [1], data: [1] }, /non-empty name/],
    [{ name: 'x', datatype: 'FP32', shape: [1], data: 1 }, /data must be an array or a typed array/],
    [{ name: 'x', datatype: 'FP16', shape: [1], data: new Int16Array(1) }, /FP16 data cannot be a Int16Array/],
  ];

  it('names the input and the problem, as INVALID_ARGUMENT from the client', () => {
    for (const [input, message] of cases) {
      const error = errorOf(() => validateInput(input as InferInput, 'infer'));
      expect(error.code).toBe(Status.INVALID_ARGUMENT);
      expect(error.source).toBe('client');
      expect(error.call).toBe('infer');
      expect(error.details).toMatch(message);
    }
  });

  it('accepts scalars, empty tensors, Buffers for UINT8 and mixed string/bytes for BYTES', () => {
    validateInput({ name: 's', datatype: 'FP32', shape: [], data: [1] });
    validateInput({ name: 'e', datatype: 'INT32', shape: [0, 4], data: [] });
    validateInput({ name: 'u', datatype: 'UINT8', shape: [3], data: Buffer.from('abc') });
    validateInput({ name: 'b', datatype: 'BYTES', shape: [2], data: ['a', new Uint8Array([1])] });
  });

  it('refuses duplicate inputs and requests without a model', () => {
    const input: InferInput = { name: 'a', datatype: 'FP32', shape: [1], data: [1] };
    expect(errorOf(() => buildInferRequest({ model: 'm', inputs: [input, input] })).details).toMatch(/input "a" appears twice/);
    expect(errorOf(() => buildInferRequest({ model: '', inputs: [input] })).details).toMatch(/needs a model name/);
  });
});

describe('output decoding', () => {
  it('decodes raw outputs of every datatype', () => {
    const raw = (values: number[]) => Buffer.from(values);
    expect(decodeOutput(outputMessage('b', 'BOOL', [2]), raw([1, 0])).data).toEqual([true, false]);
    expect(decodeOutput(outputMessage('i', 'INT32', [1, 2]), raw([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])).data).toEqual(new Int32Array([1, -1]));
    expect(decodeOutput(outputMessage('i', 'INT64', [1]), raw([0xfe, 255, 255, 255, 255, 255, 255, 255])).data).toEqual(new BigInt64Array([-2n]));
    expect(decodeOutput(outputMessage('u', 'UINT16', [1]), raw([0x34, 0x12])).data).toEqual(new Uint16Array([0x1234]));
    expect(decodeOutput(outputMessage('f', 'FP32', [1]), raw([0, 0, 0x80, 0x3f])).data).toEqual(new Float32Array([1]));
    expect(decodeOutput(outputMessage('h', 'FP16', [2]), raw([0x00, 0x3c, 0x00, 0xc0])).data).toEqual(new Float32Array([1, -2]));
    expect(decodeOutput(outputMessage('bf', 'BF16', [1]), raw([0xc0, 0x3f])).data).toEqual(new Float32Array([1.5]));
    const text = decodeOutput(outputMessage('t', 'BYTES', [1, 2]), encodeBytes(['', 'ñ']));
    expect(text.datatype === 'BYTES' && text.data.map((b) => b.toString())).toEqual(['', 'ñ']);
    expect(text.shape).toEqual([1, 2]);
  });

  it('decodes raw data at an odd byte offset', () => {
    const backing = Buffer.from([0, 1, 0, 0, 0, 2, 0, 0, 0]);
    expect(decodeOutput(outputMessage('i', 'INT32', [2]), backing.subarray(1)).data).toEqual(new Int32Array([1, 2]));
  });

  it('decodes typed outputs', () => {
    expect(decodeOutput(outputMessage('i', 'INT32', [2], { int_contents: [5, -6] }), undefined).data).toEqual(new Int32Array([5, -6]));
    expect(decodeOutput(outputMessage('i', 'INT64', [1], { int64_contents: ['-9007199254740993'] }), undefined).data).toEqual(new BigInt64Array([-9007199254740993n]));
    expect(decodeOutput(outputMessage('u', 'UINT64', [1], { uint64_contents: ['18446744073709551615'] }), undefined).data).toEqual(new BigUint64Array([2n ** 64n - 1n]));
    expect(decodeOutput(outputMessage('f', 'FP64', [1], { fp64_contents: [0.1] }), undefined).data).toEqual(new Float64Array([0.1]));
    expect(decodeOutput(outputMessage('b', 'BOOL', [1], { bool_contents: [true] }), undefined).data).toEqual([true]);
    const bytes = decodeOutput(outputMessage('t', 'BYTES', [2], { bytes_contents: [Buffer.from('x'), Buffer.alloc(0)] }), undefined);
    expect(bytes.datatype === 'BYTES' && bytes.data.map(String)).toEqual(['x', '']);
    expect(decodeOutput(outputMessage('e', 'FP32', [0]), undefined).data).toEqual(new Float32Array(0));
  });

  it('rejects data that does not match the shape', () => {
    expect(errorOf(() => decodeOutput(outputMessage('i', 'INT32', [2]), Buffer.alloc(4))).details).toMatch(/4 bytes of INT32 where the shape needs 8/);
    expect(errorOf(() => decodeOutput(outputMessage('i', 'INT32', [3], { int_contents: [1] }), undefined)).details).toMatch(/int_contents has 1 elements where the shape holds 3/);
    expect(errorOf(() => decodeOutput(outputMessage('h', 'FP16', [1], {}), undefined)).details).toMatch(/without raw contents/);
    expect(errorOf(() => decodeOutput(outputMessage('q', 'FP8', [1]), Buffer.alloc(1))).details).toMatch(/unsupported datatype "FP8"/);
  });

  it('InferResult picks raw contents when the response has them, typed contents otherwise', () => {
    const base = { model_name: 'm', model_version: '1', id: 'r1', parameters: { triton_final_response: { bool_param: true, parameter_choice: 'bool_param' as const } } };
    const rawResponse: ModelInferResponse__Output = {
      ...base,
      outputs: [outputMessage('text_output', 'BYTES', [1]), outputMessage('n', 'INT32', [1])],
      raw_output_contents: [encodeBytes(['hello']), Buffer.from([7, 0, 0, 0])],
    };
    const result = new InferResult(rawResponse);
    expect(result.outputNames).toEqual(['text_output', 'n']);
    expect(result.strings('text_output')).toEqual(['hello']);
    expect(result.output('n').data).toEqual(new Int32Array([7]));
    expect(result.parameters).toEqual({ triton_final_response: true });
    expect(result.has('missing')).toBe(false);
    expect(errorOf(() => result.output('missing')).details).toMatch(/no output "missing" \(outputs: text_output, n\)/);
    expect(errorOf(() => result.strings('n')).details).toMatch(/INT32, not BYTES/);

    const typedResponse: ModelInferResponse__Output = { ...base, outputs: [outputMessage('n', 'INT32', [2], { int_contents: [1, 2] })], raw_output_contents: [] };
    expect(new InferResult(typedResponse).output('n').data).toEqual(new Int32Array([1, 2]));
  });
});

describe('parameters', () => {
  it('maps values to the protocol fields and back', () => {
    expect(encodeParameter(true)).toEqual({ bool_param: true });
    expect(encodeParameter('x')).toEqual({ string_param: 'x' });
    expect(encodeParameter(3)).toEqual({ int64_param: '3' });
    expect(encodeParameter(0.5)).toEqual({ double_param: 0.5 });
    expect(encodeParameter(2n ** 63n)).toEqual({ uint64_param: String(2n ** 63n) });
    expect(encodeParameter(-(2n ** 63n))).toEqual({ int64_param: String(-(2n ** 63n)) });
    expect(
      decodeParameters({
        a: { bool_param: false, parameter_choice: 'bool_param' },
        b: { int64_param: '12', parameter_choice: 'int64_param' },
        c: { int64_param: '9007199254740993', parameter_choice: 'int64_param' },
        d: { double_param: 1.5, parameter_choice: 'double_param' },
        e: { string_param: 's', parameter_choice: 'string_param' },
        f: { uint64_param: '18446744073709551615', parameter_choice: 'uint64_param' },
      }),
    ).toEqual({ a: false, b: 12, c: 9007199254740993n, d: 1.5, e: 's', f: 18446744073709551615n });
  });
});

describe('half precision', () => {
  it('rounds to nearest even and handles specials', () => {
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(float16Bits(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(float16Bits(-0)).toBe(0x8000);
    expect(float16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float16Bits(2 ** -25)).toBe(0x0000); // halfway, ties to even
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and the next: even
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(float16Value(float16Bits(Number.NaN)))).toBe(true);
    for (let bits = 0; bits < 0x7c00; bits += 37) expect(float16Bits(float16Value(bits))).toBe(bits);
    expect(float16Value(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(bfloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16Value(bfloat16Bits(3.140625))).toBe(3.140625);
    expect(Number.isNaN(bfloat16Value(bfloat16Bits(Number.NaN)))).toBe(true);
  });
});
