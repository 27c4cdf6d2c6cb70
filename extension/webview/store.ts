/**
 * The panel's one state object and the only way it changes: a reducer over
 * actions, most of them the host's messages as they arrive. Components read
 * the state and dispatch; nothing else holds what the panel shows.
 *
 * Conversations are kept by key, so the panel can hold several (rooms and
 * direct messages) once the protocol brings them; today the key is the room.
 */
import type { ChatEntry, MessageEntry, PendingView, PresenceEntry, StatusView } from '../../shared/webviewMessages';
import { initialV2State, reduceV2, type V2Event, type V2State } from './v2State';

/** One line of a folded run of arrivals and departures. */
export interface PresenceLine {
  text: string;
  ts: number;
}

/** What the conversation's list shows, in order (the outbox is drawn after it). */
export type TimelineItem =
  | { kind: 'message'; key: string; entry: MessageEntry }
  /** A run of arrivals and departures folded into one line; `count` counts them all, `lines` keeps the newest. */
  | { kind: 'presence'; key: string; lines: PresenceLine[]; count: number }
  /** A quiet line of our own, such as a message that was not sent. */
  | { kind: 'notice'; key: string; text: string }
  /** The server shut down: never folded into the quiet arrivals and departures. `names` are those it took out of the room. */
  | { kind: 'shutdown'; key: string; ts: number; names: string[] }
  /** This panel lost its connection at `since`, for `reason`; `endedAt` once it was back. */
  | { kind: 'outage'; key: string; since: number; reason: string; endedAt?: number }
  /** A change of the room's topic. */
  | { kind: 'topic'; key: string; text: string; ts: number };

/** What the list should do about scrolling after the latest change to its entries. */
export interface AppendNote {
  /** Grows with every change, so the list can tell a new one from a repeat. */
  serial: number;
  /** A fresh snapshot: go to the bottom whatever the position. */
  redraw: boolean;
  othersWrote: boolean;
  mineWrote: boolean;
}

export interface Conversation {
  items: TimelineItem[];
  /** Written here, not yet acknowledged by the server. */
  pending: PendingView[];
  lastAppend: AppendNote;
  /** Messages after this sequence number came while the person was away; the list marks where they begin. */
  unreadAfter?: number;
}

export interface ComposerState {
  draft: string;
  /** The line beside the box: a refusal, or nothing. */
  notice: string;
  /** Whether the notice is a problem (shown as an error, cleared once the text changes). */
  problem: boolean;
  /** A send is waiting for the host's answer. */
  sending: boolean;
  /** The person has typed since the page loaded: the host's kept draft is older then. */
  typedSinceLoad: boolean;
  /** Grows with every request to put the focus in the box. */
  focusRequest: number;
}

export interface PanelState {
  status: StatusView;
  conversations: Record<string, Conversation>;
  /** The key of the conversation on screen. */
  active: string;
  /** How many items a conversation keeps; older ones are dropped from the top. */
  historyLimit: number;
  /** The longest message text in UTF-8 bytes. */
  maxTextBytes: number;
  composer: ComposerState;
  /** Others wrote below what is on screen. */
  newMessagesMarker: boolean;
  /** What protocol 2 brings: conversations, replies, edits, typing, search (v2State.ts). */
  v2: V2State;
}

export type Action =
  /** `readUpTo`: the last message the person saw in this room, as far as the panel knows. */
  | { type: 'snapshot'; status: StatusView; entries: ChatEntry[]; pending: PendingView[]; historyLimit: number; maxTextBytes: number; readUpTo?: number }
  | { type: 'append'; entries: ChatEntry[] }
  | { type: 'status'; status: StatusView }
  | { type: 'outbox'; pending: PendingView[] }
  | { type: 'sendFailed'; id: string; text: string; reason: string }
  | { type: 'restoreDraft'; text: string }
  | { type: 'typed'; text: string }
  | { type: 'sendStarted' }
  /** The host answered a send (or did not, in time): a taken text leaves the box, a refused one stays with the reason. */
  | { type: 'sendSettled'; text: string; accepted: boolean; reason?: string }
  | { type: 'notice'; text: string; problem: boolean }
  | { type: 'focusInput' }
  /** Send Selection's snippet: it joins what is in the box, with the focus, for the person to comment on. */
  | { type: 'addToDraft'; text: string }
  | { type: 'newMessagesMarker'; visible: boolean }
  | { type: 'v2'; event: V2Event };

/** Rows kept in a folded run of arrivals and departures; the summary still counts them all. */
export const PRESENCE_ROWS_KEPT = 50;

