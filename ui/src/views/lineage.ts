// The lineage explorer: from an artifact up to what it was made from (back to
// raw ingest) and down to what was made from it (checkpoints, models), laid
// out by dagre; every artifact with its content hash and tier copies.
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import * as api from '../api';
import { h, href, link, s, tip } from '../dom';
import * as fmt from '../format';
import { chip, fill, textColor } from '../states';
import { errorBox, setQuery, View } from '../view';

// Past this many nodes the explorer shows the table only (lower the depth).
const kMaxDrawn = 600;
const kArtW = 200;
const kArtH = 40;
const kAttW = 160;
const kAttH = 30;

interface ArtifactNode extends api.LineageNode {
  artifact_id: number;
  ref: string;
  run_id: string;
  task_id: string;
  name: string;
  content_hash: string | null;
  bytes: number | null;
  files?: number | null;
  copies: api.Copy[];
}

interface AttemptNode extends api.LineageNode {
  attempt_id: number;
  run_id: string;
  task_id: string;
  number: number;
  state: string;
  cached_from?: number | null;
}

const isArtifact = (n: api.LineageNode): n is ArtifactNode => n.type === 'artifact';
const isAttempt = (n: api.LineageNode): n is AttemptNode => n.type === 'attempt';

function copiesList(copies: api.Copy[]): HTMLElement {
  if (copies.length === 0) return h('p', { class: 'muted', text: 'no copies recorded' });
  return h('ul', { class: 'copies-list' }, ...copies.map((c) => h('li', { attrs: { 'data-copy-tier': c.tier } },
    h('div', null, h('strong', { text: c.tier }), ` ${api.copyRole(c)} `,
      chip(c.state === 'present' ? 'succeeded' : c.state === 'evicted' ? 'cancelled' : 'pending', c.state),
      ` ${fmt.bytes(c.bytes)}`),
    h('div', { class: 'mono small wrap', text: c.uri }),
    c.content_hash ? h('div', { class: 'mono small muted wrap', text: c.content_hash }) : '')));
}

