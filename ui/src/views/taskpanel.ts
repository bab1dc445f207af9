// The task panel: a task's attempts (state, exit, times, worker), the
// selected attempt's command, where its data was placed and why, bytes read
// and written per tier, time waiting on data, its outputs with their copies,
// and the tail of its log.
import * as api from '../api';
import { h, href, link } from '../dom';
import * as fmt from '../format';
import { chip } from '../states';
import { errorBox } from '../view';
import { downloadLink } from './download';

const kLogTail = 64 * 1024;

function exitText(a: api.Attempt): string {
  if (a.signal !== null && a.signal !== undefined && a.signal !== '') return String(a.signal);
  if (a.exit_code !== null && a.exit_code !== undefined) return String(a.exit_code);
  return '-';
}

function field(label: string, value: Node | string): HTMLElement[] {
  return [h('dt', { text: label }), h('dd', null, value)];
}

// Any JSON value as text and nested lists (the workers table, whose columns
// depend on the cluster). Strings go through textContent like everything else.
export function jsonView(v: unknown): Node {
  if (v === null || v === undefined) return document.createTextNode('-');
  if (typeof v !== 'object') return document.createTextNode(String(v));
  if (Array.isArray(v)) {
    if (v.length === 0) return document.createTextNode('none');
    return h('ul', { class: 'json' }, ...v.map((x) => h('li', null, jsonView(x))));
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return document.createTextNode('none');
  return h('dl', { class: 'json' }, ...entries.flatMap(([k, x]) => field(k, jsonView(x))));
}

// Where the decisions shown come from: the engine's, recorded when the run
// started, or made again for a run from before they were recorded.
function placementSource(source: api.TaskInfo['placement']['source']): Node | string {
  if (source === 'recorded') {
    return h('p', { class: 'muted small', attrs: { 'data-placement-source': source }, text: 'Recorded: the engine\'s decisions when the run started.' });
  }
  if (source === 'recomputed') {
    return h('p', { class: 'muted small', attrs: { 'data-placement-source': source },
      text: 'Recomputed: this run predates recorded decisions, so placement was run again on its stored pipeline and tiers.' });
  }
  return '';
}

function placementView(info: api.TaskInfo, attempt: number | null): Node {
  const p = info.placement;
  const items: HTMLElement[] = [];
  for (const o of p.outputs ?? []) {
    items.push(h('li', { attrs: { 'data-placement': `output:${o.output}` } },
      h('strong', { text: `output ${o.output}` }), ' → home ', h('span', { class: 'tier', text: o.home }),
      o.write_tier && o.write_tier !== o.home ? ` (written on ${o.write_tier})` : '',
      h('div', { class: 'reason', text: o.reason })));
  }
  for (const i of p.inputs ?? []) {
    items.push(h('li', { attrs: { 'data-placement': `input:${i.input}` } },
      h('strong', { text: `input ${i.input}` }), ` (${i.producer_task}.${i.output}) read from `,
      h('span', { class: 'tier', text: i.working }),
      h('div', { class: 'reason', text: i.reason })));
  }
  const c = p.checkpoint;
  if (c) {
    items.push(h('li', { attrs: { 'data-placement': 'checkpoints' } },
      h('strong', { text: 'checkpoints' }), ' written on ', h('span', { class: 'tier', text: c.write_tier || 'the run\'s folder' }),
      c.node_tier ? ` (first on ${c.node_tier})` : '',
      c.flush_tier ? ', flushed to ' : ', not flushed', c.flush_tier ? h('span', { class: 'tier', text: c.flush_tier }) : '',
      h('div', { class: 'reason', text: c.reason })));
  }
  for (const w of p.workers ?? []) {
    if (attempt !== null && w.attempt !== null && w.attempt !== attempt) continue;
    items.push(h('li', null, h('strong', { text: `attempt ${w.attempt ?? '?'} placed` }),
      h('div', { class: 'reason', text: w.reason })));
  }
  const note = p.reason ? h('p', { class: 'muted small', text: p.reason }) : null;
  if (items.length === 0) return h('div', null, note ?? '', h('p', { class: 'muted', text: 'No placement recorded.' }));
  return h('div', null, placementSource(p.source), h('ul', { class: 'placement' }, ...items), note ?? '');
}

function ioTable(io: api.TaskInfo['io']): Node {
  if (!io || io.length === 0) return h('p', { class: 'muted', text: 'No bytes recorded.' });
  return h('table', { class: 'grid compact io' },
    h('thead', null, h('tr', null, h('th', { text: 'tier' }), h('th', { text: 'read' }), h('th', { text: 'written' }))),
    h('tbody', null, ...io.map((r) => h('tr', { attrs: { 'data-io-tier': r.tier } }, h('td', { text: r.tier }),
      h('td', { class: 'num', text: fmt.bytes(r.read_bytes) }), h('td', { class: 'num', text: fmt.bytes(r.written_bytes) })))));
}

export class TaskPanel {
  readonly el: HTMLElement;
  private abort = new AbortController();
  private attempt: number | null = null;
  private info: api.TaskInfo | null = null;
  private follow: number | undefined;  // re-reads the log of a running attempt

  constructor(private readonly runId: string, readonly taskId: string, private readonly onClose: () => void) {
    this.el = h('aside', { class: 'task-panel', attrs: { 'data-task-panel': taskId, 'aria-label': `task ${taskId}` } },
      this.header(null), h('p', { class: 'muted', text: 'loading…' }));
    void this.load();
  }

  async load(): Promise<void> {
    this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    try {
      const info = await api.task(this.runId, this.taskId, signal);
      const latest = this.info?.task.attempts?.length ?? 0;
      this.info = info;
      const atts = info.task.attempts ?? [];
      // Follow the newest attempt unless another one was picked.
      if (this.attempt === null || this.attempt === latest || !atts.some((a) => a.number === this.attempt)) {
        this.attempt = atts.length ? atts[atts.length - 1].number : null;
      }
      this.render();
    } catch (e) {
      if (!signal.aborted) this.el.replaceChildren(this.header(null), errorBox(e));
    }
  }

  private header(t: api.Task | null): HTMLElement {
    return h('div', { class: 'panel-head' },
      h('h2', { text: this.taskId }),
      t ? chip(t.state) : null,
      h('button', { class: 'close', text: '×', attrs: { title: 'close', 'aria-label': 'close' },
                    on: { click: () => this.onClose() } }));
  }

  private render(): void {
    const info = this.info;
    if (!info) return;
    const t = info.task;
    const atts = t.attempts ?? [];
    const a = atts.find((x) => x.number === this.attempt) ?? null;
    const wait = info.data_wait;
    const meta = h('dl', { class: 'meta' },
      ...field('stage', `${t.stage}${t.kind ? ` (${t.kind})` : ''}`),
      ...(t.item !== null && t.item !== undefined ? field('item', String(t.item)) : []),
      ...field('duration', fmt.duration(t.duration_ms)),
      ...field('waiting on data', wait ? `${fmt.duration(wait.seconds * 1000)}${wait.source === 'derived'
        ? ' (derived from copy times)' : ''}` : '-'),
      ...(t.message ? field('message', t.message) : []));

    const rows = atts.map((x) => h('tr', {
      class: x.number === this.attempt ? 'selected' : '',
      attrs: { 'data-attempt': x.number, title: 'show this attempt' },
      on: { click: () => { this.attempt = x.number; this.render(); } },
    },
      h('td', { class: 'num', text: String(x.number) }), h('td', null, chip(x.state)),
      h('td', { text: exitText(x) }), h('td', { text: x.worker || 'local' }),
      h('td', { text: fmt.clock(x.started_at_ms), attrs: { title: `finished ${fmt.clock(x.finished_at_ms)}` } }),
      h('td', { class: 'num', text: fmt.duration(x.duration_ms) })));
    const attemptsTable = atts.length
      ? h('table', { class: 'grid compact attempts' },
          h('thead', null, h('tr', null, ...['#', 'state', 'exit', 'worker', 'started', 'took']
            .map((c) => h('th', { text: c })))),
          h('tbody', null, ...rows))
      : h('p', { class: 'muted', text: 'No attempt yet.' });

    const detail: Node[] = [];
    if (a) {
      const dl = h('dl', { class: 'meta' });
      if (a.message) dl.append(...field('message', a.message));
      if (a.cached_from_ref || a.cached_from) {
        dl.append(...field('reused', String(a.cached_from_ref ?? `attempt #${a.cached_from}`)));
      }
      if (a.pid) dl.append(...field('pid', String(a.pid)));
      detail.push(h('h3', { text: `Attempt ${a.number}` }), dl,
        h('h4', { text: 'Command' }), h('pre', { class: 'command', text: fmt.command(a.command) }));
    }
    detail.push(h('h4', { text: 'Placement' }), placementView(info, a?.number ?? null),
      h('h4', { text: 'Bytes per tier' }), ioTable(info.io));

    const outputs = t.outputs ?? [];
    const outs = outputs.length ? h('ul', { class: 'outputs' }, ...outputs.map((o) => h('li', null,
      link(href('artifacts', o.id), o.name), ` ${fmt.bytes(o.bytes)} `,
      h('code', { attrs: { title: o.content_hash ?? '' }, text: fmt.shortHash(o.content_hash) }), ' ', downloadLink(o),
      h('div', { class: 'copies' }, ...o.copies.map((c) => h('span', { class: 'copy', attrs: { title: c.uri } },
        `${c.tier} (${api.copyRole(c)}, ${c.state})`)))))) : null;

    const logPre = h('pre', { class: 'logs', attrs: { 'data-logs': this.taskId } });
    const logNote = h('div', { class: 'muted small' });
    const logs = h('div', { class: 'logs-box' },
      h('div', { class: 'logs-head' }, h('h3', { text: a ? `Log of attempt ${a.number}` : 'Log' }),
        h('button', { text: 'refresh', on: { click: () => void this.loadLogs(a, logPre, logNote) } })),
      logNote, logPre);

    this.el.replaceChildren(this.header(t), meta, h('h3', { text: 'Attempts' }), attemptsTable, ...detail,
      outs ? h('h3', { text: 'Outputs' }) : '', outs ?? '', logs);
    void this.loadLogs(a, logPre, logNote);
  }

  private async loadLogs(a: api.Attempt | null, pre: HTMLPreElement, note: HTMLElement): Promise<void> {
    window.clearTimeout(this.follow);
    if (!a) {
      note.textContent = 'No attempt, no log.';
      return;
    }
    try {
      const l = await api.logs(this.runId, this.taskId, a.number, kLogTail, this.abort.signal);
      pre.textContent = l.text;
      pre.hidden = l.text.length === 0;
      pre.dataset.loaded = 'true';
      const lines = [...l.notes];
      if (l.truncated) lines.push(`The last ${fmt.bytes(l.size_bytes - l.offset)} of ${fmt.bytes(l.size_bytes)}.`);
      note.textContent = lines.join(' ');
      pre.scrollTop = pre.scrollHeight;
      if (a.state === 'running') this.follow = window.setTimeout(() => void this.loadLogs(a, pre, note), 2000);
    } catch (e) {
      if (!this.abort.signal.aborted) note.replaceChildren(errorBox(e));
    }
  }

  dispose(): void {
    window.clearTimeout(this.follow);
    this.abort.abort();
  }
}
