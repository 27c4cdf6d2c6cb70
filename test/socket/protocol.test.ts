/** Wire protocol v1 over real TCP against a real server process: every frame type and every rule. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { AckFrame, ErrorFrame, LeftEvent, MessageEvent, WelcomeFrame } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

describe('wire protocol over TCP', function () {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  async function join(name: string, extra: Parameters<typeof TestClient.join>[2] = {}): Promise<TestClient> {
    const client = await TestClient.join(server.port, name, extra);
    clients.push(client);
    return client;
  }
  async function connect(): Promise<TestClient> {
    const client = await TestClient.connect(server.port);
    clients.push(client);
    return client;
  }

  before(async () => {
    server = await ServerProcess.start({ memory: true });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await server.dispose();
  });

  it('welcomes a hello with the room, the members and the latest seq, in the lobby by default', async () => {
    const alice = await connect();
    alice.send({ type: 'hello', name: 'alice-w', clientId: 'c-alice-w' });
    const welcome = await alice.nextFrame<WelcomeFrame>((f) => f.type === 'welcome');
    assert.equal(welcome.you, 'alice-w');
    assert.equal(welcome.room, 'lobby');
    assert.ok(welcome.members.includes('alice-w'));
    assert.equal(typeof welcome.seq, 'number');
    const joined = await alice.nextFrame((f) => f.type === 'joined');
    assert.equal(joined.type === 'joined' && joined.name, 'alice-w');
    assert.ok(joined.type === 'joined' && joined.seq > welcome.seq, 'the join event comes after the welcome seq');
  });

  it('delivers a say to every member, the sender included, then acks it with the same seq', async () => {
    const alice = await join('alice-s', { room: 'say-room' });
    const bob = await join('bob-s', { room: 'say-room' });
    alice.send({ type: 'say', id: 'm-1', text: 'hello *bob*' });
    const atBob = await bob.nextFrame<MessageEvent>((f) => f.type === 'message');
    const atAlice = await alice.nextFrame<MessageEvent>((f) => f.type === 'message');
    const ack = await alice.nextFrame<AckFrame>((f) => f.type === 'ack');
    assert.equal(atBob.from, 'alice-s');
    assert.equal(atBob.text, 'hello *bob*');
    assert.equal(atBob.room, 'say-room');
    assert.equal(atBob.id, 'm-1');
    assert.equal(atAlice.seq, atBob.seq);
    assert.deepEqual(ack, { type: 'ack', id: 'm-1', seq: atBob.seq });
    assert.ok(Math.abs(atBob.ts - Date.now()) < 60_000);
  });

  it('answers ping with pong', async () => {
    const client = await connect();
    client.send({ type: 'ping' });
    assert.deepEqual(await client.nextFrame(), { type: 'pong' });
  });

  it('announces a bye as left/quit and closes the connection', async () => {
    const alice = await join('alice-b', { room: 'bye-room' });
    const bob = await join('bob-b', { room: 'bye-room' });
    bob.send({ type: 'bye' });
    const left = await alice.nextFrame<LeftEvent>((f) => f.type === 'left');
    assert.equal(left.name, 'bob-b');
    assert.equal(left.reason, 'quit');
    await bob.waitForClose();
  });

  it('announces a client process killed without bye as left/lost', async () => {
    const alice = await join('alice-k', { room: 'kill-room' });
    const script = `const s=require('net').connect(${server.port},'127.0.0.1',()=>s.write(JSON.stringify({type:'hello',name:'doomed',room:'kill-room'})+'\\n'));s.on('data',d=>{if(String(d).includes('welcome'))console.log('joined')});setTimeout(()=>{},60000)`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('child client did not join')), 5000);
        child.stdout!.on('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      await alice.nextFrame((f) => f.type === 'joined' && f.name === 'doomed');
      child.kill('SIGKILL');
      const left = await alice.nextFrame<LeftEvent>((f) => f.type === 'left');
      assert.equal(left.name, 'doomed');
      assert.equal(left.reason, 'lost');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps rooms apart: members and messages of one room are not seen in another', async () => {
    const red = await join('red-1', { room: 'red' });
    const blue = await join('blue-1', { room: 'blue' });
    red.send({ type: 'say', id: 'r1', text: 'only red' });
    await red.nextFrame((f) => f.type === 'ack');
    blue.send({ type: 'ping' });
    await blue.nextFrame((f) => f.type === 'pong');
    assert.ok(!blue.frames().some((f) => f.type === 'message'), 'blue saw a red message');
    const welcome = blue.frames().find((f): f is WelcomeFrame => f.type === 'welcome');
    assert.deepEqual(welcome?.members, ['blue-1']);
  });

  describe('names', () => {
    const refused: [string, string][] = [
      ['', 'empty'],
      ['x'.repeat(33), '33 characters'],
      [' alice', 'leading space'],
      ['alice ', 'trailing space'],
      ['al\u0007ice', 'a control character'],
      ['al\u202Eice', 'a bidi override'],
      ['server', 'reserved'],
      ['System', 'reserved, other case'],
    ];
    for (const [name, why] of refused) {
      it(`refuses a name with ${why} as bad_name, and the connection may try again`, async () => {
        const client = await connect();
        client.send({ type: 'hello', name, room: 'names' });
        const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
        assert.equal(error.code, 'bad_name');
        assert.ok(error.message.length > 0);
        client.send({ type: 'hello', name: `ok-${why.length}-${Math.random().toString(36).slice(2, 8)}`, room: 'names' });
        await client.nextFrame((f) => f.type === 'welcome');
      });
    }

    it('accepts a name of exactly 32 characters, and one of 32 non-ASCII characters', async () => {
      await join('n'.repeat(32), { room: 'names-32' });
      await join('é'.repeat(32), { room: 'names-32' });
    });

    it('refuses a name already taken, compared without case and after normalisation', async () => {
      await join('Zoë', { room: 'unique' });
      for (const variant of ['zoë', 'ZOË', 'Zoe\u0308']) {
        const client = await connect();
        client.send({ type: 'hello', name: variant, room: 'unique' });
        const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
        assert.equal(error.code, 'name_taken', variant);
      }
      await join('ｆｕｌｌ', { room: 'unique' });
      const narrow = await connect();
      narrow.send({ type: 'hello', name: 'full', room: 'unique' });
      assert.equal((await narrow.nextFrame<ErrorFrame>((f) => f.type === 'error')).code, 'name_taken');
    });

    it('lets the same name into another room', async () => {
      await join('twin', { room: 'room-a' });
      await join('twin', { room: 'room-b' });
    });
  });

  it('refuses a second hello with already_joined', async () => {
    const client = await join('once', { room: 'hello-twice' });
    client.send({ type: 'hello', name: 'twice', room: 'hello-twice' });
    const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
    assert.equal(error.code, 'already_joined');
  });

  it('refuses a say before hello with not_joined', async () => {
    const client = await connect();
    client.send({ type: 'say', id: 'early', text: 'too soon' });
    const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
    assert.equal(error.code, 'not_joined');
    assert.equal(error.id, 'early');
  });

  it('refuses an empty message and keeps the connection', async () => {
    const client = await join('blank', { room: 'blank' });
    client.send({ type: 'say', id: 'b1', text: '   ' });
    assert.equal((await client.nextFrame<ErrorFrame>((f) => f.type === 'error')).code, 'bad_frame');
    client.send({ type: 'say', id: 'b2', text: 'not blank' });
    await client.nextFrame((f) => f.type === 'ack' && f.id === 'b2');
  });

  describe('bad input gets an error, and the connection and everyone else keep working', () => {
    const badFrames: [string, string | Buffer][] = [
      ['invalid JSON', '{"type":"say",\n'],
      ['invalid UTF-8', Buffer.concat([Buffer.from('{"type":"ping","x":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}\n')])],
      ['an unknown type', '{"type":"launch-missiles"}\n'],
      ['a missing field', '{"type":"say","id":"x"}\n'],
      ['a field of the wrong type', '{"type":"say","id":"x","text":42}\n'],
      ['a __proto__ key', '{"type":"ping","__proto__":{"polluted":true}}\n'],
      ['a deeply nested object', '{"type":"ping","x":' + '['.repeat(5000) + ']'.repeat(5000) + '}\n'],
      ['a JSON array', '[1,2,3]\n'],
      ['a bare string', '"hello"\n'],
      ['no type at all', '{"name":"x"}\n'],
    ];
    for (const [what, bytes] of badFrames) {
      it(`answers ${what} with bad_frame`, async () => {
        const bystander = await join(`bystander-${what.length}`, { room: 'bad-input' });
        const client = await join(`sender-${what.length}`, { room: 'bad-input' });
        client.write(bytes);
        const error = await client.nextFrame<ErrorFrame>((f) => f.type === 'error');
        assert.equal(error.code, 'bad_frame');
        assert.ok(error.message.length > 0);
        client.send({ type: 'say', id: 'after', text: 'still here' });
        await client.nextFrame((f) => f.type === 'ack' && f.id === 'after');
        const seen = await bystander.nextFrame<MessageEvent>((f) => f.type === 'message');
        assert.equal(seen.text, 'still here');
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
      });
    }
  });
});
