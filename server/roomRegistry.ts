/**
 * The rooms a server has loaded. A room is loaded when someone enters it and
 * unloaded (its log file closed) once it has stood empty for `roomIdleMs`,
 * so rooms nobody is in hold no file descriptor and almost no memory.
 *
 * Loading is bounded: at most `maxRooms` at once (empty rooms are unloaded
 * early to make space) and at most `newRoomsPerMinute` loads per address.
 * A room that cannot be loaded (no file descriptor left, a full disk, a log
 * that belongs to another room) refuses that one entry; the server goes on.
 */
import { Disposable, toDisposable } from '../shared/disposable';
import { roomKey } from '../shared/names';
import type { ErrorCode } from '../shared/protocol';
import { PerAddressRate } from './addressLimits';
import type { DataFolder } from './dataFolder';
import type { Logger } from './log';
import { Room } from './room';
import { RoomLog } from './roomLog';

export interface RoomRegistryOptions {
  /** Where room logs live; undefined keeps history in memory only (and an unloaded room's history is gone). */
  folder: DataFolder | undefined;
  retainEvents: number;
  /** Rooms loaded at once (0: no limit). */
  maxRooms: number;
  /** An empty room is unloaded after this long. */
  roomIdleMs: number;
  /** Rooms one address may load in a minute (0: no limit). */
  newRoomsPerMinute: number;
  /** Test-only: count loopback addresses too. */
  limitLoopback: boolean;
  /** Distinct emoji one message takes (the rooms apply it when they read their logs back, too). */
  maxReactionsPerMessage: number;
  logger: Logger;
  /** Called with each room once it is loaded, before anyone enters it (to give it its directory entry). */
  prepare?: (room: Room) => void;
  /** Cluster mode: loads a room shared through Redis (ClusterNode.openRoom) instead of from `folder`. */
  openShared?: (key: string, name: string) => Promise<Room>;
}

/** Rooms whose latest seq is remembered after they are unloaded, at most. */
const REMEMBERED_UNLOADED_ROOMS = 100_000;

export interface RoomRefusal {
  ok: false;
  code: Extract<ErrorCode, 'room_unavailable' | 'too_many_rooms'>;
  message: string;
}

export type RoomEntry<T> = { ok: true; value: T } | RoomRefusal;

interface Loaded {
  key: string;
  loading: Promise<Room>;
  room?: Room;
  idleTimer?: NodeJS.Timeout;
}

export class RoomRegistry extends Disposable {
  private readonly loaded = new Map<string, Loaded>();
  /** Rooms being unloaded; a room is loaded again only once its previous instance has closed its file. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Loaded rooms that stood empty when last seen, the first to go when space is needed. */
  private readonly emptyRooms = new Set<Loaded>();
  private readonly newRooms: PerAddressRate;
  /** Room key → its latest seq when it was unloaded, so an unread count of a room nobody is in needs no load when nothing is new. */
  private readonly seqWhenUnloaded = new Map<string, number>();

  constructor(private readonly options: RoomRegistryOptions) {
    super();
    this.newRooms = new PerAddressRate(options.newRoomsPerMinute, !options.limitLoopback);
    this.register(toDisposable(() => this.loaded.forEach((entry) => clearTimeout(entry.idleTimer))));
  }

  get loadedCount(): number {
    return this.loaded.size;
  }

  /**
   * Loads the room `name` if need be and hands it to `use`, which runs at once
   * (in the same turn as the check that the room is still loaded), so a room
   * is never unloaded between being found and being joined.
   */
  async enter<T>(name: string, address: string | undefined, use: (room: Room) => T): Promise<RoomEntry<T>> {
    const key = roomKey(name);
    for (;;) {
      let entry = this.loaded.get(key);
      if (!entry) {
        const refusal = this.makeSpace(address);
        if (refusal) return refusal;
        entry = this.startLoading(key, name);
      }
      let room: Room;
      try {
        room = entry.room ?? (await entry.loading);
      } catch (error) {
        this.options.logger.error(`room ${JSON.stringify(name)} could not be loaded: ${describe(error)}`);
        return { ok: false, code: 'room_unavailable', message: `The room "${name}" cannot be opened right now; try again later.` };
      }
      // Unloaded while this entry waited (to make space for another): load it again.
      if (this.loaded.get(key) !== entry) continue;
      const value = use(room);
      if (room.memberCount === 0) this.noteEmpty(entry);
      return { ok: true, value };
    }
  }

  /** The room, if it is loaded and ready now. */
  loadedRoom(key: string): Room | undefined {
    return this.loaded.get(key)?.room;
  }

