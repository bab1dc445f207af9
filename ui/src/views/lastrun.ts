// `#/runs/last[/TAB]`: the newest run, followed live. A run started later
// (any event naming a run not shown) replaces the one shown, while the URL
// stays #/runs/last; the run itself is runView's, so it is as live as any.
import * as api from '../api';
import { h } from '../dom';
import { errorBox, throttle, View } from '../view';
import { runView } from './run';

export function lastRunView(tab: string | undefined, query: URLSearchParams): View {
  const el = h('div', { class: 'last-run', attrs: { 'data-follows': 'last' } },
    h('p', { class: 'muted', text: 'loading…' }));
  const abort = new AbortController();
  let inner: View | null = null;
  let shown = '';
  let q = query;

  async function follow(): Promise<void> {
    try {
      const [newest] = await api.runs({ limit: 1 }, abort.signal);
      if (abort.signal.aborted) return;
      if (!newest) {
        if (!inner) el.replaceChildren(h('p', { class: 'muted', text: 'No runs yet: start one with `tierflow run PIPELINE.yaml`.' }));
        return;
      }
      if (newest.id === shown) return;
      // The task of the run shown before is not one of the new run's.
      if (shown) q = new URLSearchParams();
      inner?.dispose();
      shown = newest.id;
      inner = runView(newest.id, tab, q, 'last');
      el.dataset.run = shown;
      el.replaceChildren(inner.el);
    } catch (e) {
      if (!abort.signal.aborted && !inner) el.replaceChildren(errorBox(e));
    }
  }

  const check = throttle(() => void follow(), 300);
  const unsubscribe = api.subscribe((ev) => {
    if (ev.type === 'reconnected' || (ev.run && ev.run !== shown)) check();
  });
  void follow();

  return {
    el,
    update(next) {
      q = next;
      inner?.update?.(next);
    },
    dispose() {
      abort.abort();
      check.cancel();
      unsubscribe();
      inner?.dispose();
    },
  };
}
