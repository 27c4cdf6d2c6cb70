/**
 * A room's events as the server holds them: the form they are stored in
 * (the public event plus fields only the server keeps), the current state of
 * each message (its edits, its deletion, its reactions), and the renderings
 * each kind of member is sent.
 *
 * Three renderings, each made once per event and shared by every member of
 * its kind:
 * - v2: the event itself; in a replay, a history page or a search hit, a
 *   message in its current state, and a change rendered against the current
 *   state of its message (so a client may apply it twice, in any order after
 *   the message, and a deleted text never comes back);
 * - v1: a fair text version: a reply is a message from `alice (to bob)`, an
 *   edit a message from `alice (edited)` with the new text; deletions,
 *   reactions, topics and owners are not sent;
 * - classic: the v1 rendering as one plain line (classicConnection.ts).
 * A plain message (no reply, never changed) is the same bytes for v1 and v2.
 *
 * Changes are applied in seq order by one deterministic function, live and
 * when a log is read back, so the state after a restart is the state that was
 * acknowledged: an edit or a reaction that reaches a deleted message changes
 * nothing, and a reaction past the cap of distinct emoji changes nothing.
 */
import { encodeFrame } from '../shared/framing';
import type { LeaveReason, RoomEvent } from '../shared/protocol';
import { type MessageV2Event, REACTION_NAMES_MAX_BYTES, REACTION_NAMES_SHOWN, type Reaction, type RoomEventV2 } from '../shared/protocolV2';

/** A reaction added or taken back, as stored. Members get a `reactions` event rendered from the message's state after it. */
export interface ReactOperation {
  type: 'react';
  seq: number;
  room: string;
  target: number;
  emoji: string;
  add: boolean;
  /** The reacting identity's name at the time. */
  name: string;
  ts: number;
  /** The reacting identity (stored, never sent: a reaction is someone's whatever their name becomes). */
  byId?: string;
}

/** What a room stores and replays: a v2 event, or a reaction as it was made. */
export type HeldBody = Exclude<RoomEventV2, { type: 'reactions' }> | ReactOperation;

/** Fields a stored record carries beside the public event; they are never sent. */
export interface PrivateFields {
  /** The sender's installation, for de-duplication. */
  clientId?: string;
  /** A message's author identity (absent for v1 and classic authors). */
  authorId?: string;
  /** The identity that reacted, set the topic, handed the room on, or kicked. */
  byId?: string;
  /** The identity an `owner` event hands the room to. */
  ownerId?: string;
  /** A compacted message's reactions in full: emoji → [identity id, name] pairs. */
  reactedBy?: Record<string, [string, string][]>;
  /** An edit of a deleted message, compacted: its text is gone. */
  redacted?: true;
  /** Whose arrival or departure this is, in a room shared by a cluster (see seatIdOf in room.ts), so every server knows. */
  seat?: string;
}

/** Record fields that are never sent; `id` is private too, except on a message (where the sender matches its ack by it). */
const PRIVATE_KEYS = ['clientId', 'authorId', 'byId', 'ownerId', 'reactedBy', 'redacted', 'seat'] as const;
/** A compacted message's state, folded into its record. */
const FOLDED_KEYS = ['editedTs', 'deleted', 'reactions'] as const;

export type RecordClass = 'message' | 'presence' | 'change';

/** Messages, presence (arrivals and departures) and changes are retained apart, so none pushes the others out. */
export function classOf(type: string): RecordClass {
  if (type === 'message') return 'message';
  if (type === 'joined' || type === 'left') return 'presence';
  return 'change';
}

/** Separates who reacted to a message, by emoji; identity id → name, in the order they reacted. */
export type ReactionSets = Map<string, Map<string, string>>;

/** A message that was edited, deleted or reacted to. Messages never changed carry none. */
export class MessageState {
  text: string;
  editedTs: number | undefined;
  deleted = false;
  reactions: ReactionSets | undefined;
  /** The current v2 and v1 renderings, made on first use after each change. */
  v2: Buffer | undefined;
  v1: Buffer | null | undefined;

  constructor(text: string) {
    this.text = text;
  }

  changed(): void {
    this.v2 = undefined;
    this.v1 = undefined;
  }

