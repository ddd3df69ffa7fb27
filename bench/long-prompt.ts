// A long prompt arriving while other streams decode: how long it stalls them. With chunked context
// the engine prefills the prompt across iterations, a chunk per iteration beside the running
// streams' tokens, so their worst inter-token gap grows by about one chunk's time; without it, by
// the whole prefill.
// Usage: npx tsx bench/long-prompt.ts [--url HOST:PORT] [--models a,b] [--streams 8] [--prompt-tokens 1024]
//        [--out FILE]
// Without --url it starts build/bin/llm-server on a model repository of its own with two models over
// the 110M float16 checkpoint: llama_fp16 as model_repository/ ships it (chunked context) and
// llama_fp16_unchunked (enable_chunked_context false).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { TritonLlmClient } from '../sdk/src/index.js';
import { startServer, type Server } from './run.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Options {
  url?: string;
  models: string[];
  streams: number;
  promptTokens: number;
  streamTokens: number;
  out: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { models: ['llama_fp16', 'llama_fp16_unchunked'], streams: 8, promptTokens: 1024, streamTokens: 160,
    out: join(repoRoot, 'bench', 'results', 'long-prompt.json') };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[++i];
    const positive = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} expects a positive integer, got '${value ?? ''}'`);
      return n;
    };
    switch (name) {
      case '--url':
        if (!value) throw new Error('--url needs HOST:PORT');
        o.url = value;
        break;
      case '--models': o.models = (value ?? '').split(',').filter(Boolean); break;
      case '--streams': o.streams = positive(); break;
      case '--prompt-tokens': o.promptTokens = positive(); break;
      case '--stream-tokens': o.streamTokens = positive(); break;
      case '--out': o.out = resolve(value ?? ''); break;
      default: throw new Error(`unknown argument '${name ?? ''}' (see the usage line at the top of bench/long-prompt.ts)`);
    }
  }
  return o;
}

/** A model repository with the shipped llama_fp16 and a copy of it without chunked context. */
function makeRepository(): string {
  const dir = mkdtempSync(join(os.tmpdir(), 'llm-long-prompt-'));
  const shipped = readFileSync(join(repoRoot, 'model_repository', 'llama_fp16', 'config.pbtxt'), 'utf8');
  const checkpoint = join(repoRoot, 'build', 'models', 'synth-110m-float16');
  const withCheckpoint = shipped.replace(/string_value: "\.\.\/\.\.\/\.\.\/build\/models\/synth-110m-float16"/, `string_value: "${checkpoint}"`);
  const variants: Record<string, string> = {
    llama_fp16: withCheckpoint,
    llama_fp16_unchunked: withCheckpoint
      .replace('name: "llama_fp16"', 'name: "llama_fp16_unchunked"')
      .replace(/(key: "enable_chunked_context"[^\n]*\n\s*value: \{ string_value: )"true"/, '$1"false"')
      // A whole 1,024-token prompt must fit one iteration.
      .replace(/(key: "max_num_tokens"[^\n]*\n\s*value: \{ string_value: )"\d+"/, '$1"2048"'),
  };
  for (const [name, config] of Object.entries(variants)) {
    mkdirSync(join(dir, name, '1'), { recursive: true });
    writeFileSync(join(dir, name, 'config.pbtxt'), config);
  }
  return dir;
}

/** A text prompt of exactly `tokens` Llama-2 tokens (BOS included): BOS then " hello" pieces. */
function promptOfTokens(tokens: number): string {
  const text = 'hello '.repeat(tokens - 1).trimEnd();
  const counted = llamaTokenizer.encode(text).length;
  if (counted !== tokens) throw new Error(`the synthetic prompt has ${counted} tokens, not ${tokens}`);
  return text;
}

interface Measurement {
  model: string;
  streams: number;
  promptTokens: number;
  /** Worst gap between two chunks of any stream before the long prompt arrived (ms). */
  worstGapBeforeMs: number;
  /** Worst gap of any stream spanning the long prompt's prefill (ms). */
  worstGapDuringMs: number;
  /** The long prompt's time to first token (ms): its whole prefill, beside the streams. */
  longPromptTtftMs: number;
  /** Iterations the streams went through during that prefill (chunks that arrived), and the mean time of one. */
  iterationsDuringPrefill: number;
  meanIterationDuringPrefillMs: number;
}

async function measure(client: TritonLlmClient, model: string, o: Options): Promise<Measurement> {
  const longPrompt = promptOfTokens(o.promptTokens);
  const start = performance.now();
  const arrivals: number[][] = Array.from({ length: o.streams }, () => []);
  let longSent = Number.NaN;
  let longFirst = Number.NaN;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((r) => { resolveReady = r; });
  const streams = arrivals.map(async (times, s) => {
    const stream = client.stream({ model, prompt: `Stream ${s}: once upon a time`, maxTokens: o.streamTokens, endId: -1 });
    for await (const chunk of stream) {
      void chunk;
      times.push(performance.now() - start);
      if (arrivals.every((t) => t.length >= 20)) resolveReady();
    }
    await stream.result;
  });
  await ready;
  longSent = performance.now() - start;
  const long = client.stream({ model, prompt: longPrompt, maxTokens: 4, endId: -1 });
  for await (const chunk of long) {
    void chunk;
    if (Number.isNaN(longFirst)) longFirst = performance.now() - start;
  }
  await long.result;
  await Promise.all(streams);

  let before = 0;
  let during = 0;
  let iterations = 0;
  for (const times of arrivals) {
    for (let i = 1; i < times.length; i++) {
      const previous = times[i - 1] ?? 0;
      const current = times[i] ?? 0;
      const gap = current - previous;
      if (current <= longSent) before = Math.max(before, gap);
      else if (previous < longFirst) during = Math.max(during, gap);
    }
  }
  // One stream's chunks that arrived while the prompt was prefilling count the iterations.
  const first = arrivals[0] ?? [];
  iterations = first.filter((t) => t > longSent && t <= longFirst).length;
  const ttft = longFirst - longSent;
  return {
    model,
    streams: o.streams,
    promptTokens: o.promptTokens,
    worstGapBeforeMs: before,
    worstGapDuringMs: during,
    longPromptTtftMs: ttft,
    iterationsDuringPrefill: iterations,
    meanIterationDuringPrefillMs: iterations > 0 ? ttft / iterations : ttft,
  };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  let server: Server | undefined;
  let repository: string | undefined;
  let client: TritonLlmClient | undefined;
  try {
    let url = o.url;
    if (url === undefined) {
      repository = makeRepository();
      server = await startServer(repository);
      url = server.address;
    }
    client = new TritonLlmClient({ url, connectTimeoutMs: 10_000 });
    const results: Measurement[] = [];
    for (const model of o.models) {
      process.stderr.write(`long-prompt: ${model}: ${o.streams} streams, then a ${o.promptTokens}-token prompt\n`);
      await measure(client, model, { ...o, streamTokens: 40 });  // warm-up
      results.push(await measure(client, model, o));
    }
    console.log(`\n${o.streams} streams decoding, then one ${o.promptTokens}-token prompt arrives (${os.cpus()[0]?.model ?? 'CPU'})`);
    console.log('| model | worst gap before (ms) | worst gap during its prefill (ms) | its TTFT (ms) | iterations in that time | one iteration (ms) |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const r of results) {
      console.log(`| ${r.model} | ${r.worstGapBeforeMs.toFixed(0)} | ${r.worstGapDuringMs.toFixed(0)} | ${r.longPromptTtftMs.toFixed(0)} | ` +
        `${r.iterationsDuringPrefill} | ${r.meanIterationDuringPrefillMs.toFixed(0)} |`);
    }
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, JSON.stringify({ options: o, results }, null, 2) + '\n');
    console.log(`\nwrote ${o.out}`);
    return 0;
  } catch (e) {
    process.stderr.write(`long-prompt: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    client?.close();
    await server?.stop();
    if (repository !== undefined) rmSync(repository, { recursive: true, force: true });
  }
}

main().then((code) => { process.exitCode = code; });
