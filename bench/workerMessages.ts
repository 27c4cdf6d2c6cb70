/** What the benchmark's coordinator and its load workers say to each other over IPC, and what our server's memory probe answers it. */
import type { HistogramSnapshot } from './latencyHistogram';

/** NDJSON protocol 1 and 2 are this project's (ours and the naive baseline speak 1); IRC is the ngircd peer. */
export type WireProtocol = 'ndjson' | 'ndjson-v2' | 'irc';

/** Clients are opened in named groups so one phase can be closed without touching another. */
export type ClientGroup = 'load' | 'join' | 'idle' | 'rooms' | 'storm' | 'search';

export interface ClientPlan {
  name: string;
  /** A v1 or IRC client's one room; a v2 client joins each in turn after its welcome (none: it only says hello). */
  rooms: string[];
  /** A v2 identity's key, proposed in its first hello and presented in every later one. */
  key?: string;
}

export type CoordinatorCommand =
  | {
      cmd: 'open';
      group: ClientGroup;
      protocol: WireProtocol;
      port: number;
      clients: ClientPlan[];
      maxInFlight: number;
      maxConnecting: number;
      timeoutMs: number;
      /** Loopback source addresses (127.0.0.x) dealt round-robin to the clients, so many connections do not run out of ephemeral ports; empty: the kernel picks. */
      localAddresses: string[];
      /** Remember the latest seq seen in each room, for a `resume` after a restart. */
      trackSeqs: boolean;
    }
  /** Connects every client of the group again (to a restarted server), each rejoining its rooms from the latest seq it saw. */
  | { cmd: 'resume'; group: ClientGroup; port: number; maxInFlight: number; maxConnecting: number; timeoutMs: number; localAddresses: string[] }
  | {
      cmd: 'load';
      run: number;
      startMicros: number;
      durationMs: number;
      sendIntervalMs: number;
      textPadding: number;
      /** Clients are dealt round-robin to workers; these place each one's first send evenly across one interval. */
      workerIndex: number;
      workerCount: number;
      totalClients: number;
    }
  /** Each client of the `search` group sends one search every `intervalMs` (its first at an even offset) until the end, and times the answer. */
  | { cmd: 'search'; run: number; startMicros: number; durationMs: number; intervalMs: number; room: string; terms: SearchTerm[]; workerIndex: number; workerCount: number; totalSearchers: number }
  | { cmd: 'counts'; run: number }
  | { cmd: 'report'; run: number }
  | { cmd: 'close'; group: ClientGroup }
  | { cmd: 'exit' };

/** A search text and the label its latencies are reported under. */
export interface SearchTerm {
  label: string;
  text: string;
}

export interface SearchReport {
  label: string;
  sent: number;
  answered: number;
  /** Answers that were errors (rate_limited and the like), counted apart from the latencies. */
  refused: number;
  firstRefusal?: string;
  histogram: HistogramSnapshot;
}

export type WorkerReply =
  | { event: 'opened'; group: ClientGroup; joined: number; failed: number; retries: number; firstConnectMicros: number; lastJoinedMicros: number; firstError?: string }
  | { event: 'sent'; run: number; sent: number }
  | { event: 'searched'; run: number; searches: SearchReport[] }
  | { event: 'counts'; run: number; received: number }
  | {
      event: 'report';
      run: number;
      sent: number;
      received: number;
      acks: number;
      errors: number;
      firstError?: string;
      lastReceivedMicros: number;
      histogram: HistogramSnapshot;
    }
  | { event: 'closed'; group: ClientGroup };

/** CLOCK_MONOTONIC in microseconds: the same clock in every process on the machine, so a sender's stamp means the same to a receiver. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The line bench/serverMemoryProbe.ts prints after each full collection: this prefix, then process.memoryUsage() as JSON. */
export const MEMORY_LINE_PREFIX = 'bench-memory ';
/** Set by `npm run bench -- --server-diagnostics DIR`: the probe writes a heap snapshot there after each collection. */
export const HEAP_SNAPSHOT_DIR_VARIABLE = 'CHAT_ROOM_BENCH_HEAP_SNAPSHOTS';
