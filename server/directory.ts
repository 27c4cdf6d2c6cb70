/**
 * The server's directory: what belongs to people rather than to one room's
 * history. Identities (who owns which name, proved by a key), each identity's
 * conversations and read markers, who owns each room and its topic, and who
 * takes part in each direct-message conversation.
 *
 * Identities are known by an id that is never reused, not by their name: when
 * a name is released or lapses, whoever takes it next is a new identity, and
 * does not inherit the old one's rooms, DMs or read markers. Names are
 * compared as seats are (server/seatNames.ts), so a look-alike of an
 * identity's name is that identity's name.
 *
 * `Directory` is what the rest of the server uses; `StoredDirectory` keeps it
 * in one journal file in the data folder, or in memory alone for `--memory`
 * (a cluster would keep it in Redis instead). Every change resolves only once
 * it is stored.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { ConversationKind } from '../shared/protocolV2';
import { Journal } from './journal';
import type { Logger } from './log';
import { seatKeys } from './seatNames';

export interface Identity {
  id: string;
  /** The name as its owner spells it. */
  name: string;
  /** Until when the name stays reserved if its key is not used again (epoch ms). */
  expiresAt: number;
}

export type NameVerdict =
  /** No identity holds the name: the caller may claim it. */
  | { kind: 'free' }
  /** The key is the name's: the identity, with its reservation renewed. */
  | { kind: 'owner'; identity: Identity }
  /** Another identity holds the name (or the key is wrong). */
  | { kind: 'reserved' };

export interface RoomMeta {
  /** The room's canonical key. */
  room: string;
  /** The room's name as first spelled (for a DM, its `dm:` id). */
  name: string;
  kind: ConversationKind;
  /** The identity that owns the room, if any. */
  ownerId?: string;
  topic: string;
  /** The seq of the room event that set the topic, and of the one that set the owner (0 or absent: none). */
  topicSeq?: number;
  ownerSeq?: number;
  /** A DM's participants, as identity ids. */
  participantIds?: string[];
}

export interface Conversation {
  room: string;
  lastRead: number;
}

export interface Directory {
  /** What a hello's key says about a name (or a look-alike of it). */
  checkName(name: string, key: string | undefined): Promise<NameVerdict>;
  /** Whether a live identity holds the name (or a look-alike), or a claim of it is under way. */
  isHeld(name: string): boolean;
  /**
   * Makes the name an identity's, with the key given (one the client made) or
   * a new one, and returns the key; undefined when someone holds the name.
   */
  claim(name: string, key?: string): Promise<{ identity: Identity; key: string } | undefined>;
  /** Forgets an identity: its key stops working and its conversations and read markers go. */
  release(identityId: string): Promise<void>;
  /** Renews a reservation without a key (an identity's connection has just ended: it was in use until now). */
  touch(identityId: string): Promise<void>;
  /** The current name of a live identity. */
  nameOf(identityId: string): string | undefined;
  /** The live identity that holds a name (or a look-alike), if any. */
  identityNamed(name: string): Identity | undefined;
  conversations(identityId: string): Conversation[];
  /** Whether a room is among an identity's conversations. */
  hasConversation(identityId: string, room: string): boolean;
  /** Adds a room to an identity's conversations (keeping its read marker if it had one). */
  subscribe(identityId: string, room: string): Promise<void>;
  unsubscribe(identityId: string, room: string): Promise<void>;
  /**
   * Moves a read marker forward (never back); resolves with the marker now
   * stored, or undefined when the room is not among the identity's
   * conversations (a read never makes one: it may come right behind a part).
   */
  markRead(identityId: string, room: string, seq: number): Promise<number | undefined>;
  roomMeta(room: string): RoomMeta | undefined;
  putRoomMeta(meta: RoomMeta): Promise<void>;
  /** Stores a room's first entry unless it has one (another server of a cluster may have made it a moment ago); resolves with the entry kept. */
  createRoomMeta(meta: RoomMeta): Promise<RoomMeta>;
  /**
   * Makes a DM (its entry, and a place among every participant's
   * conversations) unless one between exactly these participants exists;
   * resolves with the DM kept.
   */
  createDm(meta: RoomMeta & { participantIds: string[] }): Promise<RoomMeta>;
  /**
   * Called once for each DM made (in a cluster, on every server, whichever
   * made it), after its participants have it among their conversations: the
   * server tells their connections at once rather than at their next look.
   */
  onDmCreated(listener: (meta: RoomMeta) => void): void;
  /** Cluster mode: called when another server (or this one) changed a room's entry, so a loaded room can take it up. */
  onRoomMetaChanged?(listener: (meta: RoomMeta) => void): void;
  /** Cluster mode: called when an identity is forgotten (released through any server), so this server closes its connections of it. */
  onIdentityForgotten?(listener: (identityId: string) => void): void;
  /** Cluster mode: called when another server took a room out of an identity's conversations (a part there), so this server's connections of it leave the room too. */
  onConversationLeftElsewhere?(listener: (identityId: string, room: string) => void): void;
  /** Cluster mode: called when another server moved an identity's read marker, so this server's connections of it are told. */
  onReadElsewhere?(listener: (identityId: string, room: string, seq: number) => void): void;
  /** Rooms (never DMs) by key, after `after`, at most `limit`. */
  listRooms(after: string | undefined, limit: number): RoomMeta[];
  /** The DM whose participants are exactly these identities, if one exists. */
  findDm(participantIds: readonly string[]): string | undefined;
  close(): Promise<void>;
}

