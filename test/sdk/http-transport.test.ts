// The fetch transport (@triton-llm/sdk/http) against the dev server's HTTP generate endpoints:
// the same results as the gRPC client, cancellation that frees the request on the server, errors
// with their codes, and an entry point that bundles for browsers without Node.js modules.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status, TritonError, TritonLlmClient } from '../../sdk/src/index.js';
import { maxBufferedChunks, TritonHttpLlmClient } from '../../sdk/src/http/index.js';
import { buildDir, repoRoot } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { cancelledRequests, expectCancelledRequests } from '../helpers/metrics.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const prompt = 'The quick brown fox';

describe('fetch transport (@triton-llm/sdk/http)', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let grpc: TritonLlmClient;
  let http: TritonHttpLlmClient;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    repository = new TempRepository()
      .add({ name: 'tiny', checkpointDir: tiny, decoupled: true })
      .add({ name: 'tiny_unary', checkpointDir: tiny, decoupled: false });
    server = await startServer(repository.dir);
    grpc = new TritonLlmClient({ url: server.address, model: 'tiny' });
    http = new TritonHttpLlmClient({ url: server.httpUrl, model: 'tiny' });
  });

  afterAll(async () => {
    grpc?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
  });

  it('generates what the gRPC client generates: text, token ids, usage and finish reason', async () => {
    for (const model of ['tiny', 'tiny_unary']) {
      const request = { prompt, maxTokens: 12, model, returnLogProbs: true };
      const [viaGrpc, viaHttp] = await Promise.all([grpc.generate(request), http.generate(request)]);
      expect(viaHttp.text).toBe(viaGrpc.text);
      expect(viaHttp.tokenIds).toEqual(viaGrpc.tokenIds);
      expect(viaHttp.usage).toEqual(viaGrpc.usage);
      expect(viaHttp.usage.promptTokens).toBeGreaterThan(0);
      expect(viaHttp.finishReason).toBe(viaGrpc.finishReason);
      expect(viaHttp.logProbs).toEqual(viaGrpc.logProbs);
      expect(viaHttp.model).toBe(model);
    }
    const stopped = await http.generate({ prompt, maxTokens: 12, stopWords: [(await grpc.generate({ prompt, maxTokens: 3 })).text.slice(-2)] });
    expect(stopped.finishReason).toBe('stop');
  });

  it('streams chunks that concatenate to the generated text', async () => {
    const whole = await grpc.generate({ prompt, maxTokens: 16 });
    const stream = http.stream({ prompt, maxTokens: 16 });
    const pieces: string[] = [];
    for await (const chunk of stream) pieces.push(chunk.text);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe(whole.text);
    const result = await stream.result;
    expect(result.text).toBe(whole.text);
    expect(result.usage).toEqual(whole.usage);
  });

  it('holds the body back while the loop lags, and loses nothing', async () => {
    const whole = await grpc.generate({ prompt, maxTokens: 400 });
    expect(whole.usage.completionTokens).toBeGreaterThan(4 * maxBufferedChunks);  // else nothing to hold back
    const stream = http.stream({ prompt, maxTokens: 400 });
    const iterator = stream[Symbol.asyncIterator]();
    const pieces: string[] = [(await iterator.next()).value!.text];
    // Unread, the chunks pile up to the mark; then, while the model runs on, no more are read.
    for (let i = 0; i < 1500 && stream.bufferedChunks < maxBufferedChunks; ++i) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 500));
    // At most one network read of events beyond the mark arrives before reading stops.
    expect(stream.bufferedChunks).toBeGreaterThanOrEqual(maxBufferedChunks);
    expect(stream.bufferedChunks).toBeLessThan(whole.usage.completionTokens! / 2);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) pieces.push(next.value.text);
    expect(pieces.join('')).toBe(whole.text);

    // Without a loop nothing holds the body back: `result` alone gets the whole generation.
    expect((await http.stream({ prompt, maxTokens: 400 }).result).text).toBe(whole.text);
    // A loop that stopped reading, then the caller cancels: the stream ends, cancelled.
    const abandoned = http.stream({ prompt, maxTokens: 400 });
    await abandoned[Symbol.asyncIterator]().next();
    for (let i = 0; i < 1500 && abandoned.bufferedChunks < maxBufferedChunks; ++i) await new Promise((resolve) => setTimeout(resolve, 20));
    abandoned.cancel();
    await expect(abandoned.result).rejects.toMatchObject({ code: Status.CANCELLED });
  });

  it('frees the request on the server when the caller aborts or stops reading', async () => {
    const before = await cancelledRequests(server, 'tiny');
    const controller = new AbortController();
    const aborted = http.stream({ prompt, maxTokens: 2000 }, { signal: controller.signal });
    let seen = 0;
    await expect((async () => {
      for await (const _ of aborted) if (++seen === 2) controller.abort();
    })()).rejects.toSatisfy((e: unknown) => e instanceof TritonError && e.code === Status.CANCELLED && e.cancelled && (e.partialText ?? '').length > 0);
    await expectCancelledRequests(server, 'tiny', before + 1);

    const stoppedEarly = http.stream({ prompt, maxTokens: 2000 });
    for await (const _ of stoppedEarly) break;
    await expect(stoppedEarly.result).rejects.toSatisfy((e: unknown) => e instanceof TritonError && e.code === Status.CANCELLED);
    await expectCancelledRequests(server, 'tiny', before + 2);

    await expect(http.generate({ prompt, maxTokens: 2000 }, { timeoutMs: 50 })).rejects.toSatisfy(
      (e: unknown) => e instanceof TritonError && e.code === Status.DEADLINE_EXCEEDED);
    await expectCancelledRequests(server, 'tiny', before + 3);
  });

  it('reports errors with their codes and the server\'s messages', async () => {
    const error = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e as TritonError);
    const invalid = await error(http.generate({ prompt, maxTokens: 0 }));
    expect(invalid?.code).toBe(Status.INVALID_ARGUMENT);
    expect(invalid?.details).toMatch(/max_tokens/);
    const streamedInvalid = await error(http.stream({ prompt, maxTokens: 4, topP: 7 }).result);
    expect(streamedInvalid?.code).toBe(Status.INVALID_ARGUMENT);
    expect(streamedInvalid?.details).toMatch(/top_p/);
    const unknown = await error(http.generate({ prompt, model: 'nope' }));
    expect(unknown?.code).toBe(Status.NOT_FOUND);
    const unreachable = await error(new TritonHttpLlmClient({ url: 'http://127.0.0.1:1', model: 'tiny' }).generate(prompt));
    expect(unreachable?.code).toBe(Status.UNAVAILABLE);
    expect(unreachable?.message).toMatch(/cannot reach Triton at http:\/\/127\.0\.0\.1:1/);
    expect(() => new TritonHttpLlmClient({ url: 'localhost:8000' })).toThrow(/http:\/\//);
  });

  it('bundles for a browser with no Node.js module', async () => {
    const bundle = await build({
      entryPoints: [join(repoRoot, 'sdk', 'src', 'http', 'index.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    const code = bundle.outputFiles[0]!.text;
    expect(code).toContain('generate_stream');
    expect(code).not.toMatch(/from\s*["'](node:|@grpc)|require\(["'](node:|fs|os|http)/);
  });
});
