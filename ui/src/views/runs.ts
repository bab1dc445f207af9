// The runs list: newest first, filtered by state and text, with task counts
// per state; refreshed live when a run changes.
import * as api from '../api';
import { h, href, link } from '../dom';
import * as fmt from '../format';
import { chip, countsBar, countsText, kRunStates } from '../states';
import { errorBox, setQuery, throttle, View } from '../view';

const kLimit = 500;

function runState(r: api.Run): string {
  return r.state === 'running' && r.engine_alive === false ? 'running (engine gone)' : r.state;
}

export function runsView(query: URLSearchParams): View {
  let all: api.Run[] = [];
  let state = query.get('state') ?? '';
  let text = query.get('q') ?? '';
  const abort = new AbortController();

  const stateChips = h('div', { class: 'filters-states' });
  const search = h('input', {
    attrs: { type: 'search', placeholder: 'filter: run, pipeline, message', value: text, 'aria-label': 'filter runs' },
    on: { input: () => setQuery({ q: search.value }) },
  });
  const tbody = h('tbody');
  const status = h('div', { class: 'muted' });
  const el = h('section', { class: 'view runs-view' },
    h('h1', { text: 'Runs' }),
    h('div', { class: 'filters' }, stateChips, search),
    h('table', { class: 'grid runs', attrs: { 'data-keynav': '' } },
      h('thead', null, h('tr', null, ...['Run', 'Pipeline', 'State', 'Tasks', 'Failed', 'Started', 'Duration']
        .map((c) => h('th', { text: c })))),
      tbody),
    status);

  function renderChips(): void {
    const counts: Record<string, number> = {};
    for (const r of all) counts[r.state] = (counts[r.state] ?? 0) + 1;
    const mk = (st: string, label: string) => {
      const b = h('button', {
        class: 'filter-chip' + (state === st ? ' active' : ''),
        attrs: { 'data-filter-state': st, 'aria-pressed': state === st ? 'true' : 'false' },
        on: { click: () => setQuery({ state: state === st ? null : st }) },
      }, label);
      return b;
    };
    stateChips.replaceChildren(mk('', `all ${all.length}`),
      ...kRunStates.map((st) => mk(st, `${st} ${counts[st] ?? 0}`)));
  }

  function renderRows(): void {
    const needle = text.trim().toLowerCase();
    const rows = all.filter((r) => (!state || r.state === state) &&
      (!needle || [r.id, r.pipeline, r.message ?? '', r.state].some((f) => f.toLowerCase().includes(needle))));
    const now = Date.now();
    tbody.replaceChildren(...rows.map((r) => {
      const t = r.tasks;
      const dur = r.duration_ms ?? (r.started_at_ms && r.state === 'running' ? now - r.started_at_ms : null);
      const failed = t.failed ?? 0;
      const bar = countsBar(t, t.total);
      // A few failures among thousands stay visible: the failed segment never
      // shrinks below a few pixels (Airflow's grid: a failure is obvious).
      const failedSeg = bar.querySelector<HTMLElement>('span[title^="failed:"]');
      if (failedSeg) {
        failedSeg.classList.add('seg-failed');
        failedSeg.dataset.failed = String(failed);
      }
      const target = href('runs', r.id);
      return h('tr', { class: failed > 0 ? 'has-failed' : '', attrs: { 'data-run': r.id, 'data-keynav-href': target } },
        h('td', null, link(target, r.id)),
        h('td', { text: r.pipeline }),
        h('td', null, chip(r.state, runState(r))),
        h('td', { class: 'tasks-cell' }, h('span', { class: 'num', attrs: { title: 'succeeded (or cached) of all tasks' },
          text: `${t.succeeded + t.cached}/${t.total}` }),
          bar, h('span', { class: 'muted small', text: countsText(t) })),
        h('td', { class: 'num' + (failed > 0 ? ' failed-count' : ''), attrs: { 'data-failed': failed },
                  text: String(failed) }),
        h('td', { text: fmt.time(r.started_at_ms ?? r.created_at_ms) }),
        h('td', { class: 'num', text: fmt.duration(dur) }));
    }));
    status.textContent = rows.length === 0
      ? (all.length === 0 ? 'No runs yet: start one with `tierflow run PIPELINE.yaml`.' : 'No run matches the filter.')
      : `${rows.length} of ${all.length} runs${all.length >= kLimit ? ` (the newest ${kLimit})` : ''}`;
  }

  async function load(): Promise<void> {
    try {
      all = await api.runs({ limit: kLimit }, abort.signal);
      renderChips();
      renderRows();
    } catch (e) {
      if (!abort.signal.aborted) status.replaceChildren(errorBox(e));
    }
  }

  const refresh = throttle(() => void load(), 1000);
  const unsubscribe = api.subscribe((ev) => {
    if (ev.run || ev.type === 'run' || ev.type === 'reconnected') refresh();
  });
  // Durations of running runs tick without events.
  const ticker = window.setInterval(() => {
    if (all.some((r) => r.state === 'running')) renderRows();
  }, 1000);
  void load();

  return {
    el,
    update(q) {
      state = q.get('state') ?? '';
      text = q.get('q') ?? '';
      if (search.value !== text) search.value = text;
      renderChips();
      renderRows();
    },
    dispose() {
      abort.abort();
      refresh.cancel();
      unsubscribe();
      window.clearInterval(ticker);
    },
  };
}
