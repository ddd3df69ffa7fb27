// Runs bench/run.ts end to end on the tiny synthetic model and checks its JSON and SVG output.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type RequestRecord, type SetupResult } from '../../bench/run.js';
import { percentile, summarize } from '../../bench/stats.js';
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

const numbers = (records: readonly RequestRecord[], key: keyof RequestRecord): number[] =>
  records.filter((r) => r.ok).map((r) => r[key]).filter((v): v is number => typeof v === 'number');

describe('bench/run.ts', () => {
  const repo = new TempRepository();
  const out = mkdtempSync(join(tmpdir(), 'llm-bench-'));
  let code: number;
  let results: { setups: SetupResult[]; environment: Record<string, unknown>; reference: unknown; method: { seedTokenizer: string } };

  beforeAll(async () => {
    repo.add({ name: 'tiny', checkpointDir: join(buildDir, 'models', 'synth-tiny-float16'), decoupled: true });
    code = await main(['--repository', repo.dir, '--models', 'tiny', '--requests', '2', '--max-tokens', '8', '--concurrency', '1,2', '--out', out]);
    results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  });

  afterAll(() => {
    repo.remove();
    rmSync(out, { recursive: true, force: true });
  });

  it('completes every request with exactly max-tokens generated tokens', () => {
    expect(code).toBe(0);
    expect(results.setups.map((s) => [s.model, s.concurrency, s.ok])).toEqual([['tiny', 1, true], ['tiny', 2, true]]);
    for (const setup of results.setups) {
      expect(setup.requests).toHaveLength(2);
      for (const r of setup.requests) {
        expect(r.ok).toBe(true);
        expect(r.generatedTokens).toBe(8);
        expect(r.tokenSource).toBe('output_ids');
        expect(r.seedTokens).toBeGreaterThan(8);
        expect(r.chunks).toBeGreaterThan(0);
      }
    }
  });

  it('summaries match the per-request records', () => {
    for (const setup of results.setups) {
      const s = setup.summary!;
      expect(s.completed).toBe(2);
      expect(s.failed).toBe(0);
      for (const [key, field] of [['latencyMs', 'latencyMs'], ['tokensPerSecond', 'tokensPerSecond'], ['ttftMs', 'ttftMs'], ['itlMs', 'itlMs']] as const) {
        const values = numbers(setup.requests, field);
        expect(values).toHaveLength(2);
        const sum = s[key];
        expect(sum.count).toBe(2);
        expect(sum.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 9);
        const sorted = [...values].sort((a, b) => a - b);
        expect(sum.min).toBe(sorted[0]);
        expect(sum.max).toBe(sorted[1]);
        expect(sum.p50).toBeCloseTo((sorted[0]! + sorted[1]!) / 2, 9);
        expect(sum.p90).toBeCloseTo(sorted[0]! + 0.9 * (sorted[1]! - sorted[0]!), 9);
      }
      for (const r of setup.requests) expect(r.tokensPerSecond).toBeCloseTo(r.generatedTokens! / (r.latencyMs! / 1000), 9);
      const meanSeed = numbers(setup.requests, 'seedTokens').reduce((a, b) => a + b, 0) / 2;
      expect(s.seedTokensPerSecond).toBeCloseTo(meanSeed / (s.latencyMs.mean! / 1000), 9);
      expect(s.aggregateTokensPerSecond).toBeCloseTo(16 / (setup.wallMs! / 1000), 9);
    }
    expect(results.method.seedTokenizer).toMatch(/Llama-2/);
    expect(results.environment).toMatchObject({ cores: expect.any(Number), node: process.version });
    expect(results.environment.serverMetadata).toBeTruthy();
    expect(Object.keys(results.environment.modelConfigs as object)).toEqual(['tiny']);
  });

  it('writes well-formed SVG charts with one bar per setup plus the reference bars', () => {
    const elements = parseXml(readFileSync(join(out, 'tokens_per_second.svg'), 'utf8'));
    expect(elements[0]!.name).toBe('svg');
    expect(elements[0]!.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    const bars = elements.filter((e) => e.name === 'rect' && e.attrs.class?.startsWith('bar '));
    expect(bars.filter((b) => b.attrs.class === 'bar setup').map((b) => b.attrs['data-label'])).toEqual(['tiny c=1', 'tiny c=2']);
    expect(bars.filter((b) => b.attrs.class === 'bar reference')).toHaveLength(3);
    const lines = parseXml(readFileSync(join(out, 'latency_vs_throughput.svg'), 'utf8'));
    expect(lines.filter((e) => e.name === 'circle')).toHaveLength(2);
  });

  it('the XML checker rejects broken markup', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow();
    expect(() => parseXml('<svg/><svg/>')).toThrow();
  });

  it('reports a missing model and an unreachable server clearly', async () => {
    const missing = await main(['--repository', repo.dir, '--models', 'nope', '--requests', '1', '--max-tokens', '2', '--warmup', '0', '--out', join(out, 'missing')]);
    expect(missing).toBe(1);
    const setups = (JSON.parse(readFileSync(join(out, 'missing', 'results.json'), 'utf8')) as { setups: SetupResult[] }).setups;
    expect(setups[0]!.ok).toBe(false);
    expect(setups[0]!.error).toMatch(/model nope is not in the repository/);
    expect(await main(['--url', '127.0.0.1:1', '--requests', '1', '--out', join(out, 'down')])).toBe(2);
  });
});

describe('bench/stats.ts', () => {
  it('interpolates percentiles linearly', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10], 90)).toBe(10);
    expect(percentile([], 50)).toBeNull();
    expect(summarize([3, 1, 2])).toMatchObject({ count: 3, mean: 2, p50: 2, min: 1, max: 3 });
    expect(summarize([3, 1, 2]).p90).toBeCloseTo(2.8, 12);
  });
});
