/**
 * `--lease FILE`: the server outlives the window that started it, and stops
 * itself once no window holds it any more (see shared/serverLease.ts).
 *
 * Without `--lease` a server started with an IPC channel (the extension's
 * fork) stops when that channel goes away, as it always did.
 */
import { readFileSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DEFAULT_KEEP_ALIVE_MS, EXIT_NOTE_FILE, type ExitNote, parseLease } from '../shared/serverLease';
import type { Logger } from './log';

export const LEASE_OPTIONS = { lease: { type: 'string' } } as const;

export const LEASE_USAGE = `  --lease FILE                  stay up while FILE (a JSON lease) is rewritten by its holders,
                                stop when it asks to or has not been rewritten for its
                                keepAliveMs; the exit is noted in ${EXIT_NOTE_FILE} beside it
`;

/**
 * Watches the lease (or the parent's IPC channel when there is none) and
 * calls `stop` once, with the reason, when the server should go.
 */
export function holdLease(file: string | undefined, stop: (why: string) => void, logger: Logger): void {
  if (file === undefined) {
    // Started by a parent with an IPC channel: if the parent goes away, so does the server.
    process.on('disconnect', () => stop('parent gone'));
    return;
  }
  let reason = 'exited';
  const stopOnce = (why: string) => {
    reason = why;
    stop(why);
  };
  // Until the lease is read, the server counts as held since it started.
  let heldAt = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;

  const check = () => {
    clearTimeout(timer);
    let lease;
    try {
      heldAt = statSync(file).mtimeMs;
      lease = parseLease(readFileSync(file, 'utf8'));
    } catch {
      // A missing or unreadable lease is not being renewed: it lapses from when it last was.
    }
    if (lease?.stop) return finish('asked to stop (Stop Chat Server)');
    const keepAliveMs = lease?.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    const idleMs = Date.now() - heldAt;
    if (idleMs > keepAliveMs) return finish(`no window has held the server for ${describeDuration(idleMs)}`);
    timer = setTimeout(check, Math.max(250, Math.min(15_000, keepAliveMs / 4)));
  };
  const finish = (why: string) => {
    watcher?.close();
    clearTimeout(timer);
    stopOnce(why);
  };
  try {
    // The directory, not the file: holders replace the file, which ends a watch on it.
    watcher = watch(dirname(file), (_event, name) => {
      if (name === null || name === basename(file)) check();
    });
    watcher.on('error', () => undefined);
  } catch {
    // Polling alone still finds a stop request within a quarter of the keep-alive.
  }
  check();
  logger.info(`held by the lease ${file}`);

  // The first cause stands: a window that asked to stop sends SIGTERM when the shutdown is slow,
  // and that is still the stop the person asked for.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (reason = reason === 'exited' ? signal : reason));
  process.on('exit', (code) => {
    const note: ExitNote = { pid: process.pid, code, reason, at: Date.now() };
    try {
      writeFileSync(join(dirname(file), EXIT_NOTE_FILE), JSON.stringify(note) + '\n');
    } catch {
      // The note only tells a crash from a stop; without it the windows assume a crash.
    }
  });
}

function describeDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} minutes`;
}
