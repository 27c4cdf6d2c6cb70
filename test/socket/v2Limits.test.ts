/**
 * Protocol v2's limits and refusals over real TCP against the built server:
 * malformed and oversized frames and fields, tokens and the rate limit, each
 * answered with its error code (with the frame's id), the connection kept
 * open unless the code ends it, and everyone else served as before.
 */
import assert from 'node:assert/strict';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';
import { FAST_V2, v2Fixture } from '../support/v2Fixture';

describe('protocol v2: limits and refusals', function () {
  this.timeout(30_000);
  const made = v2Fixture();
  const start = (args: string[] = FAST_V2): Promise<ServerProcess> => made.start({ memory: true, args });
  const { v2 } = made;

  it('answers malformed frames with bad_frame and their id, and keeps the connection', async () => {
    const server = await start();
    const alice = await v2(server.port, 'alice');
    await alice.join('room');
    const cases: [Record<string, unknown>, string][] = [
      [{ type: 'say', room: 'room' }, 'no text'],
      [{ type: 'say', text: 'no room' }, 'no room'],
      [{ type: 'edit', room: 'room', target: '3', text: 'x' }, 'a target that is a string'],
      [{ type: 'edit', room: 'room', target: 1.5, text: 'x' }, 'a target that is not whole'],
      [{ type: 'react', room: 'room', target: 1, emoji: '👍', add: 'yes' }, 'add that is not a boolean'],
      [{ type: 'history', room: 'room', before: { seq: 3 } }, 'a nested object'],
      [{ type: 'search', room: 'room', text: ['a', 'b'] }, 'an array where a string belongs'],
      [{ type: 'openDm', with: [1, 2] }, 'an array of numbers'],
      [{ type: 'noSuchFrame' }, 'an unknown type'],
      [{ type: 'read', room: 'room', seq: -1 }, 'a negative seq'],
      [{ type: 'join', room: 'room', lastSeq: -5 }, 'a negative lastSeq'],
      [{ type: 'say', room: 'room', text: '\u200B\u2060' }, 'an invisible text'],
    ];
    for (const [frame, why] of cases) assert.equal(await alice.refused(frame), 'bad_frame', why);
    // An id over 64 characters is refused with its first 64, whichever check finds the frame wrong first.
    for (const frame of [{ type: 'say', room: 'room', text: 'x' }, { type: 'openDm' }, { type: 'say', room: 'room', text: 'x', extra: { nested: 1 } }]) {
      const longId = 'i'.repeat(64) + JSON.stringify(frame);
      alice.send({ ...frame, id: longId });
      const refusal = await alice.next((reply) => reply.type === 'error' && reply.id === longId.slice(0, 64));
      assert.equal(refusal.code, 'bad_frame', JSON.stringify(frame));
    }
    alice.write('{"type":"say","id":"broken",\n');
    alice.write('not json at all\n');
    alice.write(Buffer.from([0xff, 0xfe, 0x0a]));
    for (let index = 0; index < 3; index++) assert.equal((await alice.next((frame) => frame.type === 'error')).code, 'bad_frame');
    alice.write(JSON.stringify({ type: 'ping' }) + '\n');
    await alice.next((frame) => frame.type === 'pong');
    assert.equal(alice.closed, false);
  });

  it('refuses bad room names with bad_room and over-long texts with too_long, and closes on an over-long frame', async () => {
    const server = await start();
    const alice = await v2(server.port, 'alice');
    const bob = await v2(server.port, 'bob');
    await bob.join('room');
    for (const room of ['', ' padded ', 'r'.repeat(65), 'bell\u0007', 'zero\u200Bwidth']) {
      assert.equal(await alice.refused({ type: 'join', room }), 'bad_room', JSON.stringify(room));
    }
    await alice.join('room');
    assert.equal(await alice.refused({ type: 'say', room: 'room', text: 'x'.repeat(4097) }), 'too_long');
    await alice.say('room', 'still here');
    alice.write('{"type":"say","id":"big","room":"room","text":"' + 'x'.repeat(17 * 1024) + '"}\n');
    const error = await alice.next((frame) => frame.type === 'error' && frame.code === 'too_long' && frame.id === undefined);
    assert.match(error.message as string, /at most 16384 bytes/);
    await alice.waitForClose();
    await bob.say('room', 'the others are served as before');
  });

  it('needs the token in a v2 hello on a server that has one', async () => {
    const server = await made.start({ memory: true, args: ['--token', 'sesame'] });
    const stranger = made.keep(await V2Client.connect(server.port));
    stranger.sendHello('stranger');
    assert.equal((await stranger.next((frame) => frame.type === 'error')).code, 'unauthorized');
    await stranger.waitForClose();
    await v2(server.port, 'friend', { token: 'sesame' });
  });

  it('paces a v2 connection by the rate limit: told once, nothing dropped', async () => {
    const server = await start(['--rate-burst', '5', '--rate-per-second', '50']);
    const alice = await v2(server.port, 'alice');
    await alice.join('room');
    const ids = Array.from({ length: 40 }, (_, index) => `burst-${index}`);
    for (const id of ids) alice.send({ type: 'say', id, room: 'room', text: id });
    for (const id of ids) await alice.seen((frame) => frame.type === 'ack' && frame.id === id, 10_000);
    assert.equal(alice.frames.filter((frame) => frame.type === 'error' && frame.code === 'rate_limited').length, 1);
  });
});