const NO_ROOM = '';

export function initialState(draft: string): PanelState {
  return {
    status: { connection: { kind: 'idle' }, members: [], memberCount: 0, inRoom: false },
    conversations: { [NO_ROOM]: emptyConversation(0) },
    active: NO_ROOM,
    historyLimit: 500,
    maxTextBytes: 4096,
    composer: { draft, notice: '', problem: false, sending: false, typedSinceLoad: false, focusRequest: 0 },
    newMessagesMarker: false,
    v2: initialV2State(),
  };
}

export function activeConversation(state: PanelState): Conversation {
  return state.conversations[state.active] ?? emptyConversation(0);
}

export function reduce(state: PanelState, action: Action): PanelState {
  switch (action.type) {
    case 'snapshot': {
      const key = action.status.room ?? NO_ROOM;
      const previous = state.conversations[state.active]?.lastAppend.serial ?? 0;
      let conversation: Conversation = { ...emptyConversation(previous), pending: action.pending };
      conversation = appendEntries(conversation, action.entries, action.historyLimit, true);
      if (action.readUpTo !== undefined) conversation.unreadAfter = action.readUpTo;
      return {
        ...withStatus(state, action.status),
        conversations: { [key]: conversation },
        active: key,
        historyLimit: action.historyLimit,
        maxTextBytes: action.maxTextBytes,
        newMessagesMarker: false,
      };
    }
    case 'append':
      return updateActive(state, (conversation) => appendEntries(conversation, action.entries, state.historyLimit, false));
    case 'status':
      return withStatus(noteOutage(state, action.status), action.status);
    case 'outbox':
      return updateActive(state, (conversation) => ({ ...conversation, pending: action.pending }));
    case 'sendFailed': {
      const next = updateActive(state, (conversation) => {
        const notice: TimelineItem = { kind: 'notice', key: `failed-${action.id}`, text: `Not sent (${action.reason}): ${action.text.slice(0, 200)}` };
        return { ...conversation, pending: conversation.pending.filter((entry) => entry.id !== action.id), items: trim([...conversation.items, notice], state.historyLimit) };
      });
      // The words come back to the box, unless the person is writing something else.
      return state.composer.draft ? next : { ...next, composer: { ...next.composer, draft: action.text } };
    }
    case 'restoreDraft':
      // The host's copy is the newest unless the person has typed since this page loaded.
      if (state.composer.typedSinceLoad || state.composer.draft === action.text) return state;
      return { ...state, composer: { ...state.composer, draft: action.text } };
    case 'typed': {
      // A refusal was about the text as it was; once changed, the reason no longer holds.
      const clearProblem = state.composer.problem;
      return { ...state, composer: { ...state.composer, draft: action.text, typedSinceLoad: true, ...(clearProblem ? { notice: '', problem: false } : {}) } };
    }
    case 'sendStarted':
      return { ...state, composer: { ...state.composer, sending: true } };
    case 'sendSettled': {
      const composer = { ...state.composer, sending: false };
      if (!action.accepted) return { ...state, composer: { ...composer, notice: action.reason ?? 'The message was not sent.', problem: true } };
      // Whatever was typed after Enter (while the host answered) stays.
      const draft = composer.draft.startsWith(action.text) ? composer.draft.slice(action.text.length).replace(/^\n/, '') : composer.draft;
      return { ...state, composer: { ...composer, draft, notice: '', problem: false } };
    }
    case 'notice':
      return { ...state, composer: { ...state.composer, notice: action.text, problem: action.problem && action.text !== '' } };
    case 'addToDraft': {
      const before = state.composer.draft;
      const separator = before === '' ? '' : before.endsWith('\n') ? '\n' : '\n\n';
      const draft = `${before}${separator}${action.text}\n`;
      return { ...state, composer: { ...state.composer, draft, typedSinceLoad: true, focusRequest: state.composer.focusRequest + 1 } };
    }
    case 'focusInput':
      return { ...state, composer: { ...state.composer, focusRequest: state.composer.focusRequest + 1 } };
    case 'newMessagesMarker':
      return state.newMessagesMarker === action.visible ? state : { ...state, newMessagesMarker: action.visible };
    case 'v2':
      return reduceV2(state, action.event);
  }
}

function emptyConversation(serial: number): Conversation {
  return { items: [], pending: [], lastAppend: { serial, redraw: true, othersWrote: false, mineWrote: false } };
}

