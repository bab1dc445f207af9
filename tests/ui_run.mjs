// Failures you cannot miss, a failed tasks list, the per-stage timeline and
// #/runs/last following new runs (issue 20), in Debian's Chromium against
// the real `tierflow` binary:
//
//   node tests/ui_run.mjs --tierflow BIN --source REPO --out DIR
//
// A 1,204-task run where 4 of a 1,200-item foreach exit 2 with a known
// stderr line: the runs list shows a red segment and the failed count, the
// run page lists the 4 failed tasks with that line and a logs command, the
// timeline has one lane per stage, a sticky axis, zoom, and red failed bars
// of at least 2 px. A 5,002-task run's timeline is drawn on canvases with the
// bar count it reports (its draw time printed, not asserted). #/runs/last
// switches to a run started from the test and follows it to succeeded.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { apiOf, check, fail, finish, ok, openPage, run, spawn, startServer, tierflow, tmp, db } from './ui_lib.mjs';

const kFailing = [3, 400, 800, 1100];
const kRed = 'rgb(214, 69, 69)';  // states.ts: failed

mkdirSync(join(tmp, 'mixed'));
writeFileSync(join(tmp, 'mixed', 'pipeline.yaml'), `name: mixed
stages:
  prep:
    run: echo seed > "$TIERFLOW_OUTPUT_SEED"
    outputs: [seed]
  work:
    foreach: {range: [0, 1200]}
    inputs: {seed: prep.seed}
    retries: 0
    run: |
      case "$TIERFLOW_ITEM" in
        ${kFailing.join('|')}) echo "cannot open shard $TIERFLOW_ITEM: no such input" >&2; exit 2;;
      esac
      sleep 0.02
  summarize:
    needs: [work]
    run: "true"
  lint:
    run: sleep 0.2
  docs:
    run: sleep 0.1
`);
mkdirSync(join(tmp, 'large'));
writeFileSync(join(tmp, 'large', 'pipeline.yaml'), `name: large
stages:
  prep:
    run: sleep 0.2
  work:
    foreach: {range: [0, 5000]}
    needs: [prep]
    run: "true"
  done:
    needs: [work]
    run: "true"
`);
mkdirSync(join(tmp, 'live'));
writeFileSync(join(tmp, 'live', 'pipeline.yaml'), `name: live
stages:
  slow:
    run: sleep 3
  after:
    needs: [slow]
    run: echo done
`);

