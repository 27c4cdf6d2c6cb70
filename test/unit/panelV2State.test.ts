/** What protocol 2 adds to the panel's state (extension/webview/v2State.ts) and the slash commands (slashCommands.ts). */
import assert from 'node:assert/strict';
import type { ChatEntry, MessageEntry, StatusView } from '../../shared/webviewMessages';
import { slashCommand } from '../../extension/webview/slashCommands';
import { activeConversation, type Action, initialState, type PanelState, reduce } from '../../extension/webview/store';
import { lastOwnMessage } from '../../extension/webview/v2State';

const inLobby: StatusView = { connection: { kind: 'connected', address: '127.0.0.1:33000' }, me: 'bob', room: 'lobby', members: ['alice', 'bob'], memberCount: 2, inRoom: true };
const said = (seq: number, from: string, text: string, mine = false): MessageEntry => ({ kind: 'message', seq, from, text, ts: seq, mine, id: `id-${seq}` });
const v2 = { v2: true, owner: false };

function run(state: PanelState, ...actions: Action[]): PanelState {
  return actions.reduce(reduce, state);
}

function snapshot(entries: ChatEntry[]): Action {
  return { type: 'snapshot', status: inLobby, entries, pending: [], historyLimit: 500, maxTextBytes: 4096 };
}

const texts = (state: PanelState) => activeConversation(state).items.flatMap((item) => (item.kind === 'message' ? [item.entry.text] : []));

describe('panel store, protocol 2', () => {
  it('replaces an edited message in place and removes a deleted one', () => {
    const state = run(initialState(''), snapshot([said(1, 'alice', 'one'), said(2, 'bob', 'two', true), said(3, 'alice', 'three')]), {
      type: 'v2',
      event: { type: 'update', entries: [{ ...said(2, 'bob', 'two, better', true), edited: true }, { ...said(3, 'alice', '', false), deleted: true }] },
    });
    assert.deepEqual(texts(state), ['one', 'two, better']);
    const edited = activeConversation(state).items[1];
    assert.ok(edited.kind === 'message' && edited.entry.edited);
  });

  it('puts older history above, oldest first, and leaves out messages deleted since', () => {
    const state = run(initialState(''), snapshot([said(5, 'alice', 'five')]), {
      type: 'v2',
      event: { type: 'prepend', entries: [said(3, 'alice', 'three'), { ...said(4, 'alice', ''), deleted: true }], more: false },
    });
    assert.deepEqual(texts(state), ['three', 'five']);
    assert.equal(state.v2.hasOlder, false);
  });

  it('Up-arrow edits our newest message: the box takes its text; a reply and an edit exclude each other', () => {
    let state = run(initialState(''), snapshot([said(1, 'bob', 'mine, older', true), said(2, 'alice', 'theirs'), said(3, 'bob', 'mine, newest', true)]));
    const last = lastOwnMessage(state);
    assert.equal(last?.seq, 3);
    state = run(state, { type: 'v2', event: { type: 'edit', seq: 3 } });
    assert.equal(state.composer.draft, 'mine, newest');
    assert.deepEqual(state.v2.editing, { seq: 3 });
    state = run(state, { type: 'v2', event: { type: 'reply', seq: 2, from: 'alice', text: 'theirs' } });
    assert.equal(state.v2.editing, undefined);
    assert.equal(state.v2.replyTo?.seq, 2);
    state = run(state, { type: 'v2', event: { type: 'cancelCompose' } });
    assert.equal(state.v2.replyTo, undefined);
  });

  it('forgets a reply, an edit and search results when another conversation is shown', () => {
    const base = { type: 'snapshot' as const, status: inLobby, entries: [], pending: [], historyLimit: 500, maxTextBytes: 4096, conversations: [], features: v2, hasOlder: false, lastRead: 0, typing: [], roomNames: [] };
    let state = run(initialState(''), { type: 'v2', event: { type: 'snapshot', snapshot: { ...base, activeKey: 'a' } } }, { type: 'v2', event: { type: 'reply', seq: 1, from: 'x', text: 'y' } });
    state = run(state, { type: 'v2', event: { type: 'searchResults', query: 'q', hits: [] } });
    state = run(state, { type: 'v2', event: { type: 'snapshot', snapshot: { ...base, activeKey: 'a' } } });
    assert.equal(state.v2.replyTo?.seq, 1, 'the same conversation again keeps them');
    state = run(state, { type: 'v2', event: { type: 'snapshot', snapshot: { ...base, activeKey: 'b' } } });
    assert.equal(state.v2.replyTo, undefined);
    assert.equal(state.v2.search, undefined);
  });
});

describe('slash commands', () => {
  it('turns each command into one message to the host', () => {
    assert.deepEqual(slashCommand('/join #dev', v2, 'bob'), { message: { type: 'joinRoom', room: 'dev' } });
    assert.deepEqual(slashCommand('/leave', v2, 'bob'), { message: { type: 'leaveConversation', key: '' } });
    assert.deepEqual(slashCommand('/dm @alice', v2, 'bob'), { message: { type: 'openDm', name: 'alice' } });
    assert.deepEqual(slashCommand('/topic Release on Friday', v2, 'bob'), { message: { type: 'setTopic', text: 'Release on Friday' } });
    assert.deepEqual(slashCommand('/search flaky test', v2, 'bob'), { message: { type: 'search', text: 'flaky test' } });
    assert.deepEqual(slashCommand('/kick mallory', v2, 'bob'), { message: { type: 'kick', name: 'mallory' } });
  });

  it('/me becomes the text to send, in the third person', () => {
    assert.deepEqual(slashCommand('/me waves', v2, 'bob'), { text: '_bob waves_' });
  });

  it('says what is missing, and what needs protocol 2', () => {
    assert.ok('problem' in (slashCommand('/join', v2, 'bob') ?? {}));
    assert.ok('problem' in (slashCommand('/search a', v2, 'bob') ?? {}));
    assert.match((slashCommand('/dm alice', { v2: false, owner: false }, 'bob') as { problem: string }).problem, /protocol 2/);
  });

  it('leaves other text alone, a path starting with a slash included', () => {
    assert.equal(slashCommand('/usr/bin is where it lives', v2, 'bob'), undefined);
    assert.equal(slashCommand('hello /join', v2, 'bob'), undefined);
    assert.equal(slashCommand('/unknown thing', v2, 'bob'), undefined);
  });
});
