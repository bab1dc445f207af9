// The failed tasks list of a run page: shown above the tabs when the run has
// failures, collapsible. Each failed task with its message, exit code or
// signal, the last lines of its log (as text) and a copy button for the
// shell-quoted `tierflow logs` command; a click or Enter opens the task panel.
// The list is what GET /api/v1/runs/RUN/failures answers (api/run_failures.h):
// nothing here is recomputed.
import * as api from '../api';
import { h } from '../dom';
import { chip } from '../states';

const kLimit = 50;
const kLines = 10;

function copyText(text: string, button: HTMLButtonElement): void {
  const done = (ok: boolean) => {
    button.textContent = ok ? 'copied' : 'select and copy';
    window.setTimeout(() => { button.textContent = 'copy'; }, 1500);
  };
  if (navigator.clipboard?.writeText) {
    navigator.clipboard.writeText(text).then(() => done(true), () => done(false));
  } else {
    done(false);
  }
}

function exitText(f: api.Failure): string {
  if (f.exit_code !== null) return `exit ${f.exit_code}`;
  if (f.signal !== null) return `signal ${f.signal}`;
  return '';
}

function item(f: api.Failure, onSelect: (taskId: string) => void): HTMLElement {
  const copy = h('button', {
    class: 'small', attrs: { type: 'button', 'data-copy': f.logs_command, title: 'copy the command' }, text: 'copy',
    on: { click: (e: MouseEvent) => { e.stopPropagation(); copyText(f.logs_command, copy); } },
  });
  const tail = f.log_tail.length
    ? h('pre', { class: 'log-tail', attrs: { 'data-log-tail': f.task_id } },
      (f.log_cut ? '…\n' : '') + f.log_tail.join('\n'))
    : h('div', { class: 'muted small', text: f.log_note || 'no log lines' });
  // The task's message often is its exit ("exit 2"): said once.
  const message = [f.message, f.attempt_message ?? ''].find((m) => m && m !== exitText(f)) ?? '';
  return h('li', {
    class: 'failure',
    attrs: { 'data-task-id': f.task_id, tabindex: 0 },
    on: {
      click: (e: MouseEvent) => {
        // Selecting log text or the command is not a click on the task.
        if ((e.target as Element).closest('pre, code') && window.getSelection()?.toString()) return;
        onSelect(f.task_id);
      },
    },
  },
  h('div', { class: 'failure-head' },
    h('span', { class: 'task', text: f.task_id }), chip(f.state),
    h('span', { class: 'failed-count', attrs: { 'data-exit': exitText(f) }, text: exitText(f) }),
    f.attempt !== null ? h('span', { class: 'muted small', text: `attempt ${f.attempt}` }) : null,
    h('span', { class: 'failure-message', text: message })),
  tail,
  h('div', { class: 'logs-cmd' }, h('code', { class: 'mono', text: f.logs_command }), copy));
}

// A <details> element for the failures of `runId`, filled when they are
// loaded; `reload()` refreshes it (live runs gain failures). It stays hidden
// while the run has none.
export class FailuresList {
  readonly el: HTMLDetailsElement;
  private readonly abort = new AbortController();
  private readonly summary = h('summary');
  private readonly list = h('ol', { attrs: { 'data-keynav': '', 'aria-label': 'failed tasks' } });
  private loading = false;
  private again = false;  // asked while loading: load once more after

  constructor(private readonly runId: string, private readonly onSelect: (taskId: string) => void) {
    this.el = h('details', { class: 'failures', attrs: { open: true, 'data-failures': runId } },
      this.summary, this.list);
    this.el.hidden = true;
  }

  async reload(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      const got = await api.failures(this.runId, { limit: kLimit, lines: kLines }, this.abort.signal);
      this.el.hidden = got.total === 0;
      this.el.dataset.total = String(got.total);
      this.summary.textContent = `${got.total} failed task${got.total === 1 ? '' : 's'}` +
        (got.total > got.failures.length ? ` (the first ${got.failures.length} shown)` : '');
      this.list.replaceChildren(...got.failures.map((f) => item(f, this.onSelect)));
    } catch {
      // The run page shows its own error; an unknown run has no failures to list.
    } finally {
      this.loading = false;
    }
    if (this.again && !this.abort.signal.aborted) {
      this.again = false;
      await this.reload();
    }
  }

  dispose(): void {
    this.abort.abort();
  }
}
