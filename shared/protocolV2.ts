/**
 * Wire protocol v2 of Chat Room: one connection, many conversations, and
 * people who keep their names.
 *
 * Version 2 is chosen in the `hello` (`protocol: 2`). A hello without it is
 * v1 (shared/protocol.ts), which keeps working unchanged, as does the classic
 * plain-text protocol. Framing is the same: one JSON object a line. Client
 * frames stay flat (primitive values only), except the few fields named in
 * CLIENT_ARRAY_FIELDS, which may be short arrays of strings.
 *
 * Every frame that changes state carries an `id` chosen by the client and is
 * de-duplicated by (clientId, id) like v1's `say`: a retry is applied once and
 * answered with the same `ack`. Every request that expects an answer carries
 * an `id` too, and its answer (or `error`) carries the same `id`.
 *
 * Like protocol.ts, this file never imports `vscode`; docs/protocol.md says
 * the same for people writing other clients.
 */
import type { ErrorCode, LeaveReason } from './protocol';

export const PROTOCOL_V2 = 2;
/** The versions a server speaks; a hello asking for another is refused with `unsupported`. */
export const SUPPORTED_PROTOCOLS: readonly number[] = [1, PROTOCOL_V2];

/**
 * Direct-message conversations are rooms whose name is this prefix and an
 * unguessable id (DM_ID_CHARS lower-case base32 characters, 130 bits: room
 * names are compared case-folded, so an id with capitals would lose half its
 * letters' worth of guessing). No room a person names may start with it.
 */
export const DM_PREFIX = 'dm:';
export const DM_ID_CHARS = 26;
/** A typing signal shows for this long unless it is repeated. */
export const TYPING_TTL_MS = 5_000;
/** The server passes on at most one typing signal per connection and room in this time; the rest are dropped. */
export const TYPING_MIN_INTERVAL_MS = 2_000;
/**
 * A message ends its author's typing run, and a client signals the next run
 * from this long after sending: not at once, or every message of someone
 * sending quickly would cost a second frame of their rate (the server reads
 * a connection's frames at a bounded rate), and not the usual 2 s after the
 * last signal, or the next message would go unseen for as long.
 */
export const TYPING_AFTER_MESSAGE_MS = 1_000;

/** The "last signal" time, for the usual throttle, that lets the next run signal TYPING_AFTER_MESSAGE_MS after a message. */
export function typingRunEndedAt(sentAt: number): number {
  return sentAt - TYPING_MIN_INTERVAL_MS + TYPING_AFTER_MESSAGE_MS;
}
export const TOPIC_MAX_CHARS = 256;
export const SEARCH_MIN_CHARS = 2;
export const SEARCH_MAX_CHARS = 128;
export const IDENTITY_KEY_MAX_CHARS = 128;
/** A key a client proposes for a name nobody keeps must be at least this long (32 random bytes in base64url are 43). */
export const IDENTITY_KEY_MIN_CHARS = 32;
/** Names a reaction list shows per emoji; `count` gives the total. */
export const REACTION_NAMES_SHOWN = 20;
/**
 * UTF-8 bytes of names one message's reaction list shows in all: with the
 * longest text, a message with every reaction still fits a server frame.
 */
export const REACTION_NAMES_MAX_BYTES = 8 * 1024;

/** Limits of v2 beside those in `Limits`; each has a server flag. The welcome tells a client the values in force. */
export interface LimitsV2 {
  /** Rooms (and DMs) one connection may have joined at once. */
  maxRoomsPerConnection: number;
  /** Distinct emoji on one message. */
  maxReactionsPerMessage: number;
  /** People in one direct-message conversation, its creator included. */
  maxDmParticipants: number;
  /** Events in one `history` page (fewer when the page would pass MAX_SERVER_FRAME_BYTES). */
  historyPageEvents: number;
  /** Hits in one `searchResults` page. */
  searchPageHits: number;
  /** Retained events one search request may scan before it answers with a `next` cursor. */
  searchScanEvents: number;
  /** Searches a connection may start in a minute; past it: `rate_limited` with the request's id. */
  searchesPerMinute: number;
  /** A name unused for this long is free for anyone again. */
  identityTtlDays: number;
  /** New names one address may claim in a minute (0: no limit; loopback is exempt); past it the hello is `rate_limited`. */
  newNamesPerMinute: number;
  /** New DMs one connection may make in a minute (0: no limit); past it `openDm` is `rate_limited` (opening one that exists is free). */
  newDmsPerMinute: number;
}