/**
 * Joins and parts of one person's conversation, applied one after another.
 * Each decides from what is stored whether there is anything to write, so a
 * part sent right behind a join (or a join behind a part, or a read marker
 * behind a part) must wait until the write before it is applied, or it
 * decides on the state before it and the earlier write wins.
 */
/** One identity's conversation in one room, as a key. */
export function conversationKey(identityId: string, room: string): string {
  return identityId + '\u0000' + room;
}

export class ConversationWrites {
  private readonly underWay = new Map<string, Promise<void>>();

  /** Runs `work` once the joins and parts of this conversation already under way are applied, without holding up later ones (a read marker). */
  after<T>(identityId: string, room: string, work: () => Promise<T>): Promise<T> {
    const earlier = this.underWay.get(conversationKey(identityId, room));
    return earlier ? earlier.then(work) : work();
  }

  /** Runs `write` once the earlier writes of the same identity and room are settled. */
  inTurn(identityId: string, room: string, write: () => Promise<void>): Promise<void> {
    const key = conversationKey(identityId, room);
    const turn = (this.underWay.get(key) ?? Promise.resolve()).then(write);
    const settled = turn.catch(() => undefined);
    this.underWay.set(key, settled);
    void settled.then(() => {
      if (this.underWay.get(key) === settled) this.underWay.delete(key);
    });
    return turn;
  }
}

export interface IdentityRecord {
  id: string;
  name: string;
  /** SHA-256 of the key, base64url: a stolen directory file does not give away keys. */
  keyHash: string;
  createdAt: number;
  lastUsedAt: number;
}

/** One change of the directory, as its journal (or a cluster's change stream) records it. */
export type DirectoryOperation =
  | ({ op: 'identity' } & IdentityRecord)
  | { op: 'forget'; id: string }
  | { op: 'read'; id: string; room: string; seq: number }
  | { op: 'part'; id: string; room: string }
  | ({ op: 'room' } & RoomMeta);

/** Not `.ndjson`: every such file in the data folder is a room's log. */
export const DIRECTORY_FILE = 'directory.journal';
/** Last use is written at most this often per identity; a reservation is counted in days. */
export const LAST_USED_WRITE_INTERVAL_MS = 60 * 60 * 1000;
/** Rewrite the file once it holds this many more operations than live records (and at least this many). */
const COMPACT_SLACK = 1000;

export interface DirectoryOptions {
  identityTtlMs: number;
  logger: Logger;
  now?: () => number;
}

export class StoredDirectory implements Directory {
  private readonly identitiesById = new Map<string, IdentityRecord>();
  /** Seat key → identity: a name holds one or two keys, and a look-alike meets one of them. */
  private readonly identitiesByKey = new Map<string, IdentityRecord>();
  private readonly readMarkers = new Map<string, Map<string, number>>();
  private readonly rooms = new Map<string, RoomMeta>();
  /** Room keys of rooms (not DMs), sorted, made on first use after a change. */
  private sortedRooms: string[] | undefined;
  private readonly dmByParticipants = new Map<string, string>();
  private readonly claimsInFlight = new Map<string, Promise<void>>();
  private readonly dmListeners = new Set<(meta: RoomMeta) => void>();
  private readonly conversationWrites = new ConversationWrites();
  private operationsOnDisk = 0;
  /**
   * Stores in flight, and the compaction under way. A compaction starts only
   * when no store is in flight and new stores wait for it, so the snapshot it
   * writes holds every operation that reached the old file.
   */
  private storesInFlight = 0;
  private storesSettled: (() => void) | undefined;
  private compacting: Promise<void> | undefined;
  private readonly now: () => number;

