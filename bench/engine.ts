// Engine benchmark of the CPU engine's weight formats: float16, W8A16 (int8) and W4A16 AWQ on one
// synthetic shape, measured in one run so the ratios compare like with like.
// Usage: npx tsx bench/engine.ts [--shape 1b] [--rounds 3] [--decode-tokens 128] [--prompt-tokens 64] [--threads N]
//        [--batch 1,8,16] [--int4 awq|int4-rtn] [--out FILE]
// Checkpoints are made once under build/models/ (llm synth, then llm quantize). Each round runs every
// format once, in turn, in its own process; the table shows each format's median round, so a
// burst of load from other tenants of the machine shifts one round, not one format.
// --batch: `llm bench --batch N` for each N, N sequences decoding together in one engine (in-flight
// batching); a second table gives each format's aggregate decode tokens/s per batch size and its
// ratio to batch 1 (the first size listed), all measured in the same rounds.
// --int4 int4-rtn: the W4A16 checkpoint quantized round-to-nearest instead of by the AWQ search
// (same format and kernels, so the same speed; the search takes from 11 minutes to an hour on 1b).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './stats.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = resolve(repoRoot, process.env.LLM_BUILD_DIR ?? 'build');
const llm = join(buildDir, 'bin', 'llm');

interface Options {
  shape: string;
  rounds: number;
  decodeTokens: number;
  promptTokens: number;
  threads?: number;
  batches: number[];
  int4: 'awq' | 'int4-rtn';
  out: string;
}

