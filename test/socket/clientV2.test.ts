// The extension's v2 client (extension/client/chatClientV2.ts) against the
// real server: many rooms on one connection, every change answered once by
// id, requests answered by id, every room resumed after a crash with nothing
// lost or shown twice, the name's key kept, and a server from before v2
// recognised before any hello, so its room hears nothing.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { ChatClientV2, type FirstOutcomeV2 } from '../../extension/client/chatClientV2';
import type { OutboxStorage } from '../../extension/client/outbox';
import type { MessageV2Event, RoomEventV2 } from '../../shared/protocolV2';
import { memoryOutboxes } from '../support/memoryStore';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 8_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** A v2 client that records every event it shows, per room. */
function client(port: number, name: string, outboxes: OutboxStorage = memoryOutboxes(), key?: string) {
  const chat = new ChatClientV2({ host: '127.0.0.1', port, name, clientId: `cid-${name}`, outboxes, initialBackoffMs: 50, maxBackoffMs: 200, maxLoopbackBackoffMs: 200, ...(key ? { key } : {}) });
  const shown: RoomEventV2[] = [];
  chat.onEvent((event) => shown.push(event));
  const typing: string[] = [];
  chat.onTyping((event) => typing.push(`${event.room}:${event.name}`));
  const keys: string[] = [];
  chat.onKey((value) => keys.push(value));
  return { chat, shown, typing, keys, messages: (room: string) => shown.filter((event): event is MessageV2Event => event.type === 'message' && event.room === room) };
}

describe('the extension\'s v2 client', function () {
  this.timeout(30_000);
  let server: ServerProcess;
  const owned: { dispose(): void }[] = [];

  beforeEach(async () => {
    server = await ServerProcess.start();
  });

  afterEach(async () => {
    for (const item of owned.splice(0)) item.dispose();
    await server.dispose();
  });

  it('is in two rooms on one connection, and changes and requests are each answered once', async () => {
    const alice = client(server.port, 'alice');
    owned.push(alice.chat);
    alice.chat.connect();
    const first = await alice.chat.firstOutcome();
    assert.equal(first.kind, 'welcome');
    const [lobby, dev] = await Promise.all([alice.chat.join('lobby'), alice.chat.join('dev')]);
    assert.ok(lobby.ok && dev.ok);
    assert.equal(lobby.ok && lobby.state.owner, 'alice', 'the first to enter owns the room');

    const bob = await V2Client.hello(server.port, 'bob');
    owned.push({ dispose: () => bob.close() });
    await bob.join('lobby');
    await bob.join('dev');
    alice.chat.say('lobby', 'hello lobby');
    alice.chat.say('dev', 'hello dev');
    await until('both messages stored', () => alice.chat.pending('lobby').length === 0 && alice.chat.pending('dev').length === 0 && alice.messages('dev').length === 1);
    const bobSees = await bob.seen((frame) => frame.type === 'message' && frame.room === 'dev' && frame.text === 'hello dev');
    const target = bobSees.seq as number;

    const reply = await bob.say('dev', 'a reply', { replyTo: target });
    await until('the reply', () => alice.messages('dev').find((message) => message.seq === reply));
    assert.equal(alice.messages('dev').find((message) => message.seq === reply)?.replyToFrom, 'alice');

    const edited = await alice.chat.edit('dev', target, 'hello dev (better)');
    assert.ok(edited.ok && typeof edited.frame.seq === 'number');
    const refused = await alice.chat.edit('dev', reply, 'not mine');
    assert.deepEqual(refused.ok ? 'ok' : refused.code, 'forbidden');
    const reacted = await alice.chat.react('dev', reply, '👍', true);
    assert.ok(reacted.ok);
    await until('the reaction shown', () => alice.shown.find((event) => event.type === 'reactions' && event.target === reply));
    const deleted = await alice.chat.delete('lobby', (alice.messages('lobby')[0] as MessageV2Event).seq);
    assert.ok(deleted.ok);
    await until('the deletion shown', () => alice.shown.find((event) => event.type === 'deleted' && event.room === 'lobby'));

    const topic = await alice.chat.setTopic('dev', 'the dev room');
    assert.ok(topic.ok);
    const history = await alice.chat.history('dev', reply + 100);
    assert.ok(history.ok && history.frame.events.some((event) => event.type === 'message' && event.text === 'hello dev (better)'), 'history holds the current text');
    const search = await alice.chat.search('dev', 'better');
    assert.ok(search.ok && search.frame.hits.length === 1 && search.frame.hits[0].seq === target);
    const rooms = await alice.chat.listRooms();
    assert.ok(rooms.ok && rooms.frame.rooms.map((room) => room.room).sort().join() === 'dev,lobby');
    const members = await alice.chat.listMembers('dev');
    assert.ok(members.ok && members.frame.names.includes('bob'));
    const dm = await alice.chat.openDm(['bob']);
    assert.ok(dm.ok && dm.frame.room.startsWith('dm:'));

    const read = await alice.chat.read('dev', reply);
    assert.ok(read.ok);
    const list = await alice.chat.conversations();
    assert.ok(list.ok);
    const devSummary = list.frame.conversations.find((conversation) => conversation.room === 'dev');
    assert.equal(devSummary?.lastRead, reply, 'the read marker is the server\'s');

    bob.send({ type: 'typing', room: 'dev' });
    await until('bob typing', () => alice.typing.includes('dev:bob'));

    const kicked = await alice.chat.kick('dev', 'bob');
    assert.ok(kicked.ok);
    await bob.seen((frame) => frame.type === 'parted' && frame.room === 'dev');

    const parted = await alice.chat.part('lobby');
    assert.ok(parted.ok);
    assert.deepEqual(alice.chat.roomNames, ['dev']);
    assert.equal(alice.keys.length, 1, 'the key to keep was reported once');
  });

  it('resumes every room after a crash: the outbox goes once, missed events arrive, nothing shows twice', async () => {
    const outboxes = memoryOutboxes();
    const alice = client(server.port, 'alice', outboxes);
    owned.push(alice.chat);
    alice.chat.connect();
    await alice.chat.firstOutcome();
    await alice.chat.join('one');
    await alice.chat.join('two');
    alice.chat.say('one', 'before the crash');
    await until('stored', () => alice.chat.pending('one').length === 0);

    await server.stop('SIGKILL');
    await until('reconnecting', () => alice.chat.state.kind === 'reconnecting');
    alice.chat.say('one', 'written while down, one');
    alice.chat.say('two', 'written while down, two');
    assert.equal(alice.chat.pending('one').length + alice.chat.pending('two').length, 2);
    const restarted = await ServerProcess.start({ dataDir: server.dataDir, args: ['--port', String(server.port)] });
    owned.push({ dispose: () => void restarted.stop('SIGKILL').catch(() => undefined) });
    const bob = await V2Client.hello(restarted.port, 'bob');
    owned.push({ dispose: () => bob.close() });
    await bob.join('two');
    await bob.say('two', 'said while alice was away');

    await until('both rooms back and the outbox empty', () => alice.chat.isJoined('one') && alice.chat.isJoined('two') && alice.chat.pending('one').length + alice.chat.pending('two').length === 0, 15_000);
    await until('bob\'s message', () => alice.messages('two').some((message) => message.text === 'said while alice was away'));
    await delay(300);
    const seqs = alice.shown.map((event) => `${event.room}#${event.seq}`);
    assert.equal(new Set(seqs).size, seqs.length, `nothing shown twice: ${seqs.join(' ')}`);
    const stored = await bob.request({ type: 'history', room: 'two', before: 1_000 });
    const texts = (stored.events as MessageV2Event[]).filter((event) => event.type === 'message').map((event) => event.text);
    assert.deepEqual(texts.filter((text) => text === 'written while down, two'), ['written while down, two'], 'stored once');
  });

  it('keeps the name\'s key: another hello without it is refused, the same key is welcomed again', async () => {
    const first = client(server.port, 'keeper');
    first.chat.connect();
    await first.chat.firstOutcome();
    const key = first.keys[0];
    assert.ok(key && key.length >= 32);
    await first.chat.leave();
    first.chat.dispose();

    const thief = client(server.port, 'keeper');
    owned.push(thief.chat);
    thief.chat.connect();
    const refused = await thief.chat.firstOutcome();
    assert.equal(refused.kind === 'refused' && refused.code, 'name_reserved');

    const back = client(server.port, 'keeper', memoryOutboxes(), key);
    owned.push(back.chat);
    back.chat.connect();
    assert.equal((await back.chat.firstOutcome()).kind, 'welcome');
  });
});

