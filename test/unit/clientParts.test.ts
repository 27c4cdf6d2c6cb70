/** The chat client's parts that need no socket: the reconnect schedule and the outbox as it is kept. */
import assert from 'node:assert/strict';
import { Outbox, outboxKey } from '../../extension/client/outbox';
import { DEFAULT_BACKOFF, looksLikeRestart, MAX_BACKOFF_MS, MAX_LOOPBACK_BACKOFF_MS, reconnectDelay } from '../../extension/client/reconnectPolicy';
import { storedOutboxes } from '../../extension/storedState';
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
