// The UI's entry: the token, the live-status badge and the hash router.
//   #/runs?state=&q=           runs list
//   #/runs/RUN[/TAB][?task=T]  a run: graph | timeline | outputs, task panel
//   #/runs/last[/TAB]          the newest run, switching to each new one live
//   #/artifacts/ID?direction=&depth=  lineage explorer
//   #/tiers[?run=RUN]          tiers, what a run holds on each, workers
import * as api from './api';
import { installKeynav } from './keynav';
import type { View } from './view';
import { lastRunView } from './views/lastrun';
import { lineageView } from './views/lineage';
import { runView } from './views/run';
import { runsView } from './views/runs';
import { tiersView } from './views/tiers';

interface Route {
  path: string;
  parts: string[];
  query: URLSearchParams;
}

function parse(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  const qi = hash.indexOf('?');
  const path = qi >= 0 ? hash.slice(0, qi) : hash;
  let parts: string[];
  try {
    parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    parts = [];
  }
  return { path, parts, query: new URLSearchParams(qi >= 0 ? hash.slice(qi + 1) : '') };
}

function create(r: Route): View {
  const [top, a, b] = r.parts;
  if (top === 'runs' && a === 'last') return lastRunView(b, r.query);
  if (top === 'runs' && a) return runView(a, b, r.query);
  if (top === 'artifacts' && a) return lineageView(a, r.query);
  if (top === 'tiers') return tiersView(r.query);
  return runsView(r.query);
}

let current: { view: View; path: string } | null = null;

function route(): void {
  const r = parse();
  const app = document.getElementById('app');
  if (!app) return;
  const top = r.parts[0] ?? 'runs';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (top === 'artifacts' ? 'runs' : top));
  }
  if (current && current.path === r.path && current.view.update) {
    current.view.update(r.query);
    return;
  }
  current?.view.dispose();
  const view = create(r);
  current = { view, path: r.path };
  app.replaceChildren(view.el);
  window.scrollTo(0, 0);
}

function start(): void {
  api.initToken();
  // A path the server answered with index.html (/runs/RUN): the same route as a hash.
  if (location.pathname !== '/' && location.pathname !== '/index.html') {
    history.replaceState(null, '', `/${location.search}#${location.pathname}`);
  }
  const live = document.getElementById('live');
  api.onStatus((st) => {
    if (!live) return;
    live.textContent = st === 'live' ? 'live' : st === 'connecting' ? 'connecting…' : 'offline, retrying';
    live.dataset.status = st;
    live.hidden = st === 'idle';
  });
  window.addEventListener('hashchange', route);
  installKeynav();
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
