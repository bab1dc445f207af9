// The web UI in a real browser (Debian's Chromium driven by playwright-core)
// against the real `tierflow` binary: runs recorded by `tierflow run`, served
// by `tierflow ui`, checked against the API's own answers and the log files.
//
//   node tests/ui_browser.mjs --tierflow BIN --source REPO --out DIR
//
// Runs the quickstart, a pipeline with hostile text (a foreach item, a param
// and log lines holding `<img src=x onerror=alert(1)>`: stage names are
// identifiers, so the loader rejects one as a stage name) and a 5,002-task
// foreach run; then checks the runs list, the graph (node count, state
// colours), the task panel's log, the lineage of the release back to ingest,
// the timeline, the tiers, that hostile text stays text, and prints how long
// the large run's graph took. Screenshots go to DIR. Exits 1 on any failure.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  apiOf, check, finish, ok, openPage, run, source, spawn, spawnSync, startServer, tierflow, tmp, db,
} from './ui_lib.mjs';

const kHostile = '<img src=x onerror=alert(1)>';

// ---- data ------------------------------------------------------------------

mkdirSync(join(tmp, 'xss'));
writeFileSync(join(tmp, 'xss', 'pipeline.yaml'), `name: xss
description: "${kHostile}"
params:
  note: {type: string, default: "${kHostile}"}
stages:
  hostile:
    foreach: ["${kHostile}", "</script><script>alert(2)</script>"]
    run: |
      echo "${kHostile} item=$TIERFLOW_ITEM"
      echo "param: $TIERFLOW_PARAM_NOTE" >&2
      printf '%s\\n' "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  fail:
    inputs: {out: hostile.out}
    retries: 0
    run: |
      echo "<img src=x onerror=alert(3)>"
      exit 3
`);
mkdirSync(join(tmp, 'large'));
mkdirSync(join(tmp, 'live'));
writeFileSync(join(tmp, 'live', 'pipeline.yaml'), `name: live
stages:
  slow:
    run: sleep 4
  after:
    needs: [slow]
    run: echo done
`);
writeFileSync(join(tmp, 'large', 'pipeline.yaml'), `name: large
stages:
  prep:
    run: echo seed > "$TIERFLOW_OUTPUT_SEED"
    outputs: [seed]
  work:
    foreach: {range: [0, 5000]}
    inputs: {seed: prep.seed}
    run: "true"
  done:
    needs: [work]
    run: "true"
`);

