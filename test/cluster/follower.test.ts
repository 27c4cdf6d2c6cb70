/**
 * RedisRoomFollower against a real redis-server: every node sees each room's
 * events in seq order, once, with no gap, although PUB/SUB loses messages,
 * Redis drops a slow subscriber, and Redis restarts (with its AOF, empty, or
 * with an older AOF as after a failover that lost acknowledged writes).
 *
 * The follower's subscriber goes through a loopback proxy where a test needs
 * to stall or cut it; its reads go straight to Redis.
 */
import { strict as assert } from 'node:assert';
import { cpSync, rmSync } from 'node:fs';
import { RedisConnection } from '../../server/cluster/redisConnection';
import { RedisRoomFollower, type RoomReset } from '../../server/cluster/redisRoomFollower';
import { RedisRoomLog, type StoredRoomEvent } from '../../server/cluster/redisRoomLog';
import { sleep } from '../support/historyChecks';
import { RedisServer } from '../support/redisServer';
import { TcpProxy } from '../support/tcpProxy';
import { clusterScale } from './clusterScale';

/**
 * What one node's follower handed over, with every promise the follower makes
 * checked as it happens. On a reset it does what a server would: drops the
 * room's view and reloads it from the stream up to the reset's seq.
 */
class RecordingNode {
  readonly events = new Map<string, StoredRoomEvent[]>();
  reloading = 0;
  readonly resets: { roomKey: string; reset: RoomReset }[] = [];
  readonly violations: string[] = [];
  readonly errors: unknown[] = [];
  readonly follower: RedisRoomFollower;

  constructor(
    readonly log: RedisRoomLog,
    subscriber: RedisConnection,
    options: ConstructorParameters<typeof RedisRoomFollower>[3] = {},
  ) {
    this.follower = new RedisRoomFollower(
      log,
      subscriber,
      {
        onEvent: (roomKey, event) => {
          const list = this.events.get(roomKey) ?? [];
          const last = list[list.length - 1];
          if (last && event.seq !== last.seq + 1) this.violations.push(`${roomKey}: seq ${event.seq} after ${last.seq}`);
          const decoded = JSON.parse(event.encoded) as { seq: number; ts: number };
          if (decoded.seq !== event.seq || decoded.ts !== event.ts) this.violations.push(`${roomKey}: ${event.encoded} is not seq ${event.seq}`);
          list.push(event);
          this.events.set(roomKey, list);
        },
        onReset: (roomKey, reset) => {
          this.resets.push({ roomKey, reset });
          this.events.set(roomKey, []);
          this.reloading++;
          void log
            .readBefore(roomKey, reset.seq + 1, 1_000)
            .then((page) => {
              if (page.epoch !== reset.epoch) this.violations.push(`${roomKey}: reloaded epoch ${page.epoch}, reset to ${reset.epoch}`);
              this.events.set(roomKey, [...page.events, ...(this.events.get(roomKey) ?? [])]);
            })
            .catch((error: unknown) => this.errors.push(error))
            .finally(() => this.reloading--);
        },
        onError: (error) => this.errors.push(error),
      },
      options,
    );
  }

  seqs(roomKey: string): number[] {
    return (this.events.get(roomKey) ?? []).map((event) => event.seq);
  }

  texts(roomKey: string): string[] {
    return (this.events.get(roomKey) ?? []).map((event) => (JSON.parse(event.encoded) as { text: string }).text);
  }

  lastSeq(roomKey: string): number {
    const list = this.events.get(roomKey) ?? [];
    return list.length ? list[list.length - 1].seq : 0;
  }
}

