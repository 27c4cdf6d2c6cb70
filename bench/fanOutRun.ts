/**
 * One run of the fan-out load: every client of the `load` group sends on a
 * schedule, every member counts and times what it receives, and the server's
 * CPU is read from /proc before and after.
 */
import { LatencyHistogram } from './latencyHistogram';
import { countCores, type LoadWorkers, sleep } from './loadWorkers';
import { cpuMicros, type RunningServer, type SystemUnderTest } from './systemsUnderTest';
import { monotonicMicros } from './workerMessages';

export interface FanOutSettings {
  sendIntervalMs: number;
  textPadding: number;
  /** Longest a delivery may still be in flight after the senders stop before it counts as lost. */
  drainMs: number;
}

export interface LoadRun {
  offeredPerSecond: number;
  achievedPerSecond: number;
  sent: number;
  expected: number;
  received: number;
  acks: number;
  lossFraction: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpuMicrosPerDelivery: number;
  /** Average cores busy over the run, server and load generator: on 2 cores, their sum near 2 means the machine was saturated. */
  serverCoresUsed: number;
  generatorCoresUsed: number;
  /** Cores busy with anything else on the machine (other people's builds and tests share these 2 cores). */
  otherCoresUsed: number;
  errors: number;
  firstError?: string;
}

/**
 * Runs the load for `durationMs`, starting at `startMicros` (a moment ahead,
 * so every worker has the command before the first send is due). `members`
 * is everyone in the room who receives each message (the senders and any
 * other member, such as searchers).
 */
export async function loadRun(
  workers: LoadWorkers,
  server: RunningServer,
  system: SystemUnderTest,
  senders: number,
  members: number,
  run: number,
  durationMs: number,
  settings: FanOutSettings,
  startMicros = monotonicMicros() + 300_000,
): Promise<LoadRun> {
  const deliveriesPerMessage = system.senderReceivesOwnMessage ? members : members - 1;
  const cpuBefore = cpuMicros(server.pid);
  const cores = countCores(workers, () => server.pid);
  const sentReplies = await workers.askAll(
    (worker) => ({
      cmd: 'load',
      run,
      startMicros,
      durationMs,
      sendIntervalMs: settings.sendIntervalMs,
      textPadding: settings.textPadding,
      workerIndex: worker,
      workerCount: workers.count,
      totalClients: senders,
    }),
    'sent',
    durationMs + 15_000,
  );
  const sent = sentReplies.reduce((sum, reply) => sum + reply.sent, 0);
  const expected = sent * deliveriesPerMessage;
  // Wait for the deliveries still in flight, but no longer than drainMs: what has not arrived by then is lost.
  const drainUntil = Date.now() + settings.drainMs;
  while (Date.now() < drainUntil) {
    const counts = await workers.askAll(() => ({ cmd: 'counts', run }), 'counts', 5_000);
    if (counts.reduce((sum, reply) => sum + reply.received, 0) >= expected) break;
    await sleep(100);
  }
  const cpuAfter = cpuMicros(server.pid);
  const used = cores();
  const reports = await workers.askAll(() => ({ cmd: 'report', run }), 'report', 10_000);
  const histogram = new LatencyHistogram();
  for (const report of reports) histogram.add(report.histogram);
  const received = reports.reduce((sum, report) => sum + report.received, 0);
  const lastReceivedMicros = Math.max(...reports.map((report) => report.lastReceivedMicros));
  const receiveSeconds = Math.max(durationMs / 1000, (lastReceivedMicros - startMicros) / 1e6);
  return {
    offeredPerSecond: expected / (durationMs / 1000),
    achievedPerSecond: received / receiveSeconds,
    sent,
    expected,
    received,
    acks: reports.reduce((sum, report) => sum + report.acks, 0),
    lossFraction: expected === 0 ? NaN : Math.max(0, expected - received) / expected,
    p50Ms: histogram.percentileMicros(0.5) / 1000,
    p99Ms: histogram.percentileMicros(0.99) / 1000,
    maxMs: histogram.maxMicros / 1000,
    cpuMicrosPerDelivery: received === 0 ? NaN : (cpuAfter - cpuBefore) / received,
    serverCoresUsed: used.server,
    generatorCoresUsed: used.generator,
    otherCoresUsed: used.other,
    errors: reports.reduce((sum, report) => sum + report.errors, 0),
    firstError: reports.find((report) => report.firstError)?.firstError,
  };
}

export function describeRun(run: LoadRun): string {
  return (
    `offered ${Math.round(run.offeredPerSecond)}/s, achieved ${Math.round(run.achievedPerSecond)}/s, ` +
    `sent ${run.sent}, delivered ${run.received}/${run.expected}, acks ${run.acks}, ` +
    `p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, max ${run.maxMs.toFixed(1)} ms, ` +
    `CPU ${run.cpuMicrosPerDelivery.toFixed(2)} µs/delivery; cores busy: server ${run.serverCoresUsed.toFixed(2)}, load generator ${run.generatorCoresUsed.toFixed(2)}, other ${run.otherCoresUsed.toFixed(2)}` +
    (run.errors > 0 ? `, ${run.errors} errors (first: ${run.firstError})` : '')
  );
}
