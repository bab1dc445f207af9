// The download link of an output (GET /artifacts/ID/download), in the run's
// outputs tab and the task panel.
import * as api from '../api';
import { h } from '../dom';

// A download link when the server can answer one (one file, ≤ 16 MiB, a
// present copy); else why not, in a word and a tooltip.
export function downloadLink(a: api.Artifact): HTMLElement | string {
  if (!api.canDownload(a)) {
    const [label, why] = (a.files ?? 1) !== 1 ? ['folder', 'a folder of files: its lineage shows where it lives']
      : (a.bytes ?? 0) > api.kMaxDownloadBytes ? ['over 16 MiB', 'over 16 MiB: its lineage shows where it lives']
        : ['no copy', 'no present copy to download'];
    return h('span', { class: 'muted small', attrs: { title: why, 'data-no-download': label }, text: label });
  }
  return h('a', { class: 'download', text: 'download',
    attrs: { href: api.downloadUrl(a), download: '', 'data-download': a.id, title: `download ${a.task_id}/${a.name}` } });
}
