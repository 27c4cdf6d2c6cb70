/**
 * `npm run bench` (or `npm run bench -- --quick`): the fan-out benchmark.
 *
 * For each system (this project's server with persistence on, a naive
 * baseline, and ngircd when it is installed) it starts the server as its own
 * process on loopback, then measures with clients that live in separate
 * worker processes:
 *   - load: 350 clients in one room, each sending 2 messages/s; a warm-up run,
 *     then repeated runs, reporting medians of deliveries/s, loss, latency
 *     and server CPU per delivery (from /proc/<pid>/stat);
 *   - join: time for 1,000 clients to connect and be welcomed into one room;
 *   - idle: RSS per idle joined connection, on a fresh server instance.
 * Every wait is bounded, and every process is stopped by its own PID.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LatencyHistogram } from './latencyHistogram';
import { cpuMicros, machineBusyMicros, naiveServer, ngircdPeer, NGIRCD_PATH, ourServer, residentKiB, type RunningServer, type SystemUnderTest } from './systemsUnderTest';
import { monotonicMicros, type ClientGroup, type ClientPlan, type CoordinatorCommand, type WorkerReply } from './workerMessages';

const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const skipNgircd = process.argv.includes('--no-ngircd');
/** `--systems ours,naive,ngircd` (the default) picks what to measure; `ours-memory` adds the server with --memory, to separate storage from fan-out. */
const systemsFlag = flagValue('--systems') ?? 'ours,naive,ngircd';
/** `--phases load,join,idle` (the default) picks what to measure, for a faster look at one figure. */
const phasesFlag = new Set((flagValue('--phases') ?? 'load,join,idle').split(','));

function flagValue(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  return at === -1 ? undefined : process.argv[at + 1];
}

const settings = {
  workerCount: 2,
  loadClients: 350,
  sendIntervalMs: 500,
  textPadding: 40,
  warmupMs: quick ? 2_000 : 5_000,
  runMs: quick ? 3_000 : 10_000,
  runs: 3,
  joinClients: 1_000,
  joinRepeats: quick ? 1 : 3,
  idleClients: quick ? 2_000 : 5_000,
  idleRoomSize: 50,
  /** Longest a delivery may still be in flight after the senders stop before it counts as lost. */
  drainMs: 5_000,
};

/** A hard stop for the whole run, so a wedged server cannot keep the benchmark (or CI) waiting. */
const WHOLE_RUN_LIMIT_MS = quick ? 6 * 60_000 : 15 * 60_000;

const repoRoot = resolve(__dirname, '..', '..');
const serverScript = join(repoRoot, 'dist', 'server.js');
const naiveScript = join(__dirname, 'naiveServer.js');
const workerScript = join(__dirname, 'loadWorker.js');

const sleep = (ms: number): Promise<void> => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

function median(values: number[]): number {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

type ReplyOf<E extends WorkerReply['event']> = Extract<WorkerReply, { event: E }>;

/** The load-generator processes, and a way to ask each one something and await its answer. */
class LoadWorkers {
  private readonly processes: ChildProcess[] = [];
  private readonly waiters: { worker: number; event: string; resolve: (reply: WorkerReply) => void }[] = [];

  constructor(count: number) {
    for (let index = 0; index < count; index++) {
      const child = fork(workerScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (reply: WorkerReply) => {
        const at = this.waiters.findIndex((waiter) => waiter.worker === index && waiter.event === reply.event);
        if (at !== -1) this.waiters.splice(at, 1)[0].resolve(reply);
      });
      this.processes.push(child);
    }
  }

  get count(): number {
    return this.processes.length;
  }

  /** CPU the load generator used so far, summed over its workers, so a run can show whether the generator kept up. */
  cpuMicros(): number {
    return this.processes.reduce((sum, child) => sum + cpuMicros(child.pid as number), 0);
  }

  ask<E extends WorkerReply['event']>(worker: number, command: CoordinatorCommand, event: E, timeoutMs: number): Promise<ReplyOf<E>> {
    return new Promise((resolveReply, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${worker} gave no "${event}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        worker,
        event,
        resolve: (reply) => {
          clearTimeout(timer);
          resolveReply(reply as ReplyOf<E>);
        },
      });
      this.processes[worker].send(command);
    });
  }

  askAll<E extends WorkerReply['event']>(commandFor: (worker: number) => CoordinatorCommand, event: E, timeoutMs: number): Promise<ReplyOf<E>[]> {
    return Promise.all(this.processes.map((_, worker) => this.ask(worker, commandFor(worker), event, timeoutMs)));
  }

  stop(): void {
    for (const child of this.processes) {
      if (child.connected) child.send({ cmd: 'exit' } satisfies CoordinatorCommand);
      // A worker that ignores the request is ended by its own PID.
      setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 2000).unref();
    }
  }
}

