/**
 * The part of the panel's state that protocol 2 brings: the conversations
 * (rooms and DMs) with their counts, who is typing, the message being
 * answered or edited, search results, and whether older history can be
 * paged in. It lives in the store's one state object (store.ts, `v2`), and
 * changes only through {@link reduceV2}.
 */
import type { ChatEntry, ConversationView, Features, MessageEntry, SnapshotMessage } from '../../shared/webviewMessages';
import { type PanelState, presenceText, type TimelineItem } from './store';

export interface V2State {
  conversations: ConversationView[];
  activeKey: string;
  features: Features;
  typing: string[];
  hasOlder: boolean;
  /** Asked the host for an older page and not answered yet. */
  loadingOlder: boolean;
  roomNames: string[];
  /** The message the next send answers. */
  replyTo: { seq: number; from: string; text: string } | undefined;
  /** Our message the next send replaces. */
  editing: { seq: number } | undefined;
  search: { query: string; hits: MessageEntry[]; error?: string } | undefined;
}

export type V2Event =
  | { type: 'snapshot'; snapshot: SnapshotMessage }
  | { type: 'conversations'; conversations: ConversationView[]; activeKey: string; roomNames: string[] }
  | { type: 'typing'; names: string[] }
  | { type: 'update'; entries: MessageEntry[] }
  | { type: 'prepend'; entries: ChatEntry[]; more: boolean }
  | { type: 'loadingOlder' }
  | { type: 'searchResults'; query: string; hits: MessageEntry[]; error?: string }
  | { type: 'closeSearch' }
  | { type: 'reply'; seq: number; from: string; text: string }
  | { type: 'edit'; seq: number }
  | { type: 'cancelCompose' };

export function initialV2State(): V2State {
  return {
    conversations: [],
    activeKey: '',
    features: { v2: false, owner: false },
    typing: [],
    hasOlder: false,
    loadingOlder: false,
    roomNames: [],
    replyTo: undefined,
    editing: undefined,
    search: undefined,
  };
}

export function reduceV2(state: PanelState, event: V2Event): PanelState {
  const v2 = state.v2;
  switch (event.type) {
    case 'snapshot': {
      const { snapshot } = event;
      const sameConversation = snapshot.activeKey === v2.activeKey;
      return {
        ...state,
        v2: {
          ...v2,
          conversations: snapshot.conversations,
          activeKey: snapshot.activeKey,
          features: snapshot.features,
          typing: snapshot.typing,
          hasOlder: snapshot.hasOlder,
          loadingOlder: false,
          roomNames: snapshot.roomNames,
          // What was being answered or edited belongs to the conversation it was in.
          replyTo: sameConversation ? v2.replyTo : undefined,
          editing: sameConversation ? v2.editing : undefined,
          search: sameConversation ? v2.search : undefined,
        },
      };
    }
    case 'conversations':
      return { ...state, v2: { ...v2, conversations: event.conversations, activeKey: event.activeKey, roomNames: event.roomNames } };
    case 'typing':
      return { ...state, v2: { ...v2, typing: event.names } };
    case 'update':
      return withItems(state, (items) => applyUpdates(items, event.entries));
    case 'prepend': {
      const next = withItems(state, (items) => [...event.entries.flatMap(itemOf), ...items]);
      return { ...next, v2: { ...next.v2, hasOlder: event.more, loadingOlder: false } };
    }
    case 'loadingOlder':
      return { ...state, v2: { ...v2, loadingOlder: true } };
    case 'searchResults':
      return { ...state, v2: { ...v2, search: { query: event.query, hits: event.hits, ...(event.error !== undefined ? { error: event.error } : {}) } } };
    case 'closeSearch':
      return { ...state, v2: { ...v2, search: undefined } };
    case 'reply':
      return { ...state, v2: { ...v2, replyTo: { seq: event.seq, from: event.from, text: event.text }, editing: undefined }, composer: { ...state.composer, focusRequest: state.composer.focusRequest + 1 } };
    case 'edit': {
      const original = findMessage(state, event.seq);
      if (!original) return state;
      return {
        ...state,
        v2: { ...v2, editing: { seq: event.seq }, replyTo: undefined },
        composer: { ...state.composer, draft: original.text, focusRequest: state.composer.focusRequest + 1 },
      };
    }
    case 'cancelCompose':
      return { ...state, v2: { ...v2, replyTo: undefined, editing: undefined } };
  }
}

/** The newest message of our own that can still be edited (Up-arrow in an empty box). */
export function lastOwnMessage(state: PanelState): MessageEntry | undefined {
  const items = state.conversations[state.active]?.items ?? [];
  for (let index = items.length - 1; index >= 0; index--) {
    const item = items[index];
    if (item.kind === 'message' && item.entry.mine && !item.entry.deleted) return item.entry;
  }
  return undefined;
}

function findMessage(state: PanelState, seq: number): MessageEntry | undefined {
  const item = state.conversations[state.active]?.items.find((candidate) => candidate.kind === 'message' && candidate.entry.seq === seq);
  return item?.kind === 'message' ? item.entry : undefined;
}

function withItems(state: PanelState, change: (items: TimelineItem[]) => TimelineItem[]): PanelState {
  const conversation = state.conversations[state.active];
  if (!conversation) return state;
  return { ...state, conversations: { ...state.conversations, [state.active]: { ...conversation, items: change(conversation.items) } } };
}

/** Edited messages take their new state; deleted ones are removed. */
function applyUpdates(items: TimelineItem[], entries: MessageEntry[]): TimelineItem[] {
  const bySeq = new Map(entries.map((entry) => [entry.seq, entry]));
  return items.flatMap((item): TimelineItem[] => {
    if (item.kind !== 'message') return [item];
    const changed = bySeq.get(item.entry.seq);
    if (!changed) return [item];
    return changed.deleted ? [] : [{ ...item, entry: changed }];
  });
}

/** Older history as list items: messages, and quiet lines for the rest (presence runs are not folded across a page). */
function itemOf(entry: ChatEntry): TimelineItem[] {
  if (entry.kind === 'message') return entry.deleted ? [] : [{ kind: 'message', key: `m${entry.seq}`, entry }];
  if (entry.kind === 'topic') return [{ kind: 'topic', key: `t${entry.seq}`, text: entry.topic ? `${entry.by} set the topic: ${entry.topic}` : `${entry.by} cleared the topic`, ts: entry.ts }];
  return [{ kind: 'presence', key: `p${entry.seq}`, lines: [{ text: presenceText(entry), ts: entry.ts }], count: 1 }];
}
