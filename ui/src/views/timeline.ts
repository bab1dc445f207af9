// The timeline (Gantt) of a run, grouped per stage: one lane per stage (its
// label sticky at the left), each attempt a bar from its start to its end
// (now, while it runs) coloured by its state, packed into as few rows as the
// lane needs (a bar goes in the first row it does not overlap). The time axis
// stays at the top while the lanes scroll; wheel on the axis or the buttons
// zoom, reset fits the run. Failed attempts are drawn last, red, and never
// thinner than a few pixels, so a handful among thousands stays visible.
//
// Up to kMaxSvgBars bars are SVG rects (each one an element with its task);
// beyond, each lane is one canvas with hit-testing, so 5,000 or 10,000 tasks
// draw in a bounded number of elements. Either way a click opens the task.
import type { RunDetail, Task } from '../api';
import { h, s, tip } from '../dom';
import * as fmt from '../format';
import { fill } from '../states';

const kLabelW = 180;
const kAxisH = 26;
const kMaxSvgBars = 2000;
const kMaxTips = 300;
const kMaxPlotW = 16000;  // px; a canvas much wider fails in browsers
const kFailedMinW = 3;
const kPadR = 8;  // px right of the plot: the last bar is not cut

// Attempts whose end is a failure: drawn on top, with the minimum width.
const kFailedStates = new Set(['failed', 'timed_out', 'lost']);

function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

interface Bar {
  task: string;
  attempt: number;
  state: string;
  t0: number;
  t1: number;
  row: number;
  failed: boolean;
}

interface Lane {
  stage: string;
  tasks: number;
  failed: number;
  rows: number;
  rowH: number;
  height: number;
  bars: Bar[];  // failed last: drawn above the others, found first by a click
}

// Interval packing: bars sorted by start, each in the first row whose last
// bar ended by its start. Sorting by start makes this use as many rows as the
// most bars running at once, the fewest possible.
function pack(bars: Bar[]): number {
  bars.sort((a, b) => a.t0 - b.t0 || a.t1 - b.t1);
  const ends: number[] = [];
  for (const b of bars) {
    let r = 0;
    while (r < ends.length && ends[r] > b.t0) r++;
    if (r === ends.length) ends.push(b.t1);
    else ends[r] = b.t1;
    b.row = r;
  }
  return ends.length;
}

function lanesOf(detail: RunDetail, now: number): { lanes: Lane[]; start: number; end: number; bars: number } {
  const byStage = new Map<string, { tasks: Set<string>; bars: Bar[] }>();
  let start = Infinity;
  let end = -Infinity;
  let count = 0;
  // Plan order of stages (the API lists tasks in plan order).
  const tasks: Task[] = [...detail.tasks].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  for (const t of tasks) {
    for (const a of t.attempts ?? []) {
      if (!a.started_at_ms) continue;
      let lane = byStage.get(t.stage);
      if (!lane) byStage.set(t.stage, lane = { tasks: new Set(), bars: [] });
      const t1 = Math.max(a.started_at_ms, a.finished_at_ms ?? now);
      lane.tasks.add(t.id);
      lane.bars.push({ task: t.id, attempt: a.number, state: a.state, t0: a.started_at_ms, t1, row: 0,
                       failed: kFailedStates.has(a.state) });
      start = Math.min(start, a.started_at_ms);
      end = Math.max(end, t1);
      count++;
    }
  }
  const lanes: Lane[] = [];
  for (const [stage, l] of byStage) {
    const rows = pack(l.bars);
    const rowH = rows <= 12 ? 14 : rows <= 40 ? 7 : rows <= 120 ? 4 : 2;
    const failedTasks = new Set(l.bars.filter((b) => b.failed).map((b) => b.task));
    l.bars.sort((a, b) => Number(a.failed) - Number(b.failed));
    lanes.push({ stage, tasks: l.tasks.size, failed: failedTasks.size, rows, rowH,
                 height: Math.max(22, rows * rowH + 6), bars: l.bars });
  }
  return { lanes, start, end, bars: count };
}

// Where a timeline was zoomed and scrolled to: a live run's timeline is
// redrawn as it changes, and keeps them.
export interface TimelinePlace {
  zoom: number;
  left: number;
  top: number;
}

export function timelinePlace(el: Element | null): TimelinePlace | undefined {
  const tl = el?.querySelector<HTMLElement>('.timeline');
  const sc = tl?.querySelector<HTMLElement>('.tl-scroll');
  if (!tl || !sc) return undefined;
  return { zoom: Number(tl.dataset.zoom) || 1, left: sc.scrollLeft, top: sc.scrollTop };
}

