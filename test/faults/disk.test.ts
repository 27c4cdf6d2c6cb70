/**
 * Disk trouble: a torn last record, a log cut mid-record, a truncated log and a
 * full disk (a 1 MiB tmpfs). The server must start with whatever whole records
 * are there, keep seqs going on from the last one, refuse messages it cannot
 * store with `storage_failed`, keep serving reads meanwhile, and take the same
 * messages once space returns.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ErrorFrame, RoomEvent, WelcomeFrame } from '../../shared/protocol';
import { roomLogFileName } from '../../server/roomLog';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const ROOM = 'disk-room';

/** Joins with lastSeq 0 and collects the replay: the history as a newcomer sees it. */
async function readHistory(port: number, name: string): Promise<{ welcome: WelcomeFrame; events: RoomEvent[]; client: TestClient }> {
  const client = await TestClient.connect(port);
  client.send({ type: 'hello', name, room: ROOM, clientId: `${name}-id`, lastSeq: 0 });
  const welcome = await client.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome' || frame.type === 'error');
  assert.equal(welcome.type, 'welcome', `expected a welcome, got ${JSON.stringify(welcome)}`);
  const events: RoomEvent[] = [];
  while (events.length === 0 ? welcome.seq > 0 : events[events.length - 1].seq < welcome.seq) {
    events.push(await client.nextFrame<RoomEvent>((frame) => frame.type === 'message' || frame.type === 'joined' || frame.type === 'left'));
  }
  return { welcome, events, client };
}

async function sendAndAck(client: TestClient, id: string, text: string): Promise<number> {
  client.send({ type: 'say', id, text });
  const reply = await client.nextFrame((frame) => (frame.type === 'ack' || frame.type === 'error') && (frame as { id?: string }).id === id);
  assert.equal(reply.type, 'ack', `expected an ack for ${id}, got ${JSON.stringify(reply)}`);
  return (reply as { seq: number }).seq;
}

function logLines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((line) => line.length > 0);
}

/** The log's event records: every line after the header that names the room. */
function storedEvents(path: string): RoomEvent[] {
  const [header, ...records] = logLines(path);
  assert.equal((JSON.parse(header) as { room?: string }).room, ROOM, 'the log starts with the header naming its room');
  return records.map((line) => JSON.parse(line) as RoomEvent);
}

