// The run's DAG as SVG, laid out by dagre. Small stages show one node per
// task; a foreach stage with many tasks is one group node with counts per
// state (expandable into a grid of its tasks), so a 5,000-task run lays out
// a handful of nodes. States change in place: no relayout on live updates.
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import type { RunGraph } from '../api';
import { h, s, tip } from '../dom';
import { countsLine, countStates, failedCount, stateBar } from '../groupbar';
import { keynavRedrawn } from '../keynav';
import { PanZoom } from '../panzoom';
import { fill, textColor } from '../states';

// Foreach stages with more tasks than this start collapsed.
export const kCollapseAbove = 24;

// Task nodes are as wide as their label (monospace, 12px), within bounds.
const kCharW = 7.3;
const kTaskMinW = 110;
const kTaskMaxChars = 32;
const kTaskH = 34;
const kGroupW = 240;
const kGroupH = 74;
const kCell = 9;
const kGap = 2;
const kGridCols = 80;
const kPad = 10;
const kGroupHeader = 40;

interface TaskModel {
  id: string;
  stage: string;
  state: string;
  unit: string;
  node?: SVGGElement;   // its own node, when not in a group
  cell?: SVGRectElement;  // its cell, when in an expanded group
}

interface GroupModel {
  stage: string;
  kind: string;
  tasks: TaskModel[];
  expanded: boolean;
  node?: SVGGElement;
}

export interface GraphOptions {
  onSelect(taskId: string): void;
}