describe('protocol v2: a client that asks for replays it does not read', function () {
  this.timeout(60_000);

  it('is cut off as a slow reader instead of having the server hold replay after replay for it', async () => {
    const server = await ServerProcess.start({ memory: true, args: ['--rate-burst', '5000', '--rate-per-second', '5000', '--retain-events', '5000'] });
    const writer = await V2Client.hello(server.port, 'writer');
    const hoarder = await V2Client.hello(server.port, 'hoarder');
    try {
      await writer.join('deep');
      const text = 'y'.repeat(500);
      for (let index = 0; index < 2000; index++) writer.send({ type: 'say', id: `w${index}`, room: 'deep', text });
      await writer.seen((frame) => frame.type === 'ack' && frame.id === 'w1999', 30_000);
      hoarder.socket.pause();
      for (let index = 0; index < 400; index++) hoarder.send({ type: 'join', id: `again${index}`, room: 'deep', lastSeq: 0 });
      const deadline = Date.now() + 20_000;
      while (!/is not reading/.test(server.log) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.match(server.log, /hoarder|is not reading/);
      assert.match(server.log, /is not reading/, 'the hoarder was cut off');
      await writer.say('deep', 'the others are served as before');
    } finally {
      writer.close();
      hoarder.close();
      await server.dispose();
    }
  });
});

describe('protocol v2: what one address, connection or identity may pile up', function () {
  this.timeout(60_000);
  const closers: { close(): void }[] = [];
  let server: ServerProcess | undefined;
  afterEach(async () => {
    for (const client of closers.splice(0)) client.close();
    await server?.dispose();
  });

  it('lets one address claim at most --new-names-per-minute new names (its kept names come back freely)', async () => {
    server = await ServerProcess.start({ memory: true, args: ['--new-names-per-minute', '3', '--limit-loopback', '--new-connections-per-minute', '0'] });
    const keys: string[] = [];
    for (let index = 0; index < 3; index++) {
      const client = await V2Client.hello(server.port, `name${index}`);
      closers.push(client);
      keys.push(client.welcome!.key as string);
    }
    const refused = await V2Client.connect(server.port);
    closers.push(refused);
    refused.sendHello('name3');
    const error = await refused.next((frame) => frame.type === 'error');
    assert.equal(error.code, 'rate_limited');
    await refused.waitForClose();
    closers.push(await V2Client.hello(server.port, 'name0', { key: keys[0] }));
  });

  it('lets one connection make at most --new-dms-per-minute DMs; opening one that exists is free', async () => {
    server = await ServerProcess.start({ memory: true, args: ['--new-dms-per-minute', '2', '--rate-burst', '1000', '--rate-per-second', '1000'] });
    const names = ['b1', 'b2', 'b3'];
    for (const name of names) closers.push(await V2Client.hello(server.port, name));
    const alice = await V2Client.hello(server.port, 'alice');
    closers.push(alice);
    const first = await alice.ok({ type: 'openDm', with: ['b1'] });
    await alice.ok({ type: 'openDm', with: ['b2'] });
    assert.equal(await alice.refused({ type: 'openDm', with: ['b3'] }), 'rate_limited');
    assert.equal((await alice.ok({ type: 'openDm', with: ['b1'] })).room, first.room);
  });

  it('pages a conversation list that would not fit one frame', async () => {
    server = await ServerProcess.start({ memory: true, args: ['--max-rooms-per-connection', '1000', '--rate-burst', '5000', '--rate-per-second', '5000'] });
    const alice = await V2Client.hello(server.port, 'alice');
    closers.push(alice);
    const rooms = Array.from({ length: 600 }, (_, index) => `a-rather-long-room-name-to-fill-the-list-${String(index).padStart(4, '0')}`);
    for (const room of rooms) alice.send({ type: 'join', id: `j-${room}`, room });
    await alice.seen((frame) => frame.type === 'ack' && frame.id === `j-${rooms[rooms.length - 1]}`, 30_000);
    const listed: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 20; page++) {
      const answer = await alice.ok(after === undefined ? { type: 'conversations' } : { type: 'conversations', after });
      assert.ok(Buffer.byteLength(JSON.stringify(answer)) < 64 * 1024);
      listed.push(...(answer.conversations as { room: string }[]).map((conversation) => conversation.room));
      after = answer.next as string | undefined;
      if (after === undefined) break;
    }
    assert.deepEqual(listed, rooms);
  });
});

