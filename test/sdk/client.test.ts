// The generic TritonClient against an in-process fake Triton: health, metadata, headers, retries,
// infer with raw and typed contents, streams, deadlines, cancellation, TLS, errors.
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { inBandCode, Status, TritonClient, TritonError, type InferInput, type LogFields, type Logger, type LogLevel } from '../../sdk/src/index.js';
import { toTritonError } from '../../sdk/src/errors.js';
import { parseUrl } from '../../sdk/src/client.js';
import { describeInputs, FakeTriton } from './fake-triton.js';

async function rejection(promise: Promise<unknown>): Promise<TritonError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TritonError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('TritonClient against a fake Triton', () => {
  let fake: FakeTriton;
  let client: TritonClient;

  beforeAll(async () => {
    fake = await FakeTriton.start();
  });
  afterAll(async () => {
    await fake?.stop();
  });
  beforeEach(() => {
    client?.close();
    client = new TritonClient({ url: fake.address, retry: { initialBackoffMs: 1, maxBackoffMs: 5 } });
  });

  it('answers health, metadata, config, index and statistics calls', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    expect((await client.serverMetadata()).name).toBe('fake');
    expect(await client.modelReady('nobatch')).toBe(true);
    expect(await client.modelReady('nothing')).toBe(false);
    const metadata = await client.modelMetadata('ensemble');
    expect(metadata.platform).toBe('ensemble');
    expect(metadata.inputs).toContainEqual({ name: 'text_input', datatype: 'BYTES', shape: [-1, 1] });
    const config = await client.modelConfig('nobatch');
    expect(config.maxBatchSize).toBe(0);
    expect(config.modelTransactionPolicy?.decoupled).toBe(true);
    expect(config.input.find((i) => i.name === 'seed')).toMatchObject({ dataType: 'TYPE_INT64', dims: [1] });
    expect((await client.repositoryIndex()).map((m) => m.name)).toContain('unary');
    const [stats] = await client.modelStatistics('nobatch');
    expect(stats?.inferenceCount).toBe(3);  // a number, as everywhere in the SDK, not protobuf's "3"
    expect(stats?.inferenceStats?.success).toEqual({ count: 3, ns: 123456789012 });
    expect(Object.keys(config)).not.toContain('max_batch_size');
    await client.loadModel('nobatch');
    await client.unloadModel('nobatch');
  });

  it('sends client headers, header functions and per-call headers as gRPC metadata', async () => {
    const withHeaders = new TritonClient({ url: fake.address, headers: { authorization: 'Bearer abc', 'x-trace-bin': Buffer.from([1, 2]) } });
    const extensions = (await withHeaders.serverMetadata({ headers: { 'x-request': ['one', 'two'] } })).extensions;
    // HTTP/2 joins repeated values of one header with ", ".
    expect(extensions).toEqual(expect.arrayContaining(['authorization=Bearer abc', 'x-trace-bin=bin:0102', 'x-request=one, two']));
    withHeaders.close();

    let token = 0;
    const rotating = new TritonClient({ url: fake.address, headers: async () => ({ authorization: `Bearer t${++token}` }) });
    expect((await rotating.serverMetadata()).extensions).toContain('authorization=Bearer t1');
    expect((await rotating.serverMetadata()).extensions).toContain('authorization=Bearer t2');
    rotating.close();
  });

  it('reports retries and calls to its logger at the chosen level, and runs interceptors on every call', async () => {
    const entries: { level: string; message: string; fields: LogFields }[] = [];
    const logger: Logger = Object.fromEntries(
      (['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (message: string, fields: LogFields) => entries.push({ level, message, fields })]),
    );
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const addTrace: grpc.Interceptor = (options, next) =>
      new grpc.InterceptingCall(next(options), {
        start: (metadata, listener, start) => {
          metadata.set('traceparent', traceparent);
          start(metadata, listener);
        },
      });
    const logged = new TritonClient({ url: fake.address, retry: { initialBackoffMs: 1, maxBackoffMs: 5 }, logger, logLevel: 'debug', interceptors: [addTrace] });
    fake.failures.set('ServerLive', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'warming up' });
    expect(await logged.serverLive()).toBe(true);
    expect(entries.find((e) => e.level === 'warn')).toMatchObject({
      message: 'ServerLive succeeded at attempt 2 of 3 (gRPC retried it)',
      fields: { call: 'ServerLive', target: logged.target },
    });
    expect(entries.find((e) => e.level === 'debug')).toMatchObject({ message: 'ServerLive ended', fields: { code: 'OK', attempts: 2 } });
    expect((await logged.serverMetadata()).extensions).toContain(`traceparent=${traceparent}`);
    logged.close();

    entries.length = 0;
    const quiet = new TritonClient({ url: fake.address, retry: { initialBackoffMs: 1, maxBackoffMs: 5 }, logger, logLevel: 'error' });
    fake.failures.set('ServerLive', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'warming up' });
    expect(await quiet.serverLive()).toBe(true);
    expect(entries).toEqual([]);
    quiet.close();
    fake.failures.delete('ServerLive');
    expect(() => new TritonClient({ url: fake.address, logLevel: 'loud' as LogLevel })).toThrow(/logLevel must be one of debug, info, warn, error, silent/);
  });

  it('retries idempotent calls on UNAVAILABLE with backoff, and never retries inference or load', async () => {
    fake.failures.set('ServerLive', { remaining: 2, code: grpc.status.UNAVAILABLE, details: 'warming up' });
    const before = fake.count('ServerLive');
    expect(await client.serverLive()).toBe(true);
    expect(fake.count('ServerLive') - before).toBe(3);

    fake.failures.set('ServerLive', { remaining: 5, code: grpc.status.UNAVAILABLE, details: 'still warming up' });
    const exhausted = await rejection(client.serverLive());
    expect(exhausted.code).toBe(Status.UNAVAILABLE);
    expect(exhausted.details).toBe('still warming up');
    fake.failures.delete('ServerLive');

    fake.failures.set('ServerReady', { remaining: 1, code: grpc.status.INTERNAL, details: 'broken' });
    const internal = await rejection(client.serverReady());
    expect(internal.code).toBe(Status.INTERNAL);
    expect(fake.failures.get('ServerReady')?.remaining).toBe(0);

    const noRetry = new TritonClient({ url: fake.address, retry: false });
    fake.failures.set('ServerLive', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'once' });
    expect((await rejection(noRetry.serverLive())).details).toBe('once');
    noRetry.close();
    fake.failures.delete('ServerLive');

    const inferBefore = fake.count('ModelInfer');
    fake.failures.set('ModelInfer', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'busy' });
    const inferError = await rejection(client.infer({ model: 'm', inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] }));
    expect(inferError.code).toBe(Status.UNAVAILABLE);
    expect(fake.count('ModelInfer') - inferBefore).toBe(1);

    const loadBefore = fake.count('RepositoryModelLoad');
    fake.failures.set('RepositoryModelLoad', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'busy' });
    await rejection(client.loadModel('nobatch'));
    expect(fake.count('RepositoryModelLoad') - loadBefore).toBe(1);

    // The policy is gRPC's own (service config): its codes and attempts are the options'.
    const onInternal = new TritonClient({ url: fake.address, retry: { retryOn: [Status.INTERNAL], maxAttempts: 2, initialBackoffMs: 1 } });
    fake.failures.set('ServerReady', { remaining: 1, code: grpc.status.INTERNAL, details: 'hiccup' });
    expect(await onInternal.serverReady()).toBe(true);
    fake.failures.set('ServerLive', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'not in retryOn' });
    expect((await rejection(onInternal.serverLive())).details).toBe('not in retryOn');
    onInternal.close();
    const once = new TritonClient({ url: fake.address, retry: { maxAttempts: 1 } });
    fake.failures.set('ServerLive', { remaining: 1, code: grpc.status.UNAVAILABLE, details: 'one attempt' });
    expect((await rejection(once.serverLive())).details).toBe('one attempt');
    once.close();
    fake.failures.delete('ServerLive');
    fake.failures.delete('ServerReady');
    for (const [retry, message] of [
      [{ maxAttempts: 6 }, 'retry.maxAttempts must be an integer from 1 to 5'],
      [{ initialBackoffMs: 0 }, 'retry.initialBackoffMs must be a number of milliseconds above 0'],
      [{ backoffMultiplier: -1 }, 'retry.backoffMultiplier must be a number above 0'],
      [{ retryOn: [] }, 'retry.retryOn must list gRPC status codes other than OK'],
    ] as const) {
      expect(() => new TritonClient({ url: fake.address, retry })).toThrow(message);
    }
  });

  it('sends raw or typed inputs and decodes raw or typed outputs to the same values', async () => {
    const inputs: InferInput[] = [
      { name: 'text', datatype: 'BYTES', shape: [2], data: ['', 'héllo 🦙'] },
      { name: 'blob', datatype: 'BYTES', shape: [1], data: [Buffer.from([0, 255, 1])] },
      { name: 'ints', datatype: 'INT32', shape: [2, 2], data: new Int32Array([1, -2, 3, -4]) },
      { name: 'longs', datatype: 'INT64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 5n]) },
      { name: 'ulongs', datatype: 'UINT64', shape: [1], data: [2n ** 64n - 1n] },
      { name: 'floats', datatype: 'FP32', shape: [3], data: new Float32Array([0.5, -1.25, 3]) },
      { name: 'doubles', datatype: 'FP64', shape: [1], data: [Math.PI] },
      { name: 'flags', datatype: 'BOOL', shape: [3], data: [true, false, true] },
      { name: 'bytes', datatype: 'UINT8', shape: [2], data: Buffer.from([7, 8]) },
      { name: 'small', datatype: 'INT8', shape: [1], data: [-7] },
    ];
    const expectEcho = (result: Awaited<ReturnType<TritonClient['infer']>>) => {
      expect(result.strings('text_out')).toEqual(['', 'héllo 🦙']);
      const blob = result.output('blob_out');
      expect(blob.datatype === 'BYTES' && [...blob.data[0]!]).toEqual([0, 255, 1]);
      const ints = result.output('ints_out');
      expect(ints.shape).toEqual([2, 2]);
      expect(ints.data).toEqual(new Int32Array([1, -2, 3, -4]));
      expect(result.output('longs_out').data).toEqual(new BigInt64Array([-(2n ** 62n), 5n]));
      expect(result.output('ulongs_out').data).toEqual(new BigUint64Array([2n ** 64n - 1n]));
      expect(result.output('floats_out').data).toEqual(new Float32Array([0.5, -1.25, 3]));
      expect(result.output('doubles_out').data).toEqual(new Float64Array([Math.PI]));
      expect(result.output('flags_out').data).toEqual([true, false, true]);
      expect(result.output('bytes_out').data).toEqual(new Uint8Array([7, 8]));
      expect(result.output('small_out').data).toEqual(new Int8Array([-7]));
    };
    // raw in, raw out
    const rawResult = await client.infer({ model: 'echo', id: 'a', inputs });
    expect(rawResult.id).toBe('a');
    expect(fake.inferRequests.at(-1)?.raw_input_contents).toHaveLength(inputs.length);
    expectEcho(rawResult);
    // typed in, typed out
    expectEcho(await client.infer({ model: 'echo', inputs, encoding: 'typed', parameters: { typed_response: true } }));
    const typedRequest = fake.inferRequests.at(-1)!;
    expect(typedRequest.raw_input_contents).toHaveLength(0);
    expect(typedRequest.inputs.find((i) => i.name === 'longs')?.contents?.int64_contents).toEqual([String(-(2n ** 62n)), '5']);
    // FP16 travels raw only
    const half = await client.infer({ model: 'echo', inputs: [{ name: 'h', datatype: 'FP16', shape: [2], data: [1.5, -0.25] }] });
    expect(half.output('h_out').data).toEqual(new Float32Array([1.5, -0.25]));
    const typedHalf = await rejection(client.infer({ model: 'echo', inputs: [{ name: 'h', datatype: 'FP16', shape: [1], data: [1] }], encoding: 'typed' }));
    expect(typedHalf.code).toBe(Status.INVALID_ARGUMENT);
    expect(typedHalf.source).toBe('client');
  });

  it('refuses ill-shaped tensors before sending them', async () => {
    const before = fake.count('ModelInfer');
    const error = await rejection(client.infer({ model: 'echo', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: [1, 2] }] }));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(error.details).toBe('input "x": FP32 data has 2 elements but shape [2, 3] holds 6');
    expect(fake.count('ModelInfer')).toBe(before);
  });

  it('maps a passed deadline to DEADLINE_EXCEEDED and an abort to CANCELLED, and the server sees both', async () => {
    const slow = { model: 'echo', inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] as InferInput[], parameters: { sleep_ms: 1 } };
    const cancelledBefore = fake.unaryCancelled;
    const late = await rejection(client.infer(slow, { timeoutMs: 100 }));
    expect(late.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(late.call).toBe('ModelInfer');
    expect(late.model).toBe('echo');

    const controller = new AbortController();
    const pending = client.infer(slow, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const aborted = await rejection(pending);
    expect(aborted.code).toBe(Status.CANCELLED);
    expect(aborted.cancelled).toBe(true);
    expect(aborted.kind).toBe('cancelled');
    for (let i = 0; i < 100 && fake.unaryCancelled < cancelledBefore + 2; ++i) await new Promise((r) => setTimeout(r, 20));
    expect(fake.unaryCancelled).toBe(cancelledBefore + 2);

    const already = await rejection(client.serverLive({ signal: AbortSignal.abort() }));
    expect(already.cancelled).toBe(true);
  });

  it('close() cancels calls in progress and refuses new ones', async () => {
    const pending = client.infer({ model: 'echo', inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }], parameters: { sleep_ms: 1 } });
    await new Promise((r) => setTimeout(r, 50));
    client.close();
    expect((await rejection(pending)).code).toBe(Status.CANCELLED);
    const after = await rejection(client.serverLive());
    expect(after.code).toBe(Status.CANCELLED);
    expect(after.details).toBe('the client is closed');
  });

  it('streamInfer yields the responses of one request until the final one', async () => {
    const inputs: InferInput[] = [
      { name: 'text_input', datatype: 'BYTES', shape: [1], data: ['hi'] },
      { name: 'max_tokens', datatype: 'INT32', shape: [1], data: [4] },
      { name: 'stream', datatype: 'BOOL', shape: [1], data: [true] },
    ];
    const texts: string[] = [];
    const finals: boolean[] = [];
    for await (const response of client.streamInfer({ model: 'nobatch', inputs, outputs: ['text_output'] })) {
      texts.push(...response.strings('text_output'));
      finals.push(response.final);
    }
    expect(texts).toEqual(['t0 ', 't1 ', 't2 ', 't3 ']);
    expect(finals).toEqual([false, false, false, false]);
    expect(fake.streamRequests.at(-1)?.parameters['triton_enable_empty_final_response']?.bool_param).toBe(true);

    // Leaving the loop early cancels the gRPC call.
    const cancelledBefore = fake.streamsCancelled;
    const long: InferInput[] = [inputs[0]!, { name: 'max_tokens', datatype: 'INT32', shape: [1], data: [10_000] }, inputs[2]!];
    let seen = 0;
    for await (const response of client.streamInfer({ model: 'nobatch', inputs: long })) {
      expect(response.final).toBe(false);
      if (++seen === 3) break;
    }
    for (let i = 0; i < 100 && fake.streamsCancelled === cancelledBefore; ++i) await new Promise((r) => setTimeout(r, 20));
    expect(fake.streamsCancelled).toBe(cancelledBefore + 1);
  });

  it('routes interleaved responses of several requests on one shared stream by id', async () => {
    fake.tokenDelayMs = 2;
    const stream = client.openStream();
    const request = (prompt: string, tokens: number) => ({
      model: 'nobatch',
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [1], data: [prompt] },
        { name: 'max_tokens', datatype: 'INT32', shape: [1], data: [tokens] },
        { name: 'stream', datatype: 'BOOL', shape: [1], data: [true] },
      ] as InferInput[],
    });
    const collect = async (responses: AsyncIterable<{ strings(name: string): string[] }>) => {
      let text = '';
      for await (const r of responses) text += r.strings('text_output').join('');
      return text;
    };
    const opened = fake.streamsOpened;
    const [a, b, c] = await Promise.all([
      collect(stream.infer(request('a', 5))),
      collect(stream.infer(request('b', 3))),
      collect(stream.infer({ ...request('c', 2), id: 'mine' })),
    ]);
    expect(a).toBe('t0 t1 t2 t3 t4 ');
    expect(b).toBe('t0 t1 t2 ');
    expect(c).toBe('t0 t1 ');
    expect(fake.streamsOpened).toBe(opened + 1);
    const ids = fake.streamRequests.slice(-3).map((r) => r.id);
    expect(new Set(ids).size).toBe(3);
    expect(ids).toContain('mine');

    // An in-band error ends only its request.
    const failing = collect(stream.infer(request('fail', 2)));
    const fine = collect(stream.infer(request('ok', 2)));
    const error = await rejection(failing);
    expect(error.source).toBe('in-band');
    expect(error.code).toBe(Status.INVALID_ARGUMENT);  // from the message's shape: in-band errors carry no code
    expect(error.details).toBe("input 'text_input': the fake refuses this prompt");
    expect(await fine).toBe('t0 t1 ');
    stream.close();
    expect(stream.closed).toBe(true);
    fake.tokenDelayMs = 1;
  });
});

