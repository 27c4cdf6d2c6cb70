/**
 * Who may say hello: the token check and the lock-out of addresses that keep
 * guessing. Loopback is never locked out, so a local user cannot be shut out
 * by their own mistakes (nor by another local process). An IPv6 peer is
 * locked out with its whole /64 (see addressKey).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isLoopbackHost } from '../shared/addresses';
import { TOKEN_MAX_CHARS } from '../shared/protocol';
import { addressKey } from './addressLimits';

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

  isLockedOut(address: string | undefined): boolean {
    if (!address || this.isExempt(address)) return false;
    const key = addressKey(address);
    const until = this.lockedUntil.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.lockedUntil.delete(key);
    return false;
  }

  /**
   * Checks a hello's token; comparing digests keeps the time the same whatever
   * the token's length. A token longer than TOKEN_MAX_CHARS is wrong, never
   * cut short (cut, it could match a token it is not).
   */
  check(token: string | undefined, address: string | undefined): AccessVerdict {
    if (this.isLockedOut(address)) return 'locked_out';
    if (this.tokenDigest === undefined) return 'allowed';
    if (token !== undefined && token.length <= TOKEN_MAX_CHARS && timingSafeEqual(digest(token), this.tokenDigest)) return 'allowed';
    this.noteFailure(address);
    return 'unauthorized';
  }

  private isExempt(address: string): boolean {
    return this.exemptLoopback && isLoopbackHost(address);
  }

  private noteFailure(address: string | undefined): void {
    if (!address || this.isExempt(address)) return;
    const key = addressKey(address);
    const now = this.now();
    if (this.failures.size + this.lockedUntil.size > MAX_TRACKED_ADDRESSES) this.forgetStale(now);
    const recent = (this.failures.get(key) ?? []).filter((at) => now - at < this.options.failureWindowMs);
    recent.push(now);
    if (recent.length >= this.options.maxFailures) {
      this.lockedUntil.set(key, now + this.options.lockoutMs);
      this.failures.delete(key);
    } else {
      this.failures.set(key, recent);
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
