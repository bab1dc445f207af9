// DOM building without innerHTML: every string lands in textContent or an
// attribute, so data from the API (task names, log lines) is never parsed as
// markup.

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  attrs?: Record<string, string | number | boolean | null | undefined>;
  on?: Partial<Record<keyof HTMLElementEventMap, (ev: any) => void>>;
  text?: string;
}

function apply(el: Element, props: Props | null | undefined, children: Child[]): void {
  if (props) {
    if (props.class) el.setAttribute('class', props.class);
    if (props.attrs) {
      for (const [k, v] of Object.entries(props.attrs)) {
        if (k.toLowerCase().startsWith('on')) throw new Error(`event attribute ${k}: use props.on`);
        if (v === null || v === undefined || v === false) continue;
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (props.on) {
      for (const [k, f] of Object.entries(props.on)) if (f) el.addEventListener(k, f);
    }
    if (props.text !== undefined) el.textContent = props.text;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, props, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s<K extends keyof SVGElementTagNameMap>(
  tag: K, attrs?: Record<string, string | number | null | undefined>,
  ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs ? { attrs } : null, children);
  return el;
}

// An SVG <title> child: the browser's tooltip, as text.
export function tip(text: string): SVGTitleElement {
  const t = document.createElementNS(SVG_NS, 'title');
  t.textContent = text;
  return t;
}

export function clear(el: Element): void {
  el.replaceChildren();
}

// A hash link to a route; parts are URI-encoded (task ids hold [ ] / and more).
export function href(...parts: Array<string | number>): string {
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}

export function link(to: string, text: string, cls?: string): HTMLAnchorElement {
  return h('a', { attrs: { href: to }, class: cls, text });
}
