/**
 * Durable history of one room: an append-only file of NDJSON records.
 *
 * Appends are group-committed: every record that arrives in one turn of the
 * event loop (and any that arrive while a write is under way) goes out in one
 * write and one fsync, so storage does not cap the message rate. A record's
 * promise resolves only after the fsync, which is what lets the server
 * acknowledge a message only once it is safe.
 *
 * The first line of the file is a header naming the room it belongs to (its
 * key), and it is checked on every open, so two rooms can never share a file
 * even if their names gave the same file name.
 *
 * Storage errors fail closed: a record is never acknowledged unless it is
 * written, fsynced, and reachable through a durable directory entry. Work
 * left half done by an error (a part-record to cut off, a directory to fsync)
 * is finished before the next write, which is how the log recovers once
 * storage works again.
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { roomKey, roomProblem } from '../shared/names';
import { type DataFolder, FILE_MODE } from './dataFolder';
import type { Logger } from './log';
import { classOf, type RecordClass } from './roomEvents';

/** What a record counts against: messages, presence (arrivals, departures) and changes are retained apart. */
export type RecordKind = RecordClass;

interface PendingRecord {
  bytes: Buffer;
  kind: RecordKind;
  seq: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface StoredRecord {
  bytes: Buffer;
  kind: RecordKind;
  /** The event's seq (0 when the record did not say), for the room to rewrite it at compaction. */
  seq: number;
}

const RECORD_KINDS: readonly RecordKind[] = ['message', 'presence', 'change'];
/** Deletions are rewritten out of a log at most this often (and always when it closes). */
export const REDACTION_INTERVAL_MS = 60_000;

export interface LoadedLog {
  log: RoomLog;
  /** The room's name as first spelled, from the header. */
  name: string;
  /** Each stored record, parsed, oldest first. */
  records: Record<string, unknown>[];
}

/** The log of another room was found where this room's log belongs. */
export class RoomLogMismatch extends Error {}

const HEADER_VERSION = 1;
const OPEN_EXISTING = constants.O_RDWR | constants.O_APPEND;
const CREATE_NEW = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL;
const CREATE_OR_REPLACE = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_TRUNC;

/** The file name of a room's log: a digest of its key, so any room name makes a safe file name. */
export function roomLogFileName(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 40) + '.ndjson';
}

function headerRecord(key: string, name: string): Buffer {
  return Buffer.from(JSON.stringify({ chatRoomLog: HEADER_VERSION, room: key, name }) + '\n', 'utf8');
}

/** The header's fields when `line` is one. */
function parseHeader(line: Buffer): { room: string; name: string } | undefined {
  try {
    const value = JSON.parse(line.toString('utf8')) as { chatRoomLog?: unknown; room?: unknown; name?: unknown };
    if (typeof value.chatRoomLog === 'number' && typeof value.room === 'string' && typeof value.name === 'string') return { room: value.room, name: value.name };
  } catch {
    // Not JSON: an event record of an older log, or a torn line; the caller decides.
  }
  return undefined;
}

/** An event record, with its kind and seq, or undefined when the line is not a whole event record. */
function parseEventRecord(line: Buffer): { kind: RecordKind; seq: number; value: Record<string, unknown> } | undefined {
  try {
    const value = JSON.parse(line.toString('utf8')) as Record<string, unknown> | null;
    if (typeof value !== 'object' || value === null || typeof value.seq !== 'number') return undefined;
    return { kind: classOf(String(value.type)), seq: value.seq, value };
  } catch {
    return undefined;
  }
}

/**
 * Reading a long log, or scanning a room's history for a request (a search,
 * unread counts), gives the event loop back this often, so other rooms are
 * served meanwhile.
 */
export const READ_SLICE_MS = 8;

export class RoomLog {
  private batch: PendingRecord[] = [];
  private flushScheduled = false;
  private flushing = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Bytes of the file known to be whole records; a failed write is cut back to this. */
  private goodBytes: number;
  /** The newest records on disk, so compaction can rewrite them without reading the file. */
  private tail: StoredRecord[];
  private readonly tailCounts: Record<RecordKind, number> = { message: 0, presence: 0, change: 0 };
  /** A deleted message's text is still on disk: the next chance to compact (at the latest, closing) rewrites it. */
  private redactionDue = false;
  private compactedAt = -Infinity;
  /**
   * Set by the room: rewrites a record a compaction keeps (a deleted message
   * without its text, a changed message with its state folded in).
   */
  rewriteRecord: ((seq: number, bytes: Buffer) => Buffer | undefined) | undefined;
  /** A failed write may have left a part-record; it is cut off before anything else is written. */
  private cutBackPending = false;
  /** A file was created or renamed into place and the folder is not yet fsynced: nothing is acked until it is. */
  private directorySyncPending = false;
  /** After a failed compaction, the next try waits until this many records are in the tail. */
  private compactAtTail = 0;

