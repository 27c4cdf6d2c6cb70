/**
 * The files through which the extension's windows keep a chat server they
 * started alive, and learn how it ended. They live in the server's data
 * folder, beside its history, so a server and the windows holding it always
 * agree on where to look. The server reads the lease and writes the exit
 * note; the windows write the lease and read the exit note.
 *
 * The lease is a small JSON file that every window attached to the server
 * rewrites every so often (its modification time is the "last held" time).
 * The server stops gracefully when the lease asks it to (Stop Chat Server) or
 * when nobody has rewritten it for `keepAliveMs` (every window is gone).
 */
import { join } from 'node:path';

export const LEASE_FILE = 'lease.json';
export const EXIT_NOTE_FILE = 'exit.json';

export interface Lease {
  /** How long the server may go without a window holding it before it stops. */
  keepAliveMs: number;
  /** Set by Stop Chat Server: stop now. */
  stop?: boolean;
}

/** Written by the server as it exits; a server that leaves none was killed or crashed. */
export interface ExitNote {
  pid: number;
  /** The process exit code: 0 after a graceful shutdown. */
  code: number;
  /** Why it stopped, for the log and the status bar. */
  reason: string;
  /** Epoch ms. */
  at: number;
}

export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;
/** The shortest keep-alive a lease may ask for; less would race a window's renewal. */
export const MIN_KEEP_ALIVE_MS = 3_000;

export function leasePath(dataDir: string): string {
  return join(dataDir, LEASE_FILE);
}

export function exitNotePath(dataDir: string): string {
  return join(dataDir, EXIT_NOTE_FILE);
}

/** How often a holder rewrites the lease: often enough that a late renewal never looks like a lapse. */
export function renewEveryMs(keepAliveMs: number): number {
  return Math.max(1_000, Math.min(30_000, Math.floor(keepAliveMs / 3)));
}

/** Reads a lease file's text; anything malformed reads as no lease. */
export function parseLease(text: string): Lease | undefined {
  try {
    const value = JSON.parse(text) as Partial<Lease>;
    if (typeof value !== 'object' || value === null || typeof value.keepAliveMs !== 'number' || !Number.isFinite(value.keepAliveMs)) return undefined;
    return { keepAliveMs: Math.max(MIN_KEEP_ALIVE_MS, value.keepAliveMs), ...(value.stop === true ? { stop: true } : {}) };
  } catch {
    return undefined;
  }
}

export function parseExitNote(text: string): ExitNote | undefined {
  try {
    const value = JSON.parse(text) as Partial<ExitNote>;
    if (typeof value?.pid !== 'number' || typeof value.code !== 'number') return undefined;
    return { pid: value.pid, code: value.code, reason: typeof value.reason === 'string' ? value.reason : '', at: typeof value.at === 'number' ? value.at : 0 };
  } catch {
    return undefined;
  }
}
