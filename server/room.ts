/**
 * One room: its members, its history, the current state of its messages,
 * and the de-duplication of retried changes.
 *
 * Every event is numbered and stored by the room's store (see RoomStore), and
 * only then applied and delivered to the members (and acknowledged to its
 * sender). The store commits events in seq order, so members see events in
 * that order, and what anyone was shown is always stored.
 *
 * Messages, presence (arrivals and departures) and changes (edits, deletions,
 * reactions, topics, owners) are retained apart, each the newest
 * `retainEvents`, so a crowd coming and going, or a flood of reactions, never
 * pushes messages out of the history or out of the de-duplication window.
 *
 * A member is a v1 or classic connection (one seat per connection, as in v1),
 * or an IdentitySeat: every v2 connection of one identity in this room shares
 * it, so the room hears one `joined` for the first and one `left` for the last.
 */
import { encodeFrame } from '../shared/framing';
import { isBlankText, roomKey } from '../shared/names';
import type { LeaveReason, MessageEvent } from '../shared/protocol';
import { DEFAULT_LIMITS_V2, type ErrorCodeV2, type MessageV2Event, TOPIC_MAX_CHARS } from '../shared/protocolV2';
import { isSingleEmoji, mentions } from '../shared/mentions';
import { nameKey } from '../shared/names';
import type { RoomMeta } from './directory';
import type { Logger } from './log';
import {
  applyChange,
  classOf,
  currentMessageWire,
  currentV1Wire,
  currentWire,
  type Departure,
  EncodedEvent,
  foldedMessageRecord,
  type HeldBody,
  type PrivateFields,
  readRecord,
  type RecordClass,
  redactedEditRecord,
  stateFromFolded,
  targetOf,
  withPrivateFields,
} from './roomEvents';
import { READ_SLICE_MS, RoomLog } from './roomLog';
import { seatKeys } from './seatNames';

export { EncodedEvent } from './roomEvents';

/** Whoever is in a room: a v1 connection, a classic connection, or the seat of a v2 identity. */
export interface RoomMember {
  readonly name: string;
  deliver(event: EncodedEvent): void;
  /** Someone else removed this member (a kick); called once the departure is stored. */
  removed?(departure: Departure): void;
  /** The room's history was reset under it (cluster mode: Redis lost the room, or a failover lost events): show the room again. */
  reset?(room: Room, reason: RoomResetReason): void;
}

/** Why a shared room's history was replaced (see RedisRoomFollower): Redis lost it, a failover lost events, or this server missed trimmed ones. */
export type RoomResetReason = 'epoch' | 'rewound' | 'trimmed';

/**
 * A seat as every server of a cluster names it: a v2 identity's (`i:` its id,
 * a space, its name) or a v1 or classic member's (`g:` and the name), so a
 * member holds one seat whichever servers its connections are on.
 */
export function identitySeatId(identityId: string, name: string): string {
  return `i:${identityId} ${name}`;
}

export function guestSeatId(name: string): string {
  return `g:${name}`;
}

/** The name in a seat id (see identitySeatId). */
export function nameOfSeat(seat: string): string {
  return seat.startsWith('i:') ? seat.slice(seat.indexOf(' ') + 1) : seat.slice(2);
}

/** The seat id of a member (see identitySeatId). */
export function seatIdOf(member: RoomMember): string {
  if (member instanceof IdentitySeat) return identitySeatId(member.identityId, member.name);
  if (member instanceof RemoteMember) return member.seat;
  return guestSeatId(member.name);
}

/** Someone whose connections are on other servers of the cluster only: known here by seat and name. */
export class RemoteMember implements RoomMember {
  constructor(
    readonly seat: string,
    readonly name: string,
  ) {}

  /** The identity behind a v2 seat; undefined for a v1 or classic member. */
  get identityId(): string | undefined {
    return this.seat.startsWith('i:') ? this.seat.slice(2, this.seat.indexOf(' ')) : undefined;
  }

  deliver(): void {}
}

/** A v2 connection holding an identity's seat. */
export interface SeatHolder {
  /** A room event's v2 bytes, or a typing signal. */
  deliverToSeat(bytes: Buffer): void;
  /** The seat was removed by someone else (a kick). */
  removedFrom(room: Room, departure: Departure): void;
  /** The room's history was reset (cluster mode): show it again. */
  roomReset(room: Room, reason: RoomResetReason): void;
}

/** An identity's one seat in a room, shared by all of its v2 connections there. */
export class IdentitySeat implements RoomMember {
  /** Its connections in this room: one, usually, so a short array rather than a set. */
  readonly holders: SeatHolder[] = [];

  constructor(
    readonly room: Room,
    readonly identityId: string,
    readonly name: string,
  ) {}

  deliver(event: EncodedEvent): void {
    const bytes = event.wire;
    if (bytes.length === 0) return;
    for (const holder of this.holders) holder.deliverToSeat(bytes);
  }

  removed(departure: Departure): void {
    for (const holder of this.holders.splice(0)) holder.removedFrom(this.room, departure);
  }

  reset(room: Room, reason: RoomResetReason): void {
    for (const holder of this.holders) holder.roomReset(room, reason);
  }
}

/**
 * Where a room's events are kept: the seam between the room and its storage.
 * The store gives each event its seq and time, stores it with its private
 * fields (the de-duplication key among them), and resolves once it is
 * durable, in seq order. A Redis-backed store (server/cluster/) can stand in
 * for the file log: its publish script assigns seq and time and keeps the
 * de-duplication key, and its follower delivers committed events in order.
 */
export interface RoomStore {
  append(body: HeldBody, fields: PrivateFields & { id?: string }, recordClass: RecordClass): Promise<EncodedEvent>;
  /** Whether events are on their way to storage. */
  readonly isBusy: boolean;
  /**
   * Called for each record a compaction keeps; returns its rewritten bytes
   * (a deleted message without its text, a changed message with its state
   * folded in), or undefined to keep it as it is.
   */
  rewriteRecord: ((seq: number, bytes: Buffer) => Buffer | undefined) | undefined;
  /** A message was deleted: its text must leave the disk at the next compaction, at the latest when the room closes. */
  noteRedactionDue(): void;
  close(): Promise<void>;
}

