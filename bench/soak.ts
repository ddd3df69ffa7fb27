// Soak: mixed traffic against llm-server for a bounded time, checking that nothing changes and
// nothing leaks. N workers loop over greedy requests, seeded sampled requests, streams the client
// cancels mid-way and streams whose client disconnects mid-way; every completed greedy or seeded
// text must equal the one the same request gave alone before the soak. Every 10 s the server's
// resident memory, open descriptors, request counters and the engine's request and KV cache gauges
// (its Prometheus metrics) are sampled. Exits 1 on a changed text, an unexpected error, descriptors
// that do not return to their level before the soak, or leaked requests: at the end the engine must
// hold no active or queued request and no KV cache block, and must have ended (completed, cancelled
// or failed) exactly as many requests as were sent.
// --flood N first sends N requests with 200-byte prompts at once, over several connections, and samples
// the server's RSS while they queue and run: what a burst of traffic costs, and that every request
// is answered (or refused with UNAVAILABLE when the model sets max_queue_size) and memory comes back.
// Usage: npm run soak -- [--minutes 1] [--streams 8] [--flood N] [--repository model_repository] [--model llama_fp16]
// (loopback only: it starts its own server; LLM_BUILD_DIR picks the build, e.g. build-asan).
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Status, TritonError, TritonLlmClient, type GenerateOptions } from '../sdk/src/index.js';
import { parseSample, repoRoot, startServer } from './run.js';

interface Options {
  minutes: number;
  streams: number;
  flood: number;
  repository: string;
  model: string;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { minutes: 1, streams: 8, flood: 0, repository: resolve(repoRoot, 'model_repository'), model: 'llama_fp16' };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[++i];
    const positive = (): number => {
      const n = Number(value);
      if (!(n > 0)) throw new Error(`${name} expects a positive number, got '${value ?? ''}'`);
      return n;
    };
    switch (name) {
      case '--minutes': options.minutes = positive(); break;
      case '--streams': options.streams = Math.ceil(positive()); break;
      case '--flood': options.flood = Math.ceil(positive()); break;
      case '--repository': options.repository = resolve(value ?? ''); break;
      case '--model':
        if (!value) throw new Error('--model needs a name');
        options.model = value;
        break;
      default:
        throw new Error(`unknown option '${name ?? ''}' (usage: npm run soak -- [--minutes 1] [--streams 8] [--flood N] [--repository DIR] [--model NAME])`);
    }
  }
  return options;
}

const prompts = ['The capital of France is', 'Once upon a time', 'In the beginning', 'def fibonacci(n):', 'The quick brown fox', 'Roses are red,'];
const seeds = [1, 2, 3];
const maxTokens = 24;

function greedyRequest(prompt: string): GenerateOptions {
  return { prompt, maxTokens };
}
function sampledRequest(prompt: string, seed: number): GenerateOptions {
  return { prompt, maxTokens, temperature: 0.8, topP: 0.9, seed };
}

interface Sample {
  seconds: number;
  rssMiB: number;
  fds: number;
  succeeded: number;
  failed: number;
  engine: EngineState;
}

/** What the backend's metrics say of one model's requests (nv_llm_* families). */
interface EngineState {
  active: number;
  queued: number;
  kvBlocksUsed: number;
  /** Requests the engine ended: completed, cancelled or failed. */
  ended: number;
}

async function engineState(metricsUrl: string, model: string): Promise<EngineState> {
  const state: EngineState = { active: 0, queued: 0, kvBlocksUsed: 0, ended: 0 };
  const response = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`${metricsUrl}/metrics: HTTP ${response.status}`);
  for (const line of (await response.text()).split('\n')) {
    const sample = line.startsWith('nv_llm_') ? parseSample(line) : null;
    if (sample?.labels['model'] !== model) continue;
    const value = Number(sample.value);
    if (sample.name === 'nv_llm_request_metrics' && sample.labels['request_type'] === 'active') state.active = value;
    if (sample.name === 'nv_llm_request_metrics' && sample.labels['request_type'] === 'queued') state.queued = value;
    if (sample.name === 'nv_llm_kv_cache_block_metrics' && sample.labels['kv_cache_block_type'] === 'used') state.kvBlocksUsed = value;
    if (sample.name === 'nv_llm_requests_total') state.ended += value;
  }
  return state;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}
