/**
 * Rooms over real TCP against the built server: how a room's name finds its
 * log (look-alike spellings are one room, no two rooms ever share a log,
 * older data folders stay readable), rooms unloaded when idle and the limits
 * on loading them, and a crowd coming and going that must not push messages
 * out of the history or the de-duplication window.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { AckFrame, ErrorFrame, MessageEvent, RoomEvent, WelcomeFrame } from '../../shared/protocol';
import { roomLogFileName } from '../../server/roomLog';
import { sleep } from '../support/historyChecks';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

/** The file name today's main gave a room's log: the digest of the room's name as spelled (NFC). */
function olderLogFileName(room: string): string {
  return createHash('sha256').update(room.normalize('NFC'), 'utf8').digest('hex').slice(0, 40) + '.ndjson';
}

/** Room logs the server process holds open right now. */
function openRoomLogs(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`)
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((target) => target.endsWith('.ndjson'));
}

describe('rooms over TCP', function () {
  this.timeout(30_000);
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const folders: string[] = [];

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'chat-room-rooms-'));
    folders.push(dir);
    return dir;
  }
  async function start(options: Parameters<typeof ServerProcess.start>[0]): Promise<ServerProcess> {
    const server = await ServerProcess.start(options);
    servers.push(server);
    return server;
  }
  async function track(client: Promise<TestClient>): Promise<TestClient> {
    const ready = await client;
    clients.push(ready);
    return ready;
  }
  async function welcomeOrError(port: number, hello: Parameters<typeof TestClient.join>[2] & { name: string }): Promise<{ reply: WelcomeFrame | ErrorFrame; client: TestClient }> {
    const client = await track(TestClient.connect(port));
    client.send({ type: 'hello', ...hello });
    return { reply: await client.nextFrame<WelcomeFrame | ErrorFrame>((frame) => frame.type === 'welcome' || frame.type === 'error'), client };
  }
  async function sayAndAck(client: TestClient, id: string, text: string): Promise<number> {
    client.send({ type: 'say', id, text });
    return (await client.nextFrame<AckFrame>((frame) => frame.type === 'ack' && frame.id === id)).seq;
  }
  /** The replay a newcomer gets with lastSeq 0. */
  async function history(port: number, room: string, name: string): Promise<RoomEvent[]> {
    const reader = await track(TestClient.connect(port));
    reader.send({ type: 'hello', name, room, lastSeq: 0 });
    const welcome = await reader.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome');
    const events: RoomEvent[] = [];
    for (;;) {
      const event = await reader.nextFrame<RoomEvent>((frame) => frame.type === 'message' || frame.type === 'joined' || frame.type === 'left');
      if (event.seq > welcome.seq) break;
      events.push(event);
    }
    return events;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  });

  describe('room names and their logs', () => {
    it('refuses a room name with a lone surrogate, and keeps one with U+FFFD a room of its own', async () => {
      const server = await start({ dataDir: tempDir() });
      const { reply } = await welcomeOrError(server.port, { name: 'prober', room: 'twin\uD800' });
      assert.equal(reply.type === 'error' && reply.code, 'bad_room');
      assert.match(reply.type === 'error' ? reply.message : '', /U\+D800/);
      const replacement = await track(TestClient.join(server.port, 'writer', { room: 'twin\uFFFD', clientId: 'w' }));
      await sayAndAck(replacement, 'f1', 'in the U+FFFD room');
      assert.deepEqual((await history(server.port, 'twin\uFFFD', 'reader')).filter((event) => event.type === 'message').length, 1);
    });

    it('takes spellings that differ only in case or width as one room, shown as it was first spelled', async () => {
      const server = await start({ dataDir: tempDir() });
      const first = await track(TestClient.join(server.port, 'first', { room: 'Team' }));
      const { reply } = await welcomeOrError(server.port, { name: 'second', room: 'TEAM' });
      assert.equal(reply.type, 'welcome');
      assert.equal(reply.type === 'welcome' && reply.room, 'Team');
      assert.deepEqual(reply.type === 'welcome' && [...reply.members].sort(), ['first', 'second']);
      const third = await track(TestClient.join(server.port, 'third', { room: 'ｔｅａｍ' }));
      third.send({ type: 'say', id: 'wide', text: 'typed with full-width letters' });
      const seen = await first.nextFrame<MessageEvent>((frame) => frame.type === 'message');
      assert.deepEqual([seen.from, seen.room], ['third', 'Team']);
    });

    it("gives every room a log whose first line names it, and after a restart each room replays only its own history", async () => {
      const dataDir = tempDir();
      const server = await start({ dataDir });
      for (const room of ['alpha', 'beta', 'twin\uFFFD', 'twin?']) {
        const writer = await track(TestClient.join(server.port, 'writer', { room, clientId: 'w' }));
        await sayAndAck(writer, `in-${room}`, `only in ${room}`);
        writer.close();
      }
      await server.stop('SIGTERM');
      for (const file of readdirSync(dataDir).filter((name) => name.endsWith('.ndjson'))) {
        const header = JSON.parse(readFileSync(join(dataDir, file), 'utf8').split('\n')[0]) as { room: string };
        assert.equal(roomLogFileName(header.room), file, 'the header names the room whose key gives this file');
      }
      const again = await start({ dataDir });
      for (const room of ['alpha', 'beta', 'twin\uFFFD', 'twin?']) {
        const messages = (await history(again.port, room, 'reader')).filter((event): event is MessageEvent => event.type === 'message');
        assert.deepEqual(messages.map((message) => message.text), [`only in ${room}`], room);
      }
    });

    it('serves logs written before logs had headers: under the same file name, or renamed when the key changed; a no longer allowed name stays aside', async () => {
      const dataDir = tempDir();
      const record = (room: string, seq: number, text: string): string => JSON.stringify({ type: 'message', seq, room, from: 'old-timer', text, ts: 1, id: `old-${seq}` }) + '\n';
      writeFileSync(join(dataDir, olderLogFileName('lobby')), record('lobby', 1, 'kept under the same name') + record('lobby', 2, 'and this one'), { mode: 0o600 });
      writeFileSync(join(dataDir, olderLogFileName('Team')), record('Team', 1, 'spelled with a capital'), { mode: 0o600 });
      writeFileSync(join(dataDir, olderLogFileName('bad\uD800')), record('bad\uD800', 1, 'a lone surrogate'), { mode: 0o600 });
      const server = await start({ dataDir });
      const lobby = (await history(server.port, 'lobby', 'reader')).map((event) => (event as MessageEvent).text);
      assert.deepEqual(lobby, ['kept under the same name', 'and this one']);
      const team = await history(server.port, 'team', 'reader');
      assert.deepEqual(team.map((event) => [(event as MessageEvent).text, event.room]), [['spelled with a capital', 'Team']]);
      assert.match(server.log, /no longer allowed/);
      const writer = await track(TestClient.join(server.port, 'writer', { room: 'lobby', clientId: 'w' }));
      assert.ok((await sayAndAck(writer, 'new', 'after the upgrade')) > 2, 'seqs continue');
      const header = JSON.parse(readFileSync(join(dataDir, roomLogFileName('lobby')), 'utf8').split('\n')[0]) as { room: string };
      assert.equal(header.room, 'lobby', 'the older log got its header');
    });
  });

  describe('loading and unloading', () => {
    it('closes the log of a room that stood empty for --room-idle-ms, and loads it again with its history', async () => {
      const server = await start({ dataDir: tempDir(), args: ['--room-idle-ms', '200'] });
      const writer = await track(TestClient.join(server.port, 'writer', { room: 'napping', clientId: 'w' }));
      const firstSeq = await sayAndAck(writer, 'n1', 'before the nap');
      assert.equal(openRoomLogs(server.pid).length, 1);
      writer.close();
      const deadline = Date.now() + 5000;
      while (openRoomLogs(server.pid).length > 0 && Date.now() < deadline) await sleep(50);
      assert.deepEqual(openRoomLogs(server.pid), [], 'the empty room was unloaded and its file closed');
      const back = await track(TestClient.join(server.port, 'writer', { room: 'napping', clientId: 'w' }));
      assert.equal(await sayAndAck(back, 'n1', 'before the nap'), firstSeq, 'still de-duplicated after the reload');
      assert.ok((await sayAndAck(back, 'n2', 'after the nap')) > firstSeq);
    });

    it('refuses a room past --max-rooms with too_many_rooms, and makes space by unloading an empty room', async () => {
      const server = await start({ dataDir: tempDir(), args: ['--max-rooms', '2'] });
      const first = await track(TestClient.join(server.port, 'a', { room: 'one' }));
      await track(TestClient.join(server.port, 'b', { room: 'two' }));
      const { reply, client } = await welcomeOrError(server.port, { name: 'c', room: 'three' });
      assert.equal(reply.type === 'error' && reply.code, 'too_many_rooms');
      await client.waitForClose();
      first.close();
      await sleep(200);
      const { reply: later } = await welcomeOrError(server.port, { name: 'c', room: 'three' });
      assert.equal(later.type, 'welcome', 'the emptied room made space at once');
      assert.equal(server.exitCode, undefined);
    });

    it('refuses an address that loads more than --new-rooms-per-minute rooms, while rooms already loaded stay open to it', async () => {
      const server = await start({ memory: true, args: ['--new-rooms-per-minute', '3', '--limit-loopback'] });
      for (const room of ['r1', 'r2', 'r3']) await track(TestClient.join(server.port, 'member', { room }));
      const { reply } = await welcomeOrError(server.port, { name: 'member', room: 'r4' });
      assert.equal(reply.type === 'error' && reply.code, 'too_many_rooms');
      assert.match(reply.type === 'error' ? reply.message : '', /3 rooms within a minute/);
      const { reply: loaded } = await welcomeOrError(server.port, { name: 'another', room: 'r1' });
      assert.equal(loaded.type, 'welcome');
    });
  });

  describe('a crowd coming and going', () => {
    it('keeps a message in the history and the de-duplication window however many arrivals and departures follow it', async () => {
      const server = await start({ dataDir: tempDir(), args: ['--retain-events', '20'] });
      const writer = await track(TestClient.join(server.port, 'writer', { room: 'churn', clientId: 'install-w' }));
      const seq = await sayAndAck(writer, 'early', 'said before the crowd came');
      writer.close();
      // 60 arrivals and 60 departures: six times the retained count, twice what compaction waits for.
      for (let round = 0; round < 60; round++) {
        const passer = await TestClient.join(server.port, `passer${round}`, { room: 'churn' });
        passer.send({ type: 'bye' });
        await passer.waitForClose();
      }
      const retry = await track(TestClient.join(server.port, 'writer', { room: 'churn', clientId: 'install-w' }));
      assert.equal(await sayAndAck(retry, 'early', 'said before the crowd came'), seq, 'the retry is still recognised');
      const messages = (await history(server.port, 'churn', 'reader')).filter((event): event is MessageEvent => event.type === 'message');
      assert.deepEqual(messages.map((message) => [message.id, message.seq]), [['early', seq]], 'still in the history, stored once');
    });

    it('refuses an address that opens more than --new-connections-per-minute connections, on both protocols', async () => {
      const server = await start({ memory: true, classic: true, args: ['--new-connections-per-minute', '4', '--limit-loopback'] });
      for (let index = 0; index < 4; index++) await track(TestClient.join(server.port, `member${index}`));
      const refused = await track(TestClient.connect(server.port));
      const error = await refused.nextFrame<ErrorFrame>((frame) => frame.type === 'error');
      assert.equal(error.code, 'too_many_connections');
      await refused.waitForClose();
      const classic = await track(TestClient.connect(server.classicPort as number));
      assert.match(await classic.nextLine(), /connections within a minute/);
      await classic.waitForClose();
    });
  });
});
