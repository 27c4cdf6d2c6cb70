/**
 * What an asynchronous Redis failover does to acknowledged events, with a real
 * primary and replica: without `replicas`, events acked while the replica
 * lagged are gone after it is promoted (and their seqs are given again); with
 * `replicas: { count: 1 }`, a publish is acked only once the replica has it,
 * so the promoted replica holds every acked event.
 */
import { strict as assert } from 'node:assert';
import { RedisConnection, RedisUnavailableError } from '../../server/cluster/redisConnection';
import { RedisRoomLog, type RedisRoomLogOptions } from '../../server/cluster/redisRoomLog';
import { sleep } from '../support/historyChecks';
import { RedisServer } from '../support/redisServer';
import { TcpProxy } from '../support/tcpProxy';

describe('cluster: RedisRoomLog across a failover to a replica', function () {
  this.timeout(60_000);
  let primary: RedisServer;
  let replica: RedisServer;
  /** The replication link runs through it, so a test can partition the replica from its primary. */
  let link: TcpProxy;
  const connections: RedisConnection[] = [];

  async function connect(server: RedisServer, name: string): Promise<RedisConnection> {
    const connection = RedisConnection.open(server.url, { name, commandTimeoutMs: 3_000 });
    connections.push(connection);
    await connection.ready(10_000);
    return connection;
  }

  async function replicaInSync(): Promise<void> {
    const probe = await connect(replica, 'probe');
    for (let attempt = 0; attempt < 200; attempt++) {
      const info = await probe.run((client) => client.info('replication'));
      if (/master_link_status:up/.test(info)) return;
      await sleep(50);
    }
    throw new Error('the replica did not connect to its primary');
  }

  /** Acks what it can while the replica is frozen, then the primary dies and the replica takes over. */
  async function failoverWhileReplicaLags(options: RedisRoomLogOptions): Promise<{ acked: number[]; refused: number; survivors: number[]; nextSeq: number }> {
    const primaryConnection = await connect(primary, 'node-a');
    const log = new RedisRoomLog(primaryConnection, options);
    for (let i = 0; i < 5; i++) {
      // Under load a replica can miss a short WAIT; the retry (same key) is stored once and waits again.
      for (let attempt = 1; ; attempt++) {
        try {
          await log.publish('lobby', { type: 'message', text: `before ${i}` }, `m${i}`);
          break;
        } catch (error) {
          if (attempt >= 10) throw error;
        }
      }
    }
    const confirmed = await primaryConnection.run((client) => client.wait(1, 10_000));
    assert.equal(confirmed, 1, 'the replica has the first five');
    // A network partition: the replica gets nothing more, and what is in flight never arrives.
    const [replication] = [...link.connections];
    link.stall(replication);
    const acked: number[] = [];
    let refused = 0;
    for (let i = 5; i < 10; i++) {
      try {
        acked.push((await log.publish('lobby', { type: 'message', text: `while lagging ${i}` }, `m${i}`)).seq);
      } catch (error) {
        assert.ok(error instanceof RedisUnavailableError, String(error));
        assert.match(error.message, /replicas confirmed/);
        refused++;
      }
    }
    await primary.kill();
    link.refusing = true;
    link.cutAll();
    const promoted = await connect(replica, 'admin');
    await promoted.run((client) => client.sendCommand(['REPLICAOF', 'NO', 'ONE']));
    const reader = new RedisRoomLog(promoted);
    const { events } = await reader.readAfter('lobby', 0, 100);
    const next = await reader.publish('lobby', { type: 'message', text: 'after the failover' });
    return { acked, refused, survivors: events.map((event) => event.seq), nextSeq: next.seq };
  }

  beforeEach(async () => {
    // Redis waits 5 s by default for more replicas before a full sync; one is all there is.
    primary = await RedisServer.start({ config: { 'repl-diskless-sync-delay': '0' } });
    link = await TcpProxy.start(() => primary.port);
    replica = await RedisServer.start({ config: { replicaof: `127.0.0.1 ${link.port}` } });
    await replicaInSync();
  });

  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.dispose();
    await link.close();
    await replica.dispose();
    await primary.dispose();
  });

  it('loses events acked while the replica lagged, and gives their seqs again, when it does not wait for replicas (the documented risk)', async () => {
    const { acked, refused, survivors, nextSeq } = await failoverWhileReplicaLags({});
    assert.deepEqual(acked, [6, 7, 8, 9, 10], 'acked by the primary alone');
    assert.equal(refused, 0);
    assert.deepEqual(survivors, [1, 2, 3, 4, 5], 'the promoted replica never got them');
    assert.equal(nextSeq, 6, 'seq 6 is given again, in the same epoch: a follower reports this as a rewind');
  });

  it('acks only what a replica confirmed when it waits for one, so the promoted replica holds every acked event', async () => {
    const { acked, refused, survivors } = await failoverWhileReplicaLags({ replicas: { count: 1, timeoutMs: 500 } });
    assert.deepEqual(acked, [], 'nothing is acked while the replica cannot confirm');
    assert.equal(refused, 5, 'the publishes fail with a clear error instead (the client retries with the same id)');
    assert.deepEqual(survivors, [1, 2, 3, 4, 5], 'every acked event is on the promoted replica');
  });
});
