/**
 * Cluster mode end to end: three real server processes (`dist/server.js
 * --redis`) sharing rooms through a real redis-server, real TCP clients on
 * each, every process stopped by its PID.
 */
import { strict as assert } from 'node:assert';
import { sleep } from '../support/historyChecks';
import { RedisServer } from '../support/redisServer';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { V2Client } from '../support/v2Client';

const FULL = process.env.CLUSTER_FULL === '1';
const NODE_TTL_MS = 1_000;

async function startNodes(redis: RedisServer, count: number, extra: string[] = []): Promise<ServerProcess[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => ServerProcess.start({ redis: redis.url, classic: true, args: ['--node-id', `node-${i}-${process.pid}`, '--node-ttl-ms', String(NODE_TTL_MS), ...extra] })));
}

describe('cluster: servers sharing rooms through Redis', function () {
  this.timeout(FULL ? 300_000 : 60_000);
  let redis: RedisServer;
  let nodes: ServerProcess[] = [];
  const clients: { close(): void }[] = [];

  beforeEach(async () => {
    redis = await RedisServer.start();
    nodes = await startNodes(redis, 3);
  });

  afterEach(async function () {
    for (const client of clients.splice(0)) client.close();
    if (this.currentTest?.state === 'failed') for (const node of nodes) process.stderr.write(`--- node ${node.pid}\n${node.log.slice(-3000)}\n`);
    await Promise.all(nodes.map((node) => node.dispose()));
    await redis.dispose();
  });

  it('puts a v1 client, a v2 client and a classic client on different nodes in one room', async () => {
    const v1 = await TestClient.join(nodes[0].port, 'ada', { room: 'lobby' });
    clients.push(v1);
    const v2 = await V2Client.hello(nodes[1].port, 'bob');
    clients.push(v2);
    await v2.join('lobby');
    const classic = await TestClient.connect(nodes[2].classicPort as number);
    clients.push(classic);
    classic.write('cy\n');
    await classic.nextLine((line) => line.startsWith('Welcome cy'));
    await v1.nextFrame((frame) => frame.type === 'joined' && frame.name === 'cy');
    v1.send({ type: 'say', id: 'm1', text: 'hello from v1' });
    const ack = await v1.nextFrame((frame) => frame.type === 'ack');
    await v2.seen((frame) => frame.type === 'message' && frame.text === 'hello from v1' && frame.seq === (ack as { seq: number }).seq);
    await classic.nextLine((line) => line.includes('hello from v1'));
    const seq = await v2.say('lobby', 'hello from v2');
    await v1.nextFrame((frame) => frame.type === 'message' && frame.text === 'hello from v2' && frame.seq === seq);
    classic.write('hello from classic\n');
    await v1.nextFrame((frame) => frame.type === 'message' && frame.text === 'hello from classic');
    await v2.seen((frame) => frame.type === 'message' && frame.text === 'hello from classic');
    const members = (await v2.join('lobby')).members as string[] | undefined;
    assert.ok(members === undefined || members.includes('ada'), JSON.stringify(members));
    await sleep(10);
  });
});
