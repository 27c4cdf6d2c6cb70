/**
 * Protocol v2 messages over real TCP against the built server: replies,
 * edits, deletions, reactions and typing; who may do what; what v1 and
 * classic members see of it (the fair text versions); replays in the current
 * state; and a deleted message's text gone from the disk after compaction.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AckFrame, MessageEvent } from '../../shared/protocol';
import { roomLogFileName } from '../../server/roomLog';
import { sleep } from '../support/historyChecks';
import { TestClient } from '../support/testClient';
import { type AnyFrame, V2Client } from '../support/v2Client';
import { FAST_V2, v2Fixture } from '../support/v2Fixture';

describe('protocol v2: messages', function () {
  this.timeout(60_000);
  const made = v2Fixture();
  const { start, v2, tempDir } = made;
  async function pair(port: number, room = 'lobby'): Promise<[V2Client, V2Client]> {
    const alice = await v2(port, 'alice');
    const bob = await v2(port, 'bob');
    await alice.join(room);
    await bob.join(room);
    return [alice, bob];
  }


  describe('replies', () => {
    it('replies to a message the room holds, naming its author; a reply to a seq that is not a message the room holds is not_found', async () => {
      const server = await start();
      const [alice, bob] = await pair(server.port);
      const asked = await alice.say('lobby', 'lunch?');
      const seq = await bob.say('lobby', 'yes', { replyTo: asked });
      const reply = await alice.next((frame) => frame.type === 'message' && frame.seq === seq);
      assert.deepEqual([reply.replyTo, reply.replyToFrom], [asked, 'alice']);
      const joinedSeq = (alice.all('joined')[0].seq as number) ?? 1;
      for (const target of [999, 0, joinedSeq]) assert.equal(await bob.refused({ type: 'say', room: 'lobby', text: 'to nothing', replyTo: target }), 'not_found', String(target));
      await alice.ok({ type: 'delete', room: 'lobby', target: asked });
      assert.equal(await bob.refused({ type: 'say', room: 'lobby', text: 'to a deleted one', replyTo: asked }), 'not_found');
    });
  });

  describe('edits and deletions', () => {
    it('lets only the author edit or delete; nobody can edit a message written over v1', async () => {
      const server = await start();
      const [alice, bob] = await pair(server.port);
      const seq = await alice.say('lobby', 'draft');
      assert.equal(await bob.refused({ type: 'edit', room: 'lobby', target: seq, text: 'hijacked' }), 'forbidden');
      assert.equal(await bob.refused({ type: 'delete', room: 'lobby', target: seq }), 'forbidden');
      const edit = await alice.ok({ type: 'edit', room: 'lobby', target: seq, text: 'final' });
      const edited = await bob.next((frame) => frame.type === 'edited');
      assert.deepEqual([edited.seq, edited.target, edited.text, edited.from], [edit.seq, seq, 'final', 'alice']);
      const old = await TestClient.join(server.port, 'vic');
      made.keep(old);
      old.send({ type: 'say', id: 'v1', text: 'from the old client' });
      const v1Seq = (await old.nextFrame<AckFrame>((frame) => frame.type === 'ack')).seq;
      for (const client of [alice, bob]) assert.equal(await client.refused({ type: 'edit', room: 'lobby', target: v1Seq, text: 'mine now' }), 'forbidden');
      assert.equal(await alice.refused({ type: 'edit', room: 'lobby', target: 424242, text: 'x' }), 'not_found');
      assert.equal(await alice.refused({ type: 'edit', room: 'lobby', target: seq, text: '\u200B' }), 'bad_frame');
      assert.equal(await alice.refused({ type: 'edit', room: 'lobby', target: seq, text: 'x'.repeat(5000) }), 'too_long');
      const deletion = await alice.ok({ type: 'delete', room: 'lobby', target: seq });
      const deleted = await bob.next((frame) => frame.type === 'deleted');
      assert.deepEqual([deleted.seq, deleted.target, deleted.text], [deletion.seq, seq, undefined]);
      assert.equal(await alice.refused({ type: 'edit', room: 'lobby', target: seq, text: 'back again' }), 'not_found');
      assert.equal(await alice.refused({ type: 'delete', room: 'lobby', target: seq }), 'not_found');
    });

    it('replays each message in its current state, and each change against it, so a deleted text never comes back', async () => {
      const server = await start();
      const [alice] = await pair(server.port);
      const kept = await alice.say('lobby', 'first');
      const gone = await alice.say('lobby', 'secret');
      await alice.ok({ type: 'edit', room: 'lobby', target: kept, text: 'first, edited' });
      await alice.ok({ type: 'edit', room: 'lobby', target: gone, text: 'secret, edited' });
      await alice.ok({ type: 'react', room: 'lobby', target: kept, emoji: '🎉', add: true });
      await alice.ok({ type: 'delete', room: 'lobby', target: gone });
      const carol = await v2(server.port, 'carol');
      await carol.join('lobby', 0);
      const seen = JSON.stringify(carol.frames);
      assert.ok(!seen.includes('secret'), 'no text of the deleted message in the replay');
      const first = carol.frames.find((frame) => frame.type === 'message' && frame.seq === kept) as AnyFrame;
      assert.equal(first.text, 'first, edited');
      assert.equal(typeof first.editedTs, 'number');
      assert.deepEqual(first.reactions, [{ emoji: '🎉', count: 1, names: ['alice'] }]);
      const second = carol.frames.find((frame) => frame.type === 'message' && frame.seq === gone) as AnyFrame;
      assert.deepEqual([second.text, second.deleted], ['', true]);
      const changes = carol.frames.filter((frame) => frame.type === 'edited' || frame.type === 'deleted' || frame.type === 'reactions');
      assert.deepEqual(
        changes.map((frame) => [frame.type, frame.target]),
        [
          ['edited', kept],
          ['deleted', gone],
          ['reactions', kept],
          ['deleted', gone],
        ],
        'the edit of the deleted message is replayed as its deletion',
      );
    });
  });

  describe('what v1 and classic members see', () => {
    it('shows replies and edits as fair text, and sends nothing for deletions, reactions, topics, owners and typing', async () => {
      const server = await start({ memory: true, classic: true, args: FAST_V2 });
      const [alice, bob] = await pair(server.port);
      const old = await TestClient.join(server.port, 'vic');
      made.keep(old);
      const nc = await TestClient.connect(server.classicPort as number);
      made.keep(nc);
      await nc.nextLine();
      nc.write('nico\n');
      await nc.nextLine((text) => text.startsWith('Welcome'));
      await alice.next((frame) => frame.type === 'joined' && frame.name === 'nico');
      const asked = await alice.say('lobby', 'plain question');
      await bob.say('lobby', 'an answer', { replyTo: asked });
      await alice.ok({ type: 'edit', room: 'lobby', target: asked, text: 'better question' });
      await bob.ok({ type: 'react', room: 'lobby', target: asked, emoji: '👍', add: true });
      await alice.ok({ type: 'topic', room: 'lobby', text: 'a topic' });
      await alice.ok({ type: 'setOwner', room: 'lobby', name: 'bob' });
      bob.send({ type: 'typing', room: 'lobby' });
      const last = await alice.say('lobby', 'the end');
      await alice.ok({ type: 'delete', room: 'lobby', target: last });
      await alice.say('lobby', 'after the end');

      await old.nextFrame<MessageEvent>((frame) => frame.type === 'message' && frame.text === 'after the end');
      const messages = old.frames().filter((frame): frame is MessageEvent => frame.type === 'message');
      assert.deepEqual(
        messages.map((message) => [message.from, message.text]),
        [
          ['alice', 'plain question'],
          ['bob (to alice)', 'an answer'],
          ['alice (edited)', 'better question'],
          ['alice', 'the end'],
          ['alice', 'after the end'],
        ],
      );
      assert.ok(
        old.lines.every((line) => !/"type":"(edited|deleted|reactions|topic|owner|typing)"/.test(line)),
        'a v1 member gets no v2-only frame',
      );
      await nc.nextLine((text) => text === 'alice: after the end');
      const lines = nc.lines.filter((text) => text.includes(': '));
      assert.deepEqual(lines, ['alice: plain question', 'bob (to alice): an answer', 'alice (edited): better question', 'alice: the end', 'alice: after the end']);
    });
  });

  describe('reactions', () => {
    it('takes one emoji, aggregates who reacted, is harmless twice, and caps distinct emoji per message', async () => {
      const server = await start({ memory: true, args: [...FAST_V2, '--max-reactions-per-message', '3'] });
      const [alice, bob] = await pair(server.port);
      const seq = await alice.say('lobby', 'react to me');
      for (const emoji of ['', 'a', '👍👍', ':)', '👍 ', '\u200D']) {
        assert.equal(await bob.refused({ type: 'react', room: 'lobby', target: seq, emoji, add: true }), 'bad_reaction', JSON.stringify(emoji));
      }
      const added = await bob.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👍🏽', add: true });
      assert.equal(typeof added.seq, 'number');
      const again = await bob.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👍🏽', add: true });
      assert.equal(again.seq, undefined, 'adding one you have stores nothing');
      await alice.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👍🏽', add: true });
      await alice.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👨‍👩‍👧', add: true });
      const list = await bob.next((frame) => frame.type === 'reactions' && (frame.reactions as unknown[]).length === 2);
      assert.deepEqual(list.reactions, [
        { emoji: '👍🏽', count: 2, names: ['bob', 'alice'] },
        { emoji: '👨‍👩‍👧', count: 1, names: ['alice'] },
      ]);
      await alice.ok({ type: 'react', room: 'lobby', target: seq, emoji: '🇫🇷', add: true });
      assert.equal(await bob.refused({ type: 'react', room: 'lobby', target: seq, emoji: '🎉', add: true }), 'bad_reaction', 'a fourth distinct emoji');
      const removed = await bob.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👍🏽', add: false });
      assert.equal((await bob.ok({ type: 'react', room: 'lobby', target: seq, emoji: '👍🏽', add: false })).seq, undefined);
      const after = await alice.seen((frame) => frame.type === 'reactions' && frame.seq === removed.seq);
      assert.deepEqual((after.reactions as { names: string[] }[])[0].names, ['alice']);
      assert.equal(await bob.refused({ type: 'react', room: 'lobby', target: 99999, emoji: '🎉', add: true }), 'not_found');
    });
  });

  describe('typing', () => {
    it('passes typing on to the other v2 members only, at most once per 2 s per connection and room, and never stores it', async () => {
      const server = await start({ memory: true, classic: true, args: FAST_V2 });
      const old = await TestClient.join(server.port, 'vic');
      made.keep(old);
      const nc = await TestClient.connect(server.classicPort as number);
      made.keep(nc);
      await nc.nextLine();
      nc.write('nico\n');
      const [alice, bob] = await pair(server.port);
      const bobElsewhere = await v2(server.port, 'bob', { key: bob.welcome!.key, clientId: 'bob-2' });
      await bobElsewhere.join('lobby');
      for (let index = 0; index < 10; index++) bob.send({ type: 'typing', room: 'lobby' });
      const typing = await alice.next((frame) => frame.type === 'typing');
      assert.deepEqual(typing, { type: 'typing', room: 'lobby', name: 'bob' });
      await sleep(500);
      assert.equal(alice.all('typing').length, 1, 'the rest within 2 s were dropped');
      await sleep(1700);
      bob.send({ type: 'typing', room: 'lobby' });
      await alice.next((frame) => frame.type === 'typing');
      assert.equal(alice.all('typing').length, 2);
      assert.equal(bobElsewhere.all('typing').length, 0, 'not to the typer\'s own other connection');
      assert.ok(!old.lines.some((line) => line.includes('typing')) && !nc.lines.some((line) => line.includes('typing')));
      bob.send({ type: 'typing', room: 'not-joined' });
      const refusal = await bob.next((frame) => frame.type === 'error');
      assert.deepEqual([refusal.code, refusal.room], ['not_joined', 'not-joined']);
      const history = await alice.ok({ type: 'history', room: 'lobby', before: 1000 });
      assert.ok(!(history.events as AnyFrame[]).some((event) => event.type === 'typing'), 'typing is never stored');
    });

    it('ends a typing run with the typer\'s message: typing for the next one is passed on at once', async () => {
      const server = await start();
      const [alice, bob] = await pair(server.port);
      bob.send({ type: 'typing', room: 'lobby' });
      await alice.next((frame) => frame.type === 'typing');
      await bob.say('lobby', 'done');
      // Within 2 s of the first signal, but a new message is being written.
      bob.send({ type: 'typing', room: 'lobby' });
      await alice.next((frame) => frame.type === 'typing' && alice.all('typing').length === 2, 1_500);
      bob.send({ type: 'typing', room: 'lobby' });
      await sleep(300);
      assert.equal(alice.all('typing').length, 2, 'the same run is still passed on at most once per 2 s');
    });
  });

  describe('on disk', () => {
    it("has a deleted message's text gone from the room's log after the next compaction, and the state survives it", async () => {
      const dataDir = tempDir();
      let server = await start({ dataDir, args: [...FAST_V2, '--retain-events', '20'] });
      const [alice, bob] = await pair(server.port, 'vault');
      const secret = await alice.say('vault', 'the password is hunter2');
      await alice.ok({ type: 'edit', room: 'vault', target: secret, text: 'the password is swordfish' });
      const liked = await alice.say('vault', 'keep me');
      await bob.ok({ type: 'react', room: 'vault', target: liked, emoji: '❤️', add: true });
      await alice.ok({ type: 'edit', room: 'vault', target: liked, text: 'keep me, edited' });
      await alice.ok({ type: 'delete', room: 'vault', target: secret });
      const logFile = join(dataDir, roomLogFileName('vault'));
      assert.match(readFileSync(logFile, 'utf8'), /hunter2/, 'before compaction the text is still there');
      // Forty reactions taken and taken back: twice the retention of changes, so the log is compacted and the oldest changes go.
      for (let index = 0; index < 40; index++) await bob.ok({ type: 'react', room: 'vault', target: liked, emoji: '👍', add: index % 2 === 0 });
      const deadline = Date.now() + 5000;
      while (/hunter2|swordfish/.test(readFileSync(logFile, 'utf8')) && Date.now() < deadline) await sleep(50);
      const onDisk = readFileSync(logFile, 'utf8');
      assert.ok(!/hunter2|swordfish/.test(onDisk), 'neither the text nor its edit is on disk');
      for (const file of readdirSync(dataDir).filter((entry) => statSync(join(dataDir, entry)).isFile())) assert.ok(!/hunter2|swordfish/.test(readFileSync(join(dataDir, file), 'utf8').toString()), file);
      await server.stop();
      server = await start({ dataDir, args: [...FAST_V2, '--retain-events', '20'] });
      const carol = await v2(server.port, 'carol');
      await carol.join('vault', 0);
      const kept = carol.frames.find((frame) => frame.type === 'message' && frame.seq === liked) as AnyFrame;
      assert.equal(kept.text, 'keep me, edited');
      assert.deepEqual(kept.reactions, [{ emoji: '❤️', count: 1, names: ['bob'] }]);
      const deleted = carol.frames.find((frame) => frame.type === 'message' && frame.seq === secret) as AnyFrame;
      assert.deepEqual([deleted.text, deleted.deleted], ['', true]);
      const records = readFileSync(logFile, 'utf8').trim().split('\n').length;
      assert.ok(records < 45, `the log was compacted (${records} records of the 48 written)`);
    });

    it("rewrites a deleted message's text away when the room is unloaded, without waiting for the log to grow", async () => {
      const dataDir = tempDir();
      const server = await start({ dataDir, args: [...FAST_V2, '--room-idle-ms', '200'] });
      const alice = await v2(server.port, 'alice');
      await alice.join('quiet');
      const seq = await alice.say('quiet', 'oops, my token abc123');
      await alice.ok({ type: 'delete', room: 'quiet', target: seq });
      await alice.ok({ type: 'part', room: 'quiet' });
      const logFile = join(dataDir, roomLogFileName('quiet'));
      const deadline = Date.now() + 5000;
      while (readFileSync(logFile, 'utf8').includes('abc123') && Date.now() < deadline) await sleep(50);
      assert.ok(!readFileSync(logFile, 'utf8').includes('abc123'));
    });
  });
});
