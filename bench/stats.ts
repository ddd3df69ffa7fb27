// Pure statistics for the benchmark: mean, standard deviation and linearly interpolated percentiles.

/** Summary of a list of numbers (null fields when the list is empty), with the percentiles genai-perf reports. */
export interface Summary {
  count: number;
  mean: number | null;
  /** Sample standard deviation (n - 1 in the denominator); 0 for a single value. */
  std: number | null;
  min: number | null;
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

/** The statistics of a {@link Summary}, in the order tables and CSV files list them. */
export const summaryStatistics = ['mean', 'std', 'min', 'p50', 'p90', 'p95', 'p99', 'max'] as const;
export type SummaryStatistic = (typeof summaryStatistics)[number];

export function mean(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

export function standardDeviation(values: readonly number[]): number | null {
  const m = mean(values);
  if (m === null) return null;
  if (values.length === 1) return 0;
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

/**
 * The q-th percentile (0..100) with linear interpolation between closest ranks
 * (numpy's default "linear" method): rank = q/100 * (n - 1).
 */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile must be within 0..100, got ${q}`);
  const sorted = [...values].sort((a, b) => a - b);
  return sortedPercentile(sorted, q);
}

function sortedPercentile(sorted: readonly number[], q: number): number {
  const rank = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { count: 0, mean: null, std: null, min: null, p50: null, p90: null, p95: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: values.length,
    mean: mean(values),
    std: standardDeviation(values),
    min: sorted[0]!,
    p50: sortedPercentile(sorted, 50),
    p90: sortedPercentile(sorted, 90),
    p95: sortedPercentile(sorted, 95),
    p99: sortedPercentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}
