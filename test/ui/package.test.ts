// What the packaged extension carries: the bundles that run and nothing else,
// under the size goal, and a server that starts and serves on its own without
// the cluster mode's Redis client, which the package leaves out.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../support/codeServerHost';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';
import { packagedVsixPath } from './harness';

/** The goal for the download people install. */
const VSIX_SIZE_GOAL_BYTES = 400 * 1024;

describe('the packaged extension', function () {
  this.timeout(60_000);
  const folders: string[] = [];
  const servers: ServerProcess[] = [];

  after(async () => {
    for (const server of servers) await server.dispose();
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  it('carries the extension, webview and server bundles, and neither source maps nor the Redis client', () => {
    const listed = execFileSync(process.execPath, [join(repoRoot(), 'node_modules', '@vscode', 'vsce', 'vsce'), 'ls', '--no-dependencies'], { cwd: repoRoot(), encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
    for (const needed of ['package.json', 'dist/extension.js', 'dist/server.js', 'dist/webview.js']) {
      assert.ok(listed.includes(needed), `${needed} is missing from: ${listed.join(', ')}`);
    }
    assert.deepEqual(listed.filter((file) => file.endsWith('.map') || file.includes('redisClient') || file.startsWith('node_modules/')), []);
  });

  it(`stays under ${VSIX_SIZE_GOAL_BYTES / 1024} KiB`, () => {
    const size = statSync(packagedVsixPath()).size;
    console.log(`      chat-room.vsix: ${(size / 1024).toFixed(0)} KiB`);
    assert.ok(size < VSIX_SIZE_GOAL_BYTES, `chat-room.vsix is ${(size / 1024).toFixed(0)} KiB`);
  });

  it('has a server that serves from its own folder, and says plainly that cluster mode is not in it', async () => {
    // The server as the package lays it out: dist/server.js with no redisClient.js beside it.
    const folder = mkdtempSync(join(tmpdir(), 'chat-room-packaged-'));
    folders.push(folder);
    const script = join(folder, 'server.js');
    copyFileSync(join(repoRoot(), 'dist', 'server.js'), script);

    const server = await ServerProcess.start({ script, memory: true });
    servers.push(server);
    const alice = await V2Client.hello(server.port, 'alice');
    try {
      assert.equal(alice.welcome?.type, 'welcome');
    } finally {
      alice.close();
    }

    await assert.rejects(ServerProcess.start({ script, redis: 'redis://127.0.0.1:1' }), /cluster mode needs the Redis client bundle \(redisClient\.js\)/);
  });
});
