// What a newcomer meets first in `npm test` (npm's pretest step,
// scripts/test-prerequisites.sh): a missing Chromium stops it at once with the
// one command that installs it, and an installed offline VS Code host is
// reused, not installed again.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/codeServerHost';

const script = join(repoRoot(), 'scripts', 'test-prerequisites.sh');

function runPrerequisites(env: Record<string, string>): { status: number | null; output: string; ms: number } {
  const started = Date.now();
  const result = spawnSync('bash', [script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}`, ms: Date.now() - started };
}

describe('npm test prerequisites', function () {
  this.timeout(70_000);

  it('stops at once when Chromium is missing, naming the command that installs it', () => {
    const result = runPrerequisites({ CHROMIUM_PATH: join(repoRoot(), 'no-such-chromium') });
    assert.equal(result.status, 1, result.output);
    assert.match(result.output, /sudo apt-get install -y chromium/);
    assert.doesNotMatch(result.output, /Installing/, 'nothing is installed first');
    assert.ok(result.ms < 5_000, `it took ${result.ms} ms`);
  });

  it('reuses an installed offline VS Code host instead of installing it again', function () {
    const installed = join(repoRoot(), '.vscode-test', 'code-server', 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules');
    if (!existsSync('/usr/bin/chromium') || !existsSync(installed)) this.skip(); // `npm test` installs both before this runs
    const result = runPrerequisites({});
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, /already installed/);
    assert.doesNotMatch(result.output, /first run takes/);
  });
});
