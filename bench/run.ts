/**
 * `npm run bench` (quick, about 6 minutes) or `npm run bench -- --full` (the
 * sizes of the goals, about 15 minutes): the fan-out and scale benchmark.
 *
 * For each system (this project's server with persistence on, measured with
 * protocol 1 clients and again with protocol 2 clients; a naive baseline;
 * and ngircd when it is installed) it starts the server as its own process
 * on loopback, then measures with clients that live in separate worker
 * processes:
 *   - load: 350 clients in one room, each sending 2 messages/s; a warm-up run,
 *     then repeated runs, reporting medians of deliveries/s, loss, latency
 *     and server CPU per delivery (from /proc/<pid>/stat);
 *   - join: time for 1,000 clients to connect and be welcomed into one room;
 *   - idle: RSS per idle joined connection, on a fresh server instance;
 * and, for our server alone (bench/scalePhases.ts):
 *   - rooms: 20,000 idle connections in 10,000 rooms, then the rooms unloaded;
 *   - storm: 5,000 people in 4 rooms each resume after a restart;
 *   - search (v2): searches over a room of 10,000 messages under the load.
 * Every wait is bounded, and every process is stopped by its own PID.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeRun, type LoadRun, loadRun } from './fanOutRun';
import { closeClients, LoadWorkers, median, openClients, sleep } from './loadWorkers';
import { benchKey, type PhaseContext, roomsPhase, type RoomsResult, searchPhase, type SearchResult, stormPhase, type StormResult } from './scalePhases';
import { naiveServer, ngircdPeer, NGIRCD_PATH, ourServer, residentKiB, type RunningServer, type StartOptions, type SystemUnderTest } from './systemsUnderTest';

/** The full run measures at the sizes the goals name; the quick one (the default; `--quick` still accepted) at smaller sizes and shorter runs. */
const full = process.argv.includes('--full') || process.env.BENCH_FULL === '1';
const quick = !full;
const skipNgircd = process.argv.includes('--no-ngircd');
/**
 * `--systems ours,ours-v2,naive,ngircd` (the default) picks what to measure: `ours` is our server with
 * protocol 1 clients, `ours-v2` the same server with protocol 2 clients; `ours-memory` and `ours-v2-memory`
 * add the server with --memory, to separate storage from fan-out.
 */
const systemsFlag = flagValue('--systems') ?? 'ours,ours-v2,naive,ngircd';
/** `--phases load,join,idle,rooms,storm,search` (the default) picks what to measure, for a faster look at one figure. */
const phasesFlag = new Set((flagValue('--phases') ?? 'load,join,idle,rooms,storm,search').split(','));
/** `--rooms-per-connection N`: rooms each v2 connection of the rooms phase joins (default 3). */
const roomsPerConnectionFlag = flagValue('--rooms-per-connection');
/** `--server-diagnostics DIR`: our server writes a CPU profile into DIR when it stops, and a heap snapshot on SIGUSR2. */
const diagnosticsDir = flagValue('--server-diagnostics');

function flagValue(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  return at === -1 ? undefined : process.argv[at + 1];
}

const fanOut = { sendIntervalMs: 500, textPadding: 40, drainMs: 5_000 };

const settings = {
  workerCount: 2,
  loadClients: 350,
  fanOut,
  warmupMs: quick ? 2_000 : 5_000,
  runMs: quick ? 3_000 : 10_000,
  runs: 3,
  joinClients: 1_000,
  joinRepeats: quick ? 1 : 3,
  idleClients: quick ? 2_000 : 5_000,
  idleRoomSize: 50,
  rooms: {
    connections: quick ? 4_000 : 20_000,
    rooms: quick ? 2_000 : 10_000,
    roomsPerConnectionV2: roomsPerConnectionFlag === undefined ? 3 : Number(roomsPerConnectionFlag),
    // The full run waits out the server's own idle time (30 s); the quick one shortens it.
    roomIdleMs: quick ? 5_000 : undefined,
    settleMs: 2_000,
    openTimeoutMs: 240_000,
  },
  storm: {
    people: quick ? 1_000 : 5_000,
    roomsPerPerson: 4,
    rooms: quick ? 200 : 1_000,
    maxConnectingPerWorker: 500,
    openTimeoutMs: 180_000,
  },
  search: {
    members: 350,
    searchers: 20,
    messagesInRoom: 10_000,
    searchIntervalMs: 2_000,
    // A text no message holds makes a search scan every retained message (the most one request may cost); the
    // padding every message holds fills a page of 50 hits from the newest messages.
    terms: [
      { label: 'no match', text: 'no such words' },
      { label: '50 hits', text: 'xxxx' },
    ],
    runs: 3,
    runMs: quick ? 3_000 : 10_000,
    fanOut,
  },
};

