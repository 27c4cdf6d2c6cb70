/**
 * One room: its members, its sequence numbers, its history and the
 * de-duplication of retried messages.
 *
 * Every event gets the room's next sequence number when it happens, is stored,
 * and only then is delivered to the members (and acknowledged to its sender).
 * The log resolves records in order, so members see events in sequence order,
 * and what anyone was shown is always on disk.
 */
import { encodeFrame } from '../shared/framing';
import { nameKey } from '../shared/names';
import type { LeaveReason, MessageEvent, RoomEvent } from '../shared/protocol';
import type { Logger } from './log';
import type { RoomLog } from './roomLog';

/** An event serialised once; every member gets the same bytes. */
export class EncodedEvent {
  readonly wire: Buffer;
  private classicBytes: Buffer | undefined;

  constructor(readonly event: RoomEvent) {
    this.wire = encodeFrame(event);
  }

  /** The seed protocol's plain-text line for this event, made once on first use. */
  get classic(): Buffer {
    this.classicBytes ??= Buffer.from(classicLine(this.event) + '\n', 'utf8');
    return this.classicBytes;
  }
}

function classicLine(event: RoomEvent): string {
  switch (event.type) {
    case 'message':
      // Classic clients show one line per message, so line breaks become a visible mark.
      return `${event.from}: ${event.text.replace(/\r?\n/g, ' ↵ ')}`;
    case 'joined':
      return `${event.name} has joined the chat!`;
    case 'left':
      return `${event.name} has left the chat.`;
  }
}

/** Whoever is in a room: an NDJSON client or a classic-mode client. */
export interface RoomMember {
  readonly name: string;
  readonly clientId: string | undefined;
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
  private readonly members = new Map<string, RoomMember>();
  /** Committed events, oldest first; at least `retainEvents` of them. */
  private history: EncodedEvent[] = [];
  private readonly messagesByClientKey = new Map<string, StoredMessage>();
  /** The other way round, so forgetting old events does not search the map. */
  private readonly clientKeyBySeq = new Map<number, string>();
  private nextSeq: number;
  private committedSeq: number;

  constructor(
    readonly name: string,
    private readonly log: RoomLog,
    storedRecords: string[],
    private readonly retainEvents: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    for (const text of storedRecords.slice(-retainEvents)) {
      const record = JSON.parse(text) as RoomEvent & { clientId?: string };
      const { clientId, ...event } = record;
      this.history.push(new EncodedEvent(event));
      if (event.type === 'message' && clientId !== undefined && event.id !== undefined) {
        this.rememberClientKey(clientKey(clientId, event.id), event.seq);
      }
    }
    this.committedSeq = this.history.length > 0 ? this.history[this.history.length - 1].event.seq : 0;
    this.nextSeq = this.committedSeq + 1;
  }

  get latestSeq(): number {
    return this.committedSeq;
  }

  get firstSeq(): number {
    return this.history.length > 0 ? this.history[0].event.seq : this.committedSeq + 1;
  }

  get memberNames(): string[] {
    return [...this.members.values()].map((member) => member.name);
  }

  get memberCount(): number {
    return this.members.size;
  }

  memberNamed(name: string): RoomMember | undefined {
    return this.members.get(nameKey(name));
  }

  /** Committed events after `afterSeq`, or the newest `count` when no position is given. */
  replay(afterSeq: number | undefined, count: number): EncodedEvent[] {
    if (afterSeq === undefined) return count > 0 ? this.history.slice(-count) : [];
    const firstSeq = this.firstSeq;
    const from = Math.max(0, afterSeq + 1 - firstSeq);
    return this.history.slice(from);
  }

  /** Adds a member (the caller has checked the name) and announces it. */
  join(member: RoomMember): void {
    this.members.set(nameKey(member.name), member);
    void this.record({ type: 'joined', seq: 0, room: this.name, name: member.name, ts: 0 });
  }

  /** Swaps the connection behind a member without an announcement (a client resuming after a drop). */
  replaceMember(previous: RoomMember, next: RoomMember): void {
    if (this.members.get(nameKey(previous.name)) === previous) this.members.set(nameKey(next.name), next);
  }

  leave(member: RoomMember, reason: LeaveReason): Promise<boolean> {
    const key = nameKey(member.name);
    if (this.members.get(key) !== member) return Promise.resolve(false);
    this.members.delete(key);
    return this.record({ type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 });
  }

  /**
   * Announces every member's departure (server shutdown). Members stay in the
   * room until all the announcements are stored, so each hears the others go.
   */
  async departAll(reason: LeaveReason): Promise<void> {
    const leaving = [...this.members.values()];
    await Promise.all(leaving.map((member) => this.record({ type: 'left', seq: 0, room: this.name, name: member.name, reason, ts: 0 })));
    this.members.clear();
  }

  /**
   * Stores and delivers a message. A retry of a message already stored (same
   * client id and message id) is not stored again; it resolves with the seq of
   * the first, once that is on disk.
   */
  async say(member: RoomMember, clientId: string, id: string | undefined, text: string): Promise<SayResult> {
    if (id !== undefined) {
      const key = clientKey(clientId, id);
      const earlier = this.messagesByClientKey.get(key);
      if (earlier) {
        const ok = earlier.committed ? await earlier.committed : true;
        return { ok, seq: earlier.seq, duplicate: true };
      }
      const event: MessageEvent = { type: 'message', seq: 0, room: this.name, from: member.name, text, ts: 0, id };
      const stored: StoredMessage = { seq: 0 };
      this.messagesByClientKey.set(key, stored);
      stored.committed = this.record(event, clientId);
      stored.seq = event.seq;
      const ok = await stored.committed;
      delete stored.committed;
      // A message that could not be stored may be sent again later.
      if (ok) this.clientKeyBySeq.set(event.seq, key);
      else this.messagesByClientKey.delete(key);
      return { ok, seq: event.seq, duplicate: false };
    }
    const event: MessageEvent = { type: 'message', seq: 0, room: this.name, from: member.name, text, ts: 0 };
    const ok = await this.record(event);
    return { ok, seq: event.seq, duplicate: false };
  }

  /** Gives the event its sequence number and time, stores it, then delivers it. Resolves with whether it was stored. */
  private async record(event: RoomEvent, clientId?: string): Promise<boolean> {
    event.seq = this.nextSeq++;
    event.ts = this.now();
    const encoded = new EncodedEvent(event);
    const stored = clientId === undefined ? encoded.wire : withClientId(encoded.wire, clientId);
    try {
      await this.log.append(stored);
    } catch (error) {
      this.logger.error(`room ${this.name}: could not store event ${event.seq}: ${String(error)}`);
      return false;
    }
    this.commit(encoded);
    return true;
  }

  private commit(encoded: EncodedEvent): void {
    this.committedSeq = encoded.event.seq;
    this.history.push(encoded);
    if (this.history.length > this.retainEvents * 1.25) this.forgetOldest(this.history.length - this.retainEvents);
    for (const member of this.members.values()) member.deliver(encoded);
  }

  private rememberClientKey(key: string, seq: number): void {
    this.messagesByClientKey.set(key, { seq });
    this.clientKeyBySeq.set(seq, key);
  }

  /** De-duplication covers the retained window; a retry older than that counts as a new message. */
  private forgetOldest(count: number): void {
    for (const old of this.history.splice(0, count)) {
      const key = this.clientKeyBySeq.get(old.event.seq);
      if (key === undefined) continue;
      this.clientKeyBySeq.delete(old.event.seq);
      this.messagesByClientKey.delete(key);
    }
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
