// The run graph and the lineage explorer in a real browser: they fill the
// window, fit shows everything, the wheel zooms around the pointer, a drag
// pans (without opening a task), a foreach group with a failure shows it in
// red, a 2,400-node lineage is drawn grouped by stage and expands on click,
// and the keyboard moves between the graph's tasks and opens/closes the panel.
//
//   node tests/ui_graph.mjs --tierflow BIN --source REPO --out DIR
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { apiOf, check, finish, openPage, run, source, startServer, tmp } from './ui_lib.mjs';

mkdirSync(join(tmp, 'onefails'));
writeFileSync(join(tmp, 'onefails', 'pipeline.yaml'), `name: onefails
stages:
  prep:
    run: echo seed > "$TIERFLOW_OUTPUT_SEED"
    outputs: [seed]
  work:
    inputs: {seed: prep.seed}
    foreach: {range: [0, 30]}
    retries: 0
    run: |
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
      test "$TIERFLOW_ITEM" != 17
    outputs: [out]
  after:
    needs: [work]
    run: "true"
`);
mkdirSync(join(tmp, 'wide'));
writeFileSync(join(tmp, 'wide', 'pipeline.yaml'), `name: wide
stages:
  prep:
    run: echo seed > "$TIERFLOW_OUTPUT_SEED"
    outputs: [seed]
  work:
    foreach: {range: [0, 800]}
    inputs: {seed: prep.seed}
    run: |
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_A"
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_B"
    outputs: [a, b]
`);

