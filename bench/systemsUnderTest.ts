/**
 * The servers the benchmark measures, each started as its own child process
 * on loopback and stopped by its own PID, and what /proc says about them.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { HEAP_SNAPSHOT_DIR_VARIABLE, MEMORY_LINE_PREFIX, type WireProtocol } from './workerMessages';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';
import { waitForListening } from '../shared/serverIpc';

export const NGIRCD_PATH = '/usr/sbin/ngircd';

export interface RunningServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
  /** Our server only: a full garbage collection, then V8's figures and VmRSS (undefined if no answer came within 10 s). */
  memoryAfterCollection?(): Promise<ServerMemory | undefined>;
}

/** What the server's memory probe reads after a full collection (process.memoryUsage(); rss, like VmRSS, is the resident set). */
export interface ServerMemory {
  residentKiB: number;
  heapTotalKiB: number;
  heapUsedKiB: number;
  /** Memory outside V8's heap that it knows of: Buffers (socket reads and writes) among them. */
  externalKiB: number;
}

const MEMORY_LINE = new RegExp(`^${MEMORY_LINE_PREFIX}(\\{.*\\})$`, 'm');

/** How a phase wants a server started beside the defaults. */
export interface StartOptions {
  /** A port of its own (a restart comes back on the same one); 0 or absent picks a free one. */
  port?: number;
  /** More command-line flags, such as a higher --max-clients for tens of thousands of connections. */
  extraArgs?: string[];
  /** A folder of the phase's own, named, so that a restart serves the same data; absent: a fresh one. */
  folder?: string;
}

export interface SystemUnderTest {
  label: string;
  protocol: WireProtocol;
  /** This project's server, which the rooms, reconnect-storm and search phases measure (the peers have no such features). */
  isOurs: boolean;
  /** Whether what it stores outlives a restart (not with --memory), so a restart can be resumed from. */
  keepsData: boolean;
  /** IRC does not echo a PRIVMSG to its sender; our protocol does (the sender sees its message confirmed in order). */
  senderReceivesOwnMessage: boolean;
  /** Most connections that may wait in the TCP handshake at once, per worker: ngircd listens with a backlog of 10 and drops SYNs past it. */
  maxConnectingPerWorker: number;
  /** Starts a fresh instance keeping any files in `workDir` (a second start on the same folder finds what the first stored). */
  start(workDir: string, options?: StartOptions): Promise<RunningServer>;
}

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User plus system CPU time the process has used, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces, so fields are counted after its closing parenthesis; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time the whole machine has spent busy (all cores, everything but idle and iowait), in microseconds. */
export function machineBusyMicros(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …
  const busyTicks = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
  return (busyTicks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident set size in KiB, from /proc/<pid>/status. */
export function residentKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

/**
 * Raises a running process's limit of open files to `wanted` (soft and hard)
 * with util-linux's prlimit, which needs the privilege to raise a hard limit;
 * without it the limit stays where it was (Node has already raised its soft
 * limit to the hard one at start). Returns the soft limit now in force.
 */
export function raiseFileLimit(pid: number, wanted: number): number {
  if (openFileLimit(pid) < wanted) {
    try {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' });
    } catch {
      // Not allowed (or no prlimit): the caller sees the limit that holds and says so.
    }
  }
  return openFileLimit(pid);
}

/** The soft limit of open files of a process, from /proc/<pid>/limits. */
export function openFileLimit(pid: number): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return !match ? 0 : match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** How many room logs (`*.ndjson` files) a server process holds open: the rooms it has loaded. */
export function openRoomLogs(pid: number): number {
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith('.ndjson')) count++;
    } catch {
      // Closed between the listing and the look.
    }
  }
  return count;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts a process that reports its port over IPC (shared/serverIpc.ts), and keeps draining its output (a full
 * pipe would stall it). The channel stays open: without a lease the server takes its closing as its parent gone.
 */
async function startReportingPort(command: string, args: string[]): Promise<RunningServer> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let seen = '';
  const keepTail = (chunk: Buffer): void => void (seen = (seen + chunk.toString()).slice(-500));
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  try {
    const listening = await waitForListening(child, 10_000);
    return { pid: child.pid as number, port: listening.port, stop: () => stopChild(child) };
  } catch (error) {
    await stopChild(child);
    throw new Error(`${command} ${args.join(' ')}: ${(error as Error).message} ${seen}`, { cause: error });
  }
}

/**
 * Starts a process that prints `listening on 127.0.0.1:PORT`, and keeps
 * draining its output (a full pipe would stall it). With `memoryProbe`, the
 * process was started with bench/serverMemoryProbe.js, which answers SIGUSR2.
 */