export const DEFAULT_LIMITS_V2: Readonly<LimitsV2> = Object.freeze({
  maxRoomsPerConnection: 50,
  maxReactionsPerMessage: 20,
  maxDmParticipants: 8,
  historyPageEvents: 100,
  searchPageHits: 50,
  searchScanEvents: 10_000,
  searchesPerMinute: 30,
  identityTtlDays: 30,
  newNamesPerMinute: 10,
  newDmsPerMinute: 10,
});

/** Errors v2 adds to v1's codes. */
export type ErrorCodeV2 =
  | ErrorCode
  /** The name belongs to an identity and the hello did not carry its key. */
  | 'name_reserved'
  /** Only the author, the room's owner or a participant may do that. */
  | 'forbidden'
  /** No such room, message (seq) or member, or it is outside the retained history. */
  | 'not_found'
  /** The connection has joined `maxRoomsPerConnection` rooms. */
  | 'too_many_rooms'
  /** A frame of a protocol version this connection did not choose, or a version the server does not speak. */
  | 'unsupported'
  /** A reaction that is not exactly one emoji, or past `maxReactionsPerMessage`. */
  | 'bad_reaction'
  /** The name was given up (by its owner or the operator): every connection of that identity is closed. */
  | 'name_released';

/**
 * Errors after which a v2 connection is closed. Every other error answers one
 * frame and leaves the connection open: a refused `join` (`too_many_rooms`,
 * `room_unavailable`, `name_taken`) costs that room, not the session. A hello
 * refused with `name_taken` (someone in a room holds that name without being
 * its identity) closes the connection too, as in v1.
 */
export const FATAL_ERRORS_V2: ReadonlySet<ErrorCodeV2> = new Set<ErrorCodeV2>([
  'name_reserved',
  'name_released',
  'too_many_connections',
  'unauthorized',
  'locked_out',
  'server_full',
  'hello_timeout',
  'idle_timeout',
  'slow_reader',
  'shutdown',
]);

// ---------------------------------------------------------------- client → server

export interface HelloV2Frame {
  type: 'hello';
  protocol: 2;
  name: string;
  /** Stable per installation; scopes ids for de-duplication. */
  clientId: string;
  token?: string;
  /**
   * The name's identity key. The first time a name is used it may be absent
   * (the server makes one and sends it in the welcome) or a key the client
   * made, at least IDENTITY_KEY_MIN_CHARS long (kept as it is: a welcome lost
   * on the way costs nothing, since the client already holds the key).
   */
  key?: string;
}

/** Joins a room, or a DM one takes part in; answered with `roomState`, then the replayed events. */
export interface JoinFrame {
  type: 'join';
  id: string;
  room: string;
  /** Replay every event after this seq (a resume); without it, the newest `replayEvents`. */
  lastSeq?: number;
  /**
   * The `epoch` of the roomState that `lastSeq` belongs to (a server in a
   * cluster sends one). Another epoch means the room's history was replaced
   * since: the answer is a roomState with `reset`, and the newest events.
   */
  epoch?: string;
}

/** Leaves a room on purpose (announced as `left` with `quit`) and drops it from one's conversations. */
export interface PartFrame {
  type: 'part';
  id: string;
  room: string;
}

export interface SayV2Frame {
  type: 'say';
  id: string;
  room: string;
  text: string;
  /** The seq of an earlier message in the same room. */
  replyTo?: number;
}

