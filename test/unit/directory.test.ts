/** The directory on its own, on real files: identities, read markers, rooms, DMs, restarts and compaction. */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIRECTORY_FILE, StoredDirectory } from '../../server/directory';
import { silentLogger } from '../../server/log';

const DAY = 24 * 60 * 60 * 1000;

describe('directory', () => {
  let dataDir: string;
  let clock: number;
  const open = () => StoredDirectory.open(dataDir, { identityTtlMs: 30 * DAY, logger: silentLogger, now: () => clock });

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-directory-'));
    clock = 1_700_000_000_000;
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('gives a name to the first claimer and lets only its key use it', async () => {
    const directory = await open();
    assert.deepEqual(await directory.checkName('alice', undefined), { kind: 'free' });
    const claimed = await directory.claim('Alice');
    assert.ok(claimed);
    assert.equal(claimed.identity.name, 'Alice');
    assert.equal(claimed.identity.expiresAt, clock + 30 * DAY);
    const verdict = await directory.checkName('alice', claimed.key);
    assert.equal(verdict.kind, 'owner');
    assert.equal(verdict.kind === 'owner' && verdict.identity.id, claimed.identity.id);
    assert.deepEqual(await directory.checkName('alice', undefined), { kind: 'reserved' });
    assert.deepEqual(await directory.checkName('alice', claimed.key + 'x'), { kind: 'reserved' });
    assert.equal(await directory.claim('alice'), undefined, 'a held name cannot be claimed again');
    await directory.close();
  });

  it('lets only one of two claims made at once win', async () => {
    const directory = await open();
    const results = await Promise.all([directory.claim('bob'), directory.claim('Bob')]);
    assert.equal(results.filter(Boolean).length, 1);
    await directory.close();
  });

  it('keeps identities, conversations, read markers, rooms and DMs across a restart', async () => {
    const first = await open();
    const alice = (await first.claim('alice'))!;
    const bob = (await first.claim('bob'))!;
    await first.subscribe(alice.identity.id, 'lobby');
    assert.equal(await first.markRead(alice.identity.id, 'lobby', 12), 12);
    assert.equal(await first.markRead(alice.identity.id, 'lobby', 7), 12, 'a read marker never moves back');
    await first.putRoomMeta({ room: 'lobby', name: 'Lobby', kind: 'room', ownerId: alice.identity.id, topic: 'hello' });
    await first.putRoomMeta({ room: 'dm:abc', name: 'dm:abc', kind: 'dm', topic: '', participantIds: [bob.identity.id, alice.identity.id] });
    await first.close();

    const second = await open();
    assert.equal((await second.checkName('alice', alice.key)).kind, 'owner');
    assert.deepEqual(second.conversations(alice.identity.id), [{ room: 'lobby', lastRead: 12 }]);
    assert.deepEqual(second.roomMeta('lobby'), { room: 'lobby', name: 'Lobby', kind: 'room', ownerId: alice.identity.id, topic: 'hello' });
    assert.equal(second.findDm([alice.identity.id, bob.identity.id]), 'dm:abc', 'participants are found in any order');
    assert.equal(second.findDm([alice.identity.id]), undefined);
    await second.close();
  });

  it('frees a name unused for longer than the reservation, and its new owner inherits nothing', async () => {
    const directory = await open();
    const old = (await directory.claim('carol'))!;
    await directory.subscribe(old.identity.id, 'secret');
    clock += 31 * DAY;
    assert.deepEqual(await directory.checkName('carol', old.key), { kind: 'free' }, 'a lapsed key no longer proves anything');
    const next = (await directory.claim('Carol'))!;
    assert.notEqual(next.identity.id, old.identity.id);
    assert.deepEqual(directory.conversations(next.identity.id), []);
    assert.equal(directory.nameOf(old.identity.id), undefined);
    await directory.close();
  });

  it('renews a reservation each time the key is used', async () => {
    const directory = await open();
    const dave = (await directory.claim('dave'))!;
    clock += 20 * DAY;
    const verdict = await directory.checkName('dave', dave.key);
    assert.equal(verdict.kind === 'owner' && verdict.identity.expiresAt, clock + 30 * DAY);
    clock += 20 * DAY;
    assert.equal((await directory.checkName('dave', dave.key)).kind, 'owner');
    await directory.close();
    const reopened = await open();
    assert.equal((await reopened.checkName('dave', dave.key)).kind, 'owner', 'the renewal was stored');
    await reopened.close();
  });

  it('forgets a released identity', async () => {
    const directory = await open();
    const erin = (await directory.claim('erin'))!;
    await directory.release(erin.identity.id);
    assert.deepEqual(await directory.checkName('erin', erin.key), { kind: 'free' });
    await directory.close();
    const reopened = await open();
    assert.deepEqual(await reopened.checkName('erin', erin.key), { kind: 'free' });
    await reopened.close();
  });

  it('compacts its file without losing anything, even with stores running during it', async () => {
    const directory = await open();
    const frank = (await directory.claim('frank'))!;
    const rounds = 3000;
    for (const room of ['room-0', 'room-1', 'room-2']) await directory.subscribe(frank.identity.id, room);
    const writes: Promise<number | undefined>[] = [];
    for (let seq = 1; seq <= rounds; seq++) writes.push(directory.markRead(frank.identity.id, `room-${seq % 3}`, seq));
    await Promise.all(writes);
    await directory.close();
    const lines = readFileSync(join(dataDir, DIRECTORY_FILE), 'utf8').trim().split('\n').length;
    assert.ok(lines < rounds, `the file was compacted (${lines} lines for ${rounds} writes)`);
    const reopened = await open();
    const markers = new Map(reopened.conversations(frank.identity.id).map((c) => [c.room, c.lastRead]));
    assert.deepEqual([...markers].sort(), [['room-0', 3000], ['room-1', 2998], ['room-2', 2999]]);
    assert.equal((await reopened.checkName('frank', frank.key)).kind, 'owner');
    await reopened.close();
  });

  it('drops a torn last record and keeps its file private', async () => {
    const directory = await open();
    const gina = (await directory.claim('gina'))!;
    await directory.close();
    appendFileSync(join(dataDir, DIRECTORY_FILE), '{"op":"identity","id":"x","nameK');
    const reopened = await open();
    assert.equal((await reopened.checkName('gina', gina.key)).kind, 'owner');
    assert.equal(statSync(join(dataDir, DIRECTORY_FILE)).mode & 0o777, 0o600);
    await reopened.close();
  });

  it('takes a look-alike of a kept name for that name, and holds a name while its claim is being stored', async () => {
    const directory = await open();
    const claiming = directory.claim('alice');
    assert.equal(directory.isHeld('\u0430lice'), true, 'a claim under way holds the name and its look-alikes');
    const alice = (await claiming)!;
    for (const lookAlike of ['ALICE', '\u0430lice', 'AIice']) {
      assert.equal(directory.identityNamed(lookAlike)?.id, alice.identity.id, lookAlike);
      assert.equal(await directory.claim(lookAlike), undefined, lookAlike);
    }
    assert.equal((await directory.checkName('\u0430lice', alice.key)).kind, 'owner', 'the key proves the name however it is spelled');
    assert.equal(directory.isHeld('bob'), false);
    await directory.close();
  });

  it('lists rooms by key, never DMs, a page after a key', async () => {
    const directory = await open();
    for (const room of ['b', 'a', 'c']) await directory.putRoomMeta({ room, name: room.toUpperCase(), kind: 'room', topic: '' });
    await directory.putRoomMeta({ room: 'dm:x', name: 'dm:x', kind: 'dm', topic: '', participantIds: ['1', '2'] });
    assert.deepEqual(directory.listRooms(undefined, 10).map((meta) => meta.name), ['A', 'B', 'C']);
    assert.deepEqual(directory.listRooms('a', 1).map((meta) => meta.name), ['B']);
    await directory.putRoomMeta({ room: 'aa', name: 'AA', kind: 'room', topic: '' });
    assert.deepEqual(directory.listRooms('a', 10).map((meta) => meta.name), ['AA', 'B', 'C'], 'a new room is listed at once');
    await directory.close();
  });

  it('keeps everything in memory alone when it has no folder', async () => {
    const directory = StoredDirectory.inMemory({ identityTtlMs: 30 * DAY, logger: silentLogger, now: () => clock });
    const alice = (await directory.claim('alice'))!;
    await directory.subscribe(alice.identity.id, 'lobby');
    assert.equal(await directory.markRead(alice.identity.id, 'lobby', 4), 4);
    assert.deepEqual(directory.conversations(alice.identity.id), [{ room: 'lobby', lastRead: 4 }]);
    await directory.close();
    assert.deepEqual(readdirSync(dataDir), [], 'nothing was written');
  });

  it('renews a reservation when an identity\'s connection ends, at most once an hour', async () => {
    const directory = await open();
    const erin = (await directory.claim('erin'))!;
    clock += 29 * DAY;
    await directory.touch(erin.identity.id);
    clock += 29 * DAY;
    assert.equal(directory.identityNamed('erin')?.id, erin.identity.id, 'still kept 58 days after the claim');
    await directory.close();
  });
});
