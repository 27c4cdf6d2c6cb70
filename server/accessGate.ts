/**
 * Who may say hello: the token check and the lock-out of addresses that keep
 * guessing. Loopback is never locked out, so a local user cannot be shut out
 * by their own mistakes (nor by another local process). An IPv6 peer is
 * locked out with its whole /64 (see addressKey).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isLoopbackHost } from '../shared/addresses';
import { TOKEN_MAX_CHARS } from '../shared/protocol';
import { addressKey, rememberAtMost } from './addressLimits';

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

  /** Counts a failed proof from this address (a wrong token, or a wrong identity key) towards its lock-out. */
  noteFailure(address: string | undefined): void {
    if (!address || this.isExempt(address)) return;
    const key = addressKey(address);
    const now = this.now();
    const recent = (this.failures.get(key) ?? []).filter((at) => now - at < this.options.failureWindowMs);
    recent.push(now);
    // Both tables are bounded, least recently seen first out, so a peer cycling through addresses cannot grow them.
    // Lock-outs all last as long, so the first out is also the first to run out.
    if (recent.length >= this.options.maxFailures) {
      rememberAtMost(this.lockedUntil, key, now + this.options.lockoutMs);
      this.failures.delete(key);
    } else {
      rememberAtMost(this.failures, key, recent);
    }
  }
}
