// What the benchmark writes: the terminal table, CSV files of every request and of the
// summaries, and the side-by-side comparison of two runs (--compare).
import type { LevelSummary, RequestRecord } from './load.js';
import { summaryStatistics, type Summary } from './stats.js';

/** results.json's schema; bumped when a field changes meaning or moves. */
export const resultsSchemaVersion = 2;

/** One level of one model, as results.json stores it. */
export interface LevelResult {
  model: string;
  concurrency: number;
  stream: boolean;
  ok: boolean;
  error?: string;
  requests: RequestRecord[];
  summary?: LevelSummary;
}

export interface Results {
  schemaVersion: number;
  benchmark: string;
  startedAt: string;
  options: Record<string, unknown>;
  levels: LevelResult[];
  [key: string]: unknown;
}

const n = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined ? '-' : v.toFixed(digits));

/** The terminal table: one row per level, the numbers an engineer reads first (every percentile is in the CSV). */
export function formatTable(levels: readonly LevelResult[]): string {
  const rows: string[][] = [
    ['model', 'conc', 'ok/n', 'out tok/s', 'req/s', 'tok/s/req', 'seed tok/s', 'TTFT ms p50', 'p99', 'ITL ms p50', 'p99', 'e2e ms mean', 'std', 'p50', 'p99', 'ISL', 'OSL', 'goodput'],
  ];
  for (const l of levels) {
    const s = l.summary;
    const streamed = (x: string): string => (l.stream ? x : '-');
    rows.push([
      l.model,
      String(l.concurrency),
      s ? `${s.completed}/${s.measured}` : '0/0',
      n(s?.outputTokenThroughput),
      n(s?.requestThroughput, 3),
      n(s?.tokensPerSecondPerRequest.mean),
      n(s?.seedTokensPerSecond),
      streamed(n(s?.timeToFirstTokenMs.p50)),
      streamed(n(s?.timeToFirstTokenMs.p99)),
      streamed(n(s?.interTokenLatencyMs.p50, 2)),
      streamed(n(s?.interTokenLatencyMs.p99, 2)),
      n(s?.requestLatencyMs.mean, 0),
      n(s?.requestLatencyMs.std, 0),
      n(s?.requestLatencyMs.p50, 0),
      n(s?.requestLatencyMs.p99, 0),
      n(s?.inputSequenceLength.mean, 0),
      n(s?.outputSequenceLength.mean, 0),
      s?.goodput === null || s?.goodput === undefined ? '-' : `${s.goodput.toFixed(3)} (${(100 * s.sloAttainment!).toFixed(0)}%)`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

/** One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
export function csvField(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(4)) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const csv = (rows: readonly (readonly (string | number | boolean | null | undefined)[])[]): string => `${rows.map((r) => r.map(csvField).join(',')).join('\r\n')}\r\n`;

export const requestCsvColumns = [
  'model', 'concurrency', 'phase', 'index', 'ok', 'error', 'start_ms', 'end_ms', 'ttft_ms', 'itl_ms', 'e2e_ms',
  'input_tokens', 'input_token_source', 'output_tokens', 'output_token_source', 'output_tokens_per_s', 'seed_tokens', 'responses', 'finish_reason',
] as const;

/** Every request of every level, warm-up and cool-down included (the phase column says which were measured). */
export function requestsCsv(levels: readonly LevelResult[]): string {
  const rows: (string | number | boolean | null | undefined)[][] = [[...requestCsvColumns]];
  for (const l of levels) {
    for (const r of l.requests) {
      rows.push([l.model, l.concurrency, r.phase, r.index, r.ok, r.error, r.startMs, r.endMs, r.ttftMs, r.itlMs, r.latencyMs, r.inputTokens, r.inputTokenSource, r.outputTokens, r.outputTokenSource, r.tokensPerSecond, r.seedTokens, r.responses, r.finishReason]);
    }
  }
  return csv(rows);
}

const summaryMetrics = [
  ['ttft_ms', 'timeToFirstTokenMs'],
  ['itl_ms', 'interTokenLatencyMs'],
  ['e2e_ms', 'requestLatencyMs'],
  ['input_tokens', 'inputSequenceLength'],
  ['output_tokens', 'outputSequenceLength'],
  ['output_tokens_per_s_per_request', 'tokensPerSecondPerRequest'],
] as const satisfies readonly (readonly [string, keyof LevelSummary])[];

export const summaryCsvColumns = [
  'model', 'concurrency', 'stream', 'ok', 'window_s', 'measured', 'completed', 'failed',
  'output_token_throughput_tok_s', 'request_throughput_req_s', 'goodput_req_s', 'slo_attainment', 'seed_tok_s',
  ...summaryMetrics.flatMap(([name]) => summaryStatistics.map((stat) => `${name}_${stat}`)),
];

/** One row per level: throughput, goodput and every statistic of every latency and length. */
export function summaryCsv(levels: readonly LevelResult[]): string {
  const rows: (string | number | boolean | null | undefined)[][] = [summaryCsvColumns];
  for (const l of levels) {
    const s = l.summary;
    rows.push([
      l.model, l.concurrency, l.stream, l.ok, s?.windowSeconds, s?.measured, s?.completed, s?.failed,
      s?.outputTokenThroughput, s?.requestThroughput, s?.goodput, s?.sloAttainment, s?.seedTokensPerSecond,
      ...summaryMetrics.flatMap(([, key]) => summaryStatistics.map((stat) => (s ? (s[key] as Summary)[stat] : null))),
    ]);
  }
  return csv(rows);
}

/** The numbers --compare sets side by side, and whether more is better. */
const comparedMetrics: readonly { label: string; higherIsBetter: boolean; get: (s: LevelSummary) => number | null }[] = [
  { label: 'output tok/s', higherIsBetter: true, get: (s) => s.outputTokenThroughput },
  { label: 'requests/s', higherIsBetter: true, get: (s) => s.requestThroughput },
  { label: 'tok/s per request (mean)', higherIsBetter: true, get: (s) => s.tokensPerSecondPerRequest.mean },
  { label: 'seed tok/s', higherIsBetter: true, get: (s) => s.seedTokensPerSecond },
  { label: 'TTFT ms p50', higherIsBetter: false, get: (s) => s.timeToFirstTokenMs.p50 },
  { label: 'TTFT ms p99', higherIsBetter: false, get: (s) => s.timeToFirstTokenMs.p99 },
  { label: 'ITL ms p50', higherIsBetter: false, get: (s) => s.interTokenLatencyMs.p50 },
  { label: 'ITL ms p99', higherIsBetter: false, get: (s) => s.interTokenLatencyMs.p99 },
  { label: 'e2e ms p50', higherIsBetter: false, get: (s) => s.requestLatencyMs.p50 },
  { label: 'e2e ms p99', higherIsBetter: false, get: (s) => s.requestLatencyMs.p99 },
  { label: 'goodput req/s', higherIsBetter: true, get: (s) => s.goodput },
];

/** Checks that a parsed file is a results.json this bench can read; names the file and the fix otherwise. */
export function checkResults(data: unknown, file: string): Results {
  const r = data as Partial<Results> | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.levels)) {
    const old = r && typeof r === 'object' && Array.isArray((r as { setups?: unknown }).setups);
    throw new Error(`${file} is not a results.json of this bench${old ? ' (it was written by an older version, schema 1; re-run the bench to compare)' : ''}`);
  }
  if (r.schemaVersion !== resultsSchemaVersion) throw new Error(`${file} has schema version ${String(r.schemaVersion)}; this bench reads version ${resultsSchemaVersion}: re-run the bench to compare`);
  return r as Results;
}

/**
 * Two runs side by side: for each model and concurrency level both ran, each metric from A and
 * B and the ratio B / A (for latencies, < 1 is better; the last column says which run wins).
 */
export function compareResults(a: Results, b: Results, names: readonly [string, string] = ['A', 'B']): string {
  const key = (l: LevelResult): string => `${l.model} c=${l.concurrency}`;
  const inB = new Map(b.levels.map((l) => [key(l), l]));
  const rows: string[][] = [['level', 'metric', names[0], names[1], `${names[1]}/${names[0]}`, 'better']];
  const onlyOne: string[] = [];
  for (const la of a.levels) {
    const lb = inB.get(key(la));
    inB.delete(key(la));
    if (!lb) { onlyOne.push(`${key(la)} (only in ${names[0]})`); continue; }
    if (!la.summary || !lb.summary) { onlyOne.push(`${key(la)} (failed in ${la.summary ? names[1] : names[0]})`); continue; }
    for (const m of comparedMetrics) {
      const va = m.get(la.summary);
      const vb = m.get(lb.summary);
      if (va === null && vb === null) continue;
      const ratio = va !== null && vb !== null && va !== 0 ? vb / va : null;
      const better = ratio === null || ratio === 1 ? '' : (ratio > 1) === m.higherIsBetter ? names[1] : names[0];
      rows.push([key(la), m.label, n(va, 2), n(vb, 2), ratio === null ? '-' : `${ratio.toFixed(3)}x`, better]);
    }
  }
  for (const k of inB.keys()) onlyOne.push(`${k} (only in ${names[1]})`);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  if (onlyOne.length) lines.push('', `not compared: ${onlyOne.join(', ')}`);
  return lines.join('\n');
}
