/**
 * Exactly once, over real TCP against the built server: every frame of
 * protocol v2 that changes state, sent again with the same id (on the same
 * connection, or from the same installation after a reconnect), is answered
 * as the first was and applied once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess } from '../support/serverProcess';
import { type AnyFrame, V2Client } from '../support/v2Client';

const FAST = ['--rate-burst', '2000', '--rate-per-second', '2000'];

describe('protocol v2: exactly once', function () {
  this.timeout(60_000);
  const closers: { close(): void }[] = [];
  let server: ServerProcess;
  let dataDir: string;

  async function v2(name: string, options: Parameters<typeof V2Client.hello>[2] = {}): Promise<V2Client> {
    const client = await V2Client.hello(server.port, name, options);
    closers.push(client);
    return client;
  }
  /** The same installation on a new connection, as after a dropped one. */
  async function reconnect(client: V2Client, name: string, clientId: string, key: string): Promise<V2Client> {
    client.close();
    return v2(name, { clientId, key });
  }
  async function historyOf(client: V2Client, room: string): Promise<AnyFrame[]> {
    return (await client.ok({ type: 'history', room, before: 1_000_000 })).events as AnyFrame[];
  }

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-v2-once-'));
    server = await ServerProcess.start({ dataDir, args: FAST });
  });
  afterEach(async () => {
    for (const client of closers.splice(0)) client.close();
    await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers a retried say, edit, delete, react, topic, setOwner and kick with the first ack, and stores each once', async () => {
    let alice = await v2('alice', { clientId: 'alice-install' });
    const key = alice.welcome!.key as string;
    const bob = await v2('bob');
    const kim = await v2('kim');
    await alice.join('room');
    await bob.join('room');
    await kim.join('room');
    const frames: Record<string, unknown>[] = [
      { type: 'say', id: 'x-say', room: 'room', text: 'once' },
      { type: 'say', id: 'x-reply', room: 'room', text: 'a reply', replyTo: 'SAY' },
      { type: 'edit', id: 'x-edit', room: 'room', target: 'SAY', text: 'once, edited' },
      { type: 'react', id: 'x-react', room: 'room', target: 'SAY', emoji: '🎯', add: true },
      { type: 'delete', id: 'x-delete', room: 'room', target: 'REPLY' },
      { type: 'topic', id: 'x-topic', room: 'room', text: 'once only' },
      { type: 'kick', id: 'x-kick', room: 'room', name: 'kim' },
      { type: 'setOwner', id: 'x-owner', room: 'room', name: 'bob' },
    ];
    const seqs = new Map<string, number>();
    const resolve = (frame: Record<string, unknown>) => JSON.parse(JSON.stringify(frame).replace('"SAY"', String(seqs.get('x-say'))).replace('"REPLY"', String(seqs.get('x-reply'))));
    for (const frame of frames) {
      const ack = await alice.ok(resolve(frame));
      assert.equal(typeof ack.seq, 'number', String(frame.id));
      seqs.set(frame.id as string, ack.seq as number);
      // Again on the same connection, at once.
      assert.equal((await alice.ok(resolve(frame))).seq, ack.seq, `${String(frame.id)} again`);
    }
    // Again after a reconnect, when each is out of date: the message deleted, the kick done, the room no longer alice's.
    alice = await reconnect(alice, 'alice', 'alice-install', key);
    await alice.join('room');
    for (const frame of frames) {
      const again = await alice.ok(resolve(frame));
      assert.equal(again.seq, seqs.get(frame.id as string), `${String(frame.id)} after a reconnect`);
    }
    const history = await historyOf(bob, 'room');
    const count = (predicate: (event: AnyFrame) => boolean) => history.filter(predicate).length;
    assert.equal(count((event) => event.type === 'message' && event.from === 'alice'), 2);
    assert.equal(count((event) => event.type === 'edited' || (event.type === 'deleted' && event.target === seqs.get('x-say'))), 1);
    assert.equal(count((event) => event.type === 'reactions'), 1);
    assert.equal(count((event) => event.type === 'deleted' && event.target === seqs.get('x-reply')), 1);
    assert.equal(count((event) => event.type === 'topic'), 1);
    assert.equal(count((event) => event.type === 'left' && event.reason === 'kicked'), 1);
    assert.equal(count((event) => event.type === 'owner'), 1);
    const sayMessage = history.find((event) => event.seq === seqs.get('x-say')) as AnyFrame;
    assert.deepEqual([sayMessage.text, sayMessage.reactions], ['once, edited', [{ emoji: '🎯', count: 1, names: ['alice'] }]]);
  });

  it('applies a retried join, part, read and openDm once, answering each as the first time', async () => {
    let alice = await v2('alice', { clientId: 'alice-install' });
    const key = alice.welcome!.key as string;
    const watcher = await v2('watcher');
    await watcher.join('room');
    await v2('bob');
    const join = { type: 'join', id: 'x-join', room: 'room' };
    alice.send(join);
    await alice.seen((frame) => frame.type === 'ack' && frame.id === 'x-join');
    alice.send(join);
    const states = async () => alice.frames.filter((frame) => frame.type === 'roomState' && frame.id === 'x-join').length;
    await alice.seen((frame) => frame.type === 'ack' && frame.id === 'x-join' && alice.frames.filter((f) => f.type === 'ack' && f.id === 'x-join').length === 2);
    assert.equal(await states(), 2, 'a retried join shows the room again');
    const seq = await watcher.say('room', 'read me');
    const read = { type: 'read', id: 'x-read', room: 'room', seq };
    await alice.ok(read);
    await alice.ok(read);
    const dm = await alice.ok({ type: 'openDm', id: 'x-dm', with: ['bob'] });
    alice = await reconnect(alice, 'alice', 'alice-install', key);
    const dmAgain = await alice.ok({ type: 'openDm', id: 'x-dm', with: ['bob'] });
    assert.equal(dmAgain.room, dm.room);
    await alice.ok(read);
    const part = { type: 'part', id: 'x-part', room: 'room' };
    alice.send({ type: 'join', id: 'x-join', room: 'room' });
    await alice.seen((frame) => frame.type === 'ack' && frame.id === 'x-join');
    await alice.ok(part);
    await alice.ok(part);
    alice = await reconnect(alice, 'alice', 'alice-install', key);
    await alice.ok(part);
    const history = await (await historyOf(watcher, 'room')).filter((event) => event.name === 'alice');
    assert.deepEqual(
      history.map((event) => [event.type, event.reason]),
      [
        ['joined', undefined],
        ['left', 'lost'],
        ['joined', undefined],
        ['left', 'quit'],
      ],
      'one arrival per join that found no seat, one departure per leaving',
    );
    const conversations = (await alice.ok({ type: 'conversations' })).conversations as { room: string; lastRead: number }[];
    assert.deepEqual(conversations.map((conversation) => [conversation.room, conversation.lastRead]), [[dm.room, 0]]);
  });

  it('ends up with the name released however often releaseName is retried across reconnects', async () => {
    const alice = await v2('alice', { clientId: 'alice-install' });
    const key = alice.welcome!.key as string;
    await alice.ok({ type: 'releaseName', id: 'x-release' });
    await alice.waitForClose();
    // The retry of a client that never saw the ack: the name is free, so its hello claims it anew (a new identity, with the key it
    // still sends), and it gives the name up again.
    const again = await v2('alice', { clientId: 'alice-install', key });
    assert.equal(again.welcome!.you, 'alice');
    await again.ok({ type: 'releaseName', id: 'x-release' });
    await again.waitForClose();
    const stranger = await v2('alice', { clientId: 'someone-else' });
    assert.ok(stranger.welcome!.key, 'the name is free');
  });
});
