// UI benchmark (issue 20): the run timeline at 5,000 and 10,000 tasks, the
// per-stage timeline (ui/src/views/timeline.ts: canvas beyond 2,000 bars)
// against the one before it (one SVG row per task), both bundled from source
// into the same page of Debian's Chromium and fed the same run detail.
//
//   node bench/ui_timeline.mjs --tierflow BIN --source REPO --out DIR
//        [--sizes 5000,10000] [--baseline REF] [--repeat 3]
//
// REF (default c5b24b2) is the commit whose ui/src/views/timeline.ts is the
// baseline. For each size: `tierflow run` of a foreach of N no-op tasks
// (between a first and a last stage), served by `tierflow ui`; then, N times
// --repeat, the time from building the timeline to the next frame after it
// is in the page (the draw), a zoom step of the new timeline (its + button
// to the next frame), and the detail's fetch. Prints a table of medians.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { finish, ok, openPage, run, source, startServer, tmp } from '../tests/ui_lib.mjs';

function opt(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const sizes = opt('--sizes', '5000,10000').split(',').map(Number);
const baseline = opt('--baseline', 'c5b24b2');
const repeat = Number(opt('--repeat', '3'));

// Both timelines in one IIFE: window.bench = {now, before}.
function bundle() {
  const src = join(tmp, 'src');
  cpSync(join(source, 'ui', 'src'), src, { recursive: true });
  const old = execFileSync('git', ['-C', source, 'show', `${baseline}:ui/src/views/timeline.ts`], { encoding: 'utf8' });
  writeFileSync(join(src, 'views', 'timeline_before.ts'), old);
  writeFileSync(join(src, 'bench_entry.ts'), `
import { timeline as now } from './views/timeline';
import { timeline as before } from './views/timeline_before';
(window as any).bench = { now, before };
`);
  const require = createRequire(join(source, 'ui', 'package.json'));
  const esbuild = require('esbuild');
  const out = esbuild.buildSync({ entryPoints: [join(src, 'bench_entry.ts')], bundle: true, format: 'iife',
                                  write: false, target: 'es2020' });
  return out.outputFiles[0].text;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const code = bundle();
  for (const n of sizes) {
    mkdirSync(join(tmp, `p${n}`));
    writeFileSync(join(tmp, `p${n}`, 'pipeline.yaml'), `name: tl${n}
stages:
  first:
    run: "true"
  work:
    foreach: {range: [0, ${n}]}
    needs: [first]
    run: "true"
  last:
    needs: [work]
    run: "true"
`);
    const t = Date.now();
    run(join(tmp, `p${n}`, 'pipeline.yaml'), true);
    console.log(`# the ${n + 2}-task run took ${Date.now() - t} ms`);
  }
  const base = await startServer();
  const { page, errors } = await openPage({ width: 1500, height: 950 });
  await page.goto(`${base}/#/tiers`);
  await page.waitForSelector('tr[data-tier]');
  await page.evaluate(code);
  const runs = (await (await fetch(`${base}/api/v1/runs?limit=0`)).json()).runs;

  const rows = [];
  for (const n of sizes) {
    const r = runs.find((x) => x.pipeline === `tl${n}`);
    const m = await page.evaluate(async ({ id, repeat }) => {
      const frame = () => new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
      const host = document.getElementById('app');
      const f0 = performance.now();
      const detail = await (await fetch(`/api/v1/runs/${encodeURIComponent(id)}`)).json();
      const fetchMs = performance.now() - f0;
      const res = { fetchMs, now: [], before: [], zoom: [], bars: 0, elements: {} };
      for (let i = 0; i < repeat; i++) {
        for (const which of ['before', 'now']) {
          host.replaceChildren();
          await frame();
          const t0 = performance.now();
          const el = window.bench[which](detail, 1200, () => {});
          host.append(el);
          void host.offsetHeight;  // layout now, not lazily
          await frame();
          res[which].push(performance.now() - t0);
          res.elements[which] = el.querySelectorAll('*').length;
          if (which === 'now') {
            res.bars = Number(el.dataset.bars);
            const z0 = performance.now();
            el.querySelector('[data-zoom-in]').click();
            void host.offsetHeight;
            await frame();
            res.zoom.push(performance.now() - z0);
          }
        }
      }
      host.replaceChildren();
      return res;
    }, { id: r.id, repeat });
    rows.push({ n: n + 2, ...m });
  }
  console.log('');
  console.log('| tasks | detail fetch | timeline before (SVG rows) | elements | timeline now (lanes) | elements | ratio | zoom step now |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of rows) {
    const b = median(x.before);
    const a = median(x.now);
    console.log(`| ${x.n.toLocaleString('en-US')} | ${x.fetchMs.toFixed(0)} ms | ${b.toFixed(0)} ms | ` +
                `${x.elements.before.toLocaleString('en-US')} | ${a.toFixed(0)} ms | ${x.elements.now} | ` +
                `${(b / a).toFixed(1)}x faster | ${median(x.zoom).toFixed(0)} ms |`);
    if (x.bars !== x.n) throw new Error(`the timeline drew ${x.bars} bars for ${x.n} tasks`);
  }
  console.log(`# medians of ${repeat}; draw = building the timeline to the next frame after it is in the page`);
  if (errors.length) throw new Error(errors.join('\n'));
  ok('benchmark done');
}

await finish(main);
