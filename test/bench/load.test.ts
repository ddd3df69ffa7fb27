// The load runner and the serving metrics against a scripted server on a virtual clock: every
// time is exact, so TTFT, ITL, percentiles, throughput and the steady-state accounting are
// checked by arithmetic, never by timing.
import { describe, expect, it } from 'vitest';
import { meetsSlo, parseSlo, runLevel, summarizeLevel, type Chunk, type Clock, type Completion, type LevelRun, type Send } from '../../bench/load.js';
import { checkResults, compareResults, csvField, formatTable, requestCsvColumns, requestsCsv, resultsSchemaVersion, summaryCsv, summaryCsvColumns, type LevelResult, type Results } from '../../bench/report.js';
import { percentile, summarize } from '../../bench/stats.js';

/** Time stands still until every promise has settled; then it jumps to the next timer. */
class VirtualClock implements Clock {
  private time = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  now(): number {
    return this.time;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Error('cancelled'));
      const timer = { at: this.time + ms, seq: this.seq++, fire: () => { signal?.removeEventListener('abort', onAbort); resolve(); } };
      const onAbort = (): void => {
        this.timers = this.timers.filter((t) => t !== timer);
        reject(new Error('cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  }
  async run<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    work.then(() => { settled = true; }, () => { settled = true; });
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (settled) return work;
      if (this.timers.length === 0) throw new Error('deadlock: nothing scheduled and the level has not ended');
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift()!;
      this.time = next.at;
      next.fire();
    }
  }
}

interface Script {
  ttft: number;
  itl: number;
  tokens: number;
  inputTokens?: number;
  fail?: string;
  /** Tokens per response (default 1). */
  perResponse?: number;
}

/** A server whose every request follows script(n) for the n-th request it receives. */
function scriptedServer(clock: VirtualClock, script: (n: number) => Script): Send & { received: number } {
  const send: Send & { received: number } = Object.assign((_prompt: unknown, signal: AbortSignal) => {
    const s = script(send.received++);
    let resolve!: (c: Completion) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<Completion>((res, rej) => { resolve = res; reject = rej; });
    const chunks = (async function* (): AsyncGenerator<Chunk> {
      try {
        await clock.sleep(s.ttft, signal);
        if (s.fail) throw new Error(s.fail);
        const per = s.perResponse ?? 1;
        let sent = Math.min(per, s.tokens);
        yield { tokens: sent };
        while (sent < s.tokens) {
          await clock.sleep(s.itl, signal);
          const n = Math.min(per, s.tokens - sent);
          sent += n;
          yield { tokens: n };
        }
        resolve({ text: 'x'.repeat(s.tokens), outputTokens: s.tokens, outputTokenSource: 'output_ids', inputTokens: s.inputTokens, seedTokens: s.tokens + 5 });
      } catch (e) {
        reject(e);
        throw e;
      }
    })();
    return { chunks, result };
  }, { received: 0 });
  return send;
}

const prompts = [{ text: 'a prompt', tokens: 3 }];

/** How many requests were in flight at time t (ends are exclusive). */
const inFlightAt = (run: LevelRun, t: number): number => run.records.filter((r) => r.startMs <= t && t < r.endMs).length;

describe('runLevel on a scripted server', () => {
  it('concurrency 1 is the study\'s method: one warm-up, then the timed requests one at a time', async () => {
    const clock = new VirtualClock();
    const server = scriptedServer(clock, () => ({ ttft: 100, itl: 10, tokens: 11, inputTokens: 7 }));
    const run = await clock.run(runLevel(server, { concurrency: 1, warmup: 1, requests: 3, prompts }, clock));
    expect(run.records.map((r) => r.phase)).toEqual(['warmup', 'measured', 'measured', 'measured']);
    // Each request: 100 ms to the first token, 10 more tokens 10 ms apart = 200 ms.
    expect(run.windowMs).toBe(600);
    expect(run.records.map((r) => [r.startMs, r.endMs])).toEqual([[-200, 0], [0, 200], [200, 400], [400, 600]]);
    const s = summarizeLevel(run);
    expect(s).toMatchObject({ windowSeconds: 0.6, measured: 3, completed: 3, failed: 0 });
    expect(s.timeToFirstTokenMs).toMatchObject({ count: 3, mean: 100, std: 0, p50: 100, p99: 100 });
    expect(s.interTokenLatencyMs.mean).toBe(10);
    expect(s.requestLatencyMs.mean).toBe(200);
    // The warm-up's last token arrived as the window opened: it is not counted.
    expect(s.outputTokenThroughput).toBeCloseTo(33 / 0.6, 9);
    expect(s.requestThroughput).toBeCloseTo(3 / 0.6, 9);
    expect(s.tokensPerSecondPerRequest.mean).toBeCloseTo(11 / 0.2, 9);
    expect(s.seedTokensPerSecond).toBeCloseTo(16 / 0.2, 9);
    expect(s.inputSequenceLength).toMatchObject({ mean: 7, min: 7, max: 7 });
    expect(run.records.every((r) => r.inputTokenSource === 'server')).toBe(true);
    expect(s.goodput).toBeNull();
  });

  it('keeps exactly N requests in flight through the whole window, with uneven requests', async () => {
    const clock = new VirtualClock();
    // Requests of 3 to 17 tokens and first-token times of 20 to 80 ms, in a fixed pattern.
    const server = scriptedServer(clock, (n) => ({ ttft: 20 + 15 * (n % 5), itl: 4 + (n % 3), tokens: 3 + ((n * 7) % 15) }));
    const run = await clock.run(runLevel(server, { concurrency: 4, warmup: 2, requests: 12, prompts }, clock));
    const measured = run.records.filter((r) => r.phase === 'measured');
    expect(measured).toHaveLength(12);
    expect(run.records.filter((r) => r.phase === 'warmup').length).toBeGreaterThanOrEqual(8);
    // Measured requests start inside the window and end by its close, which is the last one's end.
    for (const r of measured) {
      expect(r.ok).toBe(true);
      expect(r.startMs).toBeGreaterThanOrEqual(0);
      expect(r.endMs).toBeLessThanOrEqual(run.windowMs);
    }
    expect(Math.max(...measured.map((r) => r.endMs))).toBe(run.windowMs);
    // Steady state: at every event inside the window, four requests are in flight.
    const events = run.records.flatMap((r) => [r.startMs, r.endMs]).filter((t) => t >= 0 && t < run.windowMs);
    for (const t of [0, ...events]) expect(inFlightAt(run, t)).toBe(4);
    // Cool-down requests kept the load and were cancelled when the window closed, not counted as failures.
    const cooldown = run.records.filter((r) => r.phase === 'cooldown');
    expect(cooldown.length).toBeGreaterThan(0);
    expect(cooldown.filter((r) => !r.ok).every((r) => r.endMs === run.windowMs && /cancelled: the level ended/.test(r.error!))).toBe(true);
    // Throughput: tokens that arrived in (0, window], recomputed from the script.
    let expected = 0;
    for (const r of run.records) {
      const script = { ttft: 20 + 15 * (r.index % 5), itl: 4 + (r.index % 3), tokens: 3 + ((r.index * 7) % 15) };
      for (let k = 0; k < script.tokens; ++k) {
        const t = r.startMs + script.ttft + k * script.itl;
        if (t > 0 && t <= run.windowMs && t <= r.endMs) expected++;
      }
    }
    const s = summarizeLevel(run);
    expect(s.outputTokenThroughput).toBeCloseTo(expected / (run.windowMs / 1000), 9);
    const endedInside = run.records.filter((r) => r.ok && r.endMs > 0 && r.endMs <= run.windowMs).length;
    expect(s.requestThroughput).toBeCloseTo(endedInside / (run.windowMs / 1000), 9);
    // Per-request numbers follow the script exactly.
    for (const r of measured) {
      const script = { ttft: 20 + 15 * (r.index % 5), itl: 4 + (r.index % 3), tokens: 3 + ((r.index * 7) % 15) };
      expect(r.ttftMs).toBe(script.ttft);
      expect(r.itlMs).toBe(script.itl);
      expect(r.latencyMs).toBe(script.ttft + (script.tokens - 1) * script.itl);
      expect(r.outputTokens).toBe(script.tokens);
    }
  });

  it('summarizes percentiles, spread and goodput of the measured requests', async () => {
    const clock = new VirtualClock();
    // Warm-up (request 0) is slow and must not count; measured TTFTs are 10, 20, 30, 40, 50 ms.
    const server = scriptedServer(clock, (n) => ({ ttft: n === 0 ? 1000 : 10 * n, itl: 5, tokens: 5 }));
    const run = await clock.run(runLevel(server, { concurrency: 1, warmup: 1, requests: 5, prompts }, clock));
    const s = summarizeLevel(run, { ttftMs: 35 });
    expect(s.timeToFirstTokenMs).toEqual({ count: 5, mean: 30, std: Math.sqrt(250), min: 10, p50: 30, p90: 46, p95: 48, p99: expect.closeTo(49.6, 9), max: 50 });
    expect(s.requestLatencyMs.p50).toBe(50);
    expect(s.sloAttainment).toBeCloseTo(0.6, 12);
    expect(s.goodput).toBeCloseTo(0.6 * s.requestThroughput!, 12);
    // Latencies are 30..70 ms: only the first two requests also finish within 45 ms.
    expect(summarizeLevel(run, { ttftMs: 35, e2eMs: 45 }).sloAttainment).toBeCloseTo(0.4, 12);
  });

  it('measures for exactly --duration, counting only what arrived inside the window', async () => {
    const clock = new VirtualClock();
    const server = scriptedServer(clock, () => ({ ttft: 30, itl: 10, tokens: 8 }));
    const run = await clock.run(runLevel(server, { concurrency: 2, warmup: 1, requests: 0, durationMs: 1000, prompts }, clock));
    expect(run.windowMs).toBe(1000);
    const measured = run.records.filter((r) => r.phase === 'measured');
    // Both clients warm up together (100 ms); the first to finish sends one more warm-up request
    // while the other finishes, so the window opens with it in flight: 10 + 9 measured requests.
    expect(measured).toHaveLength(19);
    expect(measured.every((r) => r.startMs >= 0 && r.startMs < 1000)).toBe(true);
    const s = summarizeLevel(run);
    expect(s.outputTokenThroughput).toBeCloseTo(160, 9);
    expect(s.requestThroughput).toBeCloseTo(20, 9);
  });

  it('treats a non-streamed request as one response: TTFT is the whole request, no ITL', async () => {
    const clock = new VirtualClock();
    const send: Send = () => ({
      chunks: (async function* (): AsyncGenerator<Chunk> {})(),
      result: clock.sleep(250).then(() => ({ text: 'abc', outputTokens: 12, outputTokenSource: 'retokenized' as const })),
    });
    const run = await clock.run(runLevel(send, { concurrency: 1, warmup: 0, requests: 2, prompts }, clock));
    const s = summarizeLevel(run);
    expect(run.records.map((r) => [r.phase, r.ttftMs, r.latencyMs, r.itlMs, r.inputTokens, r.inputTokenSource])).toEqual([
      ['measured', 250, 250, null, 3, 'bench'],
      ['measured', 250, 250, null, 3, 'bench'],
    ]);
    expect(s.outputTokenThroughput).toBeCloseTo(24 / 0.5, 9);
    expect(s.interTokenLatencyMs.count).toBe(0);
  });

  it('counts the tokens of multi-token responses in ITL', async () => {
    const clock = new VirtualClock();
    const server = scriptedServer(clock, () => ({ ttft: 40, itl: 12, tokens: 10, perResponse: 4 }));
    const run = await clock.run(runLevel(server, { concurrency: 1, warmup: 0, requests: 1, prompts }, clock));
    // Responses of 4, 4 and 2 tokens at 40, 52 and 64 ms: 24 ms over the 6 tokens after the first response.
    expect(run.records[0]).toMatchObject({ ttftMs: 40, latencyMs: 64, itlMs: 4, responses: 3 });
  });

  it('gives up after ten failures in a row, naming the last error', async () => {
    const clock = new VirtualClock();
    const server = scriptedServer(clock, () => ({ ttft: 5, itl: 1, tokens: 1, fail: 'model is not ready' }));
    const run = await clock.run(runLevel(server, { concurrency: 2, warmup: 1, requests: 50, prompts }, clock));
    expect(run.error).toMatch(/stopped after 10 failed requests in a row; the last: model is not ready/);
    expect(server.received).toBeLessThan(14);
    expect(summarizeLevel(run).completed).toBe(0);
  });
});

describe('--slo', () => {
  it('parses objectives and refuses bad ones by name', () => {
    expect(parseSlo('ttft_ms=200,itl_ms=20.5')).toEqual({ ttftMs: 200, itlMs: 20.5 });
    expect(parseSlo('e2e_ms=5000')).toEqual({ e2eMs: 5000 });
    expect(() => parseSlo('ttft=200')).toThrow(/keys ttft_ms, itl_ms, e2e_ms.*"ttft=200"/);
    expect(() => parseSlo('ttft_ms=-1')).toThrow(/positive/);
    expect(() => parseSlo('ttft_ms=')).toThrow(/"ttft_ms="/);
    expect(() => parseSlo('')).toThrow(/at least one/);
  });

  it('judges a request by every objective given', () => {
    const r = { phase: 'measured' as const, index: 0, prompt: '', ok: true, startMs: 0, endMs: 100, ttftMs: 30, itlMs: 5, latencyMs: 100 };
    expect(meetsSlo(r, { ttftMs: 30, itlMs: 5, e2eMs: 100 })).toBe(true);
    expect(meetsSlo(r, { itlMs: 4.9 })).toBe(false);
    expect(meetsSlo({ ...r, ok: false }, {})).toBe(false);
  });
});

/** Splits RFC 4180 CSV (quoted fields, doubled quotes, CRLF rows). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; ++i; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; ++i; } else field += c;
  }
  if (field !== '' || row.length) throw new Error('CSV does not end with CRLF');
  return rows;
}

async function sampleLevels(): Promise<LevelResult[]> {
  const levels: LevelResult[] = [];
  for (const concurrency of [1, 2]) {
    const clock = new VirtualClock();
    const server = scriptedServer(clock, (n) => ({ ttft: 20 + n, itl: 5 * concurrency, tokens: 6, inputTokens: 9 }));
    const run = await clock.run(runLevel(server, { concurrency, warmup: 1, requests: 4, prompts: [{ text: 'say "hi", then\nstop', tokens: 8 }] }, clock));
    levels.push({ model: 'm', concurrency, stream: true, ok: true, requests: run.records, summary: summarizeLevel(run, { ttftMs: 22 }) });
  }
  return levels;
}

describe('bench/report.ts', () => {
  it('quotes CSV fields that need it', () => {
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField('line\nbreak')).toBe('"line\nbreak"');
    expect(csvField(null)).toBe('');
    expect(csvField(3)).toBe('3');
    expect(csvField(0.1234567)).toBe('0.1235');
    expect(csvField(true)).toBe('true');
  });

  it('writes every request and every summary statistic as CSV columns', async () => {
    const levels = await sampleLevels();
    const requests = parseCsv(requestsCsv(levels));
    expect(requests[0]).toEqual([...requestCsvColumns]);
    expect(requests).toHaveLength(1 + levels.reduce((n, l) => n + l.requests.length, 0));
    const col = (name: string): number => requests[0]!.indexOf(name);
    const firstMeasured = requests.find((r) => r[col('phase')] === 'measured')!;
    const record = levels[0]!.requests.find((r) => r.phase === 'measured')!;
    expect(Number(firstMeasured[col('ttft_ms')])).toBeCloseTo(record.ttftMs!, 3);
    expect(firstMeasured[col('input_tokens')]).toBe('9');
    expect(requests.every((r) => r.length === requestCsvColumns.length)).toBe(true);

    const summary = parseCsv(summaryCsv(levels));
    expect(summary[0]).toEqual(summaryCsvColumns);
    for (const stat of ['mean', 'std', 'min', 'p50', 'p90', 'p95', 'p99', 'max']) {
      for (const metric of ['ttft_ms', 'itl_ms', 'e2e_ms', 'input_tokens', 'output_tokens']) expect(summary[0]).toContain(`${metric}_${stat}`);
    }
    expect(summary.slice(1).map((r) => r.slice(0, 2))).toEqual([['m', '1'], ['m', '2']]);
    const ttftP99 = summary[0]!.indexOf('ttft_ms_p99');
    expect(Number(summary[1]![ttftP99])).toBeCloseTo(levels[0]!.summary!.timeToFirstTokenMs.p99!, 3);
    expect(Number(summary[2]![summary[0]!.indexOf('slo_attainment')])).toBeCloseTo(levels[1]!.summary!.sloAttainment!, 3);
  });

  it('prints a table with one row per level', async () => {
    const table = formatTable(await sampleLevels()).split('\n');
    expect(table).toHaveLength(4);
    expect(table[0]).toMatch(/out tok\/s.*req\/s.*TTFT ms p50.*p99.*ITL ms p50.*goodput/);
    expect(table[2]).toMatch(/^m\s+1\s+4\/4/);
  });

  it('compares two runs level by level with ratios and says which is better', async () => {
    const levels = await sampleLevels();
    const a: Results = { schemaVersion: resultsSchemaVersion, benchmark: 'x', startedAt: '', options: {}, levels };
    const faster = levels.map((l) => ({ ...l, summary: { ...l.summary!, outputTokenThroughput: l.summary!.outputTokenThroughput! * 2, timeToFirstTokenMs: { ...l.summary!.timeToFirstTokenMs, p50: l.summary!.timeToFirstTokenMs.p50! / 2 } } }));
    const b: Results = { ...a, levels: [...faster, { model: 'other', concurrency: 1, stream: true, ok: false, requests: [] }] };
    const text = compareResults(checkResults(a, 'a.json'), checkResults(b, 'b.json'));
    expect(text).toMatch(/m c=1\s+output tok\/s\s+[\d.]+\s+[\d.]+\s+2\.000x\s+B/);
    expect(text).toMatch(/m c=2\s+TTFT ms p50\s+[\d.]+\s+[\d.]+\s+0\.500x\s+B/);
    expect(text).toMatch(/m c=1\s+ITL ms p50\s+[\d.]+\s+[\d.]+\s+1\.000x\s*$/m);
    expect(text).toMatch(/not compared: other c=1 \(only in B\)/);
    expect(() => checkResults({ setups: [] }, 'old.json')).toThrow(/old\.json .*older version, schema 1; re-run/);
    expect(() => checkResults({ ...a, schemaVersion: 99 }, 'new.json')).toThrow(/new\.json has schema version 99/);
    expect(() => checkResults('nope', 'x.json')).toThrow(/x\.json is not a results\.json/);
  });
});

describe('bench/stats.ts', () => {
  it('interpolates percentiles linearly and gives the sample standard deviation', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10], 90)).toBe(10);
    expect(percentile([], 50)).toBeNull();
    expect(summarize([3, 1, 2])).toMatchObject({ count: 3, mean: 2, std: 1, p50: 2, min: 1, max: 3 });
    expect(summarize([3, 1, 2]).p90).toBeCloseTo(2.8, 12);
    expect(summarize([3, 1, 2]).p99).toBeCloseTo(2.98, 12);
    expect(summarize([7])).toMatchObject({ std: 0, p99: 7 });
    expect(summarize([])).toMatchObject({ count: 0, mean: null, std: null, p95: null });
  });
});
