/**
 * What an outside review of protocol 2 broke, over real TCP against the
 * built server (see "An outside review of protocol 2" in docs/reliability.md).
 * Each test failed before its fix.
 */
import assert from 'node:assert/strict';
import { V2Client } from '../support/v2Client';
import { FAST_V2, v2Fixture } from '../support/v2Fixture';

describe('protocol v2: an outside review', function () {
  this.timeout(60_000);
  const made = v2Fixture({ args: FAST_V2 });
  const { start, v2 } = made;
  async function conversationRooms(client: V2Client): Promise<string[]> {
    const list = await client.ok({ type: 'conversations' });
    return (list.conversations as { room: string }[]).map((conversation) => conversation.room).sort();
  }


  it('keeps the last of a join and a part sent back to back, in the conversations and after a restart', async () => {
    // A data folder: the directory's writes take a moment, so a part could overtake the join before it.
    const server = await start();
    const key = 'k'.repeat(43);
    const alice = await v2(server.port, 'alice', { key });
    const rooms = Array.from({ length: 8 }, (_, index) => `quick${index}`);
    const left = rooms.slice(0, 4);
    const kept = rooms.slice(4);
    for (const room of kept) await alice.join(room);
    const last: string[] = [];
    // Join then part: the room must not stay among the conversations.
    for (const room of left) {
      alice.send({ type: 'join', id: `join-${room}`, room });
      alice.send({ type: 'part', id: `part-${room}`, room });
      last.push(`part-${room}`);
    }
    // Part then join: the room must be among them.
    for (const room of kept) {
      alice.send({ type: 'part', id: `part-${room}`, room });
      alice.send({ type: 'join', id: `join-${room}`, room });
      last.push(`join-${room}`);
    }
    for (const id of last) assert.equal((await alice.seen((frame) => frame.id === id && (frame.type === 'ack' || frame.type === 'error'))).type, 'ack', id);
    assert.deepEqual(await conversationRooms(alice), kept, 'the conversations after the acks');
    alice.close();

    await server.stop();
    const again = await start({ dataDir: server.dataDir, args: FAST_V2 });
    const back = await v2(again.port, 'alice', { key });
    assert.deepEqual(await conversationRooms(back), kept, 'the conversations after a restart');
  });

  it('refuses a read marker sent right behind a part of its room, and leaves the room out of the conversations', async () => {
    const server = await start();
    const key = 'k'.repeat(43);
    const alice = await v2(server.port, 'alice', { key });
    const rooms = ['gone0', 'gone1', 'gone2', 'gone3'];
    const seqs: number[] = [];
    for (const room of rooms) {
      await alice.join(room);
      seqs.push(await alice.say(room, 'read me'));
    }
    rooms.forEach((room, index) => {
      alice.send({ type: 'part', id: `part-${room}`, room });
      alice.send({ type: 'read', id: `read-${room}`, room, seq: seqs[index] });
    });
    for (const room of rooms) {
      assert.equal((await alice.seen((frame) => frame.id === `part-${room}`)).type, 'ack');
      const read = await alice.seen((frame) => frame.id === `read-${room}` && (frame.type === 'ack' || frame.type === 'error'));
      assert.equal(read.code, 'not_joined', `the read of ${room}, after its part`);
    }
    assert.deepEqual(await conversationRooms(alice), [], 'the conversations after the acks');
    alice.close();
    await server.stop();
    const again = await start({ dataDir: server.dataDir, args: FAST_V2 });
    assert.deepEqual(await conversationRooms(await v2(again.port, 'alice', { key })), [], 'the conversations after a restart');
  });
});
