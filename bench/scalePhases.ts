/**
 * The phases that measure protocol 2's scale on one machine (issue 10), each
 * run for our server's v1 clients and v2 clients alike where v1 can take
 * part:
 *   - rooms: tens of thousands of idle connections in thousands of rooms,
 *     then everyone leaves and the rooms are unloaded once idle;
 *   - storm: thousands of clients, each in several rooms, resume at once
 *     after the server restarts;
 *   - search (v2 only): searches over a room of 10,000 messages while the
 *     room carries the fan-out load.
 * Every phase starts a server of its own and stops it by its PID.
 */
import { LatencyHistogram } from './latencyHistogram';
import { describeRun, type FanOutSettings, loadRun, type LoadRun } from './fanOutRun';
import { closeClients, countCores, type CoreUse, describeCores, type LoadWorkers, openClients, resumeClients, sleep } from './loadWorkers';
import { freeLoopbackPort, openRoomLogs, raiseFileLimit, residentKiB, type RunningServer, type ServerMemory, type StartOptions, type SystemUnderTest } from './systemsUnderTest';
import { type ClientPlan, monotonicMicros, type SearchReport, type SearchTerm } from './workerMessages';

/** What every phase is given by the coordinator. */
export interface PhaseContext {
  system: SystemUnderTest;
  workers: LoadWorkers;
  startServer(options?: StartOptions): Promise<RunningServer>;
  stopServer(server: RunningServer): Promise<void>;
  log(text: string): void;
}

/** Files a server holds beside its clients' sockets and its rooms' logs (its directory, admin socket, pipes, V8's own; about 30 here). */
const SERVER_SPARE_FILES = 256;

/** A v2 bench identity's key: proposed in its first hello (32 characters or more, so the server keeps it), presented in every later one. */
export function benchKey(name: string): string {
  return `bench-key-${name}`.padEnd(40, '-');
}

/**
 * The plans of `people` clients, each in `roomsEach` of `rooms` rooms. A v2
 * client is one connection that joins them all; a v1 client needs a
 * connection per room, so it becomes `roomsEach` plans of one room each.
 * Person i takes rooms i·k … i·k+k−1 (mod rooms), so every room gets the
 * same number of members.
 */
function peoplePlans(system: SystemUnderTest, prefix: string, people: number, roomsEach: number, rooms: number, roomPrefix: string): ClientPlan[] {
  const plans: ClientPlan[] = [];
  for (let person = 0; person < people; person++) {
    const name = `${prefix}${person}`;
    const theirs = Array.from({ length: roomsEach }, (_, slot) => `${roomPrefix}${(person * roomsEach + slot) % rooms}`);
    if (system.protocol === 'ndjson-v2') plans.push({ name, rooms: theirs, key: benchKey(name) });
    else for (const room of theirs) plans.push({ name, rooms: [room] });
  }
  return plans;
}

/**
 * Raises the open-file limits for `wanted` connections into `rooms` loaded
 * rooms (the server holds a socket for each connection and a log for each
 * room), and gives the most connections the limits allow. Raising a hard
 * limit needs CAP_SYS_RESOURCE; without it a phase is measured at the size
 * that fits, and says so.
 */
function fitToFileLimits(context: PhaseContext, wanted: number, rooms: number): { connections: number; note?: string } {
  // The server is a child of this process and starts with its limits, so this process's own are raised first.
  const serverLimit = raiseFileLimit(process.pid, wanted + rooms + SERVER_SPARE_FILES);
  const workerLimit = context.workers.raiseFileLimits(Math.ceil(wanted / context.workers.count) + SERVER_SPARE_FILES);
  const connections = Math.max(0, Math.min(wanted, serverLimit - rooms - SERVER_SPARE_FILES, (workerLimit - SERVER_SPARE_FILES) * context.workers.count));
  if (connections === wanted) return { connections };
  return {
    connections,
    note:
      `${connections} connections instead of ${wanted}: a process may open ${Math.min(serverLimit, workerLimit)} files here (a hard limit; raising it needs CAP_SYS_RESOURCE), ` +
      `and the server needs one for each connection and each loaded room`,
  };
}

// ------------------------------------------------------------------ rooms