async function main() {
  run(join(source, 'examples', 'quickstart', 'pipeline.yaml'), true);
  run(join(tmp, 'onefails', 'pipeline.yaml'), false);
  const t0 = Date.now();
  run(join(tmp, 'wide', 'pipeline.yaml'), true);
  console.log(`# the 802-task run took ${Date.now() - t0} ms`);

  const base = await startServer();
  const api = apiOf(base);
  const runs = (await api('/runs?limit=0')).runs;
  const byPipeline = (name) => runs.find((r) => r.pipeline === name);
  const quick = byPipeline('quickstart');
  const onefails = byPipeline('onefails');
  const wide = byPipeline('wide');
  if (!quick || !onefails || !wide) throw new Error(`the API lists ${runs.map((r) => r.id).join(', ')}`);

  const viewport = { width: 1500, height: 950 };
  const { page, errors, shot } = await openPage(viewport);
  const settle = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

  // Every node inside the canvas, the canvas inside the window and > 60% of its height.
  const inside = async (what, canvasSel, nodeSel) => {
    await settle();
    const m = await page.evaluate(([c, n]) => {
      const canvas = document.querySelector(c).getBoundingClientRect();
      const nodes = Array.from(document.querySelectorAll(n)).map((e) => {
        const r = e.getBoundingClientRect();
        return { id: e.getAttribute('data-task-id') || e.getAttribute('data-node') || e.getAttribute('data-group') ||
                     e.getAttribute('data-stage'), l: r.left, t: r.top, r: r.right, b: r.bottom };
      });
      return { canvas: { l: canvas.left, t: canvas.top, r: canvas.right, b: canvas.bottom, h: canvas.height },
               nodes, vw: innerWidth, vh: innerHeight };
    }, [canvasSel, nodeSel]);
    const c = m.canvas;
    const out = m.nodes.filter((r) => r.l < c.l - 0.5 || r.t < c.t - 0.5 || r.r > c.r + 0.5 || r.b > c.b + 0.5);
    check(m.nodes.length > 0 && out.length === 0, `${what}: all ${m.nodes.length} nodes lie inside the canvas`,
          `outside: ${out.map((o) => o.id).join(', ')}; canvas ${JSON.stringify(c)}`);
    check(c.l >= 0 && c.t >= 0 && c.r <= m.vw + 0.5 && c.b <= m.vh + 0.5, `${what}: the canvas lies inside the window`,
          JSON.stringify(c));
    // Above it there may be a header and a failed tasks list: it fills the rest.
    check(c.h > Math.min(0.6 * m.vh, m.vh - c.t - 40),
          `${what}: the canvas is > 60% of the window's height, or all the window leaves below its top`,
          `${c.h} of ${m.vh}, top ${c.t}`);
    console.log(`# ${what}: canvas ${Math.round(c.r - c.l)}x${Math.round(c.h)} px`);
  };
  const scaleOf = (sel) => page.$eval(sel, (e) => Number(e.dataset.scale));
  const boxOf = (sel) => page.$eval(sel, (e) => {
    const r = e.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height };
  });

  // ---- the quickstart's graph: fit, wheel, drag, fit again ----
  await page.goto(`${base}/#/runs/${encodeURIComponent(quick.id)}`);
  await page.waitForSelector('svg.dag g.node.task');
  await inside('quickstart graph', '.graph-scroll', 'svg.dag g.node');
  await shot('quickstart-graph');

  const canvas = await boxOf('.graph-scroll');
  const s0 = await scaleOf('.graph-scroll');
  const n0 = await boxOf('svg.dag g.node.task[data-task-id="train"]');
  const px = canvas.x + canvas.w * 0.3;
  const py = canvas.y + canvas.h * 0.4;
  await page.mouse.move(px, py);
  await page.mouse.wheel(0, -400);
  await settle();
  const s1 = await scaleOf('.graph-scroll');
  const n1 = await boxOf('svg.dag g.node.task[data-task-id="train"]');
  const k = s1 / s0;
  const dx = Math.abs((n1.x - px) - (n0.x - px) * k);
  const dy = Math.abs((n1.y - py) - (n0.y - py) * k);
  check(s1 > s0 * 1.2 && dx < 2 && dy < 2, 'the wheel zooms in around the pointer',
        `scale ${s0} -> ${s1}, the node off by ${dx.toFixed(1)}, ${dy.toFixed(1)} px from where the zoom puts it`);
  // A pinch (Chrome sends a ctrl+wheel) zooms too.
  await page.keyboard.down('Control');
  await page.mouse.wheel(0, 60);
  await page.keyboard.up('Control');
  await settle();
  const s2 = await scaleOf('.graph-scroll');
  check(s2 < s1, 'a pinch (ctrl+wheel) zooms out', `${s1} -> ${s2}`);
  // Two fingers spreading apart (touch pointers) zoom in around their middle.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 2 });
  const cx = canvas.x + canvas.w / 2;
  const cy = canvas.y + canvas.h / 2;
  const fingers = (d) => [{ x: cx - d, y: cy, id: 1 }, { x: cx + d, y: cy, id: 2 }];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: fingers(40) });
  for (const d of [60, 80, 100, 120]) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: fingers(d) });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await settle();
  const s3 = await scaleOf('.graph-scroll');
  check(s3 > s2 * 2, 'a two-finger pinch zooms in', `${s2} -> ${s3}`);
  await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: false });
  // Drag from the node itself: the view pans, no task opens.
  const from = await boxOf('svg.dag g.node.task[data-task-id="train"]');
  await page.mouse.move(from.x + 10, from.y + 10);
  await page.mouse.down();
  await page.mouse.move(from.x + 70, from.y + 40, { steps: 5 });
  await page.mouse.move(from.x + 130, from.y + 90, { steps: 5 });
  await page.mouse.up();
  await settle();
  const to = await boxOf('svg.dag g.node.task[data-task-id="train"]');
  check(Math.abs(to.x - from.x - 120) < 2 && Math.abs(to.y - from.y - 80) < 2, 'a drag pans the graph by as much',
        `moved ${(to.x - from.x).toFixed(1)}, ${(to.y - from.y).toFixed(1)}`);
  check(!(await page.evaluate(() => location.hash)).includes('task='), 'a drag that starts on a node does not open it');
  await page.click('.graph-tools button[data-zoom="fit"]');
  await inside('quickstart graph after zoom, pan and fit', '.graph-scroll', 'svg.dag g.node');
  const buttons = await scaleOf('.graph-scroll');
  await page.click('.graph-tools button[data-zoom="zoom in"]');
  check(await scaleOf('.graph-scroll') > buttons * 1.2, 'the + button zooms in');
  await page.click('.graph-tools button[data-zoom="fit"]');

  // ---- keyboard: j/k and arrows along the layout order, Enter, Esc ----
  const order = await page.$$eval('[data-keynav] [data-task-id]', (es) => es.map((e) => {
    const r = e.getBoundingClientRect();
    return { id: e.getAttribute('data-task-id'), x: r.left + r.width / 2 };
  }));
  check(order.every((o, i) => i === 0 || o.x >= order[i - 1].x - 0.5), 'the graph\'s items are in layout order (by rank)',
        order.map((o) => `${o.id}@${o.x.toFixed(0)}`).join(' '));
  const focused = () => page.$eval('[data-keynav] .kbd-focus', (e) => e.getAttribute('data-task-id')).catch(() => null);
  const seen = [];
  for (const key of ['j', 'j', 'ArrowDown', 'ArrowRight']) {
    await page.keyboard.press(key);
    seen.push(await focused());
  }
  const want = order.slice(0, 4).map((o) => o.id);
  check(JSON.stringify(seen) === JSON.stringify(want), 'j, j, ArrowDown, ArrowRight visit the first four tasks in order',
        `${seen.join(',')} vs ${want.join(',')}`);
  await page.keyboard.press('k');
  const back1 = await focused();
  await page.keyboard.press('ArrowUp');
  const back2 = await focused();
  check(back1 === want[2] && back2 === want[1], 'k and ArrowUp go back', `${back1}, ${back2}`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`[data-task-panel="${want[1]}"]`);
  check((await page.evaluate(() => decodeURIComponent(location.hash))).includes(`task=${want[1]}`),
        'Enter opens the focused task\'s panel (?task=)');
  await shot('keyboard-panel');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('task=') && !document.querySelector('[data-task-panel]'));
  check(true, 'Esc closes the task panel');
  await page.keyboard.press('j');
  check(await focused() === want[2], 'the focus survives the panel opening and closing', await focused());
  // Zoomed in so far that most nodes are off the canvas: the focus pans each into view.
  for (let i = 0; i < 6; i++) await page.click('.graph-tools button[data-zoom="zoom in"]');
  const hidden = [];
  for (let i = 3; i < order.length; i++) {
    await page.keyboard.press('j');
    await settle();
    const pos = await page.evaluate(() => {
      const c = document.querySelector('.graph-scroll').getBoundingClientRect();
      const r = document.querySelector('[data-keynav] .kbd-focus').getBoundingClientRect();
      return { id: document.querySelector('[data-keynav] .kbd-focus').getAttribute('data-task-id'),
               inside: r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom };
    });
    if (!pos.inside || pos.id !== order[i].id) hidden.push(`${order[i].id}: ${JSON.stringify(pos)}`);
  }
  check(hidden.length === 0, 'zoomed in, each task the keys move to is panned into the canvas', hidden.join('; '));
  await shot('keyboard-zoomed');
  await page.click('.graph-tools button[data-zoom="fit"]');

  // ---- a foreach of 30 with one failure ----
  await page.goto(`${base}/#/runs/${encodeURIComponent(onefails.id)}`);
  await page.waitForSelector('svg.dag g.node.group[data-stage="work"]');
  // Its failed tasks list loads above the graph, which then takes what is left.
  await page.waitForSelector('details.failures:not([hidden]) [data-task-id]');
  await inside('failing foreach graph', '.graph-scroll', 'svg.dag g.node');
  const grp = await page.$eval('svg.dag g.node.group[data-stage="work"]', (g) => {
    const red = g.querySelector('.failed-count');
    const seg = g.querySelector('.group-bar rect[data-state="failed"]');
    return {
      failed: g.classList.contains('has-failed'),
      text: red ? red.textContent : null,
      color: red ? getComputedStyle(red).fill : null,
      segW: seg ? seg.getBoundingClientRect().width : 0,
      box: getComputedStyle(g.querySelector('.group-box')).stroke,
    };
  });
  check(grp.text === '1 failed' && grp.color === 'rgb(198, 40, 40)', 'the group shows its failed count in red',
        JSON.stringify(grp));
  check(grp.segW >= 2, 'the failed segment of the group\'s bar is visible (>= 2 px)', `${grp.segW} px`);
  check(grp.failed && grp.box === 'rgb(214, 69, 69)', 'the group with a failure has a red border', JSON.stringify(grp));
  const small = await scaleOf('.graph-scroll');
  check(small <= 1, 'fit does not blow a 3-node graph up past its natural size', `scale ${small}`);
  await shot('failing-foreach');
  // The keyboard reaches a collapsed group, Enter expands it, then its cells are items.
  const cur = () => page.$eval('[data-keynav] .kbd-focus', (e) =>
    e.getAttribute('data-task-id') ?? e.getAttribute('data-keynav-open')).catch(() => null);
  await page.keyboard.press('j');
  const k1 = await cur();
  await page.keyboard.press('j');
  const k2 = await cur();
  check(k1 === 'prep' && k2 === 'group:work', 'the keys go from prep to the collapsed group', `${k1}, ${k2}`);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('svg.dag g.group.expanded rect.cell').length === 30);
  check(await cur() === 'group:work', 'Enter on the group expands it, the focus stays on it', await cur());
  await page.keyboard.press('j');
  const cell = await cur();
  check(/^work\[\d+\]$/.test(cell ?? '') &&
        await page.$eval('[data-keynav] .kbd-focus', (e) => e.matches('rect.cell')), 'the next key goes into its cells', cell);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`[data-task-panel="${cell}"]`);
  check(true, 'Enter on a cell opens its task');
  await shot('keyboard-cell');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('[data-task-panel]'));
  // The same failure in the lineage's group of work's attempts.
  const ofd = await api(`/runs/${encodeURIComponent(onefails.id)}`);
  const ofSeed = ofd.tasks.find((t) => t.id === 'prep').outputs.find((o) => o.name === 'seed');
  await page.goto(`${base}/#/artifacts/${ofSeed.id}?direction=down`);
  await page.waitForSelector('svg.lineage g.node.group[data-kind="attempts"]');
  const lgrp = await page.$eval('svg.lineage g.node.group[data-kind="attempts"]', (g) => {
    const red = g.querySelector('.failed-count');
    const seg = g.querySelector('.group-bar rect[data-state="failed"]');
    return { n: Number(g.getAttribute('data-count')), failed: g.classList.contains('has-failed'),
             text: red ? red.textContent : null, color: red ? getComputedStyle(red).fill : null,
             segW: seg ? seg.getBoundingClientRect().width : 0 };
  });
  check(lgrp.n === 30 && lgrp.failed && lgrp.text === '1 failed' && lgrp.color === 'rgb(198, 40, 40)' && lgrp.segW >= 2,
        'the lineage\'s group of 30 attempts shows its failure in red, with a visible bar segment', JSON.stringify(lgrp));
  await inside('lineage with a failed group', '.lineage-graph', 'svg.lineage g.node');
  await shot('lineage-failed-group');

  // ---- lineage of the quickstart's release, both directions and up ----
  const qd = await api(`/runs/${encodeURIComponent(quick.id)}`);
  const release = qd.tasks.find((t) => t.id === 'publish').outputs.find((o) => o.name === 'release');
  for (const dir of ['both', 'up']) {
    await page.goto(`${base}/#/artifacts/${release.id}?direction=${dir}`);
    await page.waitForSelector('svg.lineage g.node.artifact.root');
    const lin = await api(`/artifacts/${release.id}/lineage?direction=${dir}`);
    check(await page.locator('svg.lineage g.node').count() === lin.nodes.length,
          `lineage (${dir}): every one of its ${lin.nodes.length} nodes is drawn`);
    await inside(`lineage of the release (${dir})`, '.lineage-graph', 'svg.lineage g.node');
    const text = await page.evaluate(() => {
      const t = document.querySelector('svg.lineage g.node.root text.label');
      const host = document.querySelector('.lineage-graph');
      return { px: parseFloat(getComputedStyle(t).fontSize) * Number(host.dataset.scale), dir: host.dataset.rankdir };
    });
    console.log(`# lineage (${dir}): ${lin.nodes.length} nodes, laid out ${text.dir}, labels at ${text.px.toFixed(1)} px`);
    check(text.px >= 11, `lineage (${dir}): labels are readable at fit (>= 11 px)`, `${text.px.toFixed(1)} px`);
    await shot(`lineage-${dir}`);
  }

  // ---- a 2,400-node lineage, grouped by stage ----
  const wd = await api(`/runs/${encodeURIComponent(wide.id)}`);
  const seed = wd.tasks.find((t) => t.id === 'prep').outputs.find((o) => o.name === 'seed');
  const big = await api(`/artifacts/${seed.id}/lineage?direction=down`);
  check(big.nodes.length >= 2400, `the wide run's lineage has >= 2,400 nodes`, `${big.nodes.length}`);
  const t1 = Date.now();
  await page.goto(`${base}/#/artifacts/${seed.id}?direction=down`);
  await page.waitForSelector('svg.lineage g.node.group');
  await settle();
  const drawMs = await page.$eval('.lineage-graph', (e) => e.dataset.drawMs);
  console.log(`# lineage of ${big.nodes.length} nodes: drawn grouped in ${Date.now() - t1} ms from navigation ` +
              `(layout and SVG ${drawMs} ms)`);
  const drawn = await page.$$eval('svg.lineage g.node', (gs) => ({
    total: gs.length,
    groups: gs.filter((g) => g.classList.contains('group')).map((g) => ({
      kind: g.getAttribute('data-kind'), label: g.getAttribute('data-label'), n: Number(g.getAttribute('data-count')) })),
  }));
  const members = drawn.groups.reduce((n, g) => n + g.n, 0) + drawn.total - drawn.groups.length;
  console.log(`# groups: ${drawn.groups.map((g) => `${g.label} (${g.kind}) ${g.n}`).join(', ')}`);
  check(drawn.groups.length >= 3 && drawn.total < 200, 'the big lineage is drawn as group nodes',
        `${drawn.total} drawn, ${drawn.groups.length} groups`);
  check(members === big.nodes.length, 'the groups and single nodes add up to the API\'s node count',
        `${members} vs ${big.nodes.length}`);
  const edgeN = await page.$$eval('svg.lineage path.edge', (es) => es.reduce((n, e) => n + Number(e.getAttribute('data-n')), 0));
  check(edgeN === big.edges.length, 'the group edges stand for every lineage edge', `${edgeN} vs ${big.edges.length}`);
  await inside('grouped lineage', '.lineage-graph', 'svg.lineage g.node');
  await shot('lineage-grouped');
  const attempts = drawn.groups.find((g) => g.kind === 'attempts');
  const t2 = Date.now();
  await page.click('svg.lineage g.node.group[data-kind="attempts"] rect.group-box');
  await page.waitForFunction((n) => document.querySelectorAll('svg.lineage g.node.group.expanded rect.cell[data-node]').length === n,
                             attempts.n);
  console.log(`# expanding ${attempts.n} attempts: ${Date.now() - t2} ms`);
  check(true, `a click expands the attempts group into its ${attempts.n} members`);
  await page.click('svg.lineage g.node.group.expanded rect.cell[data-node]');
  await page.waitForFunction(() => /attempt/.test(document.querySelector('.lineage-details h2')?.textContent ?? ''));
  check(true, 'a member of an expanded group opens its details');
  await page.click('.graph-tools button[data-zoom="fit"]');
  await inside('expanded lineage after fit', '.lineage-graph', 'svg.lineage g.node');
  await shot('lineage-expanded');
  await page.click('svg.lineage g.node.group.expanded [data-toggle]');
  await page.waitForFunction(() => document.querySelectorAll('svg.lineage rect.cell').length === 0);
  check(true, 'the toggle collapses the group back');

  check(errors.length === 0, 'no page or console errors', errors.join('\n'));
}

await finish(main);
