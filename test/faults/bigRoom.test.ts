/**
 * A crowded room: 5,000 members on loopback, then the extension's own
 * ChatClient joins it. The welcome names a bounded number of members beside
 * the full count, so it fits a frame the client reads (MAX_SERVER_FRAME_BYTES)
 * however big the room is; before, a room of about 400 made a welcome the
 * client dropped, and it reconnected forever.
 */
import { strict as assert } from 'node:assert';
import { connect, type Socket } from 'node:net';
import { ChatClient } from '../../extension/client/chatClient';
import { encodeFrame } from '../../shared/framing';
import { MAX_SERVER_FRAME_BYTES, WELCOME_MAX_MEMBERS, type ServerFrame } from '../../shared/protocol';
import { memoryOutboxes } from '../support/memoryStore';
import { TestClient } from '../support/testClient';
import { ServerProcess } from '../support/serverProcess';

const MEMBERS = Number(process.env.BIG_ROOM_MEMBERS ?? 5_000);
const CONNECT_CONCURRENCY = 200;

/** Names as long as people's often are (24 characters), so the crowd's names add up as they would. */
function memberName(index: number): string {
  return `crowd member ${String(index).padStart(11, '0')}`;
}

/** A member's socket, connected but not yet in the room; what it is sent later is read and dropped. */
function connectQuietly(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no connection within 30 s'));
    }, 30_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Says hello on every socket at once, so the server takes the joins in a few
 * turns and each member gets the crowd's arrivals in a few writes, and resolves
 * once every member is welcomed.
 */
function joinAll(sockets: Socket[]): Promise<void> {
  return Promise.all(
    sockets.map(
      (socket, index) =>
        new Promise<void>((resolve, reject) => {
          let welcomed = false;
          let head = '';
          const timer = setTimeout(() => reject(new Error(`${memberName(index)} was not welcomed within 120 s`)), 120_000);
          socket.on('data', (chunk: Buffer) => {
            if (welcomed) return;
            head = (head + chunk.toString('utf8')).slice(-65_536);
            if (head.includes('"type":"welcome"')) {
              welcomed = true;
              clearTimeout(timer);
              resolve();
            } else if (head.includes('"type":"error"')) {
              clearTimeout(timer);
              reject(new Error(`${memberName(index)}: ${head}`));
            }
          });
          socket.on('error', () => undefined);
          socket.write(encodeFrame({ type: 'hello', name: memberName(index), room: 'crowd' }));
        }),
    ),
  ).then(() => undefined);
}

describe('faults: a room of 5,000 members', function () {
  this.timeout(300_000);
  let server: ServerProcess;
  const members: Socket[] = [];
  let chat: ChatClient | undefined;

  before(async () => {
    // Announcing 5,000 arrivals to each other keeps the server busy for seconds (more on a loaded machine);
    // the hello time limit is not what this test is about, so it is out of the way.
    server = await ServerProcess.start({ memory: true, args: ['--hello-timeout-ms', '240000'] });
  });
  after(async () => {
    chat?.dispose();
    for (const member of members.splice(0)) member.destroy();
    await server.dispose();
  });

  it(`is joinable by the extension's ChatClient: the welcome names ${WELCOME_MAX_MEMBERS} members and counts all, within the client's frame limit`, async () => {
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONNECT_CONCURRENCY }, async () => {
        while (next < MEMBERS) {
          next += 1;
          members.push(await connectQuietly(server.port));
        }
      }),
    );
    await joinAll(members);
    const welcomedAt = Date.now();
    // Every arrival is announced to everyone already there: let the server finish those before timing the newcomer.
    const probe = await TestClient.connect(server.port, '127.0.0.1', 30_000);
    probe.send({ type: 'ping' });
    await probe.nextFrame((frame) => frame.type === 'pong', 240_000);
    probe.close();
    console.log(`      ${MEMBERS} members welcomed in ${welcomedAt - started} ms; their arrivals announced to each other ${Date.now() - welcomedAt} ms later`);

    const frames: ServerFrame[] = [];
    const welcomeBytes: number[] = [];
    chat = new ChatClient({ host: '127.0.0.1', port: server.port, name: 'newcomer', room: 'crowd', clientId: 'extension-install', outboxes: memoryOutboxes(), initialBackoffMs: 100 });
    chat.onFrame((frame) => {
      frames.push(frame);
      if (frame.type === 'welcome') welcomeBytes.push(Buffer.byteLength(JSON.stringify(frame)));
    });
    chat.connect();
    const outcome = await chat.firstOutcome();
    assert.equal(outcome.kind, 'welcome', JSON.stringify(outcome).slice(0, 500));
    const welcome = outcome.kind === 'welcome' ? outcome.welcome : undefined;
    assert.ok(welcome);
    assert.equal(welcome.memberCount, MEMBERS + 1);
    assert.equal(welcome.members.length, WELCOME_MAX_MEMBERS);
    assert.equal(welcome.members[0], 'newcomer', 'you first');
    assert.ok(welcomeBytes[0] < MAX_SERVER_FRAME_BYTES, `the welcome has ${welcomeBytes[0]} bytes`);
    console.log(`      the welcome has ${welcomeBytes[0]} bytes for ${welcome.memberCount} members`);

    // The client stays: it says something, gets the ack, and was welcomed once (no reconnect loop).
    const id = chat.say('hello, crowd');
    const deadline = Date.now() + 20_000;
    while (!frames.some((frame) => frame.type === 'ack' && frame.id === id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(frames.some((frame) => frame.type === 'ack' && frame.id === id), 'the message was acked');
    assert.equal(frames.filter((frame) => frame.type === 'welcome').length, 1, 'welcomed once, never dropped');
    assert.equal(chat.state.kind, 'connected');
  });
});
