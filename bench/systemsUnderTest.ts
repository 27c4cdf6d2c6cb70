/**
 * The servers the benchmark measures, each started as its own child process
 * on loopback and stopped by its own PID, and what /proc says about them.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { WireProtocol } from './workerMessages';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';
import { waitForListening } from '../shared/serverIpc';

export const NGIRCD_PATH = '/usr/sbin/ngircd';

export interface RunningServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

export interface SystemUnderTest {
  label: string;
  protocol: WireProtocol;
  /** IRC does not echo a PRIVMSG to its sender; our protocol does (the sender sees its message confirmed in order). */
  senderReceivesOwnMessage: boolean;
  /** Most connections that may wait in the TCP handshake at once, per worker: ngircd listens with a backlog of 10 and drops SYNs past it. */
  maxConnectingPerWorker: number;
  /** Starts a fresh instance keeping any files in `workDir`. */
  start(workDir: string): Promise<RunningServer>;
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

/** This project's server; with persistence on, every message is group-committed and fsynced before it is delivered and acked. */
export function ourServer(serverScript: string, inMemory: boolean): SystemUnderTest {
  return {
    label: inMemory ? 'chat-room --memory' : 'chat-room server',
    protocol: 'ndjson',
    senderReceivesOwnMessage: true,
    maxConnectingPerWorker: 10_000,
    start: (workDir) => startReportingPort(process.execPath, [...SERVER_NODE_FLAGS, serverScript, '--port', '0', ...(inMemory ? ['--memory'] : ['--data', join(workDir, 'data')])]),
  };
}

export function naiveServer(naiveScript: string): SystemUnderTest {
  return {
    label: 'naive baseline',
    protocol: 'ndjson',
    senderReceivesOwnMessage: true,
    maxConnectingPerWorker: 10_000,
    start: () => startReportingPort(process.execPath, [naiveScript, '--port', '0']),
  };
}

async function freeLoopbackPort(): Promise<number> {
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