export interface RoomsSettings {
  /** People; a v1 person in `roomsPerPerson` rooms holds as many connections, so v1 is measured with one room each. */
  connections: number;
  rooms: number;
  /** Rooms each v2 connection joins. */
  roomsPerConnectionV2: number;
  /** The server's --room-idle-ms (undefined: its default, 30 s). */
  roomIdleMs: number | undefined;
  /** Idle time before memory is read. */
  settleMs: number;
  openTimeoutMs: number;
}

export interface RoomsResult {
  skipped?: string;
  /** Why fewer connections were measured than the goal names (the open-file limit). */
  fittedNote?: string;
  connections: number;
  memberships: number;
  joinMs: number;
  failed: number;
  loadedRooms: number;
  /** RSS as read (garbage V8 has not collected yet included), before the clients came and with them idle. */
  rssBeforeKiB: number;
  rssLoadedKiB: number;
  /** The same after a full collection (bench/serverMemoryProbe.ts), with V8's heap and external memory. */
  collectedBefore?: ServerMemory;
  collectedLoaded?: ServerMemory;
  /** The budget of the goal: 10 KiB per idle connection plus 2 KiB per loaded idle room. */
  budgetKiB: number;
  /** RSS growth after a full collection, the figure held against the budget (as read when the probe gave no answer). */
  growthKiB: number;
  /** RSS growth as read, without a collection first. */
  rawGrowthKiB: number;
  perConnectionKiB: number;
  /** After everyone has left: how long until every room was unloaded, and what was left. */
  unloadMs: number;
  roomsLeftLoaded: number;
  rssAfterUnloadKiB: number;
  cores: CoreUse;
}

export async function roomsPhase(context: PhaseContext, settings: RoomsSettings): Promise<RoomsResult> {
  const { system, workers, log } = context;
  const v2 = system.protocol === 'ndjson-v2';
  const roomsEach = v2 ? settings.roomsPerConnectionV2 : 1;
  const fitted = fitToFileLimits(context, settings.connections, settings.rooms);
  if (fitted.note) log(`rooms: ${fitted.note}`);
  if (fitted.connections === 0) return { ...emptyRooms(), skipped: fitted.note };
  const plans = peoplePlans(system, 'rooms', fitted.connections, roomsEach, settings.rooms, 'r');
  const extraArgs = ['--max-clients', String(fitted.connections + 1_000), ...(settings.roomIdleMs === undefined ? [] : ['--room-idle-ms', String(settings.roomIdleMs)])];
  const server = await context.startServer({ extraArgs });
  const roomIdleMs = settings.roomIdleMs ?? 30_000;
  try {
    await sleep(1_000);
    const rssBeforeKiB = residentKiB(server.pid);
    const collectedBefore = await server.memoryAfterCollection?.();
    const cores = countCores(workers, () => server.pid);
    const opened = await openClients(workers, server, system, 'rooms', plans, { maxInFlightPerWorker: 500, timeoutMs: settings.openTimeoutMs, spreadSources: true });
    await sleep(settings.settleMs);
    const used = cores();
    const rssLoadedKiB = residentKiB(server.pid);
    const collectedLoaded = await server.memoryAfterCollection?.();
    const loadedRooms = openRoomLogs(server.pid);
    const rawGrowthKiB = rssLoadedKiB - rssBeforeKiB;
    const growthKiB = collectedBefore && collectedLoaded ? Math.round(collectedLoaded.residentKiB - collectedBefore.residentKiB) : rawGrowthKiB;
    const budgetKiB = opened.joined * 10 + loadedRooms * 2;
    const perConnection = (kib: number): string => `${(kib / Math.max(1, opened.joined)).toFixed(2)} KiB per connection`;
    log(
      `rooms: ${opened.joined} connections (${opened.joined * roomsEach} memberships) in ${loadedRooms} loaded rooms, joined in ${opened.elapsedMs.toFixed(0)} ms` +
        (opened.failed > 0 ? `, ${opened.failed} failed (${opened.firstError})` : '') +
        `; RSS as read ${rssBeforeKiB} KiB -> ${rssLoadedKiB} KiB: ${rawGrowthKiB} KiB, ${perConnection(rawGrowthKiB)}` +
        (collectedBefore && collectedLoaded
          ? `; after a full collection ${describeMemory(collectedBefore)} -> ${describeMemory(collectedLoaded)}: ${growthKiB} KiB, ${perConnection(growthKiB)}`
          : '; no answer from the memory probe, so the figure is RSS as read') +
        `; budget ${budgetKiB} KiB (10 per connection + 2 per loaded room); ${describeCores(used)}`,
    );

    // Everyone leaves; each room is unloaded once it has stood empty for the idle time.
    await closeClients(workers, 'rooms');
    const leftAt = Date.now();
    let roomsLeftLoaded = openRoomLogs(server.pid);
    while (roomsLeftLoaded > 0 && Date.now() - leftAt < roomIdleMs + 60_000) {
      await sleep(500);
      roomsLeftLoaded = openRoomLogs(server.pid);
    }
    const unloadMs = Date.now() - leftAt;
    // A moment for the last closes and a collection or two before memory is read.
    await sleep(2_000);
    const rssAfterUnloadKiB = residentKiB(server.pid);
    const collectedAfterUnload = await server.memoryAfterCollection?.();
    log(
      `rooms: everyone left; ${roomsLeftLoaded === 0 ? `every room unloaded ${unloadMs} ms later` : `${roomsLeftLoaded} rooms still loaded after ${unloadMs} ms`} (room idle time ${roomIdleMs} ms); ` +
        `RSS as read ${rssAfterUnloadKiB} KiB` +
        (collectedAfterUnload ? `, after a full collection ${describeMemory(collectedAfterUnload)}` : ''),
    );
    return {
      fittedNote: fitted.note,
      connections: opened.joined,
      memberships: opened.joined * roomsEach,
      joinMs: opened.elapsedMs,
      failed: opened.failed,
      loadedRooms,
      rssBeforeKiB,
      rssLoadedKiB,
      collectedBefore,
      collectedLoaded,
      budgetKiB,
      growthKiB,
      rawGrowthKiB,
      perConnectionKiB: growthKiB / Math.max(1, opened.joined),
      unloadMs,
      roomsLeftLoaded,
      rssAfterUnloadKiB,
      cores: used,
    };
  } finally {
    await context.stopServer(server);
  }
}

