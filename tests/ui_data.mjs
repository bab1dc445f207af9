// Where a run's data is, in a real browser (issue 20, "uidata"): the
// checkpoints tab, the tiers a run used (run page tab and the tiers view's
// "used by a run"), and artifact downloads, against the real `tierflow`
// binary and a server with a token.
//
//   node tests/ui_data.mjs --tierflow BIN --source REPO --out DIR
//
// Runs the quickstart (its train stage checkpoints) and a small pipeline
// with a 3,000-byte file, a folder and a 16 MiB + 1 file; serves them with
// TIERFLOW_UI_TOKEN set and opens the UI with ?token= (the cookie the server
// sets is what a plain download link carries). Checks every count the pages
// show against the API's answers and the run's outputs, clicks download in
// the outputs tab and the task panel and compares the bytes with the file on
// the tier, and that a download without the token is refused.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { apiOf, check, finish, openPage, run, source, startServer, tmp } from './ui_lib.mjs';

const kToken = 'data-t0ken';

writeFileSync(join(tmp, 'data.yaml'), `name: data
stages:
  small:
    foreach: ["x y"]
    run: head -c 3000 /dev/urandom > "$TIERFLOW_OUTPUT_BLOB"
    outputs: [blob]
  tree:
    run: mkdir -p "$TIERFLOW_OUTPUT_TREE" && echo a > "$TIERFLOW_OUTPUT_TREE/a" && echo b > "$TIERFLOW_OUTPUT_TREE/b"
    outputs: [tree]
  big:
    run: head -c 16777217 /dev/zero > "$TIERFLOW_OUTPUT_BIG"
    outputs: [big]
`);

