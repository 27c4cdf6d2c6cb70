/**
 * The typed message protocol between the chat panel's webview and the
 * extension host. Both sides import this file, so a renamed field is a compile
 * error on both. It never imports `vscode` or the DOM.
 *
 * Handshake: the webview posts `ready` once its script has run and its
 * listeners are attached; only then does the host post a `snapshot`. Posting
 * earlier would race the script's start-up and the first messages would be
 * lost, because a webview drops messages that arrive before it listens.
 * A webview that is hidden and shown again (or restored after a reload) starts
 * over with a fresh `ready`.
 *
 * A request that expects a reply carries a `requestId`, and its reply names it
 * in `inReplyTo` (shared/requestReply.ts matches them): `send` → `sendResult`
 * from the webview, `probe` → `probeResult` from the host.
 */
import type { LeaveReason } from './protocol';

// ---------------------------------------------------------------- views of the room

/** A chat message as the panel shows it. */
export interface MessageEntry {
  kind: 'message';
  seq: number;
  from: string;
  text: string;
  ts: number;
  /** The sender's message id, when the sender gave one. */
  id?: string;
  /** Written by the person using this panel. */
  mine: boolean;
  /** It mentions the person using this panel (`@name` at a word boundary). */
  mentionsMe?: boolean;
  /** The seq of the message it answers, with that message's author and the start of its text when at hand. */
  replyTo?: number;
  replyToFrom?: string;
  replyToText?: string;
  /** Changed by its author since it was written. */
  edited?: boolean;
  /** Deleted by its author: the text is gone. */
  deleted?: boolean;
  reactions?: ReactionView[];
}

/** One emoji on a message: how many reacted, some of their names, and whether we are among them. */
export interface ReactionView {
  emoji: string;
  count: number;
  names: string[];
  mine: boolean;
}

/** A change of the room's topic, shown as a quiet line. */
export interface TopicEntry {
  kind: 'topic';
  seq: number;
  by: string;
  topic: string;
  ts: number;
}

/** A join or leave announcement, shown as a quiet system line. */
export interface PresenceEntry {
  kind: 'joined' | 'left';
  seq: number;
  name: string;
  ts: number;
  reason?: LeaveReason;
}

export type ChatEntry = MessageEntry | PresenceEntry | TopicEntry;

/** Where the connection stands, as the panel shows it. */
export type ConnectionView =
  | { kind: 'idle' }
  | { kind: 'connecting'; address: string }
  | { kind: 'connected'; address: string }
  /** `retryAt` is an epoch time in ms, so the webview can count down on its own. */
  | { kind: 'reconnecting'; address: string; retryAt: number; attempt: number; reason: string }
  | { kind: 'disconnected'; reason: string };

/** A message written here that the server has not acknowledged yet. */
export interface PendingView {
  id: string;
  text: string;
  /** When the person pressed Enter (epoch ms). */
  createdAt: number;
  /** The seq of the message it answers. */
  replyTo?: number;
}

/**
 * What the panel offers when the room's server is one this machine runs and
 * it is down: start it, or (after a crash) restart it with the last choices.
 */
export type ServerOffer = 'start' | 'restart';

export interface StatusView {
  connection: ConnectionView;
  /** The name the server gave us, once welcomed. */
  me?: string;
  room?: string;
  /** Members by name; a big room's welcome names only some of them. */
  members: string[];
  /** How many members the room has, us included (at least `members.length`). */
  memberCount: number;
  /** Whether the panel may queue messages: joined, or on the way back to the room. */
  inRoom: boolean;
  serverOffer?: ServerOffer;
}

// ---------------------------------------------------------------- host → webview

/** Everything the panel needs to draw itself from nothing. */
export interface SnapshotMessage {
  type: 'snapshot';
  status: StatusView;
  entries: ChatEntry[];
  pending: PendingView[];
  /** How many entries the panel keeps; older ones are dropped from the top. */
  historyLimit: number;
  /** The longest message text in UTF-8 bytes, for the composer's counter. */
  maxTextBytes: number;
  /** Every conversation of this window, and which one is shown. */
  conversations: ConversationView[];
  activeKey: string;
  /** What the shown conversation can do: protocol 2 brings replies, edits, reactions, paging and search. */
  features: Features;
  /** Whether older history can be asked for. */
  hasOlder: boolean;
  /** The read marker of the shown conversation when it was opened: the "new since you were last here" line goes above the first message after it. */
  lastRead: number;
  typing: string[];
  /** Room names to complete after `#`. */
  roomNames: string[];
}