const PHASE_MINUTES: Record<string, [quick: number, full: number]> = { rooms: [3, 8], storm: [3, 8], search: [2, 4] };

const repoRoot = resolve(__dirname, '..', '..');
const serverScript = join(repoRoot, 'dist', 'server.js');
const naiveScript = join(__dirname, 'naiveServer.js');
const workerScript = join(__dirname, 'loadWorker.js');
const memoryProbeScript = join(__dirname, 'serverMemoryProbe.js');

interface SystemResult {
  label: string;
  protocol: SystemUnderTest['protocol'];
  runs: LoadRun[];
  joinMs: number[];
  joinFailures: number;
  idleBytesPerConnection: number;
  idleJoined: number;
  rooms?: RoomsResult;
  storm?: StormResult;
  search?: SearchResult;
  /** Figures, each the median of the measured runs. */
  figures: Record<FigureKey, number>;
}

type FigureKey = 'offered' | 'achieved' | 'loss' | 'p50' | 'p99' | 'max' | 'cpu' | 'idle' | 'idleHeap' | 'join';

async function benchSystem(system: SystemUnderTest, workers: LoadWorkers, workDir: string, started: Set<RunningServer>): Promise<SystemResult> {
  const log = (text: string): void => console.log(`[${system.label}] ${text}`);
  // Each start gets a fresh folder, unless a phase names one to come back to.
  const startServer = async (options?: StartOptions): Promise<RunningServer> => {
    const folder = options?.folder === undefined ? mkdtempSync(join(workDir, 'server-')) : join(workDir, options.folder);
    mkdirSync(folder, { recursive: true });
    const server = await system.start(folder, options);
    started.add(server);
    return server;
  };
  const stopServer = async (server: RunningServer): Promise<void> => {
    await server.stop();
    started.delete(server);
  };
  const plan = (name: string, room: string): { name: string; rooms: string[]; key: string } => ({ name, rooms: [room], key: benchKey(name) });

  // Load, on one server instance: warm-up first, then the measured runs.
  let server = await startServer();
  const runs: LoadRun[] = [];
  if (phasesFlag.has('load')) {
    const loadPlans = Array.from({ length: settings.loadClients }, (_, index) => plan(`load${index}`, 'benchload'));
    const load = await openClients(workers, server, system, 'load', loadPlans, { maxInFlightPerWorker: 100 });
    log(`${load.joined} load clients joined` + (load.failed > 0 ? `, ${load.failed} failed (${load.firstError})` : ''));
    const warmup = await loadRun(workers, server, system, load.joined, load.joined, 0, settings.warmupMs, fanOut);
    log(`warm-up: ${describeRun(warmup)}`);
    for (let run = 1; run <= settings.runs; run++) {
      runs.push(await loadRun(workers, server, system, load.joined, load.joined, run, settings.runMs, fanOut));
      log(`run ${run}: ${describeRun(runs[runs.length - 1])}`);
    }
    await closeClients(workers, 'load');
    await sleep(1_000);
  }

  // Join: 1,000 clients at once into a fresh room (a fresh channel for IRC), from the first connect to the last welcome (v2: to the last join's ack).
  const joinMs: number[] = [];
  let joinFailures = 0;
  // ngircd registers clients on its once-a-second loop and accepts slowly (tens a second here), so one repeat of its join keeps the run within minutes.
  const joinRepeats = system.protocol === 'irc' ? 1 : settings.joinRepeats;
  for (let repeat = 1; phasesFlag.has('join') && repeat <= joinRepeats; repeat++) {
    const plans = Array.from({ length: settings.joinClients }, (_, index) => plan(`join${repeat}x${index}`, `benchjoin${repeat}`));
    const joined = await openClients(workers, server, system, 'join', plans, { maxInFlightPerWorker: settings.joinClients });
    joinFailures += joined.failed;
    joinMs.push(joined.elapsedMs);
    log(`join ${repeat}: ${joined.joined} joined in ${joined.elapsedMs.toFixed(0)} ms` + (joined.failed > 0 ? `, ${joined.failed} failed (${joined.firstError})` : ''));
    await closeClients(workers, 'join');
    await sleep(1_000);
  }
  await stopServer(server);

  // Idle memory, on a fresh instance so the load's history and buffers do not count. Rooms of 50 keep join announcements from dominating.
  let idleBytesPerConnection = NaN;
  let idleHeapBytesPerConnection = NaN;
  let idleJoined = 0;
  if (phasesFlag.has('idle')) {
    server = await startServer();
    await sleep(1_000);
    const rssBeforeKiB = residentKiB(server.pid);
    const collectedBefore = await server.memoryAfterCollection?.();
    const idlePlans = Array.from({ length: settings.idleClients }, (_, index) => plan(`idle${index}`, `benchidle${Math.floor(index / settings.idleRoomSize)}`));
    const idle = await openClients(workers, server, system, 'idle', idlePlans, { maxInFlightPerWorker: 250 });
    await sleep(2_000);
    const rssAfterKiB = residentKiB(server.pid);
    idleBytesPerConnection = ((rssAfterKiB - rssBeforeKiB) * 1024) / Math.max(1, idle.joined);
    // Our server can tell what of the growth is live heap: after a full collection, V8's heap in use.
    const collectedAfter = await server.memoryAfterCollection?.();
    if (collectedBefore && collectedAfter) idleHeapBytesPerConnection = ((collectedAfter.heapUsedKiB - collectedBefore.heapUsedKiB) * 1024) / Math.max(1, idle.joined);
    log(
      `idle: ${idle.joined} joined in ${idle.elapsedMs.toFixed(0)} ms, RSS ${rssBeforeKiB} KiB -> ${rssAfterKiB} KiB, ` +
        `${(idleBytesPerConnection / 1024).toFixed(2)} KiB per connection` +
        (collectedBefore && collectedAfter
          ? `; after a full collection heap used ${Math.round(collectedBefore.heapUsedKiB)} -> ${Math.round(collectedAfter.heapUsedKiB)} KiB (${(idleHeapBytesPerConnection / 1024).toFixed(2)} KiB per connection), ` +
            `heap reserved ${Math.round(collectedBefore.heapTotalKiB)} -> ${Math.round(collectedAfter.heapTotalKiB)} KiB, RSS ${Math.round(collectedAfter.residentKiB)} KiB`
          : '') +
        (idle.failed > 0 ? `, ${idle.failed} failed (${idle.firstError})` : ''),
    );
    idleJoined = idle.joined;
    await closeClients(workers, 'idle');
    await stopServer(server);
  }

  const context: PhaseContext = { system, workers, startServer, stopServer, log };
  const rooms = system.isOurs && phasesFlag.has('rooms') ? await roomsPhase(context, settings.rooms) : undefined;
  const storm = system.isOurs && system.keepsData && phasesFlag.has('storm') ? await stormPhase(context, settings.storm) : undefined;
  const search = system.isOurs && system.protocol === 'ndjson-v2' && phasesFlag.has('search') ? await searchPhase(context, settings.search) : undefined;

  return {
    label: system.label,
    protocol: system.protocol,
    runs,
    joinMs,
    joinFailures,
    idleBytesPerConnection,
    idleJoined,
    rooms,
    storm,
    search,
    figures: {
      offered: median(runs.map((run) => run.offeredPerSecond)),
      achieved: median(runs.map((run) => run.achievedPerSecond)),
      // Loss is the worst run, not the median: one lossy run in three is a finding, not noise.
      loss: runs.length === 0 ? NaN : Math.max(...runs.map((run) => run.lossFraction)),
      p50: median(runs.map((run) => run.p50Ms)),
      p99: median(runs.map((run) => run.p99Ms)),
      max: median(runs.map((run) => run.maxMs)),
      cpu: median(runs.map((run) => run.cpuMicrosPerDelivery)),
      idle: idleBytesPerConnection / 1024,
      idleHeap: idleHeapBytesPerConnection / 1024,
      join: median(joinMs),
    },
  };
}

