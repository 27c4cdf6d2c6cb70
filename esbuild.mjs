// One build script, one entry per target: the extension (node, `vscode`
// external), the standalone server CLI (node), the webview (browser, Preact's
// JSX) with the codicons it uses, and the tests (node, each file its own
// bundle, packages left to node_modules), plus the panel's Markdown module
// alone for the browser, which the UI suite tests in a real page.
import * as esbuild from 'esbuild';
import subsetFont from 'subset-font';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  {
    ...common,
    entryPoints: { server: 'server/cli.ts' },
    outdir: 'dist',
    platform: 'node',
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    plugins: [redisClientBesideServer()],
  },
  // Cluster mode's Redis client, loaded by the server only under --redis; the .vsix leaves it out.
  { ...common, entryPoints: { redisClient: 'server/cluster/redisClientBundle.ts' }, outdir: 'dist', platform: 'node', format: 'cjs' },
  {
    ...common,
    entryPoints: { webview: 'extension/webview/main.tsx' },
    outdir: 'dist',
    platform: 'browser',
    format: 'iife',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    plugins: [codiconsInUse()],
  },
  {
    ...common,
    sourcemap: false,
    minify: false,
    entryPoints: { 'test/ui/markdownInBrowser': 'extension/webview/markdown.ts' },
    outdir: 'out',
    platform: 'browser',
    format: 'iife',
    globalName: 'ChatMarkdown',
  },
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

/**
 * Leaves node-redis out of the server bundle: its one way in,
 * `require('./redisClientBundle')` in server/cluster/redisConnection.ts, is
 * pointed at the separate dist/redisClient.js, loaded only in cluster mode.
 * Other bundles (the tests) take the module in as usual.
 */
function redisClientBesideServer() {
  return {
    name: 'redis-client-beside-server',
    setup(build) {
      build.onResolve({ filter: /^\.\/redisClientBundle$/ }, () => ({ path: './redisClient.js', external: true }));
    },
  };
}

/**
 * Ships only the codicons the webview uses: after each webview build, the
 * `codicon-NAME` classes found in the bundle pick their rules out of
 * @vscode/codicons' stylesheet into dist/codicons.css, and their glyphs out of
 * its font into dist/codicon.ttf (a few KiB instead of the whole set's 120).
 */
function codiconsInUse() {
  const source = join('node_modules', '@vscode', 'codicons', 'dist');
  return {
    name: 'codicons-in-use',
    setup(build) {
      build.onEnd(async (result) => {
        if (result.errors.length > 0) return;
        const bundle = readFileSync(join('dist', 'webview.js'), 'utf8');
        const used = new Set(bundle.match(/codicon-[a-z0-9-]+/g) ?? []);
        const css = readFileSync(join(source, 'codicon.css'), 'utf8');
        const fontFace = /@font-face\s*{[^}]*}/.exec(css)?.[0].replace(/url\("\.\/codicon\.ttf[^"]*"\)/, 'url("./codicon.ttf")');
        const base = /\.codicon\[class\*='codicon-'\]\s*{[^}]*}/.exec(css)?.[0];
        if (!fontFace || !base) throw new Error('@vscode/codicons changed the shape of codicon.css');
        const rules = [...used].sort().map((name) => {
          const rule = new RegExp(`^\\.${name}:before\\s*{[^}]*}`, 'm').exec(css)?.[0];
          if (!rule) throw new Error(`@vscode/codicons has no ${name}`);
          return rule;
        });
        const glyphs = rules.map((rule) => String.fromCodePoint(parseInt(/content:\s*"\\([0-9a-f]+)"/i.exec(rule)[1], 16))).join('');
        const font = await subsetFont(readFileSync(join(source, 'codicon.ttf')), glyphs, { targetFormat: 'truetype' });
        mkdirSync('dist', { recursive: true });
        writeFileSync(join('dist', 'codicons.css'), `/* The codicons the chat panel uses, from @vscode/codicons (MIT). */\n${fontFace}\n${base}\n${rules.join('\n')}\n`);
        writeFileSync(join('dist', 'codicon.ttf'), font);
      });
    },
  };
}

if (watch) {
  for (const options of targets) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(targets.map((options) => esbuild.build(options)));
}