describe('the v2 client and a server from before v2', () => {
  let old: Server;
  const received: string[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    // Answers as servers before protocol 2 did: an unknown frame type is `bad_frame` (no id, the
    // connection stays open), and a hello (whatever its `protocol`) is a v1 join of its room or the lobby.
    old = createServer((socket) => {
      sockets.push(socket);
      let buffered = '';
      socket.on('data', (chunk) => {
        buffered += chunk.toString('utf8');
        for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          received.push(line);
          const frame = JSON.parse(line) as { type: string; name?: string };
          if (frame.type === 'hello') socket.write(`${JSON.stringify({ type: 'welcome', you: frame.name, room: 'lobby', members: [frame.name], seq: 0, firstSeq: 1, protocol: 1 })}\n`);
          else socket.write('{"type":"error","code":"bad_frame","message":"Unknown frame type \\"conversations\\"."}\n');
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => old.close(resolve));
  });

  it('is told so before saying hello, and reports v1only', async () => {
    const port = (old.address() as { port: number }).port;
    const chat = new ChatClientV2({ host: '127.0.0.1', port, name: 'alice', clientId: 'c', outboxes: memoryOutboxes() });
    try {
      chat.connect();
      const outcome: FirstOutcomeV2 = await chat.firstOutcome();
      assert.equal(outcome.kind, 'v1only');
      await delay(100);
      assert.ok(received.length >= 1 && received.every((line) => !line.includes('"hello"')), `no hello reached the old server: ${received.join(' | ')}`);
      assert.equal(chat.state.kind, 'closed');
    } finally {
      chat.dispose();
    }
  });
});
