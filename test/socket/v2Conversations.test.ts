/**
 * Protocol v2 conversations over real TCP against the built server: read
 * markers that agree across connections and restarts, unread and mention
 * counts, direct messages that nobody else can see, find or join, and search.
 */
import assert from 'node:assert/strict';
import { DM_ID_CHARS } from '../../shared/protocolV2';
import { TestClient } from '../support/testClient';
import { type AnyFrame, V2Client } from '../support/v2Client';
import { FAST_V2, v2Fixture } from '../support/v2Fixture';

interface Summary {
  room: string;
  kind: string;
  participants?: string[];
  seq?: number;
  lastRead: number;
  unread?: number;
  mentions?: number;
}

describe('protocol v2: conversations, read markers, DMs and search', function () {
  this.timeout(60_000);
  const made = v2Fixture();
  const { start, v2, tempDir } = made;
  async function conversations(client: V2Client): Promise<Summary[]> {
    return (await client.ok({ type: 'conversations' })).conversations as Summary[];
  }


  describe('read markers and unread counts', () => {
    it('counts messages after the marker that are not yours and not deleted, and the mentions among them', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      const bob = await v2(server.port, 'bob');
      await alice.join('team');
      await bob.join('team');
      await alice.say('team', 'my own, never unread');
      await bob.say('team', 'hi @alice');
      await bob.say('team', 'mail x@alice.com is not a mention');
      const deleted = await bob.say('team', 'oops @alice');
      await bob.ok({ type: 'delete', room: 'team', target: deleted });
      const last = await bob.say('team', '@ALICE: folded like names');
      const [summary] = await conversations(alice);
      assert.deepEqual({ ...summary, seq: 0 }, { room: 'team', kind: 'room', topic: '', lastRead: 0, seq: 0, unread: 3, mentions: 2 });
      assert.equal(summary.seq, last);
      await alice.ok({ type: 'read', room: 'team', seq: last });
      const [after] = await conversations(alice);
      assert.deepEqual([after.lastRead, after.unread, after.mentions], [last, 0, 0]);
    });

    it('tells the identity\'s other connections when the marker moves, never moves it back, and keeps it across a restart', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir, args: FAST_V2 });
      const laptop = await v2(server.port, 'alice', { clientId: 'laptop' });
      const desktop = await v2(server.port, 'alice', { clientId: 'desktop', key: laptop.welcome!.key });
      const bob = await v2(server.port, 'bob');
      await laptop.join('team');
      await bob.join('team');
      const seqs: number[] = [];
      for (let index = 0; index < 4; index++) seqs.push(await bob.say('team', `@alice number ${index}`));
      await laptop.ok({ type: 'read', room: 'team', seq: seqs[1] });
      const moved = await desktop.next((frame) => frame.type === 'readMarker');
      assert.deepEqual(moved, { type: 'readMarker', room: 'team', seq: seqs[1] });
      assert.equal(laptop.all('readMarker').length, 0, 'not to the connection that moved it');
      await desktop.ok({ type: 'read', room: 'team', seq: 1 });
      const fromLaptop = await conversations(laptop);
      const fromDesktop = await conversations(desktop);
      assert.deepEqual(fromLaptop, fromDesktop, 'two connections of one identity agree');
      assert.deepEqual([fromLaptop[0].lastRead, fromLaptop[0].unread, fromLaptop[0].mentions], [seqs[1], 2, 2]);
      await laptop.ok({ type: 'read', room: 'team', seq: 10_000 });
      assert.equal((await conversations(laptop))[0].lastRead, (await conversations(laptop))[0].seq, 'a marker past the end is the end');
      assert.equal(await laptop.refused({ type: 'read', room: 'elsewhere', seq: 1 }), 'not_joined');
      const before = await conversations(laptop);
      for (const client of [laptop, desktop, bob]) client.close();
      await server.stop();
      server = await start({ dataDir, args: FAST_V2 });
      const again = await v2(server.port, 'alice', { clientId: 'desktop', key: laptop.welcome!.key });
      // The room's seq moved on (the shutdown's departures); the marker and the counts did not.
      const withoutSeq = (list: Summary[]) => list.map((summary) => ({ ...summary, seq: undefined }));
      assert.deepEqual(withoutSeq(await conversations(again)), withoutSeq(before));
    });
    it('takes a marker past the end as the end, also for a room nobody is in just now', async () => {
      const dataDir = tempDir();
      const server = await start({ dataDir, args: [...FAST_V2, '--room-idle-ms', '100'] });
      const alice = await v2(server.port, 'alice');
      await alice.join('quiet');
      await alice.say('quiet', 'hello');
      const key = alice.welcome!.key as string;
      alice.close();
      await new Promise((resolve) => setTimeout(resolve, 600));
      const back = await v2(server.port, 'alice', { key });
      await back.ok({ type: 'read', room: 'quiet', seq: 1_000_000_000_000 });
      const bob = await v2(server.port, 'bob');
      await bob.join('quiet');
      await bob.say('quiet', 'something new');
      const [summary] = await conversations(back);
      assert.ok(summary.lastRead < (summary.seq as number), `the marker (${summary.lastRead}) stays below what came later (${summary.seq})`);
      assert.equal(summary.unread, 1);
    });
  });

  describe('direct messages', () => {
    it('opens one DM per set of people, with an unguessable name, and refuses odd sets', async () => {
      const server = await start({ memory: true, args: [...FAST_V2, '--max-dm-participants', '3'] });
      const alice = await v2(server.port, 'alice');
      await v2(server.port, 'bob');
      await v2(server.port, 'carol');
      await v2(server.port, 'dan');
      const opened = await alice.ok({ type: 'openDm', with: ['bob'] });
      assert.match(opened.room as string, new RegExp(`^dm:[a-z2-7]{${DM_ID_CHARS}}$`));
      assert.deepEqual(opened.participants, ['alice', 'bob']);
      assert.equal((await alice.ok({ type: 'openDm', with: ['BOB', 'alice'] })).room, opened.room, 'the same people: the same DM');
      const group = await alice.ok({ type: 'openDm', with: ['bob', 'carol'] });
      assert.notEqual(group.room, opened.room);
      assert.equal(await alice.refused({ type: 'openDm', with: ['bob', 'carol', 'dan'] }), 'bad_frame', 'past --max-dm-participants');
      assert.equal(await alice.refused({ type: 'openDm', with: ['alice'] }), 'bad_frame');
      assert.equal(await alice.refused({ type: 'openDm', with: [] }), 'bad_frame');
      assert.equal(await alice.refused({ type: 'openDm', with: ['nobody'] }), 'not_found');
      assert.equal(await alice.refused({ type: 'openDm', with: 'bob' }), 'bad_frame');
      assert.equal(await alice.refused({ type: 'openDm', with: Array.from({ length: 17 }, () => 'bob') }), 'bad_frame', 'at most 16 names');
      assert.equal(await alice.refused({ type: 'openDm', with: [['bob']] }), 'bad_frame', 'nothing nested');
      assert.equal(await alice.refused({ type: 'say', room: 'x', text: 'y', with: ['bob'] }), 'not_joined', 'an array elsewhere is simply ignored');
    });

    it('keeps a DM from a third person: not listed, not joinable, not readable, not searchable, not markable', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      await v2(server.port, 'bob');
      const { room } = await alice.ok({ type: 'openDm', with: ['bob'] });
      await alice.join(room as string);
      await alice.say(room as string, 'just between us');
      const mallory = await v2(server.port, 'mallory');
      for (const frame of [
        { type: 'join', room },
        { type: 'join', room: (room as string).toUpperCase() },
        { type: 'history', room, before: 100 },
        { type: 'search', room, text: 'between' },
        { type: 'read', room, seq: 1 },
        { type: 'say', room, text: 'let me in' },
        { type: 'listMembers', room },
        { type: 'join', room: 'dm:aaaaaaaaaaaaaaaaaaaaaaaaaa' },
      ]) {
        assert.equal(await mallory.refused(frame), 'not_found', JSON.stringify(frame));
      }
      const rooms = (await mallory.ok({ type: 'listRooms' })).rooms as { room: string }[];
      assert.ok(!rooms.some((entry) => entry.room.startsWith('dm:')), 'DMs are never listed');
      assert.deepEqual(await conversations(mallory), []);
      // Over v1, however the prefix is spelled: the room's key folds case and width.
      const wide = 'ｄｍ' + (room as string).slice(2);
      for (const spelling of [room as string, (room as string).toUpperCase(), wide]) {
        const old = await TestClient.connect(server.port);
        made.keep(old);
        old.send({ type: 'hello', name: 'oldtimer', room: spelling });
        const reply = await old.nextFrame((frame) => frame.type === 'error' || frame.type === 'welcome');
        assert.equal(reply.type === 'error' && reply.code, 'bad_room', spelling);
      }
      assert.ok(!JSON.stringify(mallory.frames).includes('between us'));
    });

    it('tells every connection of every participant of a new DM at once, and only them, and only once', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      const bobHere = await v2(server.port, 'bob');
      const bobKey = bobHere.welcome!.key as string;
      const bobThere = await v2(server.port, 'bob', { key: bobKey });
      const carol = await v2(server.port, 'carol');

      const { room } = await alice.ok({ type: 'openDm', with: ['bob'] });
      for (const [who, client] of [['bob here', bobHere], ['bob there', bobThere], ['alice', alice]] as const) {
        const added = await client.next((frame) => frame.type === 'conversationAdded', 5_000);
        assert.deepEqual([added.room, added.kind, added.participants], [room, 'dm', ['alice', 'bob']], who);
      }
      // Opening it again makes nothing new, so nobody is told again; carol never hears of it.
      await alice.ok({ type: 'openDm', with: ['bob'] });
      await bobHere.ok({ type: 'openDm', with: ['alice'] });
      await carol.ok({ type: 'conversations' });
      for (const client of [alice, bobHere, bobThere]) assert.equal(client.frames.filter((frame) => frame.type === 'conversationAdded').length, 1);
      assert.equal(carol.frames.filter((frame) => frame.type === 'conversationAdded').length, 0);
      assert.ok(!JSON.stringify(carol.frames).includes(room as string), 'carol sees nothing of the DM');
      // The DM is among bob's conversations by then, with nothing unread.
      const listed = (await conversations(bobThere)).find((summary) => summary.room === room);
      assert.deepEqual([listed?.kind, listed?.unread], ['dm', 0]);
    });

    it('keeps what is said while a participant is away, counted as unread when they come back', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir, args: FAST_V2 });
      const alice = await v2(server.port, 'alice');
      const aliceKey = alice.welcome!.key as string;
      alice.close();
      const bob = await v2(server.port, 'bob');
      const { room } = await bob.ok({ type: 'openDm', with: ['alice'] });
      await bob.join(room as string);
      await bob.say(room as string, 'are you there, @alice?');
      await bob.say(room as string, 'call me');
      bob.close();
      await server.stop();
      server = await start({ dataDir, args: FAST_V2 });
      const back = await v2(server.port, 'alice', { key: aliceKey });
      const list = await conversations(back);
      assert.equal(list.length, 1);
      assert.deepEqual([list[0].room, list[0].kind, list[0].participants, list[0].unread, list[0].mentions], [room, 'dm', ['bob', 'alice'], 2, 1]);
      const state = await back.join(room as string);
      assert.deepEqual([state.kind, state.participants, state.owner], ['dm', ['bob', 'alice'], undefined]);
      assert.deepEqual(
        back.frames.filter((frame) => frame.type === 'message').map((frame) => frame.text),
        ['are you there, @alice?', 'call me'],
      );
      assert.equal(await back.refused({ type: 'topic', room, text: 'ours' }), 'forbidden', 'a DM has no owner');
    });
  });

  describe('search', () => {
    it('finds messages case-insensitively, newest first, a page at a time, without deleted ones', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      await alice.join('haystack');
      const needles: number[] = [];
      for (let index = 0; index < 120; index++) {
        const seq = await alice.say('haystack', index % 2 === 0 ? `a NeEdLe number ${index}` : `hay ${index}`);
        if (index % 2 === 0) needles.push(seq);
      }
      await alice.ok({ type: 'delete', room: 'haystack', target: needles[59] });
      await alice.ok({ type: 'edit', room: 'haystack', target: needles[0], text: 'the first needle, edited' });
      const found: AnyFrame[] = [];
      let before: number | undefined;
      for (let page = 0; page < 5; page++) {
        const results = await alice.ok(before === undefined ? { type: 'search', room: 'haystack', text: 'needle' } : { type: 'search', room: 'haystack', text: 'needle', before });
        found.push(...(results.hits as AnyFrame[]));
        before = results.next as number | undefined;
        if (before === undefined) break;
        assert.equal((results.hits as AnyFrame[]).length, 50);
      }
      assert.equal(before, undefined, 'the search came to an end');
      assert.deepEqual(found.map((hit) => hit.seq), needles.slice(0, 59).reverse());
      assert.equal(found[found.length - 1].text, 'the first needle, edited');
    });

    it('scans at most --search-scan-events events a request, and allows --searches-per-minute', async () => {
      const server = await start({ memory: true, args: [...FAST_V2, '--search-scan-events', '30', '--searches-per-minute', '3'] });
      const alice = await v2(server.port, 'alice');
      await alice.join('big');
      for (let index = 0; index < 70; index++) await alice.say('big', index === 5 ? 'the rare word' : `common ${index}`);
      const first = await alice.ok({ type: 'search', room: 'big', text: 'rare' });
      assert.deepEqual(first.hits, []);
      assert.equal(typeof first.next, 'number', 'stopped after 30 events, with where to go on');
      const second = await alice.ok({ type: 'search', room: 'big', text: 'rare', before: first.next });
      const third = await alice.ok({ type: 'search', room: 'big', text: 'rare', before: second.next });
      assert.deepEqual((third.hits as AnyFrame[]).map((hit) => hit.text), ['the rare word']);
      const limited = await alice.request({ type: 'search', room: 'big', text: 'rare', id: 'one-too-many' });
      assert.deepEqual([limited.type, limited.code, limited.id], ['error', 'rate_limited', 'one-too-many']);
      assert.equal(await alice.refused({ type: 'search', room: 'big', text: 'x' }), 'bad_frame', 'too short');
      assert.equal(await alice.refused({ type: 'search', room: 'big', text: 'x'.repeat(129) }), 'bad_frame', 'too long');
      assert.equal(await alice.refused({ type: 'search', room: 'elsewhere', text: 'rare' }), 'not_joined');
    });
  });
});