  /** The reactions as members see them: every emoji with its count, and the first names (REACTION_NAMES_SHOWN each, REACTION_NAMES_MAX_BYTES in all). */
  reactionList(): Reaction[] {
    const list: Reaction[] = [];
    let budget = REACTION_NAMES_MAX_BYTES;
    for (const [emoji, people] of this.reactions ?? []) {
      const names: string[] = [];
      for (const name of people.values()) {
        const size = Buffer.byteLength(name, 'utf8') + 3;
        if (names.length >= REACTION_NAMES_SHOWN || size > budget) break;
        budget -= size;
        names.push(name);
      }
      list.push({ emoji, count: people.size, names });
    }
    return list;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Arrivals and departures are kept as long as the room keeps them, and most
 * are made in the same turn as frames that are gone a moment later (a
 * member's welcome, room state and acks). Node carves small buffers out of
 * shared 8 KiB slabs, and one kept buffer keeps its whole slab: about a
 * kilobyte per member. So these are written into slabs of their own, which
 * hold nothing else.
 */
const KEPT_SLAB_BYTES = 8 * 1024;
let keptSlab = Buffer.allocUnsafeSlow(KEPT_SLAB_BYTES);
let keptOffset = 0;

function keptFrame(event: HeldBody): Buffer {
  const text = JSON.stringify(event) + '\n';
  const length = Buffer.byteLength(text, 'utf8');
  if (length > KEPT_SLAB_BYTES / 8) return Buffer.from(text, 'utf8');
  if (keptOffset + length > KEPT_SLAB_BYTES) {
    keptSlab = Buffer.allocUnsafeSlow(KEPT_SLAB_BYTES);
    keptOffset = 0;
  }
  keptSlab.write(text, keptOffset, 'utf8');
  const bytes = keptSlab.subarray(keptOffset, keptOffset + length);
  keptOffset += length;
  return bytes;
}

/**
 * One event a room holds, serialised once for live delivery. A message also
 * holds who wrote it and, once changed, its state.
 */
export class EncodedEvent {
  /**
   * The v2 rendering for live delivery (for a reaction: set when it is
   * committed, from the message's state then). Made on first use: a room read
   * back from a long log must not serialise its whole history in one turn of
   * the event loop, and most of it is never sent.
   */
  private wireBytes: Buffer | undefined;
  /** A message's author identity; absent for v1 and classic authors. */
  authorId: string | undefined;
  /** The (clientId, id) key the event was stored under, so it is forgotten with the event. */
  dedupKey: string | undefined;
  state: MessageState | undefined;
  /** The v1 rendering for live delivery, made on first use (null: v1 members get nothing). */
  private v1Live: Buffer | null | undefined;

  constructor(
    readonly event: HeldBody,
    wire?: Buffer,
  ) {
    this.wireBytes = wire;
  }

  get wire(): Buffer {
    const event = this.event;
    this.wireBytes ??= event.type === 'react' ? EMPTY : event.type === 'joined' || event.type === 'left' ? keptFrame(event) : encodeFrame(event);
    return this.wireBytes;
  }

  set wire(bytes: Buffer) {
    this.wireBytes = bytes;
  }

  get seq(): number {
    return this.event.seq;
  }

  /** Sets what v1 members are sent live, for an event whose rendering depends on its message's state at commit. */
  setV1Wire(bytes: Buffer | undefined): void {
    this.v1Live = bytes ?? null;
  }

  /** What a v1 member is sent live, if anything: the same bytes as v2 for a plain message, an arrival or a departure. */
  v1Wire(): Buffer | undefined {
    if (this.v1Live === undefined) {
      const body = this.event;
      if (body.type === 'joined' || body.type === 'left' || (body.type === 'message' && body.replyTo === undefined && !this.state)) this.v1Live = this.wire;
      else {
        const fair = fairTextOf(this, undefined);
        this.v1Live = fair === undefined ? null : encodeFrame(fair);
      }
    }
    return this.v1Live ?? undefined;
  }
}

/** A message in its current state, as v2 shows it in replays, history pages and search hits. */
export function currentMessageWire(held: EncodedEvent): Buffer {
  const state = held.state;
  if (!state) return held.wire;
  state.v2 ??= encodeFrame(currentMessage(held, state));
  return state.v2;
}

function currentMessage(held: EncodedEvent, state: MessageState): MessageV2Event {
  const message = { ...(held.event as MessageV2Event) };
  message.text = state.deleted ? '' : state.text;
  if (state.editedTs !== undefined && !state.deleted) message.editedTs = state.editedTs;
  if (state.deleted) message.deleted = true;
  const reactions = state.reactions && state.reactions.size > 0 ? state.reactionList() : undefined;
  if (reactions) message.reactions = reactions;
  return message;
}

/**
 * The v2 rendering of any held event against the current state of its
 * message (`target`: the message a change is about, if still held). Undefined
 * when there is nothing to send: a change whose message is no longer held.
 */
export function currentWire(held: EncodedEvent, target: EncodedEvent | undefined): Buffer | undefined {
  const body = held.event;
  switch (body.type) {
    case 'message':
      return currentMessageWire(held);
    case 'edited': {
      if (!target) return undefined;
      const state = target.state;
      if (state?.deleted) return encodeFrame({ type: 'deleted', seq: body.seq, room: body.room, target: body.target, from: body.from, ts: body.ts });
      const text = state?.text ?? (target.event as MessageV2Event).text;
      return text === body.text ? held.wire : encodeFrame({ ...body, text });
    }
    case 'react':
      if (!target) return undefined;
      return encodeFrame({ type: 'reactions', seq: body.seq, room: body.room, target: body.target, reactions: target.state?.reactionList() ?? [], ts: body.ts });
    default:
      return held.wire;
  }
}

/**
 * What v1 and classic members see of an event, against the current state of
 * its message: a message (its fair text version), an arrival or a departure,
 * or nothing.
 */
export function fairTextOf(held: EncodedEvent, target: EncodedEvent | undefined): RoomEvent | undefined {
  const body = held.event;
  switch (body.type) {
    case 'joined':
    case 'left':
      return body;
    case 'message': {
      const state = held.state;
      if (state?.deleted) return undefined;
      const from = body.replyToFrom === undefined ? body.from : `${body.from} (to ${body.replyToFrom})`;
      const event: RoomEvent = { type: 'message', seq: body.seq, room: body.room, from, text: state?.text ?? body.text, ts: body.ts };
      if (body.id !== undefined) event.id = body.id;
      return event;
    }
    case 'edited': {
      if (target?.state?.deleted) return undefined;
      const text = target ? (target.state?.text ?? (target.event as MessageV2Event).text) : body.text;
      return { type: 'message', seq: body.seq, room: body.room, from: `${body.from} (edited)`, text, ts: body.ts };
    }
    default:
      return undefined;
  }
}

/** The v1 rendering of a held event for a replay (current state), or undefined when v1 members get nothing. */
export function currentV1Wire(held: EncodedEvent, target: EncodedEvent | undefined): Buffer | undefined {
  const body = held.event;
  if (body.type === 'message' && held.state) {
    const state = held.state;
    if (state.v1 === undefined) {
      const fair = fairTextOf(held, undefined);
      state.v1 = fair === undefined ? null : encodeFrame(fair);
    }
    return state.v1 ?? undefined;
  }
  if (body.type !== 'edited') return held.v1Wire();
  const fair = fairTextOf(held, target);
  return fair === undefined ? undefined : encodeFrame(fair);
}

/** The message a change is about, for the changes that have one. */
export function targetOf(body: HeldBody): number | undefined {
  return body.type === 'edited' || body.type === 'deleted' || body.type === 'react' ? body.target : undefined;
}

/**
 * Applies a change to the state of its message. Deterministic, and the same
 * live and when a log is read back, so a replay gives the acknowledged state.
 * Returns whether anything changed.
 */
export function applyChange(body: HeldBody, target: EncodedEvent, maxReactions: number): boolean {
  const message = target.event as MessageV2Event;
  const state = (target.state ??= new MessageState(message.text));
  if (state.deleted) return false;
  switch (body.type) {
    case 'edited':
      state.text = body.text;
      state.editedTs = body.ts;
      break;
    case 'deleted':
      state.deleted = true;
      state.text = '';
      state.editedTs = undefined;
      state.reactions = undefined;
      break;
    case 'react': {
      const identity = body.byId ?? body.name;
      let people = state.reactions?.get(body.emoji);
      if (body.add) {
        if (people?.has(identity)) return false;
        if (!people) {
          if ((state.reactions?.size ?? 0) >= maxReactions) return false;
          people = new Map();
          (state.reactions ??= new Map()).set(body.emoji, people);
        }
        people.set(identity, body.name);
      } else {
        if (!people?.delete(identity)) return false;
        if (people.size === 0) state.reactions?.delete(body.emoji);
      }
      break;
    }
    default:
      return false;
  }
  state.changed();
  return true;
}

/** Splits a stored record into its public event and its private fields. */
export function readRecord(record: Record<string, unknown>): { body: HeldBody; fields: PrivateFields & { id?: string }; folded: Partial<Pick<MessageV2Event, 'editedTs' | 'deleted'>> & { reactions?: unknown } } {
  const fields: PrivateFields & { id?: string } = {};
  const folded: Record<string, unknown> = {};
  for (const key of PRIVATE_KEYS) {
    // A stored reaction is never sent as it is (members get the `reactions` rendered from it), so it keeps its identity.
    if (key === 'byId' && record.type === 'react') continue;
    if (record[key] !== undefined) {
      (fields as Record<string, unknown>)[key] = record[key];
      delete record[key];
    }
  }
  if (record.type === 'message') {
    if (typeof record.id === 'string') fields.id = record.id;
    for (const key of FOLDED_KEYS) {
      if (record[key] !== undefined) {
        folded[key] = record[key];
        delete record[key];
      }
    }
  } else if (record.id !== undefined) {
    fields.id = record.id as string;
    delete record.id;
  }
  return { body: record as unknown as HeldBody, fields, folded };
}

/**
 * The state a compacted message record carries, read back: its text is the
 * current text, and its reactions are in `reactedBy`.
 */
export function stateFromFolded(text: string, folded: { editedTs?: number; deleted?: boolean }, reactedBy: PrivateFields['reactedBy']): MessageState | undefined {
  if (folded.editedTs === undefined && !folded.deleted && !reactedBy) return undefined;
  const state = new MessageState(text);
  state.editedTs = folded.editedTs;
  state.deleted = folded.deleted === true;
  if (reactedBy) {
    state.reactions = new Map();
    for (const [emoji, people] of Object.entries(reactedBy)) {
      if (Array.isArray(people) && people.length > 0) state.reactions.set(emoji, new Map(people.filter((pair) => Array.isArray(pair) && pair.length === 2)));
    }
  }
  return state;
}

/**
 * A message record rewritten with its state folded in (for compaction): the
 * current text (none once deleted), `editedTs`, `deleted`, and every reaction
 * with who made it. The private fields it had are kept.
 */
export function foldedMessageRecord(record: Record<string, unknown>, state: MessageState): Buffer {
  const folded: Record<string, unknown> = { ...record, text: state.deleted ? '' : state.text };
  delete folded.editedTs;
  delete folded.deleted;
  delete folded.reactions;
  delete folded.reactedBy;
  if (state.deleted) folded.deleted = true;
  else if (state.editedTs !== undefined) folded.editedTs = state.editedTs;
  if (state.reactions && state.reactions.size > 0) {
    folded.reactedBy = Object.fromEntries([...state.reactions].map(([emoji, people]) => [emoji, [...people]]));
  }
  return Buffer.from(JSON.stringify(folded) + '\n', 'utf8');
}

/** An edit record of a deleted message, rewritten without its text (for compaction). */
export function redactedEditRecord(record: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ ...record, text: '', redacted: true }) + '\n', 'utf8');
}

/** The public wire bytes with private fields spliced in before the closing brace: the stored form, serialised once. */
export function withPrivateFields(wire: Buffer, fields: PrivateFields & { id?: string }): Buffer {
  let extra = '';
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) extra += `,${JSON.stringify(key)}:${JSON.stringify(value)}`;
  if (extra.length === 0) return wire;
  // Every encoded frame ends with "}\n".
  return Buffer.concat([wire.subarray(0, wire.length - 2), Buffer.from(extra + '}\n', 'utf8')]);
}

/** Why a member left, with who kicked them, and the stored departure. */
export interface Departure {
  reason: LeaveReason;
  by?: string;
  byId?: string;
  event?: EncodedEvent;
}
