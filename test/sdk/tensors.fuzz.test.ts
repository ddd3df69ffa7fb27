// Property-based fuzzing (fast-check) of the SDK's decoders of what a server sends: BYTES
// contents, output tensors from raw or typed contents. Whatever the bytes, a decoder returns data
// that matches its shape or throws a TritonError; encodings round-trip.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TritonError } from '../../sdk/src/index.js';
import {
  dataTypes,
  decodeBytes,
  decodeOutput,
  elementCount,
  encodeBytes,
  encodeRaw,
  validateInput,
  type InferInput,
} from '../../sdk/src/tensors.js';

// FUZZ_RUNS=1000000 for a longer local run; CI runs the default.
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 2000);

/** Runs a decoder: its result, or undefined when it threw a TritonError (anything else fails the property). */
function decoded<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (error instanceof TritonError) return undefined;
    throw error;
  }
}

const int64Text = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const smallDim = fc.integer({ min: -2, max: 6 }).map(String);
const shape = fc.array(fc.oneof(smallDim, smallDim, int64Text), { maxLength: 4 });
const datatype = fc.oneof(fc.constantFrom(...dataTypes), fc.string({ maxLength: 6 }));
const typedContents = fc.record({
  bool_contents: fc.array(fc.boolean(), { maxLength: 40 }),
  int_contents: fc.array(fc.integer(), { maxLength: 40 }),
  int64_contents: fc.array(int64Text, { maxLength: 40 }),
  uint_contents: fc.array(fc.nat(), { maxLength: 40 }),
  uint64_contents: fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), { maxLength: 40 }),
  fp32_contents: fc.array(fc.float(), { maxLength: 40 }),
  fp64_contents: fc.array(fc.double(), { maxLength: 40 }),
  bytes_contents: fc.array(fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)), { maxLength: 40 }),
});

describe('SDK decoders under arbitrary server bytes', () => {
  it('BYTES contents: encode then decode gives the elements back', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (elements) => {
        const back = decodeBytes(encodeBytes(elements), elements.length);
        expect(back.map((b) => [...b])).toEqual(elements.map((e) => [...e]));
      }),
      { numRuns: RUNS },
    );
  });

  it('BYTES contents: arbitrary bytes decode to elements that re-encode to them, or a TritonError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (raw) => {
        const elements = decoded(() => decodeBytes(raw));
        if (elements !== undefined) expect([...encodeBytes(elements)]).toEqual([...raw]);
      }),
      { numRuns: RUNS },
    );
  });

  it('output tensors: any datatype, shape and contents decode to data that fits the shape, or a TritonError', () => {
    fc.assert(
      fc.property(
        datatype,
        shape,
        fc.option(fc.uint8Array({ maxLength: 160 }), { nil: undefined }),
        typedContents,
        (type, dims, raw, contents) => {
          const output = decoded(() =>
            decodeOutput(
              { name: 'out', datatype: type, shape: dims, parameters: {}, contents },
              raw === undefined ? undefined : Buffer.from(raw),
            ),
          );
          if (output === undefined) return;
          expect(dataTypes).toContain(output.datatype);
          for (const dim of output.shape) expect(Number.isSafeInteger(dim) && dim >= 0).toBe(true);
          expect((output.data as ArrayLike<unknown>).length).toBe(elementCount(output.shape));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('raw contents: what the SDK encodes for an input decodes to the same values', () => {
    const numeric = fc.oneof(
      fc.array(fc.integer({ min: -128, max: 127 }), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'INT8', shape: [v.length], data: v })),
      fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'UINT16', shape: [v.length], data: v })),
      fc.array(fc.integer(), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'INT32', shape: [v.length], data: v })),
      fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'INT64', shape: [v.length], data: v })),
      fc.array(fc.double({ noNaN: true }), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'FP64', shape: [v.length], data: v })),
      fc.array(fc.boolean(), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'BOOL', shape: [v.length], data: v })),
      fc.array(fc.string({ maxLength: 10 }), { maxLength: 12 }).map((v): InferInput => ({ name: 'x', datatype: 'BYTES', shape: [v.length], data: v })),
    );
    fc.assert(
      fc.property(numeric, (input) => {
        validateInput(input);
        const output = decodeOutput({ name: 'x', datatype: input.datatype, shape: input.shape.map(String), parameters: {}, contents: null }, encodeRaw(input));
        const values = Array.from(output.data as ArrayLike<unknown>, (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
        expect(values).toEqual(Array.from(input.data as ArrayLike<unknown>));
      }),
      { numRuns: RUNS },
    );
  });
});