export function lineageView(artifactId: string, query: URLSearchParams): View {
  const abort = new AbortController();
  const direction = ['up', 'down', 'both'].includes(query.get('direction') ?? '') ? query.get('direction') ?? 'both' : 'both';
  const depthArg = query.get('depth');
  const depth = depthArg && /^\d+$/.test(depthArg) ? Number(depthArg) : null;

  const dirSel = h('select', { attrs: { 'aria-label': 'direction' }, on: { change: () => setQuery({ direction: dirSel.value }) } },
    ...[['both', 'up and down'], ['up', 'upstream (made from)'], ['down', 'downstream (made into)']].map(([v, l]) =>
      h('option', { attrs: { value: v, selected: v === direction }, text: l })));
  const depthIn = h('input', {
    attrs: { type: 'number', min: 1, placeholder: 'all', value: depth ?? '', 'aria-label': 'depth' },
    on: { change: () => setQuery({ depth: depthIn.value }) },
  });
  const graphBox = h('div', { class: 'lineage-graph' });
  const details = h('div', { class: 'lineage-details' });
  const table = h('div', { class: 'lineage-table' });
  const title = h('h1', null, 'Lineage of artifact ', h('span', { class: 'mono', text: `#${artifactId}` }));
  const el = h('section', { class: 'view lineage-view', attrs: { 'data-artifact': artifactId } },
    title,
    h('div', { class: 'filters' }, h('label', null, 'direction ', dirSel), h('label', null, 'depth ', depthIn)),
    h('div', { class: 'lineage-main' }, graphBox, details), table);

  let nodes = new Map<string, api.LineageNode>();

  function showDetails(id: string): void {
    const n = nodes.get(id);
    graphBox.querySelectorAll('g.selected').forEach((g) => g.classList.remove('selected'));
    graphBox.querySelector(`g[data-node="${CSS.escape(id)}"]`)?.classList.add('selected');
    if (!n) return;
    if (isArtifact(n)) {
      details.replaceChildren(
        h('h2', { class: 'mono', text: n.ref }),
        h('dl', { class: 'meta' },
          h('dt', { text: 'artifact' }), h('dd', { text: `#${n.artifact_id}` }),
          h('dt', { text: 'size' }), h('dd', { text: `${fmt.bytes(n.bytes)}${n.files && n.files > 1 ? `, ${n.files} files` : ''}` }),
          h('dt', { text: 'content hash' }), h('dd', { class: 'mono wrap', attrs: { 'data-hash': '' }, text: n.content_hash ?? '-' }),
          h('dt', { text: 'made by' }), h('dd', null, link(href('runs', n.run_id, 'graph') + `?task=${encodeURIComponent(n.task_id)}`,
            `${n.run_id} / ${n.task_id}`))),
        h('h3', { text: 'Copies' }), copiesList(n.copies),
        String(n.artifact_id) === artifactId ? '' : h('p', null, link(href('artifacts', n.artifact_id), 'explore from this artifact')));
    } else if (isAttempt(n)) {
      details.replaceChildren(
        h('h2', { class: 'mono', text: `${n.task_id} attempt ${n.number}` }),
        h('dl', { class: 'meta' },
          h('dt', { text: 'state' }), h('dd', null, chip(n.state)),
          h('dt', { text: 'run' }), h('dd', null, link(href('runs', n.run_id), n.run_id)),
          ...(n.cached_from ? [h('dt', { text: 'reused' }), h('dd', { text: `the outputs of attempt #${n.cached_from}` })] : [])),
        h('p', null, link(href('runs', n.run_id, 'graph') + `?task=${encodeURIComponent(n.task_id)}`, 'open the task')));
    }
  }

  function draw(lin: api.Lineage): void {
    if (lin.nodes.length > kMaxDrawn) {
      graphBox.replaceChildren(h('p', { class: 'muted',
        text: `${lin.nodes.length} nodes: too many to draw; the table lists them (lower the depth to draw).` }));
      return;
    }
    const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
    g.setGraph({ rankdir: 'LR', nodesep: 10, ranksep: 40, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of lin.nodes) {
      g.setNode(n.id, isArtifact(n) ? { width: kArtW, height: kArtH } : { width: kAttW, height: kAttH });
    }
    for (const e of lin.edges) if (nodes.has(e.from) && nodes.has(e.to)) g.setEdge(e.from, e.to, { kind: e.kind });
    dagre.layout(g);
    const gl = g.graph();
    const w = Math.ceil(gl.width ?? 0);
    const ht = Math.ceil(gl.height ?? 0);
    // Shrinks to the box's width (CSS max-width), keeping its proportions.
    const svg = s('svg', { class: 'dag lineage', width: w, height: ht, viewBox: `0 0 ${w} ${ht}`,
                           role: 'img', 'aria-label': 'lineage graph' });
    svg.style.minWidth = `${Math.round(w * 0.6)}px`;  // below that, scroll
    svg.append(s('defs', undefined, s('marker', { id: 'larrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
    const edges = s('g', { class: 'edges' });
    for (const e of g.edges()) {
      const lab = g.edge(e);
      const pts = lab.points ?? [];
      if (!pts.length) continue;
      edges.append(s('path', { d: pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' '),
        class: `edge ${String(lab.kind ?? '')}`, 'marker-end': 'url(#larrow)' }));
    }
    const layer = s('g', { class: 'nodes' });
    for (const id of g.nodes()) {
      const n = nodes.get(id);
      const p = g.node(id);
      if (!n) continue;
      const x = (p.x ?? 0) - p.width / 2;
      const y = (p.y ?? 0) - p.height / 2;
      const root = id === lin.root;
      if (isArtifact(n)) {
        const name = `${n.task_id}/${n.name}`;
        layer.append(s('g', { class: 'node artifact' + (root ? ' root' : ''), transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
                              'data-node': id, 'data-task': n.task_id, 'data-artifact': n.artifact_id, tabindex: 0, role: 'button' },
          s('rect', { width: kArtW, height: kArtH, rx: 12 }),
          s('text', { x: 10, y: 16, class: 'label' }, name.length > 28 ? `${name.slice(0, 27)}…` : name),
          s('text', { x: 10, y: 31, class: 'sub' }, `${fmt.shortHash(n.content_hash)} · ${fmt.bytes(n.bytes)}`),
          tip(`${n.ref} (#${n.artifact_id})\n${n.content_hash ?? ''}\n` +
              n.copies.map((c) => `${c.tier} ${api.copyRole(c)} ${c.state}: ${c.uri}`).join('\n'))));
      } else if (isAttempt(n)) {
        const label = `${n.task_id} #${n.number}`;
        layer.append(s('g', { class: 'node attempt', transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
                              'data-node': id, 'data-task': n.task_id, 'data-state': n.state, tabindex: 0, role: 'button' },
          s('rect', { width: kAttW, height: kAttH, rx: 4, fill: fill(n.state) }),
          s('text', { x: 8, y: 19, fill: textColor(n.state) }, label.length > 24 ? `${label.slice(0, 23)}…` : label),
          tip(`${n.run_id} / ${n.task_id} attempt ${n.number}: ${n.state}`)));
      }
    }
    svg.append(edges, layer);
    graphBox.replaceChildren(svg);
  }

  function list(lin: api.Lineage): void {
    const arts = lin.nodes.filter(isArtifact);
    table.replaceChildren(h('h2', { text: `Artifacts (${arts.length})` }),
      h('table', { class: 'grid artifacts' },
        h('thead', null, h('tr', null, ...['artifact', 'id', 'size', 'content hash', 'copies'].map((c) => h('th', { text: c })))),
        h('tbody', null, ...arts.map((a) => h('tr', { attrs: { 'data-artifact-row': a.artifact_id } },
          h('td', null, link(href('artifacts', a.artifact_id), a.ref)),
          h('td', { class: 'num', text: `#${a.artifact_id}` }),
          h('td', { class: 'num', text: fmt.bytes(a.bytes) }),
          h('td', { class: 'mono small', attrs: { title: a.content_hash ?? '' }, text: fmt.shortHash(a.content_hash) }),
          h('td', null, ...a.copies.map((c) => h('div', { class: 'small' },
            h('strong', { text: c.tier }), ` ${api.copyRole(c)}, ${c.state} `, h('span', { class: 'mono', text: c.uri })))))))));
  }

  graphBox.addEventListener('click', (e) => {
    const g = (e.target as Element).closest('[data-node]');
    if (g) showDetails(g.getAttribute('data-node') ?? '');
  });
  graphBox.addEventListener('keydown', (e) => {
    const g = (e.target as Element).closest('[data-node]');
    if (g && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      showDetails(g.getAttribute('data-node') ?? '');
    }
  });

  void (async () => {
    try {
      const lin = await api.artifactLineage(artifactId, direction, depth, abort.signal);
      nodes = new Map(lin.nodes.map((n) => [n.id, n]));
      const root = lin.root ? nodes.get(lin.root) : undefined;
      if (root && isArtifact(root)) {
        title.replaceChildren('Lineage of ', h('span', { class: 'mono', text: root.ref }), ' ',
          h('span', { class: 'muted', text: `#${root.artifact_id}` }));
      }
      draw(lin);
      list(lin);
      if (lin.root) showDetails(lin.root);
    } catch (e) {
      if (!abort.signal.aborted) graphBox.replaceChildren(errorBox(e));
    }
  })();

  return { el, dispose: () => abort.abort() };
}
