// The llm backend served by the dev server over KServe v2 gRPC, checked against `llm generate`.
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  boolInput,
  decodeBytesRaw,
  encodeBytesRaw,
  fp32Input,
  int32Input,
  int32Raw,
  output,
  readInt32s,
  type InferRequest,
  type StreamResponse,
  TestClient,
  textRequest,
} from '../helpers/grpc.js';
import { buildDir, sharedPath } from '../helpers/paths.js';
import { cliGreedy, convert, TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const aidreamsHf = sharedPath('models/aidreams260K-hf');

interface Collected {
  texts: string[];
  ids: number[];
  finals: number;
  errors: string[];
}

/** Sends requests on one ModelStreamInfer call and collects responses per request id until each has its final. */
function streamAll(client: TestClient, requests: InferRequest[], onResponse?: (id: string, count: number, call: grpc.ClientDuplexStream<InferRequest, StreamResponse>) => void) {
  const call = client.stream();
  const results = new Map<string, Collected>(requests.map((r) => [r.id ?? '', { texts: [], ids: [], finals: 0, errors: [] }]));
  const done = new Promise<Map<string, Collected>>((resolve, reject) => {
    let open = requests.length;
    call.on('data', (message: StreamResponse) => {
      const response = message.infer_response;
      const id = response?.id ?? '';
      const entry = results.get(id) ?? results.values().next().value!;
      if (message.error_message) entry.errors.push(message.error_message);
      if (response) {
        if (response.outputs.some((o) => o.name === 'text_output')) entry.texts.push(...decodeBytesRaw(output(response, 'text_output')));
        if (response.outputs.some((o) => o.name === 'output_ids')) entry.ids.push(...readInt32s(output(response, 'output_ids')));
      }
      const final = response?.parameters?.['triton_final_response']?.bool_param === true || message.error_message !== '';
      if (final) {
        entry.finals += 1;
        if (--open === 0) call.end();
      }
      onResponse?.(id, entry.texts.length, call);
    });
    call.on('error', reject);
    call.on('end', () => resolve(results));
  });
  for (const request of requests) {
    call.write({ ...request, parameters: { ...(request.parameters ?? {}), triton_enable_empty_final_response: { bool_param: true } } });
  }
  return { call, done };
}

describe('llm backend on the dev server', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let client: TestClient;
  let scratch: string;
  let aidreams: string | undefined;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    scratch = mkdtempSync(join(tmpdir(), 'llm-e2e-'));
    repository = new TempRepository()
      .add({ name: 'tiny', checkpointDir: tiny, decoupled: true, parameters: {} })
      .add({ name: 'tiny_unary', checkpointDir: tiny, decoupled: false })
      // One sequence at a time, one waiting, a KV cache of 256 tokens.
      .add({
        name: 'tiny_limits',
        checkpointDir: tiny,
        decoupled: true,
        parameters: { max_concurrent_requests: '1', max_queue_size: '1', max_tokens_in_paged_kv_cache: '256' },
      })
      .add({ name: 'broken', checkpointDir: join(scratch, 'no-such-checkpoint'), decoupled: true });
    if (aidreamsHf) {
      aidreams = convert(aidreamsHf, join(scratch, 'aidreams-f32'), 'float32');
      repository.add({ name: 'aidreams', checkpointDir: aidreams, decoupled: true });
      repository.add({ name: 'aidreams_unary', checkpointDir: aidreams, decoupled: false });
    }
    server = await startServer(repository.dir);
    client = new TestClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('answers health, metadata, config and repository index', async () => {
    expect(await client.call<{ live: boolean }>('ServerLive', {})).toEqual({ live: true });
    expect(await client.call<{ ready: boolean }>('ServerReady', {})).toEqual({ ready: true });
    expect(await client.call<{ ready: boolean }>('ModelReady', { name: 'tiny' })).toEqual({ ready: true });
    const metadata = await client.call<{ name: string; inputs: { name: string; datatype: string }[]; outputs: { name: string }[] }>(
      'ModelMetadata',
      { name: 'tiny' },
    );
    expect(metadata.name).toBe('tiny');
    expect(metadata.inputs).toContainEqual(expect.objectContaining({ name: 'text_input', datatype: 'BYTES' }));
    expect(metadata.inputs).toContainEqual(expect.objectContaining({ name: 'input_ids', datatype: 'INT32' }));
    expect(metadata.outputs.map((o) => o.name)).toContain('text_output');
    const config = await client.call<{ config: { backend: string; max_batch_size: number; model_transaction_policy: { decoupled: boolean } } }>(
      'ModelConfig',
      { name: 'tiny' },
    );
    expect(config.config.backend).toBe('llm');
    expect(config.config.model_transaction_policy.decoupled).toBe(true);
    const index = await client.call<{ models: { name: string; state: string; reason: string }[] }>('RepositoryIndex', {});
    const broken = index.models.find((m) => m.name === 'broken');
    expect(broken?.state).toBe('UNAVAILABLE');
    expect(broken?.reason).toContain('no-such-checkpoint');
    expect(index.models.find((m) => m.name === 'tiny')?.state).toBe('READY');
  });

  it('ModelInfer on a non-decoupled model gives exactly the tokens of llm generate (raw BYTES input)', async () => {
    const cases: [string, string, string, number][] = [['tiny_unary', tiny, 'The capital of France is', 24]];
    if (aidreams) cases.push(['aidreams_unary', aidreams, 'Once upon a time', 40]);
    for (const [model, checkpoint, prompt, maxTokens] of cases) {
      const expected = cliGreedy(checkpoint, prompt, maxTokens);
      const response = await client.infer({
        model_name: model,
        inputs: [
          { name: 'text_input', datatype: 'BYTES', shape: [1, 1] },
          { name: 'max_tokens', datatype: 'INT32', shape: [1, 1] },
        ],
        outputs: [{ name: 'text_output' }, { name: 'output_ids' }, { name: 'sequence_length' }],
        raw_input_contents: [encodeBytesRaw([prompt]), int32Raw([maxTokens])],
      });
      expect(decodeBytesRaw(output(response, 'text_output'))).toEqual([expected.text]);
      expect(readInt32s(output(response, 'output_ids'))).toEqual(expected.token_ids);
      expect(readInt32s(output(response, 'sequence_length'))).toEqual([expected.token_ids.length]);
    }
  });

  it("reports finish reason and token counts as outputs when asked, with the vLLM backend's names and types", async () => {
    const prompt = 'The capital of France is';
    const expected = cliGreedy(tiny, prompt, 9);
    const usageOutputs = [{ name: 'finish_reason' }, { name: 'num_input_tokens' }, { name: 'num_output_tokens' }];
    const asked = await client.infer({
      ...textRequest('tiny_unary', prompt, 9, [
        boolInput('return_finish_reason', true), boolInput('return_num_input_tokens', true), boolInput('return_num_output_tokens', true),
      ]),
      outputs: [{ name: 'text_output' }, ...usageOutputs],
    });
    const datatypes = Object.fromEntries(asked.outputs.map((o) => [o.name, o.datatype]));
    expect(datatypes).toEqual({ text_output: 'BYTES', finish_reason: 'BYTES', num_input_tokens: 'UINT32', num_output_tokens: 'UINT32' });
    expect(decodeBytesRaw(output(asked, 'text_output'))).toEqual([expected.text]);
    expect(decodeBytesRaw(output(asked, 'finish_reason'))).toEqual([expected.finish_reason]);
    expect(output(asked, 'num_input_tokens').readUInt32LE(0)).toBe(expected.prompt_tokens);
    expect(output(asked, 'num_output_tokens').readUInt32LE(0)).toBe(expected.token_ids.length);
    // Not asked: not sent, even when requested by name.
    const unasked = await client.infer({ ...textRequest('tiny_unary', prompt, 9), outputs: [{ name: 'text_output' }, ...usageOutputs] });
    expect(unasked.outputs.map((o) => o.name)).toEqual(['text_output']);
  });

  it('token-style requests (input_ids) give the same tokens', async () => {
    const prompt = 'Tell me a story';
    const expected = cliGreedy(tiny, prompt, 12);
    // The prompt's ids, as the server's tokenizer makes them: echoed when the input is kept in the output.
    const echo = await client.infer({
      ...textRequest('tiny_unary', prompt, 1, [boolInput('exclude_input_in_output', false)]),
      outputs: [{ name: 'output_ids' }],
    });
    const promptIds = readInt32s(output(echo, 'output_ids')).slice(0, expected.prompt_tokens);
    const response = await client.infer({
      model_name: 'tiny_unary',
      inputs: [
        { name: 'input_ids', datatype: 'INT32', shape: [1, promptIds.length], contents: { int_contents: promptIds } },
        { name: 'input_lengths', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [promptIds.length] } },
        { name: 'request_output_len', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [12] } },
      ],
    });
    expect(readInt32s(output(response, 'output_ids'))).toEqual(expected.token_ids);
  });

  it('ModelStreamInfer streams chunks that concatenate to the text, with exactly one final response', async () => {
    const cases: [string, string, string, number][] = [['tiny', tiny, 'Streaming works', 30]];
    if (aidreams) cases.push(['aidreams', aidreams, 'The robot', 48]);
    for (const [model, checkpoint, prompt, maxTokens] of cases) {
      const expected = cliGreedy(checkpoint, prompt, maxTokens);
      const { done } = streamAll(client, [{ ...textRequest(model, prompt, maxTokens, [boolInput('stream', true)]), id: 'one', outputs: [{ name: 'text_output' }, { name: 'output_ids' }] }]);
      const result = (await done).get('one')!;
      expect(result.errors).toEqual([]);
      expect(result.finals).toBe(1);
      expect(result.texts.length).toBeGreaterThan(1);
      expect(result.texts.join('')).toBe(expected.text);
      expect(result.ids).toEqual(expected.token_ids);
    }
  });

  it('runs 8 concurrent streams on one call, each matching its own greedy output', async () => {
    const prompts = Array.from({ length: 8 }, (_, i) => `Request number ${i} says`);
    const expected = prompts.map((p, i) => cliGreedy(tiny, p, 10 + i));
    const { done } = streamAll(
      client,
      prompts.map((p, i) => ({ ...textRequest('tiny', p, 10 + i, [boolInput('stream', true)]), id: `r${i}` })),
    );
    const results = await done;
    prompts.forEach((_, i) => {
      const result = results.get(`r${i}`)!;
      expect(result.errors).toEqual([]);
      expect(result.finals).toBe(1);
      expect(result.texts.join('')).toBe(expected[i]!.text);
    });
  });

  it('a stream cancelled mid-way frees its request in the backend', async () => {
    type Stats = { model_stats: { inference_stats: { fail: { count: string } } }[] };
    const failures = async () => Number((await client.call<Stats>('ModelStatistics', { name: 'tiny' })).model_stats[0]?.inference_stats.fail.count ?? 0);
    const before = await failures();
    const call = client.stream();
    call.on('error', () => {});
    await new Promise<void>((resolve) => {
      let responses = 0;
      call.on('data', () => {
        if (++responses === 3) {
          call.cancel();
          resolve();
        }
      });
      call.write({ ...textRequest('tiny', 'A very long story begins', 1500, [boolInput('stream', true)]), id: 'long' });
    });
    // The backend ends a cancelled request within one step and reports it as failed when it releases it.
    let after = before;
    for (let i = 0; i < 200 && after === before; ++i) {
      await new Promise((r) => setTimeout(r, 50));
      after = await failures();
    }
    expect(after).toBe(before + 1);
  });

  it('a stop request ends every running request with its id, also after another with that id finished', async () => {
    const long = (): InferRequest => ({ ...textRequest('tiny', 'A very long story begins', 1500, [boolInput('stream', true)]), id: 'shared' });
    const started = (request: InferRequest) => {
      let onFirst: () => void = () => {};
      const first = new Promise<void>((resolve) => (onFirst = resolve));
      const run = streamAll(client, [request], () => onFirst());
      run.call.on('error', () => {});
      return { first, done: run.done };
    };
    const a = started(long());
    await a.first;
    // A short request reusing the id finishes first; it must not take the id away from the others.
    const short = await streamAll(client, [{ ...textRequest('tiny', 'Hi', 2, [boolInput('stream', true)]), id: 'shared' }]).done;
    expect(short.get('shared')?.errors).toEqual([]);
    const c = started(long());
    await c.first;
    const stop = await streamAll(client, [{ model_name: 'tiny', id: 'shared', inputs: [boolInput('stop', true)] }]).done;
    expect(stop.get('shared')?.errors).toEqual([]);
    for (const run of [a, c]) {
      const result = (await run.done).get('shared');
      expect(result?.errors).toEqual(['request stopped by a `stop` request']);
      expect(result?.finals).toBe(1);
    }
  });

  it('bad inputs get INVALID_ARGUMENT naming the input, and the server keeps serving', async () => {
    const bad: [InferRequest, string][] = [
      [textRequest('tiny_unary', 'hi', 0), 'max_tokens'],
      [textRequest('tiny_unary', 'hi', 100000), 'max_tokens'],
      [textRequest('tiny_unary', '', 4), 'text_input'],
      [textRequest('tiny_unary', 'word '.repeat(3000), 4), 'text_input'],
      [textRequest('tiny_unary', 'hi', 4, [fp32Input('temperature', -1)]), 'temperature'],
      [textRequest('tiny_unary', 'hi', 4, [fp32Input('top_p', 2)]), 'top_p'],
      [textRequest('tiny_unary', 'hi', 4, [int32Input('top_k', -5)]), 'top_k'],
      [textRequest('tiny_unary', 'hi', 4, [boolInput('stream', true)]), 'stream'],
      [{ model_name: 'tiny_unary', inputs: [int32Input('max_tokens', 4)] }, 'text_input'],
      [{ ...textRequest('tiny_unary', 'hi', 4), inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from([0xff, 0xfe])] } }, int32Input('max_tokens', 4)] }, 'text_input'],
      [{ ...textRequest('tiny_unary', 'hi', 4), id: 'x'.repeat(1025) }, 'the request id is 1025 bytes, more than the 1024 allowed'],
    ];
    for (const [request, input] of bad) {
      const error = await client.infer(request).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      expect(error, `expected an error naming ${input}`).not.toBeNull();
      expect(error!.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error!.details).toContain(input);
    }
    // On a stream, the error arrives as error_message without closing the stream.
    const { done } = streamAll(client, [
      { ...textRequest('tiny', 'hi', 0, [boolInput('stream', true)]), id: 'bad' },
      { ...textRequest('tiny', 'still fine', 5, [boolInput('stream', true)]), id: 'good' },
    ]);
    const results = await done;
    expect(results.get('bad')!.errors.join()).toContain('max_tokens');
    expect(results.get('good')!.errors).toEqual([]);
    expect(results.get('good')!.texts.join('')).toBe(cliGreedy(tiny, 'still fine', 5).text);
  });

  it('refuses what the engine can never run and, with a full queue, what cannot wait, naming the limit', async () => {
    const request = (id: string, prompt: string, maxTokens: number): InferRequest => ({
      ...textRequest('tiny_limits', prompt, maxTokens, [boolInput('stream', true)]),
      id,
      parameters: { triton_enable_empty_final_response: { bool_param: true } },
    });
    // 'a' runs; once it streams, 'b' waits in the queue (one place), 'c' finds it full, and 'big'
    // needs more than the whole 256-token KV cache.
    const errors = new Map<string, string[]>();
    const finals = new Map<string, number>();
    const texts = new Map<string, string>();
    const call = client.stream();
    await new Promise<void>((resolve, reject) => {
      let followed = false;
      call.on('data', (message: StreamResponse) => {
        const id = message.infer_response?.id ?? '';
        if (message.error_message) errors.set(id, [...(errors.get(id) ?? []), message.error_message]);
        const response = message.infer_response;
        if (response?.outputs.some((o) => o.name === 'text_output')) {
          texts.set(id, (texts.get(id) ?? '') + decodeBytesRaw(output(response, 'text_output')).join(''));
        }
        if (response?.parameters?.['triton_final_response']?.bool_param === true || message.error_message) {
          finals.set(id, (finals.get(id) ?? 0) + 1);
        }
        if (id === 'a' && !followed) {
          followed = true;
          for (const next of [request('b', 'The second', 5), request('c', 'The third', 5), request('big', 'Too long', 300)]) {
            call.write(next);
          }
        }
        if (['a', 'b', 'c', 'big'].every((k) => finals.has(k))) call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve());
      call.write(request('a', 'The first request', 200));
    });
    expect(errors.get('a')).toBeUndefined();
    expect(errors.get('b')).toBeUndefined();
    expect(texts.get('b')).toBe(cliGreedy(tiny, 'The second', 5).text);
    expect(errors.get('c')?.join()).toMatch(/queue is full \(max_queue_size 1/);
    expect(errors.get('big')?.join()).toContain('max_tokens_in_paged_kv_cache');
    for (const id of ['a', 'b', 'c', 'big']) expect(finals.get(id), id).toBe(1);
  });

  it('refuses a decoupled model through unary ModelInfer', async () => {
    const error = await client.infer(textRequest('tiny', 'hi', 4)).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(error?.details ?? '').toMatch(/decoupled/);
  });
});
