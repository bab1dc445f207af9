// The timeline (Gantt) of a run: one row per task, one bar per attempt from
// its start to its end (now, while it runs), coloured by the attempt's state.
// Many tasks get thin unlabelled rows; a click on a bar opens the task.
import type { RunDetail, Task } from '../api';
import { h, s, tip } from '../dom';
import * as fmt from '../format';
import { fill } from '../states';

const kLabelW = 190;
const kAxisH = 24;

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function timeline(detail: RunDetail, width: number, onSelect: (taskId: string) => void): HTMLElement {
  const t0 = performance.now();
  const now = Date.now();
  const tasks: Task[] = detail.tasks.filter((t) => (t.attempts ?? []).some((a) => a.started_at_ms));
  const firstStart = (t: Task) => Math.min(...(t.attempts ?? []).map((a) => a.started_at_ms ?? Infinity));
  tasks.sort((a, b) => firstStart(a) - firstStart(b) || (a.seq ?? 0) - (b.seq ?? 0));
  if (tasks.length === 0) return h('p', { class: 'muted', text: 'No task has started yet.' });

  let start = Infinity;
  let end = -Infinity;
  for (const t of tasks) {
    for (const a of t.attempts ?? []) {
      if (!a.started_at_ms) continue;
      start = Math.min(start, a.started_at_ms);
      end = Math.max(end, a.finished_at_ms ?? now);
    }
  }
  const span = Math.max(end - start, 1);
  const labels = tasks.length <= 150;
  const rowH = labels ? 20 : tasks.length <= 1000 ? 6 : 3;
  const left = labels ? kLabelW : 8;
  const plotW = Math.max(200, width - left - 16);
  const x = (ms: number) => left + ((ms - start) / span) * plotW;
  const height = kAxisH + tasks.length * rowH + 8;

  const svg = s('svg', { class: 'gantt', width: left + plotW + 16, height, role: 'img', 'aria-label': 'task timeline' });
  const axis = s('g', { class: 'axis' });
  const step = niceStep(span, 8);
  for (let v = 0; v <= span; v += step) {
    axis.append(s('line', { x1: x(start + v), x2: x(start + v), y1: kAxisH - 4, y2: height, class: 'tick' }),
      s('text', { x: x(start + v), y: 12, 'text-anchor': 'middle' }, fmt.duration(v)));
  }
  svg.append(axis);
  const bars = s('g', { class: 'bars' });
  tasks.forEach((t, i) => {
    const y = kAxisH + i * rowH;
    if (labels) {
      bars.append(s('text', { x: left - 8, y: y + rowH - 6, 'text-anchor': 'end', class: 'row-label',
                              'data-task-id': t.id }, t.id.length > 28 ? `${t.id.slice(0, 27)}…` : t.id));
    }
    for (const a of t.attempts ?? []) {
      if (!a.started_at_ms) continue;
      const a0 = x(a.started_at_ms);
      const a1 = x(a.finished_at_ms ?? now);
      const r = s('rect', {
        x: a0.toFixed(1), y: y + 1, width: Math.max(1, a1 - a0).toFixed(1), height: Math.max(1, rowH - 2),
        fill: fill(a.state), class: 'bar', 'data-task-id': t.id, 'data-attempt': a.number, 'data-state': a.state,
      });
      if (labels) {
        r.append(tip(`${t.id} attempt ${a.number}: ${a.state.replace(/_/g, ' ')}, ` +
                     `${fmt.clock(a.started_at_ms)} – ${fmt.clock(a.finished_at_ms)} (${fmt.duration(a.duration_ms)})`));
      }
      bars.append(r);
    }
  });
  svg.append(bars);
  const hover = h('div', { class: 'muted small gantt-hover', text: ' ' });
  const wrap = h('div', {
    class: 'gantt-wrap',
    on: {
      click: (e: MouseEvent) => {
        const el = (e.target as Element).closest('[data-task-id]');
        if (el) onSelect(el.getAttribute('data-task-id') ?? '');
      },
      mouseover: (e: MouseEvent) => {
        const el = (e.target as Element).closest('rect.bar');
        if (el) {
          hover.textContent = `${el.getAttribute('data-task-id')} attempt ${el.getAttribute('data-attempt')}: ` +
                              `${(el.getAttribute('data-state') ?? '').replace(/_/g, ' ')}`;
        }
      },
    },
  }, svg);
  const out = h('div', { class: 'timeline' },
    h('div', { class: 'muted small', text: `${tasks.length} tasks over ${fmt.duration(span)}, from ${fmt.time(start)}` }),
    hover, wrap);
  out.dataset.renderMs = (performance.now() - t0).toFixed(1);
  return out;
}