/** One conversation in the list. */
export interface ConversationView {
  key: string;
  title: string;
  kind: 'room' | 'dm';
  topic: string;
  unread: number;
  mentions: number;
  /** Its connection is up and the room has let us in. */
  connected: boolean;
}

export interface Features {
  v2: boolean;
  /** The person owns the room: topic and kick. */
  owner: boolean;
}

/** The conversation list changed (a join, a leave, new counts). */
export interface ConversationsMessage {
  type: 'conversations';
  conversations: ConversationView[];
  activeKey: string;
  roomNames: string[];
}

/** Messages already shown changed (edited, deleted, reacted to): replace them by seq. */
export interface UpdateMessage {
  type: 'update';
  entries: MessageEntry[];
}

/** Older history, oldest first, to go above what is shown. */
export interface PrependMessage {
  type: 'prepend';
  entries: ChatEntry[];
  more: boolean;
}

export interface TypingMessage {
  type: 'typing';
  names: string[];
}

/** The answer to a search: hits newest first, each one to jump to. */
export interface SearchResultsMessage {
  type: 'searchResults';
  query: string;
  hits: MessageEntry[];
  error?: string;
}

/** Scroll to a message (it is loaded now) and show it. */
export interface RevealMessage {
  type: 'reveal';
  seq: number;
}

/** A line beside the message box: what a command did, or why it could not. */
export interface NoticeMessage {
  type: 'notice';
  text: string;
  problem: boolean;
}

/** New room events, oldest first. */
export interface AppendMessage {
  type: 'append';
  entries: ChatEntry[];
}

export interface StatusMessage {
  type: 'status';
  status: StatusView;
}

/** The whole outbox, each time it changes (it is small). */
export interface OutboxMessage {
  type: 'outbox';
  pending: PendingView[];
}

/** A message the server refused for good (too long, for instance). */
export interface SendFailedMessage {
  type: 'sendFailed';
  id: string;
  text: string;
  reason: string;
}

/**
 * The draft the host kept for the message box. The webview's own state is
 * saved by the workbench only now and then, so after a window reload it can be
 * older than what was typed; the host's copy is written on every change.
 */
export interface RestoreDraftMessage {
  type: 'restoreDraft';
  text: string;
}

/**
 * The host's answer to a `send`: taken (queued in the outbox), or refused with
 * a reason for the person, in which case the text stays in the message box.
 * A `joinRoom`, `openDm`, `setTopic` or `kick` typed as a slash command is
 * answered the same way, once the server has taken or refused it.
 */
export interface SendResultMessage {
  type: 'sendResult';
  inReplyTo: number;
  accepted: boolean;
  reason?: string;
}

/** Put the keyboard focus in the message box. */
export interface FocusInputMessage {
  type: 'focusInput';
}

/** Asks the webview to describe what it shows (used by tests and diagnostics). */
export interface ProbeMessage {
  type: 'probe';
  requestId: number;
}

/**
 * Adds text to the message box (Send Selection's snippet), after what is
 * there, and puts the focus in it, so the person can say something about it.
 */
export interface AddToDraftMessage {
  type: 'addToDraft';
  text: string;
}

export type HostToWebview =
  | SnapshotMessage
  | ConversationsMessage
  | UpdateMessage
  | PrependMessage
  | TypingMessage
  | SearchResultsMessage
  | RevealMessage
  | NoticeMessage
  | AppendMessage
  | StatusMessage
  | OutboxMessage
  | SendFailedMessage
  | SendResultMessage
  | RestoreDraftMessage
  | FocusInputMessage
  | AddToDraftMessage
  | ProbeMessage;

// ---------------------------------------------------------------- webview → host

export interface ReadyMessage {
  type: 'ready';
}

