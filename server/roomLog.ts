/**
 * Durable history of one room: an append-only file of NDJSON records.
 *
 * Appends are group-committed: every record that arrives in one turn of the
 * event loop (and any that arrive while a write is under way) goes out in one
 * write and one fsync, so storage does not cap the message rate. A record's
 * promise resolves only after the fsync, which is what lets the server
 * acknowledge a message only once it is safe.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from './log';

interface PendingRecord {
  bytes: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface LoadedLog {
  log: RoomLog;
  /** Each stored record's text, oldest first, without its newline. */
  records: string[];
}

/** The file name of a room's log: a digest, so any room name makes a safe file name. */
export function roomLogFileName(room: string): string {
  return createHash('sha256').update(room, 'utf8').digest('hex').slice(0, 40) + '.ndjson';
}

export class RoomLog {
  private batch: PendingRecord[] = [];
  private flushScheduled = false;
  private flushing = false;
  private closed = false;
  /** Bytes of the file known to be whole records; a failed write is cut back to this. */
  private goodBytes: number;
  /** The newest records on disk, so compaction can rewrite them without reading the file. */
  private tail: Buffer[];

  private constructor(
    private file: fs.FileHandle | undefined,
    private readonly path: string | undefined,
    records: Buffer[],
    goodBytes: number,
    private readonly retainRecords: number,
    private readonly logger: Logger,
  ) {
    this.tail = records.slice(-retainRecords * 2);
    this.goodBytes = goodBytes;
  }

  /** A log that keeps nothing on disk (`--memory`). */
  static inMemory(retainRecords: number, logger: Logger): RoomLog {
    return new RoomLog(undefined, undefined, [], 0, retainRecords, logger);
  }

  /**
   * Opens (or creates) a room's log and reads it back. A torn last record, left
   * by a crash in the middle of a write, is cut off with a log line; a broken
   * record anywhere else is skipped and reported, never fatal.
   */
  static async open(dataDir: string, room: string, retainRecords: number, logger: Logger): Promise<LoadedLog> {
    await fs.mkdir(dataDir, { recursive: true });
    const path = join(dataDir, roomLogFileName(room));
    const file = await fs.open(path, 'a+');
    try {
      const content = await file.readFile();
      const lastNewline = content.lastIndexOf(0x0a);
      let goodBytes = lastNewline + 1;
      if (goodBytes < content.length) {
        logger.warn(`room log ${path}: dropped a torn last record (${content.length - goodBytes} bytes) left by an interrupted write`);
        await file.truncate(goodBytes);
        await file.sync();
      }
      const records: Buffer[] = [];
      const texts: string[] = [];
      let start = 0;
      let lineNumber = 0;
      while (start < goodBytes) {
        const end = content.indexOf(0x0a, start);
        const line = content.subarray(start, end);
        lineNumber += 1;
        if (isWholeRecord(line)) {
          records.push(Buffer.from(content.subarray(start, end + 1)));
          texts.push(line.toString('utf8'));
        } else if (end + 1 === goodBytes) {
          // The last line has its newline but not all of its bytes (a torn page): drop it.
          logger.warn(`room log ${path}: dropped a torn last record at line ${lineNumber}`);
          goodBytes = start;
          await file.truncate(goodBytes);
          await file.sync();
        } else {
          logger.warn(`room log ${path}: skipped an unreadable record at line ${lineNumber}`);
        }
        start = end + 1;
      }
      return { log: new RoomLog(file, path, records, goodBytes, retainRecords, logger), records: texts };
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Stores one record (which must end with a newline); resolves once it is on disk. */
  append(bytes: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the room log is closed'));
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
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.batch.length === 0) return;
    this.flushing = true;
    const batch = this.batch;
    this.batch = [];
    try {
      if (this.file) {
        const bytes = Buffer.concat(batch.map((record) => record.bytes));
        await this.writeAll(bytes);
        await this.file.datasync();
        this.goodBytes += bytes.length;
      }
      for (const record of batch) this.tail.push(record.bytes);
      for (const record of batch) record.resolve();
      if (this.tail.length >= this.retainRecords * 2) await this.compact();
    } catch (error) {
      await this.cutBackToGoodBytes();
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const record of batch) record.reject(failure);
    } finally {
      this.flushing = false;
      if (this.batch.length > 0) this.scheduleFlush();
    }
  }

  private async writeAll(bytes: Buffer): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.file!.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
  }

  /** After a failed write (a full disk), remove any part-record so the file stays whole. */
  private async cutBackToGoodBytes(): Promise<void> {
    if (!this.file) return;
    try {
      await this.file.truncate(this.goodBytes);
    } catch (error) {
      this.logger.error(`room log ${this.path}: could not cut back a failed write: ${String(error)}`);
    }
  }

  /**
   * Rewrites the file with only the newest `retainRecords` records, through a
   * temporary file and a rename, so a crash at any point leaves either the old
   * file or the new one, and never fewer than the retained records.
   */
  private async compact(): Promise<void> {
    const keep = this.tail.slice(-this.retainRecords);
    if (!this.file || !this.path) {
      this.tail = keep;
      return;
    }
    const temporaryPath = this.path + '.compact';
    const bytes = Buffer.concat(keep);
    const temporary = await fs.open(temporaryPath, 'w');
    try {
      await temporary.writeFile(bytes);
      await temporary.sync();
    } finally {
      await temporary.close();
    }
    await fs.rename(temporaryPath, this.path);
    await syncDirectory(dirname(this.path));
    await this.file.close();
    // The old handle points at the replaced file; appends go to the new one.
    this.file = await fs.open(this.path, 'a+');
    this.goodBytes = bytes.length;
    this.tail = keep;
  }

  /** Waits for pending records, then closes the file. */
  async close(): Promise<void> {
    while (this.batch.length > 0 || this.flushing || this.flushScheduled) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.closed = true;
    await this.file?.close();
  }
}

function isWholeRecord(line: Buffer): boolean {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && typeof (value as { seq?: unknown }).seq === 'number';
  } catch {
    return false;
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(path: string): Promise<void> {
  const directory = await fs.open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
