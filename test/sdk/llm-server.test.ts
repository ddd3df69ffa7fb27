// The SDK against the dev server (build/bin/llm-server) serving the synthetic tiny checkpoint,
// checked against `llm generate`.
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { maxBufferedChunks, Status, TritonClient, TritonError, TritonLlmClient, type InferInput, type InferRequest } from '../../sdk/src/index.js';
import { buildDir } from '../helpers/paths.js';
import { cliGreedy, modelConfig, TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
/** More tokens than the tiny model makes before a request sent right after it is refused. */
const LONG_TOKENS = 1500;

async function rejection(promise: Promise<unknown>): Promise<TritonError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TritonError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('SDK against the dev server', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let llm: TritonLlmClient;
  let address: string;

  /** Requests of a model that ended in failure (cancelled ones count), from ModelStatistics. */
  const failures = async (model: string): Promise<number> => (await llm.modelStatistics(model))[0]?.inferenceStats?.fail?.count ?? 0;
  const waitForFailures = async (model: string, expected: number): Promise<number> => {
    let count = await failures(model);
    for (let i = 0; i < 200 && count < expected; ++i) {
      await new Promise((r) => setTimeout(r, 50));
      count = await failures(model);
    }
    return count;
  };

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    repository = new TempRepository()
      .add({ name: 'tiny', checkpointDir: tiny, decoupled: true })
      .add({ name: 'tiny_unary', checkpointDir: tiny, decoupled: false })
      .addRaw('tiny_nobatch', modelConfig({ name: 'tiny_nobatch', checkpointDir: tiny, decoupled: true }).replace(/^max_batch_size: 1$/m, 'max_batch_size: 0'));
    server = await startServer(repository.dir);
    address = server.address;
    llm = new TritonLlmClient({ url: address, model: 'tiny' });
  });

  afterAll(async () => {
    llm?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
  });

  it('answers health, metadata, config, index and statistics', async () => {
    expect(await llm.serverLive()).toBe(true);
    expect(await llm.serverReady()).toBe(true);
    expect((await llm.serverMetadata()).name).not.toBe('');
    expect(await llm.modelReady('tiny')).toBe(true);
    expect(await llm.modelReady('nope')).toBe(false);
    const metadata = await llm.modelMetadata('tiny');
    expect(metadata.inputs).toContainEqual({ name: 'text_input', datatype: 'BYTES', shape: [-1, 1] });
    const config = await llm.modelConfig('tiny_nobatch');
    expect(config.maxBatchSize).toBe(0);
    expect(config.modelTransactionPolicy?.decoupled).toBe(true);
    const index = await llm.repositoryIndex();
    expect(index.filter((m) => m.state === 'READY').map((m) => m.name).sort()).toEqual(['tiny', 'tiny_nobatch', 'tiny_unary']);
    expect((await llm.modelStatistics('tiny'))[0]?.name).toBe('tiny');
  });

  it('stops reading a stream whose loop lags, and loses nothing', async () => {
    const prompt = 'Once upon a time';
    const expected = cliGreedy(tiny, prompt, 400);
    expect(expected.token_ids.length).toBeGreaterThan(4 * maxBufferedChunks);  // else nothing to hold back
    const stream = llm.stream({ prompt, maxTokens: 400 });
    const iterator = stream[Symbol.asyncIterator]();
    const chunks: string[] = [];
    const first = await iterator.next();
    chunks.push(first.value!.text);
    // Unread, the chunks pile up to the mark; then, while the model runs on, no more arrive.
    for (let i = 0; i < 1500 && stream.bufferedChunks < maxBufferedChunks; ++i) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(stream.bufferedChunks).toBe(maxBufferedChunks);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      chunks.push(next.value.text);
      expect(stream.bufferedChunks).toBeLessThanOrEqual(maxBufferedChunks);
    }
    expect(chunks.join('')).toBe(expected.text);
    expect((await stream.result).text).toBe(expected.text);

    // Without a loop nothing holds the stream back: `result` alone gets the whole generation.
    const unread = llm.stream({ prompt, maxTokens: 400 });
    expect((await unread.result).text).toBe(expected.text);
    // A loop that stopped reading, then the caller cancels: the stream ends, cancelled.
    const abandoned = llm.stream({ prompt, maxTokens: 400 });
    await abandoned[Symbol.asyncIterator]().next();
    for (let i = 0; i < 1500 && abandoned.bufferedChunks < maxBufferedChunks; ++i) await new Promise((resolve) => setTimeout(resolve, 20));
    abandoned.cancel();
    expect((await rejection(abandoned.result)).code).toBe(Status.CANCELLED);
  });

  it('generate and stream give exactly the text of `llm generate` for a greedy request', async () => {
    const prompt = 'The capital of France is';
    const expected = cliGreedy(tiny, prompt, 24);

    const result = await llm.generate({ prompt, maxTokens: 24 });
    expect(result.text).toBe(expected.text);
    expect(result.tokenIds).toEqual(expected.token_ids);
    expect(result.usage.completionTokens).toBe(expected.token_ids.length);
    expect(result.finishReason).toBe(expected.finish_reason);
    expect(result.model).toBe('tiny');
    expect(result.timings.totalMs).toBeGreaterThanOrEqual(result.timings.ttftMs);

    const stream = llm.stream({ prompt, maxTokens: 24 });
    const chunks: string[] = [];
    const ids: number[] = [];
    for await (const chunk of stream) {
      expect(chunk.index).toBe(chunks.length);
      chunks.push(chunk.text);
      ids.push(...(chunk.tokenIds ?? []));
    }
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('')).toBe(expected.text);
    const final = await stream.result;
    expect(final.text).toBe(chunks.join(''));
    expect(final.tokenIds).toEqual(expected.token_ids);
    expect(ids).toEqual(expected.token_ids);
    expect(final.finishReason).toBe(expected.finish_reason);
  });

  it('returns the log probability of each generated token, the same streamed or not', async () => {
    const prompt = 'Once upon a time';
    const result = await llm.generate({ prompt, maxTokens: 12, returnLogProbs: true });
    expect(result.logProbs).toHaveLength(result.tokenIds!.length);
    // Greedy: each chosen token is the most likely, so its probability is at least 1 / vocabulary.
    for (const logProb of result.logProbs!) {
      expect(logProb).toBeLessThanOrEqual(0);
      expect(logProb).toBeGreaterThanOrEqual(-Math.log(32000));
    }
    const stream = llm.stream({ prompt, maxTokens: 12, returnLogProbs: true });
    const streamed: number[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.logProbs ?? []));
    expect(streamed).toEqual(result.logProbs);
    expect((await stream.result).logProbs).toEqual(result.logProbs);
    expect((await llm.generate({ prompt, maxTokens: 4 })).logProbs).toBeUndefined();
  });

  it('works alike with a non-decoupled model and one without batch dimension', async () => {
    const prompt = 'Tell me a story';
    const expected = cliGreedy(tiny, prompt, 12);
    const unary = new TritonLlmClient({ url: address, model: 'tiny_unary' });
    expect((await unary.generate({ prompt, maxTokens: 12 })).text).toBe(expected.text);
    const chunks: string[] = [];
    for await (const chunk of unary.stream({ prompt, maxTokens: 12 })) chunks.push(chunk.text);
    expect(chunks).toEqual([expected.text]); // cannot stream: one chunk
    unary.close();

    const nobatch = new TritonLlmClient({ url: address, model: 'tiny_nobatch' });
    expect((await nobatch.modelInfo()).maxBatchSize).toBe(0);
    expect((await nobatch.generate({ prompt, maxTokens: 12 })).text).toBe(expected.text);
    let streamed = '';
    for await (const chunk of nobatch.stream({ prompt, maxTokens: 12 })) streamed += chunk.text;
    expect(streamed).toBe(expected.text);
    nobatch.close();
  });

  it('runs concurrent requests over one shared stream', async () => {
    const shared = new TritonLlmClient({ url: address, model: 'tiny', sharedStream: true });
    const prompts = Array.from({ length: 4 }, (_, i) => `Request number ${i} says`);
    const results = await Promise.all(prompts.map((prompt, i) => shared.generate({ prompt, maxTokens: 6 + i })));
    results.forEach((result, i) => expect(result.text).toBe(cliGreedy(tiny, prompts[i]!, 6 + i).text));
    shared.close();
  });

  it('aborting mid-stream ends the iteration promptly and the server frees the request', async () => {
    const before = await failures('tiny');
    const controller = new AbortController();
    let received = 0;
    const error = await rejection(
      (async () => {
        for await (const _ of llm.stream({ prompt: 'A very long story begins', maxTokens: 1500 }, { signal: controller.signal })) {
          if (++received === 3) controller.abort();
        }
      })(),
    );
    expect(received).toBe(3);
    expect(error.code).toBe(Status.CANCELLED);
    expect(error.cancelled).toBe(true);
    // The backend ends a cancelled request within one step and counts it as failed when it frees it.
    expect(await waitForFailures('tiny', before + 1)).toBe(before + 1);

    // Leaving the loop early does the same.
    let seen = 0;
    for await (const _ of llm.stream({ prompt: 'Another long story', maxTokens: 1500 })) if (++seen === 2) break;
    expect(await waitForFailures('tiny', before + 2)).toBe(before + 2);
  });

  it('cancelling one request of a shared stream stops it on the server and leaves the others running', async () => {
    const shared = new TritonLlmClient({ url: address, model: 'tiny', sharedStream: true });
    const before = await failures('tiny');
    const expected = cliGreedy(tiny, 'Keep going', 20);
    const survivor = shared.generate({ prompt: 'Keep going', maxTokens: 20 });
    let seen = 0;
    for await (const _ of shared.stream({ prompt: 'A very long story begins', maxTokens: 1500 })) if (++seen === 2) break;
    expect((await survivor).text).toBe(expected.text);
    expect(await waitForFailures('tiny', before + 1)).toBe(before + 1);
    shared.close();
  });

  it('maps a passed deadline to DEADLINE_EXCEEDED, and the server frees the request', async () => {
    await llm.modelInfo(); // the config is cached: the deadline runs on the generation itself
    const before = await failures('tiny');
    const error = await rejection(llm.generate({ prompt: 'A very long story begins', maxTokens: 2000 }, { timeoutMs: 100 }));
    expect(error.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(error.kind).toBe('timeout');
    expect(await waitForFailures('tiny', before + 1)).toBe(before + 1);
  });

  it('reports an unknown model and invalid arguments with the server message', async () => {
    const unknown = await rejection(llm.generate({ prompt: 'hi', model: 'nope' }));
    expect(unknown.code).toBe(Status.NOT_FOUND);
    expect(unknown.kind).toBe('not-found');
    expect(unknown.details).toBe("Request for unknown model: 'nope' is not found");

    const defaulted = new TritonLlmClient({ url: address });
    const hint = await rejection(defaulted.generate('hi'));
    expect(hint.message).toContain('the default is "ensemble"');
    defaulted.close();

    // Dedicated streams ask for real status codes (triton_grpc_error), so the server's refusal
    // arrives as INVALID_ARGUMENT, named after the method called.
    const invalid = await rejection(llm.generate({ prompt: 'hi', maxTokens: 0 }));
    expect(invalid).toMatchObject({ code: Status.INVALID_ARGUMENT, kind: 'bad-request', source: 'status', call: 'generate', model: 'tiny' });
    expect(invalid.details).toContain('max_tokens');
    expect(invalid.message).toMatch(/^generate \(model "tiny"\) failed with INVALID_ARGUMENT: .*max_tokens/);
    const streamed = await rejection(
      (async () => {
        for await (const _ of llm.stream({ prompt: 'hi', temperature: -1 })) void _;
      })(),
    );
    expect(streamed).toMatchObject({ code: Status.INVALID_ARGUMENT, call: 'stream' });
    expect(streamed.details).toContain('temperature');
    // A shared stream cannot: the refusal stays in-band there, without a code; the SDK reads it from the message.
    const shared = new TritonLlmClient({ url: address, model: 'tiny', sharedStream: true });
    const inBand = await rejection(shared.generate({ prompt: 'hi', maxTokens: 0 }));
    expect(inBand).toMatchObject({ code: Status.INVALID_ARGUMENT, kind: 'bad-request', source: 'in-band', call: 'generate' });
    expect(inBand.details).toContain('max_tokens');
    expect((await shared.generate({ prompt: 'hi', maxTokens: 2 })).text.length).toBeGreaterThan(0);
    shared.close();

    // Through ModelInfer the same refusal arrives as a status.
    const generic = new TritonClient({ url: address });
    const status = await rejection(
      generic.infer({
        model: 'tiny_unary',
        inputs: [
          { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: ['hi'] },
          { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: [0] },
        ],
      }),
    );
    expect(status.code).toBe(Status.INVALID_ARGUMENT);
    expect(status.details).toContain('max_tokens');

    // A stream opened with triton_grpc_error by hand: the first error ends it with its status and
    // cancels the other request on it, which then fails with the same status.
    const before = await failures('tiny');
    const opened = generic.openStream({ headers: { triton_grpc_error: 'true' } });
    const request = (maxTokens: number): InferRequest => ({
      model: 'tiny',
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: ['Once upon a time'] },
        { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: [maxTokens] },
        { name: 'stream', datatype: 'BOOL', shape: [1, 1], data: [true] },
      ],
    });
    const drain = async (responses: AsyncIterable<unknown>): Promise<TritonError> =>
      rejection((async () => { for await (const _ of responses) void _; })());
    const long = drain(opened.infer(request(LONG_TOKENS)));
    const refused = drain(opened.infer(request(0)));
    for (const error of await Promise.all([refused, long])) {
      expect(error).toMatchObject({ code: Status.INVALID_ARGUMENT, source: 'status' });
      expect(error.details).toContain('max_tokens');
    }
    expect(await waitForFailures('tiny', before + 1)).toBeGreaterThan(before);  // the long one was cancelled
    generic.close();
  });

  it('generic infer() and streamInfer() carry typed tensors both ways', async () => {
    const prompt = 'Streaming works';
    const expected = cliGreedy(tiny, prompt, 10);
    const client = new TritonClient({ url: address });
    const inputs: InferInput[] = [
      { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [prompt] },
      { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: new Int32Array([10]) },
    ];
    for (const encoding of ['raw', 'typed'] as const) {
      const result = await client.infer({ model: 'tiny_unary', inputs, outputs: ['text_output', 'output_ids'], encoding });
      expect(result.strings('text_output')).toEqual([expected.text]);
      const ids = result.output('output_ids');
      expect(ids.datatype).toBe('INT32');
      expect(Array.from(ids.data as Int32Array)).toEqual(expected.token_ids);
    }
    let text = '';
    let finals = 0;
    for await (const response of client.streamInfer({ model: 'tiny', inputs: [...inputs, { name: 'stream', datatype: 'BOOL', shape: [1, 1], data: [true] }] })) {
      text += response.strings('text_output').join('');
      if (response.final) finals += 1;
    }
    expect(text).toBe(expected.text);
    expect(finals).toBeLessThanOrEqual(1);
    client.close();
  });

  it('runs the README examples (test/sdk/example.ts)', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const example = await import('./example.js');
      const client = new TritonLlmClient({ url: address, model: 'tiny' });
      expect((await example.generateExample(client)).text).toBe(cliGreedy(tiny, 'The capital of France is', 32).text);
      expect(await example.streamExample(client)).toBe(cliGreedy(tiny, 'Once upon a time', 48).text);
      expect(await example.cancelExample(client)).toHaveLength(5);
      expect((await example.errorExample(client))?.details).toContain('max_tokens');
      expect((await example.inferExample(client, 'tiny')).join('')).toBe(cliGreedy(tiny, 'Hello', 8).text);
      client.close();
      await example.main(address, 'tiny_nobatch');
    } finally {
      log.mockRestore();
      write.mockRestore();
    }
  });

  it('fetches a model\'s config again after this client reloads it', async () => {
    const swap = new TempRepository().add({ name: 'swap', checkpointDir: tiny, decoupled: true });
    const explicit = await startServer(swap.dir, ['--model-control-mode', 'explicit', '--load-model', 'swap']);
    const client = new TritonLlmClient({ url: explicit.address, model: 'swap' });
    try {
      const prompt = 'The capital of France is';
      const before = await client.generate({ prompt, maxTokens: 6 });
      expect((await client.modelInfo()).maxBatchSize).toBe(1);
      // The same model without a batch dimension: requests must lose their leading [1, ...].
      writeFileSync(join(swap.dir, 'swap', 'config.pbtxt'),
        modelConfig({ name: 'swap', checkpointDir: tiny, decoupled: true }).replace(/^max_batch_size: 1$/m, 'max_batch_size: 0'));
      await client.loadModel('swap');
      expect((await client.modelInfo()).maxBatchSize).toBe(0);
      expect((await client.generate({ prompt, maxTokens: 6 })).text).toBe(before.text);
    } finally {
      client.close();
      await explicit.stop();
      swap.remove();
    }
  }, 60_000);

  it('takes the server address from TRITON_URL when the options give none', async () => {
    const saved = process.env['TRITON_URL'];
    process.env['TRITON_URL'] = address;
    try {
      const client = new TritonLlmClient({ url: undefined, model: 'tiny' });
      expect(client.target).toBe(address);
      expect(await client.serverLive()).toBe(true);
      client.close();
    } finally {
      if (saved === undefined) delete process.env['TRITON_URL'];
      else process.env['TRITON_URL'] = saved;
    }
    expect(new TritonLlmClient().target).toBe(saved ?? 'localhost:8001');
  });

  it('fails fast with a clear message when the server is not running', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = new TritonLlmClient({ url: `127.0.0.1:${port}`, model: 'tiny' });
    const error = await rejection(client.generate('hi'));
    expect(error).toMatchObject({ code: Status.UNAVAILABLE, kind: 'unavailable' });
    expect(error.message).toMatch(new RegExp(`^cannot reach Triton at 127\\.0\\.0\\.1:${port} `));
    client.close();
  });
});
