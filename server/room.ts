/**
 * One room: its members, its sequence numbers, its history and the
 * de-duplication of retried messages.
 *
 * Every event gets the room's next sequence number when it happens, is stored,
 * and only then is delivered to the members (and acknowledged to its sender).
 * The log resolves records in order, so members see events in sequence order,
 * and what anyone was shown is always on disk.
 *
 * Messages and presence (arrivals and departures) are retained apart, each
 * the newest `retainEvents`, so a crowd coming and going never pushes
 * messages out of the history or out of the de-duplication window.
 */
import { encodeFrame } from '../shared/framing';
import type { LeaveReason, MessageEvent, RoomEvent } from '../shared/protocol';
import type { Logger } from './log';
import type { RecordKind, RoomLog } from './roomLog';
import { seatKeys } from './seatNames';

/** An event serialised once; every member gets the same bytes. */
export class EncodedEvent {
  readonly wire: Buffer;

  constructor(readonly event: RoomEvent) {
    this.wire = encodeFrame(event);
  }
}

function kindOf(event: RoomEvent): RecordKind {
  return event.type === 'message' ? 'message' : 'presence';
}

/** Whoever is in a room: an NDJSON client or a classic-mode client. */
export interface RoomMember {
  readonly name: string;
  deliver(event: EncodedEvent): void;
}

interface StoredMessage {
  seq: number;
  /** Present while the message is being stored; resolves with whether it was stored. */
  committed?: Promise<boolean>;
}

export interface SayResult {
  ok: boolean;
  seq: number;
  duplicate: boolean;
}