const NOT_MEASURED = '–';
/** Cores busy with other work above which a run's fan-out figures are flagged as taken on a busy machine. */
const BUSY_MACHINE_CORES = 0.2;
const integer = (value: number): string => Math.round(value).toLocaleString('en-US');
const ms = (value: number, digits = 0): string => (Number.isFinite(value) ? `${value.toFixed(digits)} ms` : NOT_MEASURED);

/** A row of the table: a figure compared with the naive baseline, or a cell of its own. */
type Row = { title: string; key: FigureKey; format: (value: number) => string } | { title: string; cell: (result: SystemResult) => string };

const ROWS: Row[] = [
  { key: 'offered', title: 'deliveries/s offered', format: integer },
  { key: 'achieved', title: 'deliveries/s achieved', format: integer },
  { key: 'loss', title: 'loss (worst run)', format: (value) => `${(value * 100).toFixed(3)} %` },
  { key: 'p50', title: 'latency p50', format: (value) => `${value.toFixed(2)} ms` },
  { key: 'p99', title: 'latency p99', format: (value) => `${value.toFixed(2)} ms` },
  { key: 'max', title: 'latency max', format: (value) => `${value.toFixed(1)} ms` },
  { key: 'cpu', title: 'server CPU per delivery', format: (value) => `${value.toFixed(2)} µs` },
  { key: 'idle', title: 'RSS per idle connection', format: (value) => `${value.toFixed(2)} KiB` },
  { key: 'idleHeap', title: 'V8 heap in use per idle connection (after GC)', format: (value) => `${value.toFixed(2)} KiB` },
  { key: 'join', title: `time for ${settings.joinClients} clients to join`, format: (value) => `${value.toFixed(0)} ms` },
  { title: 'rooms: connections, memberships, rooms loaded', cell: ({ rooms }) => (rooms && !rooms.skipped ? `${integer(rooms.connections)}, ${integer(rooms.memberships)}, ${integer(rooms.loadedRooms)}` : NOT_MEASURED) },
  { title: 'rooms: RSS growth after GC / budget', cell: ({ rooms }) => (rooms && !rooms.skipped ? `${integer(rooms.growthKiB)} / ${integer(rooms.budgetKiB)} KiB` : NOT_MEASURED) },
  { title: 'rooms: RSS per connection (as read)', cell: ({ rooms }) => (rooms && !rooms.skipped ? `${(rooms.rawGrowthKiB / Math.max(1, rooms.connections)).toFixed(2)} KiB` : NOT_MEASURED) },
  { title: 'rooms: RSS per connection (after GC)', cell: ({ rooms }) => (rooms && !rooms.skipped ? `${rooms.perConnectionKiB.toFixed(2)} KiB` : NOT_MEASURED) },
  { title: 'rooms: all unloaded after leaving', cell: ({ rooms }) => (rooms && !rooms.skipped ? (rooms.roomsLeftLoaded === 0 ? ms(rooms.unloadMs) : `${rooms.roomsLeftLoaded} still loaded`) : NOT_MEASURED) },
  { title: 'storm: connections resumed', cell: ({ storm }) => (storm && !storm.skipped ? `${integer(storm.resumed)} of ${integer(storm.connections)} (${integer(storm.people)} people${storm.retries > 0 ? `, ${storm.retries} retried` : ''})` : NOT_MEASURED) },
  { title: 'storm: time until all resumed', cell: ({ storm }) => (storm && !storm.skipped ? ms(storm.resumeMs) : NOT_MEASURED) },
  ...settings.search.terms.map(
    (term): Row => ({
      title: `search p99, ${term.label}`,
      cell: ({ search }) => {
        const figures = search?.searches.find((searched) => searched.label === term.label);
        return figures ? `${ms(figures.p99Ms, 2)} (${figures.answered} searches)` : NOT_MEASURED;
      },
    }),
  ),
  { title: 'fan-out p99 while searching', cell: ({ search }) => (search ? ms(median(search.runs.map((run) => run.p99Ms)), 2) : NOT_MEASURED) },
];

