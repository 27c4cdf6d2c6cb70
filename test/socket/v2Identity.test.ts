/**
 * Protocol v2 over real TCP against the built server: choosing the version in
 * the hello, and identities: a name claimed once is kept with its key, nobody
 * else takes it (not with a v2 hello without the key or with a wrong one, not
 * with a v1 hello, not in plain text, not with a look-alike), and it is given
 * up by its owner or by the operator.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ErrorFrame, WelcomeFrame } from '../../shared/protocol';
import { DEFAULT_LIMITS_V2 } from '../../shared/protocolV2';
import { SERVER_SCRIPT, ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { V2Client } from '../support/v2Client';
import { v2Fixture } from '../support/v2Fixture';

const run = promisify(execFile);
const DAY = 24 * 60 * 60 * 1000;

describe('protocol v2: the hello and identities', function () {
  this.timeout(30_000);
  const made = v2Fixture({ memory: true });
  const { start, v2, tempDir } = made;
  /** A v2 hello that must be refused: the error, and whether the server then closed the connection. */
  async function refusedV2(port: number, name: string, options: Parameters<typeof V2Client.hello>[2] = {}): Promise<{ code: string; message: string; client: V2Client }> {
    const client = await V2Client.connect(port);
    made.keep(client);
    client.sendHello(name, options);
    const reply = await client.next((frame) => frame.type === 'welcome' || frame.type === 'error');
    assert.equal(reply.type, 'error', `${name} was welcomed`);
    return { code: reply.code as string, message: reply.message as string, client };
  }
  async function v1(port: number, name: string, room = 'lobby'): Promise<WelcomeFrame | ErrorFrame> {
    const client = await TestClient.connect(port);
    made.keep(client);
    client.send({ type: 'hello', name, room });
    return client.nextFrame<WelcomeFrame | ErrorFrame>((frame) => frame.type === 'welcome' || frame.type === 'error');
  }


  describe('choosing the version', () => {
    it('welcomes a protocol 2 hello with a new key, its expiry and the limits in force', async () => {
      const server = await start({ memory: true, args: ['--max-rooms-per-connection', '7', '--searches-per-minute', '3'] });
      const alice = await v2(server.port, 'alice');
      const welcome = alice.welcome!;
      assert.equal(welcome.protocol, 2);
      assert.equal(welcome.you, 'alice');
      assert.ok(welcome.key && Buffer.from(welcome.key, 'base64url').length === 32, 'a 256-bit key');
      assert.ok(Math.abs(welcome.keyExpiresAt - (Date.now() + 30 * DAY)) < 60_000);
      assert.deepEqual(welcome.limits, { maxTextBytes: 4096, maxFrameBytes: 16384, ...DEFAULT_LIMITS_V2, maxRoomsPerConnection: 7, searchesPerMinute: 3 });
    });

    it('refuses a version it does not speak with unsupported and leaves the connection open for another hello', async () => {
      const server = await start();
      const client = await V2Client.connect(server.port);
      made.keep(client);
      client.write(JSON.stringify({ type: 'hello', protocol: 3, name: 'futurist', clientId: 'c' }) + '\n');
      const refusal = await client.next((frame) => frame.type === 'error');
      assert.equal(refusal.code, 'unsupported');
      assert.match(refusal.message as string, /1 and 2/);
      client.sendHello('futurist');
      assert.equal((await client.next((frame) => frame.type === 'welcome')).protocol, 2);
    });

    it('needs a clientId in a protocol 2 hello (bad_frame, the connection stays open)', async () => {
      const server = await start();
      const client = await V2Client.connect(server.port);
      made.keep(client);
      client.write(JSON.stringify({ type: 'hello', protocol: 2, name: 'noid' }) + '\n');
      assert.equal((await client.next((frame) => frame.type === 'error')).code, 'bad_frame');
      client.sendHello('noid');
      await client.next((frame) => frame.type === 'welcome');
    });

    it('answers a v2 frame on a v1 connection with unsupported, before any hello with not_joined, and a second hello with already_joined', async () => {
      const server = await start();
      const early = await V2Client.connect(server.port);
      made.keep(early);
      assert.equal(await early.refused({ type: 'join', id: 'j0', room: 'lobby' }), 'not_joined');
      const old = await TestClient.join(server.port, 'oldtimer');
      made.keep(old);
      old.write(JSON.stringify({ type: 'join', id: 'j1', room: 'elsewhere' }) + '\n');
      const error = await old.nextFrame<ErrorFrame>((frame) => frame.type === 'error');
      assert.deepEqual([error.code, error.id], ['unsupported', 'j1']);
      const explicitV1 = await TestClient.connect(server.port);
      made.keep(explicitV1);
      explicitV1.write(JSON.stringify({ type: 'hello', protocol: 1, name: 'explicit' }) + '\n');
      assert.equal((await explicitV1.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome')).protocol, 1);
      const alice = await v2(server.port, 'alice');
      alice.sendHello('alice');
      assert.equal((await alice.next((frame) => frame.type === 'error')).code, 'already_joined');
    });

    it('reads the frames sent right behind a v2 hello in the same packet as v2', async () => {
      const server = await start();
      const client = await V2Client.connect(server.port);
      made.keep(client);
      client.write(
        [JSON.stringify({ type: 'hello', protocol: 2, name: 'hasty', clientId: 'c-hasty' }), JSON.stringify({ type: 'join', id: 'j', room: 'fast' }), JSON.stringify({ type: 'say', id: 's', room: 'fast', text: 'at once' })].join('\n') + '\n',
      );
      await client.seen((frame) => frame.type === 'ack' && frame.id === 's');
      assert.equal((await client.seen((frame) => frame.type === 'message')).text, 'at once');
    });
  });

  describe('keeping a name', () => {
    it('lets the key holder back in (no new key), and refuses the name without its key or with a wrong one, closing the connection', async () => {
      const server = await start();
      const first = await v2(server.port, 'alice');
      const key = first.welcome!.key as string;
      first.close();
      const again = await v2(server.port, 'alice', { key });
      assert.equal(again.welcome!.key, undefined, 'a key is issued once');
      assert.equal(again.welcome!.you, 'alice');
      for (const options of [{}, { key: key.slice(0, -2) + 'xx' }, { key: 'k'.repeat(5000) }]) {
        const { code, client } = await refusedV2(server.port, 'alice', options);
        assert.equal(code, 'name_reserved');
        await client.waitForClose();
      }
    });

    it('keeps a name claimed with a key the client proposed, so a welcome lost on the way costs nothing', async () => {
      const server = await start();
      const proposed = randomBytes(32).toString('base64url');
      const first = await v2(server.port, 'frieda', { key: proposed });
      assert.equal(first.welcome!.key, undefined, 'the proposed key is not sent back');
      // As if that welcome never arrived: the client says hello again with the key it proposed.
      first.close();
      const again = await v2(server.port, 'frieda', { key: proposed });
      assert.equal(again.welcome!.you, 'frieda');
      assert.equal((await refusedV2(server.port, 'frieda')).code, 'name_reserved');
      const short = await v2(server.port, 'gerd', { key: 'too-short-to-be-a-key' });
      assert.ok(short.welcome!.key && short.welcome!.key !== 'too-short-to-be-a-key', 'a key under 32 characters is not taken: the server makes one');
    });

    it('refuses a look-alike of a kept name, a v1 hello and a plain-text name that take it, while a present owner is untouched', async () => {
      const server = await start({ memory: true, classic: true });
      const owner = await v2(server.port, 'alice');
      await owner.join('lobby');
      for (const name of ['\u0430lice', 'ALICE', 'AIice']) {
        const { code } = await refusedV2(server.port, name);
        assert.equal(code, 'name_reserved', name);
      }
      for (const name of ['alice', '\u0430lice']) {
        const refusal = (await v1(server.port, name, 'elsewhere')) as ErrorFrame;
        assert.equal(refusal.code, 'name_taken', name);
        assert.match(refusal.message, /reserved by its owner/);
      }
      const nc = await TestClient.connect(server.classicPort as number);
      made.keep(nc);
      await nc.nextLine();
      nc.write('alice\n');
      assert.match(await nc.nextLine(), /reserved by its owner\. Type another name/);
      nc.write('alicia\n');
      assert.match(await nc.nextLine(), /^Welcome alicia!/);
      assert.equal(owner.closed, false);
    });

    it('counts wrong keys towards the address lock-out, as wrong tokens are', async () => {
      const server = await start({ memory: true, args: ['--lockout-loopback'] });
      const owner = await v2(server.port, 'alice');
      owner.close();
      for (let attempt = 0; attempt < 3; attempt++) assert.equal((await refusedV2(server.port, 'alice', { key: `wrong-${attempt}` })).code, 'name_reserved');
      assert.equal((await refusedV2(server.port, 'alice', { key: owner.welcome!.key })).code, 'locked_out', 'even the right key waits out the lock-out');
    });

    it('does not let a v2 hello claim a name a v1 or classic member is using right now; once they leave it may', async () => {
      const server = await start({ memory: true, classic: true });
      const guest = await TestClient.join(server.port, 'bob', { room: 'somewhere' });
      made.keep(guest);
      const { code, client } = await refusedV2(server.port, 'B\u043Eb');
      assert.equal(code, 'name_taken', 'a look-alike of the guest is refused too');
      await client.waitForClose();
      guest.send({ type: 'bye' });
      await guest.waitForClose();
      const bob = await v2(server.port, 'bob');
      assert.ok(bob.welcome!.key);

      // A classic member, in a room of its own, holds its name the same way until it quits.
      const nc = await TestClient.connect(server.classicPort as number);
      made.keep(nc);
      await nc.nextLine();
      nc.write('carol\n');
      assert.match(await nc.nextLine(), /^Welcome carol!/);
      const refusedCarol = await refusedV2(server.port, 'CAROL');
      assert.equal(refusedCarol.code, 'name_taken', "the classic member's name, in capitals");
      await refusedCarol.client.waitForClose();
      nc.write('{quit}\n');
      await nc.waitForClose();
      const carol = await v2(server.port, 'carol');
      assert.ok(carol.welcome!.key);
    });

    it('keeps identities across a restart of a server with a data folder', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir });
      const alice = await v2(server.port, 'alice');
      const key = alice.welcome!.key as string;
      alice.close();
      await server.stop();
      server = await start({ dataDir });
      assert.equal((await refusedV2(server.port, 'alice')).code, 'name_reserved');
      await v2(server.port, 'alice', { key });
      assert.equal(statSync(join(dataDir, 'directory.journal')).mode & 0o777, 0o600);
    });
  });

  describe('giving a name up', () => {
    it('releaseName is acked, closes every connection of the identity, and frees the name for anyone', async () => {
      const server = await start();
      const first = await v2(server.port, 'carol');
      const key = first.welcome!.key as string;
      const second = await v2(server.port, 'carol', { key, clientId: 'carol-laptop' });
      await first.join('room-a');
      await second.join('room-a');
      const watcher = await v2(server.port, 'watcher');
      await watcher.join('room-a');
      const ack = await first.ok({ type: 'releaseName', id: 'bye-name' });
      assert.equal(ack.type, 'ack');
      await first.waitForClose();
      assert.equal((await second.next((frame) => frame.type === 'error')).code, 'name_released');
      await second.waitForClose();
      const left = await watcher.next((frame) => frame.type === 'left');
      assert.deepEqual([left.name, left.reason], ['carol', 'quit']);
      const stranger = await v2(server.port, 'carol');
      assert.ok(stranger.welcome!.key && stranger.welcome!.key !== key, 'a new identity with a new key');
    });

    it('lets the operator release any name with release-name, while the server runs and while it is stopped', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir });
      const dave = await v2(server.port, 'dave');
      await dave.join('lobby');
      const { stdout } = await run(process.execPath, [SERVER_SCRIPT, 'release-name', 'DAVE', '--data', dataDir]);
      assert.match(stdout, /released the name dave/);
      assert.equal((await dave.next((frame) => frame.type === 'error')).code, 'name_released');
      await dave.waitForClose();
      const newDave = await v2(server.port, 'dave');
      assert.ok(newDave.welcome!.key);
      await assert.rejects(run(process.execPath, [SERVER_SCRIPT, 'release-name', 'nobody', '--data', dataDir]), (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 1);
        assert.match(error.stderr, /No identity keeps the name "nobody"/);
        return true;
      });
      newDave.close();
      await server.stop();
      const offline = await run(process.execPath, [SERVER_SCRIPT, 'release-name', 'dave', '--data', dataDir]);
      assert.match(offline.stdout, /released the name dave/);
      server = await start({ dataDir });
      const third = await v2(server.port, 'dave');
      assert.ok(third.welcome!.key, 'the name was free after the offline release');
    });

    it('refuses a second server on a data folder that a running server uses', async () => {
      const dataDir = tempDir();
      await start({ dataDir });
      await assert.rejects(ServerProcess.start({ dataDir }), /data folder is in use by another process/);
    });
  });
});
