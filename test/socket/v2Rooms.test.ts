/**
 * Protocol v2 rooms over real TCP against the built server: joining and
 * parting many rooms on one connection, one seat per identity however many
 * connections it has, the cap on rooms, room lists, member lists, history
 * pages, and what owners may do (topic, kick, handing the room on) and others
 * may not, across restarts.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LeftEvent } from '../../shared/protocol';
import { MAX_SERVER_FRAME_BYTES } from '../../shared/protocol';
import { sleep } from '../support/historyChecks';
import { TestClient } from '../support/testClient';
import type { AnyFrame } from '../support/v2Client';
import { FAST_V2, v2Fixture } from '../support/v2Fixture';

describe('protocol v2: rooms', function () {
  this.timeout(60_000);
  const made = v2Fixture();
  const { start, v2, tempDir } = made;
  async function v1(port: number, name: string, room: string): Promise<TestClient> {
    const client = await TestClient.join(port, name, { room });
    made.keep(client);
    return client;
  }


  describe('joining and parting', () => {
    it('answers a join with the room state, the replay and an ack, and makes its creator the owner', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      const state = await alice.join('Design');
      assert.deepEqual(
        { ...state, id: undefined },
        { type: 'roomState', id: undefined, room: 'Design', kind: 'room', topic: '', owner: 'alice', members: ['alice'], memberCount: 1, seq: 0, firstSeq: 1, lastRead: 0 },
      );
      await alice.say('Design', 'one');
      await alice.say('design', 'two (the room is found by its key)');
      const bob = await v2(server.port, 'bob');
      const bobState = await bob.join('DESIGN');
      assert.equal(bobState.room, 'Design');
      assert.equal(bobState.owner, 'alice');
      const replay = bob.frames.filter((frame) => frame.type === 'message').map((frame) => frame.text);
      assert.deepEqual(replay, ['one', 'two (the room is found by its key)']);
      const joinedAck = bob.frames.findIndex((frame) => frame.type === 'ack' && frame.id === bobState.id);
      const lastReplayed = bob.frames.findIndex((frame) => frame.type === 'message' && frame.text === 'one');
      assert.ok(lastReplayed < joinedAck, 'the replay comes before the ack');
    });

    it('holds many rooms on one connection, each event naming its room, and replays after lastSeq', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      const bob = await v2(server.port, 'bob');
      for (const room of ['north', 'south']) {
        await alice.join(room);
        await bob.join(room);
      }
      const northSeq = await alice.say('north', 'to the north');
      await alice.say('south', 'to the south');
      const north = await bob.next((frame) => frame.type === 'message' && frame.room === 'north');
      const south = await bob.next((frame) => frame.type === 'message' && frame.room === 'south');
      assert.deepEqual([north.text, south.text], ['to the north', 'to the south']);
      await alice.say('north', 'later');
      const carol = await v2(server.port, 'carol');
      await carol.join('north', northSeq);
      const replayed = carol.frames.filter((frame) => frame.type === 'message').map((frame) => frame.text);
      assert.deepEqual(replayed, ['later']);
    });

    it('seats several connections of one identity on one seat: one joined for the first, one left for the last', async () => {
      const server = await start();
      const watcher = await v2(server.port, 'watcher');
      await watcher.join('shared');
      const laptop = await v2(server.port, 'erin', { clientId: 'erin-laptop' });
      const desktop = await v2(server.port, 'erin', { clientId: 'erin-desktop', key: laptop.welcome!.key });
      await laptop.join('shared');
      await desktop.join('shared');
      await watcher.say('shared', 'hello erin');
      await laptop.next((frame) => frame.type === 'message' && frame.text === 'hello erin');
      await desktop.next((frame) => frame.type === 'message' && frame.text === 'hello erin');
      laptop.close();
      await watcher.say('shared', 'still there?');
      desktop.close();
      const left = await watcher.next((frame) => frame.type === 'left');
      assert.equal(left.name, 'erin');
      await sleep(200);
      assert.equal(watcher.all('joined').filter((frame) => frame.name === 'erin').length, 1);
      assert.equal(watcher.all('left').filter((frame) => frame.name === 'erin').length, 1);
    });

    it('caps the rooms of one connection with too_many_rooms and keeps it open; parting one makes room', async () => {
      const server = await start({ memory: true, args: [...FAST_V2, '--max-rooms-per-connection', '2'] });
      const alice = await v2(server.port, 'alice');
      await alice.join('one');
      await alice.join('two');
      assert.equal(await alice.refused({ type: 'join', room: 'three' }), 'too_many_rooms');
      await alice.join('two');
      await alice.ok({ type: 'part', room: 'one' });
      await alice.join('three');
    });

    it('parts a room as a person: the identity\'s other connections are told, the room hears one left, and a second part is acked alike', async () => {
      const server = await start();
      const watcher = await v2(server.port, 'watcher');
      await watcher.join('hall');
      const first = await v2(server.port, 'fred');
      const second = await v2(server.port, 'fred', { key: first.welcome!.key, clientId: 'fred-2' });
      await first.join('hall');
      await second.join('hall');
      await first.ok({ type: 'part', id: 'p1', room: 'hall' });
      const parted = await second.next((frame) => frame.type === 'parted');
      assert.deepEqual([parted.room, parted.reason], ['hall', 'quit']);
      const left = await watcher.next((frame) => frame.type === 'left');
      assert.deepEqual([left.name, left.reason], ['fred', 'quit']);
      assert.equal((await first.ok({ type: 'part', id: 'p1', room: 'hall' })).type, 'ack');
      assert.equal(await second.refused({ type: 'say', room: 'hall', text: 'x' }), 'not_joined');
      const list = await first.ok({ type: 'conversations' });
      assert.deepEqual(list.conversations, []);
    });
  });

  describe('lists and pages', () => {
    it('lists rooms by name, 100 a page, with topics and member counts', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      const names = Array.from({ length: 105 }, (_, index) => `room-${String(index).padStart(3, '0')}`);
      for (const name of names) {
        await alice.join(name);
        await alice.ok({ type: 'part', room: name });
      }
      await alice.join('room-007');
      await alice.ok({ type: 'topic', room: 'room-007', text: 'lucky' });
      const first = await alice.ok({ type: 'listRooms' });
      const rooms = first.rooms as { room: string; topic: string; memberCount: number }[];
      assert.equal(rooms.length, 100);
      assert.deepEqual(rooms.slice(0, 3).map((room) => room.room), ['room-000', 'room-001', 'room-002']);
      assert.deepEqual(rooms[7], { room: 'room-007', topic: 'lucky', memberCount: 1 });
      assert.equal(first.next, 'room-099');
      const second = await alice.ok({ type: 'listRooms', after: first.next });
      assert.deepEqual((second.rooms as { room: string }[]).map((room) => room.room), ['room-100', 'room-101', 'room-102', 'room-103', 'room-104']);
      assert.equal(second.next, undefined);
    });

    it('pages the members of a big room, 500 a page, in name order', async () => {
      const server = await start({ memory: true, args: [...FAST_V2, '--max-clients', '0'] });
      const crowd: TestClient[] = [];
      for (let index = 0; index < 520; index++) {
        const client = await TestClient.connect(server.port);
        made.keep(client);
        client.send({ type: 'hello', name: `m${String(index).padStart(3, '0')}`, room: 'crowd' });
        crowd.push(client);
      }
      await Promise.all(crowd.map((client) => client.nextFrame((frame) => frame.type === 'welcome', 20_000)));
      const alice = await v2(server.port, 'alice');
      const state = await alice.join('crowd');
      assert.equal(state.memberCount, 521);
      assert.equal((state.members as string[]).length, 200);
      const first = await alice.ok({ type: 'listMembers', room: 'crowd' });
      const firstNames = first.names as string[];
      assert.equal(firstNames.length, 500);
      assert.deepEqual(firstNames.slice(0, 2), ['alice', 'm000']);
      const second = await alice.ok({ type: 'listMembers', room: 'crowd', after: first.next });
      assert.equal((second.names as string[]).length, 21);
      assert.equal(second.next, undefined);
      assert.equal(new Set([...firstNames, ...(second.names as string[])]).size, 521);
      assert.equal(await alice.refused({ type: 'listMembers', room: 'not-mine' }), 'not_joined');
    });

    it('pages history backwards, oldest first, each message in its current state, and never past the server frame limit', async () => {
      const server = await start();
      const alice = await v2(server.port, 'alice');
      await alice.join('archive');
      const seqs: number[] = [];
      for (let index = 0; index < 150; index++) seqs.push(await alice.say('archive', `m${index}`));
      await alice.ok({ type: 'edit', room: 'archive', target: seqs[10], text: 'm10 (fixed)' });
      const latest = await alice.ok({ type: 'history', room: 'archive', before: seqs[149] + 100 });
      const events = latest.events as AnyFrame[];
      assert.equal(events.length, 100);
      assert.equal(latest.more, true);
      assert.ok(events.every((event, index) => index === 0 || (event.seq as number) > (events[index - 1].seq as number)), 'oldest first');
      const older = await alice.ok({ type: 'history', room: 'archive', before: events[0].seq, limit: 60 });
      const olderEvents = older.events as AnyFrame[];
      assert.equal(older.more, false);
      const fixed = olderEvents.find((event) => event.seq === seqs[10]) as AnyFrame;
      assert.deepEqual([fixed.text, typeof fixed.editedTs], ['m10 (fixed)', 'number']);
      assert.equal(olderEvents[0].type, 'joined');
      const big = 'x'.repeat(4000);
      for (let index = 0; index < 40; index++) await alice.say('archive', big);
      const capped = await alice.request({ type: 'history', room: 'archive', before: 1_000_000 });
      const cappedBytes = Buffer.byteLength(JSON.stringify(capped));
      assert.ok(cappedBytes <= MAX_SERVER_FRAME_BYTES, `a page of ${cappedBytes} bytes`);
      assert.ok((capped.events as AnyFrame[]).length < 20 && capped.more === true);
      for (const frame of [{ before: 0 }, { before: 5, limit: 0 }, { before: 5, limit: 101 }]) {
        assert.equal(await alice.refused({ type: 'history', room: 'archive', ...frame }), 'bad_frame', JSON.stringify(frame));
      }
    });
  });

  describe('owners', () => {
    it('lets only the owner set the topic, kick and hand the room on; the others get forbidden', async () => {
      const server = await start({ memory: true, classic: true, args: FAST_V2 });
      const owner = await v2(server.port, 'olga');
      const member = await v2(server.port, 'max');
      await owner.join('club');
      await member.join('club');
      for (const frame of [
        { type: 'topic', room: 'club', text: 'mine now' },
        { type: 'kick', room: 'club', name: 'olga' },
        { type: 'setOwner', room: 'club', name: 'max' },
      ]) {
        assert.equal(await member.refused(frame), 'forbidden', frame.type);
      }
      await owner.ok({ type: 'topic', room: 'club', text: 'Weekly sync' });
      const topic = await member.next((frame) => frame.type === 'topic');
      assert.deepEqual([topic.topic, topic.by], ['Weekly sync', 'olga']);
      assert.equal(await owner.refused({ type: 'topic', room: 'club', text: 't'.repeat(257) }), 'too_long');
      assert.equal(await owner.refused({ type: 'topic', room: 'club', text: 'two\nlines' }), 'bad_frame');
      assert.equal(await owner.refused({ type: 'kick', room: 'club', name: 'olga' }), 'forbidden', 'not oneself');
      assert.equal(await owner.refused({ type: 'kick', room: 'club', name: 'nobody' }), 'not_found');
      assert.equal(await owner.refused({ type: 'setOwner', room: 'club', name: 'nobody' }), 'not_found');
    });

    it('kicks a v2 member (parted, left with reason kicked and by), who may join again; and a v1 and a classic member, who are closed', async () => {
      const server = await start({ memory: true, classic: true, args: FAST_V2 });
      const owner = await v2(server.port, 'olga');
      await owner.join('lobby');
      const kicked = await v2(server.port, 'kim');
      await kicked.join('lobby');
      await owner.ok({ type: 'kick', room: 'lobby', name: 'kim' });
      const parted = await kicked.next((frame) => frame.type === 'parted');
      assert.deepEqual([parted.room, parted.reason, parted.by], ['lobby', 'kicked', 'olga']);
      const left = await owner.next((frame) => frame.type === 'left' && frame.name === 'kim');
      assert.deepEqual([left.reason, left.by], ['kicked', 'olga']);
      assert.equal(await kicked.refused({ type: 'say', room: 'lobby', text: 'hey' }), 'not_joined');
      await kicked.join('lobby');

      const old = await v1(server.port, 'vera', 'lobby');
      await owner.ok({ type: 'kick', room: 'lobby', name: 'vera' });
      const own = await old.nextFrame<LeftEvent>((frame) => frame.type === 'left' && frame.name === 'vera');
      assert.equal(own.reason, 'kicked');
      await old.waitForClose();
      const nc = await TestClient.connect(server.classicPort as number);
      made.keep(nc);
      await nc.nextLine();
      nc.write('nico\n');
      await nc.nextLine((text) => text.startsWith('Welcome nico'));
      await owner.next((frame) => frame.type === 'joined' && frame.name === 'nico');
      await owner.ok({ type: 'kick', room: 'lobby', name: 'nico' });
      assert.match(await nc.nextLine((text) => text.startsWith('You have been removed')), /by olga/);
      await nc.waitForClose();
    });

    it('hands the room on; ownership and the topic survive a restart; a room a v1 member made has no owner', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir, args: FAST_V2 });
      const olga = await v2(server.port, 'olga');
      const max = await v2(server.port, 'max');
      await olga.join('club');
      await max.join('club');
      await olga.ok({ type: 'topic', room: 'club', text: 'before the restart' });
      const handed = await olga.ok({ type: 'setOwner', room: 'club', name: 'max' });
      assert.equal(typeof handed.seq, 'number');
      const owner = await max.next((frame) => frame.type === 'owner');
      assert.deepEqual([owner.owner, owner.by], ['max', 'olga']);
      assert.equal(await olga.refused({ type: 'topic', room: 'club', text: 'not any more' }), 'forbidden');
      const v1Maker = await v1(server.port, 'vic', 'old-style');
      await sleep(100);
      await server.stop();
      v1Maker.close();

      server = await start({ dataDir, args: FAST_V2 });
      const maxAgain = await v2(server.port, 'max', { key: max.welcome!.key });
      const state = await maxAgain.join('club');
      assert.deepEqual([state.owner, state.topic], ['max', 'before the restart']);
      await maxAgain.ok({ type: 'topic', room: 'club', text: 'after the restart' });
      const olgaAgain = await v2(server.port, 'olga', { key: olga.welcome!.key });
      assert.equal((await olgaAgain.join('club')).owner, 'max', 'the old owner joins as anyone does');
      const oldStyle = await olgaAgain.join('old-style');
      assert.equal(oldStyle.owner, undefined);
      assert.equal(await olgaAgain.refused({ type: 'topic', room: 'old-style', text: 'mine?' }), 'forbidden');
    });

    it('brings the directory up to date from the room\'s log when a crash came between storing an owner or topic event and the directory entry', async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir, args: FAST_V2 });
      const olga = await v2(server.port, 'olga');
      const max = await v2(server.port, 'max');
      await olga.join('club');
      await max.join('club');
      await olga.ok({ type: 'topic', room: 'club', text: 'stored in the log only' });
      await olga.ok({ type: 'setOwner', room: 'club', name: 'max' });
      await server.stop();
      // As if the server died after each event was stored and before the directory took it: the last entries of the room go.
      const journal = join(dataDir, 'directory.journal');
      const lines = readFileSync(journal, 'utf8').trim().split('\n');
      const roomEntries = lines.map((line, index) => [index, JSON.parse(line)] as const).filter(([, op]) => op.op === 'room' && op.room === 'club');
      const dropped = new Set(roomEntries.slice(-2).map(([index]) => index));
      writeFileSync(journal, lines.filter((_, index) => !dropped.has(index)).join('\n') + '\n');
      assert.ok(!readFileSync(journal, 'utf8').includes('stored in the log only'), 'the directory lost the topic');

      server = await start({ dataDir, args: FAST_V2 });
      const maxAgain = await v2(server.port, 'max', { key: max.welcome!.key });
      const state = await maxAgain.join('club');
      assert.deepEqual([state.owner, state.topic], ['max', 'stored in the log only']);
      await maxAgain.ok({ type: 'topic', room: 'club', text: 'the new owner acts' });
      const olgaAgain = await v2(server.port, 'olga', { key: olga.welcome!.key });
      await olgaAgain.join('club');
      assert.equal(await olgaAgain.refused({ type: 'topic', room: 'club', text: 'not mine any more' }), 'forbidden');
      const deadline = Date.now() + 3000;
      while (!readFileSync(journal, 'utf8').includes('stored in the log only') && Date.now() < deadline) await sleep(50);
      assert.ok(readFileSync(journal, 'utf8').includes('"topicSeq"'), 'the directory was brought up to date');
    });
  });
});