/** Everything the stream holds for a room, oldest first. */
async function storedEvents(log: RedisRoomLog, roomKey: string): Promise<StoredRoomEvent[]> {
  const all: StoredRoomEvent[] = [];
  for (let after = 0, round = 0; round < 1_000; round++) {
    const { events } = await log.readAfter(roomKey, after, 1_000);
    if (events.length === 0) break;
    all.push(...events);
    after = events[events.length - 1].seq;
  }
  return all;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('cluster: RedisRoomFollower', function () {
  this.timeout(90_000);
  let redis: RedisServer;
  let proxy: TcpProxy | undefined;
  const connections: RedisConnection[] = [];
  const nodes: RecordingNode[] = [];

  async function connect(name: string, url = redis.url): Promise<RedisConnection> {
    const connection = RedisConnection.open(url, { name });
    connections.push(connection);
    await connection.ready(10_000);
    return connection;
  }

  /** A node: its own command connection and subscriber (through the proxy when `proxied`). */
  async function startNode(name: string, options: { proxied?: boolean; retainEvents?: number; checkIntervalMs?: number; fillBatch?: number } = {}): Promise<RecordingNode> {
    const log = new RedisRoomLog(await connect(`${name} commands`), { retainEvents: options.retainEvents });
    const subscriberUrl = options.proxied && proxy ? `redis://127.0.0.1:${proxy.port}` : redis.url;
    const node = new RecordingNode(log, await connect(`${name} subscriber`, subscriberUrl), { checkIntervalMs: options.checkIntervalMs ?? 500, fillBatch: options.fillBatch });
    nodes.push(node);
    return node;
  }

  beforeEach(async () => {
    redis = await RedisServer.start();
    proxy = await TcpProxy.start(() => redis.port);
  });

  afterEach(async () => {
    for (const node of nodes.splice(0)) node.follower.dispose();
    for (const connection of connections.splice(0)) connection.dispose();
    await proxy?.close();
    proxy = undefined;
    await redis.dispose();
  });

  it('hands every node each room\'s events in seq order, once, from publishers on several connections', async () => {
    const followers = [await startNode('node-a'), await startNode('node-b'), await startNode('node-c')];
    const rooms = ['lobby', 'dev', 'random'];
    for (const node of followers) for (const room of rooms) await node.follower.follow(room);
    const publishers = [];
    for (let i = 0; i < 3; i++) publishers.push(new RedisRoomLog(await connect(`publisher-${i}`)));
    const perPublisher = clusterScale(300, 3_000);
    await Promise.all(
      publishers.map(async (log, p) => {
        const inFlight = [];
        for (let i = 0; i < perPublisher; i++) {
          inFlight.push(log.publish(rooms[i % rooms.length], { type: 'message', from: `p${p}`, text: `${i}` }, `p${p} ${i}`));
          if (inFlight.length >= 20) await Promise.all(inFlight.splice(0));
        }
        await Promise.all(inFlight);
      }),
    );
    for (const room of rooms) {
      const stored = await storedEvents(publishers[0], room);
      for (const node of followers) {
        await waitFor(`${room} on a node`, () => node.lastSeq(room) === stored.length);
        assert.deepEqual(node.events.get(room), stored, 'each node holds exactly the stored events, in order');
      }
    }
    for (const node of followers) assert.deepEqual([node.violations, node.resets], [[], []]);
  });

  it('fills a gap from the stream before delivering what follows it, and notices a lost last event with no event after it', async () => {
    const node = await startNode('node-a');
    await node.follower.follow('lobby');
    const writer = new RedisRoomLog(await connect('writer'));
    const raw = await connect('raw');
    await writer.publish('lobby', { type: 'message', text: 'one' });
    await waitFor('seq 1', () => node.lastSeq('lobby') === 1);

    // An event stored without its PUB/SUB message, as when the message was lost on the way.
    async function storeSilently(text: string): Promise<number> {
      const seq = await raw.run((client) => client.hIncrBy(writer.keys.roomMeta('lobby'), 'seq', 1));
      await raw.run((client) => client.xAdd(writer.keys.roomEvents('lobby', 'message'), `${seq}-0`, { e: JSON.stringify({ seq, ts: 1, type: 'message', text }), t: '1' }));
      return seq;
    }
    assert.equal(await storeSilently('two, never published'), 2);
    await writer.publish('lobby', { type: 'message', text: 'three' });
    await waitFor('seq 3', () => node.lastSeq('lobby') === 3);
    assert.deepEqual(node.seqs('lobby'), [1, 2, 3], 'seq 2 was read from the stream before seq 3 was delivered');
    assert.equal(JSON.parse(node.events.get('lobby')![1].encoded).text, 'two, never published');

    assert.equal(await storeSilently('four, never published, nothing after it'), 4);
    await waitFor('seq 4 through the periodic check', () => node.lastSeq('lobby') === 4, 5_000);
    assert.deepEqual([node.violations, node.resets], [[], []]);
  });

  it('recovers with no gap or duplicate when Redis drops it as a slow subscriber in a burst', async () => {
    // A small PUB/SUB output buffer, so a subscriber that stops reading is dropped quickly.
    const raw = await connect('raw');
    await raw.run((client) => client.configSet('client-output-buffer-limit', 'pubsub 256kb 0 0'));
    // Small fill batches: catching up takes hundreds of rounds, so a fill hands over and resumes several times.
    const node = await startNode('node-a', { proxied: true, fillBatch: 7 });
    const other = await startNode('node-b');
    for (const room of ['burst-1', 'burst-2']) {
      await node.follower.follow(room);
      await other.follower.follow(room);
    }
    const publisher = new RedisRoomLog(await connect('publisher'));
    const text = 'x'.repeat(2_000);
    let sent = 0;
    const publishRound = async (count: number) => {
      const batch = [];
      for (let i = 0; i < count; i++) batch.push(publisher.publish(i % 2 ? 'burst-1' : 'burst-2', { type: 'message', text, n: sent++ }));
      await Promise.all(batch);
    };
    await publishRound(100);
    await waitFor('the first 100', () => node.lastSeq('burst-1') + node.lastSeq('burst-2') === 100);

    const [pair] = [...proxy!.connections];
    proxy!.stall(pair);
    const droppedBefore = dropCount(redis);
    const maxRounds = clusterScale(40, 200);
    let rounds = 0;
    while (dropCount(redis) === droppedBefore && rounds < maxRounds) {
      await publishRound(500);
      rounds++;
    }
    const dropped = dropCount(redis) - droppedBefore;
    await publishRound(clusterScale(200, 2_000));
    proxy!.resume(pair);

    assert.ok(dropped >= 1, `Redis dropped the stalled subscriber (after ${rounds} rounds of 500)`);
    for (const room of ['burst-1', 'burst-2']) {
      const stored = await storedEvents(publisher, room);
      await waitFor(`${room} caught up`, () => node.lastSeq(room) === stored.length, 30_000);
      assert.deepEqual(node.seqs(room), stored.map((event) => event.seq));
      assert.deepEqual(node.events.get(room), stored, 'the dropped node holds exactly the stored events');
      await waitFor(`${room} on the other node`, () => other.lastSeq(room) === stored.length);
      assert.deepEqual(other.events.get(room), stored);
    }
    assert.deepEqual([node.violations, node.resets], [[], []]);
    console.log(`      ${sent} events of 2 KB; Redis dropped the stalled subscriber ${dropped} time(s); it caught up with no gap or duplicate`);
  });

  it('carries on after Redis is killed with -9 and restarted on its AOF, and reports a reset when it comes back empty', async () => {
    const node = await startNode('node-a');
    await node.follower.follow('lobby');
    const publisher = new RedisRoomLog(await connect('publisher'));
    for (let i = 0; i < 20; i++) await publisher.publish('lobby', { type: 'message', text: `${i}` });
    await waitFor('20 events', () => node.lastSeq('lobby') === 20);
    const epoch = node.follower.delivered('lobby')!.epoch;

    await redis.kill();
    await redis.restart();
    for (let i = 20; i < 30; i++) await publishWhenUp(publisher, { type: 'message', text: `${i}` });
    await waitFor('30 events', () => node.lastSeq('lobby') === 30);
    assert.deepEqual(node.seqs('lobby'), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(node.resets.length, 0, 'a restart on the AOF keeps the epoch: no reset');
    assert.equal(node.follower.delivered('lobby')!.epoch, epoch);

    await redis.kill();
    await redis.restart({ empty: true });
    const fresh = await publishWhenUp(publisher, { type: 'message', text: 'after the loss' });
    assert.equal(fresh.seq, 1);
    await waitFor('the reset and the new event', () => node.resets.length === 1 && node.reloading === 0 && node.lastSeq('lobby') === 1);
    const [{ reset }] = node.resets;
    assert.equal(reset.reason, 'epoch');
    assert.equal(reset.previousEpoch, epoch);
    assert.equal(reset.epoch, fresh.epoch);
    assert.equal(reset.lastDelivered, 30);
    assert.deepEqual(node.texts('lobby'), ['after the loss'], 'the view holds the new epoch alone, each event once');
    assert.deepEqual(node.violations, []);
  });

  it('reports a rewind when Redis comes back with an older AOF (acknowledged writes lost, as in an asynchronous failover)', async () => {
    const node = await startNode('node-a', { proxied: true });
    await node.follower.follow('lobby');
    const publisher = new RedisRoomLog(await connect('publisher'));
    for (let i = 0; i < 10; i++) await publisher.publish('lobby', { type: 'message', text: `kept ${i}` });
    // Copy the AOF after a clean stop, as a replica would hold it, then go on writing.
    await redis.stop();
    const snapshot = `${redis.dataDir}.snapshot`;
    cpSync(redis.dataDir, snapshot, { recursive: true });
    await redis.restart();
    for (let i = 0; i < 5; i++) await publishWhenUp(publisher, { type: 'message', text: `lost ${i}` });
    await waitFor('15 delivered', () => node.lastSeq('lobby') === 15);

    // The "failover": Redis comes back with the older copy. Keep the follower away until others wrote past seq 15.
    proxy!.refusing = true;
    proxy!.cutAll();
    await redis.kill();
    rmSync(redis.dataDir, { recursive: true, force: true });
    cpSync(snapshot, redis.dataDir, { recursive: true });
    rmSync(snapshot, { recursive: true, force: true });
    await redis.restart();
    for (let i = 0; i < 8; i++) await publishWhenUp(publisher, { type: 'message', text: `new ${i}` });
    assert.equal((await publisher.position('lobby')).seq, 18, 'seqs 11-15 were given out again');
    proxy!.refusing = false;

    await waitFor('the rewind', () => node.resets.length === 1, 15_000);
    const [{ reset }] = node.resets;
    assert.equal(reset.reason, 'rewound');
    assert.equal(reset.epoch, reset.previousEpoch, 'same epoch: only the content of seqs 11-15 tells');
    assert.equal(reset.lastDelivered, 15);
    assert.equal(reset.seq, 18);
    await publisher.publish('lobby', { type: 'message', text: 'after' });
    await waitFor('seq 19 and the reload', () => node.lastSeq('lobby') === 19 && node.reloading === 0);
    assert.deepEqual(node.events.get('lobby'), await storedEvents(publisher, 'lobby'), 'the reloaded view is the stream, without the lost events');
    assert.ok(!node.texts('lobby').some((text) => text.startsWith('lost')));
    assert.deepEqual(node.violations, []);
  });

  it('reports the events it can no longer get when they were trimmed while it was cut off', async () => {
    const node = await startNode('node-a', { proxied: true, retainEvents: 100 });
    await node.follower.follow('lobby');
    const publisher = new RedisRoomLog(await connect('publisher'), { retainEvents: 100 });
    for (let i = 0; i < 5; i++) await publisher.publish('lobby', { type: 'message', text: `${i}` });
    await waitFor('5 delivered', () => node.lastSeq('lobby') === 5);
    proxy!.refusing = true;
    proxy!.cutAll();
    for (let i = 0; i < 400; i++) await publisher.publish('lobby', { type: 'message', text: `${i}` });
    proxy!.refusing = false;
    await waitFor('the trim reported', () => node.resets.length === 1, 15_000);
    assert.deepEqual(
      { reason: node.resets[0].reset.reason, lastDelivered: node.resets[0].reset.lastDelivered, seq: node.resets[0].reset.seq },
      { reason: 'trimmed', lastDelivered: 5, seq: 405 },
    );
    await publisher.publish('lobby', { type: 'message', text: 'next' });
    await waitFor('seq 406 and the reload', () => node.lastSeq('lobby') === 406 && node.reloading === 0);
    assert.deepEqual(node.events.get('lobby'), await storedEvents(publisher, 'lobby'), 'the reloaded view is what the stream retains');
    assert.deepEqual(node.violations, []);
  });

  it('starts from a given position, and reports a different epoch as a reset', async () => {
    const node = await startNode('node-a');
    const publisher = new RedisRoomLog(await connect('publisher'));
    let epoch = '';
    for (let i = 0; i < 8; i++) epoch = (await publisher.publish('lobby', { type: 'message', text: `${i}` })).epoch;
    const position = await node.follower.follow('lobby', { epoch, seq: 5 });
    assert.deepEqual(position, { epoch, seq: 8, firstSeq: 1 });
    assert.deepEqual(node.seqs('lobby'), [6, 7, 8], 'follow resolves once the events after the given seq are delivered');
    await node.follower.unfollow('lobby');
    await publisher.publish('lobby', { type: 'message', text: 'unseen' });
    await node.follower.follow('lobby', { epoch: 'an-old-epoch', seq: 3 });
    assert.deepEqual(node.resets.map(({ reset }) => [reset.reason, reset.seq]), [['epoch', 9]]);
    await waitFor('the reload', () => node.reloading === 0);
    assert.deepEqual(node.seqs('lobby'), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

/** How often Redis has dropped a client for its output buffer, by its own log. */
function dropCount(redis: RedisServer): number {
  return redis.log.split('overcoming of output buffer limits').length - 1;
}

/** Publishes, retrying while Redis is still starting (bounded). */
async function publishWhenUp(log: RedisRoomLog, event: Record<string, unknown>) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await log.publish('lobby', event);
    } catch (error) {
      if (attempt >= 200) throw error;
      await sleep(50);
    }
  }
}
