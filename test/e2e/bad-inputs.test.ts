// The bad-input matrix: requests an operator's clients get wrong, sent raw (NVIDIA's protos, no
// SDK checks) to the dev server running this project's backend. Each must be refused with
// INVALID_ARGUMENT and a message naming what is wrong, within a deadline (no hang); afterwards the
// server is alive and its greedy output unchanged. README's reliability section quotes the count.
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boolInput, decodeBytesRaw, fp32Input, int32Input, output, type InferRequest, type InputTensor, TestClient, textRequest } from '../helpers/grpc.js';
import { buildDir } from '../helpers/paths.js';
import { cliGreedy, TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const model = 'tiny_unary';

const bytes = (name: string, values: Buffer[], shape = [1, values.length]): InputTensor => ({ name, datatype: 'BYTES', shape, contents: { bytes_contents: values } });
const text = (name: string, values: string[]): InputTensor => bytes(name, values.map((v) => Buffer.from(v, 'utf8')));
const ints = (name: string, values: number[], shape = [1, values.length]): InputTensor => ({ name, datatype: 'INT32', shape, contents: { int_contents: values } });
const floats = (name: string, values: number[], shape = [1, values.length]): InputTensor => ({ name, datatype: 'FP32', shape, contents: { fp32_contents: values } });
const u64 = (name: string, value: string): InputTensor => ({ name, datatype: 'UINT64', shape: [1, 1], contents: { uint64_contents: [value] } });
const request = (extra: InputTensor[], prompt = 'hi', maxTokens = 4): InferRequest => textRequest(model, prompt, maxTokens, extra);
/** A text request whose input `name` is replaced (or dropped, with `undefined`). */
const replacing = (name: string, tensor: InputTensor | undefined): InferRequest => {
  const base = request([]);
  return { ...base, inputs: [...base.inputs.filter((i) => i.name !== name), ...(tensor ? [tensor] : [])] };
};
const tokens = (inputs: InputTensor[]): InferRequest => ({ model_name: model, inputs });
const promptIds = ints('input_ids', [1, 450, 7483]);

// [what, request, text the error must contain]
const cases: [string, InferRequest, string][] = [
  // The prompt
  ['empty prompt', request([], ''), 'text_input'],
  ['prompt beyond the context', request([], 'word '.repeat(3000)), 'text_input'],
  ['prompt that is not UTF-8', replacing('text_input', bytes('text_input', [Buffer.from([0xff, 0xfe, 0x41])])), 'text_input'],
  ['two prompts in one request', replacing('text_input', text('text_input', ['a', 'b'])), 'text_input'],
  ['no prompt at all', replacing('text_input', undefined), 'text_input'],
  ['prompt as INT32', replacing('text_input', ints('text_input', [1])), 'text_input'],
  ['prompt and input_ids together', request([promptIds]), 'input_ids'],
  // max_tokens
  ['max_tokens 0', request([], 'hi', 0), 'max_tokens'],
  ['max_tokens -1', request([], 'hi', -1), 'max_tokens'],
  ['max_tokens beyond the context', request([], 'hi', 100_000), 'max_tokens'],
  ['max_tokens missing', replacing('max_tokens', undefined), 'max_tokens'],
  ['max_tokens as FP32', replacing('max_tokens', floats('max_tokens', [4])), 'max_tokens'],
  ['max_tokens with two values', replacing('max_tokens', ints('max_tokens', [4, 5])), 'max_tokens'],
  ['max_tokens as text', replacing('max_tokens', text('max_tokens', ['4'])), 'max_tokens'],
  // Sampling
  ['temperature -1', request([fp32Input('temperature', -1)]), 'temperature'],
  ['temperature NaN', request([fp32Input('temperature', Number.NaN)]), 'temperature'],
  ['temperature infinite', request([fp32Input('temperature', Number.POSITIVE_INFINITY)]), 'temperature'],
  ['temperature as INT32', request([int32Input('temperature', 1)]), 'temperature'],
  ['top_p 2', request([fp32Input('top_p', 2)]), 'top_p'],
  ['top_p -0.5', request([fp32Input('top_p', -0.5)]), 'top_p'],
  ['top_p NaN', request([fp32Input('top_p', Number.NaN)]), 'top_p'],
  ['top_k -5', request([int32Input('top_k', -5)]), 'top_k'],
  ['top_k beyond the vocabulary', request([int32Input('top_k', 10_000_000)]), 'top_k'],
  ['top_k as FP32', request([fp32Input('top_k', 4)]), 'top_k'],
  ['runtime_top_k -1', request([int32Input('runtime_top_k', -1)]), 'runtime_top_k'],
  ['runtime_top_p 1.5', request([fp32Input('runtime_top_p', 1.5)]), 'runtime_top_p'],
  ['random_seed as FP32', request([fp32Input('random_seed', 3)]), 'random_seed'],
  ['random_seed with two values', request([{ ...u64('random_seed', '1'), shape: [1, 2], contents: { uint64_contents: ['1', '2'] } }]), 'random_seed'],
  ['repetition_penalty 0', request([fp32Input('repetition_penalty', 0)]), 'repetition_penalty'],
  ['repetition_penalty -1', request([fp32Input('repetition_penalty', -1)]), 'repetition_penalty'],
  ['repetition_penalty NaN', request([fp32Input('repetition_penalty', Number.NaN)]), 'repetition_penalty'],
  ['presence_penalty NaN', request([fp32Input('presence_penalty', Number.NaN)]), 'presence_penalty'],
  ['presence_penalty infinite', request([fp32Input('presence_penalty', Number.NEGATIVE_INFINITY)]), 'presence_penalty'],
  ['frequency_penalty NaN', request([fp32Input('frequency_penalty', Number.NaN)]), 'frequency_penalty'],
  ['min_length -1', request([int32Input('min_length', -1)]), 'min_length'],
  ['min_tokens beyond max_tokens', request([int32Input('min_tokens', 50)]), 'min_tokens'],
  ['end_id -2', request([int32Input('end_id', -2)]), 'end_id'],
  ['end_id beyond the vocabulary', request([int32Input('end_id', 10_000_000)]), 'end_id'],
  ['pad_id beyond the vocabulary', request([int32Input('pad_id', 10_000_000)]), 'pad_id'],
  ['beam_width 2', request([int32Input('beam_width', 2)]), 'beam_width'],
  ['beam_width 0', request([int32Input('beam_width', 0)]), 'beam_width'],
  ['length_penalty NaN', request([fp32Input('length_penalty', Number.NaN)]), 'length_penalty'],
  ['beam_search_diversity_rate -1', request([fp32Input('beam_search_diversity_rate', -1)]), 'beam_search_diversity_rate'],
  ['runtime_top_p_min set', request([fp32Input('runtime_top_p_min', 0.5)]), 'runtime_top_p_min'],
  ['runtime_top_p_decay set', request([fp32Input('runtime_top_p_decay', 0.5)]), 'runtime_top_p_decay'],
  // Words and biases
  ['stop word that is not UTF-8', request([bytes('stop_words', [Buffer.from([0xc3])])]), 'stop_words'],
  ['bad word that is not UTF-8', request([bytes('bad_words', [Buffer.from([0xe2, 0x82])])]), 'bad_words'],
  ['stop words as INT32', request([ints('stop_words', [5])]), 'stop_words'],
  ['embedding bias weights', request([floats('embedding_bias_weights', [1, 2])]), 'embedding_bias'],
  ['embedding bias words', request([text('embedding_bias_words', ['hello'])]), 'embedding_bias_words'],
  // Flags
  ['stream on a model that is not decoupled', request([boolInput('stream', true)]), 'stream'],
  ['return_context_logits', request([boolInput('return_context_logits', true)]), 'return_context_logits'],
  ['return_generation_logits', request([boolInput('return_generation_logits', true)]), 'return_generation_logits'],
  ['exclude_input_in_output as INT32', request([int32Input('exclude_input_in_output', 1)]), 'exclude_input_in_output'],
  ['return_log_probs as FP32', request([fp32Input('return_log_probs', 1)]), 'return_log_probs'],
  ['early_stopping as INT32', request([int32Input('early_stopping', 1)]), 'early_stopping'],
  ['an input the model does not have', request([int32Input('max_new_tokens', 4)]), 'max_new_tokens'],
  // Token style
  ['input_ids with a negative id', tokens([ints('input_ids', [1, -3]), ints('request_output_len', [4])]), 'input_ids'],
  ['input_ids beyond the vocabulary', tokens([ints('input_ids', [1, 10_000_000]), ints('request_output_len', [4])]), 'input_ids'],
  ['input_ids empty', tokens([ints('input_ids', [], [1, 0]), ints('request_output_len', [4])]), 'input_ids'],
  ['input_lengths beyond input_ids', tokens([promptIds, ints('input_lengths', [9]), ints('request_output_len', [4])]), 'input_lengths'],
  ['request_output_len 0', tokens([promptIds, ints('request_output_len', [0])]), 'request_output_len'],
  ['request_output_len missing', tokens([promptIds]), 'request_output_len'],
  ['stop_words_list of the wrong shape', tokens([promptIds, ints('request_output_len', [4]), ints('stop_words_list', [1, 2, 3], [1, 3])]), 'stop_words_list'],
  ['bad_words_list offsets past the ids', tokens([promptIds, ints('request_output_len', [4]), ints('bad_words_list', [5, 6, 9, -1], [1, 2, 2])]), 'bad_words_list'],
  // The request itself
  ['a request id of 1,025 bytes', { ...request([]), id: 'x'.repeat(1025) }, 'request id'],
  ['a shape with a negative dimension', replacing('max_tokens', ints('max_tokens', [4], [-1, 1])), 'max_tokens'],
  ['a shape whose element count overflows', replacing('max_tokens', ints('max_tokens', [4], [1, 2 ** 62 + 1])), 'max_tokens'],
  ['contents that do not fill the shape', replacing('max_tokens', ints('max_tokens', [4], [1, 3])), 'max_tokens'],
  ['a raw BYTES element whose length runs past the data', {
    model_name: model,
    inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1] }, { name: 'max_tokens', datatype: 'INT32', shape: [1, 1] }],
    raw_input_contents: [Buffer.from([200, 0, 0, 0, 0x41]), Buffer.from([4, 0, 0, 0])],
  }, 'text_input'],
];

describe('bad-input matrix against the dev server', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let client: TestClient;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    repository = new TempRepository().add({ name: model, checkpointDir: tiny, decoupled: false });
    server = await startServer(repository.dir);
    client = new TestClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
  });

  it(`refuses each of ${cases.length} bad requests with INVALID_ARGUMENT naming the problem, and keeps serving`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    const expected = cliGreedy(tiny, 'The capital of France is', 12);
    const unclear: string[] = [];
    for (const [what, bad, names] of cases) {
      const error = await client.call('ModelInfer', bad, 30_000).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      if (!error) unclear.push(`${what}: accepted`);
      else if (error.code !== grpc.status.INVALID_ARGUMENT) unclear.push(`${what}: ${grpc.status[error.code]} ${error.details}`);
      else if (!error.details.includes(names)) unclear.push(`${what}: the message does not name ${names}: ${error.details}`);
    }
    expect(unclear).toEqual([]);
    // Alive, and the same greedy text as before any of them.
    const response = await client.infer(textRequest(model, 'The capital of France is', 12));
    expect(decodeBytesRaw(output(response, 'text_output'))).toEqual([expected.text]);
  });
});