/** One `llm bench --json` result. */
interface EngineResult {
  checkpoint: string;
  quant_algo: string;
  weight_bytes: number;
  resident_bytes_after_load: number;
  resident_bytes_after_run: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  batch: number;
  engine: { isa: string; threads: number };
  /** The machine's ceilings, measured in the same process after the run (llm bench). */
  machine: { triad_bytes_per_s: number; fma_flops_per_s: number; bf16_dot_flops_per_s: number };
  compute_peak: string;
  decode_share_of_bandwidth: number;
  prefill_share_of_compute: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { shape: '1b', rounds: 3, decodeTokens: 128, promptTokens: 64, batches: [1], int4: 'awq',
    out: join(repoRoot, 'bench', 'results', 'engine.json') };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    const number = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} expects a positive integer, got '${value ?? ''}'`);
      return n;
    };
    switch (name) {
      case '--shape': options.shape = value ?? ''; break;
      case '--rounds': options.rounds = number(); break;
      case '--decode-tokens': options.decodeTokens = number(); break;
      case '--prompt-tokens': options.promptTokens = number(); break;
      case '--threads': options.threads = number(); break;
      case '--batch': {
        options.batches = (value ?? '').split(',').map((text) => {
          const n = Number(text);
          if (!Number.isInteger(n) || n <= 0) throw new Error(`--batch expects positive integers separated by commas, got '${value ?? ''}'`);
          return n;
        });
        break;
      }
      case '--int4':
        if (value !== 'awq' && value !== 'int4-rtn') throw new Error(`--int4 expects awq or int4-rtn, got '${value ?? ''}'`);
        options.int4 = value;
        break;
      case '--out': options.out = resolve(value ?? ''); break;
      default: throw new Error(`unknown argument '${name}' (see the usage line at the top of bench/engine.ts)`);
    }
    i++;
  }
  return options;
}

function run(args: string[]): string {
  return execFileSync(llm, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
}

/** The float16, int8 and int4 (awq or round-to-nearest) checkpoints of the shape, made where missing. */
function checkpoints(shape: string, int4: Options['int4']): { label: string; dir: string }[] {
  const models = join(buildDir, 'models');
  const float16 = join(models, `synth-${shape}-float16`);
  const int8 = join(models, `synth-${shape}-int8`);
  const awq = join(models, int4 === 'awq' ? `synth-${shape}-awq` : `synth-${shape}-int4-rtn`);
  if (!existsSync(join(float16, 'config.json'))) {
    console.error(`bench: making ${float16}`);
    run(['synth', '--shape', shape, '--dtype', 'float16', '--seed', '0', '--vocab', join(buildDir, 'llama2-vocab.json'), '--out', float16]);
  }
  if (!existsSync(join(int8, 'config.json'))) {
    console.error(`bench: quantizing ${int8}`);
    run(['quantize', '--checkpoint', float16, '--out', int8, '--quant', 'int8']);
  }
  if (!existsSync(join(awq, 'config.json'))) {
    if (int4 === 'awq') {
      // Random weights: any text calibrates them equally; a few sequences keep the search short.
      console.error(`bench: quantizing ${awq} (AWQ search: 11 minutes to an hour for 1b)`);
      run(['quantize', '--checkpoint', float16, '--out', awq, '--quant', 'awq', '--calib', join(repoRoot, 'README.md'),
        '--calib-samples', '4']);
    } else {
      console.error(`bench: quantizing ${awq} (round-to-nearest)`);
      run(['quantize', '--checkpoint', float16, '--out', awq, '--quant', 'int4-rtn']);
    }
  }
  const int4Label = int4 === 'awq' ? 'awq (W4A16, g128)' : 'int4-rtn (W4A16, g128)';
  return [{ label: 'float16', dir: float16 }, { label: 'int8 (W8A16)', dir: int8 }, { label: int4Label, dir: awq }];
}

function main(argv: string[]): void {
  const options = parseArgs(argv);
  if (!existsSync(llm)) throw new Error(`${llm} is missing: run \`bash scripts/setup.sh\` first`);
  const formats = checkpoints(options.shape, options.int4);
  // rounds[format][batch index]: one result per round.
  const rounds: EngineResult[][][] = formats.map(() => options.batches.map(() => []));
  for (let round = 0; round < options.rounds; round++) {
    formats.forEach(({ label, dir }, index) => {
      options.batches.forEach((batch, b) => {
        const args = ['bench', '--checkpoint', dir, '--json', '--batch', String(batch), '--prompt-tokens',
          String(options.promptTokens), '--decode-tokens', String(options.decodeTokens)];
        if (options.threads !== undefined) args.push('--threads', String(options.threads));
        console.error(`bench: round ${round + 1}/${options.rounds}: ${label}, batch ${batch}`);
        rounds[index]?.[b]?.push(JSON.parse(run(args)) as EngineResult);
      });
    });
  }
  const median = (values: number[]): number => percentile(values, 50) ?? Number.NaN;
  const summarize = (label: string, runs: EngineResult[]) => {
    const first = runs[0];
    if (first === undefined) throw new Error(`no result for ${label}`);
    return {
      ...first,
      label,
      resident_bytes_after_load: median(runs.map((r) => r.resident_bytes_after_load)),
      prefill_tokens_per_s: median(runs.map((r) => r.prefill_tokens_per_s)),
      decode_tokens_per_s: median(runs.map((r) => r.decode_tokens_per_s)),
      decode_tokens_per_s_rounds: runs.map((r) => r.decode_tokens_per_s),
      decode_share_of_bandwidth: median(runs.map((r) => r.decode_share_of_bandwidth)),
      prefill_share_of_compute: median(runs.map((r) => r.prefill_share_of_compute)),
      triad_bytes_per_s: median(runs.map((r) => r.machine.triad_bytes_per_s)),
    };
  };
  // The first batch size is the format comparison (batch 1 by default).
  const results = formats.map(({ label }, index) => summarize(label, rounds[index]?.[0] ?? []));
  const base = results[0];
  if (base === undefined) throw new Error('no checkpoint was benchmarked');
  const mib = (bytes: number): string => (bytes / (1 << 20)).toFixed(0);
  console.log(`\nCPU engine, synthetic ${options.shape} shape, ${base.engine.isa}, ${base.engine.threads} threads, ` +
    `${os.cpus()[0]?.model ?? 'unknown CPU'}; median of ${options.rounds} rounds; batch ${options.batches[0]}`);
  console.log('| weights | resident after load (MiB) | vs float16 | prefill tok/s | prefill share of compute peak | decode tok/s | decode share of triad bandwidth | decode vs float16 |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  const rows = results.map((r) => ({
    label: r.label,
    resident_mib: Number(mib(r.resident_bytes_after_load)),
    resident_ratio: r.resident_bytes_after_load / base.resident_bytes_after_load,
    prefill_tokens_per_s: r.prefill_tokens_per_s,
    decode_tokens_per_s: r.decode_tokens_per_s,
    decode_speedup: r.decode_tokens_per_s / base.decode_tokens_per_s,
    prefill_share_of_compute: r.prefill_share_of_compute,
    compute_peak: r.compute_peak,
    decode_share_of_bandwidth: r.decode_share_of_bandwidth,
  }));
  const percent = (share: number): string => `${(share * 100).toFixed(0)}%`;
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.resident_mib} | ${(r.resident_ratio * 100).toFixed(0)}% | ` +
      `${r.prefill_tokens_per_s.toFixed(1)} | ${percent(r.prefill_share_of_compute)} (${r.compute_peak}) | ` +
      `${r.decode_tokens_per_s.toFixed(1)} | ${percent(r.decode_share_of_bandwidth)} | ${r.decode_speedup.toFixed(2)}x |`);
  }
  const ceilings = results.map((r) => r.machine);
  console.log(`machine (llm bench, after each run; medians): triad ${(median(results.map((r) => r.triad_bytes_per_s)) / 1e9).toFixed(1)} GB/s, ` +
    `float32 FMA ${(median(ceilings.map((m) => m.fma_flops_per_s)) / 1e9).toFixed(0)} GFLOP/s, ` +
    `bfloat16 dot product ${(median(ceilings.map((m) => m.bf16_dot_flops_per_s)) / 1e9).toFixed(0)} GFLOP/s`);
  console.log(`decode tok/s per round: ${results.map((r) => `${r.label} ${r.decode_tokens_per_s_rounds.map((v) => v.toFixed(1)).join('/')}`).join(', ')}`);

  // In-flight batching: aggregate decode tokens/s of each batch size, as a ratio to the first size.
  const batching = formats.map(({ label }, index) => {
    const perBatch = options.batches.map((_, b) => summarize(label, rounds[index]?.[b] ?? []));
    const single = perBatch[0]?.decode_tokens_per_s ?? Number.NaN;
    return {
      label,
      batches: perBatch.map((r) => ({
        batch: r.batch,
        decode_tokens_per_s: r.decode_tokens_per_s,
        decode_tokens_per_s_rounds: r.decode_tokens_per_s_rounds,
        vs_first: r.decode_tokens_per_s / single,
        resident_bytes_after_run: r.resident_bytes_after_run,
      })),
    };
  });
  if (options.batches.length > 1) {
    console.log(`\nAggregate decode tok/s with N sequences decoding together (llm bench --batch N, ` +
      `${options.promptTokens}-token prompts, ${options.decodeTokens} decode steps), and vs batch ${options.batches[0]}`);
    console.log(`| weights | ${options.batches.map((n) => `batch ${n}`).join(' | ')} |`);
    console.log(`|---|${options.batches.map(() => '---:').join('|')}|`);
    for (const f of batching) {
      console.log(`| ${f.label} | ${f.batches.map((b) => `${b.decode_tokens_per_s.toFixed(1)} (${b.vs_first.toFixed(2)}x)`).join(' | ')} |`);
    }
  }
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, JSON.stringify({ shape: options.shape, options, results, rows, batching }, null, 2) + '\n');
  console.log(`\nwrote ${options.out}`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  console.error(`bench/engine: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
