// Latency benchmark of LLM models served through Triton (llm-server or NVIDIA's tritonserver).
// Usage: npx tsx bench/run.ts [--url HOST:PORT | --repository DIR] [--models a,b] [--requests 8] [--warmup 1]
//        [--max-tokens 200] [--prompts FILE] [--stream|--no-stream] [--concurrency 1,2,4] [--out DIR] [--json]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { TritonLlmClient, type GenerateOptions } from '../sdk/src/index.js';
import { barChart, lineChart, type Bar } from './chart.js';
import { summarize, type Summary } from './stats.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The reference study: Triton + TensorRT-LLM, Llama-2-7B, batch 1, "seed tok/s". */
export const referenceNumbers = [
  { label: 'reference: Llama-2-7B FP16 (Triton + TRT-LLM)', tokensPerSecond: 69.0 },
  { label: 'reference: Llama-2-7B INT8 weight-only', tokensPerSecond: 125.3 },
  { label: 'reference: Llama-2-7B AWQ', tokensPerSecond: 205.5 },
] as const;

export const seedTokenizer = 'Llama-2 SentencePiece tokenizer (llama-tokenizer-js 1.2.2), BOS included';

export interface Options {
  url?: string;
  repository: string;
  models: string[];
  requests: number;
  warmup: number;
  maxTokens: number;
  prompts: string;
  stream: boolean;
  concurrency: number[];
  out?: string;
  json: boolean;
}

export interface RequestRecord {
  index: number;
  prompt: string;
  ok: boolean;
  error?: string;
  /** Send -> final response (ms). */
  latencyMs?: number;
  /** Send -> first text (ms). */
  ttftMs?: number;
  /** Mean time between generated tokens after the first: (last chunk - first chunk) / (tokens - 1) (ms); streaming only. */
  itlMs?: number | null;
  generatedTokens?: number;
  /** Where generatedTokens came from: the server's output_ids, or the generated text re-encoded (no BOS). */
  tokenSource?: 'output_ids' | 'retokenized';
  /** generatedTokens / latency (tokens/s). */
  tokensPerSecond?: number;
  /** Llama-2 token count (with BOS) of the prompt-echoed text: prompt + generated text. */
  seedTokens?: number;
  chunks?: number;
  text?: string;
}

export interface SetupResult {
  model: string;
  concurrency: number;
  stream: boolean;
  ok: boolean;
  error?: string;
  wallMs?: number;
  requests: RequestRecord[];
  summary?: {
    completed: number;
    failed: number;
    latencyMs: Summary;
    tokensPerSecond: Summary;
    ttftMs: Summary;
    itlMs: Summary;
    generatedTokens: Summary;
    /** Aggregate: all generated tokens / wall time of the setup (what concurrency scales). */
    aggregateTokensPerSecond: number | null;
    /** Reference-study metric: mean seedTokens / mean latency in seconds. */
    seedTokensPerSecond: number | null;
  };
}

const usage = `usage: npx tsx bench/run.ts [options]
  --url HOST:PORT        measure a running Triton (default: start build/bin/llm-server)
  --repository DIR       model repository for the started server (default: model_repository)
  --models a,b           models to measure, in turn (default: llama_fp16,llama_int8,llama_awq)
  --requests N           timed requests per setup (default 8)
  --warmup N             warm-up requests per model (default 1)
  --max-tokens N         new tokens per request, end id disabled (default 200)
  --prompts FILE         JSON array of prompts (default bench/prompts.json)
  --stream / --no-stream streamed requests (TTFT, inter-token latency) or not (default: stream)
  --concurrency 1,2,4    clients in parallel (default 1)
  --out DIR              results folder (default bench/results/<timestamp>)
  --json                 print the results JSON to stdout`;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    repository: join(repoRoot, 'model_repository'),
    models: ['llama_fp16', 'llama_int8', 'llama_awq'],
    requests: 8,
    warmup: 1,
    maxTokens: 200,
    prompts: join(repoRoot, 'bench', 'prompts.json'),
    stream: true,
    concurrency: [1],
    json: false,
  };
  const positiveInt = (name: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new UsageError(`${name} needs an integer >= ${min}, got ${v ?? 'nothing'}`);
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
      case '--requests': o.requests = positiveInt('--requests', value()); break;
      case '--warmup': o.warmup = positiveInt('--warmup', value(), 0); break;
      case '--max-tokens': o.maxTokens = positiveInt('--max-tokens', value()); break;
      case '--prompts': o.prompts = resolve(value() ?? ''); break;
      case '--stream': o.stream = true; break;
      case '--no-stream': o.stream = false; break;
      case '--concurrency': o.concurrency = (value() ?? '').split(',').map((s) => positiveInt('--concurrency', s.trim())); break;
      case '--out': o.out = resolve(value() ?? ''); break;
      case '--json': o.json = true; break;
      case '--help': case '-h': throw new UsageError(usage);
      default: throw new UsageError(`unknown option ${arg}\n${usage}`);
    }
  }
  return o;
}

