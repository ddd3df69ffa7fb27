// Soak: mixed traffic against llm-server for a bounded time, checking that nothing changes and
// nothing leaks. N workers loop over greedy requests, seeded sampled requests, streams the client
// cancels mid-way and streams whose client disconnects mid-way; every completed greedy or seeded
// text must equal the one the same request gave alone before the soak. Every 10 s the server's
// resident memory, open descriptors and request counters are sampled. Exits 1 on a changed text,
// an unexpected error, or descriptors that do not return to their level before the soak.
// --flood N first sends N requests with 200-byte prompts at once, over several connections, and samples
// the server's RSS while they queue and run: what a burst of traffic costs, and that every request
// is answered (or refused with UNAVAILABLE when the model sets max_queue_size) and memory comes back.
// Usage: npm run soak -- [--minutes 1] [--streams 8] [--flood N] [--repository model_repository] [--model llama_fp16]
// (loopback only: it starts its own server; LLM_BUILD_DIR picks the build, e.g. build-asan).
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Status, TritonError, TritonLlmClient, type GenerateOptions } from '../sdk/src/index.js';
import { repoRoot, startServer } from './run.js';

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
async function flood(address: string, model: string, count: number, pid: number, failures: string[]): Promise<void> {
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
  const llm = new TritonLlmClient({ url: server.address, model: options.model });
  const counts = { greedy: 0, sampled: 0, cancelled: 0, disconnected: 0 };
  const failures: string[] = [];
  const samples: Sample[] = [];
  const started = performance.now();
  try {
    // What each request gives alone, one at a time.
    const expected = new Map<string, string>();
    for (const prompt of prompts) expected.set(`${prompt}|greedy`, (await llm.generate(greedyRequest(prompt))).text);
    for (const prompt of prompts.slice(0, 2)) {
      for (const seed of seeds) expected.set(`${prompt}|${seed}`, (await llm.generate(sampledRequest(prompt, seed))).text);
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
      };
    };
    if (options.flood > 0) await flood(server.address, options.model, options.flood, server.pid, failures);
    samples.push(await sample());
    const fdsBefore = samples[0]!.fds;
    const sampler = setInterval(() => void sample().then((s) => samples.push(s), () => {}), 10_000);

    const deadline = Date.now() + options.minutes * 60_000;
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const prompt = pick(prompts);
        const kind = Math.random();
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
    // Cancelled and abandoned requests end within a step; then descriptors must be back.
    await new Promise((r) => setTimeout(r, 2000));
    const last = await sample();
    samples.push(last);
    if (last.fds > fdsBefore + 2) failures.push(`open descriptors grew from ${fdsBefore} to ${last.fds}`);

    const first = samples[0]!;
    const peak = Math.max(...samples.map((s) => s.rssMiB));
    console.log(`soak: ${options.streams} streams x ${options.minutes} min against ${options.model}: ` +
      `${counts.greedy} greedy, ${counts.sampled} seeded, ${counts.cancelled} cancelled, ${counts.disconnected} disconnected`);
    for (const s of samples) {
      console.log(`  t=${s.seconds.toFixed(0).padStart(4)} s  RSS ${s.rssMiB.toFixed(0).padStart(5)} MiB  fds ${String(s.fds).padStart(3)}  ` +
        `requests ok ${s.succeeded}, failed ${s.failed}`);
    }
    console.log(`soak: RSS ${first.rssMiB.toFixed(0)} -> ${last.rssMiB.toFixed(0)} MiB (peak ${peak.toFixed(0)}), ` +
      `descriptors ${first.fds} -> ${last.fds}, ${failures.length} problems`);
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