function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
/** Connections the flood spreads over: each carries at most llm-server's 1,024 concurrent streams. */
const floodConnections = 8;

/**
 * N requests with 200-byte prompts sent at once; RSS sampled every 100 ms until all have ended. Every
 * request must complete, or be refused with UNAVAILABLE (a full queue); anything else is a problem.
 */
async function flood(address: string, model: string, count: number, pid: number, failures: string[]): Promise<{ refused: number }> {
  // Distinct channel options: grpc-js would otherwise share one connection among the clients.
  const clients = Array.from({ length: floodConnections }, (_, i) =>
    new TritonLlmClient({ url: address, model, channelOptions: { 'triton-llm.soak-connection': i } }));
  const rssBefore = rssMiB(pid);
  let peak = rssBefore;
  const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(pid)); }, 100);
  const started = performance.now();
  let completed = 0;
  let refused = 0;
  try {
    const prompt = (i: number): string => `Request ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(4)}`;
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      try {
        await clients[i % floodConnections]!.generate({ prompt: prompt(i), maxTokens: 4 });
        completed++;
      } catch (error) {
        if (error instanceof TritonError && error.code === Status.UNAVAILABLE) refused++;
        else failures.push(`flood: unexpected error: ${errorText(error)}`);
      }
    }));
  } finally {
    clearInterval(sampler);
    clients.forEach((c) => c.close());
  }
  peak = Math.max(peak, rssMiB(pid));
  await new Promise((r) => setTimeout(r, 2000));
  console.log(`flood: ${count} requests (200-byte prompts, 4 new tokens) at once over ${floodConnections} connections: ` +
    `${completed} completed, ${refused} refused (UNAVAILABLE) in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
    `RSS ${rssBefore.toFixed(0)} -> peak ${peak.toFixed(0)} -> ${rssMiB(pid).toFixed(0)} MiB 2 s after`);
  return { refused };
}

function pick<T>(values: readonly T[]): T {
  return values[Math.floor(Math.random() * values.length)]!;
}
function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const server = await startServer(options.repository);
  const metricsUrl = server.metricsUrl;
  if (!metricsUrl) throw new Error('llm-server did not report its metrics endpoint');
  const llm = new TritonLlmClient({ url: server.address, model: options.model });
  const counts = { greedy: 0, sampled: 0, cancelled: 0, disconnected: 0 };
  /** Requests that reached the engine (or should have): each must end there. */
  let sent = 0;
  const failures: string[] = [];
  const samples: Sample[] = [];
  const started = performance.now();
  try {
    // What each request gives alone, one at a time.
    const expected = new Map<string, string>();
    for (const prompt of prompts) {
      sent++;
      expected.set(`${prompt}|greedy`, (await llm.generate(greedyRequest(prompt))).text);
    }
    for (const prompt of prompts.slice(0, 2)) {
      for (const seed of seeds) {
        sent++;
        expected.set(`${prompt}|${seed}`, (await llm.generate(sampledRequest(prompt, seed))).text);
      }
    }
    const sample = async (): Promise<Sample> => {
      const [stats] = await llm.modelStatistics(options.model);
      const inference = stats?.inferenceStats;
      return {
        seconds: (performance.now() - started) / 1000,
        rssMiB: rssMiB(server.pid),
        fds: openDescriptors(server.pid),
        succeeded: inference?.success?.count ?? 0,
        failed: inference?.fail?.count ?? 0,
        engine: await engineState(metricsUrl, options.model),
      };
    };
    if (options.flood > 0) {
      const { refused } = await flood(server.address, options.model, options.flood, server.pid, failures);
      sent += options.flood - refused;  // refused at submit: they never entered the engine
    }
    samples.push(await sample());
    const fdsBefore = samples[0]!.fds;
    const sampler = setInterval(() => void sample().then((s) => samples.push(s), () => {}), 10_000);

    const deadline = Date.now() + options.minutes * 60_000;
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const prompt = pick(prompts);
        const kind = Math.random();
        sent++;
        try {
          if (kind < 0.4) {
            const text = (await llm.generate(greedyRequest(prompt))).text;
            counts.greedy++;
            if (text !== expected.get(`${prompt}|greedy`)) failures.push(`greedy text changed for '${prompt}': '${text}'`);
          } else if (kind < 0.6) {
            const samplePrompt = pick(prompts.slice(0, 2));
            const seed = pick(seeds);
            const text = (await llm.generate(sampledRequest(samplePrompt, seed))).text;
            counts.sampled++;
            if (text !== expected.get(`${samplePrompt}|${seed}`)) failures.push(`seeded text changed for '${samplePrompt}' seed ${seed}: '${text}'`);
          } else if (kind < 0.8) {
            // The client cancels after a few chunks.
            const controller = new AbortController();
            const stopAfter = 1 + Math.floor(Math.random() * 4);
            let chunks = 0;
            try {
              for await (const _ of llm.stream({ prompt, maxTokens: 200 }, { signal: controller.signal })) {
                if (++chunks === stopAfter) controller.abort();
              }
            } catch (error) {
              if (!(error instanceof TritonError && error.code === Status.CANCELLED)) throw error;
            }
            counts.cancelled++;
          } else {
            // The client goes away mid-stream: its channel is closed under the open call.
            const client = new TritonLlmClient({ url: server.address, model: options.model });
            const stopAfter = 1 + Math.floor(Math.random() * 4);
            let chunks = 0;
            try {
              for await (const _ of client.stream({ prompt, maxTokens: 200 })) {
                if (++chunks === stopAfter) client.close();
              }
            } catch (error) {
              if (!(error instanceof TritonError && (error.code === Status.CANCELLED || error.code === Status.UNAVAILABLE))) throw error;
            } finally {
              client.close();
            }
            counts.disconnected++;
          }
        } catch (error) {
          failures.push(`unexpected error: ${errorText(error)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: options.streams }, () => worker()));
    clearInterval(sampler);
    // Cancelled and abandoned requests end within a step, and the metrics follow within 200 ms;
    // descriptors must be back and every request ended.
    await new Promise((r) => setTimeout(r, 2000));
    let last = await sample();
    const settled = (s: Sample): boolean => s.engine.active + s.engine.queued + s.engine.kvBlocksUsed === 0 && s.engine.ended === sent;
    for (let tries = 0; tries < 40 && !settled(last); tries++) {
      await new Promise((r) => setTimeout(r, 250));
      last = await sample();
    }
    samples.push(last);
    if (last.fds > fdsBefore + 2) failures.push(`open descriptors grew from ${fdsBefore} to ${last.fds}`);
    const leaked = sent - last.engine.ended;
    if (!settled(last)) {
      failures.push(`requests leaked: ${sent} sent, ${last.engine.ended} ended in the engine; ` +
        `still ${last.engine.active} active, ${last.engine.queued} queued, ${last.engine.kvBlocksUsed} KV cache blocks held, 10 s after the last`);
    }

    const first = samples[0]!;
    const peak = Math.max(...samples.map((s) => s.rssMiB));
    console.log(`soak: ${options.streams} streams x ${options.minutes} min against ${options.model}: ` +
      `${counts.greedy} greedy, ${counts.sampled} seeded, ${counts.cancelled} cancelled, ${counts.disconnected} disconnected`);
    for (const s of samples) {
      console.log(`  t=${s.seconds.toFixed(0).padStart(4)} s  RSS ${s.rssMiB.toFixed(0).padStart(5)} MiB  fds ${String(s.fds).padStart(3)}  ` +
        `requests ok ${s.succeeded}, failed ${s.failed}; engine: ${s.engine.active} active, ${s.engine.queued} queued, ` +
        `${s.engine.kvBlocksUsed} KV blocks held, ${s.engine.ended} ended`);
    }
    console.log(`soak: RSS ${first.rssMiB.toFixed(0)} -> ${last.rssMiB.toFixed(0)} MiB (peak ${peak.toFixed(0)}), ` +
      `descriptors ${first.fds} -> ${last.fds}, requests sent ${sent} / ended ${last.engine.ended} / leaked ${leaked}, ${failures.length} problems`);
    for (const failure of failures.slice(0, 20)) console.log(`  ${failure}`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    llm.close();
    await server.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`soak: ${errorText(error)}`);
    process.exit(1);
  },
);
