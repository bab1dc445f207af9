// Where a run's data is, on the run page: the checkpoints and tiers tabs.
import * as api from '../api';
import { h, href } from '../dom';
import { errorBox } from '../view';
import { checkpointsContent } from './checkpoints';
import { runTiersTable } from './tiers';

// Fills `body` with the tab once its data is in (a live reload keeps the
// old content until then: no flicker).
export function dataTab(runId: string, tab: 'checkpoints' | 'tiers', body: HTMLElement, signal: AbortSignal): void {
  void (async () => {
    try {
      const content = tab === 'checkpoints' ? await checkpointsContent(runId, signal)
        : h('div', { class: 'run-tiers-tab' },
          h('p', { class: 'muted small' }, 'What this run holds on each tier it used, as the store recorded it. ',
            h('a', { attrs: { href: `${href('tiers')}?run=${encodeURIComponent(runId)}` }, text: 'All tiers' })),
          runTiersTable(await api.runTiers(runId, signal)));
      if (!signal.aborted) body.replaceChildren(content);
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(errorBox(e));
    }
  })();
}
