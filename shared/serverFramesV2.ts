/**
 * What a v2 client checks of each frame a server sends before acting on it.
 * `parseServerFrameV2` (framing.ts) only knows a frame is an object with a
 * type; a client is about to show names and texts from it, count with its
 * seqs and index by its rooms, so every field it reads is checked here, and
 * a frame that fails is skipped (a hostile or broken server gets no further
 * than that). Unknown fields are left alone, as the protocol says.
 */
import type { ServerFrameV2 } from './protocolV2';

type Check = (value: unknown) => boolean;

const str: Check = (value) => typeof value === 'string';
const int: Check = (value) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const bool: Check = (value) => typeof value === 'boolean';
const strings: Check = (value) => Array.isArray(value) && value.every((item) => typeof item === 'string');
const optional =
  (check: Check): Check =>
  (value) =>
    value === undefined || check(value);
const reactions: Check = (value) =>
  Array.isArray(value) && value.every((item) => typeof item === 'object' && item !== null && str((item as Record<string, unknown>).emoji) && int((item as Record<string, unknown>).count) && strings((item as Record<string, unknown>).names));

const MESSAGE: Record<string, Check> = {
  seq: int,
  room: str,
  from: str,
  text: str,
  ts: int,
  id: optional(str),
  replyTo: optional(int),
  replyToFrom: optional(str),
  editedTs: optional(int),
  deleted: optional(bool),
  reactions: optional(reactions),
};

const EVENT_FIELDS: Record<string, Record<string, Check>> = {
  message: MESSAGE,
  edited: { seq: int, room: str, target: int, from: str, text: str, ts: int },
  deleted: { seq: int, room: str, target: int, from: str, ts: int },
  reactions: { seq: int, room: str, target: int, reactions, ts: int },
  topic: { seq: int, room: str, topic: str, by: str, ts: int },
  owner: { seq: int, room: str, owner: str, by: str, ts: int },
  joined: { seq: int, room: str, name: str, ts: int },
  left: { seq: int, room: str, name: str, reason: str, ts: int, by: optional(str) },
};

const events: Check = (value) => Array.isArray(value) && value.every((event) => checkFields(event, EVENT_FIELDS));
const messages: Check = (value) => Array.isArray(value) && value.every((event) => typeof event === 'object' && event !== null && (event as Record<string, unknown>).type === 'message' && fieldsHold(event as Record<string, unknown>, MESSAGE));
const summaries = (fields: Record<string, Check>): Check => (value) => Array.isArray(value) && value.every((item) => typeof item === 'object' && item !== null && fieldsHold(item as Record<string, unknown>, fields));

const FIELDS: Record<string, Record<string, Check>> = {
  ...EVENT_FIELDS,
  welcome: { protocol: int, you: str, key: optional(str), keyExpiresAt: optional(int) },
  // Without an id (and with reset) when the server shows a room afresh by itself (cluster mode).
  roomState: { id: optional(str), reset: optional(str), epoch: optional(str), room: str, kind: str, participants: optional(strings), topic: str, owner: optional(str), members: strings, memberCount: int, seq: int, firstSeq: int, lastRead: int },
  typing: { room: str, name: str },
  readMarker: { room: str, seq: int },
  parted: { room: str, reason: str, by: optional(str) },
  roomList: { id: str, rooms: summaries({ room: str, topic: str, memberCount: int }), next: optional(str) },
  conversationList: {
    id: str,
    conversations: summaries({ room: str, kind: str, participants: optional(strings), topic: str, seq: optional(int), lastRead: int, unread: optional(int), mentions: optional(int) }),
    next: optional(str),
  },
  memberList: { id: str, room: str, names: strings, next: optional(str) },
  historyPage: { id: str, room: str, events, more: bool },
  searchResults: { id: str, room: str, hits: messages, next: optional(int) },
  dmOpened: { id: str, room: str, participants: strings },
  conversationAdded: { room: str, kind: str, participants: strings },
  ack: { id: str, seq: optional(int) },
  error: { code: str, message: str, id: optional(str), room: optional(str) },
  ping: {},
  pong: {},
};

function fieldsHold(record: Record<string, unknown>, fields: Record<string, Check>): boolean {
  for (const [field, check] of Object.entries(fields)) if (!check(record[field])) return false;
  return true;
}

function checkFields(value: unknown, table: Record<string, Record<string, Check>>): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  const type = record.type;
  return typeof type === 'string' && Object.hasOwn(table, type) && fieldsHold(record, table[type]);
}

/** The frame, when every field a client reads has the type the protocol gives it; undefined otherwise. */
export function checkServerFrameV2(frame: unknown): ServerFrameV2 | undefined {
  return checkFields(frame, FIELDS) ? (frame as ServerFrameV2) : undefined;
}