/** What a shared store's publish came to: the event's seq, and whether one was stored before under its key. */
export interface Published {
  seq: number;
  duplicate: boolean;
}

/**
 * A room's store when several servers share the room (cluster mode; see
 * server/cluster/redisRoomStore.ts). It numbers and keeps every event, and
 * commits each into the room itself (`Room.receive`), this server's own and
 * the others', in seq order: a publish resolves once its event is committed
 * here. Presence goes through it too, so a member holds one seat whichever
 * servers its connections are on, and each arrival or departure is stored in
 * the same step as the seat change that makes it.
 */
export interface SharedRoomStore {
  readonly isBusy: boolean;
  /** Tells the room's history apart from one Redis lost (see RedisRoomLog). */
  readonly epoch: string;
  /** Stores an event (a retry of one stored under `dedupKey` is not stored again); resolves once it is committed here. */
  publish(body: HeldBody, fields: PrivateFields & { id?: string }, recordClass: RecordClass, dedupKey: string | undefined, deletes: number | undefined): Promise<Published>;
  /** A seat was taken on this server; `joined` is stored when it is the member's first anywhere. `secret` (v1): the digest another server checks on a resume. */
  enter(seat: string, joined: HeldBody, secret?: string): Promise<void>;
  /** A seat was left on this server; `left` (when given) is stored when it was the member's last anywhere. Resolves with whether it was. */
  leave(seat: string, left: HeldBody | undefined): Promise<boolean>;
  /** Passes a typing signal to the other servers (never stored). */
  signal(name: string): void;
  close(): Promise<void>;
}

function isShared(store: RoomStore | SharedRoomStore): store is SharedRoomStore {
  return 'publish' in store;
}

/** The store of a room on one server: its file log (or an in-memory one for `--memory`). */
export class LocalRoomStore implements RoomStore {
  constructor(
    private readonly log: RoomLog,
    private nextSeq: number,
    private readonly now: () => number,
  ) {}

  get isBusy(): boolean {
    return this.log.isBusy;
  }

  get rewriteRecord(): ((seq: number, bytes: Buffer) => Buffer | undefined) | undefined {
    return this.log.rewriteRecord;
  }

  set rewriteRecord(rewrite: ((seq: number, bytes: Buffer) => Buffer | undefined) | undefined) {
    this.log.rewriteRecord = rewrite;
  }

  noteRedactionDue(): void {
    this.log.noteRedactionDue();
  }

