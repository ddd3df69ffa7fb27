// The npm package ships no types; the tests read its prom2json-style output through their own
// narrower interfaces.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
