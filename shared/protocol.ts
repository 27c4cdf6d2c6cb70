/**
 * Wire protocol v1 of Chat Room: newline-delimited JSON over TCP.
 *
 * This file is the single definition of the protocol. The server, the
 * extension's client and the tests all import it, so a field renamed here is a
 * compile error everywhere it is used. It must never import `vscode`.
 * docs/protocol.md describes the same thing for people writing other clients.
 */

export const PROTOCOL_VERSION = 1;
export const DEFAULT_PORT = 33000;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_ROOM = 'lobby';

/** Every limit the server enforces; each one can be changed on the command line. */
export interface Limits {
  /** Longest frame (one line, without its newline) in bytes. */
  maxFrameBytes: number;
  /** Longest message text in UTF-8 bytes; longer texts are refused, never cut. */
  maxTextBytes: number;
  /** A connection that has not said hello by then is closed. */
  helloTimeoutMs: number;
  /** Frames a connection may send at once before the rate applies. */
  rateBurst: number;
  /** Frames per second a connection may keep sending after its burst. */
  ratePerSecond: number;
  /** Bytes waiting to be written to one client before it counts as a slow reader. */
  maxPendingWriteBytes: number;
  /** Silence after which the server pings a client. */
  idlePingMs: number;
  /** Time after that ping within which the client must say something. */
  idleCloseMs: number;
  /** Events replayed after a welcome when the client gives no lastSeq. */
  replayEvents: number;
  /** Events each room keeps at least (history and de-duplication window). */
  retainEvents: number;
  /** Connections the server accepts at once (0: no limit). */
  maxClients: number;
  /** New connections one address may open in a minute (0: no limit; loopback is exempt). */
  newConnectionsPerMinute: number;
  /** Rooms loaded at once; empty ones are unloaded early to make space (0: no limit). */
  maxRooms: number;
  /** Rooms one address may load in a minute (0: no limit; loopback is exempt). */
  newRoomsPerMinute: number;
  /** An empty room is unloaded (its file closed) after this long. */
  roomIdleMs: number;
  /** A classic (plain-text) member that sends nothing for this long is disconnected; classic has no ping. */
  classicIdleMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 16 * 1024,
  maxTextBytes: 4 * 1024,
  helloTimeoutMs: 10_000,
  rateBurst: 10,
  ratePerSecond: 2,
  maxPendingWriteBytes: 1024 * 1024,
  idlePingMs: 60_000,
  idleCloseMs: 30_000,
  replayEvents: 100,
  retainEvents: 10_000,
  maxClients: 10_000,
  newConnectionsPerMinute: 120,
  maxRooms: 20_000,
  newRoomsPerMinute: 60,
  roomIdleMs: 30_000,
  classicIdleMs: 10 * 60_000,
});

export const NAME_MAX_CHARS = 32;
export const ROOM_MAX_CHARS = 64;
export const ID_MAX_CHARS = 64;
export const CLIENT_ID_MAX_CHARS = 128;
export const TOKEN_MAX_CHARS = 512;
/** Length of the seat secret a welcome hands out (base64url of 16 random bytes is 22). */
export const RESUME_MAX_CHARS = 64;
/**
 * Longest frame a server sends, without its newline. Clients read up to this
 * much, so every server frame (a welcome included) is built to stay under it.
 */
export const MAX_SERVER_FRAME_BYTES = 64 * 1024;
/**
 * A welcome names at most this many members; `memberCount` gives the total.
 * At 32 characters of up to 4 bytes each, the list stays far below
 * MAX_SERVER_FRAME_BYTES however big the room is.
 */
export const WELCOME_MAX_MEMBERS = 200;
/** Names nobody may take, so that nobody can pose as the room itself. */
export const RESERVED_NAMES: readonly string[] = ['server', 'system', 'admin', 'root', 'chatroom', 'everyone', 'here'];

// ---------------------------------------------------------------- client → server

