/**
 * Cluster mode end to end: three real server processes (`dist/server.js
 * --redis`) sharing rooms through a real redis-server on a free loopback
 * port, real TCP clients of every protocol on each, and every process
 * stopped, killed or paused by its own PID.
 */
import { strict as assert } from 'node:assert';
import { ChatClient } from '../../extension/client/chatClient';
import { ChatClientV2 } from '../../extension/client/chatClientV2';
import type { RoomEventV2, RoomStateFrame } from '../../shared/protocolV2';
import { CLASSIC_GREETING } from '../../server/classicConnection';
import type { RoomEvent } from '../../shared/protocol';
import { Haproxy } from '../support/haproxy';
import { sleep } from '../support/historyChecks';
import { memoryOutboxes } from '../support/memoryStore';
import { RedisServer, type RedisServerOptions } from '../support/redisServer';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { type AnyFrame, V2Client } from '../support/v2Client';

const FULL = process.env.CLUSTER_FULL === '1';
const NODE_TTL_MS = 1_000;
/** The failover tests' TTL: long enough that every client has moved before the dead node is claimed, even on a loaded machine. */
const FAILOVER_TTL_MS = 3_000;
const ROOM = 'lobby';
/** The tests' clients send as fast as they are answered; the rate limit has tests of its own. */
const FAST_CLIENTS = ['--rate-burst', '1000', '--rate-per-second', '1000'];

/** Events a v2 client saw in a room, by seq, since it joined. */
function roomEvents(client: V2Client, room = ROOM): AnyFrame[] {
  return client.frames.filter((frame) => typeof frame.seq === 'number' && frame.room === room && ['message', 'joined', 'left'].includes(frame.type));
}