function loadPrompts(file: string): string[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read prompts from ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(data) || data.length === 0 || !data.every((p) => typeof p === 'string')) throw new UsageError(`${file} must be a non-empty JSON array of strings`);
  return data as string[];
}

export interface Server { address: string; pid: number; stop(): Promise<void> }

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
  return { address, pid: child.pid ?? 0, stop: async () => { if (child.exitCode === null) child.kill('SIGTERM'); await exited; } };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Progress {
  private done = 0;
  private failed = 0;
  private tokens = 0;
  private readonly started = performance.now();
  constructor(private readonly label: string, private readonly total: number) {}
  update(record: RequestRecord): void {
    if (record.ok) { this.done++; this.tokens += record.generatedTokens ?? 0; } else this.failed++;
    const secs = (performance.now() - this.started) / 1000;
    const line = `[${this.label}] ${this.done + this.failed}/${this.total} requests${this.failed ? ` (${this.failed} failed)` : ''}, ${(this.tokens / secs).toFixed(1)} tok/s`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }
  end(): void { if (process.stderr.isTTY) process.stderr.write('\n'); }
}

async function oneRequest(client: TritonLlmClient, model: string, prompt: string, index: number, o: Options): Promise<RequestRecord> {
  // Ignore-EOS semantics: end_id -1 means "no end id" to this project's backend, so every request
  // generates exactly maxTokens tokens. Greedy (no topK/topP).
  const request: GenerateOptions = { prompt, model, maxTokens: o.maxTokens, endId: -1 };
  const record: RequestRecord = { index, prompt, ok: false };
  try {
    const started = performance.now();
    const chunkTimes: number[] = [];
    const chunkTokens: number[] = [];
    let result;
    if (o.stream) {
      const stream = client.stream(request);
      for await (const chunk of stream) {
        chunkTimes.push(performance.now() - started);
        chunkTokens.push(chunk.tokenIds?.length ?? 1);
      }
      result = await stream.result;
    } else {
      result = await client.generate(request);
    }
    const text = result.text;
    const fromIds = result.usage.completionTokens ?? (result.tokenIds ? result.tokenIds.length : undefined);
    const generated = fromIds ?? llamaTokenizer.encode(text, false, false).length;
    record.ok = true;
    record.latencyMs = result.timings.totalMs;
    record.ttftMs = result.timings.ttftMs;
    record.generatedTokens = generated;
    record.tokenSource = fromIds !== undefined ? 'output_ids' : 'retokenized';
    record.tokensPerSecond = generated / (result.timings.totalMs / 1000);
    // The reference study counted the echoed response (prompt + generation) with the Llama-2 tokenizer.
    // Our backend echoes exactly prompt + generated text, so that is what is counted.
    record.seedTokens = llamaTokenizer.encode(prompt + text).length;
    record.text = text;
    if (o.stream) {
      record.chunks = chunkTimes.length;
      const first = chunkTimes[0];
      const last = chunkTimes[chunkTimes.length - 1];
      const afterFirst = generated - (chunkTokens[0] ?? 1);
      record.itlMs = first !== undefined && last !== undefined && afterFirst > 0 ? (last - first) / afterFirst : null;
    }
  } catch (e) {
    record.error = errorText(e);
  }
  return record;
}

