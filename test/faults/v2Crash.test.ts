/**
 * Crash and restart under protocol v2: v2 clients keep saying, editing,
 * deleting and reacting while the server is killed with SIGKILL at random
 * moments and restarted on the same port and data folder. Each client keeps
 * its identity key and clientId, resends what was not acknowledged with the
 * same ids after every reconnect, and sends one frame at a time.
 *
 * At the end the state the server replays (after one more restart) must be
 * the state the acknowledged changes make, applied in seq order by the rules
 * of docs/protocol.md; every acknowledged change is stored once, nothing
 * acknowledged is lost, and nothing is stored twice.
 *
 * V2_FAULT_CRASHES sets the number of crashes (default 10).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomLogFileName } from '../../server/roomLog';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { sleep } from '../support/historyChecks';
import { startServerOnPort } from '../support/resumingClient';
import type { ServerProcess } from '../support/serverProcess';
import { type AnyFrame, V2Client } from '../support/v2Client';

const CRASHES = Number(process.env.V2_FAULT_CRASHES ?? 10);
const CLIENTS = 8;
const ROOM = 'v2-crash-room';
const EMOJI = ['👍', '🎉', '❤️'];
const SERVER_ARGS = ['--rate-burst', '500', '--rate-per-second', '500', '--retain-events', '1000000'];

type Operation =
  | { type: 'say'; id: string; text: string }
  | { type: 'edit'; id: string; target: number; text: string }
  | { type: 'delete'; id: string; target: number }
  | { type: 'react'; id: string; target: number; emoji: string; add: boolean };

interface Outcome {
  name: string;
  operation: Operation;
  /** The ack's seq (undefined: acked without storing anything, as a reaction one already had). */
  seq: number | undefined;
}

/** One person: an identity kept across reconnects, sending one change at a time and resending it until it is answered. */
class Person {
  key: string | undefined;
  connection: V2Client | undefined;
  readonly acked: Outcome[] = [];
  readonly refused: { operation: Operation; code: string }[] = [];
  reconnects = 0;
  /** Messages of anyone this person has seen, by seq (for reactions), and its own that are not deleted. */
  private readonly seen = new Set<number>();
  private readonly own: number[] = [];
  private readonly reacted = new Set<string>();
  private counter = 0;
  pending: Operation | undefined;

  constructor(
    readonly name: string,
    private readonly port: number,
  ) {}

  get clientId(): string {
    return `crash-${this.name}`;
  }

  /** Connects (until it works or `deadline`), says hello with the key, and joins the room. */
  private async connect(deadline: number): Promise<V2Client> {
    for (;;) {
      try {
        const client = await V2Client.hello(this.port, this.name, { clientId: this.clientId, key: this.key });
        this.key ??= client.welcome!.key;
        await client.join(ROOM);
        for (const frame of client.frames) this.note(frame);
        this.connection = client;
        return client;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(30 + Math.random() * 50);
      }
    }
  }

  private note(frame: AnyFrame): void {
    if (frame.type === 'message' && typeof frame.seq === 'number' && !frame.deleted) this.seen.add(frame.seq);
  }

  private nextOperation(): Operation {
    this.counter += 1;
    const id = `${this.name}-${this.counter}`;
    const roll = Math.random();
    if (roll < 0.2 && this.own.length > 0) return { type: 'edit', id, target: pick(this.own), text: `edit ${this.counter} by ${this.name}` };
    if (roll < 0.3 && this.own.length > 1) {
      const target = this.own.splice(Math.floor(Math.random() * this.own.length), 1)[0];
      return { type: 'delete', id, target };
    }
    if (roll < 0.55 && this.seen.size > 0) {
      const target = pick([...this.seen].slice(-30));
      const emoji = pick(EMOJI);
      const key = `${target} ${emoji}`;
      const add = !this.reacted.has(key);
      if (add) this.reacted.add(key);
      else this.reacted.delete(key);
      return { type: 'react', id, target, emoji, add };
    }
    return { type: 'say', id, text: `message ${this.counter} from ${this.name}` };
  }

