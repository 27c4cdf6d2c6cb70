/** Facts about network addresses that the server and the extension both need. */
import { isIP } from 'node:net';

/**
 * Whether a host name or address reaches only this machine: `localhost`,
 * `::1`, 127.0.0.0/8, and 127.x written as an IPv4-mapped IPv6 address.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  if (host === 'localhost' || host === '::1') return true;
  const plain = host.startsWith('::ffff:') ? host.slice(7) : host;
  return isIP(plain) === 4 && plain.startsWith('127.');
}

/** Whether a server bound to `host` can be reached from this machine through loopback (a wildcard bind included). */
export function isReachableThroughLoopback(host: string): boolean {
  return isLoopbackHost(host) || host === '0.0.0.0' || host === '::';
}