export interface EditFrame {
  type: 'edit';
  id: string;
  room: string;
  /** The seq of the message; only its author's identity may edit it. */
  target: number;
  text: string;
}

export interface DeleteFrame {
  type: 'delete';
  id: string;
  room: string;
  target: number;
}

export interface ReactFrame {
  type: 'react';
  id: string;
  room: string;
  target: number;
  /** Exactly one emoji grapheme. */
  emoji: string;
  /** true adds your reaction, false takes it back. */
  add: boolean;
}

/** Ephemeral: never stored, never acknowledged. */
export interface TypingFrame {
  type: 'typing';
  room: string;
}

/** Moves your read marker forward (never back); your other connections are told. */
export interface ReadFrame {
  type: 'read';
  id: string;
  room: string;
  seq: number;
}

/** Owner only. An empty text clears the topic. */
export interface TopicFrame {
  type: 'topic';
  id: string;
  room: string;
  text: string;
}

/** Owner only: the member leaves with reason `kicked`. */
export interface KickFrame {
  type: 'kick';
  id: string;
  room: string;
  name: string;
}

/** Owner only: hands the room on to another identity. */
export interface SetOwnerFrame {
  type: 'setOwner';
  id: string;
  room: string;
  name: string;
}

/** Lists the server's rooms (DMs never), sorted by name, a page at a time. */
export interface ListRoomsFrame {
  type: 'listRooms';
  id: string;
  /** The `next` cursor of the previous page. */
  after?: string;
}

/** Your conversations (rooms you joined and have not parted, and your DMs) with unread counts, a page at a time by name. */
export interface ConversationsFrame {
  type: 'conversations';
  id: string;
  /** The `next` cursor of the previous page. */
  after?: string;
}

/** Members of a joined room, a page at a time (for completion in big rooms). */
export interface ListMembersFrame {
  type: 'listMembers';
  id: string;
  room: string;
  after?: string;
}

/** Older history of a joined room: events before `before`, newest last. */
export interface HistoryFrame {
  type: 'history';
  id: string;
  room: string;
  before: number;
  limit?: number;
}

/** Case-insensitive substring search of a joined room's retained messages, newest first. */
export interface SearchFrame {
  type: 'search';
  id: string;
  room: string;
  text: string;
  /** The `next` cursor of the previous page: search messages before this seq. */
  before?: number;
}

/** Opens (or finds) the direct-message conversation between you and these identities. */
export interface OpenDmFrame {
  type: 'openDm';
  id: string;
  with: string[];
}

/** Gives up your name: its key stops working and anyone may take the name. */
export interface ReleaseNameFrame {
  type: 'releaseName';
  id: string;
}

export interface PingV2Frame {
  type: 'ping';
}
export interface PongV2Frame {
  type: 'pong';
}
export interface ByeV2Frame {
  type: 'bye';
}

export type ClientFrameV2 =
  | HelloV2Frame
  | JoinFrame
  | PartFrame
  | SayV2Frame
  | EditFrame
  | DeleteFrame
  | ReactFrame
  | TypingFrame
  | ReadFrame
  | TopicFrame
  | KickFrame
  | SetOwnerFrame
  | ListRoomsFrame
  | ConversationsFrame
  | ListMembersFrame
  | HistoryFrame
  | SearchFrame
  | OpenDmFrame
  | ReleaseNameFrame
  | PingV2Frame
  | PongV2Frame
  | ByeV2Frame;

/** The client frames that change stored state; each is acknowledged once stored, and de-duplicated by id. */
export const MUTATING_FRAMES: ReadonlySet<ClientFrameV2['type']> = new Set<ClientFrameV2['type']>([
  'join',
  'part',
  'say',
  'edit',
  'delete',
  'react',
  'read',
  'topic',
  'kick',
  'setOwner',
  'openDm',
  'releaseName',
]);

