/**
 * The coordinator's side of the load generator: the worker processes, and
 * opening, resuming and closing groups of clients in them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cpuMicros, machineBusyMicros, raiseFileLimit, type RunningServer, type SystemUnderTest } from './systemsUnderTest';
import { monotonicMicros, type ClientGroup, type ClientPlan, type CoordinatorCommand, type WorkerReply } from './workerMessages';

const workerScript = join(__dirname, 'loadWorker.js');

/** Source addresses per worker when a phase spreads its connections: each gives about 28,000 ephemeral ports. */
const SOURCE_ADDRESSES_PER_WORKER = 4;

export const sleep = (ms: number): Promise<void> => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

export function median(values: number[]): number {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

type ReplyOf<E extends WorkerReply['event']> = Extract<WorkerReply, { event: E }>;

/** The load-generator processes, and a way to ask each one something and await its answer. */
export class LoadWorkers {
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

  /** Lets each worker open `perWorker` files (sockets); returns the lowest limit that now holds. */
  raiseFileLimits(perWorker: number): number {
    return Math.min(...this.processes.map((child) => raiseFileLimit(child.pid as number, perWorker)));
  }

  /** The loopback source addresses worker `index` spreads its connections over (127.0.0.2 and up; all of 127/8 is loopback on Linux). */
  sourceAddresses(index: number): string[] {
    return Array.from({ length: SOURCE_ADDRESSES_PER_WORKER }, (_, slot) => `127.0.0.${2 + index * SOURCE_ADDRESSES_PER_WORKER + slot}`);
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

export interface OpenedClients {
  joined: number;
  failed: number;
  /** Attempts made again after a failure (a resume only). */
  retries: number;
  firstError?: string;
  /** From the first connect to the last client joined (welcomed, and for v2 every join acked). */
  elapsedMs: number;
  firstConnectMicros: number;
  lastJoinedMicros: number;
}

export interface OpenOptions {
  maxInFlightPerWorker: number;
  timeoutMs?: number;
  /** Spread the connections over several loopback source addresses (for tens of thousands of them). */
  spreadSources?: boolean;
  /** Remember each client's latest seq per room, for a resume after a restart. */
  trackSeqs?: boolean;
}

function openedFrom(replies: ReplyOf<'opened'>[]): OpenedClients {
  const started = replies.map((reply) => reply.firstConnectMicros).filter((micros) => micros > 0);
  const firstConnectMicros = started.length > 0 ? Math.min(...started) : 0;
  const lastJoinedMicros = Math.max(...replies.map((reply) => reply.lastJoinedMicros));
  return {
    joined: replies.reduce((sum, reply) => sum + reply.joined, 0),
    failed: replies.reduce((sum, reply) => sum + reply.failed, 0),
    retries: replies.reduce((sum, reply) => sum + reply.retries, 0),
    firstError: replies.find((reply) => reply.firstError)?.firstError,
    elapsedMs: (lastJoinedMicros - firstConnectMicros) / 1000,
    firstConnectMicros,
    lastJoinedMicros,
  };
}

/** Opens clients dealt round-robin to the workers; returns how many joined and when the first connect and last join happened. */
export async function openClients(workers: LoadWorkers, server: RunningServer, system: SystemUnderTest, group: ClientGroup, plans: ClientPlan[], options: OpenOptions): Promise<OpenedClients> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const replies = await workers.askAll(
    (worker) => ({
      cmd: 'open',
      group,
      protocol: system.protocol,
      port: server.port,
      clients: plans.filter((_, index) => index % workers.count === worker),
      maxInFlight: options.maxInFlightPerWorker,
      maxConnecting: system.maxConnectingPerWorker,
      timeoutMs,
      localAddresses: options.spreadSources ? workers.sourceAddresses(worker) : [],
      trackSeqs: options.trackSeqs === true,
    }),
    'opened',
    timeoutMs + 5_000,
  );
  return openedFrom(replies);
}

/** Connects a group's clients again, to a restarted server, each rejoining its rooms from the latest seq it saw. */
export async function resumeClients(workers: LoadWorkers, server: RunningServer, group: ClientGroup, options: OpenOptions & { maxConnectingPerWorker: number }): Promise<OpenedClients> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const replies = await workers.askAll(
    (worker) => ({
      cmd: 'resume',
      group,
      port: server.port,
      maxInFlight: options.maxInFlightPerWorker,
      maxConnecting: options.maxConnectingPerWorker,
      timeoutMs,
      localAddresses: options.spreadSources ? workers.sourceAddresses(worker) : [],
    }),
    'opened',
    timeoutMs + 5_000,
  );
  return openedFrom(replies);
}

export async function closeClients(workers: LoadWorkers, group: ClientGroup): Promise<void> {
  await workers.askAll(() => ({ cmd: 'close', group }), 'closed', 30_000);
}

/** Cores busy over a stretch of time: the server, the load generator, and everything else on the machine (other people's work). */
export interface CoreUse {
  server: number;
  generator: number;
  other: number;
}

/** Starts counting; the function it returns gives the cores used since (by `serverPid`, the workers, and the rest of the machine). */
export function countCores(workers: LoadWorkers, serverPid: () => number | undefined): () => CoreUse {
  const pid = serverPid();
  const serverBefore = pid === undefined ? 0 : cpuMicros(pid);
  const generatorBefore = workers.cpuMicros();
  const machineBefore = machineBusyMicros();
  const wallBefore = monotonicMicros();
  return () => {
    const wall = monotonicMicros() - wallBefore;
    const pidNow = serverPid();
    // A server that was restarted meanwhile is counted from its start.
    const server = pidNow === undefined ? 0 : (cpuMicros(pidNow) - (pidNow === pid ? serverBefore : 0)) / wall;
    const generator = (workers.cpuMicros() - generatorBefore) / wall;
    const other = Math.max(0, (machineBusyMicros() - machineBefore) / wall - server - generator);
    return { server, generator, other };
  };
}

export function describeCores(cores: CoreUse): string {
  return `cores busy: server ${cores.server.toFixed(2)}, load generator ${cores.generator.toFixed(2)}, other ${cores.other.toFixed(2)}`;
}
