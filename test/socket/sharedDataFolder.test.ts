/**
 * Two servers on one data folder. It happens without anyone meaning it: the
 * extension keeps its server's history in its global storage, which every
 * VS Code window shares, and when a second window's "Start Chat Server" finds
 * the port busy it offers another port, with the same folder. Two processes
 * that each believe they own a room's log then give out the same sequence
 * numbers, interleave their records in one file, and each one's compaction
 * renames its own view of the room over the other's.
 *
 * What must hold: whatever the second server does (refuse to start while the
 * folder is in use, or share it safely), every message either server
 * acknowledged is in the room's history once, and no two events share a seq.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AckFrame, MessageEvent, RoomEvent, WelcomeFrame } from '../../shared/protocol';
import { sleep } from '../support/historyChecks';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

/** Small, so that each server compacts the shared log while the other is writing to it. */
const RETAIN = ['--retain-events', '5', '--rate-burst', '100'];
const MESSAGES_EACH = 12;

describe('two servers started on one data folder', function () {
  this.timeout(60_000);
  let folder: string;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'chat-room-shared-'));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    rmSync(folder, { recursive: true, force: true });
  });

  /** Joins the lobby through `port` and says MESSAGES_EACH messages one after another; resolves with their acks. */
  async function talk(port: number, name: string): Promise<AckFrame[]> {
    const client = await TestClient.join(port, name, { clientId: `${name}-installation` });
    clients.push(client);
    const acks: AckFrame[] = [];
    for (let index = 0; index < MESSAGES_EACH; index++) {
      const id = `${name}-${index}`;
      client.send({ type: 'say', id, text: `${name} says ${index}` });
      acks.push(await client.nextFrame<AckFrame>((frame) => frame.type === 'ack' && frame.id === id));
    }
    return acks;
  }

  it('never lets two servers lose or renumber each other\'s acknowledged messages', async () => {
    const first = await ServerProcess.start({ dataDir: folder, args: RETAIN });
    servers.push(first);
    let second: ServerProcess | undefined;
    try {
      second = await ServerProcess.start({ dataDir: folder, args: RETAIN, startTimeoutMs: 5000 });
      servers.push(second);
    } catch (refused) {
      // Refusing to start while the folder is in use is one right answer; it must say why.
      assert.match(String(refused), /in use|another server|locked/i, `the second server failed without naming the folder in use: ${String(refused)}`);
    }
    const ports = second ? [first.port, second.port] : [first.port];
    const acked = (await Promise.all(ports.map((port, index) => talk(port, `talker${index}`)))).flat();

    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.stop('SIGTERM');
    const restarted = await ServerProcess.start({ dataDir: folder, args: RETAIN });
    servers.push(restarted);
    const reader = await TestClient.connect(restarted.port);
    clients.push(reader);
    reader.send({ type: 'hello', name: 'reader', lastSeq: 0 });
    const welcome = await reader.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome');
    await sleep(500);
    const history = reader.frames().filter((frame): frame is RoomEvent => frame.type === 'message' || frame.type === 'joined' || frame.type === 'left');
    const replayed = history.filter((event) => event.seq <= welcome.seq);

    const seqs = replayed.map((event) => event.seq);
    const repeated = seqs.filter((seq, index) => seqs.indexOf(seq) !== index);
    assert.deepEqual(repeated, [], `events share a seq in the stored history (${replayed.length} events replayed)`);
    const stored = new Map(replayed.filter((event): event is MessageEvent => event.type === 'message').map((message) => [message.id, message.seq]));
    // The room keeps the newest 5 messages at least, so the newest acked ones must all be there, at their acked seqs.
    const newest = [...acked].sort((a, b) => b.seq - a.seq).slice(0, 5);
    const missing = newest.filter((ack) => stored.get(ack.id) !== ack.seq).map((ack) => `${ack.id}@${ack.seq}`);
    assert.deepEqual(missing, [], 'acknowledged messages are missing from the history, or stored at another seq');
  });
});