export interface HelloFrame {
  type: 'hello';
  name: string;
  /** Defaults to `lobby`. */
  room?: string;
  /** Stable per installation; scopes message ids for de-duplication. */
  clientId?: string;
  /** Required only when the server was started with one. */
  token?: string;
  /** "Send me every event after this sequence number." */
  lastSeq?: number;
  /**
   * The seat secret from this client's last welcome in this room. Only it
   * lets a new connection take over a seat whose old connection the server
   * has not yet noticed is dead; a clientId never does.
   */
  resume?: string;
  /** The protocol version asked for: absent or 1 is this protocol; 2 is protocolV2.ts (another version: `unsupported`). */
  protocol?: number;
  /**
   * The `epoch` of the welcome that `lastSeq` belongs to (servers in a
   * cluster send one). Another epoch means the room's history was replaced
   * since: the welcome then has `reset`, and the newest events follow.
   */
  epoch?: string;
}

export interface SayFrame {
  type: 'say';
  /** Chosen by the client; a retry with the same id is stored once. */
  id: string;
  text: string;
}

export interface PingFrame {
  type: 'ping';
}

export interface PongFrame {
  type: 'pong';
}

export interface ByeFrame {
  type: 'bye';
}

export type ClientFrame = HelloFrame | SayFrame | PingFrame | PongFrame | ByeFrame;

// ---------------------------------------------------------------- server → client

export interface WelcomeFrame {
  type: 'welcome';
  you: string;
  room: string;
  /** Up to WELCOME_MAX_MEMBERS names, yours first. */
  members: string[];
  /** How many members the room has, you included (may exceed `members.length`). */
  memberCount?: number;
  /**
   * A secret for this seat, issued to this connection alone. A client that
   * loses its connection sends it back in `hello.resume` to take its seat over
   * without a leave and a join being announced.
   */
  resume?: string;
  /** The room's latest stored sequence number. Replayed history follows. */
  seq: number;
  /** Lowest sequence number the room still holds (for gap detection). */
  firstSeq: number;
  protocol: number;
  /** Which history of the room `seq` belongs to (cluster mode only); send it back in `hello.epoch`. */
  epoch?: string;
  /**
   * The client's view of the room is void (cluster mode: the room's history
   * was replaced, or `lastSeq` belonged to another epoch): drop it, forget
   * `lastSeq`, and take the events that follow as the room's history. Also
   * sent on a connection already welcomed when this happens to its room.
   */
  reset?: boolean;
}

export interface MessageEvent {
  type: 'message';
  seq: number;
  room: string;
  from: string;
  text: string;
  ts: number;
  /** The sender's message id (absent for classic-mode senders). */
  id?: string;
}

export interface JoinedEvent {
  type: 'joined';
  seq: number;
  room: string;
  name: string;
  ts: number;
}

export type LeaveReason = 'quit' | 'lost' | 'kicked' | 'shutdown';

export interface LeftEvent {
  type: 'left';
  seq: number;
  room: string;
  name: string;
  reason: LeaveReason;
  ts: number;
}

export interface AckFrame {
  type: 'ack';
  id: string;
  seq: number;
}

export type ErrorCode =
  | 'bad_frame'
  | 'bad_name'
  | 'bad_room'
  | 'name_taken'
  | 'too_long'
  | 'rate_limited'
  | 'unauthorized'
  | 'locked_out'
  | 'server_full'
  | 'not_joined'
  | 'already_joined'
  | 'hello_timeout'
  | 'idle_timeout'
  | 'slow_reader'
  | 'storage_failed'
  | 'room_unavailable'
  | 'too_many_rooms'
  | 'too_many_connections'
  | 'shutdown';

export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The message id this error is about, when it is about one `say`. */
  id?: string;
}

/** Events are what rooms store and replay; each has the room's next sequence number. */
export type RoomEvent = MessageEvent | JoinedEvent | LeftEvent;

export type ServerFrame = WelcomeFrame | RoomEvent | AckFrame | ErrorFrame | PingFrame | PongFrame;

/**
 * Errors after which the server closes the connection. `too_long` closes it
 * too when it is about a frame (no newline within the limit), but not when it
 * is about a message's text.
 */
export const FATAL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'name_taken',
  'room_unavailable',
  'too_many_rooms',
  'too_many_connections',
  'unauthorized',
  'locked_out',
  'server_full',
  'hello_timeout',
  'idle_timeout',
  'slow_reader',
  'shutdown',
]);

/** Errors that make a joining client pick another name rather than retry. */
export const NAME_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['name_taken', 'bad_name']);
