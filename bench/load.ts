// One load level of the benchmark in steady state, and the serving metrics over its window.
//
// A level keeps exactly N requests in flight: each of N clients sends a request as soon as its
// previous one ends. Requests started before every client has finished its warm-up are warm-up;
// the measurement window opens when the last client finishes warming up. Requests started in the
// window are measured, until --requests of them have started or --duration has passed; then the
// clients keep sending (cool-down) so that the load stays N until every measured request has
// ended, and only then are the cool-down requests cancelled. So no measured request sees the
// ramp-up or the ramp-down. Throughput counts the tokens that arrived inside the window, from
// any request, over the window's length (genai-perf's output token throughput); latencies are
// those of the measured requests. The runner knows nothing of Triton: it calls a Send function
// and reads time from a Clock, so tests drive it with a scripted server on a virtual clock.
import { performance } from 'node:perf_hooks';
import { summarize, type Summary } from './stats.js';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
}

export const realClock: Clock = { now: () => performance.now() };

export interface BenchPrompt {
  text: string;
  /** Prompt tokens as the bench counted them (synthetic prompts of --input-tokens); the server's count wins when it reports one. */
  tokens?: number | undefined;
}

/** One response of a streamed request (a non-streamed request has one, at its end). */
export interface Chunk {
  /** Tokens the response carried. */
  tokens: number;
}

export interface Completion {
  text: string;
  outputTokens: number;
  /** Where outputTokens came from: the server's output_ids, or the text re-encoded. */
  outputTokenSource: 'output_ids' | 'retokenized';
  /** Prompt tokens as the server counted them (this project's backend reports them), when it does. */
  inputTokens?: number | undefined;
  /** The reference study's count: Llama-2 tokens (BOS included) of the prompt-echoed response. */
  seedTokens?: number | undefined;
  finishReason?: string | undefined;
}

export interface Call {
  chunks: AsyncIterable<Chunk>;
  result: Promise<Completion>;
}

/** Starts one request; aborting the signal cancels it. */
export type Send = (prompt: BenchPrompt, signal: AbortSignal) => Call;

export type Phase = 'warmup' | 'measured' | 'cooldown';

export interface RequestRecord {
  phase: Phase;
  /** Order in which the level started its requests (0, 1, ...). */
  index: number;
  prompt: string;
  ok: boolean;
  error?: string;
  /** Send time, ms after the measurement window opened (negative for warm-up requests). */
  startMs: number;
  /** When the request ended (final response, error or cancellation), on the same scale. */
  endMs: number;
  /** Send -> final response (ms): genai-perf's request latency, llmperf's end-to-end latency. */
  latencyMs?: number;
  /** Send -> first response with tokens (ms); equals latencyMs for a non-streamed request. */
  ttftMs?: number;
  /** Mean gap between tokens after the first response: (last - first response) / (tokens - tokens of the first response), ms; null when not streamed or one response. */
  itlMs?: number | null;
  /** Input sequence length: the server's count, else the bench's. */
  inputTokens?: number;
  inputTokenSource?: 'server' | 'bench';
  /** Output sequence length. */
  outputTokens?: number;
  outputTokenSource?: 'output_ids' | 'retokenized';
  /** outputTokens / latency (tokens/s): the reference study's per-request rate. */
  tokensPerSecond?: number;
  seedTokens?: number;
  responses?: number;
  finishReason?: string;
  text?: string;
}

/** Service-level objectives for goodput: a measured request is good when it meets every one given. */
export interface Slo {
  ttftMs?: number;
  itlMs?: number;
  e2eMs?: number;
}

export interface LevelPlan {
  concurrency: number;
  /** Warm-up requests per client before the window opens. */
  warmup: number;
  /** Measured requests (ignored when durationMs is set). */
  requests: number;
  /** Measure for this long instead of a number of requests. */
  durationMs?: number | undefined;
  prompts: readonly BenchPrompt[];
  /** The level gives up after this many failures in a row (default 10). */
  maxConsecutiveFailures?: number;
}

export interface LevelSummary {
  /** Length of the measurement window (s). */
  windowSeconds: number;
  measured: number;
  completed: number;
  failed: number;
  /** Tokens that arrived in the window, from any request / window length. */
  outputTokenThroughput: number | null;
  /** Requests that ended successfully in the window / window length. */
  requestThroughput: number | null;
  /** requestThroughput x the share of measured requests that met every SLO (null without --slo). */
  goodput: number | null;
  /** Share of completed measured requests meeting every SLO (null without --slo). */
  sloAttainment: number | null;
  timeToFirstTokenMs: Summary;
  interTokenLatencyMs: Summary;
  requestLatencyMs: Summary;
  inputSequenceLength: Summary;
  outputSequenceLength: Summary;
  /** Per-request output tokens / latency. */
  tokensPerSecondPerRequest: Summary;
  /** The reference study's metric: mean seed tokens / mean request latency (s). */
  seedTokensPerSecond: number | null;
}

