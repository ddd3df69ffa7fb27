// TritonLlmClient against the fake Triton: request shapes after the model's config (batch
// dimension, datatypes, input names), streaming, finish reasons, shared streams, cancellation.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Status, TritonError, TritonLlmClient, type GenerationChunk } from '../../sdk/src/index.js';
import { describeInputs, FakeTriton, nobatchConfig } from './fake-triton.js';

async function rejection(promise: Promise<unknown>): Promise<TritonError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TritonError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 250 && !condition(); ++i) await new Promise((r) => setTimeout(r, 20));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

describe('TritonLlmClient against a fake Triton', () => {
  let fake: FakeTriton;
  const clients: TritonLlmClient[] = [];
  const client = (options: ConstructorParameters<typeof TritonLlmClient>[0] = {}) => {
    const c = new TritonLlmClient({ url: fake.address, ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    fake = await FakeTriton.start();
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await fake?.stop();
  });
  beforeEach(() => {
    fake.tokenDelayMs = 1;
  });

  it('shapes requests for a batching ensemble: [1, 1] tensors, datatypes from its config, text only', async () => {
    const llm = client(); // default model: "ensemble"
    const result = await llm.generate({ prompt: 'Hi', maxTokens: 3, temperature: 0.5, topK: 4, topP: 0.9, seed: 7, stopWords: ['a', 'bc'], minTokens: 1, beamWidth: 1 });
    expect(result.text).toBe('t0 t1 t2 ');
    expect(result.finishReason).toBe('unknown');
    expect(result.usage).toEqual({});
    expect(result.tokenIds).toBeUndefined();
    expect(result.model).toBe('ensemble');
    expect(result.timings.totalMs).toBeGreaterThanOrEqual(result.timings.ttftMs);
    const request = fake.streamRequests.at(-1)!;
    expect(request.model_name).toBe('ensemble');
    expect(request.outputs.map((o) => o.name)).toEqual(['text_output']);
    expect(describeInputs(request)).toEqual({
      text_input: { datatype: 'BYTES', shape: [1, 1], values: ['Hi'] },
      max_tokens: { datatype: 'INT32', shape: [1, 1], values: [3] },
      temperature: { datatype: 'FP32', shape: [1, 1], values: [0.5] },
      top_k: { datatype: 'INT32', shape: [1, 1], values: [4] },
      top_p: { datatype: 'FP32', shape: [1, 1], values: [expect.closeTo(0.9, 6)] },
      random_seed: { datatype: 'UINT64', shape: [1, 1], values: [7n] },
      min_length: { datatype: 'INT32', shape: [1, 1], values: [1] },
      beam_width: { datatype: 'INT32', shape: [1, 1], values: [1] },
      stop_words: { datatype: 'BYTES', shape: [1, 2], values: ['a', 'bc'] },
    });

    const chunks: GenerationChunk[] = [];
    const stream = llm.stream('Hi');
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.index)).toEqual([...Array(64).keys()]); // maxTokens defaults to 64
    expect(chunks.map((c) => c.text).join('')).toBe((await stream.result).text);
    expect(describeInputs(fake.streamRequests.at(-1)!).stream).toEqual({ datatype: 'BOOL', shape: [1, 1], values: [true] });
    // The config was fetched once for both calls.
    expect(fake.count('ModelConfig')).toBe(1);
  });

  it('shapes requests for a model without batching: no batch dimension, its own input names, token counts', async () => {
    const llm = client({ model: 'nobatch' });
    const result = await llm.generate({ prompt: 'Hey', maxTokens: 4, seed: 2n ** 40n, minTokens: 2, stopWords: ['x'] });
    expect(result.text).toBe('t0 t1 t2 t3 ');
    expect(result.tokenIds).toEqual([100, 101, 102, 103]);
    expect(result.usage).toEqual({ completionTokens: 4 });
    expect(result.finishReason).toBe('length');
    const request = fake.streamRequests.at(-1)!;
    expect(request.outputs.map((o) => o.name)).toEqual(['text_output', 'output_ids']);
    expect(describeInputs(request)).toEqual({
      text_input: { datatype: 'BYTES', shape: [1], values: ['Hey'] },
      max_tokens: { datatype: 'INT32', shape: [1], values: [4] },
      seed: { datatype: 'INT64', shape: [1], values: [2n ** 40n] },
      min_tokens: { datatype: 'INT32', shape: [1], values: [2] },
      stop_words: { datatype: 'BYTES', shape: [1], values: ['x'] },
    });
    const info = await llm.modelInfo();
    expect(info).toMatchObject({ name: 'nobatch', maxBatchSize: 0, decoupled: true, streaming: true });
    expect(info.inputs['seed']).toBe('INT64');

    // Fewer tokens than maxTokens: "stop"; excludeInputInOutput false: counts unknown.
    const stopped = await llm.generate({ prompt: 'short story', maxTokens: 4 });
    expect(stopped.text).toBe('t0 t1 ');
    expect(stopped.usage).toEqual({ completionTokens: 2 });
    expect(stopped.finishReason).toBe('stop');
    const withPrompt = await llm.generate({ prompt: 'Hey', maxTokens: 3, excludeInputInOutput: false });
    expect(withPrompt.usage).toEqual({});
    expect(withPrompt.finishReason).toBe('unknown');

    const chunks: GenerationChunk[] = [];
    const stream = llm.stream({ prompt: 'Hey', maxTokens: 3 });
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks).toEqual([
      { text: 't0 ', index: 0, tokenIds: [100] },
      { text: 't1 ', index: 1, tokenIds: [101] },
      { text: 't2 ', index: 2, tokenIds: [102] },
    ]);
    const final = await stream.result;
    expect(final).toMatchObject({ text: 't0 t1 t2 ', tokenIds: [100, 101, 102], usage: { completionTokens: 3 }, finishReason: 'length' });
  });

  it('answers a model that cannot stream in one chunk, without asking it to stream', async () => {
    const llm = client({ model: 'unary' });
    const chunks: string[] = [];
    const stream = llm.stream({ prompt: 'x', maxTokens: 3 });
    for await (const chunk of stream) chunks.push(chunk.text);
    expect(chunks).toEqual(['t0 t1 t2 ']);
    expect(describeInputs(fake.streamRequests.at(-1)!).stream).toBeUndefined();
    expect(describeInputs(fake.streamRequests.at(-1)!).text_input?.shape).toEqual([1, 1]);
  });

  it('surfaces in-band errors with the server message, unknown models, and client-side validation', async () => {
    const llm = client({ model: 'nobatch' });
    const refused = await rejection(llm.generate('fail'));
    expect(refused.source).toBe('in-band');
    expect(refused.details).toBe("input 'text_input': the fake refuses this prompt");
    expect(refused.model).toBe('nobatch');

    const streamError = await rejection(
      (async () => {
        for await (const _ of llm.stream('fail')) void _;
      })(),
    );
    expect(streamError.details).toContain('the fake refuses this prompt');

    const unknown = await rejection(llm.generate({ prompt: 'x', model: 'missing' }));
    expect(unknown.code).toBe(Status.NOT_FOUND);
    expect(unknown.details).toBe("Request for unknown model: 'missing' is not found");

    const defaultModel = client({ url: fake.address });
    fake.models.delete('ensemble');
    const hint = await rejection(defaultModel.generate('x'));
    fake.models.set('ensemble', (await import('./fake-triton.js')).ensembleConfig);
    expect(hint.code).toBe(Status.NOT_FOUND);
    expect(hint.message).toMatch(/no model was given and the default is "ensemble"; pass \{ model: NAME \}/);

    const badType = await rejection(llm.generate({ prompt: 'x', topK: 0.5 } as never));
    expect(badType.code).toBe(Status.INVALID_ARGUMENT);
    expect(badType.source).toBe('client');
    // top_k is not declared by "nobatch": the fallback datatype INT32 applies and 0.5 is no integer.
    expect(badType.details).toBe('input "top_k": element 0 (0.5) is not an integer');
  });

  it('aborting the signal or leaving the loop cancels the request on the server', async () => {
    fake.tokenDelayMs = 5;
    const llm = client({ model: 'nobatch' });

    const cancelledBefore = fake.streamsCancelled;
    const controller = new AbortController();
    const stream = llm.stream({ prompt: 'long', maxTokens: 100_000 }, { signal: controller.signal });
    let received = 0;
    const error = await rejection(
      (async () => {
        for await (const _ of stream) if (++received === 3) controller.abort(new Error('user gave up'));
      })(),
    );
    expect(received).toBe(3);
    expect(error.cancelled).toBe(true);
    expect(error.cause).toEqual(new Error('user gave up'));
    expect(error.partialText).toMatch(/^t0 t1 t2 /);  // what arrived before the abort is kept
    expect((await rejection(stream.result)).cancelled).toBe(true);
    await waitFor(() => fake.streamsCancelled === cancelledBefore + 1, 'the server to see the cancellation');

    const broken = llm.stream({ prompt: 'long', maxTokens: 100_000 });
    let count = 0;
    for await (const _ of broken) if (++count === 2) break;
    expect((await rejection(broken.result)).cancelled).toBe(true);
    await waitFor(() => fake.streamsCancelled === cancelledBefore + 2, 'the server to see the second cancellation');

    const late = await rejection(llm.generate({ prompt: 'long', maxTokens: 100_000 }, { timeoutMs: 200 }));
    expect(late.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(late.partialText).toBeUndefined();  // not streamed: no text came
    await waitFor(() => fake.streamsCancelled === cancelledBefore + 3, 'the server to see the deadline');

    const already = await rejection(llm.generate('x', { signal: AbortSignal.abort() }));
    expect(already.cancelled).toBe(true);
  });

  it('shares one stream between requests when asked, and stops a cancelled one with a `stop` request', async () => {
    fake.tokenDelayMs = 3;
    const llm = client({ model: 'nobatch', sharedStream: true });
    const opened = fake.streamsOpened;
    const cancelledBefore = fake.streamsCancelled;
    const a = llm.stream({ prompt: 'a', maxTokens: 8 });
    const b = llm.stream({ prompt: 'b', maxTokens: 100_000 });
    const c = llm.generate({ prompt: 'c', maxTokens: 5 });
    let seen = 0;
    for await (const _ of b) if (++seen === 2) break;
    const texts: string[] = [];
    for await (const chunk of a) texts.push(chunk.text);
    expect(texts.join('')).toBe('t0 t1 t2 t3 t4 t5 t6 t7 ');
    expect((await c).text).toBe('t0 t1 t2 t3 t4 ');
    expect((await rejection(b.result)).cancelled).toBe(true);
    expect(fake.streamsOpened).toBe(opened + 1);
    await waitFor(() => fake.stopRequests.length > 0, 'the stop request');
    const bId = fake.streamRequests.find((r) => describeInputs(r).text_input?.values[0] === 'b')?.id;
    expect(fake.stopRequests).toContain(bId);
    // The shared stream itself was never cancelled.
    expect(fake.streamsCancelled).toBe(cancelledBefore);

    // A deadline on a shared stream ends only that request.
    const late = await rejection(llm.generate({ prompt: 'slow', maxTokens: 100_000 }, { timeoutMs: 100 }));
    expect(late.code).toBe(Status.DEADLINE_EXCEEDED);
    expect((await llm.generate({ prompt: 'next', maxTokens: 2 })).text).toBe('t0 t1 ');
  });

  it('leaves no stream open on the server, whichever way a request ends', async () => {
    const scenarios: [string, boolean, (llm: TritonLlmClient) => Promise<unknown>][] = [
      ['generate', false, (llm) => llm.generate({ prompt: 'a', maxTokens: 2 })],
      ['stream', false, async (llm) => { for await (const _ of llm.stream({ prompt: 'a', maxTokens: 2 })) void _; }],
      ['break', false, async (llm) => { for await (const _ of llm.stream({ prompt: 'a', maxTokens: 10_000 })) break; }],
      ['deadline', false, (llm) => llm.generate({ prompt: 'a', maxTokens: 100_000 }, { timeoutMs: 50 })],
      ['in-band error', false, (llm) => llm.generate('fail')],
      ['unknown model', false, (llm) => llm.generate({ prompt: 'a', model: 'missing' })],
      ['shared generate', true, (llm) => llm.generate({ prompt: 'a', maxTokens: 2 })],
      ['shared break', true, async (llm) => { for await (const _ of llm.stream({ prompt: 'a', maxTokens: 10_000 })) break; }],
      ['shared deadline', true, (llm) => llm.generate({ prompt: 'a', maxTokens: 100_000 }, { timeoutMs: 50 })],
      ['shared abort before open', true, async (llm) => { const s = llm.stream({ prompt: 'a', maxTokens: 10_000 }); s.cancel(); await s.result; }],
      ['shared in-band error', true, (llm) => llm.generate('fail')],
    ];
    for (const [name, sharedStream, scenario] of scenarios) {
      const llm = new TritonLlmClient({ url: fake.address, model: 'nobatch', sharedStream });
      await scenario(llm).catch(() => undefined);
      await waitFor(() => fake.openStreams === 0, `no open stream after "${name}"`);
      llm.close();
    }
  });

  it('refuses returnLogProbs for a model that cannot return them, naming what is missing, before sending', async () => {
    const before = fake.streamRequests.length;
    const ensemble = await rejection(client({ model: 'ensemble' }).generate({ prompt: 'Hey', returnLogProbs: true }));
    expect(ensemble.code).toBe(Status.INVALID_ARGUMENT);
    expect(ensemble.message).toContain(
      'returnLogProbs: model "ensemble" declares neither input return_log_probs with output output_log_probs (tensorrtllm_backend) ' +
        'nor input return_logprobs with output logprobs (vLLM)',
    );
    const nobatch = await rejection(client({ model: 'nobatch' }).generate({ prompt: 'Hey', returnLogProbs: true }));
    expect(nobatch.message).toContain('returnLogProbs: model "nobatch" declares neither');
    expect(fake.streamRequests.length).toBe(before);
  });

  it("speaks Triton's vLLM backend: options in sampling_parameters, usage, finish reason and log probabilities from its outputs", async () => {
    const llm = client({ model: 'vllm' });
    const result = await llm.generate({
      prompt: 'two words', maxTokens: 3, temperature: 0, topK: 5, topP: 0.5, seed: 11n, stopWords: ['\n'], badWords: ['x'],
      minTokens: 1, endId: 2, excludeInputInOutput: true, returnLogProbs: true,
    });
    expect(result.text).toBe('t0 t1 t2 ');
    expect(result.finishReason).toBe('length');
    expect(result.usage).toEqual({ promptTokens: 2, completionTokens: 3 });
    expect(result.logProbs).toEqual([100, 101, 102].map((id) => expect.closeTo(-(id - 99) / 8, 6)));
    const request = fake.streamRequests.at(-1)!;
    expect(request.outputs.map((o) => o.name).sort()).toEqual(['finish_reason', 'logprobs', 'num_input_tokens', 'num_output_tokens', 'text_output']);
    const inputs = describeInputs(request);
    // No batch dimension (max_batch_size 0); options without an input of their own in the JSON.
    expect(Object.keys(inputs).sort()).toEqual([
      'exclude_input_in_output', 'return_finish_reason', 'return_logprobs', 'return_num_input_tokens', 'return_num_output_tokens',
      'sampling_parameters', 'text_input',
    ]);
    expect(inputs['return_logprobs']).toEqual({ datatype: 'BOOL', shape: [1], values: [true] });
    expect(JSON.parse(String(inputs['sampling_parameters']!.values[0]))).toEqual({
      max_tokens: 3, temperature: 0, top_k: 5, top_p: 0.5, seed: 11, min_tokens: 1, stop_token_ids: [2], stop: ['\n'], bad_words: ['x'], logprobs: 0,
    });

    // Streamed: "None" until the last response, per-response token counts summed, no log probabilities unless asked.
    const stream = llm.stream({ prompt: 'short one', maxTokens: 5 });
    const chunks: GenerationChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const streamed = await stream.result;
    expect(chunks.map((c) => c.text)).toEqual(['t0 ', 't1 ']);
    expect(streamed.finishReason).toBe('stop');
    expect(streamed.usage).toEqual({ promptTokens: 2, completionTokens: 2 });
    expect(streamed.logProbs).toBeUndefined();
    expect(JSON.parse(String(describeInputs(fake.streamRequests.at(-1)!)['sampling_parameters']!.values[0]))).toEqual({ max_tokens: 5 });
  });

  it('sends the default max_tokens only to a model that takes it; an explicit one always', async () => {
    fake.models.set('textonly', { ...nobatchConfig, name: 'textonly', input: nobatchConfig.input!.filter((i) => i.name !== 'max_tokens') });
    const llm = client({ model: 'textonly' });
    await llm.generate({ prompt: 'p' });
    expect(Object.keys(describeInputs(fake.streamRequests.at(-1)!))).not.toContain('max_tokens');
    await llm.generate({ prompt: 'p', maxTokens: 2 });
    expect(describeInputs(fake.streamRequests.at(-1)!)['max_tokens']).toEqual({ datatype: 'INT32', shape: [1], values: [2] });
    fake.models.delete('textonly');
  });

  it('gives a stream as a WHATWG ReadableStream of chunks or of UTF-8 text; cancelling it cancels the request', async () => {
    const llm = client({ model: 'nobatch' });
    const body = new Response(llm.stream({ prompt: 'p', maxTokens: 3 }).toTextStream());
    expect(await body.text()).toBe('t0 t1 t2 ');

    const chunks: string[] = [];
    const reader = llm.stream({ prompt: 'p', maxTokens: 2 }).toReadableStream().getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(`${next.value.index}:${next.value.text}`);
    expect(chunks).toEqual(['0:t0 ', '1:t1 ']);

    fake.tokenDelayMs = 5;
    const cancelledBefore = fake.streamsCancelled;
    const long = llm.stream({ prompt: 'long', maxTokens: 100_000 });
    const web = long.toReadableStream().getReader();
    await web.read();
    await web.cancel();
    expect((await rejection(long.result)).cancelled).toBe(true);
    await waitFor(() => fake.streamsCancelled === cancelledBefore + 1, 'the server to see the cancellation');

    // A failure errors the web stream with the TritonError.
    const failing = llm.stream('fail').toReadableStream().getReader();
    const error = await rejection(failing.read());
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
  });

  it('iterates a stream once; its result works without iterating', async () => {
    const llm = client({ model: 'nobatch' });
    const stream = llm.stream({ prompt: 'p', maxTokens: 2 });
    expect((await stream.result).text).toBe('t0 t1 ');
    const chunks: string[] = [];
    for await (const chunk of stream) chunks.push(chunk.text);
    expect(chunks).toEqual(['t0 ', 't1 ']);
    expect(() => stream[Symbol.asyncIterator]()).toThrow(/iterated once/);
  });
});

// Applications compile with exactOptionalPropertyTypes (this repository's tsconfig does too): an
// option given a possibly-undefined value, as from process.env, must type-check and mean "unset".
describe('options under exactOptionalPropertyTypes', () => {
  it('take possibly-undefined values and treat undefined as unset', async () => {
    const fake = await FakeTriton.start();
    const fromEnvironment: string | undefined = process.env.TRITON_LLM_TEST_UNSET_VARIABLE;
    const llm = new TritonLlmClient({ url: fake.address, model: fromEnvironment, timeoutMs: fromEnvironment === undefined ? undefined : 1 });
    try {
      expect(await llm.serverLive()).toBe(true);  // no 1 ms deadline: undefined left it unset
    } finally {
      llm.close();
      await fake.stop();
    }
  });
});
