/** A room and its log on their own: sequence numbers, replay, de-duplication, torn records and compaction. */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, promises as fsPromises, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RoomEvent } from '../../shared/protocol';
import { DataFolder } from '../../server/dataFolder';
import { createLogger } from '../../server/log';
import { type EncodedEvent, Room, type RoomMember } from '../../server/room';
import { RoomLog, roomLogFileName } from '../../server/roomLog';

class RecordingMember implements RoomMember {
  readonly received: RoomEvent[] = [];
  constructor(readonly name: string) {}
  deliver(event: EncodedEvent): void {
    this.received.push(JSON.parse(event.wire.toString('utf8')) as RoomEvent);
  }
}

/** The log's records after its header line. */
function storedRecords(path: string): string[] {
  const [header, ...records] = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(JSON.parse(header).room, 'lobby', 'the first line names the room the log belongs to');
  return records;
}

function recordingLogger(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger('text', (line) => lines.push(line)) };
}

describe('room', () => {
  let dataDir: string;
  const folders: DataFolder[] = [];
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-unit-'));
  });
  afterEach(async () => {
    for (const folder of folders.splice(0)) await folder.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function openRoom(retain = 100): Promise<{ room: Room; lines: string[] }> {
    const { lines, logger } = recordingLogger();
    const folder = await DataFolder.prepare(dataDir, logger);
    folders.push(folder);
    const { log, records } = await RoomLog.open(folder, 'lobby', 'lobby', retain, logger);
    return { room: new Room('lobby', log, records, retain, logger), lines };
  }

  it('numbers events in order and delivers each only after it is stored', async () => {
    const { room } = await openRoom();
    const alice = new RecordingMember('alice');
    room.join(alice);
    const result = await room.say(alice, 'hello', { clientId: 'c-alice', id: 'm1' });
    assert.deepEqual(result, { ok: true, seq: 2, duplicate: false });
    assert.deepEqual(
      alice.received.map((event) => [event.type, event.seq]),
      [
        ['joined', 1],
        ['message', 2],
      ],
    );
    const onDisk = storedRecords(join(dataDir, roomLogFileName('lobby')));
    assert.equal(onDisk.length, 2);
    assert.equal(JSON.parse(onDisk[1]).clientId, 'c-alice', 'the client id is stored for de-duplication after a restart');
    assert.equal('clientId' in alice.received[1], false, 'but never sent to members');
    await room.close();
  });

  it('stores a retried message once and answers the retry with the first seq, also while the first is still being stored', async () => {
    const { room } = await openRoom();
    const alice = new RecordingMember('alice');
    room.join(alice);
    const [first, concurrentRetry] = await Promise.all([room.say(alice, 'once', { clientId: 'c-alice', id: 'm1' }), room.say(alice, 'once', { clientId: 'c-alice', id: 'm1' })]);
    const laterRetry = await room.say(alice, 'once', { clientId: 'c-alice', id: 'm1' });
    assert.equal(first.duplicate, false);
    assert.deepEqual([concurrentRetry.seq, concurrentRetry.duplicate], [first.seq, true]);
    assert.deepEqual([laterRetry.seq, laterRetry.duplicate], [first.seq, true]);
    const otherClient = await room.say(alice, 'same id, other client', { clientId: 'c-other', id: 'm1' });
    assert.notEqual(otherClient.seq, first.seq);
    assert.equal(alice.received.filter((event) => event.type === 'message').length, 2);
    await room.close();
  });

  it('continues sequence numbers, replays history and still de-duplicates after a restart', async () => {
    const first = await openRoom();
    const alice = new RecordingMember('alice');
    first.room.join(alice);
    for (let i = 0; i < 5; i += 1) await first.room.say(alice, `text ${i}`, { clientId: 'c-alice', id: `m${i}` });
    await first.room.close();

    const second = await openRoom();
    assert.equal(second.room.latestSeq, 6);
    assert.deepEqual(
      second.room.replay(4, 100).map((event) => event.event.seq),
      [5, 6],
    );
    assert.equal(second.room.replay(undefined, 3).length, 3);
    const retry = await second.room.say(alice, 'text 4', { clientId: 'c-alice', id: 'm4' });
    assert.deepEqual([retry.seq, retry.duplicate], [6, true]);
    const fresh = await second.room.say(alice, 'text 5', { clientId: 'c-alice', id: 'm5' });
    assert.equal(fresh.seq, 7);
    await second.room.close();
  });

  it('drops a torn last record on start with a log line, and loses nothing else', async () => {
    const first = await openRoom();
    const alice = new RecordingMember('alice');
    first.room.join(alice);
    await first.room.say(alice, 'kept', { clientId: 'c-alice', id: 'm1' });
    await first.room.close();
    const path = join(dataDir, roomLogFileName('lobby'));
    const sizeBefore = statSync(path).size;
    appendFileSync(path, '{"type":"message","seq":3,"room":"lobby","fr');

    const second = await openRoom();
    assert.ok(second.lines.some((line) => /torn last record/.test(line)), second.lines.join(''));
    assert.equal(statSync(path).size, sizeBefore, 'the torn bytes were cut off');
    assert.equal(second.room.latestSeq, 2);
    assert.deepEqual(
      second.room.replay(0, 100).map((event) => event.event.type),
      ['joined', 'message'],
    );
    await second.room.close();
  });

  it('compacts the log but always keeps at least the retained messages, and arrivals apart from them', async () => {
    const retain = 50;
    const { room } = await openRoom(retain);
    const alice = new RecordingMember('alice');
    room.join(alice);
    for (let i = 0; i < 240; i += 1) await room.say(alice, `text ${i}`, { clientId: 'c-alice', id: `m${i}` });
    await room.close();
    const onDisk = storedRecords(join(dataDir, roomLogFileName('lobby'))).map((line) => JSON.parse(line) as RoomEvent);
    assert.deepEqual([onDisk[0].type, onDisk[0].seq], ['joined', 1], 'the one arrival is kept: messages do not push presence out either');
    const seqs = onDisk.filter((event) => event.type === 'message').map((event) => event.seq);
    assert.ok(seqs.length >= retain && seqs.length < 240, `kept ${seqs.length} messages`);
    assert.equal(seqs[seqs.length - 1], 241, 'the newest event is there');
    for (let i = 1; i < seqs.length; i += 1) assert.equal(seqs[i], seqs[i - 1] + 1, 'no gap inside the kept window');

    const reopened = await openRoom(retain);
    assert.equal(reopened.room.latestSeq, 241);
    assert.ok(reopened.room.replay(0, 0).length >= retain);
    await reopened.room.close();
  });

  it('keeps writing to the live file when a compaction fails after its rename, and acks nothing until the folder is fsynced', async () => {
    const retain = 5;
    const { room, lines } = await openRoom(retain);
    const alice = new RecordingMember('alice');
    room.join(alice);
    // The first fsync after a rename fails, as a folder fsync that hits an I/O error would.
    const probe = await fsPromises.open(join(dataDir, 'probe'), 'w');
    const handlePrototype = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const realRename = fsPromises.rename;
    const realSync = handlePrototype.sync;
    let failNextSync = false;
    let failedSyncs = 0;
    fsPromises.rename = async (...args: Parameters<typeof realRename>) => {
      await realRename(...args);
      failNextSync = true;
    };
    handlePrototype.sync = function (this: unknown) {
      if (failNextSync) {
        failNextSync = false;
        failedSyncs += 1;
        return Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      }
      return realSync.call(this);
    };
    const acked: number[] = [];
    const path = join(dataDir, roomLogFileName('lobby'));
    try {
      for (let i = 0; i < 40; i += 1) {
        const result = await room.say(alice, `text ${i}`, { clientId: 'c-alice', id: `m${i}` });
        if (!result.ok) continue;
        acked.push(result.seq);
        // A crash right after an ack must find the message in the file that holds the log's name.
        const inFile = storedRecords(path).some((line) => (JSON.parse(line) as RoomEvent).seq === result.seq);
        assert.ok(inFile, `acked seq ${result.seq} is not in ${path} (written to a replaced file?)`);
      }
    } finally {
      fsPromises.rename = realRename;
      handlePrototype.sync = realSync;
    }
    await room.close();
    assert.ok(failedSyncs > 0, 'a compaction ran and its folder fsync failed');
    assert.ok(lines.some((line) => /fsync of its folder failed/.test(line)), lines.join(''));
    const onDisk = new Set(storedRecords(path).map((line) => (JSON.parse(line) as RoomEvent).seq));
    for (const seq of acked.slice(-retain)) assert.ok(onDisk.has(seq), `acked seq ${seq} is in the file that holds the log's name`);
    assert.ok(acked.length >= 35, `the log recovered once the folder fsync worked again (${acked.length} of 40 acked)`);
  });

  it('replays everything after lastSeq even when a refused message used up a seq', async () => {
    const { logger } = recordingLogger();
    const log = RoomLog.inMemory(100, logger);
    const room = new Room('lobby', log, [], 100, logger);
    const alice = new RecordingMember('alice');
    room.join(alice);
    const realAppend = log.append.bind(log);
    let refuseNext = false;
    log.append = (bytes, kind) => {
      if (!refuseNext) return realAppend(bytes, kind);
      refuseNext = false;
      return Promise.reject(new Error('ENOSPC: no space left on device'));
    };
    await room.say(alice, 'one', { clientId: 'c', id: 'm1' });
    refuseNext = true;
    assert.equal((await room.say(alice, 'refused', { clientId: 'c', id: 'm2' })).ok, false);
    await room.say(alice, 'three', { clientId: 'c', id: 'm3' });
    await room.say(alice, 'four', { clientId: 'c', id: 'm4' });
    const seqs = room.replay(0, 100).map((event) => event.event.seq);
    assert.deepEqual(seqs, [1, 2, 4, 5], 'seq 3 was used up by the refused message');
    assert.deepEqual(
      room.replay(4, 100).map((event) => event.event.seq),
      [5],
      'a client that saw seq 4 gets seq 5',
    );
    assert.deepEqual(
      room.replay(2, 100).map((event) => event.event.seq),
      [4, 5],
    );
    await room.close();
  });

  it('reads a replay through a cursor exactly as replay() lists it, ending at the event committed last when the cursor was made', async () => {
    const { logger } = recordingLogger();
    const room = new Room('lobby', RoomLog.inMemory(100, logger), [], 100, logger);
    const alice = new RecordingMember('alice');
    room.join(alice);
    for (let i = 0; i < 12; i += 1) await room.say(alice, `text ${i}`, { clientId: 'c', id: `m${i}` });
    const drain = (next: () => EncodedEvent | undefined) => {
      const seqs: number[] = [];
      for (let event = next(); event; event = next()) seqs.push(event.seq);
      return seqs;
    };
    for (const [afterSeq, count] of [[undefined, 5], [undefined, 0], [undefined, 100], [0, 100], [7, 100], [13, 100], [99, 3]] as [number | undefined, number][]) {
      assert.deepEqual(drain(room.replayCursor(afterSeq, count)), room.replay(afterSeq, count).map((event) => event.seq), `after ${afterSeq}, newest ${count}`);
    }
    const cursor = room.replayCursor(10, 100);
    await room.say(alice, 'after the cursor was made', { clientId: 'c', id: 'late' });
    assert.deepEqual(drain(cursor), [11, 12, 13], 'a later event is not part of the replay (it is delivered live)');
    await room.close();
  });
});