/** Opens clients dealt round-robin to the workers; returns how many joined and when the first connect and last welcome happened. */
async function openClients(workers: LoadWorkers, server: RunningServer, system: SystemUnderTest, group: ClientGroup, plans: ClientPlan[], maxInFlightPerWorker: number) {
  const timeoutMs = 60_000;
  const replies = await workers.askAll(
    (worker) => ({
      cmd: 'open',
      group,
      protocol: system.protocol,
      port: server.port,
      clients: plans.filter((_, index) => index % workers.count === worker),
      maxInFlight: maxInFlightPerWorker,
      maxConnecting: system.maxConnectingPerWorker,
      timeoutMs,
    }),
    'opened',
    timeoutMs + 5_000,
  );
  const started = replies.map((reply) => reply.firstConnectMicros).filter((micros) => micros > 0);
  return {
    joined: replies.reduce((sum, reply) => sum + reply.joined, 0),
    failed: replies.reduce((sum, reply) => sum + reply.failed, 0),
    firstError: replies.find((reply) => reply.firstError)?.firstError,
    elapsedMs: (Math.max(...replies.map((reply) => reply.lastJoinedMicros)) - Math.min(...started)) / 1000,
  };
}

async function closeClients(workers: LoadWorkers, group: ClientGroup): Promise<void> {
  await workers.askAll(() => ({ cmd: 'close', group }), 'closed', 10_000);
}

interface LoadRun {
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

async function loadRun(workers: LoadWorkers, server: RunningServer, system: SystemUnderTest, members: number, run: number, durationMs: number): Promise<LoadRun> {
  const deliveriesPerMessage = system.senderReceivesOwnMessage ? members : members - 1;
  const cpuBefore = cpuMicros(server.pid);
  const generatorCpuBefore = workers.cpuMicros();
  const machineBefore = machineBusyMicros();
  const wallBefore = monotonicMicros();
  // Starting a moment ahead lets every worker receive the command before the first send is due.
  const startMicros = monotonicMicros() + 300_000;
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
      totalClients: members,
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
  const generatorCoresUsed = (workers.cpuMicros() - generatorCpuBefore) / (monotonicMicros() - wallBefore);
  const serverCoresUsed = (cpuAfter - cpuBefore) / (monotonicMicros() - wallBefore);
  const otherCoresUsed = Math.max(0, (machineBusyMicros() - machineBefore) / (monotonicMicros() - wallBefore) - serverCoresUsed - generatorCoresUsed);
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
    serverCoresUsed,
    generatorCoresUsed,
    otherCoresUsed,
    errors: reports.reduce((sum, report) => sum + report.errors, 0),
    firstError: reports.find((report) => report.firstError)?.firstError,
  };
}

interface SystemResult {
  label: string;
  runs: LoadRun[];
  joinMs: number[];
  joinFailures: number;
  idleBytesPerConnection: number;
  idleJoined: number;
  /** Figures, each the median of the measured runs. */
  figures: Record<FigureKey, number>;
}

