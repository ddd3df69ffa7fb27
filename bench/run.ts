// Latency and load benchmark of LLM models served through Triton (llm-server or NVIDIA's tritonserver).
// Usage: npx tsx bench/run.ts [--url HOST:PORT | --repository DIR] [--models a,b] [--concurrency 1,2,4] ...
//        npx tsx bench/run.ts --compare A/results.json B/results.json
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { TritonLlmClient, type GenerateOptions, type GenerateResult } from '../sdk/src/index.js';
import { barChart, lineChart, type Bar } from './chart.js';
import { parseSlo, realClock, runLevel, summarizeLevel, type BenchPrompt, type Chunk, type Completion, type RequestRecord, type Send, type Slo } from './load.js';
import { checkResults, compareResults, formatTable, requestsCsv, resultsSchemaVersion, summaryCsv, type LevelResult, type Results } from './report.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The reference study: Triton + TensorRT-LLM, Llama-2-7B, batch 1, "seed tok/s" (prompt + generated tokens / request time). */
export const referenceNumbers = [
  { label: 'reference: Llama-2-7B FP16 (Triton + TRT-LLM)', seedTokensPerSecond: 69.0 },
  { label: 'reference: Llama-2-7B INT8 weight-only', seedTokensPerSecond: 125.3 },
  { label: 'reference: Llama-2-7B AWQ', seedTokensPerSecond: 205.5 },
] as const;

export const seedTokenizer = 'Llama-2 SentencePiece tokenizer (llama-tokenizer-js 1.2.2), BOS included';

export interface Options {
  url?: string;
  repository: string;
  models: string[];
  /** Measured requests per level; default 8 at concurrency 1 (the study's), 4 per client above. */
  requests?: number;
  /** Measure each level for this many seconds instead of a number of requests. */
  durationS?: number;
  /** Warm-up requests per client at each level. */
  warmup: number;
  maxTokens: number;
  prompts: string;
  /** Synthetic prompts of exactly this many tokens instead of the prompts file. */
  inputTokens?: number;
  stream: boolean;
  /** end_id = -1: every request generates maxTokens tokens. */
  ignoreEos: boolean;
  concurrency: number[];
  slo?: Slo;
  /** The server's Prometheus endpoint, read for what served the numbers (default: the started server's, or HOST:8002 of --url). */
  metricsUrl?: string;
  out?: string;
  json: boolean;
  compare?: [string, string];
}

/** Measured requests of a level. */
export const requestsPerLevel = (o: Pick<Options, 'requests'>, concurrency: number): number => o.requests ?? (concurrency === 1 ? 8 : 4 * concurrency);

