// The dev server's HTTP/REST endpoint (KServe v2 + Triton's generate extension) and its Prometheus
// metrics, checked with plain HTTP clients (Node's fetch and http, curl) against the gRPC path.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBytesRaw, output, readInt32s, TestClient, textRequest } from '../helpers/grpc.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const prompt = 'The quick brown fox';

interface Sample { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }
interface Family { name: string; type: string; metrics: Sample[] }

async function scrape(server: RunningServer): Promise<Family[]> {
  const response = await fetch(`${server.metricsUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusTextFormat(await response.text()) as Family[];
}

/** The value of one series: the family's sample whose labels include `labels`. */
function metric(families: Family[], name: string, labels: Record<string, string>): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric family ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample) throw new Error(`no ${name} series with ${JSON.stringify(labels)}`);
  return Number(sample.value ?? sample.count);
}

/** BYTES elements in Triton's binary layout: a 4-byte little-endian length before each. */
function bytesElements(values: string[]): Buffer {
  return Buffer.concat(values.map((v) => {
    const data = Buffer.from(v, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(data.length);
    return Buffer.concat([length, data]);
  }));
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function until(condition: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const give_up = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > give_up) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('llm-server HTTP/REST, generate and metrics', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let client: TestClient;
  let base: string;
  let grpcText: string;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    repository = new TempRepository()
      .add({ name: 'tiny', checkpointDir: tiny, decoupled: true })
      .add({ name: 'tiny_unary', checkpointDir: tiny, decoupled: false });
    server = await startServer(repository.dir);
    if (!server.httpUrl || !server.metricsUrl) throw new Error(`no HTTP or metrics endpoint:\n${server.output()}`);
    base = server.httpUrl;
    client = new TestClient(server.address);
    const response = await client.infer(textRequest('tiny_unary', prompt, 12));
    grpcText = decodeBytesRaw(output(response, 'text_output'))[0]!;
  });

  afterAll(async () => {
    client?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
  });

  it('answers health, metadata, config, statistics and the repository index', async () => {
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/tiny/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/tiny/versions/1/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/tiny/versions/7/ready`)).status).toBe(400);
    const server_metadata = (await (await fetch(`${base}/v2`)).json()) as { name: string; extensions: string[] };
    expect(server_metadata.name).toBe('llm-server');
    expect(server_metadata.extensions).toContain('model_repository');
    const metadata = (await (await fetch(`${base}/v2/models/tiny`)).json()) as {
      name: string; versions: string[]; platform: string; inputs: { name: string; datatype: string; shape: number[] }[];
    };
    expect(metadata).toMatchObject({ name: 'tiny', versions: ['1'], platform: 'llm' });
    expect(metadata.inputs.find((i) => i.name === 'text_input')).toEqual({ name: 'text_input', datatype: 'BYTES', shape: [-1, 1] });
    const config = (await (await fetch(`${base}/v2/models/tiny/config`)).json()) as {
      name: string; max_batch_size: number; input: { name: string; data_type: string; dims: number[] }[];
      model_transaction_policy: { decoupled: boolean };
    };
    expect(config.name).toBe('tiny');
    expect(config.max_batch_size).toBe(1);  // a number, as tritonserver writes it, not protobuf's "1"
    expect(config.input.find((i) => i.name === 'max_tokens')).toMatchObject({ data_type: 'TYPE_INT32', dims: [1] });
    expect(config.model_transaction_policy.decoupled).toBe(true);
    const stats = (await (await fetch(`${base}/v2/models/tiny_unary/stats`)).json()) as {
      model_stats: { name: string; version: string; inference_stats: { success: { count: number } } }[];
    };
    expect(stats.model_stats[0]).toMatchObject({ name: 'tiny_unary', version: '1' });
    expect(stats.model_stats[0]!.inference_stats.success.count).toBeGreaterThanOrEqual(1);
    const all = (await (await fetch(`${base}/v2/models/stats`)).json()) as { model_stats: { name: string }[] };
    expect(all.model_stats.map((m) => m.name).sort()).toEqual(['tiny', 'tiny_unary']);
    const index = await postJson(`${base}/v2/repository/index`, { ready: true });
    expect(index.status).toBe(200);
    expect(index.json).toEqual([
      { name: 'tiny', version: '1', state: 'READY' },
      { name: 'tiny_unary', version: '1', state: 'READY' },
    ]);
  });

  it('answers unknown models, routes and methods with tritonserver\'s codes and JSON errors', async () => {
    const unknown = await fetch(`${base}/v2/models/nope`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/nope/);
    expect((await fetch(`${base}/v2/no/such/route`)).status).toBe(404);
    const wrongMethod = await fetch(`${base}/v2/models/tiny/generate`);
    expect(wrongMethod.status).toBe(405);
    const notJson = await fetch(`${base}/v2/models/tiny/generate`, { method: 'POST', body: '{"text_input": ' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: string }).error).toMatch(/not valid JSON/);
    // An explicit-mode action on a server in 'none' mode is refused, as over gRPC.
    const load = await fetch(`${base}/v2/repository/models/tiny/load`, { method: 'POST' });
    expect(load.status).toBeGreaterThanOrEqual(400);
    expect(((await load.json()) as { error: string }).error).not.toBe('');
  });

  it('infers with JSON tensors: the same text as the gRPC path', async () => {
    const { status, json } = await postJson(`${base}/v2/models/tiny_unary/infer`, {
      id: 'json-1',
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [[prompt]] },
        { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: [12] },
      ],
      outputs: [{ name: 'text_output' }],
    });
    expect(status).toBe(200);
    expect(json).toMatchObject({ model_name: 'tiny_unary', model_version: '1', id: 'json-1' });
    const outputs = json['outputs'] as { name: string; datatype: string; shape: number[]; data: string[] }[];
    expect(outputs).toEqual([{ name: 'text_output', datatype: 'BYTES', shape: [1], data: [grpcText] }]);
  });

  it('infers with binary tensor data (Inference-Header-Content-Length) both ways', async () => {
    const prompt_bytes = bytesElements([prompt]);
    const max_tokens = Buffer.alloc(4);
    max_tokens.writeInt32LE(12);
    const header = Buffer.from(JSON.stringify({
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: prompt_bytes.length } },
        { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], parameters: { binary_data_size: 4 } },
      ],
      outputs: [{ name: 'text_output', parameters: { binary_data: true } }, { name: 'output_ids', parameters: { binary_data: true } }],
    }));
    const response = await fetch(`${base}/v2/models/tiny_unary/infer`, {
      method: 'POST',
      headers: { 'Inference-Header-Content-Length': String(header.length), 'Content-Type': 'application/octet-stream' },
      body: Buffer.concat([header, prompt_bytes, max_tokens]),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    const body = Buffer.from(await response.arrayBuffer());
    const json_length = Number(response.headers.get('inference-header-content-length'));
    const json = JSON.parse(body.subarray(0, json_length).toString()) as {
      outputs: { name: string; parameters: { binary_data_size: number } }[];
    };
    let at = json_length;
    const binary = new Map<string, Buffer>();
    for (const out of json.outputs) {
      binary.set(out.name, body.subarray(at, at + out.parameters.binary_data_size));
      at += out.parameters.binary_data_size;
    }
    expect(at).toBe(body.length);
    expect(decodeBytesRaw(binary.get('text_output')!)).toEqual([grpcText]);
    const grpc = await client.infer({ ...textRequest('tiny_unary', prompt, 12), outputs: [{ name: 'output_ids' }] });
    expect(readInt32s(binary.get('output_ids')!)).toEqual(readInt32s(output(grpc, 'output_ids')));
  });

  it('refuses bad input with 400 and a message naming the input', async () => {
    const wrongType = await postJson(`${base}/v2/models/tiny_unary/infer`, {
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [prompt] },
        { name: 'max_tokens', datatype: 'INT32', shape: [1, 1], data: ['twelve'] },
      ],
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json['error']).toMatch(/max_tokens/);
    const wrongCount = await postJson(`${base}/v2/models/tiny_unary/infer`, {
      inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 2], data: [prompt] }],
    });
    expect(wrongCount.status).toBe(400);
    expect(wrongCount.json['error']).toMatch(/text_input/);
    const backendRefusal = await postJson(`${base}/v2/models/tiny/generate`, { text_input: prompt, max_tokens: 0 });
    expect(backendRefusal.status).toBe(400);
    expect(backendRefusal.json['error']).toMatch(/max_tokens/);
    // Keys that name no input become request parameters, which are scalars.
    const badParameter = await postJson(`${base}/v2/models/tiny/generate`, { text_input: prompt, max_tokens: 4, note: [1, 2] });
    expect(badParameter.status).toBe(400);
    expect(badParameter.json['error']).toMatch(/parameter 'note'/);
    const decoupledInfer = await postJson(`${base}/v2/models/tiny/infer`, {
      inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [prompt] }],
    });
    expect(decoupledInfer.status).toBe(501);
    expect(decoupledInfer.json['error']).toMatch(/decoupled/);
  });

  it('generates the gRPC path\'s text; generate_stream\'s events concatenate to it (fetch and curl)', async () => {
    for (const model of ['tiny', 'tiny_unary']) {
      const { status, json } = await postJson(`${base}/v2/models/${model}/generate`, { text_input: prompt, max_tokens: 12 });
      expect(status).toBe(200);
      expect(json).toMatchObject({ model_name: model, model_version: '1', text_output: grpcText });
    }
    const response = await fetch(`${base}/v2/models/tiny/generate_stream`, {
      method: 'POST',
      body: JSON.stringify({ text_input: prompt, max_tokens: 12, stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await response.text()).split('\n\n').filter((e) => e !== '');
    expect(events.length).toBeGreaterThan(1);
    const pieces = events.map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      return (JSON.parse(e.slice('data: '.length)) as { text_output: string }).text_output;
    });
    expect(pieces.join('')).toBe(grpcText);
    // curl, as tensorrtllm_backend's guide does it.
    const curled = execFileSync('curl', ['-s', '-X', 'POST', `${base}/v2/models/tiny/generate`, '-d',
      JSON.stringify({ text_input: prompt, max_tokens: 12 })], { encoding: 'utf8' });
    expect((JSON.parse(curled) as { text_output: string }).text_output).toBe(grpcText);
  });

  it('answers a stream refused at its first response with an HTTP error, as tritonserver does', async () => {
    const response = await fetch(`${base}/v2/models/tiny/generate_stream`, {
      method: 'POST',
      body: JSON.stringify({ text_input: prompt, max_tokens: 4, top_p: 7, stream: true }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/top_p/);
  });

  it('cancels the request in the backend when an SSE client disconnects', async () => {
    const before = await scrape(server);
    const cancelledBefore = metric(before, 'nv_llm_requests_total', { model: 'tiny', request_state: 'cancelled' });
    const controller = new AbortController();
    const response = await fetch(`${base}/v2/models/tiny/generate_stream`, {
      method: 'POST',
      body: JSON.stringify({ text_input: prompt, max_tokens: 2000, stream: true }),  // within tiny's 2,048-token context
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();  // the first event: the request is running
    controller.abort();
    await until(async () => {
      const now = await scrape(server);
      return metric(now, 'nv_llm_requests_total', { model: 'tiny', request_state: 'cancelled' }) === cancelledBefore + 1 &&
        metric(now, 'nv_llm_request_metrics', { model: 'tiny', request_type: 'active' }) === 0;
    }, 'the dropped stream\'s request to be cancelled');
    const stats = (await (await fetch(`${base}/v2/models/tiny/stats`)).json()) as {
      model_stats: { inference_stats: { fail: { count: number } } }[];
    };
    expect(stats.model_stats[0]!.inference_stats.fail.count).toBeGreaterThanOrEqual(1);
  });

  it('exports Prometheus metrics whose counters move by exactly the requests sent', async () => {
    const labels = { model: 'tiny_unary', version: '1' };
    const before = await scrape(server);
    let generated = 0;
    for (let i = 0; i < 3; i++) {
      const { json } = await postJson(`${base}/v2/models/tiny_unary/generate`, { text_input: `${prompt} ${i}`, max_tokens: 5 + i });
      generated += (json['output_ids'] as number[]).length;  // the new tokens (the prompt is not echoed)
    }
    const after = await scrape(server);
    const delta = (name: string, extra: Record<string, string> = {}) =>
      metric(after, name, { ...labels, ...extra }) - metric(before, name, { ...labels, ...extra });
    expect(delta('nv_inference_request_success')).toBe(3);
    expect(delta('nv_inference_count')).toBe(3);
    expect(delta('nv_inference_exec_count')).toBe(3);
    expect(delta('nv_inference_request_failure', { reason: 'BACKEND' })).toBe(0);
    expect(delta('nv_inference_request_duration_us')).toBeGreaterThan(0);
    expect(delta('nv_llm_requests_total', { request_state: 'completed' })).toBe(3);
    // The parser keeps no labels for histograms (it handles unlabelled ones only): their type is checked.
    for (const name of ['nv_llm_time_to_first_token_seconds', 'nv_llm_time_per_output_token_seconds', 'nv_inference_first_response_histogram_ms']) {
      expect(after.find((f) => f.name === name)?.type).toBe('HISTOGRAM');
    }
    expect(generated).toBeGreaterThan(0);
    expect(delta('nv_llm_tokens_total', { token_type: 'generated' })).toBe(generated);
    // Token-style requests (tensorrtllm_backend's tensorrt_llm model): prompts of exactly 3, 4 and 5 ids.
    for (const length of [3, 4, 5]) {
      const { status } = await postJson(`${base}/v2/models/tiny_unary/generate`, {
        input_ids: Array.from({ length }, (_, i) => 10 + i), input_lengths: length, request_output_len: 2,
      });
      expect(status).toBe(200);
    }
    const afterPrompts = await scrape(server);
    expect(metric(afterPrompts, 'nv_llm_tokens_total', { ...labels, token_type: 'prompt' }) -
      metric(after, 'nv_llm_tokens_total', { ...labels, token_type: 'prompt' })).toBe(12);
    const kvMax = metric(after, 'nv_llm_kv_cache_block_metrics', { ...labels, kv_cache_block_type: 'max' });
    expect(kvMax).toBeGreaterThan(0);
    expect(metric(after, 'nv_llm_kv_cache_block_metrics', { ...labels, kv_cache_block_type: 'tokens_per_block' })).toBe(64);
    // What served the numbers: the engine's description as an info metric (value 1).
    const info = after.find((f) => f.name === 'nv_llm_engine_info')?.metrics.find((m) => m.labels?.['model'] === 'tiny_unary');
    expect(info?.value).toBe('1');
    expect(info?.labels?.['engine']).toMatch(/^cpu engine: .*synth-tiny-float16.*in-flight batching.*paged KV cache/);
  });

  it('serves 1,000 requests on fresh connections without leaking descriptors', async () => {
    const descriptors = () => readdirSync(`/proc/${server.pid}/fd`).length;
    const baseline = descriptors();
    const once = (path: string, body?: string) => new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${base}${path}`, { method: body ? 'POST' : 'GET', agent: false, headers: { Connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    const statuses: number[] = [];
    for (let wave = 0; wave < 50; wave++) {
      statuses.push(...await Promise.all(Array.from({ length: 20 }, (_, i) =>
        i % 4 === 0
          ? once('/v2/models/tiny_unary/generate', JSON.stringify({ text_input: 'hi', max_tokens: 1 }))
          : once(i % 2 === 0 ? '/v2/health/ready' : '/v2/models/tiny'))));
    }
    expect(statuses.length).toBe(1000);
    expect(statuses.every((s) => s === 200)).toBe(true);
    await until(async () => descriptors() <= baseline, `descriptors back to ${baseline} (now ${descriptors()})`);
  });
});

describe('llm-server HTTP repository control (explicit mode)', () => {
  it('loads and unloads a model through /v2/repository/models/{m}/load and /unload', async () => {
    const repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true });
    const server = await startServer(repository.dir, ['--model-control-mode', 'explicit', '--http-max-input-size', '4096']);
    try {
      const base = server.httpUrl!;
      expect((await fetch(`${base}/v2/models/tiny/ready`)).status).toBe(400);
      const index = (await (await fetch(`${base}/v2/repository/index`, { method: 'POST' })).json()) as { name: string; state?: string }[];
      expect(index.map((m) => m.name)).toEqual(['tiny']);
      const load = await fetch(`${base}/v2/repository/models/tiny/load`, { method: 'POST' });
      expect(load.status).toBe(200);
      expect((await fetch(`${base}/v2/models/tiny/ready`)).status).toBe(200);
      const { status, json } = await postJson(`${base}/v2/models/tiny/generate`, { text_input: prompt, max_tokens: 3 });
      expect(status).toBe(200);
      expect(typeof json['text_output']).toBe('string');
      const missing = await fetch(`${base}/v2/repository/models/nope/load`, { method: 'POST' });
      expect(missing.status).toBeGreaterThanOrEqual(400);
      expect(((await missing.json()) as { error: string }).error).toMatch(/nope/);
      const tooLarge = await fetch(`${base}/v2/models/tiny/generate`, { method: 'POST', body: JSON.stringify({ text_input: 'x'.repeat(5000) }) });
      expect(tooLarge.status).toBe(413);
      expect(((await tooLarge.json()) as { error: string }).error).toMatch(/4096 bytes/);
      expect((await fetch(`${base}/v2/repository/models/tiny/unload`, { method: 'POST' })).status).toBe(200);
      expect((await fetch(`${base}/v2/models/tiny/ready`)).status).toBe(400);
    } finally {
      expect(await server.stop()).toBe(0);
      repository.remove();
    }
  });
});
