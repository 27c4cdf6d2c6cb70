/** The chat client's parts that need no socket: the reconnect schedule, the outbox as it is kept, and a cluster's addresses. */
import assert from 'node:assert/strict';
import { formatAddressList, MAX_ADDRESSES, parseAddressList } from '../../extension/address';
import { inviteFromText, inviteLink } from '../../extension/inviteLinks';
import { Outbox, outboxKey } from '../../extension/client/outbox';
import { DEFAULT_BACKOFF, looksLikeRestart, MAX_BACKOFF_MS, MAX_LOOPBACK_BACKOFF_MS, reconnectDelay, ServerRotation } from '../../extension/client/reconnectPolicy';
import { StoredState, storedOutboxes } from '../../extension/storedState';
import { memoryStore } from '../support/memoryStore';

describe('reconnect schedule', () => {
  it('doubles from the first delay, within ±20 % jitter', () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const base = DEFAULT_BACKOFF.initialMs * 2 ** attempt;
      assert.equal(reconnectDelay(DEFAULT_BACKOFF, attempt, false, 0), Math.round(base * 0.8));
      assert.equal(reconnectDelay(DEFAULT_BACKOFF, attempt, false, 0.5), base);
      assert.ok(reconnectDelay(DEFAULT_BACKOFF, attempt, false, 0.999) <= Math.round(base * 1.2));
    }
  });

  it('never waits longer than the cap, even with jitter', () => {
    for (const random of [0, 0.5, 0.999]) {
      assert.ok(reconnectDelay(DEFAULT_BACKOFF, 30, false, random) <= MAX_BACKOFF_MS);
      assert.ok(reconnectDelay(DEFAULT_BACKOFF, 30, true, random) <= MAX_LOOPBACK_BACKOFF_MS);
    }
    assert.equal(reconnectDelay(DEFAULT_BACKOFF, 30, false, 0.999), MAX_BACKOFF_MS);
  });

  it('takes a refused loopback connection for a restart, and nothing else', () => {
    assert.equal(looksLikeRestart('127.0.0.1', 'ECONNREFUSED'), true);
    assert.equal(looksLikeRestart('localhost', 'ECONNREFUSED'), true);
    assert.equal(looksLikeRestart('192.168.1.20', 'ECONNREFUSED'), false);
    assert.equal(looksLikeRestart('127.0.0.1', 'ECONNRESET'), false);
    assert.equal(looksLikeRestart('127.0.0.1', undefined), false);
  });
});

describe('outbox', () => {
  const seat = { host: '127.0.0.1', port: 33000, room: 'lobby', name: 'Alice' };

  it('keeps its entries across a new client (a window reload), until they are taken out', () => {
    const store = memoryStore();
    const first = new Outbox(storedOutboxes(store), outboxKey(seat));
    first.add({ id: 'a', text: 'one', createdAt: 1 });
    first.add({ id: 'b', text: 'two', createdAt: 2 });
    assert.equal(first.remove('a'), true);
    assert.equal(first.remove('a'), false, 'taken out once');
    const reloaded = new Outbox(storedOutboxes(store), outboxKey(seat));
    assert.deepEqual(reloaded.entries, [{ id: 'b', text: 'two', createdAt: 2 }]);
  });

  it('keeps each seat its own: another name in the same room never sends these words', () => {
    const store = memoryStore();
    new Outbox(storedOutboxes(store), outboxKey(seat)).add({ id: 'a', text: 'mine', createdAt: 1 });
    assert.deepEqual(new Outbox(storedOutboxes(store), outboxKey({ ...seat, name: 'bob' })).entries, []);
    assert.equal(new Outbox(storedOutboxes(store), outboxKey({ ...seat, name: 'alice' })).entries.length, 1, 'names compare as the server compares them');
  });

  it('tells its listeners of every change, with the whole box', () => {
    const outbox = new Outbox(storedOutboxes(memoryStore()), outboxKey(seat));
    const seen: number[] = [];
    outbox.onChange((entries) => seen.push(entries.length));
    outbox.add({ id: 'a', text: 'x', createdAt: 1 });
    outbox.add({ id: 'b', text: 'y', createdAt: 2 });
    outbox.remove('a');
    assert.deepEqual(seen, [1, 2, 1]);
  });
});