const usage = `usage: npx tsx bench/run.ts [options]
       npx tsx bench/run.ts --compare A/results.json B/results.json
  --url HOST:PORT        measure a running Triton's gRPC endpoint (default: start build/bin/llm-server)
  --repository DIR       model repository for the started server (default: model_repository)
  --models a,b           models to measure, in turn (default: llama_fp16,llama_int8,llama_awq)
  --concurrency 1,2,4    load levels: requests kept in flight (default 1)
  --requests N           measured requests per level (default 8 at concurrency 1, 4 per client above;
                         --requests-per-level is the same)
  --duration S           measure each level for S seconds instead of a number of requests
  --warmup N             warm-up requests per client at each level (default 1)
  --max-tokens N         new tokens per request at most (default 200)
  --ignore-eos           end id off: every request generates --max-tokens tokens (default)
  --no-ignore-eos        the model's end id ends a request early, as the study allowed
  --prompts FILE         JSON array of prompts (default bench/prompts.json)
  --input-tokens N       synthetic prompts of exactly N tokens (Llama-2 tokenizer, BOS included) instead
  --stream / --no-stream streamed requests (TTFT, inter-token latency) or not (default: stream)
  --slo ttft_ms=T,itl_ms=I,e2e_ms=E   goodput: requests/s that meet every objective given
  --metrics-url URL      the server's metrics endpoint, for the engine details in the results
                         (default: the started server's; with --url, port 8002 of its host)
  --out DIR              results folder (default bench/results/<timestamp>)
  --json                 print the results JSON to stdout
  --compare A B          print two results.json side by side with the ratios B/A, and exit`;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    repository: join(repoRoot, 'model_repository'),
    models: ['llama_fp16', 'llama_int8', 'llama_awq'],
    warmup: 1,
    maxTokens: 200,
    prompts: join(repoRoot, 'bench', 'prompts.json'),
    stream: true,
    ignoreEos: true,
    concurrency: [1],
    json: false,
  };
  const integer = (name: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`${name} needs an integer >= ${min}, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--url': {
        const url = value();
        if (!url) throw new UsageError('--url needs HOST:PORT');
        o.url = url;
        break;
      }
      case '--repository': o.repository = resolve(value() ?? ''); break;
      case '--models': o.models = (value() ?? '').split(',').map((s) => s.trim()).filter(Boolean); if (!o.models.length) throw new UsageError('--models needs names'); break;
      case '--requests': case '--requests-per-level': o.requests = integer(flag, value()); break;
      case '--duration': {
        const v = value();
        const s = Number(v);
        if (v === undefined || v.trim() === '' || !(s > 0) || !Number.isFinite(s)) throw new UsageError(`--duration needs seconds > 0, got ${v ?? 'nothing'}`);
        o.durationS = s;
        break;
      }
      case '--warmup': o.warmup = integer('--warmup', value(), 0); break;
      case '--max-tokens': o.maxTokens = integer('--max-tokens', value()); break;
      case '--ignore-eos': o.ignoreEos = true; break;
      case '--no-ignore-eos': o.ignoreEos = false; break;
      case '--prompts': o.prompts = resolve(value() ?? ''); break;
      case '--input-tokens': o.inputTokens = integer('--input-tokens', value(), 2); break;
      case '--stream': o.stream = true; break;
      case '--no-stream': o.stream = false; break;
      case '--concurrency': o.concurrency = (value() ?? '').split(',').map((s) => integer('--concurrency', s.trim())); break;
      case '--slo':
        try {
          o.slo = parseSlo(value() ?? '');
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        break;
      case '--metrics-url': {
        const url = value();
        if (!url || !/^https?:\/\//.test(url)) throw new UsageError(`--metrics-url needs an http:// or https:// URL, got ${url ?? 'nothing'}`);
        o.metricsUrl = url.replace(/\/metrics\/?$/, '').replace(/\/$/, '');
        break;
      }
      case '--out': o.out = resolve(value() ?? ''); break;
      case '--json': o.json = true; break;
      case '--compare': {
        const a = inline ?? argv[++i];
        const b = argv[++i];
        if (!a || !b) throw new UsageError('--compare needs two results.json files');
        o.compare = [resolve(a), resolve(b)];
        break;
      }
      case '--help': case '-h': throw new UsageError(usage);
      default: throw new UsageError(`unknown option ${arg}\n${usage}`);
    }
  }
  if (o.requests !== undefined && o.durationS !== undefined) throw new UsageError('give --requests or --duration, not both');
  return o;
}

function loadPromptTexts(file: string): string[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read prompts from ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(data) || data.length === 0 || !data.every((p) => typeof p === 'string' && p.length > 0)) throw new UsageError(`${file} must be a non-empty JSON array of non-empty strings`);
  return data as string[];
}

/** Llama-2 tokens of a text, BOS included (the count the study used, and this project's backend's for Llama-2-tokenizer models). */
export const llamaTokenCount = (text: string): number => llamaTokenizer.encode(text).length;

/**
 * `count` prompts of exactly `tokens` Llama-2 tokens (BOS included), cut from the text of `source`
 * at different offsets, as genai-perf synthesizes prompts from a corpus. A cut is re-encoded and
 * lengthened or shortened a token at a time until the count is exact (the tokenizer does not
 * always split a decoded cut the same way).
 */