function ratio(value: number, baseline: number | undefined): string {
  if (baseline === undefined || !Number.isFinite(value) || !Number.isFinite(baseline) || baseline === 0) return '';
  return ` (${(value / baseline).toPrecision(2)}× baseline)`;
}

function printTable(results: SystemResult[]): void {
  const baseline = results.find((result) => result.label === 'naive baseline');
  const header = ['figure (median)', ...results.map((result) => result.label)];
  const rows = ROWS.map((row) => [
    row.title,
    ...results.map((result) => {
      if ('cell' in row) return row.cell(result);
      const value = result.figures[row.key];
      if (!Number.isFinite(value)) return NOT_MEASURED;
      return row.format(value) + (result === baseline ? '' : ratio(value, baseline?.figures[row.key]));
    }),
  ]).filter((row) => row.slice(1).some((cell) => cell !== NOT_MEASURED));
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column].length)));
  const line = (row: string[]): string => '| ' + row.map((cell, column) => cell.padEnd(widths[column])).join(' | ') + ' |';
  console.log('\n' + line(header));
  console.log('|' + widths.map((width) => '-'.repeat(width + 2)).join('|') + '|');
  for (const row of rows) console.log(line(row));
}

/** The goals of issue 3 (v1 fan-out, idle, join) and issue 10 (v2 at scale), for every measured figure of our server. */
function printGoals(results: SystemResult[]): void {
  for (const result of results.filter((candidate) => candidate.label.startsWith('chat-room'))) {
    const { figures, rooms, storm, search } = result;
    const goals: [string, boolean | undefined, string][] = [];
    if (result.runs.length > 0) {
      goals.push(['fan-out: no loss', figures.loss === 0 && result.runs.every((run) => run.lossFraction === 0), `${(figures.loss * 100).toFixed(3)} % lost`]);
      goals.push(['fan-out: p99 ≤ 15 ms', figures.p99 <= 15, `${figures.p99.toFixed(2)} ms`]);
      goals.push(['fan-out: ≤ 3 µs server CPU per delivery', figures.cpu <= 3, `${figures.cpu.toFixed(2)} µs`]);
    }
    if (result.idleJoined > 0) goals.push([`idle connection ≤ 10 KB RSS (${result.idleJoined} connections)`, figures.idle * 1024 <= 10_000, `${((figures.idle * 1024) / 1000).toFixed(2)} KB`]);
    if (result.joinMs.length > 0) goals.push([`${settings.joinClients} clients joined < 2 s`, figures.join < 2_000 && result.joinFailures === 0, `${figures.join.toFixed(0)} ms`]);
    if (rooms && !rooms.skipped) {
      goals.push([
        `rooms: RSS ≤ 10 KiB per idle connection + 2 KiB per loaded idle room (${integer(rooms.connections)} connections, ${integer(rooms.loadedRooms)} rooms)`,
        rooms.growthKiB <= rooms.budgetKiB && rooms.failed === 0,
        `${integer(rooms.growthKiB)} KiB of ${integer(rooms.budgetKiB)} KiB`,
      ]);
      goals.push(['rooms: empty rooms unloaded', rooms.roomsLeftLoaded === 0, rooms.roomsLeftLoaded === 0 ? `all, ${rooms.unloadMs} ms after everyone left` : `${rooms.roomsLeftLoaded} still loaded`]);
    }
    if (storm && !storm.skipped) goals.push([`storm: ${integer(storm.connections)} connections resumed (figure only)`, storm.failed === 0 ? undefined : false, `${ms(storm.resumeMs)}, ${storm.failed} failed`]);
    for (const figures of search?.searches ?? []) goals.push([`search p99 under the fan-out, ${figures.label} (figure only)`, figures.refused === 0 ? undefined : false, `${figures.p99Ms.toFixed(2)} ms, ${figures.refused} refused`]);
    // Other work on the machine takes the server's turns: latency rises, and CPU per delivery falls, since a server that waits longer writes more deliveries per system call.
    const otherCores = median(result.runs.map((run) => run.otherCoresUsed));
    const busyNote = otherCores > BUSY_MACHINE_CORES ? `other work used ${otherCores.toFixed(2)} cores during the fan-out runs: its latency and CPU figures are not those of a quiet machine` : undefined;
    console.log(`\nGoals for ${result.label}:`);
    for (const [goal, met, figure] of goals) console.log(`  ${met === undefined ? 'figure' : met ? 'met   ' : 'MISSED'}  ${goal}: ${figure}`);
    for (const note of [busyNote, rooms?.fittedNote, storm?.fittedNote]) if (note !== undefined) console.log(`  note    ${note}`);
  }
}

