/**
 * Network trouble through a loopback proxy: connections reset under clients and
 * connections that go silent (stalled). A cut client must be announced as
 * `lost`, and when it comes back with lastSeq it must get every event it
 * missed, once, with no gaps.
 *
 * FAULT_CUTS sets how many reset rounds run (default 10).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LeftEvent } from '../../shared/protocol';
import { roomLogFileName } from '../../server/roomLog';
import { checkHistory, sleep } from '../support/historyChecks';
import { readRoomLog, ResumingClient } from '../support/resumingClient';
import { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';

const CUTS = Number(process.env.FAULT_CUTS ?? 10);
const ROOM = 'network-room';

function lostAnnouncements(observer: ResumingClient, name: string): LeftEvent[] {
  return observer.transcript.filter((event): event is LeftEvent => event.type === 'left' && event.name === name && event.reason === 'lost');
}

describe('faults: network trouble through a proxy', function () {
  this.timeout(60_000 + CUTS * 3_000);
  let dataDir: string;
  let server: ServerProcess;
  let proxy: TcpProxy;
  const clients: ResumingClient[] = [];

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-network-'));
    // A short idle ping lets the server notice stalled peers within a second.
    server = await ServerProcess.start({
      dataDir,
      args: ['--idle-ping-ms', '300', '--idle-close-ms', '300', '--rate-burst', '200', '--rate-per-second', '200', '--max-pending-write-bytes', '65536'],
    });
    proxy = await TcpProxy.start(() => server.port);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.stop();
    await proxy.close();
    await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function client(name: string, through: 'proxy' | 'direct'): ResumingClient {
    const made = new ResumingClient({
      port: through === 'proxy' ? proxy.port : server.port,
      name,
      room: ROOM,
      clientId: `${name}-client`,
      // Capped well under the waits below, so a cut client is back within a second.
      initialBackoffMs: 300,
      maxBackoffMs: 1000,
    });
    clients.push(made);
    made.start();
    return made;
  }

  async function finishAndCheck(all: ResumingClient[]): Promise<void> {
    await Promise.all(all.map((each) => each.waitUntil(() => each.outbox.length === 0 && each.isWelcomed, 15_000, 'its outbox to drain')));
    await sleep(300);
    for (const each of all) each.stop();
    await server.stop('SIGTERM');
    const report = checkHistory(readRoomLog(join(dataDir, roomLogFileName(ROOM))), all);
    assert.deepEqual(report.problems, []);
    assert.equal(report.storedMessages, report.sent);
    for (const each of all) {
      assert.equal(each.repeatedEvents, 0, `${each.name} was sent events it had already seen`);
      assert.equal(each.gaps, 0, `${each.name} missed events`);
    }
    console.log(`      ${report.sent} messages sent, ${report.storedMessages} stored once each, 0 gaps, 0 repeats`);
  }

  it(`announces reset clients as lost and resumes them without gaps or repeats (${CUTS} rounds)`, async () => {
    const observer = client('observer', 'direct');
    const travellers = [client('traveller1', 'proxy'), client('traveller2', 'proxy'), client('traveller3', 'proxy')];
    const all = [observer, ...travellers];
    await Promise.all(all.map((each) => each.waitUntil(() => each.isWelcomed, 5000, 'a welcome')));
    for (let round = 1; round <= CUTS; round++) {
      for (const each of all) each.say();
      await sleep(100);
      assert.equal(proxy.cutAll(), travellers.length);
      // While they are away, the room moves on; they must catch up on return.
      for (let index = 0; index < 5; index++) observer.say();
      for (const traveller of travellers) traveller.say();
      await Promise.all(travellers.map((traveller) => observer.waitUntil(() => lostAnnouncements(observer, traveller.name).length >= round, 5000, `${traveller.name} announced as lost`)));
      await Promise.all(travellers.map((traveller) => traveller.waitUntil(() => traveller.isWelcomed && traveller.outbox.length === 0, 5000, 'resuming')));
    }
    await finishAndCheck(all);
  });

  it('notices a stalled connection by its idle ping, announces it as lost, and resumes it', async () => {
    const observer = client('observer', 'direct');
    const staller = client('staller', 'proxy');
    await Promise.all([observer, staller].map((each) => each.waitUntil(() => each.isWelcomed, 5000, 'a welcome')));
    staller.say();
    await staller.waitUntil(() => staller.outbox.length === 0, 5000, 'its first ack');
    const [pair] = proxy.connections;
    proxy.stall(pair);
    const stalledAt = Date.now();
    staller.say('sent into the stall');
    for (let index = 0; index < 5; index++) observer.say();
    await observer.waitUntil(() => lostAnnouncements(observer, 'staller').length === 1, 5000, 'the staller announced as lost');
    const noticedAfterMs = Date.now() - stalledAt;
    assert.ok(noticedAfterMs >= 300, `noticed after ${noticedAfterMs} ms, not before the idle ping could go unanswered`);
    // The link comes back as a fresh connection (the old one is dead); the client resumes with lastSeq.
    proxy.cut(pair);
    await staller.waitUntil(() => staller.isWelcomed && staller.outbox.length === 0, 5000, 'resuming after the stall');
    console.log(`      the stall was noticed after ${noticedAfterMs} ms`);
    await finishAndCheck([observer, staller]);
  });

  // A replay bigger than --max-pending-write-bytes once tripped the slow-reader
  // rule on every attempt (see docs/reliability.md); the server now paces it.
  it('resumes a client that missed more history than --max-pending-write-bytes', async () => {
    const observer = client('observer', 'direct');
    const sleeper = client('sleeper', 'proxy');
    await sleeper.waitUntil(() => sleeper.transcript.some((event) => event.type === 'joined' && event.name === 'sleeper'), 5000, 'its own join');
    await observer.waitUntil(() => observer.isWelcomed, 5000, 'a welcome');
    // The link goes down and stays down: the sleeper keeps retrying, with backoff, until it returns.
    proxy.refusing = true;
    assert.equal(proxy.cutAll(), 1);
    // About 100 KB of messages while it is away, against a 64 KiB limit.
    // Sent in small batches, so the observer's own echoes never pile up past the limit.
    for (let batch = 0; batch < 20; batch++) {
      for (let index = 0; index < 20; index++) observer.say('z'.repeat(250));
      await observer.waitUntil(() => observer.outbox.length === 0, 5000, 'the batch acked');
    }
    assert.ok(!sleeper.isWelcomed, 'the sleeper stayed away');
    const welcomesBefore = sleeper.welcomes;
    proxy.refusing = false;
    sleeper.reconnectNow();
    await sleeper.waitUntil(() => sleeper.welcomes > welcomesBefore && sleeper.lastSeq >= observer.lastSeq, 5000, 'the whole replay');
    await finishAndCheck([observer, sleeper]);
  });
});
