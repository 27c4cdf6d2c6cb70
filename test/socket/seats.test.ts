/**
 * Who may sit where, over real TCP against the built server: a seat is taken
 * over only with the secret its welcome handed out, never by a client id
 * (not a classic member's, not an installation's), names that look alike are
 * one seat, invisible names and invisible messages are refused, and the data
 * folder that holds every client id is for the server's owner alone.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ErrorFrame, JoinedEvent, MessageEvent, WelcomeFrame } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

describe('seats over TCP', function () {
  this.timeout(30_000);
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const folders: string[] = [];

  async function start(options: Parameters<typeof ServerProcess.start>[0] = { memory: true }): Promise<ServerProcess> {
    const server = await ServerProcess.start(options);
    servers.push(server);
    return server;
  }
  async function track(client: Promise<TestClient>): Promise<TestClient> {
    const ready = await client;
    clients.push(ready);
    return ready;
  }
  /** Sends a hello and returns the error that refused it (failing on a welcome). */
  async function refusedHello(port: number, hello: Parameters<typeof TestClient.join>[2] & { name: string }): Promise<{ error: ErrorFrame; client: TestClient }> {
    const client = await track(TestClient.connect(port));
    client.send({ type: 'hello', ...hello });
    const reply = await client.nextFrame<ErrorFrame>((frame) => frame.type === 'error' || frame.type === 'welcome');
    assert.equal(reply.type, 'error', `${JSON.stringify(hello.name)} was welcomed`);
    return { error: reply, client };
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  });

  describe('taking a seat over', () => {
    it("never hands a classic member's seat to an NDJSON hello with its old-style client id, and closes the refused connection", async () => {
      const server = await start({ memory: true, classic: true });
      const watcher = await track(TestClient.join(server.port, 'watcher'));
      const carol = await track(TestClient.connect(server.classicPort as number));
      await carol.nextLine();
      carol.write('carol\n');
      await carol.nextLine((line) => line.startsWith('Welcome carol'));
      const classicId = `classic:127.0.0.1:${carol.socket.localPort}`;
      for (const hello of [{ clientId: classicId }, { clientId: classicId, resume: 'guess' }]) {
        const { error, client } = await refusedHello(server.port, { name: 'carol', ...hello });
        assert.equal(error.code, 'name_taken');
        await client.waitForClose();
      }
      carol.write('still me\n');
      const said = await watcher.nextFrame<MessageEvent>((frame) => frame.type === 'message');
      assert.deepEqual([said.from, said.text], ['carol', 'still me']);
      assert.equal(carol.closed, false);
      assert.ok(!watcher.frames().some((frame) => frame.type === 'left'), 'nobody left and nobody was replaced');
    });

    it('refuses a second window of one installation (same client id, same name, same room) with name_taken, and the first stays', async () => {
      const server = await start();
      const watcher = await track(TestClient.join(server.port, 'watcher', { room: 'two-windows' }));
      const first = await track(TestClient.join(server.port, 'dana', { room: 'two-windows', clientId: 'one-installation' }));
      for (let attempt = 0; attempt < 3; attempt++) {
        const { error, client } = await refusedHello(server.port, { name: 'dana', room: 'two-windows', clientId: 'one-installation' });
        assert.equal(error.code, 'name_taken');
        assert.match(error.message, /already called "dana"/);
        await client.waitForClose();
      }
      first.send({ type: 'say', id: 'w1', text: 'first window still here' });
      await first.nextFrame((frame) => frame.type === 'ack' && frame.id === 'w1');
      assert.equal(first.closed, false);
      assert.ok(!watcher.frames().some((frame) => frame.type === 'left'), 'the first window was never knocked off');
    });
  });

  describe('names that look alike or show nothing', () => {
    it('takes a look-alike of a present name as the same seat (UTS #39 skeleton), and names the invisible character it refuses', async () => {
      const server = await start();
      await track(TestClient.join(server.port, 'alice', { room: 'look-alikes' }));
      await track(TestClient.join(server.port, 'Bob', { room: 'look-alikes' }));
      const lookAlikes: [string, string][] = [
        ['\u0430lice', 'Cyrillic а'],
        ['alic\u0435', 'Cyrillic е'],
        ['al\u0131ce', 'dotless ı'],
        ['ALICE', 'capitals'],
        ['AIice', 'capital I for l'],
        ['\u0392ob', 'Greek Β'],
      ];
      for (const [name, why] of lookAlikes) {
        const { error } = await refusedHello(server.port, { name, room: 'look-alikes' });
        assert.equal(error.code, 'name_taken', `${why}: ${error.message}`);
      }
      const invisible: [string, RegExp][] = [
        ['alice\u034F', /U\+034F/],
        ['alice\u3164', /U\+3164 HANGUL FILLER/],
        ['\u3164', /U\+3164 HANGUL FILLER/],
        ['al\u200Bice', /U\+200B ZERO WIDTH SPACE/],
        ['bob\u2800', /U\+2800 BRAILLE PATTERN BLANK/],
        ['eve\uFFA0', /U\+FFA0/],
        ['x\uD800', /U\+D800/],
      ];
      for (const [name, named] of invisible) {
        const { error } = await refusedHello(server.port, { name, room: 'look-alikes' });
        assert.equal(error.code, 'bad_name', JSON.stringify(name));
        assert.match(error.message, named);
      }
    });

    it('refuses look-alikes of the reserved names, and tells apart no names by text hidden in emoji tags', async () => {
      const server = await start({ memory: true, classic: true });
      for (const name of ['\u0455erver', 'SERV\u0415R', '\u0430dmin', 'r\u043E\u043Et']) {
        const { error } = await refusedHello(server.port, { name, room: 'reserved' });
        assert.equal(error.code, 'bad_name', JSON.stringify(name));
        assert.match(error.message, /looks like the reserved name/);
      }
      const nc = await track(TestClient.connect(server.classicPort as number));
      await nc.nextLine();
      nc.write('\u0455ystem\n');
      assert.match(await nc.nextLine(), /looks like the reserved name "system"/);
      // A black flag with hidden tag text: both are drawn as the same flag.
      await track(TestClient.join(server.port, 'bob\u{1F3F4}\u{E0061}\u{E006C}\u{E0069}\u{E007F}', { room: 'tags' }));
      const { error } = await refusedHello(server.port, { name: 'bob\u{1F3F4}\u{E0078}\u{E007F}', room: 'tags' });
      assert.equal(error.code, 'name_taken');
    });

    it('keeps emoji names, ZWJ sequences, skin tones, flags and keycaps allowed', async () => {
      const server = await start();
      const watcher = await track(TestClient.join(server.port, 'watcher', { room: 'emoji' }));
      for (const name of ['🐙', '👩‍💻', '👨‍👩‍👧‍👦', '👍🏽', '❤️', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '🇫🇷', '1️⃣', 'zoë 🐙']) {
        await track(TestClient.join(server.port, name, { room: 'emoji' }));
        const joined = await watcher.nextFrame<JoinedEvent>((frame) => frame.type === 'joined' && frame.name === name);
        assert.equal(joined.name, name);
      }
    });

    it('refuses a message made only of invisible characters, and keeps the connection', async () => {
      const server = await start();
      const writer = await track(TestClient.join(server.port, 'writer'));
      for (const [index, text] of ['\u200B', '\u3164\u3164', ' \u2060 \u200D ', '\u2800', '\u115F\u1160'].entries()) {
        writer.send({ type: 'say', id: `blank-${index}`, text });
        const error = await writer.nextFrame<ErrorFrame>((frame) => frame.type === 'error' && frame.id === `blank-${index}`);
        assert.equal(error.code, 'bad_frame');
      }
      writer.send({ type: 'say', id: 'visible', text: '\u200B👍' });
      await writer.nextFrame((frame) => frame.type === 'ack' && frame.id === 'visible');
      assert.ok(!writer.frames().some((frame) => frame.type === 'message' && frame.id?.startsWith('blank-')), 'no blank message was delivered');
    });
  });

  describe('the data folder', () => {
    it('is 0700 with 0600 files, and tightens a folder and files that others could read', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'chat-room-modes-'));
      folders.push(dataDir);
      chmodSync(dataDir, 0o755);
      writeFileSync(join(dataDir, 'token'), 'an old token\n', { mode: 0o644 });
      chmodSync(join(dataDir, 'token'), 0o644);
      const server = await start({ dataDir });
      const member = await track(TestClient.join(server.port, 'member', { room: 'private', clientId: 'secret-installation' }));
      member.send({ type: 'say', id: 'p1', text: 'for members only' });
      await member.nextFrame((frame) => frame.type === 'ack');
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      for (const file of readdirSync(dataDir)) assert.equal(statSync(join(dataDir, file)).mode & 0o777, 0o600, file);
      assert.ok(readdirSync(dataDir).some((file) => file.endsWith('.ndjson')), 'the room log is among the files checked');
      assert.match(server.log, /readable by others/);
    });
  });

  it('hands every welcome a fresh seat secret and the member count beside a bounded member list', async () => {
    const server = await start();
    const first = await track(TestClient.connect(server.port));
    first.send({ type: 'hello', name: 'first', room: 'count' });
    const a = await first.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome');
    const second = await track(TestClient.connect(server.port));
    second.send({ type: 'hello', name: 'second', room: 'count' });
    const b = await second.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome');
    assert.ok(a.resume && b.resume && a.resume !== b.resume);
    assert.ok(Buffer.from(b.resume, 'base64url').length >= 16, 'at least 128 bits');
    assert.deepEqual(b.members, ['second', 'first'], 'you first');
    assert.equal(b.memberCount, 2);
  });
});