  private constructor(
    /** Undefined keeps everything in memory (`--memory`). */
    private readonly journal: Journal | undefined,
    private readonly options: DirectoryOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  static async open(dataDir: string, options: DirectoryOptions): Promise<StoredDirectory> {
    const { journal, records } = await Journal.open(join(dataDir, DIRECTORY_FILE), options.logger, isDirectoryOperation);
    const directory = new StoredDirectory(journal, options);
    for (const record of records) directory.apply(JSON.parse(record.toString('utf8')) as DirectoryOperation);
    directory.operationsOnDisk = records.length;
    return directory;
  }

  /** A directory that keeps nothing on disk: it lasts as long as the process. */
  static inMemory(options: DirectoryOptions): StoredDirectory {
    return new StoredDirectory(undefined, options);
  }

  async checkName(name: string, key: string | undefined): Promise<NameVerdict> {
    const record = this.liveIdentity(name);
    if (!record) return { kind: 'free' };
    if (key === undefined || !sameDigest(digestOf(key), record.keyHash)) return { kind: 'reserved' };
    const now = this.now();
    if (now - record.lastUsedAt >= LAST_USED_WRITE_INTERVAL_MS) {
      await this.store({ op: 'identity', ...record, lastUsedAt: now });
    }
    return { kind: 'owner', identity: this.view(this.identitiesById.get(record.id) ?? record) };
  }

  isHeld(name: string): boolean {
    return this.liveIdentity(name) !== undefined || seatKeys(name).some((key) => this.claimsInFlight.has(key));
  }

  async claim(name: string, proposedKey?: string): Promise<{ identity: Identity; key: string } | undefined> {
    // One claim per name (and its look-alikes) at a time: two hellos racing for a free name must not both win it.
    const keys = seatKeys(name);
    const earlier = keys.map((key) => this.claimsInFlight.get(key)).filter((claim) => claim !== undefined);
    const claim = Promise.all(earlier).then(() => this.claimNow(name, proposedKey));
    const settled = claim.then(
      () => undefined,
      () => undefined,
    );
    for (const key of keys) this.claimsInFlight.set(key, settled);
    void settled.then(() => {
      for (const key of keys) if (this.claimsInFlight.get(key) === settled) this.claimsInFlight.delete(key);
    });
    return claim;
  }

  private async claimNow(name: string, proposedKey: string | undefined): Promise<{ identity: Identity; key: string } | undefined> {
    if (this.liveIdentity(name)) return undefined;
    for (const lapsed of this.identitiesWithKeysOf(name)) await this.store({ op: 'forget', id: lapsed.id });
    const key = proposedKey ?? randomBytes(32).toString('base64url');
    const now = this.now();
    const record: IdentityRecord = { id: randomUUID(), name, keyHash: digestOf(key), createdAt: now, lastUsedAt: now };
    await this.store({ op: 'identity', ...record });
    return { identity: this.view(record), key };
  }

  async release(identityId: string): Promise<void> {
    if (!this.identitiesById.has(identityId)) return;
    await this.store({ op: 'forget', id: identityId });
  }

  async touch(identityId: string): Promise<void> {
    const record = this.identitiesById.get(identityId);
    if (!record || !this.isLive(record) || this.now() - record.lastUsedAt < LAST_USED_WRITE_INTERVAL_MS) return;
    await this.store({ op: 'identity', ...record, lastUsedAt: this.now() });
  }

  nameOf(identityId: string): string | undefined {
    const record = this.identitiesById.get(identityId);
    return record && this.isLive(record) ? record.name : undefined;
  }

  identityNamed(name: string): Identity | undefined {
    const record = this.liveIdentity(name);
    return record ? this.view(record) : undefined;
  }

  conversations(identityId: string): Conversation[] {
    return [...(this.readMarkers.get(identityId) ?? new Map<string, number>())].map(([room, lastRead]) => ({ room, lastRead }));
  }

  hasConversation(identityId: string, room: string): boolean {
    return this.readMarkers.get(identityId)?.has(room) ?? false;
  }

  subscribe(identityId: string, room: string): Promise<void> {
    return this.conversationWrites.inTurn(identityId, room, async () => {
      if (this.readMarkers.get(identityId)?.has(room) || !this.identitiesById.has(identityId)) return;
      await this.store({ op: 'read', id: identityId, room, seq: 0 });
    });
  }

  unsubscribe(identityId: string, room: string): Promise<void> {
    return this.conversationWrites.inTurn(identityId, room, async () => {
      if (!this.readMarkers.get(identityId)?.has(room)) return;
      await this.store({ op: 'part', id: identityId, room });
    });
  }

  markRead(identityId: string, room: string, seq: number): Promise<number | undefined> {
    return this.conversationWrites.after(identityId, room, async () => {
      const current = this.readMarkers.get(identityId)?.get(room);
      if (current === undefined) return undefined;
      if (seq <= current || !this.identitiesById.has(identityId)) return current;
      await this.store({ op: 'read', id: identityId, room, seq });
      return this.readMarkers.get(identityId)?.get(room) ?? seq;
    });
  }

  roomMeta(room: string): RoomMeta | undefined {
    return this.rooms.get(room);
  }

  async putRoomMeta(meta: RoomMeta): Promise<void> {
    await this.store({ op: 'room', ...meta });
  }

  async createRoomMeta(meta: RoomMeta): Promise<RoomMeta> {
    const existing = this.rooms.get(meta.room);
    if (existing) return existing;
    await this.store({ op: 'room', ...meta });
    return meta;
  }

  async createDm(meta: RoomMeta & { participantIds: string[] }): Promise<RoomMeta> {
    const existing = this.findDm(meta.participantIds);
    if (existing) return this.rooms.get(existing) as RoomMeta;
    await this.store({ op: 'room', ...meta });
    // Every participant has it among their conversations at once, so what is said while they are away counts as unread.
    await Promise.all(meta.participantIds.map((id) => this.subscribe(id, meta.room)));
    tellListeners(this.dmListeners, (listener) => listener(meta), this.options.logger, 'new-DM');
    return meta;
  }

  onDmCreated(listener: (meta: RoomMeta) => void): void {
    this.dmListeners.add(listener);
  }

  listRooms(after: string | undefined, limit: number): RoomMeta[] {
    this.sortedRooms ??= [...this.rooms.values()]
      .filter((meta) => meta.kind === 'room')
      .map((meta) => meta.room)
      .sort();
    let start = 0;
    if (after !== undefined) {
      // The first key after `after`, by binary search.
      let high = this.sortedRooms.length;
      while (start < high) {
        const middle = (start + high) >>> 1;
        if (this.sortedRooms[middle] <= after) start = middle + 1;
        else high = middle;
      }
    }
    return this.sortedRooms.slice(start, start + limit).map((room) => this.rooms.get(room) as RoomMeta);
  }

  findDm(participantIds: readonly string[]): string | undefined {
    return this.dmByParticipants.get(participantKey(participantIds));
  }

  async close(): Promise<void> {
    await this.compacting;
    await this.journal?.close();
  }

  /** The live identity whose name is `name` or looks like it. */
  private liveIdentity(name: string): IdentityRecord | undefined {
    for (const record of this.identitiesWithKeysOf(name)) if (this.isLive(record)) return record;
    return undefined;
  }

  /** Every identity, live or lapsed, that holds one of the seat keys of `name`. */
  private identitiesWithKeysOf(name: string): IdentityRecord[] {
    const found = new Set<IdentityRecord>();
    for (const key of seatKeys(name)) {
      const record = this.identitiesByKey.get(key);
      if (record) found.add(record);
    }
    return [...found];
  }

  private isLive(record: IdentityRecord): boolean {
    return this.now() - record.lastUsedAt < this.options.identityTtlMs;
  }

  private view(record: IdentityRecord): Identity {
    return { id: record.id, name: record.name, expiresAt: record.lastUsedAt + this.options.identityTtlMs };
  }

  /** Writes an operation, then applies it: what the server acts on is always on disk. */
  private async store(operation: DirectoryOperation): Promise<void> {
    if (!this.journal) {
      this.apply(operation);
      return;
    }
    while (this.compacting) await this.compacting;
    this.storesInFlight += 1;
    try {
      await this.journal.append(Buffer.from(JSON.stringify(operation) + '\n', 'utf8'));
      this.apply(operation);
      this.operationsOnDisk += 1;
    } finally {
      this.storesInFlight -= 1;
      if (this.storesInFlight === 0) this.storesSettled?.();
    }
    this.compactIfWorthIt();
  }

  /** Applies a change stored elsewhere (a cluster's change stream), as if it had been read from the journal. */
  applyStored(operation: DirectoryOperation): void {
    this.apply(operation);
  }

  /** The live identity record behind a name, key digest included (for a cluster's copy of the directory). */
  recordNamed(name: string): IdentityRecord | undefined {
    return this.liveIdentity(name);
  }

  /** An identity's record, live or lapsed. */
  recordOf(identityId: string): IdentityRecord | undefined {
    return this.identitiesById.get(identityId);
  }

  private apply(operation: DirectoryOperation): void {
    switch (operation.op) {
      case 'identity': {
        const { op: _op, ...record } = operation;
        const previous = this.identitiesById.get(record.id);
        if (previous) this.dropKeys(previous);
        this.identitiesById.set(record.id, record);
        for (const key of seatKeys(record.name)) this.identitiesByKey.set(key, record);
        return;
      }
      case 'forget': {
        const record = this.identitiesById.get(operation.id);
        if (!record) return;
        this.identitiesById.delete(record.id);
        this.dropKeys(record);
        this.readMarkers.delete(record.id);
        return;
      }
      case 'read': {
        let markers = this.readMarkers.get(operation.id);
        if (!markers) this.readMarkers.set(operation.id, (markers = new Map()));
        markers.set(operation.room, Math.max(markers.get(operation.room) ?? 0, operation.seq));
        return;
      }
      case 'part':
        this.readMarkers.get(operation.id)?.delete(operation.room);
        return;
      case 'room': {
        const { op: _op, ...meta } = operation;
        if (!this.rooms.has(meta.room)) this.sortedRooms = undefined;
        this.rooms.set(meta.room, meta);
        if (meta.kind === 'dm' && meta.participantIds) this.dmByParticipants.set(participantKey(meta.participantIds), meta.room);
        return;
      }
    }
  }

  private dropKeys(record: IdentityRecord): void {
    for (const key of seatKeys(record.name)) if (this.identitiesByKey.get(key) === record) this.identitiesByKey.delete(key);
  }

  private liveRecords(): DirectoryOperation[] {
    const operations: DirectoryOperation[] = [];
    for (const record of this.identitiesById.values()) operations.push({ op: 'identity', ...record });
    for (const [id, markers] of this.readMarkers) for (const [room, seq] of markers) operations.push({ op: 'read', id, room, seq });
    for (const meta of this.rooms.values()) operations.push({ op: 'room', ...meta });
    return operations;
  }

  private compactIfWorthIt(): void {
    if (this.compacting || !this.journal) return;
    const journal = this.journal;
    const live = this.identitiesById.size + this.rooms.size + [...this.readMarkers.values()].reduce((sum, markers) => sum + markers.size, 0);
    if (this.operationsOnDisk < live * 2 + COMPACT_SLACK) return;
    this.compacting = (async () => {
      if (this.storesInFlight > 0) await new Promise<void>((resolve) => (this.storesSettled = resolve));
      this.storesSettled = undefined;
      const operations = this.liveRecords();
      await journal.rewrite(operations.map((operation) => Buffer.from(JSON.stringify(operation), 'utf8')));
      this.operationsOnDisk = operations.length;
    })()
      .catch((error: unknown) => this.options.logger.error(`directory: compaction failed: ${String(error)}`))
      .finally(() => (this.compacting = undefined));
  }
}

export function digestOf(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('base64url');
}

/** Compares two digests in constant time (they have the same length by construction). */
export function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function participantKey(ids: readonly string[]): string {
  return [...ids].sort().join(',');
}

function isDirectoryOperation(line: Buffer): boolean {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && typeof (value as { op?: unknown }).op === 'string';
  } catch {
    return false;
  }
}

/** The current names of these identities, in their order (one released meanwhile is left out). */
export function namesOf(directory: Pick<Directory, 'nameOf'>, identityIds: readonly string[]): string[] {
  return identityIds.map((id) => directory.nameOf(id)).filter((name) => name !== undefined);
}

/** Tells each listener of a directory change; one that throws is logged and does not keep the others from hearing. */
export function tellListeners<Listener>(listeners: Iterable<Listener>, call: (listener: Listener) => void, logger: Logger, what: string): void {
  for (const listener of listeners) {
    try {
      call(listener);
    } catch (error) {
      logger.error(`directory: a ${what} listener failed: ${String(error)}`);
    }
  }
}