export function syntheticPrompts(source: readonly string[], tokens: number, count: number): BenchPrompt[] {
  const corpus: number[] = llamaTokenizer.encode(source.join(' '), false, true);
  if (corpus.length < 2) throw new UsageError('the prompts file has too little text to cut synthetic prompts from');
  const cut = (offset: number, length: number): string => {
    const ids: number[] = [];
    for (let i = 0; i < length; ++i) ids.push(corpus[(offset + i) % corpus.length]!);
    return llamaTokenizer.decode(ids, false, true).trim();
  };
  const prompts: BenchPrompt[] = [];
  for (let p = 0; p < count; ++p) {
    const offset = (p * 7919) % corpus.length;
    let length = tokens - 1;
    let best: BenchPrompt | undefined;
    for (let attempt = 0; attempt < 32 && length > 0; ++attempt) {
      const text = cut(offset, length);
      const counted = llamaTokenCount(text);
      if (!best || Math.abs(counted - tokens) < Math.abs(best.tokens! - tokens)) best = { text, tokens: counted };
      if (counted === tokens) break;
      length += counted < tokens ? 1 : -1;
    }
    prompts.push(best!);
  }
  return prompts;
}

export interface Server { address: string; /** Base URL of its Prometheus endpoint (GET <url>/metrics). */ metricsUrl?: string; pid: number; stop(): Promise<void> }

/** Starts build/bin/llm-server (or $LLM_BUILD_DIR/bin/llm-server) on a free loopback port. */
export async function startServer(repository: string): Promise<Server> {
  const binary = join(resolve(repoRoot, process.env.LLM_BUILD_DIR ?? 'build'), 'bin', 'llm-server');
  const child: ChildProcess = spawn(binary, ['--model-repository', repository, '--grpc-port', '0', '--grpc-address', '127.0.0.1', '--http-port', '0', '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const address = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`llm-server did not start serving within 120 s:\n${output}`)), 120_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = /serving gRPC on ([\d.]+:\d+)/.exec(output);
      if (m?.[1]) { clearTimeout(timer); res(m[1]); }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (e) => { clearTimeout(timer); rej(new Error(`cannot start ${binary}: ${e.message} (run npm run build first)`)); });
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`llm-server exited with ${code} before serving:\n${output}`)); });
  });
  const metrics = /serving metrics on ([\d.]+:\d+)/.exec(output)?.[1];
  return { address, ...(metrics ? { metricsUrl: `http://${metrics}` } : {}), pid: child.pid ?? 0, stop: async () => { if (child.exitCode === null) child.kill('SIGTERM'); await exited; } };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Progress {
  private done = 0;
  private failed = 0;
  private tokens = 0;
  private readonly started = performance.now();
  constructor(private readonly label: string, private readonly total: string) {}
  update(record: RequestRecord): void {
    if (record.phase !== 'measured') return;
    if (record.ok) { this.done++; this.tokens += record.outputTokens ?? 0; } else this.failed++;
    const secs = (performance.now() - this.started) / 1000;
    const line = `[${this.label}] ${this.done + this.failed}/${this.total} measured requests${this.failed ? ` (${this.failed} failed)` : ''}, ${(this.tokens / secs).toFixed(1)} tok/s`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }
  end(): void { if (process.stderr.isTTY) process.stderr.write('\n'); }
}

async function* noChunks(): AsyncGenerator<Chunk> {}

