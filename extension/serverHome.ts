/**
 * The one home of the chat server this installation runs: a folder in the
 * extension's global storage (so every window of the installation finds it)
 * that holds the server's history and TLS identity, its log, the lease that
 * windows renew, the note it leaves when it exits, and the record a window
 * reads to attach to it. The token is not here: it stays in SecretStorage.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type ExitNote, exitNotePath, type Lease, leasePath, parseExitNote } from '../shared/serverLease';

/** What Start Chat Server was asked for; Restart reuses it without asking again. */
export interface ServerChoices {
  host: string;
  port: number;
  /** Opened to the LAN: a token and TLS. */
  lan: boolean;
  classicPort?: number;
}

/** What a later window needs to attach to a running server. */
export interface ServerRecord {
  pid: number;
  host: string;
  /** The port it listens on (the real one when asked for port 0). */
  port: number;
  classicPort?: number;
  fingerprint?: string;
  logFile: string;
  startedAt: number;
  choices: ServerChoices;
}

const RECORD_FILE = 'server.json';
const LOG_FILE = 'server.log';

export class ServerHome {
  /**
   * This window's lease writes, one after another: two atomic writes in
   * flight at once land in either order, and a fresh lease written as a server
   * starts could replace a stop request made right after it (the server then
   * never saw the stop, and was signalled after the grace period).
   */
  private leaseWrites: Promise<void> = Promise.resolve();

  constructor(readonly dataDir: string) {}

  get recordFile(): string {
    return path.join(this.dataDir, RECORD_FILE);
  }

  get leaseFile(): string {
    return leasePath(this.dataDir);
  }

  get logFile(): string {
    return path.join(this.dataDir, LOG_FILE);
  }

  /** Makes the folder, for its owner alone, as the server keeps it (its logs hold every message). */
  async prepare(): Promise<void> {
    await fs.mkdir(this.dataDir, { recursive: true, mode: 0o700 });
  }

  async readRecord(): Promise<ServerRecord | undefined> {
    try {
      const record = JSON.parse(await fs.readFile(this.recordFile, 'utf8')) as Partial<ServerRecord>;
      if (typeof record.pid !== 'number' || typeof record.port !== 'number' || typeof record.host !== 'string' || typeof record.choices !== 'object' || record.choices === null) return undefined;
      return record as ServerRecord;
    } catch {
      return undefined;
    }
  }

  writeRecord(record: ServerRecord): Promise<void> {
    return writeAtomically(this.recordFile, JSON.stringify(record, null, 2) + '\n');
  }

  async forgetRecord(): Promise<void> {
    await fs.rm(this.recordFile, { force: true });
  }

  /** Writes a fresh lease (a new server, or a changed keep-alive). */
  writeLease(keepAliveMs: number): Promise<void> {
    return this.writeLeaseFile({ keepAliveMs });
  }

  /**
   * Renews the lease by touching it, which never overwrites a stop request
   * another window has just written; a missing lease is written afresh.
   */
  async renewLease(keepAliveMs: number): Promise<void> {
    const now = new Date();
    try {
      await fs.utimes(this.leaseFile, now, now);
    } catch {
      await this.writeLease(keepAliveMs);
    }
  }

  /** Asks the server to stop gracefully (it watches the lease). */
  askToStop(keepAliveMs: number): Promise<void> {
    return this.writeLeaseFile({ keepAliveMs, stop: true });
  }

  private writeLeaseFile(lease: Lease): Promise<void> {
    const write = this.leaseWrites.then(() => writeAtomically(this.leaseFile, JSON.stringify(lease) + '\n'));
    this.leaseWrites = write.catch(() => undefined);
    return write;
  }

  /** The note the server left when it exited, if it was the process `pid`. */
  async exitNoteOf(pid: number): Promise<ExitNote | undefined> {
    try {
      const note = parseExitNote(await fs.readFile(exitNotePath(this.dataDir), 'utf8'));
      return note?.pid === pid ? note : undefined;
    } catch {
      return undefined;
    }
  }

  async clearExitNote(): Promise<void> {
    await fs.rm(exitNotePath(this.dataDir), { force: true });
  }

  /** Keeps the previous run's log as server.log.1, so a new server starts a new log. */
  async rotateLog(): Promise<void> {
    try {
      await fs.rename(this.logFile, `${this.logFile}.1`);
    } catch {
      // No log yet.
    }
  }

  /**
   * Whether `pid` is our server: alive, and its command line names this home's
   * lease. A pid can outlive its process (the server died and the number went
   * to another program), so a live pid alone proves nothing. `undefined` when
   * this platform cannot say (Windows): alive, but not known to be ours.
   */
  async isOurServer(pid: number): Promise<boolean | undefined> {
    if (!pidAlive(pid)) return false;
    const commandLine = await commandLineOf(pid);
    if (commandLine === undefined) return undefined;
    return commandLine.includes(this.leaseFile);
  }
}

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone. EPERM: it belongs to another user, so it is certainly not our server.
    return false;
  }
}

/** A process's command line, or undefined where it cannot be read. */
async function commandLineOf(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') {
    try {
      return (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
    } catch {
      return '';
    }
  }
  if (process.platform === 'win32') return undefined;
  return new Promise((resolve) => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], { timeout: 2_000, windowsHide: true }, (error, stdout) => resolve(error ? '' : stdout));
  });
}

let nextTemporary = 0;

/** Written aside (under a name no other write uses) and renamed into place, so a reader never sees half a file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}-${nextTemporary++}.tmp`;
  await fs.writeFile(temporary, text, { mode: 0o600 });
  await fs.rename(temporary, file);
}
