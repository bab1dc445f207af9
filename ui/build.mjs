// Builds dist/: index.html, assets/app.js (one bundle) and assets/app.css.
// `npm run build` writes ui/dist; ui/CMakeLists.txt runs
// `npm run build -- --outdir DIR` into its build tree (so build directories
// do not race on one folder) and embeds that folder in tierflow.
import * as esbuild from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf('--outdir');
if (args.length && (at !== 0 || args.length !== 2)) {
  console.error('usage: node build.mjs [--outdir DIR]');
  process.exit(2);
}
const dist = at === 0 ? resolve(args[1]) : `${here}dist`;

await rm(dist, { recursive: true, force: true });
await mkdir(`${dist}/assets`, { recursive: true });
await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  outdir: `${dist}/assets`,
  legalComments: 'eof',
  logLevel: 'warning',
});
await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/styles.css' },
  bundle: true,
  minify: true,
  outdir: `${dist}/assets`,
  logLevel: 'warning',
});
for (const f of ['index.html', 'favicon.svg']) await copyFile(`${here}src/${f}`, `${dist}/${f}`);