describe('TritonClient without a server', () => {
  it('fails fast with "cannot reach Triton at HOST:PORT" when nothing listens', async () => {
    const port = await closedPort();
    const client = new TritonClient({ url: `127.0.0.1:${port}` });
    const error = await rejection(client.serverLive());
    expect(error.code).toBe(Status.UNAVAILABLE);
    expect(error.message).toMatch(new RegExp(`^cannot reach Triton at 127\\.0\\.0\\.1:${port} \\(ServerLive\\)`));
    const streamError = await rejection(
      (async () => {
        for await (const _ of client.streamInfer({ model: 'm', inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] })) void _;
      })(),
    );
    expect(streamError.message).toMatch(/^cannot reach Triton at 127\.0\.0\.1:/);
    expect(error.message).not.toContain('Resolution note');
    client.close();
  });

  it("says so when the port is an HTTP/1.1 server, as Triton's HTTP port 8000 is", async () => {
    const http = await import('node:http');
    const server = http.createServer((_, response) => response.writeHead(400).end('{"error":"not gRPC"}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const client = new TritonClient({ url: `127.0.0.1:${address.port}`, retry: false });
    const error = await rejection(client.serverLive());
    expect(error.code).toBe(Status.UNAVAILABLE);
    expect(error.message).toContain('does not speak gRPC (HTTP/2): Triton serves gRPC on port 8001 and HTTP/REST on 8000');
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('bounds the wait for a connection that never completes, and the deadline still wins', async () => {
    // A listening socket that never speaks HTTP/2: the gRPC connection never becomes ready.
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const client = new TritonClient({ url: `127.0.0.1:${address.port}`, connectTimeoutMs: 300 });
    const error = await rejection(client.serverLive()); // not retried: another wait would not be quick
    expect(error.code).toBe(Status.UNAVAILABLE);
    expect(error.message).toMatch(/^cannot reach Triton at 127\.0\.0\.1:\d+ \(ServerLive\): no connection within 300 ms/);
    const late = await rejection(client.serverReady({ timeoutMs: 100 }));
    expect(late.code).toBe(Status.DEADLINE_EXCEEDED);
    client.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });
});

describe('URLs and error mapping', () => {
  it('parses URLs', () => {
    expect(parseUrl('localhost:8001')).toEqual({ target: 'localhost:8001', tls: undefined });
    expect(parseUrl('grpc://triton')).toEqual({ target: 'triton:8001', tls: false });
    expect(parseUrl('grpcs://triton.example.com/')).toEqual({ target: 'triton.example.com:443', tls: true });
    expect(parseUrl('[::1]:9000')).toEqual({ target: '[::1]:9000', tls: undefined });
    expect(() => parseUrl('ftp://x')).toThrow(/unsupported URL scheme/);
    expect(() => parseUrl('host:1/path')).toThrow(/not a host:port address/);
  });

  it('maps gRPC failures to TritonError with code, server message and call', () => {
    const context = { call: 'ModelInfer', target: 'h:1', model: 'm', requestId: 'r' };
    const serviceError = (code: number, details: string) => Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new grpc.Metadata() });

    const invalid = toTritonError(serviceError(grpc.status.INVALID_ARGUMENT, "input 'max_tokens': must be > 0"), context);
    expect(invalid).toBeInstanceOf(TritonError);
    expect(invalid.code).toBe(Status.INVALID_ARGUMENT);
    expect(invalid.codeName).toBe('INVALID_ARGUMENT');
    expect(invalid.details).toBe("input 'max_tokens': must be > 0");
    expect(invalid.call).toBe('ModelInfer');
    expect(invalid.model).toBe('m');
    expect(invalid.requestId).toBe('r');
    expect(invalid.source).toBe('status');
    expect(invalid.message).toBe(`ModelInfer (model "m") failed with INVALID_ARGUMENT: input 'max_tokens': must be > 0`);

    const down = toTritonError(serviceError(grpc.status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'), context);
    expect(down.message).toBe('cannot reach Triton at h:1 (ModelInfer): No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1');
    const busy = toTritonError(serviceError(grpc.status.UNAVAILABLE, 'model is loading'), context);
    expect(busy.message).toMatch(/failed with UNAVAILABLE: model is loading/);

    const local = toTritonError(serviceError(grpc.status.CANCELLED, 'Cancelled on client'), context);
    expect(local.cancelled).toBe(true);
    const remote = toTritonError(serviceError(grpc.status.CANCELLED, 'request cancelled'), context);
    expect(remote.cancelled).toBe(false);

    const deadline = toTritonError(serviceError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), context);
    expect(deadline.codeName).toBe('DEADLINE_EXCEEDED');

    // In-band messages by the shapes tritonserver and this project's backend give them.
    const shapes: [string, Status][] = [
      ["Request for unknown model: 'x' is not found", Status.NOT_FOUND],
      ["in ensemble 'ensemble', Request for unknown model: 'pre' is not found", Status.NOT_FOUND],
      ["[request id: 7] unexpected shape for input 'max_tokens' for model 'm'. Expected [1], got [2]", Status.INVALID_ARGUMENT],
      ["[request id: <id_unknown>] expected 3 inputs but got 2 inputs for model 'm'", Status.INVALID_ARGUMENT],
      ["[request id: r1] expected number of inputs between 2 and 9 but got 1 inputs for model 'm'", Status.INVALID_ARGUMENT],
      ["All input dimensions should be specified for input 'text_input' for model 'm', got [-1,1]", Status.INVALID_ARGUMENT],
      ["inference input 'x' data-type is 'INT32', but model 'm' expects 'FP32'", Status.INVALID_ARGUMENT],
      ["input 'max_tokens': must be an integer from 1 to 100", Status.INVALID_ARGUMENT],
      ['Exceeds maximum queue size', Status.UNAVAILABLE],
      ['the request queue is full (max_queue_size 4): retry later', Status.UNAVAILABLE],
      ['request cancelled', Status.CANCELLED],
      ['generation failed: the logits are NaN', Status.UNKNOWN],
      ["something about input 'x': later in the text", Status.UNKNOWN],
    ];
    for (const [message, code] of shapes) expect([message, inBandCode(message)]).toEqual([message, code]);
    expect(new TritonError({ code: inBandCode('Request for unknown model'), details: '', call: 'c', source: 'in-band' }).kind).toBe('not-found');
    expect(new TritonError({ code: inBandCode('odd'), details: 'odd', call: 'c', source: 'in-band' }).kind).toBe('bad-request');

    const other = toTritonError(new Error('boom'), context);
    expect(other.code).toBe(Status.UNKNOWN);
    expect(other.details).toBe('boom');
    expect(toTritonError(invalid, context)).toBe(invalid);
  });
});

describe('TLS', () => {
  let dir: string;
  let fake: FakeTriton | undefined;
  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  beforeAll(async () => {
    if (!hasOpenssl) return;
    dir = mkdtempSync(join(tmpdir(), 'sdk-tls-'));
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=sdk-test-ca');
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:triton.test\n');
    for (const name of ['server', 'client']) {
      openssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'triton.test' : 'sdk-client'}`);
      const ext = name === 'server' ? ['-extfile', 'server.ext'] : [];
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...ext);
    }
    const read = (file: string) => readFileSync(join(dir, file));
    fake = await FakeTriton.start(grpc.ServerCredentials.createSsl(read('ca.crt'), [{ cert_chain: read('server.crt'), private_key: read('server.key') }], true));
  });
  afterAll(async () => {
    await fake?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasOpenssl)('connects with root certificates, a client certificate and a server name override', async () => {
    const read = (file: string) => readFileSync(join(dir, file));
    const client = new TritonClient({
      url: fake!.address,
      tls: { rootCerts: read('ca.crt'), certChain: read('client.crt'), privateKey: read('client.key'), serverName: 'triton.test' },
      headers: { authorization: 'Bearer secret' },
    });
    expect(await client.serverLive()).toBe(true);
    expect((await client.serverMetadata()).extensions).toContain('authorization=Bearer secret');
    client.close();

    const plaintext = new TritonClient({ url: fake!.address, retry: false, connectTimeoutMs: 2000 });
    expect((await rejection(plaintext.serverLive())).code).toBe(Status.UNAVAILABLE);
    plaintext.close();

    const noClientCert = new TritonClient({ url: fake!.address, tls: { rootCerts: read('ca.crt'), serverName: 'triton.test' }, retry: false, connectTimeoutMs: 2000 });
    expect((await rejection(noClientCert.serverLive())).code).toBe(Status.UNAVAILABLE);
    noClientCert.close();
  });
});

describe('generic infer request shapes', () => {
  it('records what the fake received', async () => {
    const fake = await FakeTriton.start();
    const client = new TritonClient({ url: fake.address });
    await client.infer({ model: 'echo', inputs: [{ name: 'ids', datatype: 'INT32', shape: [1, 3], data: [1, 2, 3] }] });
    expect(describeInputs(fake.inferRequests[0]!)).toEqual({ ids: { datatype: 'INT32', shape: [1, 3], values: [1, 2, 3] } });
    client.close();
    await fake.stop();
  });
});
