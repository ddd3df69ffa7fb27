// Standalone SVG charts for the benchmark, written by hand (no dependencies).

export interface Bar {
  label: string;
  value: number;
  /** Reference bars (published numbers) are drawn in another colour and labelled as such. */
  kind: 'setup' | 'reference';
}

export interface Point {
  label: string;
  x: number;
  y: number;
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));

/** A "nice" upper bound for an axis, at least max, whose quarters are round numbers. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) if (m * power >= max) return m * power;
  return 10 * power;
}

const header = (width: number, height: number, title: string): string[] => [
  '<?xml version="1.0" encoding="UTF-8"?>',
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  `<title>${escapeXml(title)}</title>`,
  `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
  `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
];

/** Horizontal bar chart: one row per bar, value printed at the end of each bar. */
export function barChart(bars: readonly Bar[], options: { title: string; unit: string }): string {
  const rowHeight = 28;
  const labelWidth = 330;
  const plotWidth = 420;
  const top = 44;
  const width = labelWidth + plotWidth + 90;
  const height = top + rowHeight * bars.length + 50;
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const out = header(width, height, options.title);
  const axisY = top + rowHeight * bars.length + 6;
  for (let t = 0; t <= 4; ++t) {
    const x = labelWidth + (plotWidth * t) / 4;
    out.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${axisY}" stroke="#dddddd"/>`);
    out.push(`<text x="${x}" y="${axisY + 14}" text-anchor="middle" fill="#555555">${fmt((max * t) / 4)}</text>`);
  }
  out.push(`<text x="${labelWidth + plotWidth / 2}" y="${axisY + 32}" text-anchor="middle">${escapeXml(options.unit)}</text>`);
  bars.forEach((bar, i) => {
    const y = top + i * rowHeight;
    const w = Math.max(0, (plotWidth * bar.value) / max);
    const colour = bar.kind === 'setup' ? '#3b7dd8' : '#b0b0b0';
    out.push(`<text x="${labelWidth - 8}" y="${y + rowHeight / 2 + 4}" text-anchor="end">${escapeXml(bar.label)}</text>`);
    out.push(
      `<rect class="bar ${bar.kind}" data-label="${escapeXml(bar.label)}" x="${labelWidth}" y="${y + 4}" width="${w.toFixed(2)}" height="${rowHeight - 8}" fill="${colour}"/>`,
    );
    out.push(`<text x="${(labelWidth + w + 6).toFixed(2)}" y="${y + rowHeight / 2 + 4}">${fmt(bar.value)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}

export interface Series {
  name: string;
  points: readonly Point[];
  /** Series with the same colour index share a colour (e.g. p50 and p99 of one model); default: the series' position. */
  colour?: number;
  dashed?: boolean;
  /** Print each point's label beside it (default true). */
  pointLabels?: boolean;
}

/** Scatter with connecting lines per series: x = throughput, y = latency. */
export function lineChart(series: readonly Series[], options: { title: string; xLabel: string; yLabel: string }): string {
  const width = 760;
  const height = 460;
  const left = 70;
  const right = 200;
  const top = 44;
  const bottom = 60;
  const pw = width - left - right;
  const ph = height - top - bottom;
  const all = series.flatMap((s) => s.points);
  const xMax = niceMax(Math.max(0, ...all.map((p) => p.x)));
  const yMax = niceMax(Math.max(0, ...all.map((p) => p.y)));
  const sx = (x: number): string => (left + (pw * x) / xMax).toFixed(2);
  const sy = (y: number): string => (top + ph - (ph * y) / yMax).toFixed(2);
  const colours = ['#3b7dd8', '#d8703b', '#3bd87d', '#a03bd8', '#d83b6a', '#7a7a2a'];
  const out = header(width, height, options.title);
  for (let t = 0; t <= 4; ++t) {
    const gx = left + (pw * t) / 4;
    const gy = top + ph - (ph * t) / 4;
    out.push(`<line x1="${gx}" y1="${top}" x2="${gx}" y2="${top + ph}" stroke="#dddddd"/>`);
    out.push(`<text x="${gx}" y="${top + ph + 16}" text-anchor="middle" fill="#555555">${fmt((xMax * t) / 4)}</text>`);
    out.push(`<line x1="${left}" y1="${gy}" x2="${left + pw}" y2="${gy}" stroke="#dddddd"/>`);
    out.push(`<text x="${left - 6}" y="${gy + 4}" text-anchor="end" fill="#555555">${fmt((yMax * t) / 4)}</text>`);
  }
  out.push(`<text x="${left + pw / 2}" y="${height - 16}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  out.push(`<text x="16" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + ph / 2})">${escapeXml(options.yLabel)}</text>`);
  series.forEach((s, i) => {
    const colour = colours[(s.colour ?? i) % colours.length]!;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const pts = s.points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(' ');
    out.push(`<polyline class="series" points="${pts}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
    for (const p of s.points) {
      out.push(`<circle class="point" cx="${sx(p.x)}" cy="${sy(p.y)}" r="${s.dashed ? 3 : 4}" fill="${s.dashed ? '#ffffff' : colour}" stroke="${colour}" stroke-width="1.5"/>`);
      if (s.pointLabels ?? true) out.push(`<text x="${(Number(sx(p.x)) + 6).toFixed(2)}" y="${(Number(sy(p.y)) + 14).toFixed(2)}" font-size="10">${escapeXml(p.label)}</text>`);
    }
    out.push(`<line x1="${left + pw + 12}" y1="${top + i * 20 + 6}" x2="${left + pw + 30}" y2="${top + i * 20 + 6}" stroke="${colour}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${left + pw + 36}" y="${top + i * 20 + 10}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