async function main() {
  run(join(source, 'examples', 'quickstart', 'pipeline.yaml'), true);
  run(join(tmp, 'data.yaml'), true);
  const base = await startServer({ TIERFLOW_UI_TOKEN: kToken });
  const api = apiOf(base, { Authorization: `Bearer ${kToken}` });
  const runs = (await api('/runs')).runs;
  const quick = runs.find((r) => r.pipeline === 'quickstart').id;
  const data = runs.find((r) => r.pipeline === 'data').id;
  const { page, errors, shot } = await openPage();

  // The token: ?token= once; the server sets its cookie, the UI keeps the
  // token for its fetches' Authorization header.
  await page.goto(`${base}/?token=${kToken}#/runs/${encodeURIComponent(quick)}/checkpoints`);
  const cookies = await page.context().cookies();
  check(cookies.some((c) => c.name === 'tierflow_token' && c.httpOnly), 'the token cookie is set (HttpOnly)');

  // ---- checkpoints tab
  const checkpoints = (await api(`/runs/${quick}/checkpoints`)).checkpoints;
  await page.waitForSelector('.checkpoint-task');
  const tab = await page.evaluate(() => ({
    tasks: Array.from(document.querySelectorAll('.checkpoint-task')).map((e) => e.dataset.task),
    rows: Array.from(document.querySelectorAll('tr[data-checkpoint]')).map((e) => [Number(e.dataset.checkpoint), e.dataset.state]),
    dots: document.querySelectorAll('svg.checkpoint-chart circle').length,
    text: document.querySelector('.checkpoints-view')?.textContent ?? '',
  }));
  const tasks = [...new Set(checkpoints.map((c) => c.task_id))];
  check(checkpoints.length > 0 && JSON.stringify(tab.tasks) === JSON.stringify(tasks),
        'checkpoints: one section per checkpointing task', `${tab.tasks} vs ${tasks}`);
  check(JSON.stringify(tab.rows) === JSON.stringify(checkpoints.map((c) => [c.id, c.state])),
        `checkpoints: ${checkpoints.length} rows with the API's states`, JSON.stringify(tab.rows));
  check(tab.dots === checkpoints.length, 'checkpoints: one dot per checkpoint in the chart', `${tab.dots}`);
  const kept = checkpoints.filter((c) => c.state === 'present');
  check(kept.length > 0 && kept.every((c) => tab.text.includes(c.tier) && tab.text.includes(c.local_uri)),
        'checkpoints: the fast tier written on and the durable tier flushed to are shown');
  await shot('checkpoints');

  // ---- tiers tab of the run page: counts as the API and the run's outputs say
  const detail = await api(`/runs/${quick}`);
  const homes = {};
  for (const t of detail.tasks) for (const o of t.outputs) for (const c of o.copies) {
    if (c.state === 'present' && c.role === 'home') homes[c.tier] = (homes[c.tier] ?? 0) + 1;
  }
  const used = (await api(`/runs/${quick}/tiers`)).tiers;
  await page.click('nav.tabs a[data-tab="tiers"]');
  await page.waitForSelector('tr[data-run-tier]');
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('tr[data-run-tier]')).map((e) => ({
    name: e.dataset.runTier, outputs: Number(e.dataset.outputs), copies: Number(e.dataset.copies),
    checkpoints: Number(e.dataset.checkpoints), bytes: Number(e.dataset.bytes) })));
  check(JSON.stringify(rows) === JSON.stringify(used.map((t) => ({ name: t.name, outputs: t.outputs,
    copies: t.copies, checkpoints: t.checkpoints, bytes: t.bytes }))), 'run tiers tab: the API\'s tiers and counts',
        JSON.stringify(rows));
  check(rows.every((r) => r.outputs === (homes[r.name] ?? 0)), 'run tiers tab: outputs homed per tier match the run\'s outputs',
        JSON.stringify(homes));
  check(rows.reduce((n, r) => n + r.checkpoints, 0) === kept.length, 'run tiers tab: checkpoints flushed match');
  await shot('run-tiers');

  // ---- the tiers view: used by a run, with a run selector
  await page.click('.run-tiers-tab a');
  await page.waitForSelector('.run-tiers-box tr[data-run-tier]');
  check(page.url().endsWith(`#/tiers?run=${encodeURIComponent(quick)}`), 'tiers view opened for the run', page.url());
  const options = await page.$$eval('select[data-run-select] option', (os) => os.map((o) => o.value));
  check(options.includes(quick) && options.includes(data), 'tiers view: a selector of recent runs', `${options}`);
  await page.selectOption('select[data-run-select]', data);
  const dataUsed = (await api(`/runs/${data}/tiers`)).tiers;
  const dataOutputs = dataUsed.reduce((n, t) => n + t.outputs, 0);
  await page.waitForFunction((n) => {
    const cells = Array.from(document.querySelectorAll('.run-tiers-box tr[data-run-tier]'));
    return cells.length > 0 && cells.reduce((s, e) => s + Number(e.dataset.outputs), 0) === n &&
      location.hash.includes('run=data-');
  }, dataOutputs);
  check(dataOutputs === 3, 'tiers view: the data run\'s 3 outputs homed', `${dataOutputs}`);
  await shot('tiers-used-by-run');

  // ---- downloads: the outputs tab offers one only where it applies
  await page.goto(`${base}/#/runs/${encodeURIComponent(data)}/outputs`);
  await page.waitForSelector('table.outputs-table');
  const links = await page.$$eval('a[data-download]', (as) => as.map((a) => a.closest('tr').dataset.artifact));
  const dataDetail = await api(`/runs/${data}`);
  const byTask = Object.fromEntries(dataDetail.tasks.map((t) => [t.id, t.outputs[0]]));
  const small = byTask['small[x y]'];
  check(JSON.stringify(links) === JSON.stringify([String(small.id)]),
        'outputs tab: a download link for the one file under 16 MiB only', `${links}`);
  const noLink = await page.$$eval('[data-no-download]', (es) => es.map((e) => [e.closest('tr').dataset.artifact, e.dataset.noDownload]));
  check(JSON.stringify(noLink.sort()) === JSON.stringify([[String(byTask.tree.id), 'folder'],
        [String(byTask.big.id), 'over 16 MiB']].sort()), 'outputs tab: the folder and the 16 MiB + 1 file say why not',
        JSON.stringify(noLink));
  const wanted = readFileSync(small.copies.find((c) => c.state === 'present').uri);
  for (const where of ['outputs tab', 'task panel']) {
    if (where === 'task panel') {
      await page.goto(`${base}/#/runs/${encodeURIComponent(data)}/outputs?task=${encodeURIComponent('small[x y]')}`);
      await page.waitForSelector('.run-side a[data-download]');
    }
    const selector = where === 'task panel' ? '.run-side a[data-download]' : 'table.outputs-table a[data-download]';
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    const got = readFileSync(await download.path());
    check(got.length === 3000 && got.equals(wanted), `${where}: the downloaded bytes are the file's`, `${got.length} bytes`);
    check(['small_x_y_-blob', 'small[x y]-blob'].includes(download.suggestedFilename()),
          `${where}: the file name`, download.suggestedFilename());
  }
  await shot('download-panel');

  // Without the token the same link is refused.
  const refused = await fetch(`${base}/api/v1/artifacts/${small.id}/download`);
  check(refused.status === 401, 'download without the token: 401', `${refused.status}`);
  const wrong = await fetch(`${base}/api/v1/artifacts/${small.id}/download`, { headers: { Cookie: 'tierflow_token=x' } });
  check(wrong.status === 403, 'download with a wrong cookie: 403', `${wrong.status}`);
  check(errors.length === 0, 'no page errors', errors.join('; '));
}

await finish(main);