  /** Sends changes one at a time until `running()` says stop, and then until nothing is left unanswered. */
  async run(running: () => boolean, deadline: number): Promise<void> {
    while (running() || this.pending) {
      const client = this.connection && !this.connection.closed ? this.connection : await this.connect(deadline);
      this.pending ??= this.nextOperation();
      const operation = this.pending;
      let answer: AnyFrame;
      try {
        answer = await client.request({ ...operation, room: ROOM }, 3000);
      } catch {
        // No answer (the server died): the same change goes again, with the same id, on the next connection.
        client.close();
        this.reconnects += 1;
        if (Date.now() > deadline) throw new Error(`${this.name}: could not get ${operation.id} answered in time`);
        continue;
      }
      for (const frame of client.frames.splice(0)) this.note(frame);
      this.pending = undefined;
      if (answer.type === 'ack') {
        this.acked.push({ name: this.name, operation, seq: answer.seq as number | undefined });
        if (operation.type === 'say' && typeof answer.seq === 'number') {
          this.own.push(answer.seq);
          this.seen.add(answer.seq);
        }
      } else {
        this.refused.push({ operation, code: answer.code as string });
      }
    }
  }
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

interface MessageState {
  author: string;
  text: string;
  deleted: boolean;
  reactions: Map<string, Set<string>>;
}

/** The state the acknowledged changes make, applied in seq order by the protocol's rules. */
function expectedState(outcomes: Outcome[]): Map<number, MessageState> {
  const state = new Map<number, MessageState>();
  const stored = outcomes.filter((outcome) => outcome.seq !== undefined).sort((a, b) => (a.seq as number) - (b.seq as number));
  for (const { name, operation, seq } of stored) {
    if (operation.type === 'say') {
      state.set(seq as number, { author: name, text: operation.text, deleted: false, reactions: new Map() });
      continue;
    }
    const message = state.get(operation.target);
    if (!message || message.deleted) continue;
    if (operation.type === 'edit') message.text = operation.text;
    else if (operation.type === 'delete') {
      message.deleted = true;
      message.text = '';
      message.reactions.clear();
    } else {
      const people = message.reactions.get(operation.emoji) ?? new Set<string>();
      if (operation.add) people.add(name);
      else people.delete(name);
      if (people.size > 0) message.reactions.set(operation.emoji, people);
      else message.reactions.delete(operation.emoji);
    }
  }
  return state;
}

describe('faults: kill -9 while v2 clients say, edit, delete and react', function () {
  this.timeout(120_000 + CRASHES * 5_000);
  let dataDir: string;
  let server: ServerProcess | undefined;
  const people: Person[] = [];

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-room-v2-crash-'));
  });
  after(async () => {
    for (const person of people) person.connection?.close();
    await server?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`replays exactly the acknowledged state across ${CRASHES} crashes, nothing lost or doubled`, async () => {
    const port = await freeLoopbackPort();
    server = await startServerOnPort(port, { dataDir, args: SERVER_ARGS });
    for (let index = 0; index < CLIENTS; index++) people.push(new Person(`person${index}`, port));
    let running = true;
    const deadline = Date.now() + 60_000 + CRASHES * 4_000;
    const runs = people.map((person) => person.run(() => running, deadline));

    for (let crash = 0; crash < CRASHES; crash++) {
      await sleep(300 + Math.random() * 700);
      assert.equal(await server.stop('SIGKILL'), null, 'killed by the signal');
      await sleep(Math.random() * 150);
      server = await startServerOnPort(port, { dataDir, args: SERVER_ARGS });
    }
    await sleep(500);
    running = false;
    await Promise.all(runs);
    for (const person of people) person.connection?.close();
    // One more restart: the state checked is the one read back from the disk.
    await server.stop('SIGKILL');
    server = await startServerOnPort(port, { dataDir, args: SERVER_ARGS });

    const outcomes = people.flatMap((person) => person.acked);
    const refused = people.flatMap((person) => person.refused);
    const kinds = (type: Operation['type']) => outcomes.filter((outcome) => outcome.operation.type === type && outcome.seq !== undefined).length;
    console.log(
      `      ${CRASHES} crashes, ${people.reduce((sum, person) => sum + person.reconnects, 0)} reconnects; acked ${kinds('say')} says, ${kinds('edit')} edits, ` +
        `${kinds('delete')} deletes, ${kinds('react')} reactions; ${refused.length} refused (${[...new Set(refused.map((entry) => entry.code))].join(', ') || 'none'})`,
    );
    assert.ok(kinds('edit') > 0 && kinds('delete') > 0 && kinds('react') > 0, 'every kind of change was made');
    // Only races with another person's deletion may refuse a change.
    assert.ok(
      refused.every((entry) => entry.code === 'not_found' && entry.operation.type === 'react'),
      JSON.stringify(refused.filter((entry) => !(entry.code === 'not_found' && entry.operation.type === 'react')).slice(0, 5)),
    );

    // Nothing acknowledged is lost, nothing is stored twice: straight from the log.
    const records = readFileSync(join(dataDir, roomLogFileName(ROOM)), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => !('chatRoomLog' in record));
    const byKey = new Map<string, Record<string, unknown>[]>();
    for (const record of records) {
      if (typeof record.clientId !== 'string' || typeof record.id !== 'string') continue;
      const key = `${record.clientId} ${record.id}`;
      byKey.set(key, [...(byKey.get(key) ?? []), record]);
    }
    const doubled = [...byKey].filter(([, list]) => list.length > 1).map(([key]) => key);
    assert.deepEqual(doubled, [], 'no change is stored twice');
    const storedType: Record<Operation['type'], string> = { say: 'message', edit: 'edited', delete: 'deleted', react: 'react' };
    for (const outcome of outcomes) {
      if (outcome.seq === undefined) continue;
      const stored = byKey.get(`crash-${outcome.name} ${outcome.operation.id}`)?.[0];
      assert.ok(stored, `${outcome.operation.id} was acked with seq ${outcome.seq} but is not stored`);
      assert.deepEqual([stored.seq, stored.type], [outcome.seq, storedType[outcome.operation.type]], outcome.operation.id);
    }

    // The state the server replays is the state the acknowledged changes make.
    const reader = await V2Client.hello(port, 'reader', { clientId: 'crash-reader' });
    await reader.join(ROOM, 0);
    const replayed = new Map<number, AnyFrame>();
    for (const frame of reader.frames) if (frame.type === 'message') replayed.set(frame.seq as number, frame);
    reader.close();
    const expected = expectedState(outcomes);
    assert.equal(replayed.size, expected.size, 'every acked message is replayed, and no other');
    let deletedCount = 0;
    let reactedCount = 0;
    for (const [seq, want] of expected) {
      const got = replayed.get(seq);
      assert.ok(got, `message ${seq} is missing from the replay`);
      assert.equal(got.from, want.author, `author of ${seq}`);
      assert.equal(got.text, want.text, `text of ${seq}`);
      assert.equal(got.deleted === true, want.deleted, `deletion of ${seq}`);
      if (want.deleted) deletedCount += 1;
      const reactions = Object.fromEntries(((got.reactions as { emoji: string; names: string[] }[] | undefined) ?? []).map((reaction) => [reaction.emoji, [...reaction.names].sort()]));
      const wanted = Object.fromEntries([...want.reactions].map(([emoji, names]) => [emoji, [...names].sort()]));
      assert.deepEqual(reactions, wanted, `reactions of ${seq}`);
      if (want.reactions.size > 0) reactedCount += 1;
    }
    console.log(`      replayed ${replayed.size} messages (${deletedCount} deleted, ${reactedCount} with reactions), each as the acknowledged changes left it`);
  });
});