/** Fills every byte the file system has left with one file. */
function fillDisk(fillerPath: string): void {
  const filler = openSync(fillerPath, 'w');
  for (const chunkSize of [65536, 4096, 1]) {
    const chunk = Buffer.alloc(chunkSize, 0x61);
    try {
      for (;;) writeSync(filler, chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
  }
  closeSync(filler);
}

describe('faults: disk trouble', function () {
  this.timeout(60_000);
  let dataDir: string;
  let logPath: string;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];

  async function start(): Promise<ServerProcess> {
    const server = await ServerProcess.start({ dataDir });
    servers.push(server);
    return server;
  }

  /** A server with `count` stored messages, killed with SIGKILL (as a crash would). */
  async function storeThenCrash(count: number): Promise<RoomEvent[]> {
    const server = await start();
    const writer = await TestClient.join(server.port, 'writer', { room: ROOM, clientId: 'writer-id' });
    clients.push(writer);
    for (let index = 1; index <= count; index++) await sendAndAck(writer, `m${index}`, `message ${index}`);
    await server.stop('SIGKILL');
    return storedEvents(logPath);
  }

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-disk-'));
    logPath = join(dataDir, roomLogFileName(ROOM));
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    // The tmpfs mount point is removed by its own hook, after unmounting.
    if (!dataDir.includes('chat-room-tmpfs-')) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Restarts and checks that the history is exactly `expected` and that the next event follows it. */
  async function restartAndExpect(expected: RoomEvent[]): Promise<ServerProcess> {
    const server = await start();
    const { welcome, events, client } = await readHistory(server.port, 'reader');
    clients.push(client);
    assert.equal(welcome.seq, expected[expected.length - 1].seq, 'the welcome carries the last whole record');
    assert.deepEqual(
      events.map((event) => [event.seq, event.type, (event as { id?: string }).id]),
      expected.map((event) => [event.seq, event.type, (event as { id?: string }).id]),
    );
    // Seqs go on from the last whole record: the reader's own join, then its message.
    const joined = await client.nextFrame<RoomEvent>((frame) => frame.type === 'joined');
    assert.equal(joined.seq, welcome.seq + 1);
    assert.equal(await sendAndAck(client, 'after-restart', 'after the restart'), welcome.seq + 2);
    for (const line of logLines(logPath)) assert.doesNotThrow(() => JSON.parse(line), `every line of the log is a whole record: ${line}`);
    return server;
  }

  it('drops garbage appended without a newline (a torn last record) and continues the seqs', async () => {
    const stored = await storeThenCrash(5);
    appendFileSync(logPath, '{"type":"message","seq":999,"room":"disk-room","fr');
    const server = await restartAndExpect(stored);
    assert.ok(server.log.includes('dropped a torn last record'), 'the server says it dropped the torn record');
  });

  it('drops a last record cut in the middle, keeping every one before it', async () => {
    const stored = await storeThenCrash(5);
    const size = readFileSync(logPath).length;
    const lastLength = Buffer.byteLength(JSON.stringify(stored[stored.length - 1])) + 1;
    truncateSync(logPath, size - Math.floor(lastLength / 2));
    await restartAndExpect(stored.slice(0, -1));
  });

  it('drops a last record whose bytes were lost but whose newline survived (a torn page)', async () => {
    const stored = await storeThenCrash(5);
    const content = readFileSync(logPath);
    const lastStart = content.lastIndexOf(0x0a, content.length - 2) + 1;
    content.fill(0, lastStart, content.length - 1);
    writeFileSync(logPath, content);
    await restartAndExpect(stored.slice(0, -1));
  });

  it('serves a log truncated at a record boundary and continues from its last record', async () => {
    const stored = await storeThenCrash(8);
    const [header, ...records] = logLines(logPath);
    const keep = Math.floor(records.length / 2);
    writeFileSync(logPath, [header, ...records.slice(0, keep)].join('\n') + '\n');
    await restartAndExpect(stored.slice(0, keep));
  });

  describe('a full disk (1 MiB tmpfs as --data)', () => {
    let mountPoint: string;
    let mounted = false;

    before(function () {
      mountPoint = mkdtempSync(join(tmpdir(), 'chat-room-tmpfs-'));
      const result = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { encoding: 'utf8' });
      if (result.status !== 0) {
        // Mounting needs root (or CAP_SYS_ADMIN); a loop file needs the same, so there is no unprivileged way.
        console.log(`      skipped: cannot mount a tmpfs here (${(result.stderr || result.error?.message || '').trim()})`);
        rmSync(mountPoint, { recursive: true, force: true });
        this.skip();
      }
      mounted = true;
    });

    after(() => {
      if (!mounted) return;
      const result = spawnSync('umount', [mountPoint], { encoding: 'utf8' });
      assert.equal(result.status, 0, `umount ${mountPoint}: ${result.stderr}`);
      rmSync(mountPoint, { recursive: true, force: true });
    });

    it('refuses a new room it cannot create on a full disk with room_unavailable, stays up, and creates it once space returns', async () => {
      for (const entry of readdirSync(mountPoint)) rmSync(join(mountPoint, entry), { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
      dataDir = mountPoint;
      const server = await start();
      const fillerPath = join(mountPoint, 'filler');
      fillDisk(fillerPath);
      const prober = await TestClient.connect(server.port);
      clients.push(prober);
      prober.send({ type: 'hello', name: 'first', room: 'born-on-a-full-disk' });
      const refusal = await prober.nextFrame<ErrorFrame>((frame) => frame.type === 'error' || frame.type === 'welcome');
      assert.equal(refusal.type, 'error', 'nobody is welcomed into a room whose log could not be made');
      assert.equal(refusal.code, 'room_unavailable');
      await prober.waitForClose();
      assert.equal(server.exitCode, undefined);
      assert.ok(!readdirSync(mountPoint).some((entry) => entry.endsWith('.compact')), 'nothing half-made is left behind');

      unlinkSync(fillerPath);
      const member = await TestClient.join(server.port, 'first', { room: 'born-on-a-full-disk', clientId: 'first-id' });
      clients.push(member);
      await sendAndAck(member, 'after', 'the room exists now');
      await server.stop('SIGTERM');
      const [header, ...records] = logLines(join(mountPoint, roomLogFileName('born-on-a-full-disk')));
      assert.equal((JSON.parse(header) as { room: string }).room, 'born-on-a-full-disk');
      assert.ok(records.some((line) => (JSON.parse(line) as { id?: string }).id === 'after'));
      for (const entry of readdirSync(mountPoint)) rmSync(join(mountPoint, entry), { recursive: true, force: true });
    });

    it('refuses messages with storage_failed, keeps serving reads, and takes the same ids once space returns', async () => {
      rmSync(dataDir, { recursive: true, force: true });
      dataDir = mountPoint;
      logPath = join(dataDir, roomLogFileName(ROOM));
      const server = await start();
      const writer = await TestClient.join(server.port, 'writer', { room: ROOM, clientId: 'writer-id' });
      clients.push(writer);
      await sendAndAck(writer, 'before-full', 'stored before the disk filled up');

      const fillerPath = join(mountPoint, 'filler');
      fillDisk(fillerPath);

      // The log's last page may still have room, so big messages are sent until one is refused.
      const bigText = 'x'.repeat(3500);
      const refused: string[] = [];
      let acceptedWhileFilling = 0;
      for (let attempt = 1; attempt <= 6 && refused.length < 2; attempt++) {
        const id = `while-full-${attempt}`;
        writer.send({ type: 'say', id, text: bigText });
        const reply = await writer.nextFrame((frame) => (frame.type === 'ack' || frame.type === 'error') && (frame as { id?: string }).id === id);
        if (reply.type === 'ack') {
          assert.equal(refused.length, 0, 'once the disk is full, nothing more is accepted');
          acceptedWhileFilling += 1;
          continue;
        }
        assert.equal((reply as ErrorFrame).code, 'storage_failed');
        assert.ok((reply as ErrorFrame).message.length > 0, 'the error explains itself');
        refused.push(id);
      }
      assert.equal(refused.length, 2, 'the server refuses messages it cannot store');
      assert.ok(acceptedWhileFilling <= 2, 'at most the last page of the log had room');

      // Reads still work: pings, and a newcomer's replay of the history.
      writer.send({ type: 'ping' });
      await writer.nextFrame((frame) => frame.type === 'pong');
      const { events, client: reader } = await readHistory(server.port, 'reader');
      clients.push(reader);
      assert.ok(events.some((event) => event.type === 'message' && event.id === 'before-full'), 'the replay still has the stored message');
      assert.ok(!events.some((event) => event.type === 'message' && refused.includes(event.id ?? '')), 'refused messages are never shown');
      for (const line of logLines(logPath)) assert.doesNotThrow(() => JSON.parse(line), 'the log stays whole on a full disk');

      // Space comes back: the same ids are taken, once each.
      unlinkSync(fillerPath);
      const seqs: number[] = [];
      for (const id of refused) seqs.push(await sendAndAck(writer, id, bigText));
      seqs.push(await sendAndAck(writer, 'after-space', 'space is back'));
      assert.equal(await sendAndAck(writer, refused[0], bigText), seqs[0], 'a retry after recovery is acked with the same seq');
      await server.stop('SIGTERM');

      const stored = storedEvents(logPath);
      for (const id of [...refused, 'before-full', 'after-space']) {
        assert.equal(stored.filter((event) => event.type === 'message' && event.id === id).length, 1, `${id} is stored exactly once`);
      }
      const storedSeqs = stored.map((event) => event.seq);
      // Seqs go up but are not consecutive here: a refused message's seq is used up (see docs/reliability.md).
      for (let index = 1; index < storedSeqs.length; index++) assert.ok(storedSeqs[index] > storedSeqs[index - 1], 'seqs only go up');
    });
  });
});
