/**
 * Protocol 2's requests that read a whole room must not stop the rest of the
 * server. A `search` scans up to 10,000 retained events, lower-casing each
 * text; a `conversations` page counts the unread messages of up to 100 rooms,
 * folding each text that holds an `@` to look for mentions. Both ran in one
 * turn of the event loop.
 *
 * Measured by the outside review of protocol 2: a room of 10,000 messages of
 * 4 KB (combining marks and `ẞΣ`, which are slow to fold and to lower-case,
 * each with an `@`) took 630 ms to count for one `conversations` frame and
 * 200 ms for one `search`. A client may send 10 frames at once: 5
 * `conversations` frames stalled every other member for 3.2 s, 10 searches
 * for 1.9 s. Anyone who joins a busy room can do this again and again.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomKey } from '../../shared/names';
import { roomLogFileName } from '../../server/roomLog';
import { sleep } from '../support/historyChecks';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';
import { PongProbe } from '../support/pongProbe';

const STORED_MESSAGES = Number(process.env.STALL_MESSAGES ?? 10_000);
/** The longest a member of another room may wait for a pong while the requests are answered. */
const STALL_BOUND_MS = 400;
/** About 4 KB that are slow to fold (combining marks) and to lower-case (ẞ, Σ), with an `@`. */
const SLOW_TEXT = '@someone ' + 'a\u0301\u0323ẞΣ'.repeat(400);

/** A room log as the server writes it: a header, then messages from a v1 member. */
function writeLog(folder: string, room: string, count: number): void {
  const key = roomKey(room);
  const records = [JSON.stringify({ chatRoomLog: 1, room: key, name: room })];
  for (let seq = 1; seq <= count; seq++) {
    records.push(JSON.stringify({ type: 'message', seq, room, from: 'archivist', text: `${SLOW_TEXT} ${seq}`, ts: 1_700_000_000_000 + seq, id: `m-${seq}`, clientId: 'archivist-id' }));
  }
  writeFileSync(join(folder, roomLogFileName(key)), records.join('\n') + '\n', { mode: 0o600 });
}

describe('protocol 2: requests that read a whole room', function () {
  this.timeout(120_000);
  let folder: string;
  let server: ServerProcess;
  const clients: V2Client[] = [];

  before(async () => {
    folder = mkdtempSync(join(tmpdir(), 'chat-room-scan-'));
    writeLog(folder, 'archive', STORED_MESSAGES);
    // The prober pings every 5 ms and the reader sends its requests at once, far above the default rate.
    server = await ServerProcess.start({ dataDir: folder, args: ['--rate-burst', '1000000', '--rate-per-second', '1000000'] });
  });
  after(async () => {
    for (const client of clients.splice(0)) client.close();
    await server?.dispose();
    rmSync(folder, { recursive: true, force: true });
  });

  /** The longest pong wait of a member of another room while `work` runs, and how long `work` took. */
  async function stallDuring(work: () => Promise<void>): Promise<{ longest: number; workMs: number; probes: number }> {
    const prober = await V2Client.hello(server.port, `prober${clients.length}`);
    clients.push(prober);
    await prober.join('elsewhere');
    const probe = new PongProbe(async () => {
      prober.send({ type: 'ping' });
      await prober.next((frame) => frame.type === 'pong', 30_000);
    });
    await sleep(200);
    probe.reset();
    const startedAt = Date.now();
    await work();
    const workMs = Date.now() - startedAt;
    await probe.stop();
    return { longest: probe.longest, workMs, probes: probe.probes };
  }

  async function reader(name: string): Promise<V2Client> {
    const client = await V2Client.hello(server.port, name);
    clients.push(client);
    const state = await client.join('archive');
    assert.ok((state.seq as number) >= STORED_MESSAGES, 'the room was loaded with its history');
    return client;
  }

  it(`answers 5 conversation lists of a room with ${STORED_MESSAGES} unread messages while others wait less than ${STALL_BOUND_MS} ms`, async () => {
    const client = await reader('counter');
    const { longest, workMs, probes } = await stallDuring(async () => {
      const ids = [1, 2, 3, 4, 5].map((index) => `list-${index}`);
      for (const id of ids) client.send({ type: 'conversations', id });
      for (const id of ids) {
        const list = await client.seen((frame) => frame.id === id, 60_000);
        assert.equal(list.type, 'conversationList');
        const archive = (list.conversations as { room: string; unread?: number }[]).find((conversation) => conversation.room === 'archive');
        assert.equal(archive?.unread, STORED_MESSAGES, 'every message is counted');
      }
    });
    console.log(`      5 conversation lists in ${workMs} ms; longest pong wait ${longest} ms (${probes} probes)`);
    assert.ok(longest < STALL_BOUND_MS, `a member of another room waited ${longest} ms for a pong while the lists were counted (${workMs} ms): counting blocks the event loop`);
  });

  it(`answers 10 searches of a room of ${STORED_MESSAGES} messages while others wait less than ${STALL_BOUND_MS} ms`, async () => {
    const client = await reader('searcher');
    const { longest, workMs, probes } = await stallDuring(async () => {
      const ids = Array.from({ length: 10 }, (_, index) => `search-${index}`);
      for (const id of ids) client.send({ type: 'search', id, room: 'archive', text: 'no such words' });
      for (const id of ids) {
        const results = await client.seen((frame) => frame.id === id, 60_000);
        assert.equal(results.type, 'searchResults');
        assert.deepEqual(results.hits, []);
      }
    });
    console.log(`      10 searches in ${workMs} ms; longest pong wait ${longest} ms (${probes} probes)`);
    assert.ok(longest < STALL_BOUND_MS, `a member of another room waited ${longest} ms for a pong during the searches (${workMs} ms): searching blocks the event loop`);
  });
});
