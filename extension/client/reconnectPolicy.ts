/**
 * How long a client waits before it tries a dropped connection again: doubling
 * from a first delay up to a cap, with jitter. A pure function of its inputs,
 * so the schedule is tested without sockets or clocks.
 */
import { isLoopbackHost } from '../../shared/addresses';

export const INITIAL_BACKOFF_MS = 500;
export const MAX_BACKOFF_MS = 30_000;
/**
 * A loopback server that refuses connections is one being restarted on this
 * machine; trying every 2 s or so costs nothing, and brings the room back
 * within a few seconds of the server listening again.
 */
export const MAX_LOOPBACK_BACKOFF_MS = 2_000;

export interface BackoffPolicy {
  /** The first delay; it doubles on each failure up to `maxMs`. */
  initialMs: number;
  maxMs: number;
  /** The cap while a server on this machine refuses connections (it is restarting). */
  maxLoopbackMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: INITIAL_BACKOFF_MS, maxMs: MAX_BACKOFF_MS, maxLoopbackMs: MAX_LOOPBACK_BACKOFF_MS };

/** Whether a failed attempt looks like a server on this machine restarting: it refused the connection. */
export function looksLikeRestart(host: string, errorCode: string | undefined): boolean {
  return errorCode === 'ECONNREFUSED' && isLoopbackHost(host);
}

/**
 * The wait before attempt `attempt + 1` (`attempt` failures so far, from 0).
 * `random` is in [0, 1): the jitter (±20 %) keeps a room full of clients from
 * reconnecting in lockstep after a restart.
 */
export function reconnectDelay(policy: BackoffPolicy, attempt: number, restarting: boolean, random: number): number {
  const cap = restarting ? Math.min(policy.maxMs, policy.maxLoopbackMs) : policy.maxMs;
  const exponential = Math.min(cap, policy.initialMs * 2 ** attempt);
  return Math.min(cap, Math.round(exponential * (0.8 + random * 0.4)));
}