/** The person pressed Enter; the host answers with a `sendResult` for `requestId`. */
export interface SendMessage {
  type: 'send';
  text: string;
  requestId: number;
  /** The seq of the message this answers. */
  replyTo?: number;
}

/** Show another conversation; leave one. */
export interface SwitchConversationMessage {
  type: 'switchConversation';
  key: string;
}
export interface LeaveConversationMessage {
  type: 'leaveConversation';
  key: string;
}

/** `/join room`, or a room picked from the list. */
export interface JoinRoomMessage {
  type: 'joinRoom';
  room: string;
  /** Typed as `/join` in the message box: answered with a `sendResult`, so a refusal leaves it there. */
  requestId?: number;
}

/** A direct message with someone (a member's name clicked, or `/dm name`). */
export interface OpenDmMessage {
  type: 'openDm';
  name: string;
  /** Typed as `/dm` in the message box: answered with a `sendResult`, so a refusal leaves it there. */
  requestId?: number;
}

/** The empty state's and the list's buttons. */
export interface SimpleActionMessage {
  type: 'browseRooms' | 'pasteInvite' | 'startNewServer' | 'loadOlder' | 'typing';
}

export interface EditMessage {
  type: 'edit';
  seq: number;
  text: string;
}
export interface DeleteMessage {
  type: 'delete';
  seq: number;
}
export interface ReactMessage {
  type: 'react';
  seq: number;
  emoji: string;
  add: boolean;
}
export interface SearchMessage {
  type: 'search';
  text: string;
}
export interface JumpToMessage {
  type: 'jumpTo';
  seq: number;
}
/**
 * `/topic` and `/kick`, which only the room's owner may use. With a
 * `requestId` (typed in the message box) the host answers with a
 * `sendResult`, so a refused command stays in the box beside the reason.
 */
export interface SetTopicMessage {
  type: 'setTopic';
  text: string;
  requestId?: number;
}
export interface KickMessage {
  type: 'kick';
  name: string;
  requestId?: number;
}

/** The message box changed; the host keeps the text so it survives a reload. */
export interface DraftMessage {
  type: 'draft';
  text: string;
}

/** A link was clicked; the host opens it only if it is http(s). */
export interface OpenLinkMessage {
  type: 'openLink';
  href: string;
}

/** A `path:line` reference was clicked; the host opens it if the workspace has it. */
export interface OpenPathMessage {
  type: 'openPath';
  path: string;
  line: number;
}

/** Copy text (a code block) to the clipboard through the host. */
export interface CopyMessage {
  type: 'copy';
  text: string;
}

/** Insert text (a code block) at the cursor of the editor the person was last in. */
export interface InsertCodeMessage {
  type: 'insertCode';
  text: string;
}

/** Buttons in the connection bar. */
export interface ReconnectMessage {
  type: 'reconnect';
}
export interface JoinMessage {
  type: 'join';
}
/** Start (or restart, with the last choices) the server this machine runs for the room. */
export interface StartServerMessage {
  type: 'startServer';
}

/** What the webview shows, in answer to a `probe`. */
export interface PanelView {
  messages: { from: string; text: string; mine: boolean; state: 'sent' | 'pending' | 'received'; html: string }[];
  /** The text of each system line (a collapsed run counts once). */
  systemLines: string[];
  members: string[];
  memberCountLabel: string;
  connectionText: string;
  /** Labels of the buttons in the connection bar. */
  actions: string[];
  /** Whether the message box takes input. */
  composerEnabled: boolean;
  /** The line beside the message box (a refusal, or the byte counter's warning), empty when none. */
  composerNotice: string;
  /** The byte counter's text when it shows, else empty. */
  byteCounter: string;
  pendingTexts: string[];
  newMessagesMarkerVisible: boolean;
  draft: string;
  /** The conversation list as shown: title, counts, and which one is shown. */
  conversations: { title: string; unread: number; mentions: number; active: boolean; topic: string }[];
  /** Labels of the welcome's buttons, when the welcome shows instead of a conversation. */
  welcomeActions: string[];
  /** "alice is typing…", or empty. */
  typingText: string;
  /** Each message's extras, by seq: the quote it answers, "(edited)", and its reactions as "emoji count". */
  extras: { seq: number; replyQuote: string; edited: boolean; reactions: string[] }[];
  /** The line above the message box when answering or editing, else empty. */
  composeBanner: string;
  /** Texts of the search results shown. */
  searchHits: string[];
}

