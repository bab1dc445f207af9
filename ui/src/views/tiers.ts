// The storage tiers: where they are, capacity and usage, the declared and the
// measured performance profile; what one run holds on each (`?run=`); then
// the workers.
import * as api from '../api';
import { h, href } from '../dom';
import * as fmt from '../format';
import { jsonView } from './taskpanel';
import { errorBox, setQuery, View } from '../view';

function bar(used: number, total: number): HTMLElement {
  const pct = Math.min(100, (100 * used) / total);
  const el = h('span', { class: 'usage', attrs: { title: `${pct.toFixed(1)}%` } }, h('span', { class: pct > 90 ? 'full' : '' }));
  (el.firstChild as HTMLElement).style.width = `${pct.toFixed(1)}%`;
  return el;
}

// Capacity and usage: tierflow's copies against a declared capacity, else
// the file system's use; and what the store holds there.
function usage(t: api.Tier): HTMLElement {
  const cell = h('span', { class: 'usage-cell' });
  const stored = t.stored_bytes ?? 0;
  if (t.capacity_bytes) {
    cell.append(bar(stored, t.capacity_bytes),
      h('span', { class: 'small', text: `${fmt.bytes(stored)} of ${fmt.bytes(t.capacity_bytes)} capacity` }));
  } else if (t.fs_total_bytes && t.fs_free_bytes != null) {
    const used = t.fs_total_bytes - t.fs_free_bytes;
    cell.append(bar(used, t.fs_total_bytes),
      h('span', { class: 'small', text: `file system: ${fmt.bytes(used)} of ${fmt.bytes(t.fs_total_bytes)} used` }));
  } else {
    cell.append(h('span', { class: 'small muted', text: 'no capacity declared' }));
  }
  cell.append(h('span', { class: 'small muted',
    text: `tierflow holds ${t.stored_copies ?? 0} ${t.stored_copies === 1 ? 'copy' : 'copies'}, ${fmt.bytes(stored)}` }));
  return cell;
}

function profile(p: api.Profile | null | undefined, none: string): HTMLElement {
  if (!p) return h('span', { class: 'muted', text: none });
  const parts: string[] = [];
  if (p.seq_read_mb_s != null) parts.push(`read ${fmt.num(p.seq_read_mb_s)} MB/s`);
  if (p.seq_write_mb_s != null) parts.push(`write ${fmt.num(p.seq_write_mb_s)} MB/s`);
  if (p.rand_read_iops != null) parts.push(`${fmt.num(p.rand_read_iops)} IOPS`);
  if (p.latency_us != null) parts.push(`${fmt.num(p.latency_us, 1)} µs latency`);
  if (p.create_us != null) parts.push(`create ${fmt.num(p.create_us, 1)} µs`);
  if (p.stat_us != null) parts.push(`stat ${fmt.num(p.stat_us, 1)} µs`);
  return h('span', null, parts.join(', '),
    p.measured_at_ms ? h('div', { class: 'muted small', text: `measured ${fmt.time(p.measured_at_ms)}` }) : null);
}

// What one run holds on each tier it used (GET /runs/RUN/tiers): outputs
// homed there, working copies, checkpoints flushed there, and their bytes.
export function runTiersTable(uses: api.RunTierUse[]): HTMLElement {
  const count = (n: number, b: number) => (n ? `${n} · ${fmt.bytes(b)}` : '—');
  return h('table', { class: 'grid run-tiers' },
    h('thead', null, h('tr', null, ...['tier', 'adapter', 'location', 'outputs (home)', 'working copies',
      'checkpoints', 'bytes held', 'evicted'].map((c) => h('th', { text: c })))),
    h('tbody', null, ...uses.map((t) => h('tr', { attrs: { 'data-run-tier': t.name, 'data-outputs': t.outputs,
      'data-copies': t.copies, 'data-checkpoints': t.checkpoints, 'data-bytes': t.bytes } },
      h('td', null, h('strong', { text: t.name }), t.recorded ? '' : h('div', { class: 'muted small',
        text: 'not among the run\'s recorded tiers' })),
      h('td', { text: t.adapter || '—' }), h('td', { class: 'mono small wrap', text: t.location || '—' }),
      h('td', { class: 'num', text: count(t.outputs, t.home_bytes) }),
      h('td', { class: 'num', text: count(t.copies, t.working_bytes) }),
      h('td', { class: 'num', text: count(t.checkpoints, t.checkpoint_bytes) }),
      h('td', { class: 'num', text: fmt.bytes(t.bytes) }),
      h('td', { class: 'num', text: t.evicted ? String(t.evicted) : '—' })))));
}