/** Out of a room the message box takes no input, and what it said about a send no longer applies. */
function withStatus(state: PanelState, status: StatusView): PanelState {
  const composer = status.inRoom ? state.composer : { ...state.composer, notice: '', problem: false };
  return { ...state, status, composer };
}

function updateActive(state: PanelState, change: (conversation: Conversation) => Conversation): PanelState {
  return { ...state, conversations: { ...state.conversations, [state.active]: change(activeConversation(state)) } };
}

function appendEntries(conversation: Conversation, entries: ChatEntry[], historyLimit: number, redraw: boolean): Conversation {
  const items = [...conversation.items];
  let othersWrote = false;
  let mineWrote = false;
  for (const entry of entries) {
    if (entry.kind === 'message') {
      items.push({ kind: 'message', key: `m${entry.seq}`, entry });
      if (entry.mine) mineWrote = true;
      else othersWrote = true;
    } else if (entry.kind === 'topic') {
      items.push({ kind: 'topic', key: `t${entry.seq}`, text: entry.topic ? `${entry.by} set the topic: ${entry.topic}` : `${entry.by} cleared the topic`, ts: entry.ts });
    } else {
      addPresence(items, entry);
    }
  }
  return { ...conversation, items: trim(items, historyLimit), lastAppend: { serial: conversation.lastAppend.serial + 1, redraw, othersWrote, mineWrote } };
}

/**
 * Adds a join or leave, folding it into the run of arrivals and departures
 * just above if there is one. Only such runs fold: other quiet lines, such as
 * a "Not sent" notice, stay as they are.
 */
function addPresence(items: TimelineItem[], entry: PresenceEntry): void {
  const last = items[items.length - 1];
  if (entry.kind === 'left' && entry.reason === 'shutdown') {
    if (last?.kind === 'shutdown') items[items.length - 1] = { ...last, names: [...last.names, entry.name].slice(-PRESENCE_ROWS_KEPT) };
    else items.push({ kind: 'shutdown', key: `s${entry.seq}`, ts: entry.ts, names: [entry.name] });
    return;
  }
  const line = { text: presenceText(entry), ts: entry.ts };
  if (last?.kind === 'presence') {
    items[items.length - 1] = { ...last, lines: [...last.lines, line].slice(-PRESENCE_ROWS_KEPT), count: last.count + 1 };
    return;
  }
  items.push({ kind: 'presence', key: `p${entry.seq}`, lines: [line], count: 1 });
}

/**
 * A lost connection goes into the conversation where it happened, and stays
 * there once it is back ("back after 2 min"), so a gap in the talk explains
 * itself. Leaving a room is not an outage: that redraws from a snapshot.
 */
function noteOutage(state: PanelState, status: StatusView): PanelState {
  const was = state.status.connection.kind;
  const now = status.connection.kind;
  if (was === 'connected' && now === 'reconnecting') {
    const reason = status.connection.kind === 'reconnecting' ? status.connection.reason : '';
    const since = Date.now();
    return updateActive(state, (conversation) => ({ ...conversation, items: trim([...conversation.items, { kind: 'outage', key: `outage-${since}`, since, reason }], state.historyLimit) }));
  }
  if (was !== 'connected' && now === 'connected') {
    return updateActive(state, (conversation) => {
      const at = conversation.items.findLastIndex((item) => item.kind === 'outage');
      const open = conversation.items[at];
      if (open?.kind !== 'outage' || open.endedAt !== undefined) return conversation;
      const items = [...conversation.items];
      items[at] = { ...open, endedAt: Date.now() };
      return { ...conversation, items };
    });
  }
  return state;
}

function trim(items: TimelineItem[], historyLimit: number): TimelineItem[] {
  return items.length > historyLimit ? items.slice(items.length - historyLimit) : items;
}

export function presenceText(entry: PresenceEntry): string {
  if (entry.kind === 'joined') return `${entry.name} joined`;
  switch (entry.reason) {
    case 'lost':
      return `${entry.name} lost connection`;
    case 'kicked':
      return `${entry.name} was removed`;
    case 'shutdown':
      return `${entry.name} left (server shut down)`;
    default:
      return `${entry.name} left`;
  }
}

/** A store: the state, a way to change it, and a way to hear that it changed. */
export interface Store {
  readonly state: PanelState;
  dispatch(action: Action): void;
  subscribe(listener: () => void): () => void;
}

export function createStore(initial: PanelState): Store {
  let state = initial;
  const listeners = new Set<() => void>();
  return {
    get state() {
      return state;
    },
    dispatch(action) {
      const next = reduce(state, action);
      if (next === state) return;
      state = next;
      for (const listener of [...listeners]) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