/** What a connection was last sent, for the message of a failure. */
function lastSent(client: TestClient | V2Client): string {
  return client instanceof TestClient ? client.lines.slice(-2).join(' | ') : JSON.stringify(client.frames.slice(-2));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The extension's own client (extension/client/chatClient.ts) as a room member, with what it was shown. */
interface Member {
  chat: ChatClient;
  events: RoomEvent[];
  /** Errors the servers sent it. */
  errors: string[];
  /** Its acks and welcomes, for a failure's message. */
  trace: string[];
  /** When it was last welcomed. */
  welcomedAt: number;
  welcomedBy: string;
}

function member(name: string, addresses: { host: string; port: number }[]): Member {
  const [first, ...alternates] = addresses;
  const chat = new ChatClient({ ...first, alternates, name, room: ROOM, clientId: `install-${name}`, outboxes: memoryOutboxes(), initialBackoffMs: 100 });
  const joined: Member = { chat, events: [], errors: [], trace: [], welcomedAt: 0, welcomedBy: '' };
  chat.onEvent((event) => joined.events.push(event));
  chat.onServerError((error) => joined.errors.push(`${error.code}: ${error.message}`));
  chat.onFrame((frame) => {
    if (frame.type === 'ack' || frame.type === 'welcome') joined.trace.push(`${frame.type} ${frame.type === 'ack' ? frame.seq : frame.seq} ${chat.address}`);
  });
  chat.onState((state) => {
    if (state.kind === 'connected') {
      joined.welcomedAt = Date.now();
      joined.welcomedBy = chat.address;
    }
  });
  chat.connect();
  return joined;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Says something, retrying while the answer is storage_failed (Redis coming back); fails after 10 s. */
async function sayOnceBack(client: V2Client, text: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await client.request({ type: 'say', id: client.nextId('back'), room: ROOM, text });
    if (reply.type === 'ack') return reply.seq as number;
    assert.equal(reply.code, 'storage_failed');
    if (Date.now() > deadline) throw new Error(`"${text}" still refused 10 s after Redis came back`);
    await sleep(100);
  }
}

describe('cluster: three servers sharing rooms through Redis', function () {
  this.timeout(FULL ? 300_000 : 90_000);
  let redis: RedisServer;
  let nodes: ServerProcess[] = [];
  const clients: { close(): void }[] = [];

  async function start(options: { redis?: RedisServerOptions; ttlMs?: number } = {}): Promise<void> {
    redis = await RedisServer.start(options.redis);
    nodes = await Promise.all(
      [0, 1, 2].map((i) =>
        ServerProcess.start({ redis: redis.url, classic: true, args: ['--node-id', `node-${i}`, '--node-ttl-ms', String(options.ttlMs ?? NODE_TTL_MS), ...FAST_CLIENTS] }),
      ),
    );
  }

  async function v2(node: number, name: string, options: { clientId?: string; key?: string } = {}): Promise<V2Client> {
    const client = await V2Client.hello(nodes[node].port, name, options);
    clients.push(client);
    return client;
  }

  async function v1(node: number, name: string, extra: Record<string, unknown> = {}): Promise<TestClient> {
    const client = await TestClient.join(nodes[node].port, name, { room: ROOM, ...extra });
    clients.push(client);
    return client;
  }

  async function classic(node: number, name: string): Promise<TestClient> {
    const client = await TestClient.connect(nodes[node].classicPort as number);
    clients.push(client);
    client.write(`${name}\n`);
    await client.nextLine((line) => line.startsWith(`Welcome ${name}`));
    return client;
  }

  /** The room's whole retained history, as a fresh v2 connection on `node` is replayed it. */
  async function history(node: number): Promise<AnyFrame[]> {
    const reader = await v2(node, `reader${Math.random().toString(36).slice(2, 7)}`);
    const state = await reader.join(ROOM, 0);
    await waitFor('the replay', () => roomEvents(reader).some((event) => (event.seq as number) >= (state.seq as number)) || state.seq === 0);
    reader.close();
    return roomEvents(reader).filter((event) => (event.seq as number) <= (state.seq as number));
  }

  afterEach(async function () {
    for (const client of clients.splice(0)) client.close();
    if (this.currentTest?.state === 'failed') for (const node of nodes) process.stderr.write(`--- node ${node.pid}\n${node.log.slice(-4000)}\n`);
    await Promise.all(nodes.map((node) => node.dispose()));
    nodes = [];
    await redis?.dispose();
  });

  it('puts a v1 client, a v2 client and a classic client on different nodes in one room', async () => {
    await start();
    const ada = await v1(0, 'ada');
    const bob = await v2(1, 'bob');
    await bob.join(ROOM);
    const cy = await classic(2, 'cy');
    await ada.nextFrame((frame) => frame.type === 'joined' && frame.name === 'bob');
    await ada.nextFrame((frame) => frame.type === 'joined' && frame.name === 'cy');
    ada.send({ type: 'say', id: 'm1', text: 'hello from v1' });
    const ack = (await ada.nextFrame((frame) => frame.type === 'ack')) as { seq: number };
    await bob.seen((frame) => frame.type === 'message' && frame.text === 'hello from v1' && frame.seq === ack.seq);
    await cy.nextLine((line) => line === 'ada: hello from v1');
    const seq = await bob.say(ROOM, 'hello from v2');
    await ada.nextFrame((frame) => frame.type === 'message' && frame.text === 'hello from v2' && frame.seq === seq);
    await cy.nextLine((line) => line === 'bob: hello from v2');
    cy.write('hello from classic\n');
    const fromClassic = await ada.nextFrame((frame) => frame.type === 'message' && frame.text === 'hello from classic');
    await bob.seen((frame) => frame.type === 'message' && frame.text === 'hello from classic' && frame.seq === (fromClassic as { seq: number }).seq);
    // Frames from a cluster read as a server alone writes them: the type first.
    const messageLines = ada.lines.filter((line) => line.includes('"type":"message"'));
    assert.equal(messageLines.length, 3);
    for (const line of messageLines) assert.ok(line.startsWith('{"type":"message"'), line);
    // Every node counts the same members, whoever is on which.
    const late = await v1(2, 'dee');
    const welcome = late.frames().find((frame) => frame.type === 'welcome') as { members: string[]; memberCount: number };
    assert.deepEqual([...welcome.members].sort(), ['ada', 'bob', 'cy', 'dee']);
    assert.equal(welcome.memberCount, 4);
    // A name is one seat across the cluster: taken on another node is taken.
    const twin = await TestClient.connect(nodes[1].port);
    clients.push(twin);
    twin.send({ type: 'hello', name: 'ada', room: ROOM });
    assert.equal(((await twin.nextFrame((frame) => frame.type === 'error')) as { code: string }).code, 'name_taken');
  });

  it('tells the participants of a new DM on every node at once, the opener\'s other window too, and nobody else', async () => {
    await start();
    const alice = await v2(0, 'alice');
    const bob = await v2(1, 'bob');
    const aliceElsewhere = await v2(2, 'alice', { key: alice.welcome!.key as string });
    const carol = await v2(2, 'carol');
    const { room } = await alice.ok({ type: 'openDm', with: ['bob'] });
    for (const [who, client] of [['bob on node 1', bob], ["alice's other window on node 2", aliceElsewhere], ['alice on node 0', alice]] as const) {
      const added = await client.next((frame) => frame.type === 'conversationAdded', 10_000);
      assert.deepEqual([added.room, added.kind, [...(added.participants as string[])].sort()], [room, 'dm', ['alice', 'bob']], who);
    }
    // Told once: the list bob gets next (from his own node) already has it, and carol's has nothing.
    await bob.join(room as string);
    assert.equal(bob.frames.filter((frame) => frame.type === 'conversationAdded').length, 1);
    assert.deepEqual(((await carol.ok({ type: 'conversations' })).conversations as unknown[]).length, 0);
    assert.ok(!carol.frames.some((frame) => frame.type === 'conversationAdded'));
  });

  it('gives one order with no gap and stores each retry once, with retries sent through other nodes', async () => {
    await start();
    const senders = FULL ? 12 : 6;
    const perSender = FULL ? 150 : 30;
    const readers = await Promise.all([0, 1, 2].map((node) => v2(node, `watcher${node}`)));
    for (const reader of readers) await reader.join(ROOM);
    const firstSeq = (readers[2].frames.find((frame) => frame.type === 'roomState') as AnyFrame).seq as number;
    const acked = new Map<string, number>();
    let retries = 0;
    let raced = 0;
    await Promise.all(
      Array.from({ length: senders }, async (_, s) => {
        const name = `sender${s}`;
        const main = await v2(s % 3, name, { clientId: `install-${s}` });
        const other = await v2((s + 1) % 3, name, { clientId: `install-${s}`, key: main.welcome?.key });
        await main.join(ROOM);
        await other.join(ROOM);
        for (let m = 0; m < perSender; m++) {
          const frame = { type: 'say', id: `${name}-${m}`, room: ROOM, text: `${name} #${m}` };
          // Every third goes through two nodes at once; every one is retried through the other node after its ack.
          const answers = m % 3 === 0 ? await Promise.all([main.ok(frame), other.ok(frame)]) : [await main.ok(frame)];
          if (answers.length > 1) raced += 1;
          const retry = await other.ok(frame);
          retries += 1;
          for (const answer of [...answers, retry]) assert.equal(answer.seq, answers[0].seq, `${frame.id}: every answer names the stored seq`);
          acked.set(frame.text, answers[0].seq as number);
        }
      }),
    );
    const total = senders * perSender;
    for (const reader of readers) await waitFor(`${total} messages on every node`, () => roomEvents(reader).filter((event) => event.type === 'message').length >= total);
    await sleep(300);
    const transcripts = readers.map((reader) => roomEvents(reader).map((event) => `${event.seq as number} ${event.type} ${String(event.text ?? event.name)}`));
    assert.deepEqual(transcripts[1], transcripts[0], 'node 1 shows what node 0 shows');
    assert.deepEqual(transcripts[2].slice(-transcripts[0].length), transcripts[0].slice(-transcripts[2].length), 'node 2 shows what node 0 shows');
    const seen = roomEvents(readers[0]);
    const seqs = seen.map((event) => event.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
    const messages = seen.filter((event) => event.type === 'message');
    assert.equal(messages.length, total, 'each message once');
    assert.equal(new Set(messages.map((event) => event.text)).size, total);
    for (const event of messages) assert.equal(acked.get(event.text as string), event.seq, `${String(event.text)} is where its ack said`);
    for (let s = 0; s < senders; s++) {
      const own = messages.filter((event) => (event.text as string).startsWith(`sender${s} #`)).map((event) => Number((event.text as string).split('#')[1]));
      assert.deepEqual(own, [...own].sort((a, b) => a - b), `sender${s}'s messages keep their order`);
    }
    const stored = (await history(1)).filter((event) => event.type === 'message' && (event.seq as number) > firstSeq);
    assert.equal(stored.length, total, 'the stored history holds each message once');
    console.log(`      ${total} messages from ${senders} senders on 3 nodes, ${raced} raced through two nodes, ${retries} retried through another: stored once each, seqs with no gap`);
  });

  it('announces arrivals and departures across nodes, and the members of a node killed with -9 as lost once, by one survivor', async () => {
    await start();
    const watchers = [await v2(0, 'watcher0'), await v2(1, 'watcher1')];
    for (const watcher of watchers) await watcher.join(ROOM);
    // On the node that will die: a v2 member, a v1 member and a classic member; and one with a second connection on a survivor.
    const eve = await v2(2, 'eve');
    await eve.join(ROOM);
    await v1(2, 'fay');
    await classic(2, 'gus');
    const hal = await v2(2, 'hal', { clientId: 'hal-1' });
    await hal.join(ROOM);
    const halElsewhere = await v2(0, 'hal', { clientId: 'hal-2', key: hal.welcome?.key });
    await halElsewhere.join(ROOM);
    for (const watcher of watchers) for (const name of ['eve', 'fay', 'gus', 'hal']) await watcher.seen((frame) => frame.type === 'joined' && frame.name === name);
    const state = await v2(1, 'ivy').then(async (ivy) => ivy.join(ROOM));
    assert.deepEqual([...(state.members as string[])].sort(), ['eve', 'fay', 'gus', 'hal', 'ivy', 'watcher0', 'watcher1']);
    // A departure on purpose is seen on the other nodes.
    await eve.ok({ type: 'part', room: ROOM });
    for (const watcher of watchers) await watcher.seen((frame) => frame.type === 'left' && frame.name === 'eve' && frame.reason === 'quit');
    await eve.join(ROOM);

    const killedAt = Date.now();
    await nodes[2].stop('SIGKILL');
    const lostNames = ['eve', 'fay', 'gus'];
    const noticedAfter: number[] = [];
    for (const name of lostNames) {
      await watchers[0].seen((frame) => frame.type === 'left' && frame.name === name && frame.reason === 'lost', NODE_TTL_MS * 10);
      noticedAfter.push(Date.now() - killedAt);
    }
    // Long enough for a second survivor to have announced them too, had the claim not been exclusive.
    await sleep(NODE_TTL_MS * 3);
    for (const watcher of watchers) {
      for (const name of lostNames) {
        const departures = watcher.frames.filter((frame) => frame.type === 'left' && frame.name === name && frame.reason === 'lost');
        assert.equal(departures.length, 1, `${name} is announced lost once on each node`);
      }
      assert.equal(watcher.frames.filter((frame) => frame.type === 'left' && frame.name === 'hal').length, 0, 'hal, still connected elsewhere, has not left');
    }
    const stored = (await history(0)).filter((event) => event.type === 'left' && event.reason === 'lost');
    assert.deepEqual(stored.map((event) => event.name).sort(), lostNames, 'the history holds one lost departure each');
    const afterKill = await v2(0, 'jon').then(async (jon) => jon.join(ROOM));
    assert.deepEqual([...(afterKill.members as string[])].sort(), ['hal', 'ivy', 'jon', 'watcher0', 'watcher1']);
    const slowest = Math.max(...noticedAfter);
    console.log(`      ${lostNames.length} members lost, the last announced ${slowest} ms after kill -9 (node TTL ${NODE_TTL_MS} ms)`);
    assert.ok(slowest < NODE_TTL_MS * 3, `announced within the TTL and a check or two (${slowest} ms)`);
  });

  it('keeps every acked message, the epoch and the seqs when Redis is killed with -9 and restarted on its AOF', async () => {
    await start();
    const ada = await v2(0, 'ada');
    const bob = await v2(1, 'bob');
    const before = await ada.join(ROOM);
    await bob.join(ROOM);
    const acked: { text: string; seq: number }[] = [];
    let refused = 0;
    const kills = FULL ? 5 : 2;
    for (let round = 0; round < kills; round++) {
      // Each round starts once the nodes are back on Redis.
      acked.push({ text: `round ${round} begins`, seq: await sayOnceBack(ada, `round ${round} begins`) });
      const sending = (async () => {
        for (let m = 0; m < 60; m++) {
          const text = `round ${round} #${m}`;
          const reply = await ada.request({ type: 'say', room: ROOM, text }, 15_000);
          if (reply.type === 'ack') acked.push({ text, seq: reply.seq as number });
          else {
            assert.equal(reply.code, 'storage_failed');
            refused += 1;
            // As a client would, wait a moment before the next one.
            await sleep(25);
          }
        }
      })();
      await sleep(40);
      await redis.kill();
      await sleep(300);
      await redis.restart();
      await sending;
    }
    assert.ok(acked.length > 0);
    // The connections were kept: both still talk, once Redis answers again.
    const after = await sayOnceBack(ada, 'after the kills');
    await bob.seen((frame) => frame.type === 'message' && frame.text === 'after the kills' && frame.seq === after);
    const stored = await history(2);
    const storedMessages = new Map(stored.filter((event) => event.type === 'message').map((event) => [event.text as string, event.seq as number]));
    const lost = acked.filter(({ text, seq }) => storedMessages.get(text) !== seq);
    assert.deepEqual(lost, [], 'every acked message is stored at its acked seq');
    const seqs = stored.map((event) => event.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
    const state = await (await v2(2, 'cy')).join(ROOM);
    assert.equal(state.epoch, before.epoch, 'the epoch is kept');
    console.log(`      ${kills} kill -9 of Redis while a client sends: ${acked.length} acked, ${refused} refused with storage_failed, 0 acked lost`);
  });

  it('tells clients of every protocol to reset when Redis comes back empty, and carries on in the new epoch', async () => {
    await start();
    const ada = await v2(0, 'ada');
    const before = await ada.join(ROOM);
    const bob = await v1(1, 'bob');
    const firstWelcome = bob.frames().find((frame) => frame.type === 'welcome') as { epoch?: string };
    assert.equal(firstWelcome.epoch, before.epoch);
    await ada.say(ROOM, 'before Redis lost it');
    await redis.stop();
    await redis.restart({ empty: true });
    const reset = await ada.seen((frame) => frame.type === 'roomState' && frame.reset === 'epoch', 10_000);
    assert.notEqual(reset.epoch, before.epoch);
    const bobReset = (await bob.nextFrame((frame) => frame.type === 'welcome' && (frame as { reset?: boolean }).reset === true, 10_000)) as { epoch?: string };
    assert.equal(bobReset.epoch, reset.epoch);
    // Both are seated again in the new history, and talk on.
    const seq = await ada.say(ROOM, 'in the new epoch');
    const seen = await bob.nextFrame((frame) => frame.type === 'message' && frame.text === 'in the new epoch');
    assert.equal((seen as { seq: number }).seq, seq);
    const stored = await history(2);
    assert.ok(!stored.some((event) => event.text === 'before Redis lost it'));
    // Each node puts its seats back into the new history at its next heartbeat, and says so.
    await waitFor('ada seated again, as bob hears', () => {
      const frames = bob.frames();
      const reset = frames.findLastIndex((frame) => frame.type === 'welcome');
      return frames.slice(reset).some((frame) => frame.type === 'joined' && frame.name === 'ada');
    }, 5_000);
    const members = (await (await v2(2, 'cy')).join(ROOM)).members as string[];
    assert.deepEqual([...members].sort(), ['ada', 'bob', 'cy']);
  });

  it("resets the extension's v2 client when Redis comes back empty: it takes the new epoch's events, though their seqs start again", async () => {
    await start();
    const chat = new ChatClientV2({ host: '127.0.0.1', port: nodes[0].port, name: 'eve', clientId: 'install-eve', outboxes: memoryOutboxes(), initialBackoffMs: 100 });
    const events: RoomEventV2[] = [];
    const states: RoomStateFrame[] = [];
    chat.onEvent((event) => events.push(event));
    chat.onRoomState((state) => states.push(state));
    try {
      chat.connect();
      assert.equal((await chat.firstOutcome()).kind, 'welcome');
      assert.equal((await chat.join(ROOM)).ok, true);
      const talker = await v2(1, 'talker');
      await talker.join(ROOM);
      for (let i = 0; i < 5; i++) await talker.say(ROOM, `old ${i}`);
      await waitFor('the old messages', () => events.filter((event) => event.type === 'message').length === 5);
      await redis.stop();
      await redis.restart({ empty: true });
      await waitFor('the reset', () => states.some((state) => state.reset === 'epoch'), 10_000);
      await talker.seen((frame) => frame.type === 'roomState' && frame.reset === 'epoch', 10_000);
      await talker.say(ROOM, 'in the new epoch');
      await waitFor('the first message of the new epoch', () => events.some((event) => event.type === 'message' && event.text === 'in the new epoch'), 5_000).catch(() =>
        assert.fail(`the client dropped it; it last saw seq ${chat.lastSeq(ROOM)}: ${JSON.stringify(events.slice(-3))}`),
      );
    } finally {
      chat.dispose();
    }
  });

  it('refuses new messages with storage_failed while Redis is down, keeps the connections, and recovers by itself', async () => {
    await start();
    const ada = await v2(0, 'ada');
    await ada.join(ROOM);
    const bob = await v1(1, 'bob');
    const cy = await classic(2, 'cy');
    // v1 and classic members are welcomed before their arrival is stored; seen on another node, it is. (A join Redis takes down with it is refused: the next test.)
    for (const name of ['bob', 'cy']) await ada.seen((frame) => frame.type === 'joined' && frame.room === ROOM && frame.name === name);
    await redis.stop();
    const refusal = await ada.request({ type: 'say', room: ROOM, text: 'while Redis is down' });
    assert.equal(refusal.type, 'error');
    assert.equal(refusal.code, 'storage_failed');
    assert.match(String(refusal.message), /store/);
    bob.send({ type: 'say', id: 'b1', text: 'while Redis is down' });
    const bobRefusal = await bob.nextFrame((frame) => frame.type === 'error');
    assert.equal((bobRefusal as { code: string }).code, 'storage_failed');
    for (const [name, client] of [['ada', ada], ['bob', bob], ['cy', cy]] as const) assert.equal(client.closed, false, `${name}'s connection is kept; it was last sent: ${lastSent(client)}`);
    await redis.restart();
    // Back by itself: the same connections send again (the v1 client retries its id).
    await sayOnceBack(ada, 'Redis is back');
    await cy.nextLine((line) => line === 'ada: Redis is back');
    bob.send({ type: 'say', id: 'b1', text: 'while Redis is down' });
    await bob.nextFrame((frame) => frame.type === 'ack' && frame.id === 'b1');
  });

  it('refuses a v1 or classic join that Redis goes down under with a clear last word, and keeps the members already in', async () => {
    await start();
    const ada = await v2(0, 'ada');
    await ada.join(ROOM);
    // Both nodes have the room loaded, so only storing the arrivals waits for Redis.
    const keeper = await classic(1, 'keeper');
    await ada.seen((frame) => frame.type === 'joined' && frame.room === ROOM && frame.name === 'keeper');
    const bob = await TestClient.connect(nodes[1].port);
    const cy = await TestClient.connect(nodes[1].classicPort as number);
    clients.push(bob, cy);
    await cy.nextLine((line) => line === CLASSIC_GREETING);
    process.kill(redis.pid as number, 'SIGSTOP');
    try {
      bob.send({ type: 'hello', name: 'bob', room: ROOM });
      await bob.nextFrame((frame) => frame.type === 'welcome');
      cy.write('cy\n');
      await cy.nextLine((line) => line.startsWith('Welcome cy'));
    } finally {
      // Killed while stopped: the arrivals sent to it are never stored.
      await redis.kill();
    }
    const bobRefusal = (await bob.nextFrame((frame) => frame.type === 'error')) as { code: string; message: string };
    assert.equal(bobRefusal.code, 'storage_failed');
    assert.match(bobRefusal.message, /store/);
    assert.equal(await cy.nextLine(), 'The server cannot reach its store just now; try again in a moment. Goodbye.');
    await waitFor('the refused members closed', () => bob.closed && cy.closed);
    assert.equal(ada.closed, false, `ada's connection is kept; it was last sent: ${lastSent(ada)}`);
    assert.equal(keeper.closed, false, `keeper's connection is kept; it was last sent: ${lastSent(keeper)}`);
  });

  it('fills the gap from the stream when Redis drops a slow node as a subscriber', async () => {
    // Redis cuts a subscriber off once 64 KiB wait for it; the node is paused while 6 MB pass (more than loopback's socket buffers hold).
    await start({ redis: { config: { 'client-output-buffer-limit': 'pubsub 64kb 0 0' } }, ttlMs: 10_000 });
    const talker = await v2(0, 'talker');
    await talker.join(ROOM);
    const listener = await v2(1, 'listener');
    const state = await listener.join(ROOM);
    process.kill(nodes[1].pid, 'SIGSTOP');
    const count = 1500;
    try {
      for (let batch = 0; batch < count; batch += 100) {
        for (let i = batch; i < batch + 100; i++) talker.send({ type: 'say', id: `burst-${i}`, room: ROOM, text: `${String(i).padStart(4, '0')} ${'x'.repeat(4000)}` });
        await waitFor('the burst acked', () => talker.all('ack').length >= batch + 100 + 1);
      }
    } finally {
      process.kill(nodes[1].pid, 'SIGCONT');
    }
    await waitFor(`${count} messages on the paused node`, () => roomEvents(listener).filter((event) => event.type === 'message').length >= count, 30_000);
    const seen = roomEvents(listener).filter((event) => (event.seq as number) > (state.seq as number));
    const seqs = seen.map((event) => event.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
    assert.equal(new Set(seen.filter((event) => event.type === 'message').map((event) => event.text)).size, count);
    // Redis 7.0 counts no such drops in INFO; it logs each one.
    const dropped = (redis.log.match(/overcoming of output buffer limits/g) ?? []).length;
    console.log(`      Redis dropped ${dropped} slow subscriber(s); the paused node showed all ${count} messages with no gap or duplicate`);
    assert.ok(dropped >= 1, `Redis did drop the paused node:\n${redis.log.slice(-2000)}`);
  });

  /**
   * Members on `node` (reached directly with the others as alternates, or
   * through one front end) talk while it is killed with -9: each is back in
   * the room on a survivor, resumed by seq, with its outbox sent, and every
   * message stored once.
   */
  async function failover(members: Member[], killed: number, watcher: V2Client): Promise<{ backMs: number[] }> {
    await Promise.all(members.map(async (joined) => assert.equal((await joined.chat.firstOutcome()).kind, 'welcome')));
    const perMember = 20;
    let killedAt = 0;
    const talking = members.map(async (joined, m) => {
      for (let i = 0; i < perMember; i++) {
        joined.chat.say(`${m}:${i}`);
        await sleep(15);
      }
    });
    await sleep(100);
    killedAt = Date.now();
    await nodes[killed].stop('SIGKILL');
    await Promise.all(talking);
    await waitFor('every member back and its outbox empty', () => members.every((joined) => joined.welcomedAt > killedAt && joined.chat.pending.length === 0), 20_000);
    const total = members.length * perMember;
    await waitFor('every message on the watcher', () => watcher.frames.filter((frame) => frame.type === 'message' && /^\d+:\d+$/.test(String(frame.text))).length >= total, 10_000);
    // Long enough for the dead node's seats to be claimed: a member who moved within the TTL is not announced lost.
    await sleep(FAILOVER_TTL_MS * 1.5);
    const stored = (await history(2)).filter((event) => event.type === 'message' && /^\d+:\d+$/.test(String(event.text)));
    assert.equal(stored.length, total, 'every message stored once');
    assert.equal(new Set(stored.map((event) => event.text)).size, total);
    for (const [m, joined] of members.entries()) {
      const seqs = joined.events.map((event) => event.seq);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `member ${m}: seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
      const own = joined.events.filter((event) => event.type === 'message' && event.text.startsWith(`${m}:`)).map((event) => (event as { text: string }).text);
      assert.deepEqual(own, Array.from({ length: perMember }, (_, i) => `${m}:${i}`), `member ${m} saw its own messages once, in order (errors: ${joined.errors.join('; ')}; seqs: ${joined.events.filter((event) => event.type === 'message' && event.text.startsWith(`${m}:`)).map((event) => `${(event as { text: string }).text}@${event.seq}`).join(' ')}; trace: ${joined.trace.join(', ')})`);
      assert.notEqual(joined.welcomedBy, `127.0.0.1:${nodes[killed].port}`);
    }
    const lost = watcher.frames.filter((frame) => frame.type === 'left' && String(frame.name).startsWith('mover'));
    assert.deepEqual(lost, [], 'members that moved in time were never announced gone');
    return { backMs: members.map((joined) => joined.welcomedAt - killedAt) };
  }

  it('moves a client with several addresses to the next when its node is killed with -9: resumed by seq, outbox sent, nothing lost or doubled', async () => {
    await start({ ttlMs: FAILOVER_TTL_MS });
    const watcher = await v2(2, 'watcher');
    await watcher.join(ROOM);
    const addresses = nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
    const count = FULL ? 60 : 12;
    const members = Array.from({ length: count }, (_, m) => member(`mover${m}`, addresses));
    clients.push(...members.map((joined) => ({ close: () => joined.chat.dispose() })));
    const { backMs } = await failover(members, 0, watcher);
    console.log(`      ${count} clients back in the room after kill -9 of their node: p50 ${percentile(backMs, 50)} ms, p99 ${percentile(backMs, 99)} ms, max ${Math.max(...backMs)} ms`);
  });

  it("moves the extension's protocol-2 client with several addresses to the next when its node is killed with -9: every room rejoined from its seq, outboxes sent, nothing lost or doubled", async () => {
    await start({ ttlMs: FAILOVER_TTL_MS });
    const watcher = await v2(2, 'watcher');
    await watcher.join(ROOM);
    await watcher.join('side');
    const [first, ...alternates] = nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
    const chat = new ChatClientV2({ ...first, alternates, name: 'rover', clientId: 'install-rover', outboxes: memoryOutboxes(), initialBackoffMs: 100 });
    clients.push({ close: () => chat.dispose() });
    const seen: RoomEventV2[] = [];
    chat.onEvent((event) => seen.push(event));
    let welcomedAt = 0;
    chat.onState((state) => {
      if (state.kind === 'connected') welcomedAt = Date.now();
    });
    chat.connect();
    assert.equal((await chat.firstOutcome()).kind, 'welcome');
    for (const room of [ROOM, 'side']) assert.equal((await chat.join(room)).ok, true, room);
    assert.equal(chat.address, `127.0.0.1:${nodes[0].port}`);

    const perRoom = 15;
    const talking = (async () => {
      for (let i = 0; i < perRoom; i++) {
        for (const room of [ROOM, 'side']) chat.say(room, `${room}:${i}`);
        await sleep(15);
      }
    })();
    await sleep(60);
    const killedAt = Date.now();
    await nodes[0].stop('SIGKILL');
    await talking;
    await waitFor('back on a survivor with both outboxes empty', () => welcomedAt > killedAt && chat.pending(ROOM).length === 0 && chat.pending('side').length === 0, 20_000);
    assert.notEqual(chat.address, `127.0.0.1:${nodes[0].port}`);
    for (const room of [ROOM, 'side']) {
      const expected = Array.from({ length: perRoom }, (_, i) => `${room}:${i}`);
      await waitFor(`every message of ${room} on the watcher`, () => watcher.frames.filter((frame) => frame.type === 'message' && frame.room === room && String(frame.text).startsWith(`${room}:`)).length >= perRoom, 10_000);
      const stored = watcher.frames.filter((frame) => frame.type === 'message' && frame.room === room && String(frame.text).startsWith(`${room}:`)).map((frame) => frame.text);
      assert.deepEqual(stored, expected, `${room}: each message stored once, in order`);
      const own = seen.filter((event) => event.type === 'message' && event.room === room).map((event) => (event as { text: string }).text);
      assert.deepEqual(own, expected, `${room}: the client saw each once`);
      const seqs = seen.filter((event) => event.room === room).map((event) => event.seq);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${room}: seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
    }
    console.log(`      back on ${chat.address} ${welcomedAt - killedAt} ms after kill -9 of its node`);
  });

  it('serves a cluster behind one HAProxy address: clients of a killed node come back through it to a survivor', async () => {
    await start({ ttlMs: FAILOVER_TTL_MS });
    const proxy = await Haproxy.start(nodes.map((node) => node.port), 'first');
    clients.push({ close: () => void proxy.dispose() });
    const watcher = await v2(2, 'watcher');
    await watcher.join(ROOM);
    const count = FULL ? 60 : 12;
    const members = Array.from({ length: count }, (_, m) => member(`mover${m}`, [{ host: '127.0.0.1', port: proxy.port }]));
    clients.push(...members.map((joined) => ({ close: () => joined.chat.dispose() })));
    await Promise.all(members.map((joined) => joined.chat.firstOutcome()));
    // `balance first`: every member is on node 0.
    assert.ok(nodes[0].log.includes('joined lobby as mover0'), 'the front end chose node 0');
    const { backMs } = await failover(members, 0, watcher);
    console.log(`      ${count} clients behind HAProxy back after kill -9 of their node: p50 ${percentile(backMs, 50)} ms, p99 ${percentile(backMs, 99)} ms, max ${Math.max(...backMs)} ms`);
    await proxy.dispose();
  });
});
