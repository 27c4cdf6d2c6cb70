/** Reading and writing `host:port` addresses as people type them. */
import * as os from 'node:os';
import { DEFAULT_PORT } from '../shared/protocol';

export interface ServerAddress {
  host: string;
  port: number;
}

/** Parses `host`, `host:port` or `[ipv6]:port`; undefined when it is not an address. */
export function parseAddress(text: string): ServerAddress | undefined {
  const trimmed = text.trim();
  if (!trimmed || /\s/.test(trimmed)) return undefined;
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(trimmed);
  if (bracketed) return withPort(bracketed[1], bracketed[2]);
  const colons = trimmed.split(':').length - 1;
  if (colons > 1) return withPort(trimmed, undefined); // a bare IPv6 address
  const [host, port] = trimmed.split(':');
  if (!host || !/^[A-Za-z0-9.-]+$/.test(host)) return undefined;
  return withPort(host, port);
}

function withPort(host: string, portText: string | undefined): ServerAddress | undefined {
  if (portText === undefined) return { host, port: DEFAULT_PORT };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port > 0 && port <= 65535 ? { host, port } : undefined;
}

export function formatAddress({ host, port }: ServerAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses one address, or several separated by commas: the servers of a
 * cluster, tried in turn when one is out of reach. Undefined when any part
 * is not an address.
 */
export function parseAddressList(text: string): ServerAddress[] | undefined {
  const parts = text.split(',').map((part) => part.trim());
  if (parts.length > MAX_ADDRESSES) return undefined;
  const addresses: ServerAddress[] = [];
  for (const part of parts) {
    const address = parseAddress(part);
    if (!address) return undefined;
    if (!addresses.some((known) => known.host === address.host && known.port === address.port)) addresses.push(address);
  }
  return addresses;
}

export function formatAddressList(addresses: readonly ServerAddress[]): string {
  return addresses.map(formatAddress).join(', ');
}

/** More servers than a person would list by hand; a longer list is a mistake (or a link made to keep a client busy). */
export const MAX_ADDRESSES = 16;

/** This machine's IPv4 addresses that other machines on the network can reach. */
export function lanAddresses(): string[] {
  const found: string[] = [];
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) found.push(address.address);
  }
  return found;
}
