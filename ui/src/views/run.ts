// One run: its header, then the graph, the timeline or the outputs, and the
// task panel of the task in `?task=`. Live: task states from the event
// stream recolour the graph in place; a throttled reload reconciles.
import * as api from '../api';
import { h, href, link } from '../dom';
import * as fmt from '../format';
import { chip, countsText, legend } from '../states';
import { errorBox, setQuery, throttle, View } from '../view';
import { FailuresList } from './failures';
import { GraphView } from './graph';
import { TaskPanel } from './taskpanel';
import { downloadLink } from './download';
import { dataTab } from './rundata';
import { timeline, timelinePlace } from './timeline';

const kTabs = ['graph', 'timeline', 'outputs', 'checkpoints', 'tiers'] as const;
type Tab = typeof kTabs[number];

function isTab(t: string | undefined): t is Tab {
  return (kTabs as readonly string[]).includes(t ?? '');
}

// `linkId`: the run as the route names it (`last` follows new runs, main.ts),
// kept in the tabs' links; `runId` is the run shown.
export function runView(runId: string, tabArg: string | undefined, query: URLSearchParams,
                        linkId: string = runId): View {
  const tab: Tab = isTab(tabArg) ? tabArg : 'graph';
  const abort = new AbortController();
  const head = h('div', { class: 'run-head' }, h('h1', null, 'Run ', h('span', { class: 'mono', text: runId })));
  const tabs = h('nav', { class: 'tabs' }, ...kTabs.map((t) =>
    h('a', { class: t === tab ? 'active' : '', attrs: { href: href('runs', linkId, t) + (query.get('task')
      ? `?task=${encodeURIComponent(query.get('task') ?? '')}` : ''), 'data-tab': t }, text: t })));
  const body = h('div', { class: 'run-body' });
  const side = h('div', { class: 'run-side' });
  const failures = new FailuresList(runId, (taskId) => setQuery({ task: taskId }));
  const el = h('section', { class: 'view run-view', attrs: { 'data-run': runId } },
    head, failures.el, tabs, h('div', { class: 'run-main' }, body, side));

  let graphView: GraphView | null = null;
  let panel: TaskPanel | null = null;
  let detail: api.RunDetail | null = null;

  const select = (taskId: string) => setQuery({ task: taskId });

  let failedSeen = -1;
  function renderHead(r: api.Run): void {
    // The failed tasks list follows the run's failed count.
    if ((r.tasks.failed ?? 0) !== failedSeen) {
      failedSeen = r.tasks.failed ?? 0;
      void failures.reload();
    }
    const params = Object.entries(r.params ?? {});
    const dur = r.duration_ms ?? (r.started_at_ms && r.state === 'running' ? Date.now() - r.started_at_ms : null);
    head.replaceChildren(
      h('h1', null, 'Run ', h('span', { class: 'mono', text: r.id }), ' ', chip(r.state)),
      h('dl', { class: 'meta run-meta' },
        h('dt', { text: 'pipeline' }), h('dd', { text: r.pipeline }),
        h('dt', { text: 'tasks' }), h('dd', { attrs: { 'data-total': r.tasks.total },
                                               text: `${r.tasks.succeeded + r.tasks.cached}/${r.tasks.total} succeeded — ${countsText(r.tasks)}` }),
        ...(r.tasks.failed ? [h('dt', { text: 'failed' }),
          h('dd', { class: 'run-failed-count', attrs: { 'data-failed': r.tasks.failed }, text: `${r.tasks.failed} failed` })] : []),
        h('dt', { text: 'started' }), h('dd', { text: fmt.time(r.started_at_ms ?? r.created_at_ms) }),
        h('dt', { text: 'duration' }), h('dd', { text: fmt.duration(dur) }),
        ...(r.message ? [h('dt', { text: 'message' }), h('dd', { text: r.message })] : []),
        ...(params.length ? [h('dt', { text: 'params' }), h('dd', { class: 'params' }, ...params.map(([k, v]) =>
          h('span', { class: 'param' }, h('code', { text: k }), ' = ',
            h('code', { text: typeof v === 'string' ? v : JSON.stringify(v) }))))] : []),
        ...(r.file ? [h('dt', { text: 'file' }), h('dd', { class: 'mono', text: r.file })] : [])));
  }

  async function loadGraph(): Promise<void> {
    try {
      const g = await api.graph(runId, abort.signal);
      renderHead(g.run);
      taskCount = g.tasks.length;
      if (graphView && g.tasks.every((t) => graphView?.has(t.id))) {
        for (const t of g.tasks) graphView.setState(t.id, t.state);
        return;
      }
      graphView?.dispose();
      graphView = new GraphView(g, { onSelect: select });
      const task = query.get('task');
      if (task) graphView.select(task);
      body.replaceChildren(
        h('div', { class: 'graph-head' }, legend(),
          h('span', { class: 'muted small', text: `${g.tasks.length} tasks, ${g.stages.length} stages` })),
        graphView.el);
      graphView.fit();
    } catch (e) {
      if (!abort.signal.aborted) body.replaceChildren(errorBox(e));
    }
  }

  // The timeline fits the width it is drawn at: drawn again (keeping its
  // zoom and scroll) when that changes, as when the task panel opens beside it.
  let timelineWidth = 0;
  function drawTimeline(): void {
    if (!detail) return;
    timelineWidth = body.clientWidth || 900;
    body.replaceChildren(legend(['running', 'succeeded', 'cached', 'failed', 'timed_out', 'cancelled']),
      timeline(detail, timelineWidth, select, timelinePlace(body)));
  }
  let resizeFrame = 0;
  const widthObserver = new ResizeObserver(() => {
    if (tab !== 'timeline' || Math.abs((body.clientWidth || 900) - timelineWidth) < 16) return;
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(drawTimeline);
  });
  widthObserver.observe(body);

  async function loadDetail(): Promise<void> {
    try {
      detail = await api.run(runId, abort.signal);
      taskCount = detail.tasks.length;
      renderHead(detail.run);
      if (tab === 'timeline') {
        drawTimeline();
      } else if (tab === 'outputs') {
        body.replaceChildren(outputsTable(detail));
      } else if (tab === 'checkpoints' || tab === 'tiers') {
        dataTab(runId, tab, body, abort.signal);
      }
    } catch (e) {
      if (!abort.signal.aborted) body.replaceChildren(errorBox(e));
    }
  }

  function openPanel(taskId: string | null): void {
    if (panel && panel.taskId === taskId) return;
    panel?.dispose();
    panel = null;
    side.replaceChildren();
    el.classList.toggle('with-panel', !!taskId);
    if (!taskId) return;
    panel = new TaskPanel(runId, taskId, () => setQuery({ task: null }));
    side.append(panel.el);
  }

  // Task events recolour the graph in place; the reload only reconciles, so
  // a large run (megabytes of JSON) reloads less often.
  let taskCount = 0;
  const reload = throttle(() => void (tab === 'graph' ? loadGraph() : loadDetail()),
                          () => (taskCount > 1000 ? 5000 : 1500));
  const reloadPanel = throttle(() => void panel?.load(), 1500);
  const unsubscribe = api.subscribe((ev) => {
    if (ev.type === 'reconnected') {
      reload();
      reloadPanel();
      return;
    }
    if (ev.run !== runId) return;
    const summary = ev.data.run as api.Run | null | undefined;
    if (ev.type === 'run' && summary && typeof summary === 'object') renderHead(summary);
    if (ev.task && ev.state && graphView && tab === 'graph') graphView.setState(ev.task, ev.state);
    if (panel && (!ev.task || ev.task === panel.taskId)) reloadPanel();
    reload();
  });

  body.append(h('p', { class: 'muted', text: 'loading…' }));
  if (tab === 'graph') void loadGraph();
  else void loadDetail();
  openPanel(query.get('task'));

  return {
    el,
    update(q) {
      const task = q.get('task');
      openPanel(task);
      if (task) graphView?.select(task);
      else graphView?.select(null);
      for (const a of tabs.querySelectorAll('a')) {
        a.setAttribute('href', href('runs', linkId, a.dataset.tab ?? '') + (task ? `?task=${encodeURIComponent(task)}` : ''));
      }
    },
    dispose() {
      abort.abort();
      widthObserver.disconnect();
      cancelAnimationFrame(resizeFrame);
      reload.cancel();
      reloadPanel.cancel();
      unsubscribe();
      graphView?.dispose();
      panel?.dispose();
      failures.dispose();
    },
  };
}

