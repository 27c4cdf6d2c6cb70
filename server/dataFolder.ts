/**
 * The server's data folder: room logs, the generated token, the TLS identity.
 *
 * It is for the server's owner alone (0700, its files 0600): the logs hold
 * every message and client id. A folder made by an older version, or by hand,
 * is tightened when the server starts.
 *
 * A file created or renamed in it is durable only once the folder itself is
 * fsynced. The folder's handle is held open for the server's life, so that
 * fsync never needs a new file descriptor (it must still work when a flood
 * has used them all up), and fsyncs asked for together are made once.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { mkdir, open, readdir, lstat, chmod, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from './log';

export const FOLDER_MODE = 0o700;
export const FILE_MODE = 0o600;
/**
 * Names the process that uses the folder. Two servers on one folder would
 * hand out the same sequence numbers and compact over each other's records,
 * losing acknowledged messages, so a second server refuses to start.
 */
export const LOCK_FILE = 'server.pid';

/** Another live server holds the data folder. */
export class DataFolderInUseError extends Error {
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(`the data folder ${path} is in use by another chat server (pid ${pid}); stop that one, or give this one another --data folder`);
  }
}

export class DataFolder {
  private inFlight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  private released = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {
    // A server that exits without closing the folder (an uncaught error) lets the next one start without waiting.
    process.once('exit', this.releaseLockNow);
  }

  /** Makes the folder if need be, takes away every permission of group and others, and opens it. */
  static async prepare(path: string, logger: Logger): Promise<DataFolder> {
    await mkdir(path, { recursive: true, mode: FOLDER_MODE });
    const folderMode = (await lstat(path)).mode & 0o777;
    if ((folderMode & 0o077) !== 0) {
      await chmod(path, FOLDER_MODE);
      logger.warn(`data folder ${path} was readable by others (mode ${folderMode.toString(8)}); it is now ${FOLDER_MODE.toString(8)}`);
    }
    let tightened = 0;
    for (const entry of await readdir(path)) {
      const file = join(path, entry);
      const stats = await lstat(file);
      if (!stats.isFile() || (stats.mode & 0o077) === 0) continue;
      await chmod(file, FILE_MODE);
      tightened += 1;
    }
    if (tightened > 0) logger.warn(`data folder ${path}: ${tightened} file(s) were readable by others; they are now ${FILE_MODE.toString(8)}`);
    await takeLock(path, logger);
    try {
      return new DataFolder(path, await open(path, 'r'));
    } catch (error) {
      await unlink(join(path, LOCK_FILE)).catch(() => undefined);
      throw error;
    }
  }

  /** Makes the folder's entries durable (after a file in it was created or renamed). */
  syncEntries(): Promise<void> {
    // Callers that arrive while an fsync runs need one that starts after their change: they share the next.
    if (this.queued) return this.queued;
    const next: Promise<void> = (this.inFlight ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        this.inFlight = next;
        return this.handle.sync();
      })
      .finally(() => {
        if (this.inFlight === next) this.inFlight = undefined;
      });
    this.queued = next;
    return next;
  }

  async close(): Promise<void> {
    this.releaseLockNow();
    process.removeListener('exit', this.releaseLockNow);
    await this.handle.close();
  }

  private readonly releaseLockNow = (): void => {
    if (this.released) return;
    this.released = true;
    try {
      if (readFileSync(join(this.path, LOCK_FILE), 'utf8').trim() === String(process.pid)) unlinkSync(join(this.path, LOCK_FILE));
    } catch {
      // Gone already.
    }
  };
}

/**
 * Writes this process's pid into the lock file, unless a live chat server's
 * pid is there. A lock left by a server that died (`kill -9`, a power cut) is
 * taken over: its pid is gone, or now belongs to some other program.
 */
async function takeLock(folder: string, logger: Logger): Promise<void> {
  const lockPath = join(folder, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const lock = await open(lockPath, 'wx', FILE_MODE);
      await lock.writeFile(`${process.pid}\n`);
      await lock.sync();
      await lock.close();
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isChatServer(holder)) throw new DataFolderInUseError(folder, holder);
    logger.warn(`data folder ${folder}: taking over the lock of a server that is gone (pid ${holder || 'unknown'})`);
    await unlink(lockPath).catch(() => undefined);
  }
  throw new Error(`could not take the lock of the data folder ${folder}`);
}

/** Whether `pid` is alive and, where the system says (Linux's /proc), runs the same program as this server. */
function isChatServer(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let commandLine: string;
  try {
    commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  return commandLine.includes(basename(process.argv[1] ?? 'server.js'));
}