/** The only client fields that may hold arrays (of strings, at most this many). */
export const CLIENT_ARRAY_FIELDS: Readonly<Record<string, number>> = Object.freeze({ with: 16 });

// ---------------------------------------------------------------- server → client

export interface WelcomeV2Frame {
  type: 'welcome';
  protocol: 2;
  you: string;
  /** Made by the server the first time a name is used without a proposed key (keep it secret; it is the name's only proof of ownership). */
  key?: string;
  /** Until when the name is yours if you do not come back (epoch ms). */
  keyExpiresAt: number;
  /** The limits in force on this server, so a client checks against them rather than the defaults. */
  limits: { maxTextBytes: number; maxFrameBytes: number } & LimitsV2;
}

export type ConversationKind = 'room' | 'dm';

/** Why a room is shown afresh: its history in the cluster's store was lost, rewound by a failover, or trimmed past what this server had. */
export type RoomResetReasonV2 = 'epoch' | 'rewound' | 'trimmed';

/**
 * The answer to `join`: where the room stands. Replayed events follow it.
 * Also sent without an `id`, with `reset`, when a room one is in has its
 * history replaced (cluster mode): the client drops what it shows of the room
 * and shows what follows (the newest events), as after a first join.
 */
export interface RoomStateFrame {
  type: 'roomState';
  /** The join's id; absent when the server shows the room again by itself (`reset`). */
  id?: string;
  /** Set when the client's view of the room is void: drop it, and take the events that follow as the room's history. */
  reset?: RoomResetReasonV2;
  /** Which history of the room `seq` belongs to (cluster mode only); send it back in `join.epoch`. */
  epoch?: string;
  /** The room's canonical name (for a DM, its `dm:` id). */
  room: string;
  kind: ConversationKind;
  /** Who takes part in a DM (absent for rooms). */
  participants?: string[];
  topic: string;
  /** The owning identity's name; absent for a room nobody owns (one made by a v1 or classic user). */
  owner?: string;
  /** Up to WELCOME_MAX_MEMBERS names; `listMembers` pages the rest. */
  members: string[];
  memberCount: number;
  seq: number;
  firstSeq: number;
  /** Your read marker in this room (0 when you have none). */
  lastRead: number;
}

export interface Reaction {
  emoji: string;
  count: number;
  /** Up to REACTION_NAMES_SHOWN of the people who reacted. */
  names: string[];
}

/**
 * A message. In live delivery it is new; in a replay, a history page or a
 * search hit it carries its current state (edited text, deletion, reactions).
 */
export interface MessageV2Event {
  type: 'message';
  seq: number;
  room: string;
  from: string;
  text: string;
  ts: number;
  id?: string;
  replyTo?: number;
  /** The name of the replied-to message's author, so a reply can be shown when that message is not at hand. */
  replyToFrom?: string;
  /** When it was last edited (epoch ms). */
  editedTs?: number;
  /** Deleted by its author: `text` is empty. */
  deleted?: true;
  reactions?: Reaction[];
}

export interface EditedEvent {
  type: 'edited';
  seq: number;
  room: string;
  target: number;
  from: string;
  text: string;
  ts: number;
}

export interface DeletedEvent {
  type: 'deleted';
  seq: number;
  room: string;
  target: number;
  from: string;
  ts: number;
}

/** A reaction changed; carries the message's whole reaction list, so applying it twice is harmless. */
export interface ReactionsEvent {
  type: 'reactions';
  seq: number;
  room: string;
  target: number;
  reactions: Reaction[];
  ts: number;
}

export interface TopicEvent {
  type: 'topic';
  seq: number;
  room: string;
  topic: string;
  by: string;
  ts: number;
}

export interface OwnerEvent {
  type: 'owner';
  seq: number;
  room: string;
  owner: string;
  by: string;
  ts: number;
}

export interface JoinedV2Event {
  type: 'joined';
  seq: number;
  room: string;
  name: string;
  ts: number;
}