  async append(body: HeldBody, fields: PrivateFields & { id?: string }, recordClass: RecordClass): Promise<EncodedEvent> {
    body.seq = this.nextSeq++;
    body.ts = this.now();
    const held = new EncodedEvent(body);
    // Serialised once: the stored record is the wire bytes with the private fields spliced in.
    const stored = withPrivateFields(held.wire.length > 0 ? held.wire : encodeFrame(body as unknown as MessageEvent), fields);
    await this.log.append(stored, recordClass, body.seq);
    return held;
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

export interface SayResult {
  ok: boolean;
  seq: number;
  duplicate: boolean;
}

/** What a change (edit, delete, reaction, topic, owner, kick) came to: stored (or found stored before), or refused. */
export type ChangeOutcome = { ok: true; seq: number | undefined; duplicate: boolean } | Refusal;

/** Who asks for a change: a v2 identity. */
export interface Actor {
  identityId: string;
  name: string;
}

interface StoredChange {
  seq: number;
  /** Present while the event is being stored; resolves with its seq once stored, undefined when it could not be. */
  committed?: Promise<number | undefined>;
}

export interface RoomLimits {
  maxReactionsPerMessage: number;
}

const NO_OWNER_META = (name: string): RoomMeta => ({ room: roomKey(name), name, kind: 'room', topic: '' });

export class Room {
  /** Each member with the seat keys its name holds (one or two). */
  private readonly members = new Map<RoomMember, readonly string[]>();
  /** Seat key → the member holding it; names that look alike share a key. */
  private readonly seats = new Map<string, RoomMember>();
  /** Identity id → its seat; made when the first v2 member arrives. */
  private identitySeats: Map<string, IdentitySeat> | undefined;
  /** Committed events, oldest first: at least the newest `retainEvents` of each class. */
  private history: EncodedEvent[] = [];
  private readonly held: Record<RecordClass, number> = { message: 0, presence: 0, change: 0 };
  /** (clientId, id) → the event stored under it. */
  private readonly byClientKey = new Map<string, StoredChange>();
  private readonly store: RoomStore | SharedRoomStore;
  /** Set when the room is shared by a cluster: its store, and everyone seated on any server (seat id → name, and seat key → seat id). */
  private readonly shared: SharedRoomStore | undefined;
  private everyone: Map<string, string> | undefined;
  private everyoneByKey: Map<string, string> | undefined;
  private committedSeq: number;
  private eventsBeingStored = 0;
  private readonly maxReactions: number;
  /** A message was deleted since the store last compacted (or since the log was read back). */
  private redactionDue = false;
  /** Kind, topic, owner and DM participants, kept in the directory; set by whoever loads the room. */
  meta: RoomMeta;
  /**
   * The directory has no entry for the room yet: the first member to take a
   * seat makes it (`unclaimed`: the room is new, so a v2 first member owns it;
   * `unowned`: it has history from before, so nobody does).
   */
  metaPending: 'unclaimed' | 'unowned' | undefined;
  /** The log held nothing when the room was loaded. */
  readonly wasEmpty: boolean;
  /** The newest topic and owner events read from the log, for bringing the directory up to date after a crash. */
  logTopic: { topic: string; seq: number } | undefined;
  logOwner: { ownerId: string | undefined; seq: number } | undefined;
  /** Called when the last member has left (the server may then unload the room). */
  onEmptied: (() => void) | undefined;
  /** Called when a member takes its seat keys or gives them up (the server indexes the seats of v1 and classic members across rooms). */
  onSeatsChanged: ((member: RoomMember, keys: readonly string[], seated: boolean) => void) | undefined;

  /**
   * `storedRecords` are the room's retained records, oldest first. A shared
   * store (cluster mode) also gives `sharedFrom`: the seq they reach, and who
   * is seated on any server (seat id → name).
   */
  constructor(
    readonly name: string,
    storage: RoomLog | RoomStore | SharedRoomStore,
    /** The stored records, oldest first, as read back (parsed) or as their text. */
    storedRecords: ReadonlyArray<string | Record<string, unknown>>,
    private readonly retainEvents: number,
    private readonly logger: Logger,
    now: () => number = Date.now,
    limits: RoomLimits = DEFAULT_LIMITS_V2,
    sharedFrom?: { seq: number; members: Iterable<[string, string]> },
  ) {
    this.maxReactions = limits.maxReactionsPerMessage;
    this.meta = NO_OWNER_META(name);
    this.wasEmpty = storedRecords.length === 0;
    for (const record of storedRecords) this.load(typeof record === 'string' ? (JSON.parse(record) as Record<string, unknown>) : record);
    this.forgetBeyondRetention();
    this.committedSeq = this.history.length > 0 ? this.history[this.history.length - 1].seq : 0;
    if (storage instanceof RoomLog) {
      this.store = new LocalRoomStore(storage, this.committedSeq + 1, now);
    } else {
      this.store = storage;
    }
    if (isShared(this.store)) {
      this.shared = this.store;
      this.committedSeq = Math.max(this.committedSeq, sharedFrom?.seq ?? 0);
      this.seatEveryone(sharedFrom?.members ?? []);
    } else {
      this.store.rewriteRecord = (seq, bytes) => this.compactedRecord(seq, bytes);
      this.noteRedaction();
    }
  }

  /** Tells the store that a deleted message's text waits to leave the disk (a shared store takes it out at the deletion). */
  private noteRedaction(): void {
    if (!this.redactionDue || isShared(this.store)) return;
    this.redactionDue = false;
    this.store.noteRedactionDue();
  }

  /** The epoch of a shared room's history (cluster mode): a client that holds another one must be shown the room afresh. */
  get epoch(): string | undefined {
    return this.shared?.epoch;
  }

  /** Everyone seated on any server, from scratch (a shared room being loaded or reset). */
  private seatEveryone(members: Iterable<[string, string]>): void {
    this.everyone = new Map();
    this.everyoneByKey = new Map();
    for (const [seat, name] of members) this.addToEveryone(seat, name);
  }

  private addToEveryone(seat: string, name: string): void {
    if (!this.everyone || !this.everyoneByKey) return;
    this.everyone.set(seat, name);
    for (const key of seatKeys(name)) this.everyoneByKey.set(key, seat);
  }

  private removeFromEveryone(seat: string): void {
    const name = this.everyone?.get(seat);
    if (name === undefined || !this.everyone || !this.everyoneByKey) return;
    this.everyone.delete(seat);
    for (const key of seatKeys(name)) if (this.everyoneByKey.get(key) === seat) this.everyoneByKey.delete(key);
  }

  /** The member seated here under a seat id, if any. */
  private localMemberAt(seat: string): RoomMember | undefined {
    if (seat.startsWith('i:')) return this.identitySeats?.get(seat.slice(2, seat.indexOf(' ')));
    const name = nameOfSeat(seat);
    for (const member of this.members.keys()) if (!(member instanceof IdentitySeat) && member.name === name) return member;
    return undefined;
  }

  /** A stored or committed record as an event to hold: its message state built, its de-duplication key remembered. */
  private holdRecord(record: Record<string, unknown>): { held: EncodedEvent; body: ReturnType<typeof readRecord>['body']; fields: ReturnType<typeof readRecord>['fields'] } {
    const { body, fields, folded } = readRecord(record);
    const held = new EncodedEvent(body);
    if (body.type === 'message') {
      held.authorId = fields.authorId;
      held.state = stateFromFolded(body.text, folded, fields.reactedBy);
    }
    if (fields.clientId !== undefined && fields.id !== undefined) {
      held.dedupKey = clientKey(fields.clientId, fields.id);
      this.byClientKey.set(held.dedupKey, { seq: body.seq });
    }
    return { held, body, fields };
  }

  /** Reads one stored record back: held, applied, and its de-duplication key remembered. */
  private load(record: Record<string, unknown>): void {
    const { held, fields } = this.holdRecord(record);
    this.apply(held, fields);
    this.hold(held);
  }

  get latestSeq(): number {
    return this.committedSeq;
  }

  get firstSeq(): number {
    return this.history.length > 0 ? this.history[0].seq : this.committedSeq + 1;
  }

  /** Members in the room: on any server, for a shared room. */
  get memberCount(): number {
    return this.everyone?.size ?? this.members.size;
  }

  /** Whether a seat is held on any server (cluster mode) or here. */
  hasSeat(seat: string): boolean {
    return this.everyone?.has(seat) ?? false;
  }

  get isDm(): boolean {
    return this.meta.kind === 'dm';
  }

  /** Whether the room has no members and nothing on its way to storage: it may be unloaded. */
  get isIdle(): boolean {
    return this.members.size === 0 && this.eventsBeingStored === 0 && !this.store.isBusy;
  }

  /** Up to `limit` member names, `first` (when given) leading. */
  memberNames(limit: number, first?: string): string[] {
    const names = first === undefined ? [] : [first];
    for (const name of this.allNames()) {
      if (names.length >= limit) break;
      if (name !== first) names.push(name);
    }
    return names;
  }

  private *allNames(): Iterable<string> {
    if (this.everyone) yield* this.everyone.values();
    else for (const member of this.members.keys()) yield member.name;
  }

  /**
   * A page of member names in the order of their keys, after the name
   * `after`: at most `limit` names in at most `maxBytes` (as JSON strings).
   */
  memberPage(after: string | undefined, limit: number, maxBytes: number): { names: string[]; next?: string } {
    const sorted = [...this.allNames()].map((name) => ({ name, key: nameKey(name) })).sort((a, b) => compareKeys(a.key, b.key) || compareKeys(a.name, b.name));
    let start = 0;
    if (after !== undefined) {
      const afterKey = nameKey(after);
      start = sorted.findIndex(({ name, key }) => compareKeys(key, afterKey) > 0 || (key === afterKey && compareKeys(name, after) > 0));
      if (start === -1) return { names: [] };
    }
    const names: string[] = [];
    let bytes = 0;
    let index = start;
    for (; index < sorted.length && names.length < limit; index++) {
      const size = Buffer.byteLength(JSON.stringify(sorted[index].name), 'utf8') + 1;
      if (bytes + size > maxBytes) break;
      bytes += size;
      names.push(sorted[index].name);
    }
    return index < sorted.length && names.length > 0 ? { names, next: names[names.length - 1] } : { names };
  }

  /** Whoever holds the seat that `name` would take: the same name, or one that looks like it. */
  memberNamed(name: string): RoomMember | undefined {
    const keys = seatKeys(name);
    for (const key of keys) {
      const holder = this.seats.get(key);
      if (holder) return holder;
    }
    if (!this.everyoneByKey || !this.everyone) return undefined;
    for (const key of keys) {
      const seat = this.everyoneByKey.get(key);
      if (seat !== undefined) return this.localMemberAt(seat) ?? new RemoteMember(seat, this.everyone.get(seat) ?? nameOfSeat(seat));
    }
    return undefined;
  }

  seatOf(identityId: string): IdentitySeat | undefined {
    return this.identitySeats?.get(identityId);
  }

  /** A message the room still holds, by its seq. */
  messageAt(seq: number): EncodedEvent | undefined {
    const held = this.heldAt(seq);
    return held?.event.type === 'message' ? held : undefined;
  }

  private heldAt(seq: number): EncodedEvent | undefined {
    const index = this.indexAfter(seq - 1);
    const held = this.history[index];
    return held && held.seq === seq ? held : undefined;
  }

  /** The index of the first held event with a seq above `seq`. */
  private indexAfter(seq: number): number {
    // Seqs rise but may skip (a refused event uses one up, and older presence is forgotten first), so search.
    let low = 0;
    let high = this.history.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.history[middle].seq <= seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * The events `replay` would give, read one at a time as a replay is
   * written: nothing is copied (a returning client may be owed thousands of
   * events), events forgotten meanwhile are skipped, and it ends at the
   * event committed last when it was made (later ones are delivered live).
   */
  replayCursor(afterSeq: number | undefined, count: number): () => EncodedEvent | undefined {
    const endSeq = this.committedSeq;
    let seq = afterSeq ?? (count > 0 && this.history.length > 0 ? this.history[Math.max(0, this.history.length - count)].seq - 1 : endSeq);
    return () => {
      if (seq >= endSeq) return undefined;
      const held = this.history[this.indexAfter(seq)];
      if (!held || held.seq > endSeq) return undefined;
      seq = held.seq;
      return held;
    };
  }

  /** Committed events after `afterSeq`, or the newest `count` when no position is given. */
  replay(afterSeq: number | undefined, count: number): EncodedEvent[] {
    if (afterSeq === undefined) return count > 0 ? this.history.slice(-count) : [];
    return this.history.slice(this.indexAfter(afterSeq));
  }

  /** A held event as v2 shows it now (a message in its current state, a change against its message's). */
  v2Rendering(held: EncodedEvent): Buffer | undefined {
    const target = targetOf(held.event);
    return currentWire(held, target === undefined ? undefined : this.messageAt(target));
  }

  /** A held event as v1 and classic members see it now, if at all. */
  v1Rendering(held: EncodedEvent): Buffer | undefined {
    const target = targetOf(held.event);
    return currentV1Wire(held, target === undefined ? undefined : this.messageAt(target));
  }

  /**
   * Up to `limit` events before `before`, oldest first, as v2 shows them now,
   * in at most `maxBytes` (newer events are kept first when it runs out).
   */
  historyBefore(before: number, limit: number, maxBytes: number): { events: Buffer[]; more: boolean } {
    const events: Buffer[] = [];
    let bytes = 0;
    let index = this.indexAfter(before - 1) - 1;
    for (; index >= 0 && events.length < limit; index--) {
      const rendered = this.v2Rendering(this.history[index]);
      // An event that could never fit a page is left out, so paging never stalls on it.
      if (!rendered || rendered.length > maxBytes) continue;
      if (bytes + rendered.length > maxBytes) break;
      bytes += rendered.length;
      events.push(rendered);
    }
    return { events: events.reverse(), more: index >= 0 };
  }

  /**
   * Messages whose current text contains `text` (case-insensitively), newest
   * first, before `before`. Scans at most `maxScan` held events; when it
   * stops early (or has `maxHits` hits), `next` is where to go on. A scan
   * gives the event loop back every READ_SLICE_MS and then finds its place
   * again by seq (events may have been added or forgotten meanwhile).
   */
  async search(text: string, before: number | undefined, maxScan: number, maxHits: number, maxBytes: number): Promise<{ hits: Buffer[]; next?: number }> {
    const needle = text.toLowerCase();
    const hits: Buffer[] = [];
    let bytes = 0;
    let below = before ?? Infinity;
    let index = this.indexAfter(below - 1) - 1;
    let sliceStartedAt = performance.now();
    for (let scanned = 0; index >= 0; index--, scanned++) {
      if (performance.now() - sliceStartedAt >= READ_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStartedAt = performance.now();
        index = this.indexAfter(below - 1) - 1;
        if (index < 0) break;
      }
      const held = this.history[index];
      if (scanned >= maxScan || hits.length >= maxHits) return { hits, next: held.seq + 1 };
      below = held.seq;
      if (held.event.type !== 'message' || held.state?.deleted) continue;
      const current = held.state?.text ?? held.event.text;
      if (!current.toLowerCase().includes(needle)) continue;
      const rendered = currentMessageWire(held);
      if (rendered.length > maxBytes) continue;
      if (bytes + rendered.length > maxBytes) return { hits, next: held.seq + 1 };
      bytes += rendered.length;
      hits.push(rendered);
    }
    return { hits };
  }

  /**
   * Messages after `afterSeq` that are not the identity's own and not
   * deleted, and how many of them mention `name`; a long count gives the
   * event loop back as a search does.
   */
  async unreadAfter(afterSeq: number, identityId: string, name: string): Promise<{ unread: number; mentions: number }> {
    let unread = 0;
    let mentioned = 0;
    let after = afterSeq;
    let sliceStartedAt = performance.now();
    for (let index = this.indexAfter(after); index < this.history.length; index++) {
      if (performance.now() - sliceStartedAt >= READ_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStartedAt = performance.now();
        index = this.indexAfter(after);
        if (index >= this.history.length) break;
      }
      const held = this.history[index];
      after = held.seq;
      if (held.event.type !== 'message' || held.authorId === identityId || held.state?.deleted) continue;
      unread += 1;
      if (mentions(held.state?.text ?? held.event.text, name)) mentioned += 1;
    }
    return { unread, mentions: mentioned };
  }

  /**
   * Adds a member (the caller has checked the name) and announces it. In a
   * shared room the announcement is the cluster's: stored only when this is
   * the member's first seat on any server. Rejects (with the member taken
   * out again) when the shared store cannot be reached; `secret` is a v1
   * seat secret's digest, so another server can let the member resume.
   */
  join(member: RoomMember, secret?: string): Promise<void> {
    this.seat(member);
    const joined: HeldBody = { type: 'joined', seq: 0, room: this.name, name: member.name, ts: 0 };
    if (!this.shared) {
      void this.record(joined, {});
      return Promise.resolve();
    }
    const seat = seatIdOf(member);
    const wasSeated = this.everyone?.has(seat) ?? false;
    this.addToEveryone(seat, member.name);
    return this.shared.enter(seat, joined, secret).catch((error: unknown) => {
      if (this.members.has(member)) this.unseat(member);
      if (!wasSeated && !this.localMemberAt(seat)) this.removeFromEveryone(seat);
      if (this.members.size === 0) this.onEmptied?.();
      throw error;
    });
  }

  /**
   * Seats a v2 connection of an identity: the first of them takes the
   * identity's seat and is announced; the others share it quietly.
   */
  joinIdentity(holder: SeatHolder, identityId: string, name: string): { seat: IdentitySeat; seated: Promise<void> } {
    let seat = this.identitySeats?.get(identityId);
    let seated = Promise.resolve();
    if (!seat) {
      seat = new IdentitySeat(this, identityId, name);
      (this.identitySeats ??= new Map()).set(identityId, seat);
      seat.holders.push(holder);
      seated = this.join(seat);
    } else if (!seat.holders.includes(holder)) {
      seat.holders.push(holder);
    }
    return { seat, seated };
  }

  /** A v2 connection leaves; the identity's seat goes (announced) when it was the last one there. */
  leaveIdentity(holder: SeatHolder, identityId: string, reason: LeaveReason): Promise<boolean> {
    const seat = this.identitySeats?.get(identityId);
    const index = seat ? seat.holders.indexOf(holder) : -1;
    if (!seat || index === -1) return Promise.resolve(false);
    seat.holders.splice(index, 1);
    if (seat.holders.length > 0) return Promise.resolve(false);
    this.identitySeats?.delete(identityId);
    return this.leave(seat, reason);
  }

  /** Swaps the connection behind a member without an announcement (a client resuming after a drop). */
  replaceMember(previous: RoomMember, next: RoomMember): void {
    if (!this.members.has(previous)) return;
    this.unseat(previous);
    this.seat(next);
  }

  async leave(member: RoomMember, reason: LeaveReason): Promise<boolean> {
    if (!this.members.has(member)) return false;
    this.unseat(member);
    const left: HeldBody = { type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 };
    const stored = this.shared ? this.leaveShared(member, left) : this.record(left, {});
    if (this.members.size === 0) this.onEmptied?.();
    return (await stored) !== undefined;
  }

  /** A shared room's departure: the cluster stores `left` when this was the member's last seat anywhere. */
  private async leaveShared(member: RoomMember, left: HeldBody): Promise<Published | undefined> {
    this.eventsBeingStored += 1;
    try {
      return (await (this.shared as SharedRoomStore).leave(seatIdOf(member), left)) ? { seq: this.committedSeq, duplicate: false } : undefined;
    } catch (error) {
      // The cluster writes the departure once the store is back (ClusterPresence resyncs).
      this.logger.warn(`room ${this.name}: the departure of ${member.name} waits for the store: ${String(error)}`);
      return undefined;
    } finally {
      this.eventsBeingStored -= 1;
    }
  }

  private seat(member: RoomMember): void {
    const keys = seatKeys(member.name);
    this.members.set(member, keys);
    for (const key of keys) this.seats.set(key, member);
    this.onSeatsChanged?.(member, keys, true);
  }

  private unseat(member: RoomMember): void {
    const keys = this.members.get(member);
    if (keys === undefined) return;
    for (const key of keys) {
      if (this.seats.get(key) === member) this.seats.delete(key);
    }
    this.members.delete(member);
    this.onSeatsChanged?.(member, keys, false);
    if (member instanceof IdentitySeat && this.identitySeats?.get(member.identityId) === member) this.identitySeats.delete(member.identityId);
  }

  /**
   * Announces every member's departure (server shutdown). Members stay in the
   * room until all the announcements are stored, so each hears the others go.
   */
  async departAll(reason: LeaveReason): Promise<void> {
    const leaving = [...this.members.keys()];
    const departure = (member: RoomMember): HeldBody => ({ type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 });
    // In a shared room a member whose connections are also on other servers has not left.
    await Promise.all(leaving.map((member) => (this.shared ? this.leaveShared(member, departure(member)) : this.record(departure(member), {}))));
    for (const [member, keys] of this.members) this.onSeatsChanged?.(member, keys, false);
    this.members.clear();
    this.seats.clear();
    this.identitySeats?.clear();
  }

  /** Passes a typing signal to the room's other v2 members (never stored). */
  typing(from: IdentitySeat): void {
    this.shared?.signal(from.name);
    this.typingFrom(from.name);
  }

  /** A typing signal from `name` (here, or from another server of the cluster) for the v2 members here. */
  typingFrom(name: string): void {
    if (!this.identitySeats || this.identitySeats.size === 0) return;
    const bytes = encodeFrame({ type: 'typing', room: this.name, name });
    for (const seat of this.identitySeats.values()) if (seat.name !== name) for (const holder of seat.holders) holder.deliverToSeat(bytes);
  }

  /**
   * The earlier outcome of a change named by (clientId, id), once it is
   * stored; undefined when no such change is held. Asked before a change is
   * checked, so a retry is answered as the first try was, whatever has
   * happened to its message since.
   */
  duplicateOf(named: { clientId: string; id: string }): Promise<ChangeOutcome> | undefined {
    const earlier = this.byClientKey.get(clientKey(named.clientId, named.id));
    if (!earlier) return undefined;
    return (async (): Promise<ChangeOutcome> => {
      const seq = earlier.committed ? await earlier.committed : earlier.seq;
      return seq !== undefined ? { ok: true, seq, duplicate: true } : { ok: false, code: 'storage_failed', message: STORAGE_FAILED };
    })();
  }

  /**
   * Stores and delivers a message. A message that names itself (the sender's
   * client id and its message id) and was stored before is not stored again:
   * the retry resolves with the seq of the first, once that is on disk.
   * Classic members' messages have no such name and are never de-duplicated.
   */
  async say(member: RoomMember, text: string, named?: { clientId: string; id: string }, extra?: { authorId?: string; replyTo?: EncodedEvent }): Promise<SayResult> {
    const event: MessageV2Event = { type: 'message', seq: 0, room: this.name, from: member.name, text, ts: 0 };
    if (named) event.id = named.id;
    if (extra?.replyTo) {
      event.replyTo = extra.replyTo.seq;
      event.replyToFrom = (extra.replyTo.event as MessageV2Event).from;
    }
    const fields: PrivateFields = {};
    if (named) fields.clientId = named.clientId;
    if (extra?.authorId !== undefined) fields.authorId = extra.authorId;
    return this.publish(event, fields, named);
  }

  /** A reply must name a message the room still holds and that is not deleted. */
  replyTarget(seq: number): EncodedEvent | undefined {
    const target = this.messageAt(seq);
    return target?.state?.deleted ? undefined : target;
  }

  /** Edits a message; only its author's identity may. */
  edit(actor: Actor, target: number, text: string, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    return this.change(named, () => {
      const message = this.ownMessage(actor, target, 'edit');
      if (!message.ok) return message;
      const body = message.held.event as MessageV2Event;
      return { body: { type: 'edited', seq: 0, room: this.name, target, from: body.from, text, ts: 0 }, fields: {} };
    });
  }

  /** Deletes a message; only its author's identity may. */
  remove(actor: Actor, target: number, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    return this.change(named, () => {
      const message = this.ownMessage(actor, target, 'delete');
      if (!message.ok) return message;
      const body = message.held.event as MessageV2Event;
      return { body: { type: 'deleted', seq: 0, room: this.name, target, from: body.from, ts: 0 }, fields: {} };
    });
  }

  /**
   * Adds or takes back a reaction. One emoji grapheme, at most
   * `maxReactionsPerMessage` distinct ones; adding one you have (or taking
   * back one you have not) stores nothing and is answered without a seq.
   */
  react(actor: Actor, target: number, emoji: string, add: boolean, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    return this.change(named, () => {
      if (!isSingleEmoji(emoji)) return refused('bad_reaction', 'A reaction is exactly one emoji.');
      const message = this.replyTarget(target);
      if (!message) return refused('not_found', `There is no message ${target} in ${this.name}.`);
      const people = message.state?.reactions?.get(emoji);
      if (add ? people?.has(actor.identityId) : !people?.has(actor.identityId)) return 'unchanged';
      if (add && !people && (message.state?.reactions?.size ?? 0) >= this.maxReactions) {
        return refused('bad_reaction', `A message takes at most ${this.maxReactions} different emoji.`);
      }
      return { body: { type: 'react', seq: 0, room: this.name, target, emoji, add, name: actor.name, ts: 0, byId: actor.identityId }, fields: {} };
    });
  }

  /** Sets the topic; only the owner may. */
  setTopic(actor: Actor, topic: string, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    return this.change(named, () => {
      const notOwner = this.ownerOnly(actor, 'set the topic');
      if (notOwner) return notOwner;
      if ([...topic].length > TOPIC_MAX_CHARS) return refused('too_long', `A topic may be at most ${TOPIC_MAX_CHARS} characters.`);
      if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(topic)) return refused('bad_frame', 'A topic is one line without control characters.');
      if (topic.length > 0 && isBlankText(topic)) return refused('bad_frame', 'A topic must not be only invisible characters.');
      return { body: { type: 'topic', seq: 0, room: this.name, topic, by: actor.name, ts: 0 }, fields: { byId: actor.identityId } };
    });
  }

  /** Hands the room to another identity; only the owner may. */
  setOwner(actor: Actor, next: Actor, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    return this.change(named, () => {
      const notOwner = this.ownerOnly(actor, 'hand the room on');
      if (notOwner) return notOwner;
      return { body: { type: 'owner', seq: 0, room: this.name, owner: next.name, by: actor.name, ts: 0 }, fields: { byId: actor.identityId, ownerId: next.identityId } };
    });
  }

  /** Removes a member (their departure is announced with reason `kicked`); only the owner may, and not themselves. */
  kick(actor: Actor, name: string, named: { clientId: string; id: string }): Promise<ChangeOutcome> {
    let target: RoomMember | undefined;
    return this.change(
      named,
      () => {
        const notOwner = this.ownerOnly(actor, 'kick');
        if (notOwner) return notOwner;
        target = this.memberNamed(name);
        if (!target) return refused('not_found', `Nobody called "${name}" is in ${this.name}.`);
        const targetId = target instanceof IdentitySeat || target instanceof RemoteMember ? target.identityId : undefined;
        if (targetId === actor.identityId) return refused('forbidden', 'You cannot kick yourself; part instead.');
        const fields: PrivateFields = { byId: actor.identityId };
        // In a shared room the server holding the seat takes the member out when the departure reaches it.
        if (this.shared) fields.seat = seatIdOf(target);
        return { body: { type: 'left', seq: 0, room: this.name, name: target.name, reason: 'kicked', by: actor.name, ts: 0 }, fields };
      },
      () => (this.shared ? undefined : target),
    );
  }

  private ownMessage(actor: Actor, target: number, verb: string): { ok: true; held: EncodedEvent } | Refusal {
    const held = this.messageAt(target);
    if (!held || held.state?.deleted) return refused('not_found', `There is no message ${target} in ${this.name}.`);
    if (held.authorId !== actor.identityId) return refused('forbidden', `Only the author of a message may ${verb} it.`);
    return { ok: true, held };
  }

  private ownerOnly(actor: Actor, verb: string): Refusal | undefined {
    if (this.meta.kind === 'dm') return refused('forbidden', `A direct-message conversation has no owner; nobody may ${verb} there.`);
    if (this.meta.ownerId !== actor.identityId) return refused('forbidden', `Only the owner of ${this.name} may ${verb}.`);
    return undefined;
  }

  /**
   * The common shape of a change: a retry is answered as the first try was;
   * otherwise the change is checked, then stored and delivered (with
   * `removing`, the member it removes is taken out once it is stored).
   */
  private async change(
    named: { clientId: string; id: string },
    check: () => { body: HeldBody; fields: PrivateFields } | Refusal | 'unchanged',
    removing?: () => RoomMember | undefined,
  ): Promise<ChangeOutcome> {
    const earlier = this.duplicateOf(named);
    if (earlier) return earlier;
    const checked = check();
    if (checked === 'unchanged') return { ok: true, seq: undefined, duplicate: false };
    if ('ok' in checked) return checked;
    const outcome = await this.publish(checked.body, checked.fields, named, removing?.());
    return outcome.ok ? { ok: true, seq: outcome.seq, duplicate: outcome.duplicate } : { ok: false, code: 'storage_failed', message: STORAGE_FAILED };
  }

  /** Stores an event under its (clientId, id), unless one is stored under it already. */
  private async publish(body: HeldBody, fields: PrivateFields & { id?: string }, named: { clientId: string; id: string } | undefined, removing?: RoomMember): Promise<SayResult> {
    if (named === undefined) {
      const recorded = await this.record(body, fields, removing);
      return { ok: recorded !== undefined, seq: recorded?.seq ?? body.seq, duplicate: false };
    }
    const key = clientKey(named.clientId, named.id);
    const earlier = this.byClientKey.get(key);
    if (earlier) {
      const seq = earlier.committed ? await earlier.committed : earlier.seq;
      return { ok: seq !== undefined, seq: seq ?? earlier.seq, duplicate: true };
    }
    fields.clientId = named.clientId;
    // A message's id is public (its sender matches the ack by it); other events keep theirs private.
    if (body.type !== 'message') fields.id = named.id;
    const stored: StoredChange = { seq: 0 };
    this.byClientKey.set(key, stored);
    const recording = this.record(body, fields, removing, key);
    // The file log numbers the event at once; a shared store once it is committed.
    stored.seq = body.seq;
    stored.committed = recording.then((recorded) => recorded?.seq);
    const recorded = await recording;
    // A shared room may have put the committed event's own entry here meanwhile.
    if (this.byClientKey.get(key) === stored) {
      delete stored.committed;
      if (recorded) stored.seq = recorded.seq;
      // An event that could not be stored may be sent again later.
      else this.byClientKey.delete(key);
    }
    return recorded ? { ok: true, seq: recorded.seq, duplicate: recorded.duplicate } : { ok: false, seq: body.seq, duplicate: false };
  }

  /**
   * Stores the event (the store gives it its seq and time), then applies and
   * delivers it (a shared store commits it through `receive`). Resolves once
   * it is stored and committed, with its seq; or with the seq of the event a
   * shared store found stored under the same key before.
   */
  private async record(body: HeldBody, fields: PrivateFields, removing?: RoomMember, dedupKey?: string): Promise<Published | undefined> {
    this.eventsBeingStored += 1;
    const store = this.store;
    try {
      if (isShared(store)) {
        const deletes = body.type === 'deleted' ? body.target : undefined;
        return await store.publish(body, fields, classOf(body.type), dedupKey, deletes);
      }
      const held = await store.append(body, fields, classOf(body.type));
      held.authorId = fields.authorId;
      held.dedupKey = dedupKey;
      this.commit(held, fields, removing);
      return { seq: held.seq, duplicate: false };
    } catch (error) {
      this.logger.error(`room ${this.name}: could not store a ${body.type} event: ${String(error)}`);
      return undefined;
    } finally {
      this.eventsBeingStored -= 1;
    }
  }

  /**
   * An event a shared store committed (cluster mode), this server's own or
   * another's, in seq order: held, applied and delivered, as a stored event is.
   */
  receive(record: Record<string, unknown>): EncodedEvent {
    const { held, body, fields } = this.holdRecord(record);
    let removing: RoomMember | undefined;
    if (fields.seat !== undefined) {
      if (body.type === 'joined') this.addToEveryone(fields.seat, body.name);
      if (body.type === 'left') {
        this.removeFromEveryone(fields.seat);
        if (body.reason === 'kicked') removing = this.localMemberAt(fields.seat);
      }
    }
    this.commit(held, fields, removing);
    if (removing && fields.seat !== undefined) {
      // Kicked from another server, or from here: this server gives up its seat, quietly (the departure is stored already).
      this.shared?.leave(fields.seat, undefined).catch((error: unknown) => this.logger.warn(`room ${this.name}: could not give up the seat of ${removing.name}: ${String(error)}`));
    }
    return held;
  }

  /**
   * Replaces a shared room's history (cluster mode): Redis lost the room, a
   * failover lost events, or events this server missed were trimmed. The
   * members stay; each is shown the room again.
   */
  resetTo(storedRecords: readonly Record<string, unknown>[], seq: number, members: Iterable<[string, string]>, reason: RoomResetReason): void {
    this.history = [];
    this.held.message = 0;
    this.held.presence = 0;
    this.held.change = 0;
    this.byClientKey.clear();
    for (const record of storedRecords) this.load(record);
    this.forgetBeyondRetention();
    this.committedSeq = seq;
    this.seatEveryone(members);
    for (const member of this.members.keys()) {
      this.addToEveryone(seatIdOf(member), member.name);
      member.reset?.(this, reason);
    }
  }

  private commit(held: EncodedEvent, fields: PrivateFields, removing: RoomMember | undefined): void {
    this.committedSeq = held.seq;
    this.apply(held, fields);
    this.noteRedaction();
    if (held.event.type !== 'message' && held.event.type !== 'joined' && held.event.type !== 'left') {
      // A change is sent as it reads against its message now (a reaction as the message's whole list).
      held.wire = this.v2Rendering(held) ?? EMPTY;
      held.setV1Wire(this.v1Rendering(held));
    }
    this.hold(held);
    const { message, presence, change } = this.held;
    const limit = this.retainEvents * 1.25;
    if (message > limit || presence > limit || change > limit) this.forgetBeyondRetention();
    if (removing && this.members.has(removing)) this.unseat(removing);
    for (const member of this.members.keys()) member.deliver(held);
    if (removing) {
      const body = held.event as { reason: LeaveReason; by?: string };
      removing.removed?.({ reason: body.reason, by: body.by, byId: fields.byId, event: held });
      if (this.members.size === 0) this.onEmptied?.();
    }
  }

  /** What an event changes beside the history: its message's state, the room's topic or owner. Live and on load alike. */
  private apply(held: EncodedEvent, fields: PrivateFields): void {
    const body = held.event;
    switch (body.type) {
      case 'edited':
      case 'deleted':
      case 'react': {
        const target = this.messageAt(body.target);
        if (!target) return;
        applyChange(body, target, this.maxReactions);
        // The message's text is still in its record until a compaction rewrites it.
        if (body.type === 'deleted') this.redactionDue = true;
        return;
      }
      case 'topic':
        this.logTopic = { topic: body.topic, seq: body.seq };
        this.meta.topic = body.topic;
        this.meta.topicSeq = body.seq;
        return;
      case 'owner':
        this.logOwner = { ownerId: fields.ownerId, seq: body.seq };
        this.meta.ownerId = fields.ownerId;
        this.meta.ownerSeq = body.seq;
        return;
    }
  }

  private hold(held: EncodedEvent): void {
    this.history.push(held);
    this.held[classOf(held.event.type)] += 1;
  }

  /**
   * Keeps the newest `retainEvents` of each class. De-duplication covers the
   * retained events; a retry older than that counts as a new change.
   */
  private forgetBeyondRetention(): void {
    const drop: Record<RecordClass, number> = {
      message: Math.max(0, this.held.message - this.retainEvents),
      presence: Math.max(0, this.held.presence - this.retainEvents),
      change: Math.max(0, this.held.change - this.retainEvents),
    };
    if (drop.message === 0 && drop.presence === 0 && drop.change === 0) return;
    const kept: EncodedEvent[] = [];
    for (const old of this.history) {
      const recordClass = classOf(old.event.type);
      if (drop[recordClass] > 0) {
        drop[recordClass] -= 1;
        this.held[recordClass] -= 1;
        if (old.dedupKey !== undefined) this.byClientKey.delete(old.dedupKey);
        continue;
      }
      kept.push(old);
    }
    this.history = kept;
  }

  /** A record as a compaction keeps it: a changed message with its state folded in, a deleted one without its text. */
  private compactedRecord(seq: number, bytes: Buffer): Buffer | undefined {
    const held = this.heldAt(seq);
    if (!held) return undefined;
    const body = held.event;
    if (body.type === 'message' && held.state) return foldedMessageRecord(JSON.parse(bytes.toString('utf8')) as Record<string, unknown>, held.state);
    if (body.type === 'edited' && this.messageAt(body.target)?.state?.deleted) return redactedEditRecord(JSON.parse(bytes.toString('utf8')) as Record<string, unknown>);
    return undefined;
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

const EMPTY = Buffer.alloc(0);
/** Why a change was not stored: a full disk on one server, or (in a cluster) a store out of reach; either way, it may be sent again later. */
export function storageFailure(what: string): string {
  return `The server could not store ${what} (its disk may be full, or its store out of reach); send it again later.`;
}

const STORAGE_FAILED = storageFailure('that');

type Refusal = { ok: false; code: ErrorCodeV2; message: string };

function refused(code: ErrorCodeV2, message: string): Refusal {
  return { ok: false, code, message };
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function clientKey(clientId: string, id: string): string {
  return clientId + '\u0000' + id;
}