function truncate(t: string, n: number): string {
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

function taskWidth(id: string): number {
  return Math.max(kTaskMinW, Math.ceil(Math.min(id.length, kTaskMaxChars) * kCharW) + 22);
}

export class GraphView {
  readonly el: HTMLElement;
  private readonly tasks = new Map<string, TaskModel>();
  private readonly groups = new Map<string, GroupModel>();
  private readonly scroller: HTMLElement;
  private readonly hover: HTMLElement;
  private readonly panzoom: PanZoom;
  private width = 0;
  private height = 0;
  private selected: string | null = null;
  private dirtyGroups = new Set<string>();
  private frame = 0;
  private readonly edges: Array<{ from: string; to: string }>;
  // Stage pairs the server sent as one edge (too many task edges to list).
  private readonly stageEdges: Array<{ from: string; to: string }>;
  // Milliseconds the last layout and render took (shown, and read by the browser test).
  layoutMs = 0;
  renderMs = 0;

  constructor(graph: RunGraph, private readonly opts: GraphOptions) {
    const stageKinds = new Map(graph.stages.map((st) => [st.name, st]));
    for (const t of graph.tasks) {
      const st = stageKinds.get(t.stage);
      let g = this.groups.get(t.stage);
      if (!g) {
        g = { stage: t.stage, kind: st?.kind ?? '', tasks: [], expanded: false };
        this.groups.set(t.stage, g);
      }
      const tm: TaskModel = { id: t.id, stage: t.stage, state: t.state, unit: '' };
      g.tasks.push(tm);
      this.tasks.set(t.id, tm);
    }
    this.edges = graph.edges;
    this.stageEdges = graph.stageEdges.filter((e) => e.collapsed);
    this.scroller = h('div', {
      class: 'graph-scroll',
      attrs: { 'data-keynav': 'graph' },
      on: {
        click: (e: MouseEvent) => this.onClick(e),
        keydown: (e: KeyboardEvent) => {
          if (e.key !== 'Enter' && e.key !== ' ') return;
          e.preventDefault();
          this.onClick(e);
        },
        mouseover: (e: MouseEvent) => this.onHover(e),
        mouseleave: () => { this.hover.hidden = true; },
      },
    });
    // Enter on a group the keyboard focused (keynav.ts): expand or collapse it.
    this.scroller.addEventListener('keynav-open', (e) => {
      const grp = this.groups.get((e.target as Element).getAttribute('data-stage') ?? '');
      if (!grp) return;
      grp.expanded = !grp.expanded;
      this.layout();
    });
    this.hover = h('div', { class: 'hover', attrs: { hidden: true } });
    this.panzoom = new PanZoom(this.scroller, { maxFit: 1 });
    this.el = h('div', { class: 'graph' }, this.panzoom.tools, this.scroller, this.hover);
    this.layout();
  }

  private collapsible(g: GroupModel): boolean {
    return g.tasks.length > kCollapseAbove;
  }

  private groupSize(g: GroupModel): { w: number; h: number } {
    if (!g.expanded) return { w: kGroupW, h: kGroupH };
    const cols = Math.min(kGridCols, Math.max(16, Math.ceil(Math.sqrt(g.tasks.length * 3))));
    const rows = Math.ceil(g.tasks.length / cols);
    return {
      w: Math.max(kGroupW, 2 * kPad + cols * (kCell + kGap)),
      h: kGroupHeader + kPad + rows * (kCell + kGap),
    };
  }

  // Lays the graph out again (on creation, and when a group expands or collapses).
  layout(): void {
    const t0 = performance.now();
    const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
    g.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 56, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const grp of this.groups.values()) {
      if (this.collapsible(grp)) {
        const unit = `g:${grp.stage}`;
        for (const t of grp.tasks) t.unit = unit;
        const sz = this.groupSize(grp);
        g.setNode(unit, { width: sz.w, height: sz.h });
      } else {
        for (const t of grp.tasks) {
          t.unit = `t:${t.id}`;
          g.setNode(t.unit, { width: taskWidth(t.id), height: kTaskH });
        }
      }
    }
    const seen = new Set<string>();
    const edge = (a: string | undefined, b: string | undefined) => {
      if (!a || !b || a === b) return;
      const key = `${a}\u0000${b}`;
      if (seen.has(key)) return;
      seen.add(key);
      g.setEdge(a, b);
    };
    for (const e of this.edges) edge(this.tasks.get(e.from)?.unit, this.tasks.get(e.to)?.unit);
    for (const e of this.stageEdges) {
      const from = new Set(this.groups.get(e.from)?.tasks.map((t) => t.unit));
      const to = new Set(this.groups.get(e.to)?.tasks.map((t) => t.unit));
      for (const a of from) for (const b of to) edge(a, b);
    }
    dagre.layout(g);
    const t1 = performance.now();
    this.layoutMs = t1 - t0;

    const gl = g.graph();
    this.width = Math.ceil(gl.width ?? 0);
    this.height = Math.ceil(gl.height ?? 0);
    const svg = s('svg', { class: 'dag', role: 'img', 'aria-label': 'run graph' });
    svg.append(s('defs', undefined,
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
                    orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
    const edgeLayer = s('g', { class: 'edges' });
    for (const e of g.edges()) {
      const pts = g.edge(e).points ?? [];
      if (pts.length === 0) continue;
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      edgeLayer.append(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
    }
    const nodeLayer = s('g', { class: 'nodes' });
    // In layout order (by rank, then top to bottom): the order of keyboard navigation.
    const order = g.nodes().map((id) => ({ id, n: g.node(id) }))
      .sort((a, b) => (a.n.x ?? 0) - (b.n.x ?? 0) || (a.n.y ?? 0) - (b.n.y ?? 0));
    for (const { id } of order) {
      const n = g.node(id);
      const x = (n.x ?? 0) - n.width / 2;
      const y = (n.y ?? 0) - n.height / 2;
      if (id.startsWith('t:')) {
        const t = this.tasks.get(id.slice(2));
        if (t) nodeLayer.append(this.taskNode(t, x, y));
      } else {
        const grp = this.groups.get(id.slice(2));
        if (grp) nodeLayer.append(this.groupNode(grp, x, y, n.width, n.height));
      }
    }
    const content = s('g', { class: 'content' }, edgeLayer, nodeLayer);
    svg.append(content);
    this.scroller.replaceChildren(svg);
    this.panzoom.setContent(svg, content, this.width, this.height);
    keynavRedrawn();
    this.renderMs = performance.now() - t1;
    this.el.dataset.layoutMs = this.layoutMs.toFixed(1);
    this.el.dataset.renderMs = this.renderMs.toFixed(1);
  }

  private taskNode(t: TaskModel, x: number, y: number): SVGGElement {
    const rect = s('rect', { width: taskWidth(t.id), height: kTaskH, rx: 6, fill: fill(t.state) });
    const label = s('text', { x: 11, y: kTaskH / 2 + 4, fill: textColor(t.state) }, truncate(t.id, kTaskMaxChars));
    const g = s('g', {
      class: 'node task' + (this.selected === t.id ? ' selected' : ''),
      transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
      'data-task-id': t.id, 'data-state': t.state, tabindex: 0, role: 'button',
    }, rect, label, tip(`${t.id}: ${t.state.replace(/_/g, ' ')}`));
    t.node = g;
    t.cell = undefined;
    return g;
  }

  private groupNode(grp: GroupModel, x: number, y: number, w: number, hgt: number): SVGGElement {
    const g = s('g', {
      class: 'node group' + (grp.expanded ? ' expanded' : ''),
      transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
      'data-stage': grp.stage, 'data-count': grp.tasks.length, tabindex: 0,
      'data-keynav-open': `group:${grp.stage}`,
    });
    g.append(s('rect', { class: 'group-box', width: w, height: hgt, rx: 8 }));
    grp.node = g;
    this.fillGroup(grp, w);
    return g;
  }

  private counts(grp: GroupModel): Record<string, number> {
    return countStates(grp.tasks.map((t) => t.state));
  }

  // (Re)draws a group's contents; its box and position stay.
  private fillGroup(grp: GroupModel, w?: number): void {
    const g = grp.node;
    if (!g) return;
    const box = g.firstChild as SVGRectElement;
    const width = w ?? Number(box.getAttribute('width'));
    g.replaceChildren(box);
    const counts = this.counts(grp);
    const n = grp.tasks.length;
    g.classList.toggle('has-failed', failedCount(counts) > 0);
    g.append(s('text', { x: kPad, y: 17, class: 'group-title' },
      `${truncate(grp.stage, 22)}  ×${n.toLocaleString('en-US')}`));
    const toggle = s('text', { x: width - kPad, y: 17, class: 'group-toggle', 'text-anchor': 'end',
                               'data-toggle': grp.stage, role: 'button' },
      grp.expanded ? '▾ collapse' : '▸ expand');
    g.append(toggle);
    // A bar of counts per state, failures visible however few.
    g.append(stateBar(counts, kPad, 24, width - 2 * kPad));
    const parts = Object.entries(counts).map(([st, c]) => `${c} ${st.replace(/_/g, ' ')}`);
    if (!grp.expanded) {
      g.append(countsLine(counts, kPad, 52, Math.floor((width - 2 * kPad) / 6.8)));
      g.append(s('text', { x: kPad, y: 66, class: 'group-kind' }, `${grp.kind} · foreach`));
      g.append(tip(`${grp.stage}: ${n} tasks\n${parts.join('\n')}`));
      for (const t of grp.tasks) {
        t.cell = undefined;
        t.node = undefined;
      }
      return;
    }
    const { w: gw } = this.groupSize(grp);
    const cols = Math.floor((gw - 2 * kPad) / (kCell + kGap));
    const cells = s('g', { class: 'cells' });
    grp.tasks.forEach((t, i) => {
      const r = s('rect', {
        class: 'cell' + (this.selected === t.id ? ' selected' : ''),
        x: kPad + (i % cols) * (kCell + kGap), y: kGroupHeader + Math.floor(i / cols) * (kCell + kGap),
        width: kCell, height: kCell, fill: fill(t.state), 'data-task-id': t.id, 'data-state': t.state,
      });
      t.cell = r;
      t.node = undefined;
      cells.append(r);
    });
    g.append(cells);
  }

  private onClick(e: Event): void {
    const target = e.target as Element;
    const toggle = target.closest('[data-toggle]');
    if (toggle) {
      const grp = this.groups.get(toggle.getAttribute('data-toggle') ?? '');
      if (grp) {
        grp.expanded = !grp.expanded;
        this.layout();
      }
      return;
    }
    const task = target.closest('[data-task-id]');
    if (task) {
      this.opts.onSelect(task.getAttribute('data-task-id') ?? '');
      return;
    }
    const group = target.closest('g.group');
    if (group && !group.classList.contains('expanded')) {
      const grp = this.groups.get(group.getAttribute('data-stage') ?? '');
      if (grp) {
        grp.expanded = true;
        this.layout();
      }
    }
  }

  private onHover(e: MouseEvent): void {
    const cell = (e.target as Element).closest('rect.cell');
    if (!cell) {
      this.hover.hidden = true;
      return;
    }
    const id = cell.getAttribute('data-task-id') ?? '';
    const t = this.tasks.get(id);
    this.hover.textContent = `${id}: ${(t?.state ?? '').replace(/_/g, ' ')}`;
    this.hover.hidden = false;
    const box = this.el.getBoundingClientRect();
    this.hover.style.left = `${e.clientX - box.left + 12}px`;
    this.hover.style.top = `${e.clientY - box.top + 12}px`;
  }

  // Fills the window below it and shows everything; once it is on the page.
  fit(): void {
    this.panzoom.fit();
  }

  select(taskId: string | null): void {
    const prev = this.selected ? this.tasks.get(this.selected) : undefined;
    prev?.node?.classList.remove('selected');
    prev?.cell?.classList.remove('selected');
    this.selected = taskId;
    const t = taskId ? this.tasks.get(taskId) : undefined;
    if (!t) return;
    if (t.unit.startsWith('g:')) {
      const grp = this.groups.get(t.stage);
      if (grp && !grp.expanded) {
        grp.expanded = true;
        this.layout();
      }
    }
    t.node?.classList.add('selected');
    t.cell?.classList.add('selected');
  }

  has(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  // A task's new state: recoloured at the next frame, with its group's counts.
  setState(taskId: string, state: string): void {
    const t = this.tasks.get(taskId);
    if (!t || t.state === state) return;
    t.state = state;
    if (t.node) {
      t.node.setAttribute('data-state', state);
      t.node.querySelector('rect')?.setAttribute('fill', fill(state));
      t.node.querySelector('text')?.setAttribute('fill', textColor(state));
      const title = t.node.querySelector('title');
      if (title) title.textContent = `${t.id}: ${state.replace(/_/g, ' ')}`;
    }
    if (t.cell) {
      t.cell.setAttribute('fill', fill(state));
      t.cell.setAttribute('data-state', state);
    }
    if (t.unit.startsWith('g:')) {
      this.dirtyGroups.add(t.stage);
      if (!this.frame) {
        this.frame = requestAnimationFrame(() => {
          this.frame = 0;
          for (const st of this.dirtyGroups) {
            const grp = this.groups.get(st);
            if (grp && !grp.expanded) this.fillGroup(grp);
            else if (grp) this.refreshBar(grp);
          }
          this.dirtyGroups.clear();
        });
      }
    }
  }

  // An expanded group's bar, without redrawing its thousands of cells.
  private refreshBar(grp: GroupModel): void {
    const g = grp.node;
    if (!g) return;
    const width = Number((g.firstChild as SVGRectElement).getAttribute('width'));
    const counts = this.counts(grp);
    g.classList.toggle('has-failed', failedCount(counts) > 0);
    g.querySelector('g.group-bar')?.replaceWith(stateBar(counts, kPad, 24, width - 2 * kPad));
  }

  dispose(): void {
    this.panzoom.dispose();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
