/**
 * RedisRoomLog against a real redis-server: one order per room across
 * connections (standing in for nodes), de-duplication across them, retention,
 * reads, and what survives Redis being killed or coming back empty.
 */
import { strict as assert } from 'node:assert';
import { RedisConnection, RedisUnavailableError } from '../../server/cluster/redisConnection';
import { type PublishResult, RedisRoomLog, type StoredRoomEvent } from '../../server/cluster/redisRoomLog';
import { sleep } from '../support/historyChecks';
import { RedisServer } from '../support/redisServer';
import { clusterScale } from './clusterScale';

describe('cluster: RedisRoomLog', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  const connections: RedisConnection[] = [];

  async function connect(name: string, options: Parameters<typeof RedisConnection.open>[1] = {}): Promise<RedisConnection> {
    const connection = RedisConnection.open(redis.url, { name, ...options });
    connections.push(connection);
    await connection.ready();
    return connection;
  }

  beforeEach(async () => {
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.dispose();
    await redis.dispose();
  });

  it('numbers events 1, 2, 3… with Redis time, and reads them after a seq, before a seq, and where the room stands', async () => {
    const log = new RedisRoomLog(await connect('node-a'));
    const results: PublishResult[] = [];
    for (let i = 1; i <= 25; i++) results.push(await log.publish('lobby', { type: 'message', from: 'alice', text: `hello ${i}` }));
    assert.deepEqual(results.map((result) => result.seq), Array.from({ length: 25 }, (_, i) => i + 1));
    assert.ok(results.every((result) => !result.duplicate && result.epoch === results[0].epoch));
    for (let i = 1; i < results.length; i++) assert.ok(results[i].ts >= results[i - 1].ts, 'time never goes back within a room');
    assert.ok(Math.abs(results[0].ts - Date.now()) < 60_000, 'ts is wall-clock milliseconds');

    const after = await log.readAfter('lobby', 20, 100);
    assert.deepEqual(after.events.map((event) => event.seq), [21, 22, 23, 24, 25]);
    assert.equal(after.seq, 25);
    assert.equal(after.firstSeq, 1);
    assert.equal(after.epoch, results[0].epoch);
    const decoded = JSON.parse(after.events[0].encoded);
    assert.deepEqual(decoded, { seq: 21, ts: after.events[0].ts, type: 'message', from: 'alice', text: 'hello 21' });

    const page = await log.readBefore('lobby', 11, 4);
    assert.deepEqual(page.events.map((event) => event.seq), [7, 8, 9, 10]);
    assert.equal(page.more, true);
    const firstPage = await log.readBefore('lobby', 5, 10);
    assert.deepEqual(firstPage.events.map((event) => event.seq), [1, 2, 3, 4]);
    assert.equal(firstPage.more, false);

    assert.deepEqual(await log.position('lobby'), { epoch: results[0].epoch, seq: 25, firstSeq: 1 });
    const fresh = await log.position('empty-room');
    assert.equal(fresh.seq, 0);
    assert.equal(fresh.firstSeq, 1);
    assert.notEqual(fresh.epoch, results[0].epoch, 'each room has its own epoch');
    assert.deepEqual(await log.position('empty-room'), fresh, 'the epoch made by a read is kept');

    const bare = await log.publish('lobby', {});
    assert.deepEqual(JSON.parse((await log.readAfter('lobby', 25, 1)).events[0].encoded), { seq: bare.seq, ts: bare.ts });
    await assert.rejects(log.publish('lobby', '[1,2]'), /JSON object/);
    await assert.rejects(log.publish('lobby', '{"seq":3}'), /seq or ts/);
  });

  it('gives one gap-free order and stores each retry once, under concurrent publishers on several connections', async () => {
    const nodes: RedisRoomLog[] = [];
    for (let i = 0; i < 4; i++) nodes.push(new RedisRoomLog(await connect(`node-${i}`)));
    const sendersPerNode = 5;
    const messagesPerSender = clusterScale(40, 200);
    const acked = new Map<string, number>();
    const perSenderSeqs = new Map<string, number[]>();

    async function sender(node: number, sender: number): Promise<void> {
      const name = `s${node}.${sender}`;
      const seqs: number[] = [];
      for (let i = 0; i < messagesPerSender; i++) {
        const dedupKey = `${name} m${i}`;
        const event = { type: 'message', from: name, text: `${i}`, id: `m${i}` };
        // Every third message races a copy through another node before either is acked.
        const tries = i % 3 === 0 ? [nodes[node].publish('lobby', event, dedupKey), nodes[(node + 1) % 4].publish('lobby', event, dedupKey)] : [nodes[node].publish('lobby', event, dedupKey)];
        const results = await Promise.all(tries);
        assert.equal(new Set(results.map((result) => result.seq)).size, 1, 'a raced retry gets the same seq');
        assert.equal(results.filter((result) => !result.duplicate).length, 1, 'exactly one of the racing copies is stored');
        // A retry after the ack, through yet another node, as after a failover.
        const retry = await nodes[(node + 2) % 4].publish('lobby', event, dedupKey);
        assert.deepEqual({ seq: retry.seq, ts: retry.ts, duplicate: retry.duplicate }, { seq: results[0].seq, ts: results[0].ts, duplicate: true });
        acked.set(dedupKey, results[0].seq);
        seqs.push(results[0].seq);
      }
      perSenderSeqs.set(name, seqs);
    }

    const senders = [];
    for (let node = 0; node < 4; node++) for (let s = 0; s < sendersPerNode; s++) senders.push(sender(node, s));
    await Promise.all(senders);

    const total = 4 * sendersPerNode * messagesPerSender;
    const stored: StoredRoomEvent[] = [];
    for (let after = 0; stored.length < total + 1; ) {
      const { events } = await nodes[0].readAfter('lobby', after, 1000);
      if (events.length === 0) break;
      stored.push(...events);
      after = events[events.length - 1].seq;
    }
    assert.equal(stored.length, total, 'each message stored exactly once');
    assert.deepEqual(stored.map((event) => event.seq), Array.from({ length: total }, (_, i) => i + 1), 'seqs 1…N, no gap');
    for (const event of stored) {
      const { from, id } = JSON.parse(event.encoded) as { from: string; id: string };
      assert.equal(acked.get(`${from} ${id}`), event.seq, 'every ack names the stored seq');
    }
    for (const [name, seqs] of perSenderSeqs) {
      assert.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), `${name}'s messages are stored in the order it sent them`);
    }
    const retries = total + 4 * sendersPerNode * Math.ceil(messagesPerSender / 3);
    console.log(`      ${total} messages from ${4 * sendersPerNode} senders on 4 connections, ${retries} retries: stored once each, seqs 1…${total}`);
  });

  it('keeps at least the retention, and remembers a de-duplication key exactly as long as its event', async () => {
    const retainEvents = 150;
    const log = new RedisRoomLog(await connect('node-a'), { retainEvents });
    const raw = await connect('inspector');
    for (let i = 1; i <= 1_000; i++) await log.publish('busy', { type: 'message', text: `${i}` }, `k${i}`);
    const length = await raw.run((client) => client.xLen(log.keys.roomEvents('busy', 'message')));
    assert.ok(length >= retainEvents && length <= retainEvents + 200, `the stream holds ${length} events: at least ${retainEvents}, not much more`);
    const { firstSeq, seq } = await log.position('busy');
    assert.equal(seq, 1_000);
    assert.equal(firstSeq, 1_000 - length + 1);
    const remembered = await raw.run((client) => client.zCard(log.keys.roomDedup('busy', 'message')));
    assert.equal(remembered, length, 'one remembered key per retained event');

    const retained = await log.publish('busy', { type: 'message', text: 'again' }, `k${firstSeq}`);
    assert.deepEqual([retained.seq, retained.duplicate], [firstSeq, true], 'a retry of a retained event is a duplicate');
    const forgotten = await log.publish('busy', { type: 'message', text: 'again' }, 'k1');
    assert.deepEqual([forgotten.seq, forgotten.duplicate], [1_001, false], 'a retry older than the retention is stored again (documented)');

    const page = await log.readAfter('busy', 0, 10);
    assert.equal(page.events[0].seq, firstSeq, 'a read after a trimmed seq starts at the oldest retained event');
  });

  it('retains each class of events on its own: a crowd coming and going never pushes messages out', async () => {
    const retainEvents = 100;
    const log = new RedisRoomLog(await connect('node-a'), { retainEvents });
    for (let i = 1; i <= 50; i++) await log.publish('busy', { type: 'message', text: `m${i}` }, `m${i}`);
    for (let i = 1; i <= 1_000; i++) await log.publish('busy', { type: i % 2 ? 'joined' : 'left', name: `p${i}` }, '', { eventClass: 'presence' });
    await log.publish('busy', { type: 'topic', topic: 'still here' }, 't1', { eventClass: 'change' });
    const all: StoredRoomEvent[] = [];
    for (let after = 0; ; ) {
      const { events } = await log.readAfter('busy', after, 333);
      if (events.length === 0) break;
      assert.ok(events.every((event, i) => i === 0 || event.seq > events[i - 1].seq), 'a merged read comes oldest first');
      all.push(...events);
      after = events[events.length - 1].seq;
    }
    const types = all.map((event) => (JSON.parse(event.encoded) as { type: string }).type);
    assert.equal(types.filter((type) => type === 'message').length, 50, 'all 50 messages are kept behind 1,000 arrivals and departures');
    const presence = types.filter((type) => type === 'joined' || type === 'left').length;
    assert.ok(presence >= retainEvents && presence <= retainEvents + 200, `presence is trimmed to its own retention (${presence})`);
    assert.deepEqual(all.slice(0, 50).map((event) => event.seq), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.equal((await log.position('busy')).firstSeq, 1, 'the oldest retained event is the first message');
    const retry = await log.publish('busy', { type: 'message', text: 'm1' }, 'm1');
    assert.deepEqual([retry.seq, retry.duplicate], [1, true], 'the first message is still de-duplicated');
    const page = await log.readBefore('busy', 1052, 3);
    assert.deepEqual(page.events.map((event) => event.seq), [1049, 1050, 1051], 'a page before a seq merges the classes too');
    assert.deepEqual((await log.readBefore('busy', 52, 3)).events.map((event) => event.seq), [48, 49, 50], 'and skips what a class trimmed');
  });

  it('takes a deleted message\'s text, and that of its edits, out of Redis with the deletion', async () => {
    const log = new RedisRoomLog(await connect('node-a'));
    const raw = await connect('inspector');
    await log.publish('lobby', { type: 'message', from: 'alice', text: 'secret plans', authorId: 'a1' }, 'c1 m1');
    await log.publish('lobby', { type: 'message', from: 'bob', text: 'hello' }, 'c2 m1');
    await log.publish('lobby', { type: 'edited', target: 1, from: 'alice', text: 'more secret plans' }, 'c1 e1', { eventClass: 'change' });
    await log.publish('lobby', { type: 'edited', target: 2, from: 'bob', text: 'hello again' }, 'c2 e1', { eventClass: 'change' });
    await log.publish('lobby', { type: 'edited', target: 1, from: 'alice', text: 'the most secret plans' }, 'c1 e2', { eventClass: 'change' });
    const deletion = await log.publish('lobby', { type: 'deleted', target: 1, from: 'alice' }, 'c1 d1', { eventClass: 'change', deletes: 1 });
    assert.equal(deletion.seq, 6);

    const { events } = await log.readAfter('lobby', 0, 100);
    assert.deepEqual(events.map((event) => event.seq), [1, 2, 3, 4, 5, 6], 'every seq is still read, in order');
    const records = events.map((event) => JSON.parse(event.encoded) as Record<string, unknown>);
    assert.deepEqual(records[0], { seq: 1, ts: events[0].ts, type: 'message', from: 'alice', text: '', authorId: 'a1', deleted: true });
    assert.equal(records[1].text, 'hello', 'other messages keep their text');
    assert.deepEqual([records[2].text, records[2].redacted, records[4].text, records[4].redacted], ['', true, '', true], 'the edits of the deleted message lose theirs');
    assert.equal(records[3].text, 'hello again', 'an edit of another message keeps its text');
    assert.equal(events[0].ts, JSON.parse((await log.readAfter('lobby', 0, 1)).events[0].encoded).ts);

    // Nothing in Redis holds the text any more.
    const dump: string[] = [];
    for (const key of await raw.run((client) => client.keys('*'))) {
      const type = await raw.run((client) => client.type(key));
      if (type === 'stream') dump.push(JSON.stringify(await raw.run((client) => client.xRange(key, '-', '+'))));
      if (type === 'zset') dump.push(...(await raw.run((client) => client.zRange(key, 0, -1))));
      if (type === 'hash') dump.push(JSON.stringify(await raw.run((client) => client.hGetAll(key))));
    }
    assert.ok(!dump.some((text) => text.includes('secret')), 'no stream, set or hash holds the deleted text');
    const retry = await log.publish('lobby', { type: 'message', from: 'alice', text: 'secret plans' }, 'c1 m1');
    assert.deepEqual([retry.seq, retry.duplicate, retry.ts], [1, true, events[0].ts], 'a retry of the deleted message is still found, with its time');
  });

  it('keeps every acked event, the seqs and the epoch when Redis is killed with -9 and restarted on its AOF', async function () {
    const crashes = clusterScale(3, 20);
    this.timeout(30_000 + crashes * 5_000);
    const connection = await connect('node-a');
    // Nothing trimmed, so every acked event can be looked for.
    const log = new RedisRoomLog(connection, { retainEvents: 10_000_000 });
    const acked: number[] = [];
    let failed = 0;
    let stop = false;
    const deadline = Date.now() + 20_000 + crashes * 4_000;
    // Four publishers without pause while Redis is killed: whatever was acked must be there afterwards.
    const publisher = async (name: string) => {
      for (let i = 0; !stop && Date.now() < deadline; i++) {
        try {
          acked.push((await log.publish('durable', { type: 'message', text: `${name} ${i}` }, `${name} ${i}`)).seq);
        } catch (error) {
          assert.ok(error instanceof RedisUnavailableError, `a failure while Redis is down says so: ${String(error)}`);
          failed++;
          await sleep(5);
        }
      }
    };
    const publishers = Promise.all(['p1', 'p2', 'p3', 'p4'].map(publisher));
    let epoch = '';
    const ackedAtKills: number[] = [];
    try {
      for (let crash = 0; crash < crashes; crash++) {
        await connection.ready(10_000);
        await sleep(150 + Math.floor(Math.random() * 300));
        if (crash === 0) epoch = (await log.position('durable')).epoch;
        await redis.kill();
        ackedAtKills.push(acked.length);
        await sleep(Math.floor(Math.random() * 150));
        await redis.restart();
      }
      await connection.ready(10_000);
      await sleep(200);
    } finally {
      stop = true;
      await publishers;
    }

    assert.ok(ackedAtKills[0] > 10, `some events were acked before the first kill (${ackedAtKills[0]})`);
    assert.ok(failed > 0, 'publishing failed while Redis was down');
    const position = await log.position('durable');
    assert.equal(position.epoch, epoch, 'the epoch survives restarts on the AOF');
    const stored = new Set<number>();
    for (let after = 0, round = 0; round < 10_000; round++) {
      const { events } = await log.readAfter('durable', after, 1000);
      if (events.length === 0) break;
      for (const event of events) stored.add(event.seq);
      after = events[events.length - 1].seq;
    }
    const lost = acked.filter((seq) => !stored.has(seq));
    assert.deepEqual(lost, [], 'every acked event is stored');
    assert.deepEqual([...stored], Array.from({ length: position.seq }, (_, i) => i + 1), 'seqs carried on with no gap or reuse');
    assert.ok(acked.length > ackedAtKills[ackedAtKills.length - 1], 'publishing carried on after the last restart by itself');
    console.log(`      ${crashes} kill -9 of Redis under 4 publishers: ${acked.length} acked, ${failed} refused while down, ${position.seq} stored, 0 acked lost`);
  });

  it('starts a new epoch when Redis comes back empty', async () => {
    const connection = await connect('node-a');
    const log = new RedisRoomLog(connection);
    const before = await log.publish('lobby', { type: 'message', text: 'before' });
    await redis.kill();
    await redis.restart({ empty: true });
    await connection.ready(10_000);
    const after = await log.publish('lobby', { type: 'message', text: 'after' });
    assert.equal(after.seq, 1, 'an emptied Redis starts the room again');
    assert.notEqual(after.epoch, before.epoch, 'with a new epoch, so seq 1 is not mistaken for the old seq 1');
  });

  it('fails within the command timeout while Redis hangs (SIGSTOP), and carries on when it wakes up', async () => {
    const connection = await connect('node-a', { commandTimeoutMs: 500 });
    const log = new RedisRoomLog(connection);
    await log.publish('lobby', { type: 'message', text: 'one' }, 'c1 m1');
    process.kill(redis.pid!, 'SIGSTOP');
    try {
      const error = await log.publish('lobby', { type: 'message', text: 'two' }, 'c1 m2').then(
        () => undefined,
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof RedisUnavailableError, `rejected with RedisUnavailableError, got ${String(error)}`);
      assert.match(error.message, /is unavailable/);
    } finally {
      process.kill(redis.pid!, 'SIGCONT');
    }
    await connection.ready(10_000);
    // The timed-out publish may have run once Redis woke up; the retry is stored once either way.
    const retry = await log.publish('lobby', { type: 'message', text: 'two' }, 'c1 m2');
    assert.equal(retry.seq, 2);
    assert.equal((await log.position('lobby')).seq, 2);
  });

  it('fails fast with a clear error while Redis is down, and recovers by itself when it is back', async () => {
    // A long command timeout, so a quick failure can only come from the fail-fast path.
    const connection = await connect('node-a', { commandTimeoutMs: 30_000 });
    const log = new RedisRoomLog(connection);
    await log.publish('lobby', { type: 'message', text: 'one' }, 'c1 m1');
    await redis.kill();
    for (let attempt = 0; attempt < 5; attempt++) {
      const started = Date.now();
      const error = await log.publish('lobby', { type: 'message', text: 'two' }, 'c1 m2').then(
        () => undefined,
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof RedisUnavailableError, `rejected with RedisUnavailableError, got ${String(error)}`);
      assert.match(error.message, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${redis.port} \\(node-a\\) is unavailable`));
      assert.ok(Date.now() - started < 5_000, 'rejected long before the command timeout');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await redis.restart();
    await connection.ready(10_000);
    const two = await log.publish('lobby', { type: 'message', text: 'two' }, 'c1 m2');
    assert.deepEqual([two.seq, two.duplicate], [2, false]);
  });
});