describe("a cluster's addresses", () => {
  it('reads one address or several separated by commas, in order, each once', () => {
    assert.deepEqual(parseAddressList('localhost:33000'), [{ host: 'localhost', port: 33000 }]);
    assert.deepEqual(parseAddressList(' a.example:1, b.example ,[::1]:3,a.example:1'), [
      { host: 'a.example', port: 1 },
      { host: 'b.example', port: 33000 },
      { host: '::1', port: 3 },
    ]);
    assert.equal(formatAddressList(parseAddressList('a:1,[::1]:3') ?? []), 'a:1, [::1]:3');
  });

  it('refuses a list with anything in it that is not an address, or too many of them', () => {
    for (const text of ['', 'a:1,', 'a:1,,b:2', 'a:1, b c:2', 'a:99999']) assert.equal(parseAddressList(text), undefined, text);
    const many = Array.from({ length: MAX_ADDRESSES + 1 }, (_, i) => `h${i}:1`).join(',');
    assert.equal(parseAddressList(many), undefined);
  });

  it('carries the other servers in an invite link (also=) and reads them back', () => {
    const link = inviteLink('vscode', 'chat-room.chat-room', 'a.example', 33000, 'lobby', undefined, undefined, [{ host: 'b.example', port: 33001 }, { host: '::1', port: 33002 }]);
    assert.match(link, /also=b\.example%3A33001%2C%5B%3A%3A1%5D%3A33002/);
    assert.deepEqual(inviteFromText(link), { address: 'a.example:33000, b.example:33001, [::1]:33002', room: 'lobby' });
    assert.deepEqual(inviteFromText(inviteLink('vscode', 'chat-room.chat-room', 'a.example', 33000, 'lobby')), { address: 'a.example:33000', room: 'lobby' });
    assert.equal(inviteFromText('vscode://chat-room.chat-room/join?host=a&port=1&also=b%3A1%2Cnot%20an%20address'), undefined);
  });

  it('tries the next server at once when one fails, and backs off only after a whole round without a welcome', () => {
    const rotation = new ServerRotation({ host: 'a', port: 1 }, [{ host: 'b', port: 2 }, { host: 'c', port: 3 }]);
    const steps: string[] = [];
    const fail = () => steps.push(`${rotation.failed() ? 'at once' : 'back off'} → ${rotation.current.host}`);
    assert.equal(rotation.current.host, 'a');
    fail();
    fail();
    fail();
    fail();
    rotation.welcomed();
    fail();
    assert.deepEqual(steps, ['at once → b', 'at once → c', 'back off → a', 'at once → b', 'at once → c']);
    const alone = new ServerRotation({ host: 'a', port: 1 });
    assert.equal(alone.failed(), false, 'one server: always back off');
    assert.equal(alone.current.host, 'a');
  });

  it("is remembered whole for Join Room's next default and a window's rejoin, and odd stored values are dropped", async () => {
    const global = memoryStore();
    const workspace = memoryStore();
    const stored = new StoredState(global as never, workspace as never, {} as never);
    const join = { host: 'a.example', port: 33000, name: 'ada', room: 'lobby', alternates: [{ host: 'b.example', port: 33001 }] };
    await stored.rememberLastJoin(join);
    await stored.rememberCurrentRoom(join);
    assert.deepEqual(stored.lastJoin(), join);
    assert.deepEqual(stored.currentRoom(), join);
    await workspace.update('chatRoom.currentRoom', { ...join, alternates: [{ host: 'b.example', port: 33001 }, 'c:1', { host: 7, port: 1 }, null], extra: 'x' });
    assert.deepEqual(stored.currentRoom(), join);
    await stored.rememberLastJoin({ host: 'a.example', port: 33000, name: 'ada', room: 'lobby' });
    assert.deepEqual(stored.lastJoin(), { host: 'a.example', port: 33000, name: 'ada', room: 'lobby' });
  });
});
