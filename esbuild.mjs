// One build script, one entry per target: the extension (node, `vscode`
// external), the standalone server CLI (node), the webview (browser) and the
// tests (node, each file its own bundle, packages left to node_modules).
import * as esbuild from 'esbuild';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

function filesUnder(dir, suffix) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...filesUnder(path, suffix));
    else if (path.endsWith(suffix)) found.push(path);
  }
  return found;
}

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'info', target: 'es2022' };

const targets = [
  { ...common, entryPoints: { extension: 'extension/extension.ts' }, outdir: 'dist', platform: 'node', format: 'cjs', external: ['vscode'] },
  { ...common, entryPoints: { server: 'server/cli.ts' }, outdir: 'dist', platform: 'node', format: 'cjs', banner: { js: '#!/usr/bin/env node' } },
  { ...common, entryPoints: { webview: 'extension/webview/main.ts' }, outdir: 'dist', platform: 'browser', format: 'iife' },
  {
    ...common,
    sourcemap: true,
    minify: false,
    entryPoints: [...filesUnder('test', '.ts'), ...filesUnder('bench', '.ts'), ...filesUnder('scripts', '.ts')],
    outdir: 'out',
    outbase: '.',
    platform: 'node',
    format: 'cjs',
    packages: 'external',
    external: ['vscode'],
  },
];

if (watch) {
  for (const options of targets) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(targets.map((options) => esbuild.build(options)));
}
