/**
 * What reaches the disk, and in what order, read from the system calls of
 * the real server (strace attached to its own PID): a new room's log file is
 * created, and the folder that holds it fsynced, before the first message
 * stored in it is acknowledged; a compaction's rename is followed by an fsync
 * of the folder before the next acknowledgement.
 *
 * Needs strace (Debian's `strace`, installed by .ci/run) and permission to
 * trace a child process; without them the test is skipped with a line
 * saying why.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomLogFileName } from '../../server/roomLog';
import { sleep } from '../support/historyChecks';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const TRACED_CALLS = 'trace=openat,rename,renameat,renameat2,fsync,fdatasync,write,writev';

/** Attaches strace to every thread of `pid` (libuv's file work runs on worker threads) and resolves once it is attached. */
async function attachStrace(pid: number, output: string): Promise<ChildProcess> {
  const tracer = spawn('strace', ['-f', '-qq', '-s', '96', '-e', TRACED_CALLS, '-o', output, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  tracer.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString('utf8')));
  // strace says nothing once attached with -qq; give it a moment, then make sure it did not fail.
  await sleep(500);
  if (tracer.exitCode !== null) throw new Error(`strace could not attach: ${errors}`);
  return tracer;
}

async function detach(tracer: ChildProcess): Promise<void> {
  if (tracer.exitCode !== null) return;
  const exited = new Promise((resolve) => tracer.once('exit', resolve));
  tracer.kill('SIGINT');
  await Promise.race([exited, sleep(5000)]);
  if (tracer.exitCode === null) tracer.kill('SIGKILL');
}

/** The file descriptors of `pid` that are open on `path` now. */
function descriptorsOn(pid: number, path: string): Set<number> {
  const found = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === path) found.add(Number(fd));
    } catch {
      // Closed while we looked.
    }
  }
  return found;
}

/** Lines of the trace without the thread id strace puts first. */
function traceLines(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.replace(/^\d+\s+/, ''));
}

/** Index of the first line at or after `from` that matches, or -1. */
function findFrom(lines: string[], from: number, matches: (line: string) => boolean): number {
  for (let index = Math.max(0, from); index < lines.length; index++) if (matches(lines[index])) return index;
  return -1;
}

describe('faults: what reaches the disk before an ack (system calls, by strace)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let server: ServerProcess | undefined;
  let tracer: ChildProcess | undefined;
  const clients: TestClient[] = [];

  before(function () {
    const probe = spawnSync('strace', ['-qq', '-e', 'trace=none', 'true'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      console.log(`      skipped: strace is missing or may not trace here (${(probe.stderr || probe.error?.message || '').trim()})`);
      this.skip();
    }
  });
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-trace-'));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    if (tracer) await detach(tracer);
    tracer = undefined;
    await server?.dispose();
    server = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The descriptors that name the data folder: held open by the server, or opened while traced. */
  function folderDescriptors(lines: string[], pid: number): Set<number> {
    const fds = descriptorsOn(pid, dataDir);
    for (const line of lines) {
      const opened = new RegExp(`^openat\\(AT_FDCWD, "${dataDir}", [^)]*\\) = (\\d+)`).exec(line);
      if (opened) fds.add(Number(opened[1]));
    }
    return fds;
  }

  it("fsyncs the folder after creating a new room's log, before the first message in it is acked", async () => {
    server = await ServerProcess.start({ dataDir });
    const traceFile = join(dataDir, '..', `${dataDir.split('/').pop()}.strace`);
    tracer = await attachStrace(server.pid, traceFile);
    const writer = await TestClient.join(server.port, 'writer', { room: 'fresh-room', clientId: 'w' });
    clients.push(writer);
    writer.send({ type: 'say', id: 'first', text: 'the first message of a new room' });
    await writer.nextFrame((frame) => frame.type === 'ack' && frame.id === 'first');
    await detach(tracer);
    tracer = undefined;

    const lines = traceLines(traceFile);
    rmSync(traceFile, { force: true });
    const logFile = join(dataDir, roomLogFileName('fresh-room'));
    const created = findFrom(lines, 0, (line) => line.startsWith('openat(') && line.includes(`"${logFile}"`) && line.includes('O_CREAT'));
    assert.notEqual(created, -1, `the trace shows the room's log being created:\n${lines.filter((line) => line.includes('.ndjson')).join('\n')}`);
    const acked = findFrom(lines, created, (line) => /^writev?\(/.test(line) && line.includes('\\"type\\":\\"ack\\"'));
    assert.notEqual(acked, -1, 'the trace shows the ack being sent');
    const folderFds = folderDescriptors(lines, server.pid);
    const folderSynced = findFrom(lines, created, (line) => {
      const synced = /^f(?:data)?sync\((\d+)\)\s+= 0/.exec(line);
      return synced !== null && folderFds.has(Number(synced[1]));
    });
    assert.ok(folderSynced !== -1 && folderSynced < acked, `the folder was fsynced after the file was created (line ${created}) and before the ack (line ${acked}); fsync of the folder at line ${folderSynced}`);
  });

  it("fsyncs the folder after a compaction's rename, before the next ack", async () => {
    server = await ServerProcess.start({ dataDir, args: ['--retain-events', '3', '--rate-burst', '1000', '--rate-per-second', '1000'] });
    const writer = await TestClient.join(server.port, 'writer', { room: 'compacting', clientId: 'w' });
    clients.push(writer);
    const traceFile = join(dataDir, '..', `${dataDir.split('/').pop()}.strace`);
    tracer = await attachStrace(server.pid, traceFile);
    for (let index = 0; index < 12; index++) {
      writer.send({ type: 'say', id: `c${index}`, text: `message ${index}` });
      await writer.nextFrame((frame) => frame.type === 'ack' && frame.id === `c${index}`);
    }
    await detach(tracer);
    tracer = undefined;

    const lines = traceLines(traceFile);
    rmSync(traceFile, { force: true });
    const logFile = join(dataDir, roomLogFileName('compacting'));
    const renamed = findFrom(lines, 0, (line) => /^rename/.test(line) && line.includes(`"${logFile}"`));
    assert.notEqual(renamed, -1, 'the log was compacted (renamed into place)');
    // An ack written just after the rename may be for a record stored before the compaction began (writes to
    // clients are batched for a moment); the acks that count are those for records written after the rename.
    // The compacted file is written through the descriptor that goes on appending once it is renamed into place.
    let compactedFd: string | undefined;
    for (let index = renamed - 1; index >= 0 && compactedFd === undefined; index--) compactedFd = /^write\((\d+), "\{\\"chatRoomLog\\"/.exec(lines[index])?.[1];
    const nextRecord = compactedFd === undefined ? -1 : findFrom(lines, renamed, (line) => line.startsWith(`write(${compactedFd},`));
    const nextAck = nextRecord === -1 ? -1 : findFrom(lines, nextRecord, (line) => /^writev?\(/.test(line) && line.includes('\\"type\\":\\"ack\\"'));
    const folderFds = folderDescriptors(lines, server.pid);
    const folderSynced = findFrom(lines, renamed, (line) => {
      const synced = /^f(?:data)?sync\((\d+)\)\s+= 0/.exec(line);
      return synced !== null && folderFds.has(Number(synced[1]));
    });
    assert.notEqual(nextRecord, -1, 'a record was stored after the compaction');
    assert.ok(folderSynced !== -1 && (nextAck === -1 || folderSynced < nextAck), `the folder was fsynced after the rename (line ${renamed}), before the ack of the next record stored (line ${nextAck}); at line ${folderSynced}`);
  });
});
