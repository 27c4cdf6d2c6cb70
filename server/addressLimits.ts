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

/** How many addresses a per-address table remembers; past it, the least recently seen is forgotten. */
export const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * Sets `key` as the most recently seen entry of `table` (a Map keeps its
 * insertion order) and forgets the least recently seen ones past `max`. Each
 * call costs the same however many addresses a peer cycles through: sweeping
 * the table for stale entries instead cost a scan of it per new address once
 * it was full of fresh ones.
 */
export function rememberAtMost<V>(table: Map<string, V>, key: string, value: V, max = MAX_TRACKED_ADDRESSES): void {
  table.delete(key);
  table.set(key, value);
  while (table.size > max) table.delete(table.keys().next().value as string);
}

/**
 * At most `perMinute` of something per address: that many at once, then one
 * every 60/perMinute seconds. Loopback is exempt unless `exemptLoopback` is
 * false (tests, which can only reach the server through loopback), as with
 * the lock-out: a person on the server's own machine is not a stranger.
 */
export class PerAddressRate {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perMinute: number,
    private readonly exemptLoopback: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one for this address; false when it has had its share. A limit of 0 means no limit. */
  tryTake(address: string | undefined): boolean {
    if (this.perMinute === 0 || address === undefined || (this.exemptLoopback && isLoopbackHost(address))) return true;
    const key = addressKey(address);
    // Forgetting an address gives it a full bucket again, which only matters past MAX_TRACKED_ADDRESSES peers.
    const bucket = this.buckets.get(key) ?? new TokenBucket(this.perMinute, this.perMinute / 60, this.now);
    rememberAtMost(this.buckets, key, bucket);
    return bucket.tryTake();
  }
}