type FigureKey = 'offered' | 'achieved' | 'loss' | 'p50' | 'p99' | 'max' | 'cpu' | 'idle' | 'join';

function describeRun(run: LoadRun): string {
  return (
    `offered ${Math.round(run.offeredPerSecond)}/s, achieved ${Math.round(run.achievedPerSecond)}/s, ` +
    `sent ${run.sent}, delivered ${run.received}/${run.expected}, acks ${run.acks}, ` +
    `p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, max ${run.maxMs.toFixed(1)} ms, ` +
    `CPU ${run.cpuMicrosPerDelivery.toFixed(2)} µs/delivery; cores busy: server ${run.serverCoresUsed.toFixed(2)}, load generator ${run.generatorCoresUsed.toFixed(2)}, other ${run.otherCoresUsed.toFixed(2)}` +
    (run.errors > 0 ? `, ${run.errors} errors (first: ${run.firstError})` : '')
  );
}

async function benchSystem(system: SystemUnderTest, workers: LoadWorkers, workDir: string, started: Set<RunningServer>): Promise<SystemResult> {
  const log = (text: string): void => console.log(`[${system.label}] ${text}`);
  const startServer = async (): Promise<RunningServer> => {
    const server = await system.start(workDir);
    started.add(server);
    return server;
  };
  const stopServer = async (server: RunningServer): Promise<void> => {
    await server.stop();
    started.delete(server);
  };

  // Load, on one server instance: warm-up first, then the measured runs.
  let server = await startServer();
  const runs: LoadRun[] = [];
  if (phasesFlag.has('load')) {
    const loadPlans = Array.from({ length: settings.loadClients }, (_, index) => ({ name: `load${index}`, room: 'benchload' }));
    const load = await openClients(workers, server, system, 'load', loadPlans, 100);
    log(`${load.joined} load clients joined` + (load.failed > 0 ? `, ${load.failed} failed (${load.firstError})` : ''));
    const warmup = await loadRun(workers, server, system, load.joined, 0, settings.warmupMs);
    log(`warm-up: ${describeRun(warmup)}`);
    for (let run = 1; run <= settings.runs; run++) {
      runs.push(await loadRun(workers, server, system, load.joined, run, settings.runMs));
      log(`run ${run}: ${describeRun(runs[runs.length - 1])}`);
    }
    await closeClients(workers, 'load');
    await sleep(1_000);
  }

  // Join: 1,000 clients at once into a fresh room (a fresh channel for IRC), from the first connect to the last welcome.
  const joinMs: number[] = [];
  let joinFailures = 0;
  // ngircd registers clients on its once-a-second loop and accepts slowly (tens a second here), so one repeat of its join keeps the run within minutes.
  const joinRepeats = system.protocol === 'irc' ? 1 : settings.joinRepeats;
  for (let repeat = 1; phasesFlag.has('join') && repeat <= joinRepeats; repeat++) {
    const plans = Array.from({ length: settings.joinClients }, (_, index) => ({ name: `join${repeat}x${index}`, room: `benchjoin${repeat}` }));
    const joined = await openClients(workers, server, system, 'join', plans, settings.joinClients);
    joinFailures += joined.failed;
    joinMs.push(joined.elapsedMs);
    log(`join ${repeat}: ${joined.joined} joined in ${joined.elapsedMs.toFixed(0)} ms` + (joined.failed > 0 ? `, ${joined.failed} failed (${joined.firstError})` : ''));
    await closeClients(workers, 'join');
    await sleep(1_000);
  }
  await stopServer(server);

  // Idle memory, on a fresh instance so the load's history and buffers do not count. Rooms of 50 keep join announcements from dominating.
  let idleBytesPerConnection = NaN;
  let idleJoined = 0;
  if (phasesFlag.has('idle')) {
    server = await startServer();
    await sleep(1_000);
    const rssBeforeKiB = residentKiB(server.pid);
    const idlePlans = Array.from({ length: settings.idleClients }, (_, index) => ({ name: `idle${index}`, room: `benchidle${Math.floor(index / settings.idleRoomSize)}` }));
    const idle = await openClients(workers, server, system, 'idle', idlePlans, 250);
    await sleep(2_000);
    const rssAfterKiB = residentKiB(server.pid);
    idleBytesPerConnection = ((rssAfterKiB - rssBeforeKiB) * 1024) / Math.max(1, idle.joined);
    log(
      `idle: ${idle.joined} joined in ${idle.elapsedMs.toFixed(0)} ms, RSS ${rssBeforeKiB} KiB -> ${rssAfterKiB} KiB, ` +
        `${(idleBytesPerConnection / 1024).toFixed(2)} KiB per connection` +
        (idle.failed > 0 ? `, ${idle.failed} failed (${idle.firstError})` : ''),
    );
    idleJoined = idle.joined;
    await closeClients(workers, 'idle');
    await stopServer(server);
  }

  return {
    label: system.label,
    runs,
    joinMs,
    joinFailures,
    idleBytesPerConnection,
    idleJoined,
    figures: {
      offered: median(runs.map((run) => run.offeredPerSecond)),
      achieved: median(runs.map((run) => run.achievedPerSecond)),
      // Loss is the worst run, not the median: one lossy run in three is a finding, not noise.
      loss: Math.max(...runs.map((run) => run.lossFraction)),
      p50: median(runs.map((run) => run.p50Ms)),
      p99: median(runs.map((run) => run.p99Ms)),
      max: median(runs.map((run) => run.maxMs)),
      cpu: median(runs.map((run) => run.cpuMicrosPerDelivery)),
      idle: idleBytesPerConnection / 1024,
      join: median(joinMs),
    },
  };
}

