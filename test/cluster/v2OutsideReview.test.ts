/**
 * What an outside review of protocol 2 broke in cluster mode: one person with
 * connections on two nodes. Two real server processes (`dist/server.js
 * --redis`) share a real redis-server; each test failed before its fix (see
 * "An outside review of protocol 2" in docs/reliability.md).
 */
import { strict as assert } from 'node:assert';
import { sleep } from '../support/historyChecks';
import { RedisServer } from '../support/redisServer';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';

const FAST_CLIENTS = ['--rate-burst', '1000', '--rate-per-second', '1000'];
const KEY = 'k'.repeat(43);

describe('cluster: one person on two nodes (an outside review of protocol 2)', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let nodes: ServerProcess[] = [];
  const clients: V2Client[] = [];

  beforeEach(async () => {
    redis = await RedisServer.start();
    nodes = await Promise.all([0, 1].map((i) => ServerProcess.start({ redis: redis.url, args: ['--node-id', `node-${i}`, ...FAST_CLIENTS] })));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(nodes.map((node) => node.dispose()));
    await redis.dispose();
  });

  async function v2(node: ServerProcess, name: string, options: Parameters<typeof V2Client.hello>[2] = {}): Promise<V2Client> {
    const client = await V2Client.hello(node.port, name, options);
    clients.push(client);
    return client;
  }

  it('closes every connection of a released identity, on every node, and the name is the next claimant’s alone', async () => {
    const here = await v2(nodes[0], 'alice', { key: KEY, clientId: 'alice-here' });
    const there = await v2(nodes[1], 'alice', { key: KEY, clientId: 'alice-there' });
    const watcher = await v2(nodes[0], 'walt');
    for (const client of [watcher, here, there]) await client.join('lobby');

    assert.equal((await here.request({ type: 'releaseName' })).type, 'ack');
    const notice = await there.next((frame) => frame.type === 'error', 5_000);
    assert.equal(notice.code, 'name_released', 'the connection on the other node is told');
    await there.waitForClose(5_000);

    const claimant = await v2(nodes[1], 'alice', { clientId: 'someone-else' });
    await claimant.join('lobby');
    await claimant.say('lobby', 'the new alice');
    await watcher.seen((frame) => frame.type === 'message' && frame.text === 'the new alice');
    const fromAlice = watcher.all('message').filter((frame) => frame.from === 'alice');
    assert.deepEqual(
      fromAlice.map((frame) => frame.text),
      ['the new alice'],
      'only the new identity speaks as alice',
    );
  });

  it('parts a room from every connection of the person, on every node', async () => {
    const here = await v2(nodes[0], 'alice', { key: KEY, clientId: 'alice-here' });
    const there = await v2(nodes[1], 'alice', { key: KEY, clientId: 'alice-there' });
    const watcher = await v2(nodes[0], 'walt');
    for (const client of [watcher, here, there]) await client.join('lobby');

    await here.ok({ type: 'part', id: 'leaving', room: 'lobby' });
    const parted = await there.next((frame) => frame.type === 'parted', 5_000);
    assert.equal(parted.room, 'lobby');
    assert.equal(parted.reason, 'quit');
    assert.equal(await there.refused({ type: 'say', room: 'lobby', text: 'still here?' }), 'not_joined');
    await watcher.seen((frame) => frame.type === 'left' && frame.name === 'alice');
    await sleep(300);
    assert.equal(watcher.all('left').filter((frame) => frame.name === 'alice').length, 1, 'the room hears one departure');
    const members = await watcher.ok({ type: 'listMembers', room: 'lobby' });
    assert.deepEqual(members.names, ['walt']);
    // Joining again afterwards, on either node, works as before.
    await there.join('lobby');
    await there.say('lobby', 'back');
  });

  it('tells the person’s connections on the other node where their read marker moved', async () => {
    const here = await v2(nodes[0], 'alice', { key: KEY, clientId: 'alice-here' });
    const there = await v2(nodes[1], 'alice', { key: KEY, clientId: 'alice-there' });
    const bob = await v2(nodes[0], 'bob');
    for (const client of [bob, here, there]) await client.join('Lobby');
    const seq = await bob.say('Lobby', 'read me');
    await here.ok({ type: 'read', room: 'Lobby', seq });
    const marker = await there.next((frame) => frame.type === 'readMarker', 5_000);
    assert.deepEqual({ room: marker.room, seq: marker.seq }, { room: 'Lobby', seq });
    await sleep(300);
    assert.equal(here.all('readMarker').length, 0, 'the connection that moved it is not told');
  });
});
