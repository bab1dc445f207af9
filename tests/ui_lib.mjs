// What the browser tests of the web UI share (tests/ui_*.mjs): their
// arguments, a tally of checks, `tierflow run` into a temporary store,
// `tierflow ui` on a free loopback port, Debian's Chromium driven by
// playwright-core with page errors and dialogs collected, screenshots, and
// the end (tally, screenshots, exit code). Each test file is its own ctest:
//
//   node tests/ui_X.mjs --tierflow BIN --source REPO --out DIR
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const kStepTimeout = 30000;

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`usage: node ${process.argv[1]} --tierflow BIN --source REPO --out DIR (missing ${name})`);
    process.exit(2);
  }
  return resolve(process.argv[i + 1]);
}

export const tierflow = arg('--tierflow');
export const source = arg('--source');
export const out = arg('--out');
mkdirSync(out, { recursive: true });
const require = createRequire(join(source, 'ui', 'package.json'));
const { chromium } = require('playwright-core');

let passed = 0;
let failed = 0;
const screenshots = [];

export function ok(what) {
  passed++;
  console.log(`ok - ${what}`);
}

export function fail(what) {
  failed++;
  console.log(`FAIL - ${what}`);
}

export function check(cond, what, detail = '') {
  if (cond) ok(what);
  else fail(detail ? `${what}: ${detail}` : what);
  return cond;
}

// A temporary folder for pipelines, and the store every run goes into.
export const tmp = mkdtempSync(join(tmpdir(), 'tierflow-ui-browser-'));
export const db = join(tmp, 'tierflow.db');

// `tierflow run PIPELINE --db db EXTRA...`, which must succeed or fail as
// `expectOk` says.
export function run(pipeline, expectOk, ...extra) {
  const r = spawnSync(tierflow, ['run', pipeline, '--db', db, ...extra],
                      { encoding: 'utf8', timeout: 300000, maxBuffer: 64 << 20 });
  if ((r.status === 0) !== expectOk) {
    console.log(r.stdout, r.stderr);
    throw new Error(`tierflow run ${pipeline} exited ${r.status}`);
  }
  return r;
}

let server = null;
let browser = null;

// `tierflow ui --db db` on 127.0.0.1, any free port; resolves to its base
// URL once it prints its address. `env` adds to the environment (a token).
export async function startServer(env = {}) {
  server = spawn(tierflow, ['ui', '--db', db, '--listen', '127.0.0.1:0'],
                 { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let serverOut = '';
  const base = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`tierflow ui printed no address in 20 s:\n${serverOut}`)), 20000);
    const onData = (d) => {
      serverOut += d.toString();
      const m = serverOut.match(/http:\/\/(127\.0\.0\.1|localhost):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(`http://127.0.0.1:${m[2]}`);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => reject(new Error(`tierflow ui exited ${code}:\n${serverOut}`)));
  });
  console.log(`# tierflow ui at ${base}`);
  return base;
}

// GET base/api/v1PATH as JSON; a non-2xx answer throws.
export function apiOf(base, headers = {}) {
  return async (path) => {
    const res = await fetch(`${base}/api/v1${path}`, { headers });
    if (!res.ok) throw new Error(`GET /api/v1${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
}

// Chromium with one page of `viewport`; returns the page with `dialogs`,
// `errors` (page and console errors), `shot(name)` and `noInjection(where)`.
export async function openPage(viewport = { width: 1500, height: 950 }) {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(kStepTimeout);
  const dialogs = [];
  const errors = [];
  page.on('dialog', async (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  const shot = async (name) => {
    const path = join(out, `${name}.png`);
    await page.screenshot({ path, fullPage: false });
    screenshots.push(path);
    return path;
  };
  // Nothing hostile became markup: no <img src=x>, no script but the app's.
  const noInjection = async (where) => {
    const found = await page.evaluate(() => ({
      imgs: document.querySelectorAll('img[src="x"]').length,
      scripts: Array.from(document.scripts).map((s) => s.src || 'inline'),
    }));
    check(found.imgs === 0 && found.scripts.length === 1 && dialogs.length === 0,
          `${where}: hostile text stayed text`,
          `${found.imgs} <img src=x>, scripts ${found.scripts.join(' ')}, dialogs ${dialogs.join('; ')}`);
  };
  return { page, dialogs, errors, shot, noInjection };
}

// The end of every UI test: checks that no dialog opened and no page error
// happened (pass them from openPage), closes the browser and the server,
// prints the screenshots and the tally, keeps `tmp` on failure, and exits.
export async function finish(main) {
  let crashed = null;
  try {
    await main();
  } catch (e) {
    crashed = e;
    fail(`stopped: ${e.stack || e}`);
  } finally {
    if (browser) await browser.close();
    if (server) {
      server.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => { server.kill('SIGKILL'); r(); }, 5000);
        server.on('exit', () => { clearTimeout(t); r(); });
        if (server.exitCode !== null) { clearTimeout(t); r(); }
      });
    }
  }
  for (const s of screenshots) console.log(`screenshot: ${s}`);
  if (failed === 0 && !crashed) rmSync(tmp, { recursive: true, force: true });
  else console.log(`# kept ${tmp}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && !crashed ? 0 : 1);
}

export { spawn, spawnSync };
