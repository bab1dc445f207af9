// The run page's checkpoints tab: per checkpointing task, its checkpoints as
// the store recorded them (GET /runs/RUN/checkpoints): step, state, the fast
// tier it was written on, the durable tier it was flushed to, commit and
// flush times, flush duration, size, files, hash and message; with a small
// chart of steps over time.
import * as api from '../api';
import { h, href, s, tip } from '../dom';
import * as fmt from '../format';
import { chip, fill } from '../states';

// A checkpoint's state in the palette of task states.
const kLook: Record<string, string> = {
  present: 'succeeded', flushing: 'running', failed: 'failed', deleted: 'cancelled',
};

function stateChip(state: string): HTMLElement {
  return chip(kLook[state] ?? state, state);
}

// Steps over commit time, one dot per checkpoint in its state's colour.
function stepChart(list: api.RunCheckpoint[]): SVGSVGElement {
  const w = 480;
  const ht = 110;
  const pad = { l: 40, r: 10, t: 8, b: 20 };
  const times = list.map((c) => c.committed_at_ms);
  const steps = list.map((c, i) => c.step ?? i + 1);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const s0 = Math.min(0, ...steps);
  const s1 = Math.max(...steps, s0 + 1);
  const x = (t: number) => pad.l + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r) : (w - pad.l - pad.r) / 2);
  const y = (v: number) => ht - pad.b - ((v - s0) / (s1 - s0)) * (ht - pad.t - pad.b);
  const svg = s('svg', { class: 'checkpoint-chart', width: w, height: ht, viewBox: `0 0 ${w} ${ht}`,
                         role: 'img', 'aria-label': 'steps over time' });
  svg.append(
    s('line', { x1: pad.l, y1: ht - pad.b, x2: w - pad.r, y2: ht - pad.b, class: 'axis' }),
    s('line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: ht - pad.b, class: 'axis' }),
    s('text', { x: pad.l - 4, y: y(s1) + 4, 'text-anchor': 'end', class: 'tick' }, String(s1)),
    s('text', { x: pad.l - 4, y: y(s0) + 4, 'text-anchor': 'end', class: 'tick' }, String(s0)),
    s('text', { x: pad.l, y: ht - 4, class: 'tick' }, fmt.clock(t0)),
    s('text', { x: w - pad.r, y: ht - 4, 'text-anchor': 'end', class: 'tick' },
      t1 > t0 ? `+${fmt.duration(t1 - t0)}` : ''));
  const points = list.map((c, i) => `${x(c.committed_at_ms).toFixed(1)},${y(steps[i]).toFixed(1)}`);
  if (points.length > 1) svg.append(s('polyline', { points: points.join(' '), class: 'steps' }));
  list.forEach((c, i) => svg.append(s('circle', {
    cx: x(c.committed_at_ms), cy: y(steps[i]), r: 4, fill: fill(kLook[c.state] ?? c.state),
    'data-step': steps[i],
  }, tip(`step ${steps[i]} (${c.state}) committed ${fmt.time(c.committed_at_ms)}`))));
  return svg;
}

function taskSection(runId: string, taskId: string, list: api.RunCheckpoint[]): HTMLElement {
  const present = list.filter((c) => c.state === 'present');
  const latest = present.length ? present[present.length - 1] : null;
  const rows = list.map((c) => h('tr', { attrs: { 'data-checkpoint': c.id, 'data-state': c.state } },
    h('td', { class: 'num', text: c.step === null ? '—' : String(c.step) }),
    h('td', null, h('span', { class: 'mono', text: c.name }), h('div', { class: 'muted small',
      text: c.attempt === null ? '' : `attempt ${c.attempt}` })),
    h('td', null, stateChip(c.state)),
    h('td', { class: 'mono small wrap', attrs: { title: c.local_uri }, text: c.local_uri }),
    h('td', null, h('strong', { text: c.tier }), h('div', { class: 'mono small wrap', text: c.uri })),
    h('td', { attrs: { title: fmt.time(c.committed_at_ms) }, text: fmt.clock(c.committed_at_ms) }),
    h('td', { attrs: { title: fmt.time(c.flushed_at_ms) }, text: c.flushed_at_ms === null ? '—' : fmt.clock(c.flushed_at_ms) }),
    h('td', { class: 'num', text: fmt.duration(c.flush_ms) }),
    h('td', { class: 'num', text: fmt.bytes(c.bytes) }),
    h('td', { class: 'num', text: c.files === null ? '—' : String(c.files) }),
    h('td', null, h('code', { attrs: { title: c.content_hash ?? '' }, text: fmt.shortHash(c.content_hash) })),
    h('td', { class: 'small', text: c.message })));
  return h('section', { class: 'checkpoint-task', attrs: { 'data-task': taskId } },
    h('h3', null, h('a', { attrs: { href: `${href('runs', runId, 'checkpoints')}?task=${encodeURIComponent(taskId)}` },
      text: taskId })),
    h('p', { class: 'muted small', text: `${list.length} checkpoint${list.length === 1 ? '' : 's'}, ${present.length} kept` +
      (latest ? `; latest kept: step ${latest.step ?? '?'} on ${latest.tier}` : '; none kept') }),
    stepChart(list),
    h('table', { class: 'grid checkpoints-table' },
      h('thead', null, h('tr', null, ...['step', 'name', 'state', 'written on (fast tier)', 'flushed to (durable tier)',
        'committed', 'flushed', 'flush', 'size', 'files', 'hash', 'message'].map((t) => h('th', { text: t })))),
      h('tbody', null, ...rows)));
}

// The tab's content: the run's checkpoints, per task.
export async function checkpointsContent(runId: string, signal: AbortSignal): Promise<HTMLElement> {
  const list = await api.runCheckpoints(runId, signal);
  if (list.length === 0) {
    return h('p', { class: 'muted', text: 'No task of this run committed a checkpoint ' +
      '(a stage checkpoints by writing under $TIERFLOW_CHECKPOINT_DIR: docs/pipeline-format.md).' });
  }
  const byTask = new Map<string, api.RunCheckpoint[]>();
  for (const c of list) byTask.set(c.task_id, [...(byTask.get(c.task_id) ?? []), c]);
  return h('div', { class: 'checkpoints-view' }, ...[...byTask].map(([task, cs]) => taskSection(runId, task, cs)));
}