export interface ProbeResultMessage {
  type: 'probeResult';
  inReplyTo: number;
  view: PanelView;
}

export type WebviewToHost =
  | SwitchConversationMessage
  | LeaveConversationMessage
  | JoinRoomMessage
  | OpenDmMessage
  | SimpleActionMessage
  | EditMessage
  | DeleteMessage
  | ReactMessage
  | SearchMessage
  | JumpToMessage
  | SetTopicMessage
  | KickMessage
  | ReadyMessage
  | SendMessage
  | DraftMessage
  | OpenLinkMessage
  | OpenPathMessage
  | CopyMessage
  | InsertCodeMessage
  | ReconnectMessage
  | JoinMessage
  | StartServerMessage
  | ProbeResultMessage;

const WEBVIEW_MESSAGE_TYPES: ReadonlySet<string> = new Set<WebviewToHost['type']>([
  'ready',
  'send',
  'draft',
  'openLink',
  'openPath',
  'copy',
  'insertCode',
  'reconnect',
  'join',
  'startServer',
  'probeResult',
  'switchConversation',
  'leaveConversation',
  'joinRoom',
  'openDm',
  'browseRooms',
  'pasteInvite',
  'startNewServer',
  'loadOlder',
  'typing',
  'edit',
  'delete',
  'react',
  'search',
  'jumpTo',
  'setTopic',
  'kick',
]);

const isSeq = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) > 0;
const MAX_FIELD_CHARS = 64 * 1024;
const isText = (value: unknown): boolean => typeof value === 'string' && value.length <= MAX_FIELD_CHARS;
const isOptionalRequestId = (value: unknown): boolean => value === undefined || Number.isSafeInteger(value);

/**
 * Narrows whatever the webview posted to a message the host knows, checking
 * the fields it will read. Anything else is ignored by the host: a webview is
 * rendering text from strangers, so its messages are input, not trusted calls.
 */
export function asWebviewMessage(value: unknown): WebviewToHost | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const type = record.type;
  if (typeof type !== 'string' || !WEBVIEW_MESSAGE_TYPES.has(type)) return undefined;
  const ok = (valid: boolean) => (valid ? (record as unknown as WebviewToHost) : undefined);
  switch (type as WebviewToHost['type']) {
    case 'send':
      return ok(typeof record.text === 'string' && Number.isSafeInteger(record.requestId) && (record.replyTo === undefined || isSeq(record.replyTo)));
    case 'switchConversation':
    case 'leaveConversation':
      return ok(isText(record.key));
    case 'joinRoom':
      return ok(isText(record.room) && isOptionalRequestId(record.requestId));
    case 'openDm':
      return ok(isText(record.name) && isOptionalRequestId(record.requestId));
    case 'kick':
      return ok(isText(record.name) && isOptionalRequestId(record.requestId));
    case 'edit':
      return ok(isSeq(record.seq) && typeof record.text === 'string');
    case 'delete':
    case 'jumpTo':
      return ok(isSeq(record.seq));
    case 'react':
      return ok(isSeq(record.seq) && isText(record.emoji) && typeof record.add === 'boolean');
    case 'search':
      return ok(isText(record.text));
    case 'setTopic':
      return ok(isText(record.text) && isOptionalRequestId(record.requestId));
    case 'draft':
    case 'copy':
    case 'insertCode':
      return typeof record.text === 'string' ? (record as unknown as WebviewToHost) : undefined;
    case 'openLink':
      return typeof record.href === 'string' ? (record as unknown as WebviewToHost) : undefined;
    case 'openPath':
      return typeof record.path === 'string' && Number.isSafeInteger(record.line) ? (record as unknown as WebviewToHost) : undefined;
    case 'probeResult':
      return Number.isSafeInteger(record.inReplyTo) && typeof record.view === 'object' && record.view !== null ? (record as unknown as WebviewToHost) : undefined;
    default:
      return { type } as WebviewToHost;
  }
}