describe('protocol v2: answers that must stay under the server frame limit', function () {
  this.timeout(90_000);
  const closers: { close(): void }[] = [];
  let server: ServerProcess | undefined;
  afterEach(async () => {
    for (const client of closers.splice(0)) client.close();
    await server?.dispose();
  });
  const FAST_V2 = ['--rate-burst', '5000', '--rate-per-second', '5000', '--new-names-per-minute', '0'];
  const under = (frame: unknown, what: string) => {
    const bytes = Buffer.byteLength(JSON.stringify(frame));
    assert.ok(bytes <= 64 * 1024, `${what}: ${bytes} bytes`);
  };

  it('keeps a message with the longest escaped text and every reaction of long-named people under 64 KiB, in replays, history and search', async () => {
    server = await ServerProcess.start({ memory: true, args: [...FAST_V2, '--max-frame-bytes', '65536'] });
    const writer = await V2Client.hello(server.port, 'writer');
    closers.push(writer);
    await writer.join('room');
    const seq = await writer.say('room', 'find ' + '\u0001'.repeat(4090));
    const emoji = ['😀', '😁', '😂', '🤣', '😃', '😄', '😅', '😆', '😉', '😊', '😋', '😎', '😍', '😘', '🥰', '😗', '😙', '🥲', '😚', '🙂'];
    for (let person = 0; person < 20; person++) {
      const name = '🐙'.repeat(31) + emoji[person];
      const client = await V2Client.hello(server.port, name);
      closers.push(client);
      await client.join('room');
      for (const [index, reaction] of emoji.entries()) client.send({ type: 'react', id: `r${index}`, room: 'room', target: seq, emoji: reaction, add: true });
      await client.seen((frame) => frame.type === 'ack' && frame.id === 'r19', 20_000);
    }
    const reader = await V2Client.hello(server.port, 'reader');
    closers.push(reader);
    await reader.join('room', 0);
    const replayed = reader.frames.find((frame) => frame.type === 'message' && frame.seq === seq);
    assert.ok(replayed, 'the message is replayed');
    for (const frame of reader.frames) under(frame, `replayed ${frame.type}`);
    const page = await reader.ok({ type: 'history', room: 'room', before: seq + 1 });
    under(page, 'the history page');
    assert.ok((page.events as { seq: number }[]).some((event) => event.seq === seq), 'the page holds the message');
    const hits = await reader.ok({ type: 'search', room: 'room', text: 'find' });
    under(hits, 'the search results');
    assert.equal((hits.hits as unknown[]).length, 1);
  });

  it('keeps a room list of rooms with the longest names and topics under 64 KiB', async () => {
    server = await ServerProcess.start({ memory: true, args: FAST_V2 });
    const owner = await V2Client.hello(server.port, 'owner');
    closers.push(owner);
    const topic = '𝄞'.repeat(256);
    const rooms: string[] = [];
    for (let index = 0; index < 120; index++) {
      const room = '𝄞'.repeat(60) + String(index).padStart(4, '0');
      rooms.push(room);
      await owner.join(room);
      await owner.ok({ type: 'topic', room, text: topic });
      await owner.ok({ type: 'part', room });
    }
    const listed: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const answer = await owner.ok(after === undefined ? { type: 'listRooms' } : { type: 'listRooms', after });
      under(answer, 'a room list');
      listed.push(...(answer.rooms as { room: string }[]).map((entry) => entry.room));
      after = answer.next as string | undefined;
      if (after === undefined) break;
    }
    assert.deepEqual(listed, rooms);
  });
});
