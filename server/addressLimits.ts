/**
 * Limits per address: how the server tells peers apart when it counts what
 * one of them does (new connections, new rooms, failed hellos).
 */
import { isIP } from 'node:net';
import { isLoopbackHost } from '../shared/addresses';
import { TokenBucket } from './rateLimiter';

/**
 * The unit the server counts and locks out: an IPv4 address, or the /64
 * prefix of an IPv6 address. One host is usually given a whole /64, so
 * counting single IPv6 addresses would let it change address with every try.
 */
export function addressKey(address: string): string {
  const zoneless = address.split('%')[0];
  if (zoneless.toLowerCase().startsWith('::ffff:') && isIP(zoneless.slice(7)) === 4) return zoneless.slice(7);
  if (isIP(zoneless) !== 6) return zoneless;
  const [head, tail] = zoneless.includes('::') ? zoneless.split('::') : [zoneless, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  // An embedded IPv4 address at the end stands for two groups.
  const tailCount = tailGroups.reduce((count, group) => count + (group.includes('.') ? 2 : 1), 0);
  const groups = tail === undefined ? headGroups : [...headGroups, ...new Array<string>(8 - headGroups.length - tailCount).fill('0'), ...tailGroups];
  return groups.slice(0, 4).map((group) => parseInt(group, 16).toString(16)).join(':') + '::/64';
}

/** Past this many remembered addresses, those that have been quiet for a minute are forgotten. */
const MAX_TRACKED_ADDRESSES = 10_000;
const MINUTE_MS = 60_000;

/**
 * At most `perMinute` of something per address: that many at once, then one
 * every 60/perMinute seconds. Loopback is exempt unless `exemptLoopback` is
 * false (tests, which can only reach the server through loopback), as with
 * the lock-out: a person on the server's own machine is not a stranger.
 */
export class PerAddressRate {
  private readonly buckets = new Map<string, { bucket: TokenBucket; usedAt: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly exemptLoopback: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one for this address; false when it has had its share. A limit of 0 means no limit. */
  tryTake(address: string | undefined): boolean {
    if (this.perMinute === 0 || address === undefined || (this.exemptLoopback && isLoopbackHost(address))) return true;
    const key = addressKey(address);
    const now = this.now();
    let entry = this.buckets.get(key);
    if (!entry) {
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES) this.forgetQuiet(now);
      entry = { bucket: new TokenBucket(this.perMinute, this.perMinute / 60, this.now), usedAt: now };
      this.buckets.set(key, entry);
    }
    entry.usedAt = now;
    return entry.bucket.tryTake();
  }

  /** A bucket untouched for a minute is full again, the same as a new one, so it can go. */
  private forgetQuiet(now: number): void {
    for (const [key, entry] of this.buckets) {
      if (now - entry.usedAt >= MINUTE_MS) this.buckets.delete(key);
    }
  }
}
