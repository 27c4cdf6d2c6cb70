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
import { mkdir, open, readdir, lstat, chmod, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from './log';

export const FOLDER_MODE = 0o700;
export const FILE_MODE = 0o600;

export class DataFolder {
  private inFlight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

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
    return new DataFolder(path, await open(path, 'r'));
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

  close(): Promise<void> {
    return this.handle.close();
  }
}