/** Requests through the TypeScript SDK: greedy, --max-tokens, end id off with --ignore-eos. */
export function sdkSend(client: TritonLlmClient, model: string, o: Pick<Options, 'maxTokens' | 'ignoreEos' | 'stream'>): Send {
  const completion = (prompt: string, result: GenerateResult): Completion => {
    const fromServer = result.usage.completionTokens ?? result.tokenIds?.length;
    return {
      text: result.text,
      outputTokens: fromServer ?? llamaTokenizer.encode(result.text, false, false).length,
      outputTokenSource: fromServer !== undefined ? 'output_ids' : 'retokenized',
      inputTokens: result.usage.promptTokens,
      // The reference study counted the echoed response (prompt + generation) with the Llama-2 tokenizer.
      seedTokens: llamaTokenCount(prompt + result.text),
      finishReason: result.finishReason,
    };
  };
  return (prompt, signal) => {
    // end_id -1 means "no end id" to this project's backend and to TensorRT-LLM.
    const request: GenerateOptions = { prompt: prompt.text, model, maxTokens: o.maxTokens, ...(o.ignoreEos ? { endId: -1 } : {}) };
    if (!o.stream) return { chunks: noChunks(), result: client.generate(request, { signal }).then((r) => completion(prompt.text, r)) };
    const stream = client.stream(request, { signal });
    const chunks = (async function* (): AsyncGenerator<Chunk> {
      // Models without output_ids: one token per response with text, an estimate.
      for await (const chunk of stream) yield { tokens: chunk.tokenIds?.length ?? (chunk.text ? 1 : 0) };
    })();
    return { chunks, result: stream.result.then((r) => completion(prompt.text, r)) };
  };
}

/** A process's allowed CPUs (Linux), to record whether client and server were pinned. */
function allowedCpus(pid: number | 'self'): string | null {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

const isLoopback = (url: string): boolean => /^(localhost|127\.|\[?::1\]?)/.test(url.replace(/^[a-z]+:\/\//, ''));

function gitCommit(): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return null;
  }
}


/** One sample line of the Prometheus text format: name, labels (unescaped) and value. */
export function parseSample(line: string): { name: string; labels: Record<string, string>; value: string } | null {
  const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
  if (!m) return null;
  const labels: Record<string, string> = {};
  for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
  }
  return { name: m[1]!, labels, value: m[3]! };
}

/**
 * What served the numbers, read from the server's metrics: this project's backend exports
 * nv_llm_engine_info{model,version,engine} (CPU: weights, ISA, threads, batching, KV cache;
 * GPU: the TensorRT-LLM engine's build), and tritonserver its GPUs (nv_gpu_memory_total_bytes).
 */
export async function serverDetails(metricsUrl: string): Promise<{ metricsUrl: string; engines: Record<string, string>; gpus: { uuid: string; memoryBytes: number }[] } | { metricsUrl: string; error: string }> {
  try {
    const response = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) return { metricsUrl, error: `HTTP ${response.status}` };
    const engines: Record<string, string> = {};
    const gpus: { uuid: string; memoryBytes: number }[] = [];
    for (const line of (await response.text()).split('\n')) {
      const sample = parseSample(line);
      if (sample?.name === 'nv_llm_engine_info' && sample.labels['model'] && sample.labels['engine']) engines[`${sample.labels['model']}/${sample.labels['version'] ?? ''}`] = sample.labels['engine'];
      if (sample?.name === 'nv_gpu_memory_total_bytes' && sample.labels['gpu_uuid']) gpus.push({ uuid: sample.labels['gpu_uuid'], memoryBytes: Number(sample.value) });
    }
    return { metricsUrl, engines, gpus };
  } catch (e) {
    return { metricsUrl, error: errorText(e) };
  }
}

