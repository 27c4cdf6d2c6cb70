/** The panel's one state object: how the host's messages and the person's actions change it (extension/webview/store.ts). */
import assert from 'node:assert/strict';
import type { ChatEntry, StatusView } from '../../shared/webviewMessages';
import { activeConversation, type Action, initialState, type PanelState, PRESENCE_ROWS_KEPT, reduce } from '../../extension/webview/store';

const inLobby: StatusView = { connection: { kind: 'connected', address: '127.0.0.1:33000' }, me: 'bob', room: 'lobby', members: ['alice', 'bob'], memberCount: 2, inRoom: true };

function run(state: PanelState, ...actions: Action[]): PanelState {
  return actions.reduce(reduce, state);
}

function snapshot(entries: ChatEntry[] = [], historyLimit = 500): Action {
  return { type: 'snapshot', status: inLobby, entries, pending: [], historyLimit, maxTextBytes: 4096 };
}

const said = (seq: number, from: string, text: string, mine = false): ChatEntry => ({ kind: 'message', seq, from, text, ts: seq, mine, id: `id-${seq}` });
const joined = (seq: number, name: string): ChatEntry => ({ kind: 'joined', seq, name, ts: seq });

describe('panel store', () => {
  it('folds a run of arrivals and departures into one item, and a message ends the run', () => {
    const state = run(initialState(''), snapshot([joined(1, 'alice'), joined(2, 'carol')]), { type: 'append', entries: [said(3, 'alice', 'hi'), joined(4, 'dave')] });
    const items = activeConversation(state).items;
    assert.deepEqual(
      items.map((item) => (item.kind === 'presence' ? `presence ${item.count}` : item.kind)),
      ['presence 2', 'message', 'presence 1'],
    );
  });

  it('keeps a folded run to its newest rows while still counting them all', () => {
    const arrivals = Array.from({ length: PRESENCE_ROWS_KEPT + 10 }, (_, index) => joined(index + 1, `guest${index}`));
    const [run0] = activeConversation(run(initialState(''), snapshot(arrivals))).items;
    assert.ok(run0.kind === 'presence');
    assert.equal(run0.count, PRESENCE_ROWS_KEPT + 10);
    assert.equal(run0.lines.length, PRESENCE_ROWS_KEPT);
    assert.equal(run0.lines.at(-1)?.text, `guest${PRESENCE_ROWS_KEPT + 9} joined`);
  });

  it('keeps at most historyLimit items, dropping the oldest', () => {
    const state = run(initialState(''), snapshot([said(1, 'a', 'one'), said(2, 'a', 'two')], 3), { type: 'append', entries: [said(3, 'a', 'three'), said(4, 'a', 'four')] });
    assert.deepEqual(
      activeConversation(state).items.map((item) => (item.kind === 'message' ? item.entry.text : '')),
      ['two', 'three', 'four'],
    );
  });

  it('notes who wrote, so the list knows whether to stay put and show the marker', () => {
    let state = run(initialState(''), snapshot());
    assert.equal(activeConversation(state).lastAppend.redraw, true);
    state = run(state, { type: 'append', entries: [said(1, 'alice', 'hi')] });
    assert.deepEqual({ ...activeConversation(state).lastAppend, serial: 0 }, { serial: 0, redraw: false, othersWrote: true, mineWrote: false });
    const before = activeConversation(state).lastAppend.serial;
    state = run(state, { type: 'append', entries: [said(2, 'bob', 'me', true)] });
    assert.equal(activeConversation(state).lastAppend.mineWrote, true);
    assert.ok(activeConversation(state).lastAppend.serial > before);
  });

  it('takes a sent text out of the box, but keeps what was typed after Enter', () => {
    const state = run(initialState(''), snapshot(), { type: 'typed', text: 'hello' }, { type: 'sendStarted' }, { type: 'typed', text: 'hello\nand more' }, { type: 'sendSettled', text: 'hello', accepted: true });
    assert.equal(state.composer.draft, 'and more');
    assert.equal(state.composer.sending, false);
  });

  it('keeps a refused text in the box with the reason, until the text changes', () => {
    let state = run(initialState(''), snapshot(), { type: 'typed', text: 'too long' }, { type: 'sendStarted' }, { type: 'sendSettled', text: 'too long', accepted: false, reason: 'too long, sorry' });
    assert.equal(state.composer.draft, 'too long');
    assert.deepEqual([state.composer.notice, state.composer.problem], ['too long, sorry', true]);
    state = run(state, { type: 'typed', text: 'too lon' });
    assert.deepEqual([state.composer.notice, state.composer.problem], ['', false]);
  });

  it("restores the host's draft only when the person has not typed since the page loaded", () => {
    assert.equal(run(initialState('old'), { type: 'restoreDraft', text: 'newer' }).composer.draft, 'newer');
    assert.equal(run(initialState('old'), { type: 'typed', text: 'typing' }, { type: 'restoreDraft', text: 'newer' }).composer.draft, 'typing');
  });

  it('gives a message the server refused for good back to an empty box, with a notice in the list', () => {
    const failed: Action = { type: 'sendFailed', id: 'x', text: 'my words', reason: 'too_long' };
    const empty = run(initialState(''), snapshot(), { type: 'outbox', pending: [{ id: 'x', text: 'my words', createdAt: 1 }] }, failed);
    assert.equal(empty.composer.draft, 'my words');
    assert.deepEqual(activeConversation(empty).pending, []);
    assert.deepEqual(
      activeConversation(empty).items.map((item) => item.kind),
      ['notice'],
    );
    const busy = run(initialState(''), snapshot(), { type: 'typed', text: 'something else' }, failed);
    assert.equal(busy.composer.draft, 'something else');
  });

  it('drops what it said about a send once out of the room', () => {
    const state = run(initialState(''), snapshot(), { type: 'notice', text: 'nope', problem: true }, { type: 'status', status: { ...inLobby, inRoom: false, connection: { kind: 'disconnected', reason: 'You left lobby.' } } });
    assert.equal(state.composer.notice, '');
  });
});
