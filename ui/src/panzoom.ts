// Pan and zoom of one SVG drawing inside a host element that fills the rest
// of the window (the run graph and the lineage explorer share it). The
// drawing's content sits in a <g> whose transform is `translate scale`; the
// <svg> itself is as large as the host. Drag pans; the wheel, a pinch (a
// ctrl+wheel in Chrome, two touch pointers) and the − / + buttons zoom around
// the pointer (the buttons: around the centre); `fit` shows everything,
// never enlarged past `maxFit`. A drag that moved swallows the click that
// ends it, so nodes stay clickable. Items announcing `keynav-focus` (see
// keynav.ts) are panned into view.
import { h } from './dom';

export interface PanZoomOptions {
  // The largest scale fit may choose (1: a small graph keeps its size).
  maxFit?: number;
  minScale?: number;
  maxScale?: number;
  // Pixels kept free below the host when it fills the window.
  bottomGap?: number;
  minHeight?: number;
}

const kMargin = 16;
const kDragSlop = 4;

export class PanZoom {
  readonly tools: HTMLElement;
  scale = 1;
  private tx = 0;
  private ty = 0;
  private svg: SVGSVGElement | null = null;
  private layer: SVGGElement | null = null;
  private width = 0;
  private height = 0;
  private readonly pointers = new Map<number, { x: number; y: number }>();
  private moved = 0;
  private pinchDist = 0;
  private readonly onResize = () => this.fillHeight();
  private readonly resizeObserver: ResizeObserver;
  private readonly pageObserver: ResizeObserver;
  private fitted = false;
  // Whether the user moved the view: a resize refits only when not.
  private touched = false;

  constructor(readonly host: HTMLElement, private readonly opts: PanZoomOptions = {}) {
    host.classList.add('panzoom');
    const zoomBtn = (text: string, title: string, f: number) =>
      h('button', { text, attrs: { title, 'data-zoom': title }, on: { click: () => this.zoomAtCentre(f) } });
    this.tools = h('div', { class: 'graph-tools' },
      zoomBtn('−', 'zoom out', 1 / 1.25), zoomBtn('+', 'zoom in', 1.25),
      h('button', { text: 'fit', attrs: { title: 'show everything', 'data-zoom': 'fit' },
                    on: { click: () => this.fit() } }));
    host.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    host.addEventListener('pointerdown', (e) => this.onDown(e));
    host.addEventListener('pointermove', (e) => this.onMove(e));
    host.addEventListener('pointerup', (e) => this.onUp(e));
    host.addEventListener('pointercancel', (e) => this.onUp(e));
    // A drag ends with a click on whatever is under the pointer: not a selection.
    host.addEventListener('click', (e) => {
      if (this.moved > kDragSlop) {
        e.stopPropagation();
        e.preventDefault();
      }
      this.moved = 0;
    }, true);
    host.addEventListener('keynav-focus', (e) => this.reveal(e.target as Element));
    window.addEventListener('resize', this.onResize);
    this.resizeObserver = new ResizeObserver(() => {
      if (!this.touched && this.fitted) this.fit();
    });
    this.resizeObserver.observe(host);
    // Content above the canvas that grows or shrinks (a failed tasks list
    // loaded, a header that gains a line) moves its top: the page's size
    // changes, and the canvas takes what the window leaves below it again.
    this.pageObserver = new ResizeObserver(() => {
      const before = this.host.style.height;
      this.fillHeight();
      if (this.host.style.height !== before && !this.touched && this.fitted) this.fit();
    });
    this.pageObserver.observe(document.body);
  }

  // A new drawing (`layer` inside `svg`, `width` × `height` in its own units).
  // A relayout keeps the scale and offset the user chose, else fits again.
  setContent(svg: SVGSVGElement, layer: SVGGElement, width: number, height: number): void {
    this.svg = svg;
    this.layer = layer;
    this.width = width;
    this.height = height;
    svg.setAttribute('width', '100%');
    svg.setAttribute('height', '100%');
    svg.removeAttribute('viewBox');
    // A relayout (a group expanded) of a view nobody moved: show all of it again.
    if (this.fitted && !this.touched) this.fit();
    else this.apply();
  }

  // Makes the host as tall as the window leaves below its top.
  fillHeight(): void {
    if (!this.host.isConnected) return;
    const top = this.host.getBoundingClientRect().top + window.scrollY;
    const hgt = Math.max(this.opts.minHeight ?? 240, window.innerHeight - top - (this.opts.bottomGap ?? 12));
    this.host.style.height = `${Math.floor(hgt)}px`;
  }

