// A throughput chart over time, as inline SVG: stacked bars per bucket.
import { h, clock } from './dom.js';

const W = 720;
const H = 140;
const PAD = { l: 28, r: 8, t: 8, b: 20 };

/**
 * runs: [{created_at, status}], from/to: epoch ms. Bars stack completed (green),
 * failed (red) and the rest (blue) per bucket.
 */
export function throughputChart(runs, { from, to, buckets = 30 }) {
  const span = Math.max(1, to - from);
  const width = span / buckets;
  const bins = Array.from({ length: buckets }, () => ({ ok: 0, bad: 0, other: 0 }));
  for (const r of runs) {
    const t = typeof r.created_at === 'number' ? r.created_at : Date.parse(r.created_at);
    if (!(t >= from && t <= to)) continue;
    const b = bins[Math.min(buckets - 1, Math.floor((t - from) / width))];
    if (r.status === 'completed') b.ok++;
    else if (r.status === 'failed') b.bad++;
    else b.other++;
  }
  const max = Math.max(1, ...bins.map((b) => b.ok + b.bad + b.other));
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const bw = iw / buckets;
  const y = (n) => (n / max) * ih;
  const bars = bins.map((b, i) => {
    const x = PAD.l + i * bw + 1;
    let base = H - PAD.b;
    const parts = [];
    for (const [n, cls] of [[b.ok, 'c-ok'], [b.bad, 'c-bad'], [b.other, 'c-other']]) {
      if (!n) continue;
      const hh = y(n);
      base -= hh;
      parts.push(h('rect', { class: cls, x, y: base, width: Math.max(1, bw - 2), height: hh, rx: 1.5 }));
    }
    const t0 = from + i * width;
    return h('g', {}, h('title', {}, `${clock(t0)}–${clock(t0 + width)}: ${b.ok} completed, ${b.bad} failed, ${b.other} other`),
      h('rect', { x, y: PAD.t, width: Math.max(1, bw - 2), height: ih, fill: 'transparent' }), parts);
  });
  return h('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Runs over time' },
    h('line', { class: 'axis', x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }),
    h('line', { class: 'axis', x1: PAD.l, x2: W - PAD.r, y1: PAD.t, y2: PAD.t, 'stroke-dasharray': '3 4' }),
    h('text', { x: PAD.l - 4, y: PAD.t + 8, 'text-anchor': 'end' }, String(max)),
    h('text', { x: PAD.l - 4, y: H - PAD.b, 'text-anchor': 'end' }, '0'),
    h('text', { x: PAD.l, y: H - 5 }, clock(from)),
    h('text', { x: PAD.l + iw / 2, y: H - 5, 'text-anchor': 'middle' }, clock(from + span / 2)),
    h('text', { x: W - PAD.r, y: H - 5, 'text-anchor': 'end' }, clock(to)),
    bars);
}
