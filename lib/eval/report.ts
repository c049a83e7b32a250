// report.ts — evaluation results as a Markdown table, JSON, and Pareto plots
// (accuracy against kept ratio and against prefill time) as SVG and PNG.
import sharp from 'sharp';
import type { EvalRow } from './evaluate.js';
import type { PairedComparison } from './stats.js';

/** Markdown: one row per (pruner, ratio), with the 95% Wilson interval, % of unpruned accuracy and the prefill speed-up. */
export function markdownTable(rows: readonly EvalRow[]): string {
  const base = rows.find((r) => r.pruner === 'unpruned');
  const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.perKind)))].sort();
  const lines = [
    `| pruner | keep ratio | kept | accuracy | 95% interval | % of unpruned | prefill ms | speed-up | ${kinds.join(' | ')} |`,
    `|---|---|---|---|---|---|---|---|${kinds.map(() => '---|').join('')}`,
  ];
  for (const r of rows) {
    const relative = base ? `${((100 * r.accuracy) / base.accuracy).toFixed(1)}%` : '';
    const speedUp = base ? `${(base.prefillMs / r.prefillMs).toFixed(2)}x` : '';
    const perKind = kinds.map((k) => (r.perKind[k] ? `${((100 * r.perKind[k]!.correct) / r.perKind[k]!.total).toFixed(1)}` : ''));
    const interval = `${(100 * r.interval[0]).toFixed(1)}–${(100 * r.interval[1]).toFixed(1)}%`;
    lines.push(`| ${r.pruner} | ${r.keepRatio} | ${r.kept} | ${(100 * r.accuracy).toFixed(1)}% | ${interval} | ${relative} | ${r.prefillMs.toFixed(2)} | ${speedUp} | ${perKind.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Markdown: the subject against the best baseline at each ratio, with the discordant pairs and the exact McNemar p-value. */
export function comparisonTable(comparisons: readonly PairedComparison[]): string {
  const lines = [
    '| keep ratio | subject | accuracy | best baseline | accuracy | difference | only subject right | only baseline right | McNemar p |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  for (const c of comparisons) {
    const p = c.pValue < 0.001 ? '< 0.001' : c.pValue.toFixed(3);
    lines.push(`| ${c.keepRatio} | ${c.subject} | ${pct(c.subjectAccuracy)} | ${c.baseline} | ${pct(c.baselineAccuracy)} | ${c.difference >= 0 ? '+' : ''}${(100 * c.difference).toFixed(1)} pt | ${c.onlySubject} | ${c.onlyBaseline} | ${p} |`);
  }
  return lines.join('\n');
}

const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#ad494a', '#e7969c', '#7b4173', '#31a354'];
/** Legend entries per row under the panels. */
const LEGEND_PER_ROW = 7;

/** Two panels: accuracy vs keep ratio (log x) and accuracy vs prefill ms; one line per pruner, the unpruned point on both. */
export function paretoSvg(rows: readonly EvalRow[], title: string): string {
  const pruners = [...new Set(rows.map((r) => r.pruner).filter((p) => p !== 'unpruned'))];
  const legendRows = Math.max(1, Math.ceil(pruners.length / LEGEND_PER_ROW));
  const W = 960, H = 425 + 20 * legendRows, panel = { w: 400, h: 300 }, top = 60;
  const base = rows.find((r) => r.pruner === 'unpruned');
  const accMin = Math.max(0, Math.floor(Math.min(...rows.map((r) => r.interval[0])) * 10) / 10);
  const msMax = Math.max(...rows.map((r) => r.prefillMs)) * 1.05;
  const ratioMin = Math.min(...rows.map((r) => r.keepRatio));
  const xRatio = (r: number) => (Math.log(r) - Math.log(ratioMin)) / (0 - Math.log(ratioMin) || 1);
  const panels = [
    { left: 60, x: (r: EvalRow) => xRatio(r.keepRatio), label: 'keep ratio (log scale)', ticks: [...new Set(rows.map((r) => r.keepRatio))].map((v) => ({ at: xRatio(v), text: String(v) })) },
    { left: 540, x: (r: EvalRow) => r.prefillMs / msMax, label: 'prefill ms', ticks: [0, 0.25, 0.5, 0.75, 1].map((f) => ({ at: f, text: (f * msMax).toFixed(1) })) },
  ];
  const y = (acc: number) => top + panel.h - ((acc - accMin) / (1 - accMin || 1)) * panel.h;
  const parts: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="28" text-anchor="middle" font-family="sans-serif" font-size="18">${escape(title)}</text>`];
  for (const p of panels) {
    parts.push(`<rect x="${p.left}" y="${top}" width="${panel.w}" height="${panel.h}" fill="none" stroke="#444"/>`);
    parts.push(`<text x="${p.left + panel.w / 2}" y="${top + panel.h + 40}" text-anchor="middle" font-family="sans-serif" font-size="13">${p.label}</text>`);
    for (const t of p.ticks) parts.push(`<text x="${p.left + t.at * panel.w}" y="${top + panel.h + 18}" text-anchor="middle" font-family="sans-serif" font-size="11">${t.text}</text>`);
    for (let a = accMin; a <= 1.0001; a += 0.1) parts.push(`<text x="${p.left - 6}" y="${y(a) + 4}" text-anchor="end" font-family="sans-serif" font-size="11">${(100 * a).toFixed(0)}%</text><line x1="${p.left}" x2="${p.left + panel.w}" y1="${y(a)}" y2="${y(a)}" stroke="#eee"/>`);
    pruners.forEach((name, i) => {
      const points = rows.filter((r) => r.pruner === name).sort((a, b) => a.keepRatio - b.keepRatio);
      if (base) points.push(base);
      const color = PALETTE[i % PALETTE.length];
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((r) => `${(p.left + p.x(r) * panel.w).toFixed(1)},${y(r.accuracy).toFixed(1)}`).join(' ')}"/>`);
      for (const r of points) {
        const cx = (p.left + p.x(r) * panel.w).toFixed(1);
        // The 95% interval as an error bar.
        parts.push(`<line x1="${cx}" x2="${cx}" y1="${y(Math.max(accMin, r.interval[0])).toFixed(1)}" y2="${y(r.interval[1]).toFixed(1)}" stroke="${color}" stroke-width="1" opacity="0.6"/>`);
        parts.push(`<circle cx="${cx}" cy="${y(r.accuracy).toFixed(1)}" r="3" fill="${color}"/>`);
      }
    });
  }
  pruners.forEach((name, i) => {
    const [lx, ly] = [60 + (i % LEGEND_PER_ROW) * 130, H - 22 - 20 * (legendRows - 1 - Math.floor(i / LEGEND_PER_ROW))];
    parts.push(`<rect x="${lx}" y="${ly}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/><text x="${lx + 16}" y="${ly + 10}" font-family="sans-serif" font-size="12">${escape(name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join('')}</svg>`;
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function escape(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
