/**
 * Crash and restart: the server is killed with SIGKILL at random moments while
 * 20 clients keep sending, and restarted on the same port and data folder. The
 * clients are the extension's own ChatClient, reconnecting and resending their
 * outboxes as the extension does.
 *
 * FAULT_CRASHES sets the number of crashes (default 20, the minimum).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomLogFileName } from '../../server/roomLog';
import { checkHistory, sleep } from '../support/historyChecks';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { readRoomLog, ResumingClient, startServerOnPort } from '../support/resumingClient';
import type { ServerProcess } from '../support/serverProcess';

const CRASHES = Number(process.env.FAULT_CRASHES ?? 20);
const CLIENTS = 20;
const ROOM = 'crash-room';
// Senders go faster than the default 2 a second so each crash catches many in flight.
const SERVER_ARGS = ['--rate-burst', '200', '--rate-per-second', '200', '--retain-events', '1000000'];

describe('faults: kill -9 while 20 clients send', function () {
  this.timeout(60_000 + CRASHES * 5_000);
  let dataDir: string;
  let server: ServerProcess | undefined;
  const clients: ResumingClient[] = [];

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-crash-'));
  });

  after(async () => {
    for (const client of clients) client.stop();
    await server?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`keeps every acked message exactly once, in order, across ${CRASHES} crashes`, async () => {
    const port = await freeLoopbackPort();
    server = await startServerOnPort(port, { dataDir, args: SERVER_ARGS });
    for (let index = 0; index < CLIENTS; index++) {
      // Backoff shrunk from the extension's 0.5–30 s so each restart is found within a fraction of a second.
      const client = new ResumingClient({ port, name: `sender${index}`, room: ROOM, clientId: `crash-client-${index}`, initialBackoffMs: 40, maxBackoffMs: 200 });
      clients.push(client);
      client.start();
    }
    await Promise.all(clients.map((client) => client.waitUntil(() => client.isWelcomed, 10_000, 'the first welcome')));

    let sending = true;
    const senders = clients.map(async (client) => {
      while (sending) {
        client.say();
        await sleep(20 + Math.random() * 60);
      }
    });

    let pendingAtCrashes = 0;
    for (let crash = 0; crash < CRASHES; crash++) {
      await sleep(150 + Math.random() * 650);
      pendingAtCrashes += clients.reduce((sum, client) => sum + client.outbox.length, 0);
      const status: number | null = await server.stop('SIGKILL');
      assert.equal(status, null, 'the server was killed by the signal, not exited on its own');
      await sleep(Math.random() * 150);
      server = await startServerOnPort(port, { dataDir, args: SERVER_ARGS });
    }
    sending = false;
    await Promise.all(senders);
    // The outboxes drain once the last server stays up.
    await Promise.all(clients.map((client) => client.waitUntil(() => client.outbox.length === 0 && client.isWelcomed, 30_000, 'its outbox to drain')));
    // Every client has seen everything up to the last message stored.
    await sleep(300);
    for (const client of clients) client.stop();
    await server.stop('SIGTERM');

    const history = readRoomLog(join(dataDir, roomLogFileName(ROOM)));
    const report = checkHistory(history, clients);
    const acksSeen = clients.reduce((sum, client) => sum + client.sent.filter((m) => m.ackedSeq !== undefined).length, 0);
    console.log(
      `      ${CRASHES} crashes; ${report.sent} messages sent, ${report.acked} acked, ${report.storedMessages} stored, ` +
        `${pendingAtCrashes} unacked at the moments of the crashes; lost acked ${report.lostAcked}, duplicates ${report.duplicates}, ` +
        `vanished ${report.vanished}, misordered ${report.misordered}, seq gaps ${report.seqGaps}, transcript mismatches ${report.transcriptMismatches}`,
    );
    assert.deepEqual(report.problems, []);
    assert.equal(report.lostAcked, 0);
    assert.equal(report.duplicates, 0);
    assert.equal(report.vanished, 0);
    assert.equal(report.misordered, 0);
    assert.equal(report.seqGaps, 0);
    assert.equal(report.transcriptMismatches, 0);
    assert.equal(acksSeen, report.sent, 'every message was acked in the end');
    assert.equal(report.storedMessages, report.sent, 'every message is stored exactly once');
    assert.ok(pendingAtCrashes > 0, 'the crashes caught messages in flight');
    for (const client of clients) {
      assert.equal(client.conflictingAcks, 0, `${client.name} got two different seqs for one message`);
      assert.equal(client.repeatedEvents, 0, `${client.name} was sent events it had already seen`);
      assert.equal(client.gaps, 0, `${client.name} saw a gap in the seqs`);
    }
  });
});
