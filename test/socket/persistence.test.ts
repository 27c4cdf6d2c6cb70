/** History that survives: restarts, torn records, retried messages, shutdown announcements. */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import type { AckFrame, ErrorFrame, LeftEvent, MessageEvent, WelcomeFrame } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

describe('history that survives, over TCP', function () {
  this.timeout(30_000);
  let dataDir: string;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  async function start(args: string[] = []): Promise<ServerProcess> {
    const server = await ServerProcess.start({ dataDir, args });
    servers.push(server);
    return server;
  }
  async function join(server: ServerProcess, name: string, extra: Parameters<typeof TestClient.join>[2] = {}): Promise<TestClient> {
    const client = await TestClient.join(server.port, name, extra);
    clients.push(client);
    return client;
  }

  beforeEach(() => {
    dataDir = mkdtempSync(joinPath(tmpdir(), 'chat-room-persist-'));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('announces shutdown on SIGTERM, exits 0, and after a restart continues the sequence and replays history', async () => {
    const first = await start();
    const alice = await join(first, 'alice', { clientId: 'c-alice', room: 'keep' });
    for (let i = 0; i < 3; i += 1) {
      alice.send({ type: 'say', id: `m${i}`, text: `before restart ${i}` });
      await alice.nextFrame((f) => f.type === 'ack' && f.id === `m${i}`);
    }
    const bob = await join(first, 'bob', { room: 'keep' });
    assert.equal(await first.stop('SIGTERM'), 0);
    const shutdownNotice = await bob.nextFrame<LeftEvent>((f) => f.type === 'left' && f.name === 'alice');
    assert.equal(shutdownNotice.reason, 'shutdown');
    assert.equal((await bob.nextFrame<ErrorFrame>((f) => f.type === 'error')).code, 'shutdown');

    const second = await start();
    const carol = await TestClient.connect(second.port);
    clients.push(carol);
    carol.send({ type: 'hello', name: 'carol', room: 'keep', lastSeq: 0 });
    const welcome = await carol.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    const replayed = [];
    for (let seq = 1; seq <= welcome.seq; seq += 1) replayed.push(await carol.nextFrame((f) => 'seq' in f && f.seq === seq));
    const texts = replayed.filter((f): f is MessageEvent => f.type === 'message').map((f) => f.text);
    assert.deepEqual(texts, ['before restart 0', 'before restart 1', 'before restart 2']);
    assert.ok(replayed.some((f) => f.type === 'left' && f.reason === 'shutdown'), 'the shutdown departures were stored');
    carol.send({ type: 'say', id: 'after', text: 'after restart' });
    const ack = await carol.nextFrame<AckFrame>((f) => f.type === 'ack');
    assert.ok(ack.seq > welcome.seq, 'sequence numbers continue');
  });

  it('replays only what came after lastSeq, and the last 100 events without it', async () => {
    const server = await start(['--rate-burst', '1000']);
    const writer = await join(server, 'writer', { clientId: 'c-writer', room: 'replay' });
    let lastAck = 0;
    for (let i = 0; i < 120; i += 1) {
      writer.send({ type: 'say', id: `r${i}`, text: `n${i}` });
      lastAck = (await writer.nextFrame<AckFrame>((f) => f.type === 'ack' && f.id === `r${i}`, 10_000)).seq;
    }
    const resumer = await TestClient.connect(server.port);
    clients.push(resumer);
    resumer.send({ type: 'hello', name: 'resumer', room: 'replay', lastSeq: lastAck - 2 });
    await resumer.nextFrame((f) => f.type === 'welcome');
    const firstTwo = [await resumer.nextFrame(), await resumer.nextFrame()];
    assert.deepEqual(
      firstTwo.map((f) => 'seq' in f && f.seq),
      [lastAck - 1, lastAck],
    );
    const fresh = await TestClient.connect(server.port);
    clients.push(fresh);
    fresh.send({ type: 'hello', name: 'fresh', room: 'replay' });
    const welcome = await fresh.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    await fresh.nextFrame((f) => f.type === 'joined' && f.name === 'fresh');
    const replayed = fresh.frames().filter((f) => 'seq' in f && f.type !== 'welcome' && f.seq <= welcome.seq);
    assert.equal(replayed.length, 100);
  });

  it('stores a retried say once, across a reconnect, and acks the retry with the same seq', async () => {
    const server = await start();
    const observer = await join(server, 'observer', { room: 'retry' });
    const first = await join(server, 'sender', { clientId: 'install-1', room: 'retry' });
    first.send({ type: 'say', id: 'same-id', text: 'exactly once' });
    const firstAck = await first.nextFrame<AckFrame>((f) => f.type === 'ack');
    first.close();
    await observer.nextFrame((f) => f.type === 'left' && f.name === 'sender');
    const again = await join(server, 'sender', { clientId: 'install-1', room: 'retry' });
    again.send({ type: 'say', id: 'same-id', text: 'exactly once' });
    const retryAck = await again.nextFrame<AckFrame>((f) => f.type === 'ack');
    assert.deepEqual(retryAck, firstAck);
    observer.send({ type: 'ping' });
    await observer.nextFrame((f) => f.type === 'pong');
    assert.equal(observer.frames().filter((f) => f.type === 'message').length, 1);
  });

  it('lets a client take its seat back with the secret from its welcome, before its old connection is noticed gone, without a departure', async () => {
    const server = await start();
    const observer = await join(server, 'observer', { room: 'resume' });
    const old = await TestClient.connect(server.port);
    clients.push(old);
    old.send({ type: 'hello', name: 'roamer', clientId: 'install-r', room: 'resume' });
    const firstWelcome = await old.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    assert.equal(typeof firstWelcome.resume, 'string', 'every welcome hands out a seat secret');
    const resumed = await TestClient.connect(server.port);
    clients.push(resumed);
    resumed.send({ type: 'hello', name: 'roamer', clientId: 'install-r', room: 'resume', resume: firstWelcome.resume });
    const secondWelcome = await resumed.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    assert.notEqual(secondWelcome.resume, firstWelcome.resume, 'the resumed connection gets a fresh secret');
    await old.waitForClose();
    resumed.send({ type: 'say', id: 'r1', text: 'still me' });
    await observer.nextFrame((f) => f.type === 'message' && f.from === 'roamer');
    assert.ok(!observer.frames().some((f) => f.type === 'left'), 'no departure for a resume');
    for (const hello of [{ clientId: 'install-r' }, { clientId: 'install-r', resume: firstWelcome.resume }, { clientId: 'someone-else', resume: 'not-the-secret' }]) {
      const impostor = await TestClient.connect(server.port);
      clients.push(impostor);
      impostor.send({ type: 'hello', name: 'roamer', room: 'resume', ...hello });
      assert.equal((await impostor.nextFrame<ErrorFrame>((f) => f.type === 'error')).code, 'name_taken', JSON.stringify(hello));
      await impostor.waitForClose();
    }
    resumed.send({ type: 'ping' });
    await resumed.nextFrame((f) => f.type === 'pong');
    assert.equal(resumed.closed, false, 'the seat stays with the connection that resumed it');
  });

  it('drops a torn last record after a crash, logs it, and keeps everything before it', async () => {
    const first = await start();
    const alice = await join(first, 'alice', { clientId: 'c-a', room: 'torn' });
    alice.send({ type: 'say', id: 't1', text: 'safe' });
    const ack = await alice.nextFrame<AckFrame>((f) => f.type === 'ack');
    await first.stop('SIGKILL');
    const [logFile] = readdirSync(dataDir).filter((file) => file.endsWith('.ndjson'));
    appendFileSync(joinPath(dataDir, logFile), '{"type":"message","seq":99,"te');

    const second = await start();
    const reader = await TestClient.connect(second.port);
    clients.push(reader);
    reader.send({ type: 'hello', name: 'reader', room: 'torn', lastSeq: 0 });
    const welcome = await reader.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    assert.equal(welcome.seq, ack.seq, 'the torn record did not count');
    const kept = await reader.nextFrame<MessageEvent>((f) => f.type === 'message');
    assert.equal(kept.text, 'safe');
    assert.match(second.log, /torn last record/);
  });
});