const FIGURES: { key: FigureKey; title: string; format: (value: number) => string }[] = [
  { key: 'offered', title: 'deliveries/s offered', format: (value) => Math.round(value).toLocaleString('en-US') },
  { key: 'achieved', title: 'deliveries/s achieved', format: (value) => Math.round(value).toLocaleString('en-US') },
  { key: 'loss', title: 'loss (worst run)', format: (value) => `${(value * 100).toFixed(3)} %` },
  { key: 'p50', title: 'latency p50', format: (value) => `${value.toFixed(2)} ms` },
  { key: 'p99', title: 'latency p99', format: (value) => `${value.toFixed(2)} ms` },
  { key: 'max', title: 'latency max', format: (value) => `${value.toFixed(1)} ms` },
  { key: 'cpu', title: 'server CPU per delivery', format: (value) => `${value.toFixed(2)} µs` },
  { key: 'idle', title: 'RSS per idle connection', format: (value) => `${value.toFixed(2)} KiB` },
  { key: 'join', title: `time for ${settings.joinClients} clients to join`, format: (value) => `${value.toFixed(0)} ms` },
];

function ratio(value: number, baseline: number | undefined): string {
  if (baseline === undefined || !Number.isFinite(value) || !Number.isFinite(baseline) || baseline === 0) return '';
  return ` (${(value / baseline).toPrecision(2)}× baseline)`;
}

function printTable(results: SystemResult[]): void {
  const baseline = results.find((result) => result.label === 'naive baseline');
  const header = ['figure (median)', ...results.map((result) => result.label)];
  const rows = FIGURES.map((figure) => [figure.title, ...results.map((result) => figure.format(result.figures[figure.key]) + (result === baseline ? '' : ratio(result.figures[figure.key], baseline?.figures[figure.key])))]);
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column].length)));
  const line = (row: string[]): string => '| ' + row.map((cell, column) => cell.padEnd(widths[column])).join(' | ') + ' |';
  console.log('\n' + line(header));
  console.log('|' + widths.map((width) => '-'.repeat(width + 2)).join('|') + '|');
  for (const row of rows) console.log(line(row));
}