export interface LeftV2Event {
  type: 'left';
  seq: number;
  room: string;
  name: string;
  reason: LeaveReason;
  /** Who kicked, for reason `kicked`. */
  by?: string;
  ts: number;
}

/** Events are stored, numbered by the room, replayed and resumed by seq. */
export type RoomEventV2 = MessageV2Event | EditedEvent | DeletedEvent | ReactionsEvent | TopicEvent | OwnerEvent | JoinedV2Event | LeftV2Event;

/** Someone is typing in a room; never stored, shown for TYPING_TTL_MS. */
export interface TypingEvent {
  type: 'typing';
  room: string;
  name: string;
}

/** Your read marker moved (sent to your identity's other connections). */
export interface ReadMarkerFrame {
  type: 'readMarker';
  room: string;
  seq: number;
}

/** You are no longer in a room although you did not part (kicked, or the DM went away). */
export interface PartedFrame {
  type: 'parted';
  room: string;
  reason: LeaveReason;
  by?: string;
}

export interface RoomSummary {
  room: string;
  topic: string;
  memberCount: number;
}

export interface RoomListFrame {
  type: 'roomList';
  id: string;
  rooms: RoomSummary[];
  /** Pass as `after` for the next page; absent on the last. */
  next?: string;
}

export interface ConversationSummary {
  room: string;
  kind: ConversationKind;
  participants?: string[];
  topic: string;
  /** The conversation's latest seq; absent (with `unread` and `mentions`) when the server could not open it just now. */
  seq?: number;
  lastRead: number;
  /** Messages after your read marker that are not yours and not deleted. */
  unread?: number;
  /** Of those, the ones that mention you (`@name` at a word boundary). */
  mentions?: number;
}

export interface ConversationListFrame {
  type: 'conversationList';
  id: string;
  conversations: ConversationSummary[];
  /** Pass as `after` for the next page; absent on the last. */
  next?: string;
}

export interface MemberListFrame {
  type: 'memberList';
  id: string;
  room: string;
  names: string[];
  next?: string;
}

/** A page of older events of one room, oldest first, with current message state. */
export interface HistoryPageFrame {
  type: 'historyPage';
  id: string;
  room: string;
  events: RoomEventV2[];
  /** Whether the room holds events older than this page. */
  more: boolean;
}

export interface SearchResultsFrame {
  type: 'searchResults';
  id: string;
  room: string;
  hits: MessageV2Event[];
  /** Pass as `before` to go on; absent when the retained history is searched through. */
  next?: number;
}

/**
 * Someone opened a DM with you: it is among your conversations now. Sent,
 * unasked, to every connection of every participant (the opener's too, so
 * its other windows see it), once, when the DM is made. A client that knows
 * the room already can ignore it.
 */
export interface ConversationAddedFrame {
  type: 'conversationAdded';
  room: string;
  kind: ConversationKind;
  participants: string[];
}

export interface DmOpenedFrame {
  type: 'dmOpened';
  id: string;
  room: string;
  participants: string[];
}

/** A mutating frame is stored; `seq` when it made a room event. */
export interface AckV2Frame {
  type: 'ack';
  id: string;
  seq?: number;
}

export interface ErrorV2Frame {
  type: 'error';
  code: ErrorCodeV2;
  message: string;
  /** The id of the frame this error answers. */
  id?: string;
  room?: string;
}

export type ServerFrameV2 =
  | WelcomeV2Frame
  | RoomStateFrame
  | RoomEventV2
  | TypingEvent
  | ReadMarkerFrame
  | PartedFrame
  | RoomListFrame
  | ConversationListFrame
  | MemberListFrame
  | HistoryPageFrame
  | SearchResultsFrame
  | DmOpenedFrame
  | ConversationAddedFrame
  | AckV2Frame
  | ErrorV2Frame
  | PingV2Frame
  | PongV2Frame;