async function main() {
  run(join(source, 'examples', 'quickstart', 'pipeline.yaml'), true);
  run(join(tmp, 'xss', 'pipeline.yaml'), false, '--param', `note=${kHostile}`);
  const t0 = Date.now();
  run(join(tmp, 'large', 'pipeline.yaml'), true);
  console.log(`# the 5,002-task run took ${Date.now() - t0} ms`);
  const probe = spawnSync(tierflow, ['tiers', 'probe', 'local', '--seconds', '0.5', '--db', db],
                          { encoding: 'utf8', timeout: 60000 });
  if (probe.status !== 0) throw new Error(`tierflow tiers probe exited ${probe.status}: ${probe.stderr}`);

  // ---- the server ------------------------------------------------------------
  const base = await startServer();
  const api = apiOf(base);
  const runs = (await api('/runs?limit=0')).runs;
  const byPipeline = (name) => runs.find((r) => r.pipeline === name);
  const quick = byPipeline('quickstart');
  const xss = byPipeline('xss');
  const large = byPipeline('large');
  if (!quick || !xss || !large) throw new Error(`the API lists ${runs.map((r) => r.id).join(', ')}`);

  // ---- the browser -------------------------------------------------------------
  const { page, dialogs, errors, shot, noInjection } = await openPage();

  // Runs list.
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector(`tr[data-run="${quick.id}"]`);
  const row = await page.textContent(`tr[data-run="${quick.id}"]`);
  check(row.includes('quickstart') && row.includes('succeeded'), 'runs list shows the quickstart run, succeeded', row);
  check(await page.locator('tr[data-run]').count() === runs.length, 'runs list shows every run',
        `${await page.locator('tr[data-run]').count()} rows, ${runs.length} runs`);
  await page.click('button[data-filter-state="failed"]');
  await page.waitForFunction(() => document.querySelectorAll('tr[data-run]').length === 1);
  check(await page.locator(`tr[data-run="${xss.id}"]`).count() === 1, 'the state filter keeps the failed run only');
  await page.click('button[data-filter-state="failed"]');
  await page.fill('input[type="search"]', 'quick');
  await page.waitForFunction(() => document.querySelectorAll('tr[data-run]').length === 1);
  check(await page.locator(`tr[data-run="${quick.id}"]`).count() === 1, 'the text filter finds the run');
  await page.fill('input[type="search"]', '');
  await shot('runs');

  // Run graph: one node per task, coloured as the legend says for its state.
  const checkGraph = async (r) => {
    const detail = await api(`/runs/${encodeURIComponent(r.id)}`);
    await page.goto(`${base}/#/runs/${encodeURIComponent(r.id)}`);
    await page.waitForSelector('svg.dag g.node.task');
    const nodes = await page.$$eval('svg.dag g.node.task', (gs) => gs.map((g) => ({
      id: g.getAttribute('data-task-id'), state: g.getAttribute('data-state'),
      fill: g.querySelector('rect').getAttribute('fill'),
    })));
    const legend = await page.$$eval('.legend .swatch', (sw) =>
      Object.fromEntries(sw.map((s) => [s.getAttribute('data-state'), s.getAttribute('data-fill')])));
    check(nodes.length === detail.run.tasks.total && nodes.length === detail.tasks.length,
          `${r.pipeline}: the graph has one node per task (${detail.run.tasks.total})`, `${nodes.length} nodes`);
    const wrong = detail.tasks.filter((t) => {
      const n = nodes.find((x) => x.id === t.id);
      return !n || n.state !== t.state || n.fill !== legend[t.state];
    });
    check(wrong.length === 0, `${r.pipeline}: every node has its task's state and the legend's colour for it`,
          wrong.map((t) => t.id).join(', '));
    const edges = await page.locator('svg.dag path.edge').count();
    check(edges > 0, `${r.pipeline}: the graph draws its edges`, `${edges}`);
    return detail;
  };
  const quickDetail = await checkGraph(quick);
  const states = new Set(quickDetail.tasks.map((t) => t.state));
  await shot('run-graph');

  // Task panel: its log, byte for byte as the log file holds it.
  const train = quickDetail.tasks.find((t) => t.id === 'train');
  const trainLog = readFileSync(train.attempts[train.attempts.length - 1].log_path, 'utf8');
  await page.click('svg.dag g.node.task[data-task-id="train"]');
  await page.waitForSelector('pre[data-logs="train"][data-loaded]');
  const shown = await page.textContent('pre[data-logs="train"]');
  check(shown === trainLog && trainLog.length > 0, 'clicking train shows its log as the log file holds it',
        `shown ${JSON.stringify(shown.slice(0, 80))}, file ${JSON.stringify(trainLog.slice(0, 80))}`);
  const panel = await page.textContent('[data-task-panel="train"]');
  check(panel.includes('python3 train.py') && /Attempts/.test(panel) && /Placement/.test(panel) &&
        /Bytes per tier/.test(panel), 'the task panel shows the command, attempts, placement and bytes per tier');
  const placementSource = await page.getAttribute('[data-task-panel="train"] [data-placement-source]', 'data-placement-source');
  check(placementSource === 'recorded' && /Recorded: the engine's decisions when the run started/.test(panel) &&
        (await page.$('[data-task-panel="train"] li[data-placement="checkpoints"]')) !== null,
        'the task panel labels the placement it shows as recorded, with the checkpoints\' placement', `source ${placementSource}`);
  await shot('task-panel');

  // Timeline: one bar per attempt.
  await page.click('nav.tabs a[data-tab="timeline"]');
  await page.waitForSelector('svg.gantt rect.bar');
  const attempts = quickDetail.tasks.reduce((n, t) => n + t.attempts.filter((a) => a.started_at_ms).length, 0);
  check(await page.locator('svg.gantt rect.bar').count() === attempts, `the timeline has one bar per attempt (${attempts})`);
  await shot('timeline');

  // Lineage: from the outputs tab to publish.release, back to ingest.
  const publish = quickDetail.tasks.find((t) => t.id === 'publish');
  const release = publish.outputs.find((o) => o.name === 'release');
  await page.click('nav.tabs a[data-tab="outputs"]');
  // Keys: j twice moves to the second output, Enter opens its lineage.
  await page.waitForSelector('table.outputs-table[data-keynav] tr[data-artifact]');
  const second = await page.$$eval('table.outputs-table tr[data-artifact]', (rows) => rows[1].dataset.artifact);
  await page.keyboard.press('j');
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.waitForFunction((id) => location.hash.startsWith(`#/artifacts/${id}`), second);
  ok('j, j and Enter in the outputs open the second output\'s lineage');
  await page.goBack();
  await page.waitForSelector('table.outputs-table tr[data-artifact]');
  await page.click(`tr[data-artifact="${release.id}"] a`);
  await page.waitForSelector('svg.lineage g.node');
  await page.selectOption('select[aria-label="direction"]', 'up');
  await page.waitForFunction(() => location.hash.includes('direction=up'));
  await page.waitForSelector('svg.lineage g.node.artifact.root');
  const upstream = await api(`/artifacts/${release.id}/lineage?direction=up`);
  const ingestNodes = await page.$$eval('svg.lineage g.node', (gs) =>
    gs.filter((g) => (g.getAttribute('data-task') || '').startsWith('ingest[')).length);
  const apiIngest = upstream.nodes.filter((n) => String(n.task_id).startsWith('ingest[')).length;
  check(ingestNodes > 0 && ingestNodes === apiIngest, 'the lineage of publish.release reaches back to ingest',
        `${ingestNodes} ingest nodes drawn, the API has ${apiIngest}`);
  check(await page.locator('svg.lineage g.node').count() === upstream.nodes.length,
        `the lineage draws every node the API returns (${upstream.nodes.length})`);
  const details = await page.textContent('.lineage-details');
  check(details.includes(release.content_hash) && release.copies.every((c) => details.includes(c.uri)),
        'the lineage shows the release\'s content hash and every tier copy');
  await shot('lineage');

  // Tiers.
  const tiers = (await api('/tiers')).tiers;
  await page.goto(`${base}/#/tiers`);
  await page.waitForSelector('tr[data-tier]');
  check(await page.locator('tr[data-tier]').count() === tiers.length, `the tiers view lists every tier (${tiers.length})`);
  const local = tiers.find((t) => t.name === 'local');
  const measured = await page.textContent('tr[data-tier="local"] td[data-measured="true"]');
  check(measured.includes(`${Math.round(local.measured_profile.seq_read_mb_s).toLocaleString('en-US')} MB/s`),
        'the tiers view shows the measured profile of the probed tier', measured);
  await shot('tiers');

  // Hostile text: a foreach item, a param, log lines.
  const xssDetail = await checkGraph(xss);
  xssDetail.tasks.forEach((t) => states.add(t.state));
  check(states.has('failed') && states.has('succeeded'), 'the graphs checked cover succeeded and failed tasks');
  const hostileTask = xssDetail.tasks.find((t) => t.item === kHostile);
  check(await page.locator(`svg.dag g.node.task[data-task-id="${hostileTask.id.replace(/"/g, '\\"')}"]`).count() === 1,
        'a task id holding markup is a node of the graph');
  check((await page.textContent('.run-head')).includes(kHostile), 'the param holding markup shows as text');
  await page.click(`svg.dag g.node.task[data-task-id="${hostileTask.id.replace(/"/g, '\\"')}"]`);
  await page.waitForSelector('pre[data-logs][data-loaded]');
  const hostileLog = await page.textContent('pre[data-logs]');
  check(hostileLog.includes(`${kHostile} item=${kHostile}`) && hostileLog.includes(`param: ${kHostile}`),
        'log lines holding markup show as text', JSON.stringify(hostileLog));
  await noInjection('run graph and task panel');
  await shot('xss');
  await page.click('nav.tabs a[data-tab="timeline"]');
  await page.waitForSelector('svg.gantt rect.bar');
  await page.click('nav.tabs a[data-tab="outputs"]');
  await page.waitForSelector('tr[data-artifact] a');
  await page.click('tr[data-artifact] a');
  await page.waitForSelector('svg.lineage g.node');
  await noInjection('timeline, outputs and lineage');
  await page.goto(`${base}/#/runs?q=${encodeURIComponent(kHostile)}`);
  await page.waitForSelector('table.runs');
  await noInjection('runs list filtered by markup');

  // A 5,002-task run: the foreach stage is one group node with counts per state.
  const t1 = Date.now();
  await page.goto(`${base}/#/runs/${encodeURIComponent(large.id)}`);
  await page.waitForSelector('svg.dag g.node.group[data-stage="work"]');
  const loadMs = Date.now() - t1;
  const timing = await page.$eval('.graph', (g) => ({ layout: g.dataset.layoutMs, render: g.dataset.renderMs }));
  const group = await page.$eval('svg.dag g.node.group[data-stage="work"]', (g) => ({
    count: Number(g.getAttribute('data-count')),
    n: Array.from(g.querySelectorAll('.group-bar rect')).reduce((s, r) => s + Number(r.getAttribute('data-n')), 0),
  }));
  check(group.count === 5000 && group.n === 5000, 'the 5,000-task foreach is one group node counting 5,000 by state',
        JSON.stringify(group));
  check(await page.locator('svg.dag g.node').count() === 3, 'the large run draws 3 nodes (prep, the group, done)');
  console.log(`# large run graph: ${loadMs} ms from navigation to drawn (layout ${timing.layout} ms, ` +
              `SVG ${timing.render} ms)`);
  await shot('large-graph');
  const t2 = Date.now();
  await page.click('svg.dag g.node.group[data-stage="work"] [data-toggle]');
  await page.waitForFunction(() => document.querySelectorAll('svg.dag rect.cell').length === 5000);
  const expand = await page.$eval('.graph', (g) => ({ layout: g.dataset.layoutMs, render: g.dataset.renderMs }));
  console.log(`# expanding it into 5,000 cells: ${Date.now() - t2} ms (layout ${expand.layout} ms, SVG ${expand.render} ms)`);
  ok('the group expands into one cell per task');
  await page.click('svg.dag rect.cell[data-task-id="work[4321]"]');
  await page.waitForSelector('[data-task-panel="work[4321]"] table.attempts');
  ok('a cell opens its task\'s panel');
  // Responsiveness: how long the page takes to answer a frame after all that.
  const frame = await page.evaluate(() => new Promise((r) => {
    const s = performance.now();
    requestAnimationFrame(() => r(performance.now() - s));
  }));
  console.log(`# next animation frame after expanding: ${frame.toFixed(1)} ms`);
  await shot('large-expanded');
  const t3 = Date.now();
  await page.click('nav.tabs a[data-tab="timeline"]');
  // Beyond 2,000 bars the timeline draws one canvas per stage and says how
  // many bars it drew.
  await page.waitForSelector('.timeline[data-mode="canvas"]');
  const bars = Number(await page.getAttribute('.timeline', 'data-bars'));
  console.log(`# large run timeline: ${bars} bars in ${Date.now() - t3} ms ` +
              `(canvas ${await page.$eval('.timeline', (t) => t.dataset.renderMs)} ms)`);
  check(bars === 5002 && await page.locator('.tl-lane canvas.gantt-canvas').count() === 3,
        'the large run\'s timeline has a bar per attempt, on one canvas per stage', `${bars}`);
  await shot('large-timeline');

  // Live: a run started now shows up in the open list, and its graph follows
  // its tasks to the end, without a reload.
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector('tr[data-run]');
  await page.waitForSelector('#live[data-status="live"]');
  const liveRun = spawn(tierflow, ['run', join(tmp, 'live', 'pipeline.yaml'), '--db', db], { stdio: 'ignore' });
  const liveDone = new Promise((r) => liveRun.on('exit', r));
  const liveRow = await page.waitForSelector('tr[data-run^="live-"]');
  ok('a new run appears in the open runs list');
  await liveRow.$eval('a', (a) => a.click());
  await page.waitForSelector('svg.dag g.node.task[data-task-id="slow"]');
  const before = await page.getAttribute('svg.dag g.node.task[data-task-id="after"]', 'data-state');
  await page.waitForSelector('svg.dag g.node.task[data-task-id="after"][data-state="succeeded"]');
  check(before !== 'succeeded', 'the open graph follows the run to the end without a reload', `${before} at first`);
  await page.waitForSelector('.run-head .chip[data-state="succeeded"]');
  ok('the run\'s header turns succeeded');
  await liveDone;

  check(dialogs.length === 0, 'no dialog opened', dialogs.join('; '));
  check(errors.length === 0, 'no page or console errors', errors.join('\n'));
}

await finish(main);