function summarizeSetup(records: readonly RequestRecord[], wallMs: number): NonNullable<SetupResult['summary']> {
  const ok = records.filter((r) => r.ok);
  const pick = (f: (r: RequestRecord) => number | null | undefined): number[] => ok.map(f).filter((v): v is number => typeof v === 'number');
  const latency = pick((r) => r.latencyMs);
  const seed = pick((r) => r.seedTokens);
  const meanLatency = summarize(latency).mean;
  const meanSeed = summarize(seed).mean;
  const totalTokens = pick((r) => r.generatedTokens).reduce((a, b) => a + b, 0);
  return {
    completed: ok.length,
    failed: records.length - ok.length,
    latencyMs: summarize(latency),
    tokensPerSecond: summarize(pick((r) => r.tokensPerSecond)),
    ttftMs: summarize(pick((r) => r.ttftMs)),
    itlMs: summarize(pick((r) => r.itlMs)),
    generatedTokens: summarize(pick((r) => r.generatedTokens)),
    aggregateTokensPerSecond: ok.length && wallMs > 0 ? totalTokens / (wallMs / 1000) : null,
    seedTokensPerSecond: meanLatency && meanSeed !== null ? meanSeed / (meanLatency / 1000) : null,
  };
}

async function runSetup(client: TritonLlmClient, model: string, concurrency: number, prompts: readonly string[], o: Options): Promise<SetupResult> {
  const total = Math.max(o.requests, concurrency);
  const records: RequestRecord[] = new Array(total);
  const progress = new Progress(`${model} c=${concurrency}`, total);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const record = await oneRequest(client, model, prompts[i % prompts.length]!, i, o);
      if (!record.ok) process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}request ${i} of ${model} (c=${concurrency}) failed: ${record.error}\n`);
      records[i] = record;
      progress.update(record);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallMs = performance.now() - started;
  progress.end();
  const summary = summarizeSetup(records, wallMs);
  const result: SetupResult = { model, concurrency, stream: o.stream, ok: summary.completed > 0, wallMs, requests: records, summary };
  if (!result.ok) result.error = 'every request failed';
  return result;
}

function gitCommit(): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return null;
  }
}

const n = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined ? '-' : v.toFixed(digits));

export function formatTable(setups: readonly SetupResult[]): string {
  const rows: string[][] = [['model', 'conc', 'ok/n', 'e2e ms mean', 'p50', 'p90', 'min', 'max', 'tok/s mean', 'p50', 'p90', 'min', 'max', 'agg tok/s', 'seed tok/s', 'TTFT ms mean', 'p50', 'p90', 'min', 'max', 'ITL ms mean', 'p50', 'p90', 'min', 'max']];
  for (const s of setups) {
    const m = s.summary;
    const five = (x: Summary | undefined, d = 1): string[] => [n(x?.mean, d), n(x?.p50, d), n(x?.p90, d), n(x?.min, d), n(x?.max, d)];
    rows.push([s.model, String(s.concurrency), m ? `${m.completed}/${s.requests.length}` : `0/0`, ...five(m?.latencyMs, 0), ...five(m?.tokensPerSecond), n(m?.aggregateTokensPerSecond), n(m?.seedTokensPerSecond), ...(s.stream ? five(m?.ttftMs) : five(undefined)), ...(s.stream ? five(m?.itlMs, 2) : five(undefined))]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

const replacer = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);

/** Runs the benchmark; returns the process exit code (0 ok, 1 some setup failed, 2 could not run). */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let o: Options;
  let prompts: string[];
  try {
    o = parseArgs(argv);
    prompts = loadPrompts(o.prompts);
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
      process.stderr.write(`starting llm-server on ${o.repository} ...\n`);
      server = await startServer(o.repository);
      url = server.address;
    }
    client = new TritonLlmClient({ url, connectTimeoutMs: 10_000 });
    let serverMetadata;
    try {
      serverMetadata = await client.serverMetadata({ timeoutMs: 15_000 });
    } catch (e) {
      throw new Error(`server unreachable at ${url}: ${errorText(e)}`);
    }
    const modelConfigs: Record<string, unknown> = {};
    const setups: SetupResult[] = [];
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
        for (const c of o.concurrency) setups.push({ model, concurrency: c, stream: o.stream, ok: false, error: reason, requests: [] });
        continue;
      }
      modelConfigs[model] = await client.modelConfig(model).catch((e: unknown) => ({ error: errorText(e) }));
      for (let w = 0; w < o.warmup; ++w) {
        const record = await oneRequest(client, model, prompts[w % prompts.length]!, -1 - w, o);
        if (!record.ok) process.stderr.write(`warm-up request of ${model} failed: ${record.error}\n`);
      }
      for (const c of o.concurrency) setups.push(await runSetup(client, model, c, prompts, o));
    }
    const results = {
      benchmark: 'triton-llm latency',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options: { ...o, promptCount: prompts.length },
      method: {
        batchSize: 1,
        ignoreEos: 'end_id = -1 (no end id): every request generates max-tokens tokens',
        tokensPerSecond: 'generated tokens / request time (send to final response), per request',
        seedTokensPerSecond: 'mean over requests of Llama-2 token count of (prompt + generated text), BOS included, / mean request time',
        seedTokenizer,
        itl: '(last chunk time - first chunk time) / (generated tokens - tokens in first chunk)',
        percentiles: 'linear interpolation between closest ranks',
      },
      environment: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        memoryBytes: os.totalmem(),
        os: `${os.type()} ${os.release()} ${os.arch()}`,
        node: process.version,
        gitCommit: gitCommit(),
        url,
        startedServer: server ? { repository: o.repository } : null,
        serverMetadata,
        modelConfigs,
      },
      reference: { study: 'Triton + TensorRT-LLM on Llama-2-7B, batch 1, seed tok/s', numbers: referenceNumbers },
      setups,
    };
    const outDir = o.out ?? join(repoRoot, 'bench', 'results', startedAt.toISOString().replace(/[:.]/g, '-'));
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, replacer, 2)}\n`);
    const bars: Bar[] = setups.map((s) => ({ label: `${s.model} c=${s.concurrency}`, value: (s.concurrency === 1 ? s.summary?.tokensPerSecond.mean : s.summary?.aggregateTokensPerSecond) ?? 0, kind: 'setup' }));
    for (const r of referenceNumbers) bars.push({ label: r.label, value: r.tokensPerSecond, kind: 'reference' });
    writeFileSync(join(outDir, 'tokens_per_second.svg'), barChart(bars, { title: `Output tokens/s, ${o.maxTokens} new tokens, batch 1`, unit: 'tokens/s (c=1: mean per request; c>1: aggregate)' }));
    if (o.concurrency.length > 1) {
      const series = o.models.map((model) => ({
        name: model,
        points: setups.filter((s) => s.model === model && s.summary).map((s) => ({ label: `c=${s.concurrency}`, x: s.summary!.aggregateTokensPerSecond ?? 0, y: s.summary!.latencyMs.mean ?? 0 })),
      }));
      writeFileSync(join(outDir, 'latency_vs_throughput.svg'), lineChart(series, { title: 'Latency vs throughput', xLabel: 'aggregate tokens/s', yLabel: 'mean end-to-end latency (ms)' }));
    }
    if (o.json) process.stdout.write(`${JSON.stringify(results, replacer, 2)}\n`);
    else {
      process.stdout.write(`${formatTable(setups)}\n\n`);
      process.stdout.write(`tok/s: generated tokens / request time; agg: all tokens / wall time; seed tok/s counted with the ${seedTokenizer}\n`);
      process.stdout.write('reference (Triton + TensorRT-LLM, Llama-2-7B, batch 1, seed tok/s): 69.0 FP16, 125.3 INT8 weight-only, 205.5 AWQ\n');
      process.stdout.write(`results: ${outDir}\n`);
    }
    for (const s of setups) if (!s.ok) process.stderr.write(`setup ${s.model} c=${s.concurrency} failed: ${s.error}\n`);
    return setups.every((s) => s.ok && (s.summary?.failed ?? 0) === 0) ? 0 : 1;
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