function describeMemory(memory: ServerMemory): string {
  const kib = (value: number): string => `${Math.round(value)} KiB`;
  return `RSS ${kib(memory.residentKiB)} (heap ${kib(memory.heapUsedKiB)} used of ${kib(memory.heapTotalKiB)}, external ${kib(memory.externalKiB)})`;
}

function emptyRooms(): RoomsResult {
  const none = { server: NaN, generator: NaN, other: NaN };
  return { connections: 0, memberships: 0, joinMs: NaN, failed: 0, loadedRooms: 0, rssBeforeKiB: NaN, rssLoadedKiB: NaN, budgetKiB: NaN, growthKiB: NaN, rawGrowthKiB: NaN, perConnectionKiB: NaN, unloadMs: NaN, roomsLeftLoaded: NaN, rssAfterUnloadKiB: NaN, cores: none };
}

// ------------------------------------------------------------------ reconnect storm

export interface StormSettings {
  people: number;
  roomsPerPerson: number;
  rooms: number;
  /** Most connections of one worker in the TCP handshake at once: 2 workers × 500 stay under the server's listen backlog of 1,024. */
  maxConnectingPerWorker: number;
  openTimeoutMs: number;
}

export interface StormResult {
  skipped?: string;
  /** Why fewer people were measured than the goal names (the open-file limit). */
  fittedNote?: string;
  people: number;
  connections: number;
  resumed: number;
  failed: number;
  /** Connections tried again after a failure during the resume. */
  retries: number;
  firstError?: string;
  /** From the first reconnect to the last client back in all its rooms. */
  resumeMs: number;
  /** From starting the new server process to its listening. */
  restartMs: number;
  shutdownMs: number;
  cores: CoreUse;
}

