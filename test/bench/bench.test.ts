// Runs bench/run.ts end to end on the tiny synthetic model and checks its JSON, CSV and SVG output.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTokenCount, main, parseArgs, parseSample, referenceNumbers, requestsPerLevel, syntheticPrompts } from '../../bench/run.js';
import { resultsSchemaVersion, type Results } from '../../bench/report.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';

/** A tiny XML tokenizer: checks that tags balance and returns every start tag with its attributes. */
function parseXml(text: string): { name: string; attrs: Record<string, string> }[] {
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const open: string[] = [];
  const tag = /<(\?[^?]*\?|!--[\s\S]*?--|\/?)([A-Za-z_][\w:.-]*)?([^<>]*?)(\/?)>/g;
  let last = 0;
  let roots = 0;
  for (let m = tag.exec(text); m; m = tag.exec(text)) {
    const between = text.slice(last, m.index);
    if (/[<>]/.test(between)) throw new Error(`stray angle bracket before offset ${m.index}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) throw new Error(`unescaped & before offset ${m.index}`);
    last = tag.lastIndex;
    const [, prefix, name, rest, selfClosing] = m;
    if (prefix!.startsWith('?') || prefix!.startsWith('!--')) continue;
    if (!name) throw new Error(`malformed tag at offset ${m.index}`);
    if (prefix === '/') {
      if (open.pop() !== name) throw new Error(`unbalanced </${name}> at offset ${m.index}`);
      continue;
    }
    const attrs: Record<string, string> = {};
    const attr = /\s+([\w:.-]+)="([^"<]*)"/g;
    const consumed = rest!.replace(attr, (_all, key: string, value: string) => {
      if (key in attrs) throw new Error(`duplicate attribute ${key} on <${name}>`);
      attrs[key] = value;
      return '';
    });
    if (consumed.trim() !== '') throw new Error(`malformed attributes on <${name}>: ${rest}`);
    if (open.length === 0) roots++;
    elements.push({ name, attrs });
    if (!selfClosing) open.push(name);
  }
  if (/[<>]/.test(text.slice(last))) throw new Error('stray angle bracket at the end');
  if (open.length) throw new Error(`unclosed tags: ${open.join(', ')}`);
  if (roots !== 1) throw new Error(`expected one root element, got ${roots}`);
  return elements;
}

describe('bench/run.ts', () => {
  const repo = new TempRepository();
  const out = mkdtempSync(join(tmpdir(), 'llm-bench-'));
  let code: number;
  let results: Results & { environment: Record<string, unknown>; method: Record<string, string> };

  beforeAll(async () => {
    repo.add({ name: 'tiny', checkpointDir: join(buildDir, 'models', 'synth-tiny-float16'), decoupled: true });
    code = await main(['--repository', repo.dir, '--models', 'tiny', '--requests', '2', '--max-tokens', '8', '--concurrency', '1,2', '--input-tokens', '12', '--slo', 'ttft_ms=60000', '--out', out]);
    results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  });

  afterAll(() => {
    repo.remove();
    rmSync(out, { recursive: true, force: true });
  });

  it('measures each level after its warm-up, every request generating exactly max-tokens tokens', () => {
    expect(code).toBe(0);
    expect(results.schemaVersion).toBe(resultsSchemaVersion);
    expect(results.levels.map((l) => [l.model, l.concurrency, l.ok])).toEqual([['tiny', 1, true], ['tiny', 2, true]]);
    for (const level of results.levels) {
      const measured = level.requests.filter((r) => r.phase === 'measured');
      expect(measured).toHaveLength(2);
      expect(level.requests.filter((r) => r.phase === 'warmup').length).toBeGreaterThanOrEqual(level.concurrency);
      for (const r of measured) {
        expect(r.ok).toBe(true);
        expect(r.outputTokens).toBe(8);
        expect(r.outputTokenSource).toBe('output_ids');
        expect(r.finishReason).toBe('length');
        expect(r.seedTokens).toBeGreaterThan(8);
        expect(r.responses).toBeGreaterThan(0);
        // Synthetic prompts of 12 Llama-2 tokens; the tiny model uses the same tokenizer and reports its count.
        expect(r.inputTokenSource).toBe('server');
        expect(r.inputTokens).toBe(12);
      }
    }
    expect(results.method.ignoreEos).toMatch(/deviation from the study/);
    expect((results.options as { ignoreEos: boolean }).ignoreEos).toBe(true);
  });

  it('summaries match the per-request records', () => {
    for (const level of results.levels) {
      const s = level.summary!;
      expect(s).toMatchObject({ measured: 2, completed: 2, failed: 0, sloAttainment: 1 });
      const measured = level.requests.filter((r) => r.phase === 'measured');
      const values = measured.map((r) => r.ttftMs!);
      expect(s.timeToFirstTokenMs.mean).toBeCloseTo((values[0]! + values[1]!) / 2, 9);
      expect(s.timeToFirstTokenMs.p99).toBeCloseTo(Math.min(...values) + 0.99 * Math.abs(values[0]! - values[1]!), 9);
      for (const r of measured) expect(r.tokensPerSecond).toBeCloseTo(r.outputTokens! / (r.latencyMs! / 1000), 9);
      const meanSeed = measured.reduce((a, r) => a + r.seedTokens!, 0) / 2;
      expect(s.seedTokensPerSecond).toBeCloseTo(meanSeed / (s.requestLatencyMs.mean! / 1000), 9);
      expect(s.goodput).toBeCloseTo(s.requestThroughput!, 9);
      expect(s.outputTokenThroughput).toBeGreaterThan(0);
    }
    expect(results.method.seedTokenizer).toMatch(/Llama-2/);
    expect(results.environment).toMatchObject({ cores: expect.any(Number), node: process.version, server: { startedByBench: true } });
    expect((results.environment.server as { note: string }).note).toMatch(/share/);
    expect(results.environment.serverMetadata).toBeTruthy();
    expect(Object.keys(results.environment.modelConfigs as object)).toEqual(['tiny']);
    // What served the numbers, from the backend's nv_llm_engine_info metric.
    const details = results.environment.details as { engines: Record<string, string> };
    expect(Object.keys(details.engines)).toEqual(['tiny/1']);
    expect(details.engines['tiny/1']).toMatch(/^cpu engine: .*synth-tiny-float16.*threads; in-flight batching/);
    const csvHeader = readFileSync(join(out, 'summary.csv'), 'utf8').split('\r\n')[0];
    expect(csvHeader).toMatch(/^model,concurrency,stream,ok,window_s,/);
    expect(readFileSync(join(out, 'requests.csv'), 'utf8').split('\r\n').filter(Boolean)).toHaveLength(1 + results.levels.reduce((n, l) => n + l.requests.length, 0));
  });

  it('draws the reference bars beside the same metric (seed tok/s), and generated tokens/s on a chart of their own', () => {
    const seed = parseXml(readFileSync(join(out, 'seed_tokens_per_second.svg'), 'utf8'));
    expect(seed[0]!.name).toBe('svg');
    expect(seed[0]!.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    const seedText = readFileSync(join(out, 'seed_tokens_per_second.svg'), 'utf8');
    expect(seedText).toMatch(/<title>Seed tokens\/s at batch 1: the reference study&apos;s metric<\/title>/);
    expect(seedText).toMatch(/seed tok\/s = Llama-2 tokens of prompt \+ generated text \/ request time/);
    const bars = seed.filter((e) => e.name === 'rect' && e.attrs.class?.startsWith('bar '));
    // Only concurrency 1 is the study's setting; its bar and the references measure the same thing.
    expect(bars.filter((b) => b.attrs.class === 'bar setup').map((b) => b.attrs['data-label'])).toEqual(['tiny (this run)']);
    expect(bars.filter((b) => b.attrs.class === 'bar reference').map((b) => b.attrs['data-label'])).toEqual(referenceNumbers.map((r) => r.label));
    const generated = parseXml(readFileSync(join(out, 'tokens_per_second.svg'), 'utf8'));
    const generatedBars = generated.filter((e) => e.name === 'rect' && e.attrs.class?.startsWith('bar '));
    expect(generatedBars.map((b) => [b.attrs.class, b.attrs['data-label']])).toEqual([['bar setup', 'tiny c=1'], ['bar setup', 'tiny c=2']]);
    const latency = readFileSync(join(out, 'latency_vs_throughput.svg'), 'utf8');
    parseXml(latency);
    expect(latency).toMatch(/>tiny p50</);
    expect(latency).toMatch(/>tiny p99</);
    expect((latency.match(/<circle/g) ?? []).length).toBe(4);
  });

  it('the XML checker rejects broken markup', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow();
    expect(() => parseXml('<svg/><svg/>')).toThrow();
  });

  it('reads Prometheus samples with escaped label values', () => {
    expect(parseSample('nv_llm_engine_info{model="m",engine="a \\"b\\" c\\\\d\\ne"} 1')).toEqual({ name: 'nv_llm_engine_info', labels: { model: 'm', engine: 'a "b" c\\d\ne' }, value: '1' });
    expect(parseSample('up 1')).toEqual({ name: 'up', labels: {}, value: '1' });
    expect(parseSample('# HELP up x')).toBeNull();
  });

  it('makes synthetic prompts of the exact token length asked', () => {
    const prompts = syntheticPrompts(['The quick brown fox jumps over the lazy dog.', 'Once upon a time, in a small village,'], 37, 5);
    expect(prompts).toHaveLength(5);
    for (const p of prompts) {
      expect(p.tokens).toBe(37);
      expect(llamaTokenCount(p.text)).toBe(37);
    }
    expect(new Set(prompts.map((p) => p.text)).size).toBeGreaterThan(1);
  });

  it('reports a missing model, an unreachable server and bad options clearly', async () => {
    const missing = await main(['--repository', repo.dir, '--models', 'nope', '--requests', '1', '--max-tokens', '2', '--warmup', '0', '--out', join(out, 'missing')]);
    expect(missing).toBe(1);
    const levels = (JSON.parse(readFileSync(join(out, 'missing', 'results.json'), 'utf8')) as Results).levels;
    expect(levels[0]!.ok).toBe(false);
    expect(levels[0]!.error).toMatch(/model nope is not in the repository/);
    expect(await main(['--url', '127.0.0.1:1', '--requests', '1', '--out', join(out, 'down')])).toBe(2);
    expect(() => parseArgs(['--requests', '4', '--duration', '10'])).toThrow(/--requests or --duration, not both/);
    expect(() => parseArgs(['--slo', 'ttft=3'])).toThrow(/ttft_ms/);
    expect(() => parseArgs(['--compare', 'a.json'])).toThrow(/two results.json/);
    expect(parseArgs(['--no-ignore-eos']).ignoreEos).toBe(false);
    expect(requestsPerLevel({}, 1)).toBe(8);
    expect(requestsPerLevel({}, 16)).toBe(64);
  });

  it('--compare prints two runs side by side', async () => {
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof process.stdout.write;
    let compared: number;
    try {
      compared = await main(['--compare', join(out, 'results.json'), join(out, 'results.json')]);
    } finally {
      process.stdout.write = write;
    }
    expect(compared).toBe(0);
    expect(lines.join('')).toMatch(/tiny c=2\s+output tok\/s\s+[\d.]+\s+[\d.]+\s+1\.000x/);
    expect(await main(['--compare', join(out, 'results.json'), join(out, 'nothing.json')])).toBe(2);
  });
});
