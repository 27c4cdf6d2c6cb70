/**
 * Follows the server's log file into the "Chat Room Server" output channel,
 * like `tail -f`: the server writes to a file (it outlives any one window),
 * and every window attached to it shows what it writes.
 */
import * as fs from 'node:fs/promises';
import type * as vscode from 'vscode';
import { Disposable, toDisposable } from '../shared/disposable';

const POLL_MS = 500;
/** How much of an existing log a window shows when it attaches. */
const TAIL_BYTES = 16 * 1024;
/** Read at most this much per poll, so a flood of log lines cannot stall the extension host. */
const MAX_READ_BYTES = 256 * 1024;

export class LogFollower extends Disposable {
  private offset = 0;
  /** The file's identity, so a new server's log (the old one renamed away) is read from its start. */
  private inode: number | undefined;
  private partial = '';
  /** Attached in the middle of a file: the first line read is a fragment. */
  private skipFirstLine = false;
  private reading = false;

  constructor(
    private readonly file: string,
    private readonly channel: vscode.LogOutputChannel,
    fromStart: boolean,
  ) {
    super();
    const handle = setInterval(() => void this.poll(), POLL_MS);
    this.register(toDisposable(() => clearInterval(handle)));
    void this.start(fromStart);
  }

  private async start(fromStart: boolean): Promise<void> {
    if (!fromStart) {
      const { size, inode } = await fileIdentity(this.file);
      this.inode = inode;
      // Start at a line boundary within the tail, so the first line shown is whole.
      this.offset = Math.max(0, size - TAIL_BYTES);
      this.skipFirstLine = this.offset > 0;
    }
    await this.poll();
  }

  /** Reads what was appended since the last poll; a new file (a new server's log) is read from its start. */
  private async poll(): Promise<void> {
    if (this.reading || this.isDisposed) return;
    this.reading = true;
    try {
      const { size, inode } = await fileIdentity(this.file);
      if (size < this.offset || inode !== this.inode) {
        this.inode = inode;
        this.offset = 0;
        this.partial = '';
        this.skipFirstLine = false;
      }
      if (size === this.offset) return;
      const handle = await fs.open(this.file, 'r');
      try {
        const length = Math.min(size - this.offset, MAX_READ_BYTES);
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await handle.read(buffer, 0, length, this.offset);
        this.offset += bytesRead;
        this.emit(buffer.subarray(0, bytesRead).toString('utf8'));
      } finally {
        await handle.close();
      }
    } catch {
      // The log may not exist yet, or was just rotated; the next poll looks again.
    } finally {
      this.reading = false;
    }
  }

  private emit(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    if (this.skipFirstLine && lines.length > 0) {
      lines.shift();
      this.skipFirstLine = false;
    }
    for (const line of lines) {
      const trimmed = line.replace(/\r$/, '');
      if (!trimmed || this.isDisposed) continue;
      if (trimmed.startsWith('error: ') || trimmed.startsWith('chat server: ')) this.channel.error(trimmed);
      else if (trimmed.startsWith('warn: ')) this.channel.warn(trimmed);
      else this.channel.info(trimmed);
    }
  }
}

async function fileIdentity(file: string): Promise<{ size: number; inode: number | undefined }> {
  try {
    const stat = await fs.stat(file);
    return { size: stat.size, inode: stat.ino };
  } catch {
    return { size: 0, inode: undefined };
  }
}
