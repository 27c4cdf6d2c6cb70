/**
 * The files a window and its server share in the server's home (the lease,
 * on real files in a temporary folder): a stop request made right after a
 * lease write is the one the server reads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerHome } from '../../extension/serverHome';
import { parseLease } from '../../shared/serverLease';

describe('the server home', () => {
  it('keeps a stop request made while a fresh lease is still being written (200 tries)', async () => {
    const overwritten: number[] = [];
    for (let attempt = 0; attempt < 200; attempt++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'chat-room-home-'));
      try {
        const home = new ServerHome(dataDir);
        // As a window does when it starts a server and the person stops it at once.
        const fresh = home.writeLease(60_000);
        await home.askToStop(60_000);
        await fresh;
        if (parseLease(readFileSync(home.leaseFile, 'utf8'))?.stop !== true) overwritten.push(attempt);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
    assert.deepEqual(overwritten, [], `the stop request was overwritten in ${overwritten.length} of 200 tries`);
  });
});
