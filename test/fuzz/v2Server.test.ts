/**
 * Property-based fuzzing of a real server with protocol v2 frames (fast-check,
 * for a bounded time): two clients send random sequences of every v2 frame,
 * well and badly formed, about their rooms, each other's messages, a DM, and
 * rooms and names that do not exist, while a third person watches.
 *
 * After each sequence:
 * - every frame that carried an id got exactly one answer with that id (an
 *   ack, an error, or the answer it asked for), never two, never none;
 * - every frame the server sent is JSON and at most MAX_SERVER_FRAME_BYTES;
 * - the watcher was never sent anything about the DM;
 * - the server still serves: the watcher's own message is acked.
 *
 * FUZZ_TIME_MS and FUZZ_SEED as in frames.test.ts. A failing sequence is saved
 * to test/fuzz/regressions.json and replayed first from then on.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { MAX_SERVER_FRAME_BYTES } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { type AnyFrame, V2Client } from '../support/v2Client';
import { readRegressions, saveRegression } from './regressions';

const TIME_MS = Number(process.env.FUZZ_TIME_MS ?? 2000);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
const PROPERTY = 'a real server answers every v2 frame with an id exactly once, keeps DMs to their participants, and goes on serving';
const ANSWERS = new Set(['ack', 'error', 'roomList', 'conversationList', 'memberList', 'historyPage', 'searchResults', 'dmOpened']);

/** Where a frame's room, target, name and id come from; resolved when it is sent (the run's rooms, seqs and DM). */
interface Step {
  by: 0 | 1;
  type: string;
  room: 'own' | 'other' | 'dm' | 'fake-dm' | 'bad' | 'none';
  target: number;
  text: string;
  name: 'peer' | 'self' | 'watcher' | 'nobody' | 'bad';
  idMode: 'good' | 'empty' | 'long';
  extra: Record<string, unknown>;
}

const TYPES = ['join', 'part', 'say', 'edit', 'delete', 'react', 'typing', 'read', 'topic', 'kick', 'setOwner', 'listRooms', 'conversations', 'listMembers', 'history', 'search', 'openDm', 'ping', 'hello'];
const text = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('hello @fza', '👍', '🎉', '👍👍', '', '\u200B', 'x'.repeat(5000), 'needle', 'a\nb'));
const step: fc.Arbitrary<Step> = fc.record({
  by: fc.constantFrom<0 | 1>(0, 1),
  type: fc.constantFrom(...TYPES),
  room: fc.constantFrom<Step['room']>('own', 'own', 'own', 'other', 'dm', 'dm', 'fake-dm', 'bad', 'none'),
  target: fc.oneof(fc.integer({ min: -2, max: 40 }), fc.constantFrom(2 ** 40, 1.5)),
  text,
  name: fc.constantFrom<Step['name']>('peer', 'self', 'watcher', 'nobody', 'bad'),
  idMode: fc.constantFrom<Step['idMode']>('good', 'good', 'good', 'good', 'empty', 'long'),
  extra: fc.oneof(
    fc.constant({}),
    fc.record({ add: fc.oneof(fc.boolean(), fc.constant('yes')) }),
    fc.record({ limit: fc.integer({ min: -1, max: 120 }) }),
    fc.record({ before: fc.integer({ min: -1, max: 50 }) }),
    fc.record({ lastSeq: fc.integer({ min: -1, max: 50 }) }),
    fc.record({ replyTo: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ with: fc.oneof(fc.array(fc.constantFrom('PEER', 'SELF', 'nobody', ''), { maxLength: 18 }), fc.constant('PEER')) }),
  ),
});