async function main() {
  let t = Date.now();
  run(join(tmp, 'mixed', 'pipeline.yaml'), false, '--slots', '16');
  console.log(`# the 1,204-task run took ${Date.now() - t} ms`);
  t = Date.now();
  run(join(tmp, 'large', 'pipeline.yaml'), true);
  console.log(`# the 5,002-task run took ${Date.now() - t} ms`);

  const base = await startServer();
  const api = apiOf(base);
  const runs = (await api('/runs?limit=0')).runs;
  const mixed = runs.find((r) => r.pipeline === 'mixed');
  const large = runs.find((r) => r.pipeline === 'large');
  check(mixed.tasks.total === 1204 && mixed.tasks.failed === 4, 'the mixed run has 1,204 tasks, 4 failed',
        JSON.stringify(mixed.tasks));
  const { page, dialogs, errors, shot } = await openPage();

  // ---- runs list: the failed run's row ------------------------------------
  await page.goto(`${base}/#/runs`);
  const rowSel = `tr[data-run="${mixed.id}"]`;
  await page.waitForSelector(rowSel);
  const row = await page.$eval(rowSel, (tr) => {
    const seg = tr.querySelector('.countsbar span.seg-failed');
    const box = seg ? seg.getBoundingClientRect() : null;
    const count = tr.querySelector('td[data-failed]');
    return {
      marked: tr.classList.contains('has-failed'),
      border: getComputedStyle(tr.querySelector('td')).boxShadow,
      segW: box ? box.width : 0, segH: box ? box.height : 0,
      segBg: seg ? getComputedStyle(seg).backgroundColor : '',
      count: count ? count.textContent : '', countColor: count ? getComputedStyle(count).color : '',
      href: tr.getAttribute('data-keynav-href'),
    };
  });
  check(row.segW >= 2 && row.segH > 0 && row.segBg === kRed,
        'the runs list shows 4 of 1,204 failed as a red segment at least 2 px wide', JSON.stringify(row));
  check(row.count === '4' && /^rgb\((1[5-9]\d|2\d\d), ([0-9]|[1-6]\d), ([0-9]|[1-6]\d)\)$/.test(row.countColor),
        'the failed count 4 is shown in red', JSON.stringify(row));
  check(row.marked && row.border.includes('214, 69, 69'), 'the failed run\'s row is marked with a red border',
        row.border);
  check(await page.$('table.runs[data-keynav]') !== null && row.href === `#/runs/${encodeURIComponent(mixed.id)}`,
        'the runs list is a keyboard list whose rows link to their run', row.href);
  const largeSeg = await page.$(`tr[data-run="${large.id}"] .seg-failed`);
  check(largeSeg === null && !(await page.$eval(`tr[data-run="${large.id}"]`, (tr) => tr.classList.contains('has-failed'))),
        'a run without failures has no red segment or mark');
  await shot('runs-list');

  // ---- run page: header and the failed tasks list ------------------------------
  const fromApi = await api(`/runs/${encodeURIComponent(mixed.id)}/failures`);
  await page.goto(`${base}/#/runs/${encodeURIComponent(mixed.id)}`);
  await page.waitForSelector('details.failures li.failure');
  const head = await page.$eval('.run-head', (el) => ({
    failed: el.querySelector('.run-failed-count')?.textContent ?? '',
    color: el.querySelector('.run-failed-count') ? getComputedStyle(el.querySelector('.run-failed-count')).color : '',
    chip: el.querySelector('.chip')?.getAttribute('data-state'),
  }));
  check(head.failed === '4 failed' && head.color !== 'rgb(29, 35, 48)' && head.chip === 'failed',
        'the run header shows "4 failed" in red and the failed chip', JSON.stringify(head));
  const items = await page.$$eval('details.failures li.failure', (lis) => lis.map((li) => ({
    id: li.getAttribute('data-task-id'),
    text: li.textContent,
    tail: li.querySelector('pre.log-tail')?.textContent ?? '',
    command: li.querySelector('[data-copy]')?.getAttribute('data-copy') ?? '',
  })));
  check(items.length === 4 && (await page.$('details.failures[open] ol[data-keynav]')) !== null,
        'the run page lists the 4 failed tasks, open, as a keyboard list', `${items.length}`);
  for (const n of kFailing) {
    const id = `work[${n}]`;
    const it = items.find((x) => x.id === id);
    const want = fromApi.failures.find((f) => f.task_id === id);
    check(it && want && it.tail.includes(`cannot open shard ${n}: no such input`) && it.text.includes('exit 2') &&
          it.command === want.logs_command && it.text.includes(want.logs_command) &&
          it.command.startsWith(`tierflow logs ${mixed.id} 'work[${n}]'`),
          `${id}: its stderr line, exit 2 and the API's quoted logs command`, JSON.stringify(it));
  }
  await shot('run-failures');
  await page.click('details.failures li.failure[data-task-id="work[400]"] .failure-head');
  await page.waitForSelector('[data-task-panel="work[400]"]');
  check(page.url().includes('task=work%5B400%5D'), 'a click on a failed task opens its task panel', page.url());
  // Keys: after a click in the list, j moves to the next failed task, Enter
  // opens its panel, Esc closes it (ui/src/keynav.ts).
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('task='));
  await page.keyboard.press('j');
  const focused = await page.$eval('details.failures li.kbd-focus', (li) => li.getAttribute('data-task-id'));
  await page.keyboard.press('Enter');
  await page.waitForFunction((id) => location.hash.includes(`task=${encodeURIComponent(id)}`), focused);
  check(focused === 'work[800]', 'j moves from work[400] to the next failed task, Enter opens it', focused);
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !location.hash.includes('task='));
  ok('Esc closes the task panel');
  await page.click('details.failures > summary');
  check(!(await page.$eval('details.failures', (d) => d.open)), 'the failed tasks list collapses');
  await page.click('details.failures > summary');

  // ---- timeline of the 1,204-task run -------------------------------------------
  const detail = await api(`/runs/${encodeURIComponent(mixed.id)}`);
  const started = new Set(detail.tasks.filter((x) => (x.attempts ?? []).some((a) => a.started_at_ms)).map((x) => x.stage));
  await page.click('nav.tabs a[data-tab="timeline"]');
  await page.waitForSelector('.timeline[data-mode]');
  const tl = await page.$eval('.timeline', (el) => ({ ...el.dataset }));
  const lanes = await page.$$eval('.tl-lane', (ls) => ls.map((l) => l.getAttribute('data-stage')));
  check(lanes.length === started.size && lanes.every((l) => started.has(l)) && Number(tl.lanes) === started.size,
        `the timeline has one lane per stage that ran (${[...started].join(', ')})`, lanes.join(', '));
  const workRows = Number(await page.getAttribute('.tl-lane[data-stage="work"]', 'data-rows'));
  check(workRows >= 2 && workRows <= 64, 'the 1,200 work tasks are packed into a few rows', `${workRows} rows`);
  const bars = await page.$$eval('svg.gantt rect.bar[data-state="failed"]', (rs) => rs.map((r) => ({
    id: r.getAttribute('data-task-id'), w: r.getBoundingClientRect().width, fill: r.getAttribute('fill'),
    last: r === r.parentNode.lastElementChild || r.nextElementSibling.getAttribute('data-state') === 'failed',
  })));
  const attempts = detail.tasks.reduce((n, x) => n + (x.attempts ?? []).filter((a) => a.started_at_ms).length, 0);
  check(tl.mode === 'svg' && await page.locator('svg.gantt rect.bar').count() === attempts && Number(tl.bars) === attempts,
        `the timeline draws one bar per attempt (${attempts})`, JSON.stringify(tl));
  check(bars.length === 4 && bars.every((b) => b.w >= 2 && b.fill === '#d64545' && b.last) && Number(tl.failed) === 4,
        'the 4 failed bars are red, at least 2 px wide and drawn above the others', JSON.stringify(bars));
  // Zoom: the buttons, the wheel on the axis, reset.
  const scale = async () => Number(await page.getAttribute('.timeline', 'data-px-per-second'));
  const s0 = await scale();
  await page.click('[data-zoom-in]');
  const s1 = await scale();
  await page.hover('.tl-axis svg');
  await page.mouse.wheel(0, -200);
  await page.waitForFunction((v) => Number(document.querySelector('.timeline').dataset.pxPerSecond) > v, s1);
  const s2 = await scale();
  check(s1 > s0 * 1.4 && s2 > s1 * 1.4, 'zoom in (button, then wheel on the axis) widens the scale',
        `${s0} → ${s1} → ${s2} px/s`);
  await page.$eval('.timeline', (el) => el.scrollIntoView());
  await shot('timeline-zoomed');
  // The axis and the labels stay put while the lanes scroll (a short window
  // makes the lanes taller than their box).
  await page.setViewportSize({ width: 1500, height: 480 });
  const sticky = await page.evaluate(async () => {
    const sc = document.querySelector('.tl-scroll');
    const axis = () => document.querySelector('.tl-axis').getBoundingClientRect();
    const label = () => document.querySelector('.tl-lane[data-stage="work"] .tl-label').getBoundingClientRect();
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    sc.scrollTop = 0;
    sc.scrollLeft = 0;
    await frame();
    const before = { top: axis().top, left: label().left };
    sc.scrollTop = 120;
    sc.scrollLeft = 300;
    await frame();
    return { before, after: { top: axis().top, left: label().left }, scrollTop: sc.scrollTop, scrollLeft: sc.scrollLeft };
  });
  check(sticky.scrollTop > 0 && Math.abs(sticky.after.top - sticky.before.top) < 1,
        'the time axis stays visible while the lanes scroll down', JSON.stringify(sticky));
  check(sticky.scrollLeft > 0 && Math.abs(sticky.after.left - sticky.before.left) < 1,
        'the stage labels stay at the left while the lanes scroll sideways', JSON.stringify(sticky));
  await page.$eval('.timeline', (el) => el.scrollIntoView());
  await shot('timeline-scrolled');
  await page.setViewportSize({ width: 1500, height: 950 });
  await page.click('[data-zoom-reset]');
  check(Math.abs(await scale() - s0) < 1e-6, 'reset zooms back to the whole run');
  await page.$eval('.timeline', (el) => el.scrollIntoView());
  await shot('timeline');

  // ---- a 5,002-task run's timeline: canvases, counted ---------------------------
  await page.goto(`${base}/#/runs/${encodeURIComponent(large.id)}`);
  // The graph first, so that its request is not in the figure.
  await page.waitForSelector('svg.dag g.node.group[data-stage="work"]');
  const t0 = Date.now();
  await page.click('nav.tabs a[data-tab="timeline"]');
  await page.waitForSelector('.timeline[data-mode]');
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  const drawMs = Date.now() - t0;
  const big = await page.$eval('.timeline', (el) => ({ ...el.dataset }));
  const f0 = Date.now();
  await api(`/runs/${encodeURIComponent(large.id)}`);
  console.log(`# timeline 5,000 tasks: ${drawMs} ms from the tab click to drawn ` +
              `(lanes drawn in ${big.renderMs} ms; the API's /runs/RUN answer alone takes ${Date.now() - f0} ms)`);
  const canvases = await page.locator('.tl-lane canvas.gantt-canvas').count();
  check(big.mode === 'canvas' && Number(big.bars) === 5002 && Number(big.failed) === 0 &&
        Number(big.lanes) === 3 && canvases === 3 && await page.locator('rect.bar').count() === 0,
        'the 5,002-task timeline draws 5,002 bars on 3 canvases (one per stage), no SVG bar', JSON.stringify(big));
  const z0 = Date.now();
  await page.click('[data-zoom-in]');
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  console.log(`# timeline 5,000 tasks: a zoom step ${Date.now() - z0} ms ` +
              `(lanes drawn in ${await page.getAttribute('.timeline', 'data-render-ms')} ms)`);
  await page.click('[data-zoom-reset]');
  // prep starts the run, so its bar begins at the canvas's left edge.
  await page.click('.tl-lane[data-stage="prep"] canvas', { position: { x: 1, y: 8 } });
  await page.waitForSelector('[data-task-panel="prep"]');
  ok('a click on a canvas bar opens its task panel');
  // The panel took width from the timeline: it is drawn again to fit, the
  // whole run in view without a horizontal scroll.
  await page.waitForFunction(() => {
    const sc = document.querySelector('.timeline .tl-scroll');
    return sc && sc.scrollWidth <= sc.clientWidth + 2;
  }).then(() => ok('with the task panel open, the timeline fits the width left'),
          async () => fail(`the timeline did not fit beside the panel: ${await page.$eval('.timeline .tl-scroll',
            (sc) => `${sc.scrollWidth} > ${sc.clientWidth}`)}`));
  await shot('large-timeline');

  // ---- #/runs/last follows a new run ------------------------------------------
  await page.goto(`${base}/#/runs/last`);
  await page.waitForSelector(`.last-run[data-run="${large.id}"] .run-head .chip`);
  await page.waitForSelector('#live[data-status="live"]');
  const liveRun = spawn(tierflow, ['run', join(tmp, 'live', 'pipeline.yaml'), '--db', db], { stdio: 'ignore' });
  const liveDone = new Promise((r) => liveRun.on('exit', r));
  await page.waitForSelector('.last-run[data-run^="live-"]');
  const shownId = await page.getAttribute('.last-run', 'data-run');
  check(page.url().endsWith('#/runs/last'), '#/runs/last switches to the new run, the URL unchanged',
        `${page.url()} shows ${shownId}`);
  await page.waitForSelector(`.run-view[data-run="${shownId}"] svg.dag g.node.task[data-task-id="after"]`);
  const before = await page.getAttribute('svg.dag g.node.task[data-task-id="after"]', 'data-state');
  await page.waitForSelector('.run-head .chip[data-state="succeeded"]', { timeout: 60000 });
  check(before !== 'succeeded' && await page.getAttribute('#live', 'data-status') === 'live',
        '#/runs/last follows the new run to succeeded, live', `after was ${before} at first`);
  check(await page.$eval('nav.tabs a[data-tab="timeline"]', (a) => a.getAttribute('href')) === '#/runs/last/timeline',
        'its tabs stay on #/runs/last');
  await shot('runs-last');
  const code = await liveDone;
  check(code === 0, 'the live run succeeded', `exit ${code}`);

  check(dialogs.length === 0, 'no dialog opened', dialogs.join('; '));
  check(errors.length === 0, 'no page or console errors', errors.join('\n'));
}

await finish(main);