function printGoals(ours: SystemResult | undefined): void {
  if (!ours) return;
  const figures = ours.figures;
  const goals: [string, boolean, string][] = [
    ['no loss', figures.loss === 0 && ours.runs.every((run) => run.lossFraction === 0), `${(figures.loss * 100).toFixed(3)} % lost`],
    ['p99 ≤ 15 ms', figures.p99 <= 15, `${figures.p99.toFixed(2)} ms`],
    ['≤ 3 µs server CPU per delivery', figures.cpu <= 3, `${figures.cpu.toFixed(2)} µs`],
    [`idle connection ≤ 10 KB RSS (${ours.idleJoined} connections)`, figures.idle * 1024 <= 10_000, `${((figures.idle * 1024) / 1000).toFixed(2)} KB`],
    [`${settings.joinClients} clients joined < 2 s`, figures.join < 2_000 && ours.joinFailures === 0, `${figures.join.toFixed(0)} ms`],
  ];
  console.log('\nGoals for the chat-room server:');
  for (const [goal, met, figure] of goals) console.log(`  ${met ? 'met   ' : 'MISSED'}  ${goal}: ${figure}`);
}

async function main(): Promise<void> {
  for (const script of [serverScript, naiveScript, workerScript]) {
    if (!existsSync(script)) throw new Error(`${script} is missing: run "node esbuild.mjs" first`);
  }
  const wanted = systemsFlag.split(',');
  const systems: SystemUnderTest[] = [];
  if (wanted.includes('ours')) systems.push(ourServer(serverScript, false));
  if (wanted.includes('ours-memory')) systems.push(ourServer(serverScript, true));
  if (wanted.includes('naive')) systems.push(naiveServer(naiveScript));
  if (wanted.includes('ngircd')) {
    if (!skipNgircd && existsSync(NGIRCD_PATH)) systems.push(ngircdPeer());
    else console.log(`ngircd peer skipped (${skipNgircd ? '--no-ngircd' : `${NGIRCD_PATH} not found`})`);
  }

  console.log(
    `Fan-out benchmark${quick ? ' (quick)' : ''}: ${settings.loadClients} clients in one room, one message per ${settings.sendIntervalMs} ms each, ` +
      `warm-up ${settings.warmupMs / 1000} s, ${settings.runs} runs of ${settings.runMs / 1000} s; ${settings.workerCount} load workers; loopback only.`,
  );
  const workDir = mkdtempSync(join(tmpdir(), 'chat-room-bench-'));
  const workers = new LoadWorkers(settings.workerCount);
  const started = new Set<RunningServer>();
  const cleanUp = async (): Promise<void> => {
    workers.stop();
    await Promise.all([...started].map((server) => server.stop()));
    rmSync(workDir, { recursive: true, force: true });
  };
  const hardStop = setTimeout(() => {
    console.error(`benchmark exceeded ${WHOLE_RUN_LIMIT_MS / 60_000} minutes; stopping`);
    void cleanUp().finally(() => process.exit(1));
  }, WHOLE_RUN_LIMIT_MS);
  process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));

  const results: SystemResult[] = [];
  try {
    for (const system of systems) {
      const systemDir = mkdtempSync(join(workDir, 'system-'));
      results.push(await benchSystem(system, workers, systemDir, started));
    }
  } finally {
    clearTimeout(hardStop);
    await cleanUp();
  }
  printTable(results);
  printGoals(results.find((result) => result.label === 'chat-room server'));
  const resultsPath = join(__dirname, 'last-results.json');
  writeFileSync(resultsPath, JSON.stringify({ quick, settings, results }, null, 2));
  console.log(`\nAll figures: ${resultsPath}`);
  if (!process.argv.includes('--no-cluster')) await (await import('./cluster')).runClusterBench(quick);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : String(error));
  process.exit(1);
});
