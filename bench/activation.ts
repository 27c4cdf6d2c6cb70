/**
 * `npm run bench:activation`: how long the packaged extension takes to
 * activate, as VS Code itself counts it (loading its code plus its
 * `activate()`), read from the workbench's "Show Running Extensions" view in
 * code-server with Chromium. Each run is a fresh code-server with the .vsix
 * installed, where the extension activates with the built-in ones once
 * start-up has finished, as it does for a person opening a window.
 *
 * Also prints the part that is ours alone: requiring the bundle in a bare Node
 * process (code loading without the extension host around it).
 *
 * `--runs N` (default 5).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { repoRoot } from '../test/support/codeServerHost';
import { closeChromium, launchChromium, runCommand, startPerson } from '../test/ui/harness';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Math.max(1, Math.min(20, Number(process.argv[runsArg + 1]) || 5)) : 5;
const EXTENSION_TITLE = 'Chat Room';

interface ActivationRow {
  name: string;
  ms: number;
  startup: boolean;
}

/** The rows of the Running Extensions view, once the Chat Room's shows an activation time. */
async function runningExtensions(page: Page, timeoutMs = 30_000): Promise<ActivationRow[]> {
  const deadline = Date.now() + timeoutMs;
  await runCommand(page, 'Developer: Show Running Extensions');
  while (Date.now() < deadline) {
    const texts = await page.locator('.runtime-extensions-editor .extension').allInnerTexts();
    const rows = texts.flatMap((text): ActivationRow[] => {
      const lines = text.split('\n').map((line) => line.trim());
      const time = /^(Startup )?Activation: (\d+)ms$/.exec(lines.find((line) => /Activation: \d+ms$/.test(line)) ?? '');
      return time ? [{ name: lines[0], ms: Number(time[2]), startup: time[1] !== undefined }] : [];
    });
    if (rows.some((row) => row.name === EXTENSION_TITLE)) return rows;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the Running Extensions view showed no activation time for ${EXTENSION_TITLE} within ${timeoutMs} ms`);
}

/** Milliseconds to require the packaged bundle in a bare Node process, with a placeholder for the `vscode` module it imports. */
function bareLoadMs(): number {
  const bundle = join(repoRoot(), 'dist', 'extension.js');
  const script = `
    const Module = require('module');
    const resolve = Module._resolveFilename;
    const placeholder = new Proxy(function () {}, { get: () => placeholder });
    Module._resolveFilename = function (request, ...rest) { return request === 'vscode' ? 'vscode' : resolve.call(this, request, ...rest); };
    require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: placeholder };
    const started = performance.now();
    require(${JSON.stringify(bundle)});
    process.stdout.write(String(performance.now() - started));`;
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

async function main(): Promise<void> {
  const browser = await launchChromium();
  const ours: number[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      const person = await startPerson(browser, `activation${run}`);
      try {
        const rows = await runningExtensions(person.page);
        const chat = rows.find((row) => row.name === EXTENSION_TITLE) as ActivationRow;
        ours.push(chat.ms);
        const others = rows.filter((row) => row !== chat).map((row) => `${row.name} ${row.ms}`).join(', ');
        console.log(`run ${run}: ${EXTENSION_TITLE} ${chat.ms} ms${chat.startup ? ' (at start-up)' : ''}; beside it: ${others}`);
      } finally {
        await person.stop();
      }
    }
  } finally {
    await closeChromium(browser);
  }
  const loads = Array.from({ length: 5 }, bareLoadMs);
  console.log(`\nActivation as VS Code counts it (code loading + activate()), ${RUNS} runs: median ${median(ours)} ms, min ${Math.min(...ours)}, max ${Math.max(...ours)} (goal ≤ 50 ms)`);
  console.log(`Loading dist/extension.js in bare Node: median ${median(loads).toFixed(1)} ms over 5 loads`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