/** The charts: seed tok/s beside the reference (same metric), output tok/s per level, latency vs throughput. */
export function writeCharts(outDir: string, levels: readonly LevelResult[], o: Options): string[] {
  const written: string[] = [];
  const atOne = levels.filter((l) => l.concurrency === 1 && l.summary?.seedTokensPerSecond);
  if (atOne.length) {
    const bars: Bar[] = atOne.map((l) => ({ label: `${l.model} (this run)`, value: l.summary!.seedTokensPerSecond!, kind: 'setup' }));
    for (const r of referenceNumbers) bars.push({ label: r.label, value: r.seedTokensPerSecond, kind: 'reference' });
    writeFileSync(join(outDir, 'seed_tokens_per_second.svg'), barChart(bars, {
      title: 'Seed tokens/s at batch 1: the reference study\'s metric',
      unit: 'seed tok/s = Llama-2 tokens of prompt + generated text / request time',
    }));
    written.push('seed_tokens_per_second.svg');
  }
  const generated: Bar[] = levels.filter((l) => l.summary?.outputTokenThroughput).map((l) => ({ label: `${l.model} c=${l.concurrency}`, value: l.summary!.outputTokenThroughput!, kind: 'setup' }));
  if (generated.length) {
    writeFileSync(join(outDir, 'tokens_per_second.svg'), barChart(generated, {
      title: `Generated tokens/s (${o.ignoreEos ? '' : 'up to '}${o.maxTokens} new tokens per request)`,
      unit: 'output tok/s = generated tokens in the measurement window / its length',
    }));
    written.push('tokens_per_second.svg');
  }
  if (o.concurrency.length > 1) {
    const series = o.models.flatMap((model, m) => {
      const measured = levels.filter((l) => l.model === model && l.summary?.outputTokenThroughput && l.summary.requestLatencyMs.count);
      return (['p50', 'p99'] as const).map((q) => ({
        name: `${model} ${q}`,
        points: measured.map((l) => ({ label: `c=${l.concurrency}`, x: l.summary!.outputTokenThroughput!, y: l.summary!.requestLatencyMs[q]! })),
        colour: m,
        dashed: q === 'p99',
        pointLabels: q === 'p50',
      }));
    });
    writeFileSync(join(outDir, 'latency_vs_throughput.svg'), lineChart(series, { title: 'Latency vs throughput', xLabel: 'output tokens/s', yLabel: 'end-to-end request latency (ms), p50 and p99' }));
    written.push('latency_vs_throughput.svg');
  }
  return written;
}

const replacer = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);