function startPrintingPort(command: string, args: string[], memoryProbe = false, env?: NodeJS.ProcessEnv): Promise<RunningServer> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  // After the port is known, the output is only looked through for the probe's answer (a line may arrive in pieces).
  let tail = '';
  let awaitingMemory: ((line: string) => void) | undefined;
  const memoryAfterCollection = async (): Promise<ServerMemory | undefined> => {
    if (child.exitCode !== null || child.signalCode !== null) return undefined;
    tail = '';
    const answer = new Promise<string | undefined>((resolveAnswer) => {
      const timer = setTimeout(() => {
        awaitingMemory = undefined;
        resolveAnswer(undefined);
      }, 10_000);
      awaitingMemory = (line) => {
        clearTimeout(timer);
        awaitingMemory = undefined;
        resolveAnswer(line);
      };
    });
    child.kill('SIGUSR2');
    const line = await answer;
    if (line === undefined) return undefined;
    const usage = JSON.parse(line) as Partial<NodeJS.MemoryUsage> & { error?: string };
    if (usage.error !== undefined) throw new Error(`the server's memory probe: ${usage.error}`);
    const kib = (bytes: number | undefined): number => (bytes === undefined ? NaN : bytes / 1024);
    return { residentKiB: kib(usage.rss), heapTotalKiB: kib(usage.heapTotal), heapUsedKiB: kib(usage.heapUsed), externalKiB: kib(usage.external) };
  };
  return new Promise((resolve, reject) => {
    let seen = '';
    let found = false;
    const timer = setTimeout(() => fail(new Error(`${command} ${args.join(' ')} did not report its port within 10 s: ${seen.slice(-500)}`)), 10_000);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      void stopChild(child);
      reject(error);
    };
    child.stderr.on('data', (chunk: Buffer) => {
      if (!found) seen += chunk.toString();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (found) {
        if (!awaitingMemory) return;
        tail = (tail + chunk.toString()).slice(-4096);
        const answer = MEMORY_LINE.exec(tail);
        if (answer) awaitingMemory(answer[1]);
        return;
      }
      seen += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (!match) return;
      found = true;
      clearTimeout(timer);
      resolve({ pid: child.pid as number, port: Number(match[1]), stop: () => stopChild(child), ...(memoryProbe ? { memoryAfterCollection } : {}) });
    });
    child.once('exit', (code) => {
      if (!found) fail(new Error(`${command} exited with ${code} before listening: ${seen.slice(-500)}`));
    });
  });
}

/**
 * This project's server; with persistence on, every message is
 * group-committed and fsynced before it is delivered and acked. Its clients
 * speak protocol 1 or 2: the same server, measured twice, so the figures of
 * both stand side by side in one run.
 */
export function ourServer(serverScript: string, options: { inMemory: boolean; protocol: 'ndjson' | 'ndjson-v2'; memoryProbe: string; diagnosticsDir?: string }): SystemUnderTest {
  const v2 = options.protocol === 'ndjson-v2';
  // For finding out why: a CPU profile of each server process (written when it stops), and a heap snapshot after each collection the probe makes.
  const diagnostics = options.diagnosticsDir === undefined ? [] : ['--cpu-prof', `--diagnostic-dir=${options.diagnosticsDir}`];
  const env = options.diagnosticsDir === undefined ? process.env : { ...process.env, [HEAP_SNAPSHOT_DIR_VARIABLE]: options.diagnosticsDir };
  return {
    label: `chat-room ${v2 ? 'v2' : 'v1'}${options.inMemory ? ' --memory' : ''}`,
    protocol: options.protocol,
    isOurs: true,
    keepsData: !options.inMemory,
    senderReceivesOwnMessage: true,
    maxConnectingPerWorker: 10_000,
    start: (workDir, start = {}) =>
      startPrintingPort(
        process.execPath,
        [
          ...SERVER_NODE_FLAGS,
          // The probe adds a signal handler and nothing else; --expose-gc lets it collect before memory is read.
          '--expose-gc',
          '--require',
          options.memoryProbe,
          ...diagnostics,
          serverScript,
          '--port',
          String(start.port ?? 0),
          ...(options.inMemory ? ['--memory'] : ['--data', join(workDir, 'data')]),
          ...(start.extraArgs ?? []),
        ],
        true,
        env,
      ),
  };
}

export function naiveServer(naiveScript: string): SystemUnderTest {
  return {
    label: 'naive baseline',
    protocol: 'ndjson',
    isOurs: false,
    keepsData: false,
    senderReceivesOwnMessage: true,
    maxConnectingPerWorker: 10_000,
    start: () => startReportingPort(process.execPath, [naiveScript, '--port', '0']),
  };
}

export async function freeLoopbackPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('could not find a free port');
  return address.port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * ngircd with a generated config: loopback only; penalties (its flood
 * throttle) off; no DNS, ident or PAM lookups; no per-address or join limits;
 * pings far apart so idle clients are not probed during the run.
 */
export function ngircdPeer(): SystemUnderTest {
  return {
    label: 'ngircd (C, Debian)',
    protocol: 'irc',
    isOurs: false,
    keepsData: false,
    senderReceivesOwnMessage: false,
    maxConnectingPerWorker: 4,
    start: async (workDir) => {
      const port = await freeLoopbackPort();
      const configPath = join(workDir, 'ngircd.conf');
      writeFileSync(
        configPath,
        `[Global]
Name = bench.localhost
Info = benchmark peer
AdminInfo1 = benchmark
AdminInfo2 = loopback only
AdminEMail = nobody@localhost
Listen = 127.0.0.1
Ports = ${port}
MotdPhrase = "bench"
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
`,
      );
      const child = spawn(NGIRCD_PATH, ['--nodaemon', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.resume();
      child.stderr.resume();
      const running: RunningServer = { pid: child.pid as number, port, stop: () => stopChild(child) };
      for (let attempt = 0; attempt < 100; attempt++) {
        if (child.exitCode !== null) break;
        if (await canConnect(port)) return running;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await running.stop();
      throw new Error(`ngircd did not accept connections on port ${port} within 10 s`);
    },
  };
}