export class Room {
  /** Each member with the seat keys its name holds (one or two). */
  private readonly members = new Map<RoomMember, readonly string[]>();
  /** Seat key → the member holding it; names that look alike share a key. */
  private readonly seats = new Map<string, RoomMember>();
  /** Committed events, oldest first: at least the newest `retainEvents` messages and as many presence events. */
  private history: EncodedEvent[] = [];
  private messagesHeld = 0;
  private readonly messagesByClientKey = new Map<string, StoredMessage>();
  /** The other way round, so forgetting old events does not search the map. */
  private readonly clientKeyBySeq = new Map<number, string>();
  private nextSeq: number;
  private committedSeq: number;
  private eventsBeingStored = 0;
  /** Called when the last member has left (the server may then unload the room). */
  onEmptied: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly log: RoomLog,
    storedRecords: string[],
    private readonly retainEvents: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    for (const text of storedRecords) {
      const record = JSON.parse(text) as RoomEvent & { clientId?: string };
      const { clientId, ...event } = record;
      this.hold(new EncodedEvent(event));
      if (event.type === 'message' && clientId !== undefined && event.id !== undefined) {
        this.rememberClientKey(clientKey(clientId, event.id), event.seq);
      }
    }
    this.forgetBeyondRetention();
    this.committedSeq = this.history.length > 0 ? this.history[this.history.length - 1].event.seq : 0;
    this.nextSeq = this.committedSeq + 1;
  }

  get latestSeq(): number {
    return this.committedSeq;
  }

  get firstSeq(): number {
    return this.history.length > 0 ? this.history[0].event.seq : this.committedSeq + 1;
  }

  get memberCount(): number {
    return this.members.size;
  }

  /** Whether the room has no members and nothing on its way to storage: it may be unloaded. */
  get isIdle(): boolean {
    return this.members.size === 0 && this.eventsBeingStored === 0 && !this.log.isBusy;
  }

  /** Up to `limit` member names, `first` (when given) leading. */
  memberNames(limit: number, first?: string): string[] {
    const names = first === undefined ? [] : [first];
    for (const member of this.members.keys()) {
      if (names.length >= limit) break;
      if (member.name !== first) names.push(member.name);
    }
    return names;
  }

  /** Whoever holds the seat that `name` would take: the same name, or one that looks like it. */
  memberNamed(name: string): RoomMember | undefined {
    for (const key of seatKeys(name)) {
      const holder = this.seats.get(key);
      if (holder) return holder;
    }
    return undefined;
  }

  /** Committed events after `afterSeq`, or the newest `count` when no position is given. */
  replay(afterSeq: number | undefined, count: number): EncodedEvent[] {
    if (afterSeq === undefined) return count > 0 ? this.history.slice(-count) : [];
    // Seqs rise but may skip (a refused message uses one up, and older presence is forgotten first), so search.
    let low = 0;
    let high = this.history.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.history[middle].event.seq <= afterSeq) low = middle + 1;
      else high = middle;
    }
    return this.history.slice(low);
  }

  /** Adds a member (the caller has checked the name) and announces it. */
  join(member: RoomMember): void {
    this.seat(member);
    void this.record({ type: 'joined', seq: 0, room: this.name, name: member.name, ts: 0 });
  }

  /** Swaps the connection behind a member without an announcement (a client resuming after a drop). */
  replaceMember(previous: RoomMember, next: RoomMember): void {
    if (!this.members.has(previous)) return;
    this.unseat(previous);
    this.seat(next);
  }

  leave(member: RoomMember, reason: LeaveReason): Promise<boolean> {
    if (!this.members.has(member)) return Promise.resolve(false);
    this.unseat(member);
    const stored = this.record({ type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 });
    if (this.members.size === 0) this.onEmptied?.();
    return stored;
  }

  private seat(member: RoomMember): void {
    const keys = seatKeys(member.name);
    this.members.set(member, keys);
    for (const key of keys) this.seats.set(key, member);
  }

  private unseat(member: RoomMember): void {
    for (const key of this.members.get(member) ?? []) {
      if (this.seats.get(key) === member) this.seats.delete(key);
    }
    this.members.delete(member);
  }

  /**
   * Announces every member's departure (server shutdown). Members stay in the
   * room until all the announcements are stored, so each hears the others go.
   */
  async departAll(reason: LeaveReason): Promise<void> {
    const leaving = [...this.members.keys()];
    await Promise.all(leaving.map((member) => this.record({ type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 })));
    this.members.clear();
    this.seats.clear();
  }

  /**
   * Stores and delivers a message. A message that names itself (the sender's
   * client id and its message id) and was stored before is not stored again:
   * the retry resolves with the seq of the first, once that is on disk.
   * Classic members' messages have no such name and are never de-duplicated.
   */
  async say(member: RoomMember, text: string, named?: { clientId: string; id: string }): Promise<SayResult> {
    if (named === undefined) {
      const event: MessageEvent = { type: 'message', seq: 0, room: this.name, from: member.name, text, ts: 0 };
      const ok = await this.record(event);
      return { ok, seq: event.seq, duplicate: false };
    }
    const key = clientKey(named.clientId, named.id);
    const earlier = this.messagesByClientKey.get(key);
    if (earlier) {
      const ok = earlier.committed ? await earlier.committed : true;
      return { ok, seq: earlier.seq, duplicate: true };
    }
    const event: MessageEvent = { type: 'message', seq: 0, room: this.name, from: member.name, text, ts: 0, id: named.id };
    const stored: StoredMessage = { seq: 0 };
    this.messagesByClientKey.set(key, stored);
    stored.committed = this.record(event, named.clientId);
    stored.seq = event.seq;
    const ok = await stored.committed;
    delete stored.committed;
    // A message that could not be stored may be sent again later.
    if (ok) this.clientKeyBySeq.set(event.seq, key);
    else this.messagesByClientKey.delete(key);
    return { ok, seq: event.seq, duplicate: false };
  }

  /** Gives the event its sequence number and time, stores it, then delivers it. Resolves with whether it was stored. */
  private async record(event: RoomEvent, clientId?: string): Promise<boolean> {
    event.seq = this.nextSeq++;
    event.ts = this.now();
    const encoded = new EncodedEvent(event);
    const stored = clientId === undefined ? encoded.wire : withClientId(encoded.wire, clientId);
    this.eventsBeingStored += 1;
    try {
      await this.log.append(stored, kindOf(event));
    } catch (error) {
      this.logger.error(`room ${this.name}: could not store event ${event.seq}: ${String(error)}`);
      return false;
    } finally {
      this.eventsBeingStored -= 1;
    }
    this.commit(encoded);
    return true;
  }

  private commit(encoded: EncodedEvent): void {
    this.committedSeq = encoded.event.seq;
    this.hold(encoded);
    const presenceHeld = this.history.length - this.messagesHeld;
    if (this.messagesHeld > this.retainEvents * 1.25 || presenceHeld > this.retainEvents * 1.25) this.forgetBeyondRetention();
    for (const member of this.members.keys()) member.deliver(encoded);
  }

  private hold(encoded: EncodedEvent): void {
    this.history.push(encoded);
    if (encoded.event.type === 'message') this.messagesHeld += 1;
  }

  private rememberClientKey(key: string, seq: number): void {
    this.messagesByClientKey.set(key, { seq });
    this.clientKeyBySeq.set(seq, key);
  }

  /**
   * Keeps the newest `retainEvents` messages and the newest `retainEvents`
   * presence events. De-duplication covers the retained messages; a retry
   * older than that counts as a new message.
   */
  private forgetBeyondRetention(): void {
    let dropMessages = Math.max(0, this.messagesHeld - this.retainEvents);
    let dropPresence = Math.max(0, this.history.length - this.messagesHeld - this.retainEvents);
    if (dropMessages === 0 && dropPresence === 0) return;
    const kept: EncodedEvent[] = [];
    for (const old of this.history) {
      const isMessage = old.event.type === 'message';
      if (isMessage ? dropMessages-- > 0 : dropPresence-- > 0) {
        if (isMessage) this.forgetClientKey(old.event.seq);
        continue;
      }
      kept.push(old);
    }
    this.history = kept;
    this.messagesHeld = kept.filter((encoded) => encoded.event.type === 'message').length;
  }

  private forgetClientKey(seq: number): void {
    const key = this.clientKeyBySeq.get(seq);
    if (key === undefined) return;
    this.clientKeyBySeq.delete(seq);
    this.messagesByClientKey.delete(key);
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

function clientKey(clientId: string, id: string): string {
  return clientId + '\u0000' + id;
}

/**
 * The stored form of a message: its wire bytes with the sender's client id
 * added (kept for de-duplication after a restart, never sent to members).
 * Spliced in before the closing brace, so the event is serialised only once.
 */
function withClientId(wire: Buffer, clientId: string): Buffer {
  // Every encoded frame ends with "}\n".
  return Buffer.concat([wire.subarray(0, wire.length - 2), Buffer.from(`,"clientId":${JSON.stringify(clientId)}}\n`, 'utf8')]);
}
