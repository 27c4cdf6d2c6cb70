/** How the conversation's items become rows (extension/webview/timeline.ts), and the store's lines for shutdowns and outages. */
import assert from 'node:assert/strict';
import type { ChatEntry, MessageEntry, StatusView } from '../../shared/webviewMessages';
import { activeConversation, type Action, initialState, type PanelState, reduce, type TimelineItem } from '../../extension/webview/store';
import { dayLabel, layoutTimeline, type Row, RUN_GAP_MS } from '../../extension/webview/timeline';

const MINUTE = 60_000;
const NOON = new Date(2026, 10, 26, 12, 0, 0).getTime();

const said = (seq: number, from: string, ts: number, text = `message ${seq}`, mine = false): MessageEntry => ({ kind: 'message', seq, from, text, ts, mine, id: `id-${seq}` });
const asItems = (entries: MessageEntry[]): TimelineItem[] => entries.map((entry) => ({ kind: 'message', key: `m${entry.seq}`, entry }));

function describe_(rows: Row[]): string[] {
  return rows.map((row) => {
    switch (row.kind) {
      case 'date':
        return `date ${row.label}`;
      case 'unreadDivider':
        return 'divider';
      case 'message':
        return `${row.continued ? '  ' : ''}${row.entry.from}: ${row.entry.text}${row.mentionsMe ? ' (mentions me)' : ''}`;
      case 'item':
        return row.item.kind;
    }
  });
}

const layout = (items: TimelineItem[], unreadAfter?: number, me = 'bob') => describe_(layoutTimeline(items, { me, unreadAfter, now: NOON }));

describe('conversation layout', () => {
  it('gives a run from one person within a few minutes one header; a gap, another person or a line between starts a new one', () => {
    const items = asItems([said(1, 'alice', NOON), said(2, 'alice', NOON + MINUTE), said(3, 'alice', NOON + MINUTE + RUN_GAP_MS + 1), said(4, 'carol', NOON + 7 * MINUTE), said(5, 'alice', NOON + 8 * MINUTE)]);
    assert.deepEqual(layout(items), ['date Today', 'alice: message 1', '  alice: message 2', 'alice: message 3', 'carol: message 4', 'alice: message 5']);
    const withNotice: TimelineItem[] = [items[0], { kind: 'notice', key: 'n', text: 'Not sent' }, { kind: 'message', key: 'm9', entry: said(9, 'alice', NOON + MINUTE) }];
    assert.deepEqual(layout(withNotice), ['date Today', 'alice: message 1', 'notice', 'alice: message 9']);
  });

  it('keeps the run across a quiet join, which is not news', () => {
    const items: TimelineItem[] = [...asItems([said(1, 'alice', NOON)]), { kind: 'presence', key: 'p2', lines: [{ text: 'dave joined', ts: NOON + 1 }], count: 1 }, ...asItems([said(3, 'alice', NOON + 2)])];
    assert.deepEqual(layout(items), ['date Today', 'alice: message 1', 'presence', '  alice: message 3']);
  });

  it('puts a date separator before each new day, and starts a new run there', () => {
    const yesterday = NOON - 24 * 60 * MINUTE;
    const items = asItems([said(1, 'alice', yesterday - 10 * 24 * 60 * MINUTE), said(2, 'alice', yesterday), said(3, 'alice', NOON - 12 * 60 * MINUTE + 1), said(4, 'alice', NOON - 12 * 60 * MINUTE + 2)]);
    const rows = layout(items);
    assert.deepEqual(rows.slice(2), ['date Yesterday', 'alice: message 2', 'date Today', 'alice: message 3', '  alice: message 4']);
    assert.match(rows[0], /^date \w+day, November 15$/);
  });

  it('names the year of a day in another year', () => {
    assert.match(dayLabel(new Date(2024, 0, 5, 9).getTime(), NOON), /2024/);
  });

  it('marks where the messages that came while the person was away begin, skipping their own', () => {
    const items = asItems([said(1, 'alice', NOON), said(2, 'bob', NOON + 1, 'mine', true), said(3, 'alice', NOON + 2), said(4, 'alice', NOON + 3)]);
    assert.deepEqual(layout(items, 1), ['date Today', 'alice: message 1', 'bob: mine', 'divider', 'alice: message 3', '  alice: message 4']);
    assert.ok(!layout(items, 4).includes('divider'), 'nothing new, no divider');
    assert.ok(!layout(items, undefined).includes('divider'), 'never here before, no divider');
  });

  it('highlights a mention of me, not of someone else, nor in my own message, nor an e-mail address', () => {
    const items = asItems([said(1, 'alice', NOON, 'hey @bob look'), said(2, 'alice', NOON + 1, 'hey @bobby'), said(3, 'alice', NOON + 2, 'mail x@bob.com'), said(4, 'bob', NOON + 3, 'I am @bob', true)]);
    assert.deepEqual(
      layoutTimeline(items, { me: 'bob', unreadAfter: undefined, now: NOON }).flatMap((row) => (row.kind === 'message' && row.mentionsMe ? [row.entry.seq] : [])),
      [1],
    );
  });
});

