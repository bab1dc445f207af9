// The lineage explorer's drawing: artifacts and attempts laid out by dagre in
// a pan-and-zoom canvas. A stage with many members is one group node, as the
// run graph groups foreach stages (Dagster's lineage grouped by asset): its
// attempts are "stage: N attempts" with a bar of their states (failures in
// red), its artifacts of one output "stage.output: N artifacts"; edges join
// groups, with the number of lineage edges they stand for. A click on a group
// expands it into a grid of its members (each clickable), the toggle
// collapses it. The starting node always stays a node of its own.
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import * as api from '../api';
import { s, tip } from '../dom';
import * as fmt from '../format';
import { countsLine, countStates, failedCount, stateBar } from '../groupbar';
import { PanZoom } from '../panzoom';
import { fill, textColor } from '../states';

// A stage with more members than this is grouped; past kGroupAllAbove nodes
// in the walk, every stage with more than one is.
export const kGroupAbove = 24;
export const kGroupAllAbove = 600;
type LGraph = InstanceType<typeof dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>>;
const kArtW = 190;
const kArtH = 40;
const kAttW = 150;
const kAttH = 30;
const kGroupW = 250;
const kGroupH = 70;
const kCell = 10;
const kGap = 2;
const kPad = 10;
const kGroupHeader = 40;

export interface ArtifactNode extends api.LineageNode {
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

export interface AttemptNode extends api.LineageNode {
  attempt_id: number;
  run_id: string;
  task_id: string;
  number: number;
  state: string;
  cached_from?: number | null;
}

export const isArtifact = (n: api.LineageNode): n is ArtifactNode => n.type === 'artifact';
export const isAttempt = (n: api.LineageNode): n is AttemptNode => n.type === 'attempt';

interface Group {
  key: string;
  kind: 'attempts' | 'artifacts';
  label: string;
  members: api.LineageNode[];
  grouped: boolean;
  expanded: boolean;
}

function stageOf(taskId: string): string {
  const i = taskId.indexOf('[');
  return i > 0 ? taskId.slice(0, i) : taskId;
}

function truncate(t: string, n: number): string {
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

export class LineageGraph {
  private readonly panzoom: PanZoom;
  private readonly groups = new Map<string, Group>();
  private readonly groupOf = new Map<string, Group>();
  private readonly byId = new Map<string, api.LineageNode>();
  private rankdir: 'LR' | 'TB' | null = null;
  layoutMs = 0;

  constructor(private readonly host: HTMLElement, private readonly lin: api.Lineage,
              private readonly onSelect: (nodeId: string) => void) {
    this.panzoom = new PanZoom(host, { maxFit: 1, bottomGap: 16 });
    host.parentElement?.append(this.panzoom.tools);
    const byName = new Map<string, Group>();
    for (const n of lin.nodes) {
      this.byId.set(n.id, n);
      const taskId = String(n.task_id ?? '');
      const run = String(n.run_id ?? '');
      const stage = stageOf(taskId);
      const name = isArtifact(n) ? `a\u0000${run}\u0000${stage}.${n.name}` : `t\u0000${run}\u0000${stage}`;
      let g = byName.get(name);
      if (!g) {
        const key = `G${byName.size}`;
        g = isArtifact(n) ? { key, kind: 'artifacts', label: `${stage}.${n.name}`, members: [], grouped: false, expanded: false }
          : { key, kind: 'attempts', label: stage, members: [], grouped: false, expanded: false };
        byName.set(name, g);
        this.groups.set(key, g);
      }
      if (n.id === lin.root) continue;  // the starting node stays a node of its own
      g.members.push(n);
      this.groupOf.set(n.id, g);
    }
    const many = lin.nodes.length > kGroupAllAbove;
    for (const g of this.groups.values()) g.grouped = g.members.length > kGroupAbove || (many && g.members.length > 1);
    host.addEventListener('click', (e) => this.onClick(e));
    host.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
      this.onClick(e);
    });
  }

  // Lays out and draws (again); then fit() once it is on the page.
  draw(): void {
    const t0 = performance.now();
    const g = this.rankdir ? this.layout(this.rankdir) : this.bestLayout();
    this.render(g);
    this.layoutMs = performance.now() - t0;
    this.host.dataset.drawMs = this.layoutMs.toFixed(1);
  }

  fit(): void {
    this.panzoom.fit();
  }

  dispose(): void {
    this.panzoom.dispose();
  }

  private unitOf(id: string): string {
    const g = this.groupOf.get(id);
    return g && g.grouped ? `g:${g.key}` : `n:${id}`;
  }

  private groupSize(g: Group): { w: number; h: number } {
    if (!g.expanded) return { w: kGroupW, h: kGroupH };
    const n = g.members.length;
    const cols = Math.min(60, Math.max(16, Math.ceil(Math.sqrt(n * 3))));
    return { w: Math.max(kGroupW, 2 * kPad + cols * (kCell + kGap)),
             h: kGroupHeader + kPad + Math.ceil(n / cols) * (kCell + kGap) };
  }