  // Everything in view, with a margin, centred; at most maxFit.
  fit(): void {
    this.fillHeight();
    const w = this.host.clientWidth;
    const hgt = this.host.clientHeight;
    if (w <= 0 || hgt <= 0 || this.width <= 0 || this.height <= 0) return;
    const k = Math.min((w - 2 * kMargin) / this.width, (hgt - 2 * kMargin) / this.height, this.opts.maxFit ?? 1);
    this.scale = Math.max(k, 0.01);
    this.tx = (w - this.width * this.scale) / 2;
    this.ty = (hgt - this.height * this.scale) / 2;
    this.fitted = true;
    this.touched = false;
    this.apply();
  }

  // Zooms by `f` keeping the host point (px, py) where it is.
  zoomAt(f: number, px: number, py: number): void {
    const k = Math.min(this.opts.maxScale ?? 4, Math.max(this.opts.minScale ?? 0.02, this.scale * f));
    const real = k / this.scale;
    this.tx = px - (px - this.tx) * real;
    this.ty = py - (py - this.ty) * real;
    this.scale = k;
    this.touched = true;
    this.apply();
  }

  zoomAtCentre(f: number): void {
    this.zoomAt(f, this.host.clientWidth / 2, this.host.clientHeight / 2);
  }

  // Pans so that `el` (a node inside the drawing) is inside the host.
  reveal(el: Element): void {
    const box = this.host.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    let dx = 0;
    let dy = 0;
    if (r.left < box.left + kMargin) dx = box.left + kMargin - r.left;
    else if (r.right > box.right - kMargin) dx = box.right - kMargin - r.right;
    if (r.top < box.top + kMargin) dy = box.top + kMargin - r.top;
    else if (r.bottom > box.bottom - kMargin) dy = box.bottom - kMargin - r.bottom;
    if (!dx && !dy) return;
    this.tx += dx;
    this.ty += dy;
    this.touched = true;
    this.apply();
  }

  dispose(): void {
    window.removeEventListener('resize', this.onResize);
    this.resizeObserver.disconnect();
    this.pageObserver.disconnect();
  }

  private apply(): void {
    this.layer?.setAttribute('transform',
      `translate(${this.tx.toFixed(2)},${this.ty.toFixed(2)}) scale(${this.scale.toFixed(4)})`);
    this.host.dataset.scale = this.scale.toFixed(4);
  }

  private local(e: { clientX: number; clientY: number }): { x: number; y: number } {
    const box = this.host.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top };
  }

  private onWheel(e: WheelEvent): void {
    if (!this.svg) return;
    e.preventDefault();
    // Pixels, lines or pages; a pinch (ctrlKey) sends small deltas.
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    const f = Math.exp(-e.deltaY * unit * (e.ctrlKey ? 0.01 : 0.0015));
    const p = this.local(e);
    this.zoomAt(f, p.x, p.y);
  }

  private onDown(e: PointerEvent): void {
    if (e.button !== 0 || (e.target as Element).closest('button, a, input, select')) return;
    this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    this.moved = 0;
    if (this.pointers.size === 2) this.pinchDist = this.spread();
  }

  private onMove(e: PointerEvent): void {
    const prev = this.pointers.get(e.pointerId);
    if (!prev) return;
    const dx = e.clientX - prev.x;
    const dy = e.clientY - prev.y;
    this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (this.pointers.size === 2) {
      const d = this.spread();
      const [a, b] = [...this.pointers.values()];
      const mid = this.local({ clientX: (a.x + b.x) / 2, clientY: (a.y + b.y) / 2 });
      if (this.pinchDist > 0 && d > 0) this.zoomAt(d / this.pinchDist, mid.x, mid.y);
      this.pinchDist = d;
      this.moved += Math.abs(dx) + Math.abs(dy);
      return;
    }
    this.moved += Math.abs(dx) + Math.abs(dy);
    if (this.moved <= kDragSlop) return;
    if (!this.host.hasPointerCapture(e.pointerId)) this.host.setPointerCapture(e.pointerId);
    this.host.classList.add('panning');
    this.tx += dx;
    this.ty += dy;
    this.touched = true;
    this.apply();
  }

  private onUp(e: PointerEvent): void {
    this.pointers.delete(e.pointerId);
    if (this.host.hasPointerCapture(e.pointerId)) this.host.releasePointerCapture(e.pointerId);
    if (this.pointers.size === 0) this.host.classList.remove('panning');
    this.pinchDist = this.pointers.size === 2 ? this.spread() : 0;
  }

  private spread(): number {
    const [a, b] = [...this.pointers.values()];
    return a && b ? Math.hypot(a.x - b.x, a.y - b.y) : 0;
  }
}
