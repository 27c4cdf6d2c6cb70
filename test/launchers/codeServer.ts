// Offline launcher for the extension-test suite (`npm run test:extension`).
//
// VS Code desktop cannot be downloaded here, so the same mocha suite that
// @vscode/test-electron runs is run inside code-server's extension host: the
// workbench is opened in headless Chromium with a development payload that
// names this repo as the extension under development and out/test/extension
// as the test entry. The browser gives no exit code, so the suite writes its
// result to a file and this launcher waits for it, then exits non-zero on a
// failed test, a time-out, or a host that did not start.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { closeChromium, launchChromium } from '../support/browser';
import { repoRoot, startCodeServer, type CodeServerHost } from '../support/codeServerHost';
import type { TestRunResult } from '../extension/index';

const resultEnvVar = 'CHAT_ROOM_TEST_RESULT';
const runTimeoutMs = Number(process.env.CHAT_ROOM_EXTENSION_TEST_TIMEOUT_MS ?? 240_000);

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function printResult(result: TestRunResult): void {
  console.log(`extension host: VS Code ${result.vscodeVersion}`);
  if (result.activationMs !== undefined) console.log(`extension activation (bundle load + activate()): ${result.activationMs} ms`);
  for (const test of result.tests) {
    const mark = test.state === 'passed' ? '✔' : test.state === 'failed' ? '✖' : '-';
    const duration = test.durationMs !== undefined ? ` (${test.durationMs}ms)` : '';
    console.log(`  ${mark} ${test.title}${duration}`);
  }
  result.failures.forEach((failure, index) => {
    console.log(`\n  ${index + 1}) ${failure.title}\n     ${(failure.stack ?? failure.message).split('\n').join('\n     ')}`);
  });
}

async function main(): Promise<number> {
  const root = repoRoot();
  const testIndex = join(root, 'out', 'test', 'extension', 'index.js');
  for (const needed of [testIndex, join(root, 'dist', 'extension.js')]) {
    if (!existsSync(needed)) {
      console.error(`missing ${needed}: run \`npm run build\` first`);
      return 1;
    }
  }
  const resultDir = mkdtempSync(join(tmpdir(), 'chat-room-extension-result-'));
  const resultFile = join(resultDir, 'result.json');
  let host: CodeServerHost | undefined;
  let browser: Browser | undefined;

  const cleanUp = async () => {
    if (browser) await closeChromium(browser);
    if (host) await host.stop();
    rmSync(resultDir, { recursive: true, force: true });
  };
  const stopOnSignal = (signal: NodeJS.Signals) => {
    console.error(`received ${signal}, stopping`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  try {
    const started = Date.now();
    try {
      host = await startCodeServer({ label: 'extension-tests', env: { [resultEnvVar]: resultFile } });
    } catch (error) {
      console.error(`extension: the VS Code host did not start: ${(error as Error).message}`);
      return 1;
    }
    console.log(`code-server up on ${host.baseUrl} in ${Date.now() - started}ms (pid ${host.pid})`);

    browser = await launchChromium();
    const page = await browser.newPage();
    const browserErrors: string[] = [];
    page.on('pageerror', (error) => browserErrors.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') browserErrors.push(`console: ${message.text()}`);
    });
    await page.goto(
      host.workbenchUrl([
        ['extensionDevelopmentPath', host.remoteUri(root)],
        ['extensionTestsPath', host.remoteUri(testIndex)],
      ]),
      { timeout: 60_000 },
    );

    const deadline = Date.now() + runTimeoutMs;
    while (!existsSync(resultFile)) {
      if (!host.isRunning()) {
        console.error(`extension: code-server exited before the tests finished\n${host.logTail()}`);
        return 1;
      }
      if (Date.now() > deadline) {
        console.error(`extension: no test result within ${runTimeoutMs}ms`);
        console.error(browserErrors.slice(-20).join('\n'));
        console.error(host.logTail());
        return 1;
      }
      await delay(250);
    }
    const result = JSON.parse(readFileSync(resultFile, 'utf8')) as TestRunResult;
    printResult(result);
    console.log(`\nextension: ${result.passed} passed, ${result.failed} failed`);
    if (result.passed + result.failed === 0) {
      console.error('extension: no tests ran');
      return 1;
    }
    return result.failed > 0 ? 1 : 0;
  } finally {
    await cleanUp();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`extension: launcher failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