export async function stormPhase(context: PhaseContext, settings: StormSettings): Promise<StormResult> {
  const { system, workers, log } = context;
  const connectionsPerPerson = system.protocol === 'ndjson-v2' ? 1 : settings.roomsPerPerson;
  const fitted = fitToFileLimits(context, settings.people * connectionsPerPerson, settings.rooms);
  const people = Math.floor(fitted.connections / connectionsPerPerson);
  const fittedNote = fitted.note === undefined ? undefined : `${people} people instead of ${settings.people}: ${fitted.note}`;
  if (fittedNote) log(`storm: ${fittedNote}`);
  if (people === 0) return { skipped: fittedNote, people: 0, connections: 0, resumed: 0, failed: 0, retries: 0, resumeMs: NaN, restartMs: NaN, shutdownMs: NaN, cores: { server: NaN, generator: NaN, other: NaN } };
  const plans = peoplePlans(system, 'storm', people, settings.roomsPerPerson, settings.rooms, 's');
  const port = await freeLoopbackPort();
  const start: StartOptions = { port, extraArgs: ['--max-clients', String(plans.length + 1_000)], folder: 'storm' };
  let server: RunningServer | undefined = await context.startServer(start);
  try {
    const opened = await openClients(workers, server, system, 'storm', plans, { maxInFlightPerWorker: 500, timeoutMs: settings.openTimeoutMs, spreadSources: true, trackSeqs: true });
    log(`storm: ${people} people in ${settings.roomsPerPerson} rooms each (${settings.rooms} rooms): ${opened.joined} connections joined in ${opened.elapsedMs.toFixed(0)} ms` + (opened.failed > 0 ? `, ${opened.failed} failed (${opened.firstError})` : ''));
    await sleep(1_000);

    // A graceful restart: everyone hears the shutdown, then the same data folder is served again on the same port.
    const stopStarted = Date.now();
    await context.stopServer(server);
    server = undefined;
    const shutdownMs = Date.now() - stopStarted;
    const restartStarted = Date.now();
    server = await context.startServer(start);
    const restartMs = Date.now() - restartStarted;
    const restarted = server;

    const cores = countCores(workers, () => restarted.pid);
    const resumed = await resumeClients(workers, restarted, 'storm', {
      maxInFlightPerWorker: plans.length,
      maxConnectingPerWorker: settings.maxConnectingPerWorker,
      timeoutMs: settings.openTimeoutMs,
      spreadSources: true,
    });
    const used = cores();
    log(
      `storm: shutdown took ${shutdownMs} ms, the new server listened ${restartMs} ms after it was started; ` +
        `${resumed.joined} of ${plans.length} connections resumed in ${resumed.elapsedMs.toFixed(0)} ms` +
        (resumed.retries > 0 ? ` (${resumed.retries} attempts made again after a failure)` : '') +
        (resumed.failed > 0 ? `, ${resumed.failed} failed (${resumed.firstError})` : '') +
        `; ${describeCores(used)}`,
    );
    await closeClients(workers, 'storm');
    return {
      fittedNote,
      people,
      connections: plans.length,
      resumed: resumed.joined,
      failed: resumed.failed,
      retries: resumed.retries,
      firstError: resumed.firstError,
      resumeMs: resumed.elapsedMs,
      restartMs,
      shutdownMs,
      cores: used,
    };
  } finally {
    if (server) await context.stopServer(server);
  }
}

// ------------------------------------------------------------------ search under load

export interface SearchSettings {
  members: number;
  searchers: number;
  /** Messages the room holds before searches start. */
  messagesInRoom: number;
  /** Each searcher searches this often (the server allows 30 a minute: a burst of 30, then one every 2 s). */
  searchIntervalMs: number;
  terms: SearchTerm[];
  runs: number;
  runMs: number;
  fanOut: FanOutSettings;
}