function compareFiles(files: readonly [string, string]): number {
  try {
    const [a, b] = files.map((f) => {
      let data: unknown;
      try {
        data = JSON.parse(readFileSync(f, 'utf8'));
      } catch (e) {
        throw new Error(`cannot read ${f}: ${errorText(e)}`);
      }
      return checkResults(data, f);
    }) as [Results, Results];
    process.stdout.write(`A: ${files[0]}\nB: ${files[1]}\n\n${compareResults(a, b)}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`bench: ${errorText(e)}\n`);
    return 2;
  }
}

/** Runs the benchmark; returns the process exit code (0 ok, 1 some level or request failed, 2 could not run). */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let o: Options;
  let prompts: BenchPrompt[];
  try {
    o = parseArgs(argv);
    if (o.compare) return compareFiles(o.compare);
    const texts = loadPromptTexts(o.prompts);
    prompts = o.inputTokens !== undefined ? syntheticPrompts(texts, o.inputTokens, Math.max(texts.length, 16)) : texts.map((text) => ({ text, tokens: llamaTokenCount(text) }));
  } catch (e) {
    process.stderr.write(`${errorText(e)}\n`);
    return 2;
  }
  const startedAt = new Date();
  let server: Server | undefined;
  let client: TritonLlmClient | undefined;
  try {
    let url = o.url;
    if (!url) {
      process.stderr.write(`starting llm-server on ${o.repository} (it shares this machine's ${os.cpus().length} cores with the bench; no pinning) ...\n`);
      server = await startServer(o.repository);
      url = server.address;
    }
    client = new TritonLlmClient({ url, connectTimeoutMs: 10_000 });
    const host = /^(\[[^\]]+\]|[^:/]+)/.exec(url.replace(/^[a-z]+:\/\//, ''))?.[1];
    const metricsUrl = o.metricsUrl ?? server?.metricsUrl ?? (host ? `http://${host}:8002` : undefined);
    let serverMetadata;
    try {
      serverMetadata = await client.serverMetadata({ timeoutMs: 15_000 });
    } catch (e) {
      throw new Error(`server unreachable at ${url}: ${errorText(e)}`);
    }
    const modelConfigs: Record<string, unknown> = {};
    const levels: LevelResult[] = [];
    for (const model of o.models) {
      let ready = false;
      let reason = '';
      try {
        ready = await client.modelReady(model, { timeoutMs: 15_000 });
        if (!ready) {
          const index = await client.repositoryIndex().catch(() => []);
          const entry = index.find((m) => m.name === model);
          reason = entry ? `model ${model} is not ready (${entry.state}${entry.reason ? `: ${entry.reason}` : ''})` : `model ${model} is not in the repository (models: ${index.map((m) => m.name).join(', ') || 'none'})`;
        }
      } catch (e) {
        reason = `model ${model} is missing or not ready: ${errorText(e)}`;
      }
      if (!ready) {
        process.stderr.write(`${reason}\n`);
        for (const c of o.concurrency) levels.push({ model, concurrency: c, stream: o.stream, ok: false, error: reason, requests: [] });
        continue;
      }
      modelConfigs[model] = await client.modelConfig(model).catch((e: unknown) => ({ error: errorText(e) }));
      const send = sdkSend(client, model, o);
      for (const c of o.concurrency) {
        const requests = requestsPerLevel(o, c);
        const progress = new Progress(`${model} c=${c}`, o.durationS !== undefined ? `(${o.durationS} s)` : String(requests));
        const run = await runLevel(send, { concurrency: c, warmup: o.warmup, requests, durationMs: o.durationS !== undefined ? o.durationS * 1000 : undefined, prompts }, realClock, (r) => {
          if (!r.ok && r.phase !== 'cooldown') process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${r.phase} request ${r.index} of ${model} (c=${c}) failed: ${r.error}\n`);
          progress.update(r);
        });
        progress.end();
        const summary = summarizeLevel(run, o.slo);
        const level: LevelResult = { model, concurrency: c, stream: o.stream, ok: summary.completed > 0 && run.error === undefined, requests: run.records, summary };
        if (run.error !== undefined) level.error = run.error;
        else if (summary.completed === 0) level.error = 'every measured request failed';
        levels.push(level);
      }
    }
    const results: Results = {
      schemaVersion: resultsSchemaVersion,
      benchmark: 'triton-llm latency and load',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options: { ...o, promptCount: prompts.length, requestsPerLevel: Object.fromEntries(o.concurrency.map((c) => [c, o.durationS !== undefined ? null : requestsPerLevel(o, c)])) },
      method: {
        study: 'batch 1, one warm-up request, eight timed requests, at most 200 new tokens, greedy',
        ignoreEos: o.ignoreEos
          ? 'end_id = -1: every request generates exactly --max-tokens tokens. A deviation from the study, which allowed a request to end early at the end token; it makes every setup generate the same length (--no-ignore-eos follows the study)'
          : 'the model\'s end id ends a request early, as the study allowed; output lengths differ between setups',
        levels: 'each level keeps exactly N requests in flight: every client sends its next request when the previous ends; warm-up requests (--warmup per client) are not measured; the window opens when the last client has warmed up; requests started in it are measured until --requests have started or --duration has passed; clients keep the load (cool-down requests, cancelled at the end) until every measured request has ended, which closes the window (with --duration, the window is exactly that long)',
        outputTokenThroughput: 'tokens that arrived in the window, from any request, / window length (genai-perf: output token throughput)',
        requestThroughput: 'requests that ended in the window / window length',
        tokensPerSecondPerRequest: 'generated tokens / request latency, per measured request (the study\'s per-request rate at concurrency 1)',
        seedTokensPerSecond: 'the study\'s metric: mean over measured requests of the Llama-2 token count of (prompt + generated text), BOS included, / mean request latency',
        seedTokenizer,
        timeToFirstToken: 'send -> first response with tokens (non-streamed: the whole request)',
        interTokenLatency: '(last response - first response) / (generated tokens - tokens of the first response), per request',
        inputSequenceLength: 'the server\'s prompt token count (this project\'s backend reports it), else the Llama-2 count of the prompt, BOS included',
        goodput: 'request throughput x the share of measured requests that meet every --slo objective',
        percentiles: 'linear interpolation between closest ranks; std is the sample standard deviation',
      },
      environment: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        memoryBytes: os.totalmem(),
        os: `${os.type()} ${os.release()} ${os.arch()}`,
        node: process.version,
        gitCommit: gitCommit(),
        url,
        server: server
          ? { startedByBench: true, repository: o.repository, note: `llm-server started by the bench on this machine: client and engine share its ${os.cpus().length} cores`, clientCpus: allowedCpus('self'), serverCpus: allowedCpus(server.pid) }
          : { startedByBench: false, note: isLoopback(url) ? 'server on this machine (loopback): client and engine share its cores' : 'server on another machine', clientCpus: allowedCpus('self') },
        serverMetadata,
        modelConfigs,
        details: metricsUrl ? await serverDetails(metricsUrl) : null,
      },
      reference: { study: 'Triton + TensorRT-LLM on Llama-2-7B, batch 1, seed tok/s', numbers: referenceNumbers },
      levels,
    };
    const outDir = o.out ?? join(repoRoot, 'bench', 'results', startedAt.toISOString().replace(/[:.]/g, '-'));
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, replacer, 2)}\n`);
    writeFileSync(join(outDir, 'requests.csv'), requestsCsv(levels));
    writeFileSync(join(outDir, 'summary.csv'), summaryCsv(levels));
    writeCharts(outDir, levels, o);
    if (o.json) process.stdout.write(`${JSON.stringify(results, replacer, 2)}\n`);
    else {
      process.stdout.write(`${formatTable(levels)}\n\n`);
      process.stdout.write(`out tok/s: generated tokens in the window / window; tok/s/req: per request (the study's rate); seed tok/s: prompt + generated Llama-2 tokens / request time, the study's metric\n`);
      process.stdout.write(`reference (Triton + TensorRT-LLM, Llama-2-7B, batch 1, seed tok/s): ${referenceNumbers.map((r) => r.seedTokensPerSecond).join(', ')} (FP16, INT8 weight-only, AWQ)\n`);
      if (o.ignoreEos) process.stdout.write(`every request generated ${o.maxTokens} tokens (end id off: --no-ignore-eos lets requests stop early, as the study allowed)\n`);
      const details = results.environment as { details?: { engines?: Record<string, string>; error?: string; metricsUrl: string } | null };
      for (const [model, engine] of Object.entries(details.details?.engines ?? {})) if (o.models.includes(model.slice(0, model.lastIndexOf('/')))) process.stdout.write(`${model}: ${engine}\n`);
      if (details.details?.error) process.stdout.write(`engine details: none (${details.details.metricsUrl}/metrics: ${details.details.error}; --metrics-url names the endpoint)\n`);
      if (server) process.stdout.write(`the server ran on this machine: bench and engine shared its ${os.cpus().length} cores\n`);
      process.stdout.write(`results: ${outDir}\n`);
    }
    for (const l of levels) if (!l.ok) process.stderr.write(`level ${l.model} c=${l.concurrency} failed: ${l.error}\n`);
    return levels.every((l) => l.ok && (l.summary?.failed ?? 0) === 0) ? 0 : 1;
  } catch (e) {
    process.stderr.write(`bench: ${errorText(e)}\n`);
    return 2;
  } finally {
    client?.close();
    await server?.stop();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => { process.exitCode = code; });
}