// "Used by a run": a selector of recent runs (`?run=`, default the newest)
// and what the chosen one holds on each tier.
function runUsage(query: URLSearchParams, signal: AbortSignal): { el: HTMLElement; show(run: string | null): void } {
  const select = h('select', { attrs: { 'aria-label': 'run', 'data-run-select': '' } });
  const box = h('div', { class: 'run-tiers-box' });
  const el = h('div', null, h('label', { class: 'run-select' }, 'run ', select), box);
  let shown: string | null = null;
  async function show(run: string | null): Promise<void> {
    const id = run ?? select.value;
    if (!id || id === shown) return;
    shown = id;
    select.value = id;
    try {
      const uses = await api.runTiers(id, signal);
      box.replaceChildren(runTiersTable(uses), h('p', { class: 'small' },
        h('a', { attrs: { href: href('runs', id, 'outputs') }, text: `the outputs of ${id}` })));
    } catch (e) {
      if (!signal.aborted) box.replaceChildren(errorBox(e));
    }
  }
  select.addEventListener('change', () => setQuery({ run: select.value }));
  void (async () => {
    try {
      const runs = await api.runs({ limit: 50 }, signal);
      const wanted = query.get('run');
      const ids = runs.map((r) => r.id);
      if (wanted && !ids.includes(wanted)) ids.unshift(wanted);
      select.replaceChildren(...ids.map((id) => h('option', { attrs: { value: id }, text: id })));
      if (ids.length === 0) {
        box.replaceChildren(h('p', { class: 'muted', text: 'No runs yet.' }));
        return;
      }
      await show(wanted ?? ids[0]);
    } catch (e) {
      if (!signal.aborted) box.replaceChildren(errorBox(e));
    }
  })();
  return { el, show: (run) => void show(run) };
}

export function tiersView(query: URLSearchParams = new URLSearchParams()): View {
  const abort = new AbortController();
  const tiersBox = h('div', null, h('p', { class: 'muted', text: 'loading…' }));
  const workersBox = h('div');
  const used = runUsage(query, abort.signal);
  const el = h('section', { class: 'view tiers-view' }, h('h1', { text: 'Tiers' }), tiersBox,
    h('h2', { text: 'Used by a run' }), used.el, h('h2', { text: 'Workers' }), workersBox);

  void (async () => {
    try {
      const tiers = await api.tiers(abort.signal);
      tiersBox.replaceChildren(h('table', { class: 'grid tiers' },
        h('thead', null, h('tr', null, ...['tier', 'adapter', 'scope', 'durability', 'location', 'capacity / usage',
          'measured profile', 'declared profile'].map((c) => h('th', { text: c })))),
        h('tbody', null, ...tiers.map((t) => h('tr', { attrs: { 'data-tier': t.name } },
          h('td', null, h('strong', { text: t.name })), h('td', { text: t.adapter }), h('td', { text: t.scope }),
          h('td', { text: t.durability }), h('td', { class: 'mono small wrap', text: t.location }),
          h('td', null, usage(t)), h('td', { attrs: { 'data-measured': t.measured_profile ? 'true' : 'false' } },
            profile(t.measured_profile, 'not measured: tierflow tiers probe')),
          h('td', null, profile(t.declared_profile, 'none declared')))))));
    } catch (e) {
      if (!abort.signal.aborted) tiersBox.replaceChildren(errorBox(e));
    }
    try {
      const ws = await api.workers(abort.signal);
      if (ws.length === 0) {
        workersBox.replaceChildren(h('p', { class: 'muted', text: 'No workers registered (embedded runs use the local pool).' }));
        return;
      }
      const cols = Array.from(new Set(ws.flatMap((w) => Object.keys(w))));
      workersBox.replaceChildren(h('table', { class: 'grid workers' },
        h('thead', null, h('tr', null, ...cols.map((c) => h('th', { text: c })))),
        h('tbody', null, ...ws.map((w) => h('tr', null, ...cols.map((c) => {
          const v = w[c];
          if (typeof v === 'number' && /_ms$/.test(c) && v > 1e12) return h('td', { text: fmt.time(v) });
          return h('td', null, jsonView(v));
        }))))));
    } catch (e) {
      if (!abort.signal.aborted) workersBox.replaceChildren(errorBox(e));
    }
  })();

  return { el, update: (q) => used.show(q.get('run')), dispose: () => abort.abort() };
}
