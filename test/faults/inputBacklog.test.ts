/**
 * Input that arrives faster than the rate limit lets it in. The rate limit
 * promises that reading pauses and TCP pushes back on the sender, so a client
 * that writes as fast as its socket takes bytes costs the server no more than
 * its socket buffers. Here a few clients do just that, over NDJSON (pings) and
 * over the classic port (`yes | nc`), and the server's resident memory is
 * measured before and after: it must not grow with what they wrote.
 *
 * Found by the outside review after issue 8: every time the rate limit's
 * timer resumed a paused socket, the socket read everything buffered (tens of
 * KiB), all of it was decoded and queued, and the queue was served at 2
 * frames a second. Memory grew by about 1 MiB a second per NDJSON client and
 * far more per classic one (a queued 2-byte line costs about 100 bytes); four
 * `yes | nc` users ended the process with "JavaScript heap out of memory"
 * after 156 s at the default limits.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { encodeFrame } from '../../shared/framing';
import type { AckFrame, ErrorFrame } from '../../shared/protocol';
import { sleep } from '../support/historyChecks';
import { processAlive } from '../support/processAlive';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const FLOOD_MS = Number(process.env.INPUT_FLOOD_MS ?? 8_000);
/** What the server may grow by while the flood lasts: its own working set, not what the flooders wrote. */
const GROWTH_BOUND_MIB = 48;

/** Resident set size of a process in MiB, from /proc. */
function residentMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) / 1024;
}

/**
 * Connects, sends `greeting`, then writes `chunk` over and over as fast as the
 * socket takes it (waiting on 'drain'), until `until`. Resolves with the bytes
 * the socket took.
 */
function floodOne(port: number, greeting: Buffer, chunk: Buffer, until: number): Promise<number> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let taken = 0;
    const finish = (): void => {
      clearTimeout(timer);
      taken -= socket.writableLength;
      socket.destroy();
      resolve(taken);
    };
    const timer = setTimeout(finish, until - Date.now());
    socket.on('error', () => undefined);
    // What the server answers (pongs, echoes) is read and dropped, so this is never a slow reader.
    socket.on('data', () => undefined);
    socket.once('close', finish);
    socket.once('connect', () => {
      socket.write(greeting);
      const pump = (): void => {
        while (!socket.destroyed && Date.now() < until) {
          taken += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}

describe('input that arrives faster than the rate limit lets it in', function () {
  this.timeout(FLOOD_MS + 60_000);
  let server: ServerProcess;
  let talker: TestClient;

  beforeEach(async () => {
    server = await ServerProcess.start({ memory: true, classic: true });
    talker = await TestClient.join(server.port, 'talker', { clientId: 'talker-id' });
  });
  afterEach(async () => {
    talker.close();
    await server.dispose();
  });

  /** Runs the flood, then checks the server's growth, that it is alive, and that the talker still gets an ack. */
  async function floodAndMeasure(port: number, flooders: number, greeting: (index: number) => Buffer, chunk: Buffer): Promise<void> {
    await sleep(500);
    const before = residentMiB(server.pid);
    const until = Date.now() + FLOOD_MS;
    const taken = await Promise.all(Array.from({ length: flooders }, (_, index) => floodOne(port, greeting(index), chunk, until)));
    const alive = processAlive(server.pid);
    const after = alive ? residentMiB(server.pid) : NaN;
    const wroteMiB = taken.reduce((sum, bytes) => sum + bytes, 0) / 1024 / 1024;
    console.log(`      ${flooders} flooders for ${FLOOD_MS} ms: the sockets took ${wroteMiB.toFixed(1)} MiB; server RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
    assert.ok(alive, `the server process ended during the flood:\n${server.log.slice(-2000)}`);
    assert.ok(
      after - before < GROWTH_BOUND_MIB,
      `the server grew by ${(after - before).toFixed(0)} MiB while ${flooders} clients wrote ${wroteMiB.toFixed(1)} MiB it could not yet act on: ` +
        'paused input is being read and queued instead of being left to TCP',
    );
    talker.send({ type: 'say', id: 'after-flood', text: 'still here' });
    const reply = await talker.nextFrame<AckFrame | ErrorFrame>((frame) => (frame.type === 'ack' || frame.type === 'error') && frame.id === 'after-flood', 10_000);
    assert.equal(reply.type, 'ack');
  }

  it(`keeps 16 NDJSON clients writing pings as fast as TCP takes them for ${FLOOD_MS} ms from growing the server by ${GROWTH_BOUND_MIB} MiB`, async () => {
    const pings = Buffer.from('{"type":"ping"}\n'.repeat(4096));
    await floodAndMeasure(server.port, 16, (index) => encodeFrame({ type: 'hello', name: `pinger ${index}`, room: 'flood' }), pings);
  });

  it(`keeps 4 classic users piping \`yes\` into nc for ${FLOOD_MS} ms from growing the server by ${GROWTH_BOUND_MIB} MiB`, async () => {
    const yes = Buffer.from('y\n'.repeat(32_768));
    await floodAndMeasure(server.classicPort as number, 4, (index) => Buffer.from(`yes${index}\n`), yes);
  });
});
