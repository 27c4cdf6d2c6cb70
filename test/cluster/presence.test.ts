/**
 * ClusterPresence against a real redis-server, with the nodes that get killed
 * running as their own processes (test/cluster/presenceNode.ts), stopped by
 * their PIDs: seats counted once per member, a node killed with -9 has its
 * members reported lost once, by one survivor, within the heartbeat TTL.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ClusterPresence, type LostMember, type Seat } from '../../server/cluster/clusterPresence';
import { RedisConnection } from '../../server/cluster/redisConnection';
import { sleep } from '../support/historyChecks';
import { processAlive } from '../support/processAlive';
import { RedisServer } from '../support/redisServer';

const NODE_SCRIPT = resolve(__dirname, 'presenceNode.js');
const NAMESPACE = 'presence-test';
const TTL_MS = 1_000;
const CHECK_MS = 200;

/** A presence node in a child process. */
class NodeProcess {
  readonly lines: Record<string, unknown>[] = [];
  private nextId = 0;
  private readonly child: ChildProcess;
  private exited: Promise<void>;

  constructor(url: string, readonly nodeId: string, options: { holdLost?: boolean } = {}) {
    const config = { url, namespace: NAMESPACE, nodeId, heartbeatTtlMs: TTL_MS, checkIntervalMs: CHECK_MS, ...options };
    this.child = spawn(process.execPath, [NODE_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((done) => this.child.once('exit', () => done()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.lines.push(JSON.parse(line) as Record<string, unknown>));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async ready(): Promise<void> {
    await waitFor(`${this.nodeId} ready`, () => this.lines.some((line) => line.ready === true));
  }

  async command(op: 'enter' | 'leave', room: string, member: string): Promise<Record<string, unknown>> {
    const id = `c${this.nextId++}`;
    this.child.stdin!.write(JSON.stringify({ id, op, room, member }) + '\n');
    await waitFor(`${this.nodeId} ${op}`, () => this.lines.some((line) => line.id === id));
    return this.lines.find((line) => line.id === id)!;
  }

  lost(): LostMember[] {
    return this.lines.flatMap((line) => (line.lost as LostMember[] | undefined) ?? []);
  }

  resynced(): { joined: Seat[]; left: Seat[] }[] {
    return this.lines.flatMap((line) => (line.resynced ? [line.resynced as { joined: Seat[]; left: Seat[] }] : []));
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    if (!processAlive(this.pid)) return;
    process.kill(this.pid, signal);
    if (signal === 'SIGKILL') await this.exited;
  }

  async dispose(): Promise<void> {
    await this.signal('SIGCONT');
    await this.signal('SIGKILL');
  }
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const sortSeats = <T extends Seat>(seats: T[]): T[] => [...seats].sort((a, b) => `${a.room} ${a.member}`.localeCompare(`${b.room} ${b.member}`));
const bare = (seats: Seat[]): Seat[] => sortSeats(seats).map(({ room, member }) => ({ room, member }));

describe('cluster: ClusterPresence', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  const connections: RedisConnection[] = [];
  const children: NodeProcess[] = [];
  const survivors: { presence: ClusterPresence; lost: LostMember[]; resynced: { joined: Seat[]; left: Seat[] }[] }[] = [];

  async function survivor(nodeId: string, onLost?: (lost: LostMember[]) => Promise<void>, timing = { heartbeatTtlMs: TTL_MS, checkIntervalMs: CHECK_MS }) {
    const connection = RedisConnection.open(redis.url, { name: nodeId });
    connections.push(connection);
    await connection.ready();
    const record = { lost: [] as LostMember[], resynced: [] as { joined: Seat[]; left: Seat[] }[], presence: undefined as unknown as ClusterPresence };
    record.presence = await ClusterPresence.start(
      connection,
      nodeId,
      {
        onLost: async (lost) => {
          if (onLost) await onLost(lost);
          record.lost.push(...lost);
        },
        onResynced: (change) => void record.resynced.push(change),
      },
      { namespace: NAMESPACE, ...timing },
    );
    survivors.push(record);
    return record;
  }

  function child(nodeId: string, options: { holdLost?: boolean } = {}): NodeProcess {
    const node = new NodeProcess(redis.url, nodeId, options);
    children.push(node);
    return node;
  }

  beforeEach(async () => {
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const node of children.splice(0)) await node.dispose();
    for (const { presence } of survivors.splice(0)) presence.dispose();
    for (const connection of connections.splice(0)) connection.dispose();
    await redis.dispose();
  });

  it('counts a member once per room however many connections and nodes they have', async () => {
    const a = (await survivor('node-a')).presence;
    const b = (await survivor('node-b')).presence;
    assert.equal(await a.enter('lobby', 'alice'), true, 'the first connection anywhere takes the seat');
    assert.equal(await a.enter('lobby', 'alice'), false, 'a second window on the same node shares it');
    assert.equal(await b.enter('lobby', 'alice'), false, 'so does a connection through another node');
    assert.equal(await b.enter('lobby', 'bob'), true);
    assert.equal(await a.enter('dev', 'alice'), true, 'seats are per room');
    assert.deepEqual((await a.members('lobby')).sort(), ['alice', 'bob']);
    assert.equal(await b.memberCount('lobby'), 2);

    assert.equal(await a.leave('lobby', 'alice'), false);
    assert.equal(await a.leave('lobby', 'alice'), false, 'alice is still in the lobby through node-b');
    assert.equal(await a.leave('lobby', 'alice'), false, 'leaving a seat one does not hold changes nothing');
    assert.deepEqual((await a.members('lobby')).sort(), ['alice', 'bob']);
    assert.equal(await b.leave('lobby', 'alice'), true, 'her last connection anywhere gives the seat up');
    assert.deepEqual(await a.members('lobby'), ['bob']);

    const left = await b.shutdown();
    assert.deepEqual(left, [{ room: 'lobby', member: 'bob' }], 'a node leaving on purpose returns the members whose last seat it held');
    assert.deepEqual(await a.members('lobby'), []);
    assert.deepEqual(await a.members('dev'), ['alice']);
  });

  it('reports the members of a node killed with -9 as lost once, by one survivor, within the TTL', async () => {
    const doomed = child('node-doomed');
    await doomed.ready();
    const a = await survivor('node-a');
    const b = await survivor('node-b');
    for (const [room, member] of [['lobby', 'alice'], ['lobby', 'alice'], ['lobby', 'bob'], ['dev', 'carol'], ['lobby', 'dave']]) {
      assert.ok(!('error' in (await doomed.command('enter', room, member))));
    }
    await b.presence.enter('lobby', 'dave');
    await a.presence.enter('dev', 'erin');
    assert.deepEqual((await a.presence.members('lobby')).sort(), ['alice', 'bob', 'dave']);

    await doomed.signal('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the losses', () => a.lost.length + b.lost.length >= 3, TTL_MS * 5);
    const noticedAfterMs = Date.now() - killedAt;
    // Three more checks: nobody reports anything twice.
    await sleep(CHECK_MS * 3);

    const reported = [...a.lost, ...b.lost];
    assert.deepEqual(bare(reported), [
      { room: 'dev', member: 'carol' },
      { room: 'lobby', member: 'alice' },
      { room: 'lobby', member: 'bob' },
    ], 'each member whose last seat was on the dead node, once; dave still has a seat through node-b');
    assert.ok(a.lost.length === 0 || b.lost.length === 0, 'one survivor reports them all');
    assert.ok(reported.every((lost) => lost.node === 'node-doomed'));
    assert.equal(new Set(reported.map((lost) => lost.dedupKey)).size, 3);
    assert.ok(noticedAfterMs <= TTL_MS + CHECK_MS * 3, `noticed ${noticedAfterMs} ms after the kill (TTL ${TTL_MS} ms, checks every ${CHECK_MS} ms)`);
    assert.deepEqual((await a.presence.members('lobby')).sort(), ['dave']);
    assert.deepEqual((await b.presence.members('dev')).sort(), ['erin']);
    console.log(`      3 members lost, noticed ${noticedAfterMs} ms after kill -9 (TTL ${TTL_MS} ms, check every ${CHECK_MS} ms)`);
  });

  it('hands a loss over with the same de-duplication key when the node announcing it dies too', async () => {
    const first = child('node-first');
    const claimer = child('node-claimer', { holdLost: true });
    await Promise.all([first.ready(), claimer.ready()]);
    await first.command('enter', 'lobby', 'alice');
    await first.command('enter', 'lobby', 'bob');
    await first.signal('SIGKILL');
    await waitFor('the claimer to report the losses', () => claimer.lost().length === 2, TTL_MS * 5);
    // It dies before its left events are stored.
    await claimer.signal('SIGKILL');

    const heir = await survivor('node-heir');
    await waitFor('the heir to report them', () => heir.lost.length === 2, TTL_MS * 5);
    await sleep(CHECK_MS * 3);
    assert.equal(heir.lost.length, 2, 'reported once by the heir');
    assert.deepEqual(
      sortSeats(heir.lost).map((lost) => [lost.member, lost.node, lost.dedupKey]),
      sortSeats(claimer.lost()).map((lost) => [lost.member, lost.node, lost.dedupKey]),
      'the same losses, from the first node, with the same keys: a `left` stored by the claimer would be a duplicate',
    );
  });

  it('puts back the seats of a node that stalled past the TTL, so the room can hear joined again', async () => {
    const stalled = child('node-stalled');
    await stalled.ready();
    const a = await survivor('node-a');
    await stalled.command('enter', 'lobby', 'alice');
    await stalled.signal('SIGSTOP');
    await waitFor('alice lost', () => a.lost.length === 1, TTL_MS * 5);
    assert.deepEqual(await a.presence.members('lobby'), []);
    await stalled.signal('SIGCONT');
    await waitFor('the stalled node to put alice back', () => stalled.resynced().length === 1, TTL_MS * 5);
    assert.deepEqual(stalled.resynced(), [{ joined: [{ room: 'lobby', member: 'alice' }], left: [] }]);
    assert.deepEqual(await a.presence.members('lobby'), ['alice']);
    const bye = await stalled.command('leave', 'lobby', 'alice');
    assert.equal(bye.last, true);
    assert.deepEqual(await a.presence.members('lobby'), []);
  });

  it('writes a departure it could not write while Redis was down once Redis is back', async () => {
    const a = await survivor('node-a');
    await a.presence.enter('lobby', 'alice');
    await a.presence.enter('lobby', 'bob');
    await redis.kill();
    await assert.rejects(a.presence.leave('lobby', 'bob'), /unavailable/);
    await redis.restart();
    await waitFor('the departure written', () => a.resynced.length === 1, TTL_MS * 10);
    assert.deepEqual(a.resynced, [{ joined: [], left: [{ room: 'lobby', member: 'bob' }] }]);
    assert.deepEqual(await a.presence.members('lobby'), ['alice']);
  });

  it('puts every node\'s seats back when Redis comes back empty', async () => {
    const a = await survivor('node-a');
    await a.presence.enter('lobby', 'alice');
    await a.presence.enter('lobby', 'bob');
    await redis.kill();
    await assert.rejects(a.presence.leave('lobby', 'bob'), /unavailable/);
    await redis.restart({ empty: true });
    await waitFor('the seats put back', () => a.resynced.length === 1, TTL_MS * 10);
    assert.deepEqual(a.resynced, [{ joined: [{ room: 'lobby', member: 'alice' }], left: [] }]);
    assert.deepEqual(await a.presence.members('lobby'), ['alice']);
  });

  it('puts its seats back before a change when it finds itself unregistered, and reports them all through onResynced', async () => {
    // Checks far apart, so the change finds out before the heartbeat does.
    const a = await survivor('node-a', undefined, { heartbeatTtlMs: 60_000, checkIntervalMs: 30_000 });
    assert.equal(await a.presence.enter('lobby', 'alice'), true);
    await redis.kill();
    await redis.restart({ empty: true });
    const connection = connections[connections.length - 1];
    await connection.ready(10_000);
    assert.equal(await a.presence.enter('lobby', 'carol'), false, 'not announced by enter…');
    assert.deepEqual(
      a.resynced.map((change) => ({ joined: sortSeats(change.joined), left: change.left })),
      [{ joined: [{ room: 'lobby', member: 'alice' }, { room: 'lobby', member: 'carol' }], left: [] }],
      '…but by onResynced, with the seat put back',
    );
    assert.deepEqual((await a.presence.members('lobby')).sort(), ['alice', 'carol']);
  });
});
