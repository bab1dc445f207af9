// The lineage explorer: from an artifact up to what it was made from (back to
// raw ingest) and down to what was made from it (checkpoints, models), laid
// out by dagre; every artifact with its content hash and tier copies.
import * as api from '../api';
import { h, href, link } from '../dom';
import * as fmt from '../format';
import { chip } from '../states';
import { errorBox, setQuery, View } from '../view';
import { isArtifact, isAttempt, LineageGraph } from './lineagegraph';

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
    h('div', { class: 'lineage-main' }, h('div', { class: 'graph lineage-canvas' }, graphBox), details), table);

  let nodes = new Map<string, api.LineageNode>();
  let graph: LineageGraph | null = null;

  function showDetails(id: string): void {
    const n = nodes.get(id);
    graphBox.querySelectorAll('.selected').forEach((g) => g.classList.remove('selected'));
    graphBox.querySelector(`[data-node="${CSS.escape(id)}"]`)?.classList.add('selected');
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
    graph?.dispose();
    graph = new LineageGraph(graphBox, lin, showDetails);
    graph.draw();
    graph.fit();
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

  return { el, dispose: () => { abort.abort(); graph?.dispose(); } };
}