  /** Every room loaded and ready now. */
  *readyRooms(): Iterable<Room> {
    for (const entry of this.loaded.values()) if (entry.room) yield entry.room;
  }

  /** The latest seq a room had when it was last unloaded (forgotten once it is loaded again). */
  lastSeqWhenUnloaded(key: string): number | undefined {
    return this.seqWhenUnloaded.get(key);
  }

  /** Every loaded room (for shutdown). */
  async loadedRooms(): Promise<Room[]> {
    const settled = await Promise.allSettled([...this.loaded.values()].map((entry) => entry.loading));
    return settled.filter((result) => result.status === 'fulfilled').map((result) => result.value);
  }

  /** Waits for rooms being unloaded to close their files. */
  async closingDone(): Promise<void> {
    await Promise.allSettled([...this.closing.values()]);
  }

  /** Checks the limits before a room is loaded; unloads an empty room if the server is at its limit. */
  private makeSpace(address: string | undefined): RoomRefusal | undefined {
    const { maxRooms, newRoomsPerMinute } = this.options;
    if (maxRooms > 0 && this.loaded.size >= maxRooms && !this.unloadAnEmptyRoom()) {
      return { ok: false, code: 'too_many_rooms', message: `The server has ${maxRooms} rooms open, the most it keeps at once; try again later.` };
    }
    if (!this.newRooms.tryTake(address)) {
      return { ok: false, code: 'too_many_rooms', message: `This address has opened ${newRoomsPerMinute} rooms within a minute, the most it may; try again in a little while.` };
    }
    return undefined;
  }

  private startLoading(key: string, name: string): Loaded {
    const entry: Loaded = { key, loading: this.load(key, name) };
    this.loaded.set(key, entry);
    entry.loading.then(
      (room) => {
        entry.room = room;
        room.onEmptied = () => this.noteEmpty(entry);
      },
      () => {
        // A room that failed to load may be tried again by the next entry.
        if (this.loaded.get(key) === entry) this.loaded.delete(key);
      },
    );
    return entry;
  }

  private async load(key: string, name: string): Promise<Room> {
    await this.closing.get(key);
    const { folder, retainEvents, logger, maxReactionsPerMessage } = this.options;
    const limits = { maxReactionsPerMessage };
    let room: Room;
    if (this.options.openShared) {
      room = await this.options.openShared(key, name);
    } else if (folder === undefined) {
      room = new Room(name, RoomLog.inMemory(retainEvents, logger), [], retainEvents, logger, Date.now, limits);
    } else {
      const stored = await RoomLog.open(folder, key, name, retainEvents, logger);
      room = new Room(stored.name, stored.log, stored.records, retainEvents, logger, Date.now, limits);
    }
    this.seqWhenUnloaded.delete(key);
    this.options.prepare?.(room);
    return room;
  }

  /** Starts the idle clock of a room that has just become empty. */
  private noteEmpty(entry: Loaded): void {
    clearTimeout(entry.idleTimer);
    this.emptyRooms.add(entry);
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined;
      const room = entry.room;
      if (!room || room.memberCount > 0) {
        this.emptyRooms.delete(entry);
      } else if (room.isIdle) {
        this.unload(entry);
      } else {
        // Empty, but its last departure is still being stored: look again later.
        this.noteEmpty(entry);
      }
    }, this.options.roomIdleMs);
    entry.idleTimer.unref();
  }

  private unloadAnEmptyRoom(): boolean {
    for (const entry of this.emptyRooms) {
      if (entry.room?.isIdle) {
        this.unload(entry);
        return true;
      }
      if (entry.room && entry.room.memberCount > 0) this.emptyRooms.delete(entry);
    }
    return false;
  }

  private unload(entry: Loaded): void {
    const room = entry.room;
    if (!room || this.loaded.get(entry.key) !== entry) return;
    this.loaded.delete(entry.key);
    this.emptyRooms.delete(entry);
    clearTimeout(entry.idleTimer);
    room.onEmptied = undefined;
    if (this.seqWhenUnloaded.size >= REMEMBERED_UNLOADED_ROOMS) this.seqWhenUnloaded.clear();
    // With --memory an unloaded room's history is gone, so its seq says nothing about what comes back.
    if (this.options.folder !== undefined) this.seqWhenUnloaded.set(entry.key, room.latestSeq);
    const closed: Promise<void> = room
      .close()
      .catch((error: unknown) => this.options.logger.error(`room ${JSON.stringify(room.name)}: closing its log failed: ${describe(error)}`))
      .finally(() => {
        if (this.closing.get(entry.key) === closed) this.closing.delete(entry.key);
      });
    this.closing.set(entry.key, closed);
  }
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
