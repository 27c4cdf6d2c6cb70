// The extension-test entry point VS Code loads through extensionTestsPath.
// It runs inside the real extension host (desktop VS Code under
// @vscode/test-electron, or code-server under the offline launcher), so the
// test files see the real `vscode` API.
//
// A browser-hosted workbench gives no exit code, so when
// CHAT_ROOM_TEST_RESULT names a file the outcome is also written there as JSON
// for the launcher to read.
import Mocha from 'mocha';
import { readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const testResultEnvVar = 'CHAT_ROOM_TEST_RESULT';

export interface TestRecord {
  title: string;
  state: 'passed' | 'failed' | 'pending';
  durationMs?: number;
  error?: string;
}

export interface TestRunResult {
  passed: number;
  failed: number;
  pending: number;
  vscodeVersion: string;
  /** How long this extension took to load and activate, when the suite was the first to activate it. */
  activationMs?: number;
  tests: TestRecord[];
  failures: Array<{ title: string; message: string; stack?: string }>;
}

function testFilesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...testFilesUnder(path));
    else if (entry.endsWith('.test.js')) found.push(path);
  }
  return found;
}

function vscodeVersion(): string {
  try {
    // Loaded lazily: only the extension host can provide this module.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('vscode') as typeof import('vscode')).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Activates the extension under test before any test does, and times it:
 * loading the bundle plus `activate()`, as a user's first command pays it.
 */
async function timeActivation(): Promise<number | undefined> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const vscode = require('vscode') as typeof import('vscode');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const manifest = require(join(__dirname, '..', '..', '..', 'package.json')) as { publisher: string; name: string };
    const extension = vscode.extensions.getExtension(`${manifest.publisher}.${manifest.name}`);
    if (!extension || extension.isActive) return undefined;
    const started = performance.now();
    await extension.activate();
    return Math.round(performance.now() - started);
  } catch {
    // Whether activation works is for the tests to say; this only times it.
    return undefined;
  }
}

function writeResult(result: TestRunResult): void {
  const resultFile = process.env[testResultEnvVar];
  if (!resultFile) return;
  // Written aside and renamed, so a launcher polling for the file never reads half of it.
  writeFileSync(`${resultFile}.partial`, JSON.stringify(result, null, 2));
  renameSync(`${resultFile}.partial`, resultFile);
}

export async function run(): Promise<void> {
  const result: TestRunResult = { passed: 0, failed: 0, pending: 0, vscodeVersion: vscodeVersion(), tests: [], failures: [] };
  result.activationMs = await timeActivation();
  try {
    const mocha = new Mocha({
      ui: 'bdd',
      color: false,
      reporter: 'spec',
      timeout: Number(process.env.CHAT_ROOM_TEST_TIMEOUT_MS ?? 20_000),
      ...(process.env.CHAT_ROOM_TEST_GREP ? { grep: process.env.CHAT_ROOM_TEST_GREP } : {}),
    });
    for (const file of testFilesUnder(__dirname)) mocha.addFile(file);

    await new Promise<void>((resolve) => {
      const runner = mocha.run(() => resolve());
      runner.on('pass', (test) => {
        result.passed++;
        result.tests.push({ title: test.fullTitle(), state: 'passed', durationMs: test.duration ?? 0 });
      });
      runner.on('fail', (test, error: Error) => {
        result.failed++;
        const message = error?.message ?? String(error);
        result.tests.push({ title: test.fullTitle(), state: 'failed', durationMs: test.duration ?? 0, error: message });
        result.failures.push({ title: test.fullTitle(), message, stack: error?.stack });
      });
      runner.on('pending', (test) => {
        result.pending++;
        result.tests.push({ title: test.fullTitle(), state: 'pending' });
      });
    });
  } catch (error) {
    // A test file that throws while loading counts as a failure, not as silence.
    const problem = error instanceof Error ? error : new Error(String(error));
    result.failed++;
    result.tests.push({ title: 'loading the extension tests', state: 'failed', error: problem.message });
    result.failures.push({ title: 'loading the extension tests', message: problem.message, stack: problem.stack });
  }
  writeResult(result);
  if (result.failed > 0) throw new Error(`${result.failed} extension test(s) failed`);
  if (result.passed === 0) throw new Error('no extension tests ran');
}
