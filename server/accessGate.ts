/**
 * Who may say hello: the token check and the lock-out of addresses that keep
 * guessing. Loopback is never locked out, so a local user cannot be shut out
 * by their own mistakes (nor by another local process).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isLoopbackHost } from '../shared/addresses';

export interface AccessGateOptions {
  token: string | undefined;
  /** Failed hellos from one address within the window before it is locked out. */
  maxFailures: number;
  failureWindowMs: number;
  lockoutMs: number;
  /** Loopback is exempt unless this is false (tests, which can only reach the server through loopback). */
  exemptLoopback?: boolean;
  now?: () => number;
}

/** Past this many remembered addresses, stale ones are swept before another is added. */
const MAX_TRACKED_ADDRESSES = 10_000;

export type AccessVerdict = 'allowed' | 'unauthorized' | 'locked_out';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}


export class AccessGate {
  private readonly tokenDigest: Buffer | undefined;
  private readonly failures = new Map<string, number[]>();
  private readonly lockedUntil = new Map<string, number>();
  private readonly now: () => number;
  private readonly exemptLoopback: boolean;

  constructor(private readonly options: AccessGateOptions) {
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
    this.now = options.now ?? Date.now;
    this.exemptLoopback = options.exemptLoopback ?? true;
  }

  get requiresToken(): boolean {
    return this.tokenDigest !== undefined;
  }

  isLockedOut(address: string | undefined): boolean {
    if (!address || this.isExempt(address)) return false;
    const until = this.lockedUntil.get(address);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.lockedUntil.delete(address);
    return false;
  }

  /** Checks a hello's token; comparing digests keeps the time the same whatever the token's length. */
  check(token: string | undefined, address: string | undefined): AccessVerdict {
    if (this.isLockedOut(address)) return 'locked_out';
    if (this.tokenDigest === undefined) return 'allowed';
    if (token !== undefined && timingSafeEqual(digest(token), this.tokenDigest)) return 'allowed';
    this.noteFailure(address);
    return 'unauthorized';
  }

  private isExempt(address: string): boolean {
    return this.exemptLoopback && isLoopbackHost(address);
  }

  private noteFailure(address: string | undefined): void {
    if (!address || this.isExempt(address)) return;
    const now = this.now();
    if (this.failures.size + this.lockedUntil.size > MAX_TRACKED_ADDRESSES) this.forgetStale(now);
    const recent = (this.failures.get(address) ?? []).filter((at) => now - at < this.options.failureWindowMs);
    recent.push(now);
    if (recent.length >= this.options.maxFailures) {
      this.lockedUntil.set(address, now + this.options.lockoutMs);
      this.failures.delete(address);
    } else {
      this.failures.set(address, recent);
    }
  }

  /**
   * Drops failures older than the window and lock-outs that have run out, so a
   * peer that keeps changing its address cannot grow these maps without bound.
   */
  private forgetStale(now: number): void {
    for (const [address, times] of this.failures) {
      if (now - times[times.length - 1] >= this.options.failureWindowMs) this.failures.delete(address);
    }
    for (const [address, until] of this.lockedUntil) {
      if (until <= now) this.lockedUntil.delete(address);
    }
  }
}
