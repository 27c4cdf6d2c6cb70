/**
 * A durable append-only file of newline-terminated records.
 *
 * Appends are group-committed: whatever arrives in one turn of the event loop
 * (and whatever arrives while a write is under way) goes out in one write and
 * one fsync, and each append's promise resolves only after that fsync. A
 * failed write is cut back to the last whole record, so the file never holds
 * half a record that a later append would glue onto.
 *
 * `rewrite` replaces the whole file atomically (a temporary file, fsync,
 * rename, fsync of the folder), for compaction. If anything fails after the
 * rename, the journal fails closed: every later append is refused until the
 * file is open again, so nothing is acknowledged that went to a file nobody
 * will read.
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from './log';

interface PendingRecord {
  bytes: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface OpenedJournal {
  journal: Journal;
  /** Each whole record on disk, oldest first, without its newline. */
  records: Buffer[];
}

/** Files are readable by the server's user alone: they hold people's words and secrets' digests. */
export const PRIVATE_FILE_MODE = 0o600;

export class Journal {
  private batch: PendingRecord[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Set when the file could not be reopened after a rewrite; appends are refused. */
  private broken: Error | undefined;

  private constructor(
    private file: fs.FileHandle,
    readonly path: string,
    /** Bytes of the file known to be whole records; a failed write is cut back to this. */
    private goodBytes: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens (or creates) the file and reads it back. A torn last record, left by
   * a crash in the middle of a write, is cut off; a record `isWhole` rejects
   * anywhere else is skipped with a log line, never fatal.
   */
  static async open(path: string, logger: Logger, isWhole: (line: Buffer) => boolean): Promise<OpenedJournal> {
    const existed = await fileExists(path);
    const file = await fs.open(path, 'a+', PRIVATE_FILE_MODE);
    try {
      // A new file's name must reach the disk too, or a crash could lose the file and what was acked into it.
      if (!existed) await syncDirectory(dirname(path));
      const content = await file.readFile();
      let goodBytes = content.lastIndexOf(0x0a) + 1;
      if (goodBytes < content.length) {
        logger.warn(`${path}: dropped a torn last record (${content.length - goodBytes} bytes) left by an interrupted write`);
        await file.truncate(goodBytes);
        await file.sync();
      }
      const records: Buffer[] = [];
      let start = 0;
      let lineNumber = 0;
      while (start < goodBytes) {
        const end = content.indexOf(0x0a, start);
        const line = content.subarray(start, end);
        lineNumber += 1;
        if (isWhole(line)) {
          records.push(Buffer.from(line));
        } else if (end + 1 === goodBytes) {
          // The last line has its newline but not all of its bytes (a torn page): drop it.
          logger.warn(`${path}: dropped a torn last record at line ${lineNumber}`);
          goodBytes = start;
          await file.truncate(goodBytes);
          await file.sync();
        } else {
          logger.warn(`${path}: skipped an unreadable record at line ${lineNumber}`);
        }
        start = end + 1;
      }
      return { journal: new Journal(file, path, goodBytes, logger), records };
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Stores one record (which must end with a newline); resolves once it is on disk. */
  append(bytes: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.path} is closed`));
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.batch.push({ bytes, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.batch.length > 0) this.scheduleFlush();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    try {
      if (this.broken) throw this.broken;
      const bytes = batch.length === 1 ? batch[0].bytes : Buffer.concat(batch.map((record) => record.bytes));
      await writeAll(this.file, bytes);
      await this.file.datasync();
      this.goodBytes += bytes.length;
      for (const record of batch) record.resolve();
    } catch (error) {
      await this.cutBackToGoodBytes();
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const record of batch) record.reject(failure);
    }
  }

  /** After a failed write (a full disk), remove any part-record so the file stays whole. */
  private async cutBackToGoodBytes(): Promise<void> {
    if (this.broken) return;
    try {
      await this.file.truncate(this.goodBytes);
    } catch (error) {
      this.logger.error(`${this.path}: could not cut back a failed write: ${String(error)}`);
    }
  }

  /**
   * Replaces the file's content with `records` (each without its newline),
   * after every append made so far is on disk. A crash at any point leaves
   * either the old file or the new one.
   */
  async rewrite(records: readonly Buffer[]): Promise<void> {
    while (this.flushing || this.flushScheduled) await (this.flushing ?? new Promise((resolve) => setImmediate(resolve)));
    if (this.closed) throw new Error(`${this.path} is closed`);
    if (this.broken) throw this.broken;
    const temporaryPath = this.path + '.rewrite';
    const bytes = Buffer.concat(records.flatMap((record) => [record, NEWLINE]));
    const temporary = await fs.open(temporaryPath, 'w', PRIVATE_FILE_MODE);
    try {
      await writeAll(temporary, bytes);
      await temporary.sync();
    } finally {
      await temporary.close();
    }
    await fs.rename(temporaryPath, this.path);
    try {
      await syncDirectory(dirname(this.path));
      await this.file.close();
      // The old handle points at the replaced file; appends must go to the new one.
      this.file = await fs.open(this.path, 'a+', PRIVATE_FILE_MODE);
      this.goodBytes = bytes.length;
    } catch (error) {
      this.broken = new Error(`${this.path} could not be reopened after compaction: ${String(error)}`);
      this.logger.error(this.broken.message);
      throw this.broken;
    }
  }

  /** Waits for pending records, then closes the file. */
  async close(): Promise<void> {
    while (this.batch.length > 0 || this.flushing || this.flushScheduled) {
      await (this.flushing ?? new Promise((resolve) => setImmediate(resolve)));
    }
    if (this.closed) return;
    this.closed = true;
    await this.file.close().catch(() => undefined);
  }
}

const NEWLINE = Buffer.from('\n');

async function writeAll(file: fs.FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written, bytes.length - written);
    written += bytesWritten;
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes a create or a rename durable: the directory entry itself must reach the disk. */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await fs.open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
