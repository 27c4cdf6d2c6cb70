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

/** A move to another server of a cluster waits at most this long, at random (so a room does not arrive in one burst). */
export const FAILOVER_JITTER_MS = 100;

export interface ServerEndpoint {
  host: string;
  port: number;
}

/**
 * The servers a client may use (a cluster's, docs/scaling.md): the primary
 * first, then the alternates. When the one in use drops or cannot be
 * reached, the next is tried at once; only when every one has failed since
 * the last welcome does the client wait (backoff) before another round.
 */
export class ServerRotation {
  private index = 0;
  /** Servers that failed since the last welcome (or the last full round). */
  private failedInRound = 0;
  readonly servers: readonly ServerEndpoint[];

  constructor(primary: ServerEndpoint, alternates: readonly ServerEndpoint[] = []) {
    this.servers = [{ host: primary.host, port: primary.port }, ...alternates.map(({ host, port }) => ({ host, port }))];
  }

  /** The server in use, or being tried. */
  get current(): ServerEndpoint {
    return this.servers[this.index];
  }

  /** The server in use let us in: a later failure starts a new round. */
  welcomed(): void {
    this.failedInRound = 0;
  }

  /**
   * The server in use failed: the next one becomes current. True when it is
   * to be tried at once; false when the round is over (every server failed),
   * and the client backs off before trying again.
   */
  failed(): boolean {
    if (this.servers.length <= 1) return false;
    this.index = (this.index + 1) % this.servers.length;
    this.failedInRound += 1;
    if (this.failedInRound < this.servers.length) return true;
    this.failedInRound = 0;
    return false;
  }
}