export function timeline(detail: RunDetail, width: number, onSelect: (taskId: string) => void,
                         place?: TimelinePlace): HTMLElement {
  const t0 = performance.now();
  const now = Date.now();
  const { lanes, start, end, bars: barCount } = lanesOf(detail, now);
  if (barCount === 0) return h('p', { class: 'muted', text: 'No task has started yet.' });
  const span = Math.max(end - start, 1);
  const baseW = Math.max(240, width - kLabelW - 24);
  const maxZoom = Math.max(1, kMaxPlotW / baseW);
  const canvasMode = barCount > kMaxSvgBars;
  const failedCount = lanes.reduce((n, l) => n + l.bars.filter((b) => b.failed).length, 0);
  let zoom = Math.min(maxZoom, Math.max(1, place?.zoom ?? 1));

  const hover = h('span', { class: 'muted small gantt-hover', text: ' ' });
  const zoomLabel = h('span', { class: 'muted small', attrs: { 'data-zoom-label': '' } });
  const scroll = h('div', { class: 'tl-scroll gantt-wrap' });
  const out = h('div', { class: 'timeline' });

  const plotW = () => baseW * zoom;
  const xOf = (ms: number) => ((ms - start) / span) * plotW();
  const barX = (b: Bar): [number, number] => {
    const x0 = xOf(b.t0);
    const w = Math.max(b.failed ? kFailedMinW : 1, xOf(b.t1) - x0);
    return [x0, w];
  };
  const describe = (b: Bar) => `${b.task} attempt ${b.attempt}: ${b.state.replace(/_/g, ' ')}, ` +
    `${fmt.clock(b.t0)} – ${fmt.clock(b.t1)} (${fmt.duration(b.t1 - b.t0)})`;

  function axis(): HTMLElement {
    const w = plotW();
    const svg = s('svg', { class: 'tl-axis-svg', width: w + kPadR, height: kAxisH, role: 'img', 'aria-label': 'time axis' });
    const step = niceStep(span, w / 110);
    for (let v = 0; v <= span + 1e-9; v += step) {
      const x = xOf(start + v);
      svg.append(s('line', { x1: x, x2: x, y1: kAxisH - 6, y2: kAxisH }),
        s('text', { x: Math.min(Math.max(x, 14), w - 14), y: 13, 'text-anchor': 'middle' }, fmt.duration(v)));
    }
    return h('div', {
      class: 'tl-axis', attrs: { 'data-axis': '' },
      on: { wheel: (e: WheelEvent) => {
        e.preventDefault();
        const rect = svg.getBoundingClientRect();
        zoomAt(e.deltaY < 0 ? 1.5 : 1 / 1.5, e.clientX - rect.left);
      } },
    }, h('div', { class: 'tl-label', text: 'stage' }), svg);
  }

  function svgPlot(lane: Lane): SVGSVGElement {
    const svg = s('svg', { class: 'gantt tl-plot', width: plotW() + kPadR, height: lane.height, 'data-stage': lane.stage });
    for (const b of lane.bars) {
      const [x, w] = barX(b);
      const r = s('rect', {
        x: x.toFixed(1), y: 3 + b.row * lane.rowH, width: w.toFixed(1), height: Math.max(1, lane.rowH - 1),
        fill: fill(b.state), class: 'bar' + (b.failed ? ' failed' : ''), 'data-task-id': b.task,
        'data-attempt': b.attempt, 'data-state': b.state,
      });
      if (barCount <= kMaxTips) r.append(tip(describe(b)));
      svg.append(r);
    }
    return svg;
  }

  function canvasPlot(lane: Lane): HTMLCanvasElement {
    const w = plotW() + kPadR;
    const dpr = window.devicePixelRatio || 1;
    const c = h('canvas', { class: 'gantt-canvas tl-plot', attrs: { 'data-stage': lane.stage } });
    c.width = Math.ceil(w * dpr);
    c.height = Math.ceil(lane.height * dpr);
    c.style.width = `${w}px`;
    c.style.height = `${lane.height}px`;
    const ctx = c.getContext('2d');
    if (!ctx) return c;
    ctx.scale(dpr, dpr);
    let color = '';
    for (const b of lane.bars) {
      const [x, bw] = barX(b);
      const f = fill(b.state);
      if (f !== color) ctx.fillStyle = color = f;
      ctx.fillRect(x, 3 + b.row * lane.rowH, bw, Math.max(1, lane.rowH - 1));
    }
    const at = (e: MouseEvent): Bar | null => {
      const rect = c.getBoundingClientRect();
      const px = e.clientX - rect.left;
      const row = Math.floor((e.clientY - rect.top - 3) / lane.rowH);
      // Failed bars are last: the one drawn on top is the one found.
      for (let i = lane.bars.length - 1; i >= 0; i--) {
        const b = lane.bars[i];
        if (b.row !== row) continue;
        const [x, bw] = barX(b);
        if (px >= x - 1 && px <= x + bw + 1) return b;
      }
      return null;
    };
    c.addEventListener('click', (e) => {
      const b = at(e);
      if (b) onSelect(b.task);
    });
    c.addEventListener('mousemove', (e) => {
      const b = at(e);
      hover.textContent = b ? describe(b) : ' ';
    });
    return c;
  }

  function render(): void {
    const r0 = performance.now();
    scroll.replaceChildren(axis(), ...lanes.map((lane) => h('div', {
      class: 'tl-lane', attrs: { 'data-stage': lane.stage, 'data-rows': lane.rows },
    },
    h('div', { class: 'tl-label', attrs: { title: `${lane.stage}: ${lane.tasks} tasks in ${lane.rows} rows` } },
      lane.stage, ' ', h('span', { class: 'muted small', text: `${lane.tasks}` }),
      lane.failed ? h('span', { class: 'failed-count small', text: ` ${lane.failed} failed` }) : null),
    canvasMode ? canvasPlot(lane) : svgPlot(lane))));
    for (const l of scroll.querySelectorAll<HTMLElement>('.tl-label')) l.style.width = `${kLabelW}px`;
    zoomLabel.textContent = zoom === 1 ? 'whole run' : `×${zoom.toFixed(1)}`;
    out.dataset.zoom = zoom.toFixed(3);
    out.dataset.pxPerSecond = (plotW() / (span / 1000)).toFixed(3);
    out.dataset.renderMs = (performance.now() - r0).toFixed(1);
  }

  // Zooms by `factor` keeping the time under `px` (from the plot's left) in place.
  function zoomAt(factor: number, px?: number): void {
    const next = Math.min(maxZoom, Math.max(1, zoom * factor));
    if (next === zoom) return;
    const view = scroll.clientWidth - kLabelW;
    const anchor = px ?? (scroll.scrollLeft + view / 2);
    const t = anchor / plotW();
    const onScreen = anchor - scroll.scrollLeft;
    zoom = next;
    render();
    scroll.scrollLeft = Math.max(0, t * plotW() - onScreen);
  }

  const button = (label: string, title: string, act: () => void, attr: string) =>
    h('button', { class: 'small', attrs: { type: 'button', title, [attr]: '' }, text: label, on: { click: act } });
  scroll.addEventListener('click', (e) => {
    const el = (e.target as Element).closest('rect.bar');
    if (el) onSelect(el.getAttribute('data-task-id') ?? '');
  });
  scroll.addEventListener('mouseover', (e) => {
    const el = (e.target as Element).closest('rect.bar');
    if (el) {
      hover.textContent = `${el.getAttribute('data-task-id')} attempt ${el.getAttribute('data-attempt')}: ` +
        `${(el.getAttribute('data-state') ?? '').replace(/_/g, ' ')}`;
    }
  });

  const tasks = new Set(lanes.flatMap((l) => l.bars.map((b) => b.task))).size;
  out.append(
    h('div', { class: 'tl-tools' },
      h('span', { class: 'muted small', text: `${tasks} tasks in ${lanes.length} stages over ${fmt.duration(span)}, ` +
                                               `from ${fmt.time(start)}` }),
      failedCount ? h('span', { class: 'failed-count small', text: `${failedCount} failed` }) : null,
      button('−', 'zoom out', () => zoomAt(1 / 1.5), 'data-zoom-out'),
      button('+', 'zoom in (or the wheel on the axis)', () => zoomAt(1.5), 'data-zoom-in'),
      button('reset', 'the whole run', () => zoomAt(1 / zoom), 'data-zoom-reset'),
      zoomLabel, hover),
    scroll);
  render();
  out.dataset.mode = canvasMode ? 'canvas' : 'svg';
  out.dataset.bars = String(barCount);
  out.dataset.failed = String(failedCount);
  out.dataset.lanes = String(lanes.length);
  out.dataset.renderMs = (performance.now() - t0).toFixed(1);
  if (place) {
    // Scrolling needs the element in the page: the next frame.
    requestAnimationFrame(() => {
      scroll.scrollLeft = place.left;
      scroll.scrollTop = place.top;
    });
  }
  return out;
}
