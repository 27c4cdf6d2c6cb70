/** Every server limit over real TCP, at the limit and one past it. Limits are set small by flag so the tests stay quick. */
import assert from 'node:assert/strict';
import type { AckFrame, ErrorFrame, LeftEvent, MessageEvent } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

describe('server limits over TCP', function () {
  this.timeout(30_000);
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  async function start(args: string[]): Promise<ServerProcess> {
    const server = await ServerProcess.start({ memory: true, args });
    servers.push(server);
    return server;
  }
  async function track<T extends TestClient>(client: Promise<T>): Promise<T> {
    const ready = await client;
    clients.push(ready);
    return ready;
  }
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
  });

  describe('frame size (16 KiB by default)', () => {
    let server: ServerProcess;
    beforeEach(async () => {
      server = await start([]);
    });

    function pingOfBytes(total: number): string {
      const skeleton = '{"type":"ping","pad":""}';
      return skeleton.replace('""', `"${'p'.repeat(total - skeleton.length)}"`);
    }

    it('accepts a frame of exactly 16384 bytes', async () => {
      const client = await track(TestClient.connect(server.port));
      const frame = pingOfBytes(16 * 1024);
      assert.equal(Buffer.byteLength(frame), 16384);
      client.write(frame + '\n');
      assert.deepEqual(await client.nextFrame(), { type: 'pong' });
    });

    it('answers a frame of 16385 bytes with too_long and closes, while others carry on', async () => {
      const bystander = await track(TestClient.join(server.port, 'calm'));
      const client = await track(TestClient.connect(server.port));
      client.write(pingOfBytes(16 * 1024 + 1) + '\n');
      const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
      assert.equal(error.code, 'too_long');
      await client.waitForClose();
      bystander.send({ type: 'ping' });
      await bystander.nextFrame((f) => f.type === 'pong');
    });

    it('closes a connection that sends 16 KiB with no newline at all', async () => {
      const client = await track(TestClient.connect(server.port));
      client.write('x'.repeat(16 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(client.closed, false, 'exactly 16 KiB without a newline is still within the limit');
      client.write('y');
      const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
      assert.equal(error.code, 'too_long');
      await client.waitForClose();
    });
  });

  describe('message text (4 KiB by default)', () => {
    it('stores a text of exactly 4096 bytes, and refuses 4097 bytes whole with too_long without closing', async () => {
      const server = await start([]);
      const client = await track(TestClient.join(server.port, 'writer'));
      const atLimit = 'é'.repeat(2048);
      assert.equal(Buffer.byteLength(atLimit), 4096);
      client.send({ type: 'say', id: 'fits', text: atLimit });
      const message = await client.nextFrame<MessageEvent>((f) => f.type === 'message');
      assert.equal(message.text, atLimit, 'never truncated');
      client.send({ type: 'say', id: 'over', text: atLimit + 'x' });
      const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
      assert.equal(error.code, 'too_long');
      assert.equal(error.id, 'over');
      client.send({ type: 'say', id: 'after', text: 'short' });
      await client.nextFrame<AckFrame>((f) => f.type === 'ack' && f.id === 'after');
      assert.ok(!client.frames().some((f) => f.type === 'message' && f.id === 'over'), 'the long message was not delivered in any form');
    });
  });

  describe('time to hello', () => {
    it('keeps a connection that says hello in time and closes one that does not', async () => {
      const server = await start(['--hello-timeout-ms', '400']);
      const prompt = await track(TestClient.connect(server.port));
      const silent = await track(TestClient.connect(server.port));
      await new Promise((resolve) => setTimeout(resolve, 200));
      prompt.send({ type: 'hello', name: 'prompt' });
      await prompt.nextFrame((f) => f.type === 'welcome');
      const error = await silent.nextFrame<ErrorFrame>((f) => f.type === 'error', 3000);
      assert.equal(error.code, 'hello_timeout');
      await silent.waitForClose();
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(prompt.closed, false);
    });
  });

  describe('message rate (burst, then a steady rate)', () => {
    it('handles the default burst (10) at once, then delays the rest at 2 a second without dropping any', async () => {
      const server = await start([]);
      const client = await track(TestClient.join(server.port, 'flooder'));
      // The hello took one token; fill the rest of the burst, then five past it.
      const sentAt = Date.now();
      for (let i = 0; i < 14; i += 1) client.send({ type: 'say', id: `r${i}`, text: `message ${i}` });
      const ackTimes: number[] = [];
      for (let i = 0; i < 14; i += 1) {
        const ack = await client.nextFrame<AckFrame>((f) => f.type === 'ack', 10_000);
        assert.equal(ack.id, `r${i}`, 'acks come in order');
        ackTimes.push(Date.now() - sentAt);
      }
      // Wide margins: the bounds come from the rate (a token every 500 ms), not from how fast this machine is.
      assert.ok(ackTimes[8] < 1000, `the burst went through at once (9th ack after ${ackTimes[8]} ms)`);
      assert.ok(ackTimes[9] >= 400, `the first message past the burst waited for a token (10th ack after ${ackTimes[9]} ms)`);
      assert.ok(ackTimes[13] >= 2000, `five past the burst took about 2.5 s (14th ack after ${ackTimes[13]} ms)`);
      const notice = client.frames().find((f): f is ErrorFrame => f.type === 'error');
      assert.equal(notice?.code, 'rate_limited');
      const messages = client.frames().filter((f) => f.type === 'message');
      assert.equal(messages.length, 14, 'nothing was dropped');
    });
  });

  describe('slow reader', () => {
    it('cuts off a client that lets more than the limit pile up, announces it lost, and others are unaffected', async () => {
      // The default limit (1 MiB) leaves the reader and the talker, which share this busy test
      // process, room to fall behind for a moment without counting as slow readers themselves.
      const server = await start(['--rate-burst', '100000', '--rate-per-second', '100000']);
      const sleeper = await track(TestClient.join(server.port, 'sleeper'));
      const reader = await track(TestClient.join(server.port, 'reader'));
      const talker = await track(TestClient.join(server.port, 'talker'));
      sleeper.socket.pause();
      const text = 'z'.repeat(4000);
      // About 12 MB to each member, more than the kernel buffers and the limit hold for the
      // sleeper, sent at about 4 MB/s.
      const total = 3000;
      let sent = 0;
      const sendSome = (): void => {
        for (let i = 0; i < 20 && sent < total; i += 1, sent += 1) talker.send({ type: 'say', id: `s${sent}`, text });
        if (sent < total) setTimeout(sendSome, 20);
      };
      sendSome();
      const left = await reader.nextFrame<LeftEvent>((f) => f.type === 'left', 20_000);
      assert.equal(left.name, 'sleeper');
      assert.equal(left.reason, 'lost');
      await talker.nextFrame((f) => f.type === 'ack' && f.id === `s${total - 1}`, 20_000);
      // The talker's ack can overtake the reader's copy, which goes out on another socket:
      // wait for the last message to reach the reader before counting.
      await reader.nextFrame((f) => f.type === 'message' && f.id === `s${total - 1}`, 20_000);
      assert.equal(reader.closed, false, 'the reader was not cut off');
      const delivered = reader.frames().filter((f) => f.type === 'message').length;
      assert.equal(delivered, total, 'the reader got every message');
    });

    it('keeps a client that reads steadily under the same kind of load', async () => {
      const server = await start(['--max-pending-write-bytes', '262144', '--rate-burst', '1000', '--rate-per-second', '1000']);
      const slowButSteady = await track(TestClient.join(server.port, 'steady'));
      const talker = await track(TestClient.join(server.port, 'talker'));
      for (let i = 0; i < 40; i += 1) talker.send({ type: 'say', id: `k${i}`, text: 'k'.repeat(4000) });
      await slowButSteady.nextFrame((f) => f.type === 'message' && f.id === 'k39', 10_000);
      assert.equal(slowButSteady.closed, false);
    });
  });

  describe('silence', () => {
    it('pings a silent client, closes it when it does not answer, and keeps one that answers', async () => {
      const server = await start(['--idle-ping-ms', '300', '--idle-close-ms', '300']);
      const answering = await track(TestClient.join(server.port, 'awake'));
      const silent = await track(TestClient.join(server.port, 'asleep'));
      answering.socket.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('"type":"ping"')) answering.send({ type: 'pong' });
      });
      await silent.nextFrame((f) => f.type === 'ping', 3000);
      const error = await silent.nextFrame<ErrorFrame>((f) => f.type === 'error', 3000);
      assert.equal(error.code, 'idle_timeout');
      await silent.waitForClose();
      const left = await answering.nextFrame<LeftEvent>((f) => f.type === 'left');
      assert.equal(left.name, 'asleep');
      assert.equal(left.reason, 'lost');
      await new Promise((resolve) => setTimeout(resolve, 900));
      assert.equal(answering.closed, false);
      assert.ok(answering.frames().filter((f) => f.type === 'ping').length >= 1);
    });
  });

  describe('connections (--max-clients)', () => {
    it('accepts up to the limit and answers the next with server_full', async () => {
      const server = await start(['--max-clients', '2']);
      await track(TestClient.join(server.port, 'first'));
      await track(TestClient.join(server.port, 'second'));
      const third = await track(TestClient.connect(server.port));
      const error = await third.nextFrame<ErrorFrame>((f) => f.type === 'error');
      assert.equal(error.code, 'server_full');
      await third.waitForClose();
    });
  });
});
