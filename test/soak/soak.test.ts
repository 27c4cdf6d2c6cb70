/**
 * Soak: 50 of the extension's own ChatClients chat for 10 minutes at the default limits
 * while the server is restarted 3 times (kill -9, SIGTERM, kill -9) and a few
 * clients lose their connections now and then (reset at a proxy in front of
 * the server). At the end every client's
 * transcript must match the stored history, with nothing acked lost and
 * nothing stored twice.
 *
 *   npm run soak                               the full 10 minutes
 *   SOAK_MINUTES=1 npm run soak                a short try
 *   SOAK_CLIENTS=50 SOAK_RESTARTS=3            the other knobs
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomLogFileName } from '../../server/roomLog';
import { checkHistory, sleep } from '../support/historyChecks';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { readRoomLog, ResumingClient, startServerOnPort } from '../support/resumingClient';
import type { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 50);
const RESTARTS = Number(process.env.SOAK_RESTARTS ?? 3);
const ROOM = 'soak-room';
const RESTART_SIGNALS: NodeJS.Signals[] = ['SIGKILL', 'SIGTERM'];

describe(`soak: ${CLIENTS} clients for ${MINUTES} min, server restarted ${RESTARTS} times`, function () {
  this.timeout(0);
  let dataDir: string;
  let server: ServerProcess | undefined;
  let proxy: TcpProxy | undefined;
  const clients: ResumingClient[] = [];

  after(async () => {
    for (const client of clients) client.stop();
    await proxy?.close();
    await server?.dispose();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('every transcript matches the stored history; nothing acked is lost or doubled', async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-soak-'));
    const port = await freeLoopbackPort();
    server = await startServerOnPort(port, { dataDir });
    const link = await TcpProxy.start(() => port);
    proxy = link;
    const startedAt = Date.now();
    const durationMs = MINUTES * 60_000;
    for (let index = 0; index < CLIENTS; index++) {
      // The extension's own backoff: 500 ms at first, doubling up to 30 s.
      const client = new ResumingClient({ port: link.port, name: `soaker${index}`, room: ROOM, clientId: `soak-client-${index}` });
      clients.push(client);
      client.start();
    }
    await Promise.all(clients.map((client) => client.waitUntil(() => client.isWelcomed, 15_000, 'the first welcome')));

    let running = true;
    // Each client says something every 2–5 s, under the default 2/s rate limit.
    const talkers = clients.map(async (client) => {
      while (running) {
        await sleep(2000 + Math.random() * 3000);
        if (running) client.say();
      }
    });
    // Now and then a client loses its connection and resumes.
    let drops = 0;
    const dropper = (async () => {
      while (running) {
        await sleep(5000);
        if (!running) break;
        const connections = [...link.connections];
        if (connections.length === 0) continue;
        link.cut(connections[Math.floor(Math.random() * connections.length)]);
        drops += 1;
      }
    })();

    const restarts: string[] = [];
    for (let restart = 1; restart <= RESTARTS; restart++) {
      await sleep(Math.max(0, startedAt + (durationMs * restart) / (RESTARTS + 1) - Date.now()));
      const signal = RESTART_SIGNALS[(restart - 1) % RESTART_SIGNALS.length];
      await server.stop(signal);
      server = await startServerOnPort(port, { dataDir });
      restarts.push(`${signal} at ${Math.round((Date.now() - startedAt) / 1000)} s`);
    }
    await sleep(Math.max(0, startedAt + durationMs - Date.now()));
    running = false;
    await Promise.all([...talkers, dropper]);
    await Promise.all(clients.map((client) => client.waitUntil(() => client.outbox.length === 0 && client.isWelcomed, 60_000, 'its outbox to drain')));
    await sleep(1000);
    for (const client of clients) client.stop();
    await server.stop('SIGTERM');

    const history = readRoomLog(join(dataDir, roomLogFileName(ROOM)));
    const report = checkHistory(history, clients);
    const lastMessageSeq = Math.max(0, ...history.filter((event) => event.type === 'message').map((event) => event.seq));
    const shown = clients.reduce((sum, client) => sum + client.transcript.length, 0);
    console.log(
      `      ${Math.round((Date.now() - startedAt) / 1000)} s; restarts: ${restarts.join(', ')}; ${drops} client drops; ` +
        `${report.sent} sent, ${report.acked} acked, ${report.storedMessages} stored, ${report.storedEvents} events stored, ${shown} events shown in transcripts; ` +
        `lost acked ${report.lostAcked}, duplicates ${report.duplicates}, vanished ${report.vanished}, misordered ${report.misordered}, ` +
        `seq gaps ${report.seqGaps}, transcript mismatches ${report.transcriptMismatches}`,
    );
    assert.deepEqual(report.problems, []);
    assert.equal(report.storedMessages, report.sent);
    assert.equal(report.acked, report.sent);
    for (const client of clients) {
      assert.equal(client.gaps, 0, `${client.name} saw a gap`);
      assert.equal(client.repeatedEvents, 0, `${client.name} was sent events twice`);
      // With no gaps and no repeats, a transcript is one unbroken run; it must reach the last message stored.
      assert.ok(client.lastSeq >= lastMessageSeq, `${client.name} saw up to seq ${client.lastSeq}, the last message is ${lastMessageSeq}`);
    }
  });
});
