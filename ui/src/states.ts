// Colours of task, run, attempt and copy states: one palette for the graph,
// the timeline, the legend and the state chips.
import { h } from './dom';

interface StateStyle {
  fill: string;
  text: string;
}

const kStates: Record<string, StateStyle> = {
  pending: { fill: '#c9ced6', text: '#1d2330' },
  queued: { fill: '#a9c9ef', text: '#1d2330' },
  running: { fill: '#2f7de1', text: '#ffffff' },
  retrying: { fill: '#f0a030', text: '#1d2330' },
  succeeded: { fill: '#2e9e5b', text: '#ffffff' },
  cached: { fill: '#92d1a8', text: '#1d2330' },
  failed: { fill: '#d64545', text: '#ffffff' },
  timed_out: { fill: '#8e44ad', text: '#ffffff' },
  upstream_failed: { fill: '#e7b2a8', text: '#1d2330' },
  cancelled: { fill: '#6b6f76', text: '#ffffff' },
  // Attempts only: lost had started when its engine or worker went;
  // not_started never had (docs/runs-and-lineage.md).
  lost: { fill: '#9c3d2e', text: '#ffffff' },
  not_started: { fill: '#dfe2e7', text: '#1d2330' },
};

const kUnknown: StateStyle = { fill: '#e4e4e4', text: '#1d2330' };

// Task states in the order a task moves through them: legends and counts use it.
export const kTaskStates = ['pending', 'queued', 'running', 'retrying', 'succeeded', 'cached',
                            'failed', 'upstream_failed', 'cancelled'];

export const kRunStates = ['running', 'succeeded', 'failed', 'cancelled'];

export function fill(state: string): string {
  return (kStates[state] ?? kUnknown).fill;
}

export function textColor(state: string): string {
  return (kStates[state] ?? kUnknown).text;
}

export function chip(state: string, label?: string): HTMLSpanElement {
  const el = h('span', { class: 'chip', attrs: { 'data-state': state }, text: label ?? state.replace(/_/g, ' ') });
  el.style.background = fill(state);
  el.style.color = textColor(state);
  return el;
}

export function legend(states: string[] = kTaskStates): HTMLElement {
  return h('div', { class: 'legend' }, ...states.map((st) => {
    const sw = h('span', { class: 'swatch', attrs: { 'data-state': st, 'data-fill': fill(st) } });
    sw.style.background = fill(st);
    return h('span', { class: 'legend-item' }, sw, st.replace(/_/g, ' '));
  }));
}

// A horizontal bar of counts per state (runs list, group nodes use their own SVG).
export function countsBar(counts: Record<string, number>, total: number): HTMLElement {
  const bar = h('span', { class: 'countsbar' });
  if (total <= 0) return bar;
  for (const st of kTaskStates) {
    const n = counts[st] ?? 0;
    if (!n) continue;
    const seg = h('span', { attrs: { title: `${st.replace(/_/g, ' ')}: ${n}` } });
    seg.style.width = `${(100 * n) / total}%`;
    seg.style.background = fill(st);
    bar.append(seg);
  }
  return bar;
}

export function countsText(counts: Record<string, number>): string {
  return kTaskStates.filter((st) => counts[st]).map((st) => `${counts[st]} ${st.replace(/_/g, ' ')}`).join(', ');
}
