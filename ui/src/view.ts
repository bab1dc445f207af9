// What a routed view is: its element, an optional in-place update when only
// the hash's query changes, and a dispose that stops its timers and streams.
import { h } from './dom';

export interface View {
  el: HTMLElement;
  update?(query: URLSearchParams): void;
  dispose(): void;
}

// Replaces `#/path?query` keeping the path; triggers the router's update.
export function setQuery(changes: Record<string, string | null>): void {
  const hash = location.hash.slice(1);
  const qi = hash.indexOf('?');
  const path = qi >= 0 ? hash.slice(0, qi) : hash;
  const q = new URLSearchParams(qi >= 0 ? hash.slice(qi + 1) : '');
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === '') q.delete(k);
    else q.set(k, v);
  }
  const qs = q.toString();
  location.hash = path + (qs ? `?${qs}` : '');
}

export function errorBox(err: unknown): HTMLElement {
  const msg = err instanceof Error ? err.message : String(err);
  return h('div', { class: 'error', attrs: { role: 'alert' }, text: msg });
}

// Calls `fn` at most once per `ms` (a number, or asked each time), the last
// call winning (live refreshes).
export function throttle(fn: () => void, ms: number | (() => number)): { (): void; cancel(): void } {
  let timer: number | undefined;
  let last = 0;
  const wrapped = () => {
    if (timer !== undefined) return;
    const wait = Math.max(0, last + (typeof ms === 'number' ? ms : ms()) - Date.now());
    timer = window.setTimeout(() => {
      timer = undefined;
      last = Date.now();
      fn();
    }, wait);
  };
  wrapped.cancel = () => {
    window.clearTimeout(timer);
    timer = undefined;
  };
  return wrapped;
}
