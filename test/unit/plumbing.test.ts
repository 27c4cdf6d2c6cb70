/** Small shared pieces: the request/reply tracker, the holder of "the current one", and the server's IPC messages. */
import assert from 'node:assert/strict';
import { MutableDisposable, toDisposable } from '../../shared/disposable';
import { RequestTracker } from '../../shared/requestReply';
import { asServerMessage, ServerExit } from '../../shared/serverIpc';

describe('request/reply tracker', () => {
  it('hands each reply to the request it names, whatever the order', async () => {
    const tracker = new RequestTracker<{ inReplyTo: number; answer: string }>();
    const sent: number[] = [];
    const first = tracker.request((id) => sent.push(id), 1_000);
    const second = tracker.request((id) => sent.push(id), 1_000);
    assert.notEqual(sent[0], sent[1]);
    assert.equal(tracker.settle({ inReplyTo: sent[1], answer: 'two' }), true);
    assert.equal(tracker.settle({ inReplyTo: sent[0], answer: 'one' }), true);
    assert.deepEqual([(await first)?.answer, (await second)?.answer], ['one', 'two']);
    assert.equal(tracker.busy, false);
  });

  it('gives up after the time allowed, and ignores a reply that comes later or was never asked for', async () => {
    const tracker = new RequestTracker<{ inReplyTo: number }>();
    let id = 0;
    const late = tracker.request((requestId) => (id = requestId), 20);
    assert.equal(await late, undefined);
    assert.equal(tracker.settle({ inReplyTo: id }), false);
    assert.equal(tracker.settle({ inReplyTo: 999 }), false);
  });

  it('gives up on everything at once when its owner goes', async () => {
    const tracker = new RequestTracker<{ inReplyTo: number }>();
    const waiting = tracker.request(() => undefined, 60_000);
    tracker.cancelAll();
    assert.equal(await waiting, undefined);
    assert.equal(tracker.busy, false);
  });
});

describe('MutableDisposable', () => {
  it('disposes the value it replaces, and its value when it is disposed', () => {
    const disposed: string[] = [];
    const holder = new MutableDisposable();
    holder.value = toDisposable(() => disposed.push('a'));
    holder.value = toDisposable(() => disposed.push('b'));
    assert.deepEqual(disposed, ['a']);
    holder.dispose();
    assert.deepEqual(disposed, ['a', 'b']);
    holder.value = toDisposable(() => disposed.push('c'));
    assert.deepEqual(disposed, ['a', 'b', 'c'], 'a value given after disposal is disposed at once');
  });

  it('hands its value over without disposing it', () => {
    const disposed: string[] = [];
    const holder = new MutableDisposable();
    const value = toDisposable(() => disposed.push('kept'));
    holder.value = value;
    assert.equal(holder.clearAndLeak(), value);
    holder.dispose();
    assert.deepEqual(disposed, []);
  });
});

describe('server IPC messages', () => {
  it('reads what the server sends and nothing else', () => {
    assert.deepEqual(asServerMessage({ type: 'listening', host: '127.0.0.1', port: 33000, classicPort: 33001, fingerprint: 'AB' }), { type: 'listening', host: '127.0.0.1', port: 33000, classicPort: 33001, fingerprint: 'AB' });
    assert.deepEqual(asServerMessage({ type: 'startFailed', exitCode: ServerExit.portBusy, reason: 'taken' }), { type: 'startFailed', exitCode: 3, reason: 'taken' });
    assert.equal(asServerMessage({ type: 'listening', host: '127.0.0.1', port: '33000' }), undefined);
    assert.equal(asServerMessage({ type: 'startFailed', exitCode: 42, reason: 'x' }), undefined);
    assert.equal(asServerMessage('listening on 127.0.0.1:33000'), undefined);
    assert.equal(asServerMessage(null), undefined);
  });
});