async function main(): Promise<void> {
  for (const script of [serverScript, naiveScript, workerScript, memoryProbeScript]) {
    if (!existsSync(script)) throw new Error(`${script} is missing: run "node esbuild.mjs" first`);
  }
  const wanted = systemsFlag.split(',');
  const systems: SystemUnderTest[] = [];
  if (diagnosticsDir !== undefined) mkdirSync(resolve(diagnosticsDir), { recursive: true });
  const ours = (protocol: 'ndjson' | 'ndjson-v2', inMemory: boolean): SystemUnderTest => ourServer(serverScript, { inMemory, protocol, memoryProbe: memoryProbeScript, diagnosticsDir: diagnosticsDir === undefined ? undefined : resolve(diagnosticsDir) });
  if (wanted.includes('ours')) systems.push(ours('ndjson', false));
  if (wanted.includes('ours-v2')) systems.push(ours('ndjson-v2', false));
  if (wanted.includes('ours-memory')) systems.push(ours('ndjson', true));
  if (wanted.includes('ours-v2-memory')) systems.push(ours('ndjson-v2', true));
  if (wanted.includes('naive')) systems.push(naiveServer(naiveScript));
  if (wanted.includes('ngircd')) {
    if (!skipNgircd && existsSync(NGIRCD_PATH)) systems.push(ngircdPeer());
    else console.log(`ngircd peer skipped (${skipNgircd ? '--no-ngircd' : `${NGIRCD_PATH} not found`})`);
  }

  console.log(
    `Fan-out benchmark${quick ? ' (quick)' : ''}: ${settings.loadClients} clients in one room, one message per ${fanOut.sendIntervalMs} ms each, ` +
      `warm-up ${settings.warmupMs / 1000} s, ${settings.runs} runs of ${settings.runMs / 1000} s; ${settings.workerCount} load workers; loopback only; phases ${[...phasesFlag].join(',')}.`,
  );
  // The hard stop grows with the scale phases chosen, each a few minutes for each of our systems.
  const ourSystems = systems.filter((system) => system.isOurs).length;
  const scaleMinutes = [...phasesFlag].reduce((sum, phase) => sum + (PHASE_MINUTES[phase]?.[quick ? 0 : 1] ?? 0), 0) * ourSystems;
  const wholeRunLimitMs = ((quick ? 6 : 15) + scaleMinutes) * 60_000;
  const workDir = mkdtempSync(join(tmpdir(), 'chat-room-bench-'));
  const workers = new LoadWorkers(settings.workerCount);
  const started = new Set<RunningServer>();
  const cleanUp = async (): Promise<void> => {
    workers.stop();
    await Promise.all([...started].map((server) => server.stop()));
    rmSync(workDir, { recursive: true, force: true });
  };
  const hardStop = setTimeout(() => {
    console.error(`benchmark exceeded ${wholeRunLimitMs / 60_000} minutes; stopping`);
    void cleanUp().finally(() => process.exit(1));
  }, wholeRunLimitMs);
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
  printGoals(results);
  const resultsPath = join(__dirname, 'last-results.json');
  writeFileSync(resultsPath, JSON.stringify({ quick, settings, results }, null, 2));
  console.log(`\nAll figures: ${resultsPath}`);
  if (!process.argv.includes('--no-cluster')) await (await import('./cluster')).runClusterBench(quick);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : String(error));
  process.exit(1);
});