export interface LevelRun {
  /** Length of the measurement window (ms); record and arrival times are relative to its start. */
  windowMs: number;
  records: RequestRecord[];
  /** Arrival times (ms from the window's start) and token counts of every response with tokens, from every request. */
  arrivals: { time: number; tokens: number }[];
  /** Set when the level stopped early. */
  error?: string;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs one level; onRecord sees each request as it ends. */
export async function runLevel(send: Send, plan: LevelPlan, clock: Clock, onRecord?: (record: RequestRecord) => void): Promise<LevelRun> {
  if (!Number.isInteger(plan.concurrency) || plan.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${plan.concurrency}`);
  if (plan.prompts.length === 0) throw new RangeError('no prompts');
  const byDuration = plan.durationMs !== undefined;
  const maxFailures = plan.maxConsecutiveFailures ?? 10;
  const records: RequestRecord[] = [];
  const arrivals: LevelRun['arrivals'] = [];
  const stopCooldown = new AbortController();
  let windowStart: number | undefined = plan.warmup === 0 ? clock.now() : undefined;
  let windowEnd: number | undefined;
  let warmClients = plan.warmup === 0 ? plan.concurrency : 0;
  let measuredStarted = 0; // counted only when measuring a number of requests
  let measuredOpen = 0;
  let measuringClosed = false;
  let consecutiveFailures = 0;
  let failure: string | undefined;
  let started = 0;

  const finished = (): boolean => failure !== undefined || windowEnd !== undefined;
  const maybeFinish = (now: number): void => {
    if (windowStart === undefined || windowEnd !== undefined || measuredOpen > 0) return;
    if (byDuration ? now >= windowStart + plan.durationMs! : measuringClosed) {
      windowEnd = byDuration ? windowStart + plan.durationMs! : now;
      stopCooldown.abort(new Error('the level ended'));
    }
  };
  const phaseAt = (now: number): Phase => {
    if (windowStart === undefined) return 'warmup';
    if (byDuration && now >= windowStart + plan.durationMs!) measuringClosed = true;
    return measuringClosed ? 'cooldown' : 'measured';
  };

  const one = async (phase: Phase, prompt: BenchPrompt, index: number): Promise<RequestRecord> => {
    const sent = clock.now();
    const record: RequestRecord = { phase, index, prompt: prompt.text, ok: false, startMs: sent, endMs: sent };
    const times: number[] = [];
    let firstTokens = 0;
    try {
      const call = send(prompt, stopCooldown.signal);
      call.result.catch(() => undefined);
      for await (const chunk of call.chunks) {
        const now = clock.now();
        if (chunk.tokens <= 0) continue;
        if (times.length === 0) firstTokens = chunk.tokens;
        times.push(now);
        arrivals.push({ time: now, tokens: chunk.tokens });
      }
      const done = await call.result;
      const end = clock.now();
      if (times.length === 0) {
        // A non-streamed request: all its tokens arrive with the final response.
        firstTokens = done.outputTokens;
        times.push(end);
        arrivals.push({ time: end, tokens: done.outputTokens });
      }
      record.ok = true;
      record.latencyMs = end - sent;
      record.ttftMs = times[0]! - sent;
      const afterFirst = done.outputTokens - firstTokens;
      record.itlMs = times.length > 1 && afterFirst > 0 ? (times[times.length - 1]! - times[0]!) / afterFirst : null;
      if (done.inputTokens !== undefined) {
        record.inputTokens = done.inputTokens;
        record.inputTokenSource = 'server';
      } else if (prompt.tokens !== undefined) {
        record.inputTokens = prompt.tokens;
        record.inputTokenSource = 'bench';
      }
      record.outputTokens = done.outputTokens;
      record.outputTokenSource = done.outputTokenSource;
      record.tokensPerSecond = record.latencyMs > 0 ? done.outputTokens / (record.latencyMs / 1000) : 0;
      if (done.seedTokens !== undefined) record.seedTokens = done.seedTokens;
      record.responses = times.length;
      if (done.finishReason !== undefined) record.finishReason = done.finishReason;
      record.text = done.text;
    } catch (e) {
      record.error = phase !== 'measured' && stopCooldown.signal.aborted ? 'cancelled: the level ended' : errorText(e);
    }
    record.endMs = clock.now();
    return record;
  };

  const client = async (): Promise<void> => {
    let ownWarmups = 0;
    while (!finished()) {
      const phase = phaseAt(clock.now());
      const index = started++;
      if (phase === 'measured') {
        measuredOpen++;
        if (!byDuration && ++measuredStarted >= plan.requests) measuringClosed = true;
      }
      const record = await one(phase, plan.prompts[index % plan.prompts.length]!, index);
      if (phase === 'measured') measuredOpen--;
      records.push(record);
      if (record.ok) consecutiveFailures = 0;
      else if (stopCooldown.signal.aborted) {
        // Cancelled because the level ended: not a failure.
      } else if (++consecutiveFailures >= maxFailures) {
        failure = `stopped after ${consecutiveFailures} failed requests in a row; the last: ${record.error}`;
        stopCooldown.abort(new Error(failure));
      }
      if (phase === 'warmup' && ++ownWarmups === plan.warmup && ++warmClients === plan.concurrency) windowStart = clock.now();
      onRecord?.(record);
      maybeFinish(clock.now());
    }
  };

  await Promise.all(Array.from({ length: plan.concurrency }, client));
  const start = windowStart ?? clock.now();
  const end = windowEnd ?? clock.now();
  for (const r of records) {
    r.startMs -= start;
    r.endMs -= start;
  }
  for (const a of arrivals) a.time -= start;
  records.sort((a, b) => a.index - b.index);
  const run: LevelRun = { windowMs: end - start, records, arrivals };
  if (failure !== undefined) run.error = failure;
  return run;
}

/** True when a request meets every objective given. */
export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  if (!r.ok) return false;
  if (slo.ttftMs !== undefined && !(r.ttftMs! <= slo.ttftMs)) return false;
  if (slo.itlMs !== undefined && r.itlMs !== null && r.itlMs !== undefined && !(r.itlMs <= slo.itlMs)) return false;
  if (slo.e2eMs !== undefined && !(r.latencyMs! <= slo.e2eMs)) return false;
  return true;
}

/** The serving metrics of a level, from its records and window. */
export function summarizeLevel(run: Pick<LevelRun, 'windowMs' | 'records' | 'arrivals'>, slo?: Slo): LevelSummary {
  const measured = run.records.filter((r) => r.phase === 'measured');
  const ok = measured.filter((r) => r.ok);
  const windowMs = run.windowMs;
  const windowSeconds = windowMs / 1000;
  const pick = (f: (r: RequestRecord) => number | null | undefined): number[] => ok.map(f).filter((v): v is number => typeof v === 'number');
  let tokensInWindow = 0;
  // The window is (0, windowMs]: what arrived at the instant it opened belongs to the warm-up.
  for (const a of run.arrivals) if (a.time > 0 && a.time <= windowMs) tokensInWindow += a.tokens;
  // Requests of any phase that ended inside the window.
  const endedInWindow = run.records.filter((r) => r.ok && r.endMs > 0 && r.endMs <= windowMs).length;
  const requestLatency = summarize(pick((r) => r.latencyMs));
  const seed = summarize(pick((r) => r.seedTokens));
  const requestThroughput = windowMs > 0 ? endedInWindow / windowSeconds : null;
  const good = slo ? ok.filter((r) => meetsSlo(r, slo)).length : 0;
  const sloAttainment = slo && ok.length ? good / ok.length : null;
  return {
    windowSeconds,
    measured: measured.length,
    completed: ok.length,
    failed: measured.length - ok.length,
    outputTokenThroughput: windowMs > 0 ? tokensInWindow / windowSeconds : null,
    requestThroughput,
    goodput: sloAttainment !== null && requestThroughput !== null ? requestThroughput * sloAttainment : null,
    sloAttainment,
    timeToFirstTokenMs: summarize(pick((r) => r.ttftMs)),
    interTokenLatencyMs: summarize(pick((r) => r.itlMs)),
    requestLatencyMs: requestLatency,
    inputSequenceLength: summarize(pick((r) => r.inputTokens)),
    outputSequenceLength: summarize(pick((r) => r.outputTokens)),
    tokensPerSecondPerRequest: summarize(pick((r) => r.tokensPerSecond)),
    seedTokensPerSecond: seed.mean !== null && requestLatency.mean ? seed.mean / (requestLatency.mean / 1000) : null,
  };
}

/** Parses --slo "ttft_ms=200,itl_ms=20,e2e_ms=5000". */
export function parseSlo(text: string): Slo {
  const slo: Slo = {};
  const keys: Record<string, keyof Slo> = { ttft_ms: 'ttftMs', itl_ms: 'itlMs', e2e_ms: 'e2eMs' };
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [key, value, ...rest] = part.split('=');
    const field = keys[key?.trim() ?? ''];
    const n = Number(value);
    if (!field || rest.length || value === undefined || value.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw new RangeError(`--slo takes key=milliseconds pairs with keys ${Object.keys(keys).join(', ')} and positive values, got "${part}"`);
    }
    slo[field] = n;
  }
  if (Object.keys(slo).length === 0) throw new RangeError('--slo needs at least one of ttft_ms=, itl_ms=, e2e_ms=');
  return slo;
}
