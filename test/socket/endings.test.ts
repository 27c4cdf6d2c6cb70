/**
 * The end of a connection, over real TCP: whatever a client sent before its
 * `bye`, `{quit}` or half-close (FIN, as `nc` sends at the end of its input)
 * is stored and answered before the server closes, even when the rate limit
 * is still holding some of it back.
 */
import assert from 'node:assert/strict';
import type { AckFrame, LeftEvent, MessageEvent } from '../../shared/protocol';
import { encodeFrame } from '../../shared/framing';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

/** More than the default burst of 10, so part of it waits for the rate limit (2 a second) after the client is done. */
const PIPELINED = 14;

describe('the end of a connection over TCP', function () {
  this.timeout(30_000);
  let server: ServerProcess;
  const clients: TestClient[] = [];
  async function track(client: Promise<TestClient>): Promise<TestClient> {
    const ready = await client;
    clients.push(ready);
    return ready;
  }

  before(async () => {
    server = await ServerProcess.start({ memory: true, classic: true });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await server.dispose();
  });

  /** A hello and `count` says in one write, as a client that does not wait for answers sends them. */
  function pipelined(name: string, room: string, count: number): Buffer {
    const frames = [encodeFrame({ type: 'hello', name, room, clientId: `${name}-id` })];
    for (let index = 0; index < count; index++) frames.push(encodeFrame({ type: 'say', id: `${name}-${index}`, text: `${name} says ${index}` }));
    return Buffer.concat(frames);
  }

  async function expectAllStoredAndAcked(sender: TestClient, watcher: TestClient, name: string, count: number): Promise<void> {
    await sender.waitForClose(15_000);
    const acks = sender.frames().filter((frame): frame is AckFrame => frame.type === 'ack');
    assert.deepEqual(
      acks.map((ack) => ack.id),
      Array.from({ length: count }, (_, index) => `${name}-${index}`),
      'every say was acked, in order, before the server closed',
    );
    const left = await watcher.nextFrame<LeftEvent>((frame) => frame.type === 'left' && frame.name === name, 5000);
    const seen = watcher.frames().filter((frame): frame is MessageEvent => frame.type === 'message' && frame.from === name);
    assert.equal(seen.length, count, 'every message reached the room');
    assert.ok(seen.every((message) => message.seq < left.seq), 'the departure comes after the messages');
    for (const ack of acks) assert.ok(seen.some((message) => message.seq === ack.seq && message.id === ack.id), `ack ${ack.id} names the stored seq`);
  }

  // Within the burst, the says and the departure are stored together, and the departure must not close the
  // connection before the says' acks are out; past it, the bye waits for the rate limit behind the says.
  for (const count of [5, PIPELINED]) {
    it(`stores and acks ${count} says pipelined before a bye, then announces left/quit and closes`, async () => {
      const room = `bye-end-${count}`;
      const watcher = await track(TestClient.join(server.port, 'watcher', { room }));
      const sender = await track(TestClient.connect(server.port));
      sender.write(Buffer.concat([pipelined('byer', room, count), encodeFrame({ type: 'bye' }), encodeFrame({ type: 'say', id: 'after-bye', text: 'not acted on' })]));
      await expectAllStoredAndAcked(sender, watcher, 'byer', count);
      assert.equal(watcher.frames().find((frame): frame is LeftEvent => frame.type === 'left' && frame.name === 'byer')?.reason, 'quit');
      assert.ok(!watcher.frames().some((frame) => frame.type === 'message' && frame.id === 'after-bye'), 'nothing after the bye is acted on');
    });

    it(`stores and acks ${count} says pipelined before a half-close (FIN), then closes`, async () => {
      const room = `fin-end-${count}`;
      const watcher = await track(TestClient.join(server.port, 'watcher', { room }));
      const sender = await track(TestClient.connect(server.port));
      sender.socket.end(pipelined('finisher', room, count));
      await expectAllStoredAndAcked(sender, watcher, 'finisher', count);
    });
  }

  it('stores every line a classic user piped into nc before its input ended, the last one without a newline included', async () => {
    const watcher = await track(TestClient.join(server.port, 'watcher'));
    const piper = await track(TestClient.connect(server.classicPort as number));
    const lines = Array.from({ length: PIPELINED }, (_, index) => `piped line ${index}`);
    // What `printf 'piper\n…' | nc -N host port` sends: the name, the lines, then FIN.
    piper.socket.end(['piper', ...lines].join('\n'));
    await piper.waitForClose(15_000);
    const echoed = piper.lines.filter((line) => line.startsWith('piper: '));
    assert.deepEqual(echoed, lines.map((line) => `piper: ${line}`), 'the user saw each of its lines stored, as the seed echoes them');
    await watcher.nextFrame((frame) => frame.type === 'left' && frame.name === 'piper', 5000);
    const seen = watcher.frames().filter((frame): frame is MessageEvent => frame.type === 'message' && frame.from === 'piper');
    assert.deepEqual(seen.map((message) => message.text), lines);
  });
});