  // Left to right or top to bottom, whichever fits the canvas at a larger scale.
  private bestLayout(): LGraph {
    const lr = this.layout('LR');
    const tb = this.layout('TB');
    this.panzoom.fillHeight();
    const w = this.host.clientWidth || 1000;
    const hgt = this.host.clientHeight || 600;
    const scale = (g: LGraph) =>
      Math.min(w / Math.max(1, g.graph().width ?? 1), hgt / Math.max(1, g.graph().height ?? 1));
    this.rankdir = scale(tb) > scale(lr) * 1.05 ? 'TB' : 'LR';
    this.host.dataset.rankdir = this.rankdir;
    return this.rankdir === 'TB' ? tb : lr;
  }

  private layout(rankdir: 'LR' | 'TB'): LGraph {
    const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
    g.setGraph({ rankdir, nodesep: 10, ranksep: rankdir === 'LR' ? 36 : 28, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of this.lin.nodes) {
      const unit = this.unitOf(n.id);
      if (unit.startsWith('n:')) {
        g.setNode(unit, isArtifact(n) ? { width: kArtW, height: kArtH } : { width: kAttW, height: kAttH });
      } else if (!g.hasNode(unit)) {
        const grp = this.groupOf.get(n.id);
        if (grp) {
          const sz = this.groupSize(grp);
          g.setNode(unit, { width: sz.w, height: sz.h });
        }
      }
    }
    const counts = new Map<string, { from: string; to: string; n: number; kinds: Set<string> }>();
    for (const e of this.lin.edges) {
      const a = this.unitOf(e.from);
      const b = this.unitOf(e.to);
      if (a === b || !g.hasNode(a) || !g.hasNode(b)) continue;
      const key = `${a}\u0000${b}`;
      const c = counts.get(key) ?? { from: a, to: b, n: 0, kinds: new Set<string>() };
      c.n++;
      c.kinds.add(e.kind);
      counts.set(key, c);
    }
    for (const c of counts.values()) g.setEdge(c.from, c.to, { n: c.n, kind: [...c.kinds].join(' ') });
    dagre.layout(g);
    return g;
  }

  private render(g: LGraph): void {
    const gl = g.graph();
    const w = Math.ceil(gl.width ?? 0);
    const ht = Math.ceil(gl.height ?? 0);
    const svg = s('svg', { class: 'dag lineage', role: 'img', 'aria-label': 'lineage graph' });
    svg.append(s('defs', undefined, s('marker', { id: 'larrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
    const edges = s('g', { class: 'edges' });
    for (const e of g.edges()) {
      const lab = g.edge(e);
      const pts = lab.points ?? [];
      if (!pts.length) continue;
      edges.append(s('path', { d: pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' '),
        class: `edge ${String(lab.kind ?? '')}`, 'marker-end': 'url(#larrow)', 'data-n': Number(lab.n ?? 1) }));
      if (Number(lab.n ?? 1) > 1) {
        const mid = pts[Math.floor(pts.length / 2)];
        edges.append(s('text', { x: mid.x.toFixed(1), y: (mid.y - 4).toFixed(1), class: 'edge-count',
                                 'text-anchor': 'middle' }, `×${Number(lab.n).toLocaleString('en-US')}`));
      }
    }
    const layer = s('g', { class: 'nodes' });
    let drawn = 0;
    for (const unit of g.nodes()) {
      const p = g.node(unit);
      const x = (p.x ?? 0) - p.width / 2;
      const y = (p.y ?? 0) - p.height / 2;
      const at = `translate(${x.toFixed(1)},${y.toFixed(1)})`;
      drawn++;
      if (unit.startsWith('g:')) {
        const grp = this.groups.get(unit.slice(2));
        if (grp) layer.append(this.groupNode(grp, at, p.width, p.height));
        continue;
      }
      const id = unit.slice(2);
      const n = this.byId.get(id);
      if (n) layer.append(this.singleNode(n, at, id === this.lin.root));
    }
    const content = s('g', { class: 'content' }, edges, layer);
    svg.append(content);
    this.host.replaceChildren(svg);
    this.host.dataset.drawn = String(drawn);
    this.panzoom.setContent(svg, content, w, ht);
  }

  private singleNode(n: api.LineageNode, at: string, root: boolean): SVGGElement {
    if (isArtifact(n)) {
      const name = `${n.task_id}/${n.name}`;
      return s('g', { class: 'node artifact' + (root ? ' root' : ''), transform: at,
                      'data-node': n.id, 'data-task': n.task_id, 'data-artifact': n.artifact_id, tabindex: 0, role: 'button' },
        s('rect', { width: kArtW, height: kArtH, rx: 12 }),
        s('text', { x: 10, y: 16, class: 'label' }, truncate(name, 24)),
        s('text', { x: 10, y: 31, class: 'sub' }, `${fmt.shortHash(n.content_hash)} · ${fmt.bytes(n.bytes)}`),
        tip(`${n.ref} (#${n.artifact_id})\n${n.content_hash ?? ''}\n` +
            n.copies.map((c) => `${c.tier} ${api.copyRole(c)} ${c.state}: ${c.uri}`).join('\n')));
    }
    const a = n as AttemptNode;
    const label = `${a.task_id} #${a.number}`;
    return s('g', { class: 'node attempt', transform: at, 'data-node': n.id, 'data-task': a.task_id,
                    'data-state': a.state, tabindex: 0, role: 'button' },
      s('rect', { width: kAttW, height: kAttH, rx: 4, fill: fill(a.state) }),
      s('text', { x: 8, y: 19, fill: textColor(a.state) }, truncate(label, 19)),
      tip(`${a.run_id} / ${a.task_id} attempt ${a.number}: ${a.state}`));
  }

  private groupNode(grp: Group, at: string, w: number, hgt: number): SVGGElement {
    const n = grp.members.length;
    const noun = grp.kind === 'attempts' ? 'attempts' : 'artifacts';
    const node = s('g', { class: `node group lgroup ${grp.kind}` + (grp.expanded ? ' expanded' : ''), transform: at,
                          'data-group': grp.key, 'data-label': grp.label, 'data-kind': grp.kind, 'data-count': n, tabindex: 0, role: 'button' },
      s('rect', { class: 'group-box', width: w, height: hgt, rx: 8 }),
      s('text', { x: kPad, y: 17, class: 'group-title' }, `${truncate(grp.label, 16)}: ${n.toLocaleString('en-US')} ${noun}`),
      s('text', { x: w - kPad, y: 17, class: 'group-toggle', 'text-anchor': 'end', 'data-toggle': grp.key },
        grp.expanded ? '▾ collapse' : '▸ expand'));
    if (grp.kind === 'attempts') {
      const counts = countStates(grp.members.map((m) => String((m as AttemptNode).state)));
      node.classList.toggle('has-failed', failedCount(counts) > 0);
      node.append(stateBar(counts, kPad, 24, w - 2 * kPad));
      if (!grp.expanded) node.append(countsLine(counts, kPad, 52, Math.floor((w - 2 * kPad) / 6.8)));
      node.append(tip(`${grp.label}: ${n} attempts\n` +
        Object.entries(counts).map(([st, c]) => `${c} ${st.replace(/_/g, ' ')}`).join('\n')));
    } else {
      const bytes = grp.members.reduce((t, m) => t + Number((m as ArtifactNode).bytes ?? 0), 0);
      if (!grp.expanded) {
        node.append(s('text', { x: kPad, y: 40, class: 'group-counts' }, `${fmt.bytes(bytes)} in all`));
        node.append(s('text', { x: kPad, y: 58, class: 'group-kind' }, 'artifacts of one output'));
      } else {
        node.append(s('text', { x: kPad, y: 32, class: 'group-kind' }, fmt.bytes(bytes)));
      }
      node.append(tip(`${grp.label}: ${n} artifacts, ${fmt.bytes(bytes)}`));
    }
    if (grp.expanded) {
      const cols = Math.floor((w - 2 * kPad) / (kCell + kGap));
      const cells = s('g', { class: 'cells' });
      grp.members.forEach((m, i) => {
        const attempt = isAttempt(m);
        cells.append(s('rect', {
          class: 'cell', x: kPad + (i % cols) * (kCell + kGap), y: kGroupHeader + Math.floor(i / cols) * (kCell + kGap),
          width: kCell, height: kCell, rx: attempt ? 1 : 5, fill: attempt ? fill(m.state) : '#ffffff',
          stroke: attempt ? null : '#5b6b8c', 'data-node': m.id, 'data-task': String(m.task_id ?? ''),
          'data-state': attempt ? m.state : null,
        }, tip(attempt ? `${m.task_id} #${m.number}: ${m.state}` : String((m as ArtifactNode).ref ?? m.id))));
      });
      node.append(cells);
    }
    return node;
  }

  private onClick(e: Event): void {
    const target = e.target as Element;
    const toggle = target.closest('[data-toggle]');
    const group = target.closest('g.lgroup');
    const member = target.closest('[data-node]');
    if (member) {
      this.onSelect(member.getAttribute('data-node') ?? '');
      return;
    }
    if (!group) return;
    const grp = this.groups.get(group.getAttribute('data-group') ?? '');
    if (!grp || (grp.expanded && !toggle)) return;
    grp.expanded = !grp.expanded;
    this.draw();
  }
}