describe('fuzz: a real server fed protocol v2 frames', function () {
  this.timeout(60_000 + TIME_MS * 4);
  let server: ServerProcess;
  let run = 0;

  before(async () => {
    server = await ServerProcess.start({ memory: true, args: ['--rate-burst', '5000', '--rate-per-second', '5000', '--max-reactions-per-message', '3', '--max-rooms-per-connection', '4'] });
    console.log(`      seed ${SEED} (rerun with FUZZ_SEED=${SEED}), ${TIME_MS} ms`);
  });
  after(async () => {
    await server.dispose();
  });

  async function check(steps: Step[]): Promise<void> {
    run += 1;
    const names = [`fza${run}`, `fzb${run}`];
    const watcherName = `watch${run}`;
    const clients = [await V2Client.hello(server.port, names[0]), await V2Client.hello(server.port, names[1])];
    const watcher = await V2Client.hello(server.port, watcherName);
    try {
      const own = `fz-${run}`;
      const other = `fz-other-${run}`;
      for (const client of clients) await client.join(own);
      await watcher.join(own);
      const dm = (await clients[0].ok({ type: 'openDm', with: [names[1]] })).room as string;
      const seqs = [await clients[0].say(own, 'seed message'), await clients[1].say(own, 'another')];
      /** Answers each client is owed, by id (an empty id may be used many times, and is answered each time). */
      const expected = [new Map<string, number>(), new Map<string, number>()];
      let counter = 0;
      for (const { by, type, room, target, text: body, name, idMode, extra } of steps) {
        const client = clients[by];
        if (client.closed) continue;
        counter += 1;
        const id = idMode === 'good' ? `s${counter}` : idMode === 'empty' ? '' : counter + 'L'.repeat(70);
        const rooms = { own, other, dm, 'fake-dm': 'dm:' + 'q'.repeat(26), bad: ' bad ', none: undefined };
        const people = { peer: names[1 - by], self: names[by], watcher: watcherName, nobody: 'nobody-here', bad: '\u200B' };
        const frame: Record<string, unknown> = { type, id, text: body, target: target >= 0 && target < seqs.length ? seqs[target] : target, seq: target, before: target, name: people[name], emoji: body, add: true, ...extra };
        if (rooms[room] !== undefined) frame.room = rooms[room];
        if (Array.isArray(frame.with)) frame.with = (frame.with as string[]).map((entry) => (entry === 'PEER' ? people.peer : entry === 'SELF' ? people.self : entry));
        if (type === 'hello' || type === 'typing' || type === 'ping') delete frame.id;
        client.send(frame);
        if (typeof frame.id === 'string') {
          const answerId = (frame.id as string).slice(0, 64);
          expected[by].set(answerId, (expected[by].get(answerId) ?? 0) + 1);
        }
        if (type === 'say' && idMode === 'good') {
          const acked = await client.seen((reply) => reply.id === id && ANSWERS.has(reply.type), 5000).catch(() => undefined);
          if (acked?.type === 'ack' && typeof acked.seq === 'number') seqs.push(acked.seq);
        }
      }
      // Every frame with an id is answered once (the connections stay open: no frame here may close one).
      const answersTo = (client: V2Client, id: string) => client.frames.filter((frame) => frame.id === id && ANSWERS.has(frame.type)).length;
      for (const [index, client] of clients.entries()) {
        for (const [id, owed] of expected[index]) {
          const deadline = Date.now() + 5000;
          while (answersTo(client, id) < owed && Date.now() < deadline && !client.closed) await new Promise((resolve) => setTimeout(resolve, 10));
        }
        // A moment for any second answer that should not come.
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(client.closed, false, `${names[index]}'s connection was closed`);
        for (const [id, owed] of expected[index]) assert.equal(answersTo(client, id), owed, `${names[index]}: answers to ${JSON.stringify(id)}`);
        for (const frame of client.frames) assert.ok(Buffer.byteLength(JSON.stringify(frame)) <= MAX_SERVER_FRAME_BYTES);
      }
      const leaked = watcher.frames.filter((frame: AnyFrame) => JSON.stringify(frame).includes(dm));
      assert.deepEqual(leaked, [], 'the watcher was sent something about the DM');
      // The watcher may have been kicked: it joins again (as anyone kicked may) and is served.
      await watcher.join(own);
      await watcher.say(own, 'still served');
    } finally {
      for (const client of [...clients, watcher]) client.close();
    }
  }

  const saved = readRegressions().filter((entry) => entry.property === PROPERTY);
  if (saved.length > 0) {
    it(`replays ${saved.length} saved regression case(s)`, async () => {
      for (const entry of saved) await check(entry.input as Step[]);
    });
  }

  it(`holds for random sequences (${TIME_MS} ms)`, async () => {
    const details = await fc.check(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => check(steps)),
      { seed: SEED, interruptAfterTimeLimit: TIME_MS, numRuns: Number.MAX_SAFE_INTEGER },
    );
    if (details.failed && details.counterexample) {
      const input = details.counterexample[0];
      saveRegression({ property: PROPERTY, input, found: new Date().toISOString(), seed: details.seed });
      throw new Error(`counterexample after ${details.numRuns} runs, saved to test/fuzz/regressions.json: ${fc.stringify(input)}\n${String(details.errorInstance)}`);
    }
    assert.ok(details.numRuns > 0, 'at least one sequence ran');
    console.log(`        ${details.numRuns} sequences`);
  });
});
