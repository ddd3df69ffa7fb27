// Reads the dev server's Prometheus metrics (parsed with parse-prometheus-text-format, as an
// operator's tooling would) for tests that check what the server saw.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { RunningServer } from './server.js';

interface Sample { value?: string; labels?: Record<string, string> }
interface Family { name: string; metrics: Sample[] }

/** The value of the series of `family` for `model` whose label `label` is `value` (0 when absent). */
export async function modelCounter(server: RunningServer, model: string, family: string, label: string, value: string): Promise<number> {
  const families = parsePrometheusTextFormat(await (await fetch(`${server.metricsUrl}/metrics`)).text()) as Family[];
  const sample = families.find((f) => f.name === family)?.metrics
    .find((m) => m.labels?.['model'] === model && m.labels[label] === value);
  return Number(sample?.value ?? 0);
}

/** Requests of `model` the backend ended as cancelled (nv_llm_requests_total{request_state="cancelled"}). */
export function cancelledRequests(server: RunningServer, model: string): Promise<number> {
  return modelCounter(server, model, 'nv_llm_requests_total', 'request_state', 'cancelled');
}

/** Waits (up to 10 s) until the server has counted `count` cancelled requests of `model`. */
export async function expectCancelledRequests(server: RunningServer, model: string, count: number): Promise<void> {
  const giveUp = Date.now() + 10_000;
  let seen = await cancelledRequests(server, model);
  while (seen !== count) {
    if (Date.now() > giveUp) throw new Error(`the server counted ${seen} cancelled requests of ${model}, not ${count}`);
    await new Promise((r) => setTimeout(r, 50));
    seen = await cancelledRequests(server, model);
  }
}