  private constructor(
    private file: fs.FileHandle | undefined,
    private readonly folder: DataFolder | undefined,
    private readonly path: string | undefined,
    private readonly header: Buffer,
    records: StoredRecord[],
    goodBytes: number,
    private readonly retainRecords: number,
    private readonly logger: Logger,
  ) {
    this.tail = [];
    for (const record of records) this.keepInTail(record);
    this.goodBytes = goodBytes;
  }

  /** A log that keeps nothing on disk (`--memory`). */
  static inMemory(retainRecords: number, logger: Logger): RoomLog {
    return new RoomLog(undefined, undefined, undefined, Buffer.alloc(0), [], 0, retainRecords, logger);
  }

  /**
   * Opens (or creates) a room's log and reads it back. A torn last record, left
   * by a crash in the middle of a write, is cut off with a log line; a broken
   * record anywhere else is skipped and reported, never fatal. A log written
   * before logs had headers gets one, once its first record shows that it is
   * this room's. Throws RoomLogMismatch when the file belongs to another room.
   */
  static async open(folder: DataFolder, key: string, name: string, retainRecords: number, logger: Logger): Promise<LoadedLog> {
    const path = join(folder.path, roomLogFileName(key));
    let file: fs.FileHandle;
    try {
      file = await fs.open(path, OPEN_EXISTING);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      file = await fs.open(path, CREATE_NEW, FILE_MODE);
    }
    try {
      const content = await file.readFile();
      const firstNewline = content.indexOf(0x0a);
      const header = firstNewline === -1 ? undefined : parseHeader(content.subarray(0, firstNewline));
      if (header && header.room !== key) throw new RoomLogMismatch(`room log ${path} belongs to the room "${header.name}", not "${name}"`);
      const bodyStart = header ? firstNewline + 1 : 0;
      const { records, texts, goodBytes, legacyRoom } = await RoomLog.readRecords(file, path, content, bodyStart, logger);
      if (header) {
        return { log: new RoomLog(file, folder, path, headerRecord(key, header.name), records, goodBytes, retainRecords, logger), name: header.name, records: texts };
      }
      if (records.length === 0) {
        if (goodBytes > 0) throw new RoomLogMismatch(`room log ${path} has no header and no readable record; it is left as it is`);
        // New, or left empty by a crash right after it was made: it starts with its header.
        const log = new RoomLog(file, folder, path, headerRecord(key, name), [], 0, retainRecords, logger);
        await log.writeHeader();
        return { log, name, records: [] };
      }
      if (typeof legacyRoom !== 'string' || roomKey(legacyRoom) !== key) throw new RoomLogMismatch(`room log ${path} holds events of the room ${JSON.stringify(legacyRoom)}, not "${name}"`);
      // Written before logs had headers: rewritten once with one, keeping every record.
      const log = new RoomLog(file, folder, path, headerRecord(key, legacyRoom), records, goodBytes, retainRecords, logger);
      await log.rewrite(records);
      logger.info(`room log ${path}: added the header that names its room (${JSON.stringify(legacyRoom)})`);
      return { log, name: legacyRoom, records: texts };
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  /** Reads the event records after the header, cutting off a torn last one. */
  private static async readRecords(
    file: fs.FileHandle,
    path: string,
    content: Buffer,
    bodyStart: number,
    logger: Logger,
  ): Promise<{ records: StoredRecord[]; texts: Record<string, unknown>[]; goodBytes: number; legacyRoom: unknown }> {
    const lastNewline = content.lastIndexOf(0x0a);
    let goodBytes = Math.max(bodyStart, lastNewline + 1);
    if (goodBytes < content.length) {
      logger.warn(`room log ${path}: dropped a torn last record (${content.length - goodBytes} bytes) left by an interrupted write`);
      await file.truncate(goodBytes);
      await file.sync();
    }
    const records: StoredRecord[] = [];
    const texts: Record<string, unknown>[] = [];
    let sliceStartedAt = performance.now();
    let legacyRoom: unknown;
    let start = bodyStart;
    let lineNumber = bodyStart === 0 ? 0 : 1;
    while (start < goodBytes) {
      const end = content.indexOf(0x0a, start);
      const line = content.subarray(start, end);
      lineNumber += 1;
      if (performance.now() - sliceStartedAt >= READ_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStartedAt = performance.now();
      }
      const event = parseEventRecord(line);
      if (event) {
        if (records.length === 0) legacyRoom = event.value.room;
        records.push({ bytes: Buffer.from(content.subarray(start, end + 1)), kind: event.kind, seq: event.seq });
        texts.push(event.value);
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
    return { records, texts, goodBytes, legacyRoom: bodyStart === 0 ? legacyRoom : undefined };
  }

  /** Starts an empty file with its header, durably, directory entry included. */
  private async writeHeader(): Promise<void> {
    await this.writeAll(this.header);
    await this.file!.datasync();
    this.goodBytes = this.header.length;
    await this.folder!.syncEntries();
  }

  /** Stores one record (which must end with a newline); resolves once it is on disk. */
  append(bytes: Buffer, kind: RecordKind, seq = 0): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the room log is closed'));
    return new Promise((resolve, reject) => {
      this.batch.push({ bytes, kind, seq, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Whether records are waiting to be written or being written. */
  get isBusy(): boolean {
    return this.batch.length > 0 || this.flushing || this.flushScheduled;
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
        await this.finishInterruptedWork();
        const bytes = Buffer.concat(batch.map((record) => record.bytes));
        try {
          await this.writeAll(bytes);
          await this.file.datasync();
        } catch (error) {
          this.cutBackPending = true;
          await this.finishInterruptedWork().catch(() => undefined);
          throw error;
        }
        this.goodBytes += bytes.length;
      }
      for (const record of batch) this.keepInTail(record);
      for (const record of batch) record.resolve();
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const record of batch) record.reject(failure);
    } finally {
      if (this.tailNeedsCompaction() || this.redactionIsDue()) await this.compact();
      this.flushing = false;
      if (this.batch.length > 0) this.scheduleFlush();
    }
  }

  /** Cuts off a part-record and fsyncs the folder if an earlier error left either undone; throws while storage still fails. */
  private async finishInterruptedWork(): Promise<void> {
    if (this.cutBackPending) {
      await this.file!.truncate(this.goodBytes);
      this.cutBackPending = false;
    }
    if (this.directorySyncPending) {
      await this.folder!.syncEntries();
      this.directorySyncPending = false;
    }
  }

  private keepInTail(record: StoredRecord): void {
    this.tail.push({ bytes: record.bytes, kind: record.kind, seq: record.seq });
    this.tailCounts[record.kind] += 1;
  }

  /** A deleted message's text waits to be rewritten away: compaction runs at the next write, or when the log closes. */
  noteRedactionDue(): void {
    this.redactionDue = true;
  }

  /**
   * A deleted message's text leaves the disk at the first write at least
   * REDACTION_INTERVAL_MS after the last compaction, so a burst of deletions
   * costs one rewrite, not one each.
   */
  private redactionIsDue(): boolean {
    return this.redactionDue && this.tail.length >= this.compactAtTail && Date.now() - this.compactedAt >= REDACTION_INTERVAL_MS;
  }

  private tailNeedsCompaction(): boolean {
    if (this.tail.length < this.compactAtTail) return false;
    return RECORD_KINDS.some((kind) => this.tailCounts[kind] >= this.retainRecords * 2);
  }

  /** The newest `retainRecords` of each kind (messages, presence, changes), in their order, each as the room rewrites it. */
  private retainedTail(): StoredRecord[] {
    const drop: Record<RecordKind, number> = { message: 0, presence: 0, change: 0 };
    for (const kind of RECORD_KINDS) drop[kind] = Math.max(0, this.tailCounts[kind] - this.retainRecords);
    const kept: StoredRecord[] = [];
    for (const record of this.tail) {
      if (drop[record.kind] > 0) {
        drop[record.kind] -= 1;
        continue;
      }
      const rewritten = this.rewriteRecord?.(record.seq, record.bytes);
      kept.push(rewritten ? { ...record, bytes: rewritten } : record);
    }
    return kept;
  }

  private async writeAll(bytes: Buffer, file = this.file!): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await file.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
  }

  /**
   * Rewrites the file with only the retained records. A failure leaves the
   * old file as it was (nothing is lost, and the next try waits a while), so
   * it is logged, not passed on.
   */
  private async compact(): Promise<void> {
    this.redactionDue = false;
    this.compactedAt = Date.now();
    const keep = this.retainedTail();
    if (!this.file) {
      this.setTail(keep);
      return;
    }
    try {
      await this.rewrite(keep);
    } catch (error) {
      this.redactionDue = true;
      this.compactAtTail = this.tail.length + Math.max(1, Math.floor(this.retainRecords / 4));
      this.logger.error(`room log ${this.path}: could not compact (${String(error)}); it keeps growing until a later try works`);
    }
  }

  /**
   * Replaces the file with the header and `records`, through a temporary file
   * and a rename, so a crash at any point leaves either the old file or the
   * new one. The new file's handle is opened before the rename, so from the
   * rename on every append goes to the file that holds the name, whatever
   * fails after it; the folder's fsync, if it fails, is finished before the
   * next write.
   */
  private async rewrite(records: StoredRecord[]): Promise<void> {
    const path = this.path!;
    const temporaryPath = path + '.compact';
    const bytes = Buffer.concat([this.header, ...records.map((record) => record.bytes)]);
    const next = await fs.open(temporaryPath, CREATE_OR_REPLACE, FILE_MODE);
    try {
      await this.writeAll(bytes, next);
      await next.sync();
      await fs.rename(temporaryPath, path);
    } catch (error) {
      await next.close().catch(() => undefined);
      await fs.rm(temporaryPath, { force: true }).catch(() => undefined);
      throw error;
    }
    const previous = this.file!;
    this.file = next;
    this.goodBytes = bytes.length;
    this.cutBackPending = false;
    this.directorySyncPending = true;
    this.setTail(records);
    await previous.close().catch((error: unknown) => this.logger.warn(`room log ${path}: closing the replaced file failed: ${String(error)}`));
    await this.finishInterruptedWork().catch((error: unknown) => this.logger.error(`room log ${path}: fsync of its folder failed (${String(error)}); nothing more is acknowledged until it works`));
  }

  private setTail(records: StoredRecord[]): void {
    this.tail = [];
    for (const kind of RECORD_KINDS) this.tailCounts[kind] = 0;
    for (const record of records) this.keepInTail(record);
    this.compactAtTail = 0;
  }

  /**
   * Waits for pending records, then closes the file (after a compaction, when
   * a deleted message's text is still in it); closing again waits for the
   * first close.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.isBusy) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (this.redactionDue && this.file) {
        this.flushing = true;
        await this.compact();
        this.flushing = false;
      }
      this.closed = true;
      await this.file?.close();
    })();
    return this.closing;
  }
}

/** Longest first line the upgrade below reads; an event record is far shorter. */
const FIRST_LINE_MAX_BYTES = 256 * 1024;

/**
 * Logs written before room names were compared like member names are named
 * by the digest of the name as it was spelled ("Team"), while the room is now
 * found by the digest of its key ("team"). Each such log is renamed to where
 * its room is now looked for, unless a log is already there (two rooms that
 * are now one: that history stays where it is, and the log says so). A log
 * whose room name is no longer allowed stays where it is too.
 */
export async function adoptOlderRoomLogs(folder: DataFolder, logger: Logger): Promise<void> {
  let renamed = 0;
  for (const entry of await fs.readdir(folder.path)) {
    if (!entry.endsWith('.ndjson')) continue;
    const path = join(folder.path, entry);
    const firstLine = await readFirstLine(path).catch((error: unknown) => {
      logger.warn(`room log ${path}: could not be read to check its header (${String(error)}); left as it is`);
      return undefined;
    });
    if (firstLine === undefined || parseHeader(firstLine)) continue;
    const room = parseEventRecord(firstLine)?.value.room;
    if (typeof room !== 'string') continue;
    const problem = roomProblem(room);
    if (problem) {
      logger.warn(`room log ${path}: kept as it is and not served, since its room name is no longer allowed (${problem})`);
      continue;
    }
    const target = roomLogFileName(roomKey(room));
    if (target === entry) continue;
    const targetPath = join(folder.path, target);
    if (await fs.stat(targetPath).then(() => true, () => false)) {
      logger.warn(`room log ${path}: kept as it is and not served: the room ${JSON.stringify(room)} is now the same room as the one in ${targetPath}`);
      continue;
    }
    await fs.rename(path, targetPath);
    renamed += 1;
  }
  if (renamed > 0) {
    await folder.syncEntries();
    logger.info(`data folder ${folder.path}: ${renamed} room log(s) from before room names were case-folded were renamed to their room's new file name`);
  }
}

async function readFirstLine(path: string): Promise<Buffer | undefined> {
  const file = await fs.open(path, 'r');
  try {
    const buffer = Buffer.alloc(FIRST_LINE_MAX_BYTES);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    const newline = buffer.subarray(0, bytesRead).indexOf(0x0a);
    return newline === -1 ? undefined : buffer.subarray(0, newline);
  } finally {
    await file.close();
  }
}
