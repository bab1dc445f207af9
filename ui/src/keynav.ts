// Keyboard navigation between the tasks (and runs) a view shows.
//
// The protocol, for any view:
// - An element marked `data-keynav` is a list of items: its descendants with
//   `data-task-id` (a task), `data-keynav-href` (a link: a run, an
//   artifact) or `data-keynav-open` (something the view opens itself: a
//   collapsed group; the value names it). Items are visited in document order, so a view puts them in
//   the order a reader expects (the run graph: by rank, then top to bottom;
//   an expanded group's cells in their grid order).
// - ArrowDown / ArrowRight / j move to the next item, ArrowUp / ArrowLeft / k
//   to the previous one. The current item gets the class `kbd-focus`, is
//   scrolled into view and receives a bubbling `keynav-focus` event (the pan
//   and zoom of panzoom.ts pans it into its canvas).
// - Enter opens the current item: a task's panel (`?task=ID`), the item's
//   `data-keynav-href`, or for `data-keynav-open` a bubbling `keynav-open`
//   event the view handles (the run graph expands or collapses the group). Esc closes the task panel (`?task` removed).
// - Keys typed in an input, a select or a textarea, or with Ctrl, Alt or
//   Meta held, are left alone.
// With several lists on a page, keys go to the one holding the current item,
// else the one clicked in last, else the one holding the focused element,
// else the view's canvas (the run graph), else the first on the page.
import { setQuery } from './view';

const kItems = '[data-task-id], [data-keynav-href], [data-keynav-open]';

let current: Element | null = null;
// What the current item was, to find it again when its list is redrawn.
let currentKey: { list: Element; attr: string; value: string } | null = null;

function itemsOf(list: Element): Element[] {
  return Array.from(list.querySelectorAll(kItems));
}

function keyOf(item: Element): { attr: string; value: string } {
  const href = item.getAttribute('data-keynav-href');
  if (href !== null) return { attr: 'data-keynav-href', value: href };
  const opens = item.getAttribute('data-keynav-open');
  if (opens !== null) return { attr: 'data-keynav-open', value: opens };
  return { attr: 'data-task-id', value: item.getAttribute('data-task-id') ?? '' };
}

function visible(el: Element): boolean {
  return el.isConnected && (el as HTMLElement).offsetParent !== null;
}

// The current item redrawn (a relayout, a live reload): the same item in its new form.
function refind(): void {
  if (!current || current.isConnected || !currentKey || !currentKey.list.isConnected) return;
  const key = currentKey;
  current = itemsOf(key.list).find((i) => i.getAttribute(key.attr) === key.value) ?? null;
  current?.classList.add('kbd-focus');
}

// The list a pointer went down in last (a click in the failed tasks list
// sends the keys there), and the item it went down on.
let clicked: Element | null = null;
document.addEventListener('pointerdown', (e) => {
  const list = e.target instanceof Element ? e.target.closest('[data-keynav]') : null;
  if (list) clicked = list;
}, true);
// A click on an item makes it the current one: the keys go on from there. In
// the bubbling phase, so the click that ends a drag (which panzoom.ts stops)
// selects nothing.
document.addEventListener('click', (e) => {
  const item = e.target instanceof Element ? e.target.closest(kItems) : null;
  const list = item?.closest('[data-keynav]');
  if (!item || !list) return;
  current?.classList.remove('kbd-focus');
  current = item;
  currentKey = { list, ...keyOf(item) };
  item.classList.add('kbd-focus');
});

function activeList(): Element | null {
  refind();
  const fromCurrent = current?.isConnected ? current.closest('[data-keynav]') : null;
  if (fromCurrent) return fromCurrent;
  if (clicked && clicked.isConnected && visible(clicked)) return clicked;
  const fromFocus = document.activeElement?.closest('[data-keynav]');
  if (fromFocus) return fromFocus;
  const lists = Array.from(document.querySelectorAll('[data-keynav]')).filter(visible);
  return lists.find((l) => l.closest('.panzoom')) ?? lists[0] ?? null;
}

function focusItem(list: Element, item: Element): void {
  current?.classList.remove('kbd-focus');
  current = item;
  currentKey = { list, ...keyOf(item) };
  item.classList.add('kbd-focus');
  list.setAttribute('data-keynav-current', currentKey.value);
  item.dispatchEvent(new CustomEvent('keynav-focus', { bubbles: true }));
  // Enter now means this item, not the button clicked last (fit, a tab).
  const active = document.activeElement;
  if (active instanceof HTMLElement && active.closest('button, a') && !item.contains(active)) active.blur();
  // Lists scroll; a pan-and-zoom canvas moved it already (its overflow is hidden).
  if (!list.closest('.panzoom')) item.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}

function move(step: number): boolean {
  const list = activeList();
  if (!list) return false;
  const items = itemsOf(list);
  if (items.length === 0) return false;
  const at = current ? items.indexOf(current) : -1;
  const next = at < 0 ? (step > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, at + step));
  focusItem(list, items[next]);
  return true;
}

function open(): boolean {
  if (!current || !current.isConnected) activeList();
  if (!current || !current.isConnected) return false;
  const href = current.getAttribute('data-keynav-href');
  if (href !== null) {
    location.href = href;
    return true;
  }
  if (current.hasAttribute('data-keynav-open')) {
    current.dispatchEvent(new CustomEvent('keynav-open', { bubbles: true }));
    refind();
    return true;
  }
  const task = current.getAttribute('data-task-id');
  if (!task) return false;
  setQuery({ task });
  return true;
}

function onKey(e: KeyboardEvent): void {
  if (e.ctrlKey || e.altKey || e.metaKey || e.defaultPrevented) return;
  const t = e.target as Element | null;
  if (t?.closest('input, select, textarea, [contenteditable="true"]')) return;
  let done = false;
  switch (e.key) {
    case 'ArrowDown': case 'ArrowRight': case 'j':
      done = move(1);
      break;
    case 'ArrowUp': case 'ArrowLeft': case 'k':
      done = move(-1);
      break;
    case 'Enter':
      // A focused button or link does its own thing.
      if (t?.closest('button, a')) return;
      done = open();
      break;
    case 'Escape':
      if (/[?&]task=/.test(location.hash)) {
        setQuery({ task: null });
        done = true;
      }
      break;
    default:
      return;
  }
  if (done) e.preventDefault();
}

// A view that redrew its items calls this: the focus comes back on the same item.
export function keynavRedrawn(): void {
  refind();
}

let installed = false;

// Listens on the document once (main.ts calls it at start).
export function installKeynav(): void {
  if (installed) return;
  installed = true;
  document.addEventListener('keydown', onKey);
}
