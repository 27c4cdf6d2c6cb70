/**
 * A flood of new rooms against a server with few file descriptors (`ulimit -n`
 * in the shell that starts it): rooms that cannot be opened are refused one
 * by one with room_unavailable, the server stays up, a member who was
 * already talking keeps talking, and nothing acknowledged is lost. Rooms
 * emptied by the flood are unloaded, and their descriptors come back. With
 * the per-address limit in force, the flood is turned away before it gets
 * that far.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, LineSplitter } from '../../shared/framing';
import type { AckFrame, ErrorFrame, MessageEvent } from '../../shared/protocol';
import { roomLogFileName } from '../../server/roomLog';
import { sleep } from '../support/historyChecks';
import { readRoomLog } from '../support/resumingClient';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const FILE_LIMIT = 256;
const FLOOD_ROOMS = 400;
const FLOOD_CONCURRENCY = 16;

type FloodOutcome = 'welcome' | 'room_unavailable' | 'too_many_rooms' | 'cut' | string;

/** One flooder: connects, asks for a room nobody has used, and reports how that ended. */
function floodOnce(port: number, room: string): Promise<FloodOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const lines = new LineSplitter(1 << 20);
    const done = (outcome: FloodOutcome): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done('timeout'), 10_000);
    socket.on('connect', () => socket.write(encodeFrame({ type: 'hello', name: 'flooder', room })));
    socket.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        if (line.kind !== 'line' || line.bytes.length === 0) continue;
        const frame = JSON.parse(line.bytes.toString('utf8')) as { type: string; code?: string };
        if (frame.type === 'welcome') return done('welcome');
        if (frame.type === 'error') return done(frame.code ?? 'error');
      }
    });
    // Out of descriptors, the server cannot even accept some connections: they are cut at once.
    socket.on('error', () => done('cut'));
    socket.on('close', () => done('cut'));
  });
}

async function flood(port: number, prefix: string): Promise<Map<FloodOutcome, number>> {
  const outcomes = new Map<FloodOutcome, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: FLOOD_CONCURRENCY }, async () => {
      while (next < FLOOD_ROOMS) {
        const outcome = await floodOnce(port, `${prefix}-${next++}`);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }),
  );
  return outcomes;
}

/** A member who talks all through the flood: one message every 20 ms, each awaited until acked. */
async function keepTalking(talker: TestClient, until: () => boolean): Promise<string[]> {
  const acked: string[] = [];
  for (let index = 0; !until() && index < 5_000; index++) {
    const id = `steady-${index}`;
    talker.send({ type: 'say', id, text: `still talking ${index}` });
    const reply = await talker.nextFrame<AckFrame | ErrorFrame>((frame) => (frame.type === 'ack' || frame.type === 'error') && frame.id === id, 10_000);
    assert.equal(reply.type, 'ack', `the talker's message was refused during the flood: ${JSON.stringify(reply)}`);
    acked.push(id);
    await sleep(20);
  }
  return acked;
}

describe('faults: a flood of new rooms under a low file limit', function () {
  this.timeout(120_000);
  let dataDir: string;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-flood-'));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`refuses rooms it cannot open, stays up, keeps a talking member talking and loses nothing acked (ulimit -n ${FILE_LIMIT}, ${FLOOD_ROOMS} rooms)`, async () => {
    const server = await ServerProcess.start({ dataDir, fileLimit: FILE_LIMIT, args: ['--rate-burst', '1000', '--rate-per-second', '1000'] });
    servers.push(server);
    const talker = await TestClient.join(server.port, 'talker', { room: 'steady', clientId: 'talker-id' });
    const listener = await TestClient.join(server.port, 'listener', { room: 'steady' });
    clients.push(talker, listener);

    let flooding = true;
    const talking = keepTalking(talker, () => !flooding);
    const outcomes = await flood(server.port, 'flood');
    flooding = false;
    const acked = await talking;
    console.log(`      flood outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; the talker had ${acked.length} messages acked meanwhile`);

    assert.equal(server.exitCode, undefined, `the server exited:\n${server.log.slice(-2000)}`);
    assert.ok((outcomes.get('room_unavailable') ?? 0) > 0, 'the file limit was reached, and rooms past it were refused');
    assert.ok(acked.length > 0);
    assert.match(server.log, /could not be loaded/);
    const heard = listener.frames().filter((frame): frame is MessageEvent => frame.type === 'message' && frame.from === 'talker');
    assert.equal(heard.length, acked.length, 'the other member heard every message');

    await server.stop('SIGTERM');
    const stored = readRoomLog(join(dataDir, roomLogFileName('steady'))).filter((event) => event.type === 'message');
    for (const id of acked) assert.equal(stored.filter((event) => event.type === 'message' && event.id === id).length, 1, `${id} is stored exactly once`);
  });

  it('unloads the rooms the flood left empty, so their file descriptors come back and new rooms open again', async () => {
    const server = await ServerProcess.start({ dataDir, fileLimit: FILE_LIMIT, args: ['--room-idle-ms', '1000'] });
    servers.push(server);
    const outcomes = await flood(server.port, 'flood');
    assert.ok((outcomes.get('room_unavailable') ?? 0) + (outcomes.get('cut') ?? 0) > 0, `the file limit was reached: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    await sleep(2_500);
    const newcomer = await TestClient.connect(server.port);
    clients.push(newcomer);
    newcomer.send({ type: 'hello', name: 'newcomer', room: 'after-the-flood' });
    const reply = await newcomer.nextFrame((frame) => frame.type === 'welcome' || frame.type === 'error');
    assert.equal(reply.type, 'welcome', `a new room opens once the flood's rooms are unloaded: ${JSON.stringify(reply)}`);
  });

  it('turns the flood away with too_many_rooms once an address has loaded --new-rooms-per-minute rooms, before the file limit is near', async () => {
    const server = await ServerProcess.start({ dataDir, fileLimit: FILE_LIMIT, args: ['--new-rooms-per-minute', '50', '--limit-loopback', '--new-connections-per-minute', '0'] });
    servers.push(server);
    const outcomes = await flood(server.port, 'limited');
    console.log(`      flood outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.equal(outcomes.get('welcome'), 50);
    assert.equal(outcomes.get('too_many_rooms'), FLOOD_ROOMS - 50);
    assert.equal(outcomes.get('room_unavailable') ?? 0, 0);
    assert.equal(server.exitCode, undefined);
  });
});