describe('panel store: shutdowns and outages are shown, not folded away', () => {
  const inLobby: StatusView = { connection: { kind: 'connected', address: '127.0.0.1:33000' }, me: 'bob', room: 'lobby', members: ['alice', 'bob'], memberCount: 2, inRoom: true };
  const run = (state: PanelState, ...actions: Action[]) => actions.reduce(reduce, state);
  const snapshot = (entries: ChatEntry[]): Action => ({ type: 'snapshot', status: inLobby, entries, pending: [], historyLimit: 500, maxTextBytes: 4096 });

  it('gathers the departures a shutdown caused into one line of its own, apart from the quiet joins', () => {
    const state = run(
      initialState(''),
      snapshot([
        { kind: 'joined', seq: 1, name: 'carol', ts: NOON },
        { kind: 'left', seq: 2, name: 'alice', ts: NOON + 1, reason: 'shutdown' },
        { kind: 'left', seq: 3, name: 'carol', ts: NOON + 1, reason: 'shutdown' },
      ]),
    );
    const items = activeConversation(state).items;
    assert.deepEqual(
      items.map((item) => item.kind),
      ['presence', 'shutdown'],
    );
    assert.deepEqual(items[1].kind === 'shutdown' && items[1].names, ['alice', 'carol']);
  });

  it('writes a lost connection into the conversation, and when it came back', () => {
    const reconnecting: StatusView = { ...inLobby, connection: { kind: 'reconnecting', address: '127.0.0.1:33000', retryAt: NOON, attempt: 1, reason: 'The server shut down' } };
    let state = run(initialState(''), snapshot([]), { type: 'status', status: reconnecting }, { type: 'status', status: { ...reconnecting, connection: { ...reconnecting.connection, attempt: 2 } as StatusView['connection'] } });
    let outages = activeConversation(state).items.filter((item) => item.kind === 'outage');
    assert.equal(outages.length, 1, 'one line per outage, however many attempts');
    assert.ok(outages[0].kind === 'outage' && outages[0].reason === 'The server shut down' && outages[0].endedAt === undefined);
    state = run(state, { type: 'status', status: inLobby });
    outages = activeConversation(state).items.filter((item) => item.kind === 'outage');
    assert.ok(outages[0].kind === 'outage' && outages[0].endedAt !== undefined && outages[0].endedAt >= outages[0].since);
  });

  it('keeps where the person was last here from the snapshot', () => {
    const state = reduce(initialState(''), { ...(snapshot([]) as Extract<Action, { type: 'snapshot' }>), readUpTo: 41 });
    assert.equal(activeConversation(state).unreadAfter, 41);
  });
});