function outputsTable(d: api.RunDetail): HTMLElement {
  const rows: HTMLElement[] = [];
  for (const t of d.tasks) {
    for (const o of t.outputs ?? []) {
      rows.push(h('tr', { attrs: { 'data-artifact': o.id, 'data-keynav-href': href('artifacts', o.id) } },
        h('td', null, link(href('artifacts', o.id), `${o.task_id}/${o.name}`)),
        h('td', { class: 'num', text: `#${o.id}` }),
        h('td', { class: 'num', text: fmt.bytes(o.bytes) }),
        h('td', null, h('code', { attrs: { title: o.content_hash ?? '' }, text: fmt.shortHash(o.content_hash) })),
        h('td', null, ...o.copies.map((c) => h('div', { class: 'copy' }, chip(c.state === 'present' ? 'succeeded' : 'cancelled', c.state),
          ' ', h('strong', { text: c.tier }), ` ${api.copyRole(c)} `, h('span', { class: 'mono small', text: c.uri })))),
        h('td', null, downloadLink(o))));
    }
  }
  if (rows.length === 0) return h('p', { class: 'muted', text: 'This run has no outputs yet.' });
  // Keys (keynav.ts): j/k move between outputs, Enter opens one's lineage.
  return h('table', { class: 'grid outputs-table', attrs: { 'data-keynav': '' } },
    h('thead', null, h('tr', null, ...['artifact', 'id', 'size', 'hash', 'copies', ''].map((c) => h('th', { text: c })))),
    h('tbody', null, ...rows));
}
