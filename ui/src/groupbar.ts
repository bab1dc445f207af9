// The bar and the counts line of a group node (the run graph's foreach groups,
// the lineage explorer's stage groups): one segment per state, in the
// legend's order, a non-empty segment never narrower than kMinSegment so one
// failure among thousands stays visible, and the failed count in red.
import { s, tip } from './dom';
import { fill, kTaskStates } from './states';

export const kMinSegment = 3;
// A task or attempt that failed itself (upstream_failed is counted apart).
const kFailedStates = new Set(['failed', 'timed_out', 'lost']);

export function isFailedState(state: string): boolean {
  return kFailedStates.has(state);
}

export function countStates(states: Iterable<string>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const st of states) c[st] = (c[st] ?? 0) + 1;
  return c;
}

export function failedCount(counts: Record<string, number>): number {
  let n = 0;
  for (const [st, c] of Object.entries(counts)) if (isFailedState(st)) n += c;
  return n;
}

// Segment widths for `counts` over `width`: proportional, each non-empty one
// at least kMinSegment, the widest ones giving up what the small ones took.
function widths(counts: Record<string, number>, order: string[], width: number): number[] {
  const total = order.reduce((n, st) => n + (counts[st] ?? 0), 0);
  const w = order.map((st) => (total ? (width * (counts[st] ?? 0)) / total : 0));
  let owed = 0;
  w.forEach((x, i) => {
    if (x > 0 && x < kMinSegment) {
      owed += kMinSegment - x;
      w[i] = kMinSegment;
    }
  });
  const big = w.map((x, i) => [x, i] as const).filter(([x]) => x > kMinSegment);
  const room = big.reduce((n, [x]) => n + x - kMinSegment, 0);
  if (owed > 0 && room > 0) for (const [x, i] of big) w[i] = x - (owed * (x - kMinSegment)) / room;
  return w;
}

// The bar: a <g class="group-bar"> of rects carrying data-state and data-n.
export function stateBar(counts: Record<string, number>, x: number, y: number, width: number,
                         height = 8): SVGGElement {
  const order = [...kTaskStates, ...Object.keys(counts).filter((st) => !kTaskStates.includes(st))];
  const ws = widths(counts, order, width);
  const bar = s('g', { class: 'group-bar' });
  let bx = x;
  order.forEach((st, i) => {
    const c = counts[st] ?? 0;
    if (!c) return;
    bar.append(s('rect', { x: bx.toFixed(2), y, width: ws[i].toFixed(2), height, fill: fill(st),
                           'data-state': st, 'data-n': c, class: isFailedState(st) ? 'failed' : '' },
      tip(`${st.replace(/_/g, ' ')}: ${c}`)));
    bx += ws[i];
  });
  return bar;
}

// "3 failed · 27 succeeded": failures first, in a red <tspan class="failed-count">.
export function countsLine(counts: Record<string, number>, x: number, y: number, maxChars: number): SVGTextElement {
  const text = s('text', { x, y, class: 'group-counts' });
  const failed = failedCount(counts);
  let used = 0;
  if (failed) {
    const label = `${failed.toLocaleString('en-US')} failed`;
    text.append(s('tspan', { class: 'failed-count', 'data-failed': failed }, label));
    used = label.length;
  }
  const order = [...kTaskStates, ...Object.keys(counts).filter((st) => !kTaskStates.includes(st))];
  const rest = order.filter((st) => !isFailedState(st) && counts[st])
    .map((st) => `${counts[st].toLocaleString('en-US')} ${st.replace(/_/g, ' ')}`);
  let line = rest.join(' · ');
  if (line && failed) line = ` · ${line}`;
  const room = Math.max(0, maxChars - used);
  if (line.length > room) line = `${line.slice(0, Math.max(0, room - 1))}…`;
  if (line) text.append(s('tspan', undefined, line));
  return text;
}
