/** What the benchmark's coordinator and its load workers say to each other over IPC. */
import type { HistogramSnapshot } from './latencyHistogram';

/** NDJSON is this project's protocol (ours and the naive baseline); IRC is the ngircd peer. */
export type WireProtocol = 'ndjson' | 'irc';

/** Clients are opened in named groups so one phase can be closed without touching another. */
export type ClientGroup = 'load' | 'join' | 'idle';

export interface ClientPlan {
  name: string;
  room: string;
}

export type CoordinatorCommand =
  | { cmd: 'open'; group: ClientGroup; protocol: WireProtocol; port: number; clients: ClientPlan[]; maxInFlight: number; maxConnecting: number; timeoutMs: number }
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
  | { cmd: 'counts'; run: number }
  | { cmd: 'report'; run: number }
  | { cmd: 'close'; group: ClientGroup }
  | { cmd: 'exit' };

export type WorkerReply =
  | { event: 'opened'; group: ClientGroup; joined: number; failed: number; firstConnectMicros: number; lastJoinedMicros: number; firstError?: string }
  | { event: 'sent'; run: number; sent: number }
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