export interface SearchFigures {
  label: string;
  answered: number;
  sent: number;
  refused: number;
  firstRefusal?: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SearchResult {
  messagesBefore: number;
  /** Per term, over every measured run. */
  searches: SearchFigures[];
  /** The fan-out while searches ran. */
  runs: LoadRun[];
}

export async function searchPhase(context: PhaseContext, settings: SearchSettings): Promise<SearchResult> {
  const { system, workers, log } = context;
  const room = 'benchsearch';
  const server = await context.startServer();
  try {
    const load = await openClients(workers, server, system, 'load', Array.from({ length: settings.members }, (_, index) => ({ name: `load${index}`, rooms: [room], key: benchKey(`load${index}`) })), { maxInFlightPerWorker: 100 });
    const searchers = await openClients(workers, server, system, 'search', Array.from({ length: settings.searchers }, (_, index) => ({ name: `searcher${index}`, rooms: [room], key: benchKey(`searcher${index}`) })), { maxInFlightPerWorker: 100 });
    const members = load.joined + searchers.joined;
    log(`search: ${load.joined} senders and ${searchers.joined} searchers joined ${room}` + (load.failed + searchers.failed > 0 ? `, ${load.failed + searchers.failed} failed (${load.firstError ?? searchers.firstError})` : ''));

    // Fill the room under the same load, then search it while the load goes on.
    const messagesPerSecond = (load.joined * 1000) / settings.fanOut.sendIntervalMs;
    let messagesBefore = 0;
    for (let fill = 0; messagesBefore < settings.messagesInRoom && fill < 3; fill++) {
      const fillMs = Math.ceil(((settings.messagesInRoom - messagesBefore) / messagesPerSecond) * 1000) + 1_000;
      // Run numbers from 100 up are the fills; the measured runs count from 1.
      const filled = await loadRun(workers, server, system, load.joined, members, 100 + fill, fillMs, settings.fanOut);
      messagesBefore += filled.sent;
      log(`search: filling the room: ${describeRun(filled)}`);
    }

    const runs: LoadRun[] = [];
    const histograms = new Map<string, { histogram: LatencyHistogram; sent: number; answered: number; refused: number; firstRefusal?: string }>();
    for (let run = 1; run <= settings.runs; run++) {
      const startMicros = monotonicMicros() + 300_000;
      const searching = workers.askAll(
        (worker) => ({
          cmd: 'search',
          run,
          startMicros,
          durationMs: settings.runMs,
          intervalMs: settings.searchIntervalMs,
          room,
          terms: settings.terms,
          workerIndex: worker,
          workerCount: workers.count,
          totalSearchers: searchers.joined,
        }),
        'searched',
        settings.runMs + 20_000,
      );
      const fanOut = await loadRun(workers, server, system, load.joined, members, run, settings.runMs, settings.fanOut, startMicros);
      const reports: SearchReport[] = (await searching).flatMap((reply) => reply.searches);
      runs.push(fanOut);
      for (const report of reports) {
        const tally = histograms.get(report.label) ?? { histogram: new LatencyHistogram(), sent: 0, answered: 0, refused: 0 };
        tally.histogram.add(report.histogram);
        tally.sent += report.sent;
        tally.answered += report.answered;
        tally.refused += report.refused;
        tally.firstRefusal ??= report.firstRefusal;
        histograms.set(report.label, tally);
      }
      const searched = settings.terms.map((term) => {
        const label = term.label;
        const answered = reports.filter((report) => report.label === label);
        const histogram = new LatencyHistogram();
        for (const report of answered) histogram.add(report.histogram);
        return `${label} ${histogram.count} answered, p50 ${(histogram.percentileMicros(0.5) / 1000).toFixed(2)} ms, p99 ${(histogram.percentileMicros(0.99) / 1000).toFixed(2)} ms, max ${(histogram.maxMicros / 1000).toFixed(1)} ms`;
      });
      log(`search run ${run}: ${searched.join('; ')}; fan-out meanwhile: ${describeRun(fanOut)}`);
    }
    await closeClients(workers, 'search');
    await closeClients(workers, 'load');
    const searches = settings.terms.map((term): SearchFigures => {
      const tally = histograms.get(term.label);
      const histogram = tally?.histogram ?? new LatencyHistogram();
      return {
        label: term.label,
        sent: tally?.sent ?? 0,
        answered: tally?.answered ?? 0,
        refused: tally?.refused ?? 0,
        firstRefusal: tally?.firstRefusal,
        p50Ms: histogram.percentileMicros(0.5) / 1000,
        p99Ms: histogram.percentileMicros(0.99) / 1000,
        maxMs: histogram.maxMicros / 1000,
      };
    });
    for (const figures of searches) {
      log(
        `search "${figures.label}" over all runs: ${figures.answered} of ${figures.sent} answered, p50 ${figures.p50Ms.toFixed(2)} ms, p99 ${figures.p99Ms.toFixed(2)} ms, max ${figures.maxMs.toFixed(1)} ms` +
          (figures.refused > 0 ? `, ${figures.refused} refused (${figures.firstRefusal})` : ''),
      );
    }
    return { messagesBefore, searches, runs };
  } finally {
    await context.stopServer(server);
  }
}
