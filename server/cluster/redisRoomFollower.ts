/**
 * Follows rooms for one node: hands each room's events to the node in strict
 * seq order, each once, with no gap, whichever node published them.
 *
 * PUB/SUB is only a hint. Redis delivers a published message at most once,
 * not at all to a subscriber that is reconnecting, and drops a subscriber
 * whose output buffer grows past `client-output-buffer-limit pubsub`. So:
 * - a live event is delivered at once only when it is the next seq;
 * - anything else (a gap, another epoch) starts a fill: the room's stream is
 *   read from the last delivered seq, in batches, before anything later is
 *   delivered, and live events that arrive meanwhile only ask for another read;
 * - after every reconnect of the subscriber (Redis restarted, or dropped us)
 *   every room is filled again, after the subscriptions are back, and the
 *   last delivered event is compared with the stream's copy;
 * - a periodic check of each room's last seq catches a loss that no later
 *   event would reveal.
 *
 * When the stream no longer continues what was delivered, the room is reset
 * instead (see RoomReset): Redis came back empty (new epoch), a failover
 * lost delivered events (rewound), or the events after the last delivered
 * one were trimmed away. Memory stays bounded: no live event is buffered, and
 * a fill holds one batch at a time.
 */
import { Disposable, toDisposable } from '../../shared/disposable';
import type { RedisConnection } from './redisConnection';
import { decodeLiveEvent, type RedisRoomLog, type RoomPosition, SIGNAL_PREFIX, type StoredRoomEvent } from './redisRoomLog';

export type RoomResetReason =
  /** Redis lost the room (restarted without its AOF): a new epoch, whose seqs start again. */
  | 'epoch'
  /** Same epoch, but Redis no longer holds events that were delivered (an asynchronous failover lost them); their seqs will be given again. */
  | 'rewound'
  /** Events after the last delivered one are no longer retained (the node was cut off for a long time). */
  | 'trimmed';

export interface RoomReset {
  reason: RoomResetReason;
  previousEpoch: string;
  epoch: string;
  /** The last seq delivered before the reset. */
  lastDelivered: number;
  /** Delivery goes on after this seq of `epoch`; reload the room's view up to it (RedisRoomLog.readBefore(seq + 1, …)). */
  seq: number;
}

export interface RoomFollowerHandlers {
  /** Each followed room's events, in seq order, each seq once. */
  onEvent(roomKey: string, event: StoredRoomEvent): void;
  /** The room's stream no longer continues what was delivered: drop the room's view and reload it. */
  onReset(roomKey: string, reset: RoomReset): void;
  /** A fill or check could not reach Redis (it is retried), or a handler threw; for the log. */
  onError?(error: unknown): void;
  /** A signal on a followed room's channel (RedisRoomLog.signal): not an event, never stored, at most once. */
  onSignal?(roomKey: string, signal: string): void;
}

export interface RoomFollowerOptions {
  /** Events read from the stream per round of a fill. */
  fillBatch?: number;
  /** How often each followed room's last seq is compared with what was delivered. */
  checkIntervalMs?: number;
}

export const DEFAULT_ROOM_FOLLOWER_OPTIONS = Object.freeze({ fillBatch: 500, checkIntervalMs: 1_000 });

/** A fill reads at most this many batches before it lets other rooms' fills run; it is picked up again at once. */
const MAX_FILL_ROUNDS = 100;

interface FollowedRoom {
  readonly roomKey: string;
  /** Settles when `follow` has subscribed and caught up (or failed to). */
  started: Promise<void>;
  readonly channel: string;
  readonly listener: (payload: string) => void;
  epoch: string;
  lastSeq: number;
  /** The last delivered event's encoding, to tell whether Redis still holds the same event at that seq. */
  lastEncoded: string | undefined;
  /** A fill is running; live events only ask for another round. */
  filling: Promise<void> | undefined;
  /** Why the last fill stopped early (Redis unreachable), until a fill succeeds. */
  fillError: unknown;
  /** Another round is needed when the current one ends (or when Redis is back). */
  fillWanted: boolean;
  /** The next fill starts by checking the last delivered event (after a reconnect). */
  verifyWanted: boolean;
  /** The room's last seq in Redis at the previous check: still undelivered at this one means PUB/SUB lost it. */
  seqAtLastCheck: number;
}

/** Follows rooms through its own subscriber connection; fills gaps through the log's connection. */
export class RedisRoomFollower extends Disposable {
  private readonly rooms = new Map<string, FollowedRoom>();
  private readonly fillBatch: number;
  private checking = false;

  /**
   * `subscriber` must be a connection of its own (a subscribed connection
   * cannot run other commands); the follower does not close it.
   */
  constructor(
    private readonly log: RedisRoomLog,
    private readonly subscriber: RedisConnection,
    private readonly handlers: RoomFollowerHandlers,
    options: RoomFollowerOptions = {},
  ) {
    super();
    const fillBatch = options.fillBatch ?? DEFAULT_ROOM_FOLLOWER_OPTIONS.fillBatch;
    const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_ROOM_FOLLOWER_OPTIONS.checkIntervalMs;
    if (!Number.isInteger(fillBatch) || fillBatch < 1) throw new Error('fillBatch must be a whole number >= 1');
    this.fillBatch = fillBatch;
    // node-redis subscribes again before it reports ready, so a fill started
    // here cannot miss an event published after its read.
    this.register(subscriber.onReady(() => this.refillAll()));
    const timer = setInterval(() => void this.checkAll(), checkIntervalMs);
    timer.unref();
    this.register(toDisposable(() => clearInterval(timer)));
    this.register(
      toDisposable(() => {
        for (const room of this.rooms.values()) void this.subscriber.run((client) => client.unsubscribe(room.channel, room.listener)).catch(() => undefined);
        this.rooms.clear();
      }),
    );
  }

  /**
   * Starts following a room and resolves once it is subscribed and caught
   * up. With `from`, events after `from.seq` are delivered (a node that
   * already shows the room up to there); a different epoch is reported as a
   * reset. Without it, delivery starts after the room's current last seq.
   * Following a room twice changes nothing. Rejects with
   * RedisUnavailableError while Redis is unreachable (the room is then not
   * followed).
   */
  async follow(roomKey: string, from?: { epoch: string; seq: number }): Promise<RoomPosition> {
    const existing = this.rooms.get(roomKey);
    if (existing) {
      await existing.started;
      return this.positionOf(existing);
    }
    const room: FollowedRoom = {
      started: Promise.resolve(),
      roomKey,
      channel: this.log.keys.roomChannel(roomKey),
      listener: (payload) => this.onLive(room, payload),
      epoch: from?.epoch ?? '',
      lastSeq: from?.seq ?? 0,
      lastEncoded: undefined,
      filling: undefined,
      fillError: undefined,
      fillWanted: false,
      verifyWanted: false,
      seqAtLastCheck: 0,
    };
    this.rooms.set(roomKey, room);
    room.started = this.start(room, from);
    await room.started;
    return this.positionOf(room);
  }

  private async start(room: FollowedRoom, from: { epoch: string; seq: number } | undefined): Promise<void> {
    // Until the starting point is known, live events and reconnects only ask for a fill.
    let setupDone!: () => void;
    room.filling = new Promise<void>((resolve) => (setupDone = resolve));
    try {
      try {
        await this.subscriber.run((client) => client.subscribe(room.channel, room.listener));
        if (!from) {
          const position = await this.log.position(room.roomKey);
          room.epoch = position.epoch;
          room.lastSeq = position.seq;
        }
      } finally {
        room.filling = undefined;
        setupDone();
      }
      // Events may have come between the subscription and the position; read once more either way.
      await this.fill(room);
      if (room.fillError !== undefined) throw room.fillError;
    } catch (error) {
      await this.unfollow(room.roomKey).catch(() => undefined);
      throw error;
    }
  }

  /** Stops following a room; nothing more is delivered for it. */
  async unfollow(roomKey: string): Promise<void> {
    const room = this.rooms.get(roomKey);
    if (!room) return;
    this.rooms.delete(roomKey);
    await this.subscriber.run((client) => client.unsubscribe(room.channel, room.listener));
  }

  /** The last delivered seq of a followed room, and its epoch. */
  delivered(roomKey: string): { epoch: string; seq: number } | undefined {
    const room = this.rooms.get(roomKey);
    return room && { epoch: room.epoch, seq: room.lastSeq };
  }

  get followedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  private async positionOf(room: FollowedRoom): Promise<RoomPosition> {
    const { firstSeq } = await this.log.position(room.roomKey);
    return { epoch: room.epoch, seq: room.lastSeq, firstSeq };
  }

  private onLive(room: FollowedRoom, payload: string): void {
    if (this.rooms.get(room.roomKey) !== room) return;
    const live = decodeLiveEvent(payload);
    if (!live) {
      if (payload.startsWith(SIGNAL_PREFIX)) {
        try {
          this.handlers.onSignal?.(room.roomKey, payload.slice(SIGNAL_PREFIX.length));
        } catch (error) {
          this.handlers.onError?.(error);
        }
      }
      return;
    }
    if (live.epoch === room.epoch && live.event.seq <= room.lastSeq) return;
    if (!room.filling && live.epoch === room.epoch && live.event.seq === room.lastSeq + 1) {
      this.deliver(room, live.event);
      return;
    }
    room.fillWanted = true;
    if (!room.filling) void this.fill(room);
  }

  private deliver(room: FollowedRoom, event: StoredRoomEvent): void {
    room.lastSeq = event.seq;
    room.lastEncoded = event.encoded;
    try {
      this.handlers.onEvent(room.roomKey, event);
    } catch (error) {
      this.handlers.onError?.(error);
    }
  }

  private reset(room: FollowedRoom, reason: RoomResetReason, epoch: string, seq: number): void {
    const reset: RoomReset = { reason, previousEpoch: room.epoch, epoch, lastDelivered: room.lastSeq, seq };
    room.epoch = epoch;
    room.lastSeq = seq;
    room.lastEncoded = undefined;
    try {
      this.handlers.onReset(room.roomKey, reset);
    } catch (error) {
      this.handlers.onError?.(error);
    }
  }

  /** Runs fill rounds until the room is caught up; one fill per room at a time. Never rejects. */
  private fill(room: FollowedRoom): Promise<void> {
    if (room.filling) return room.filling;
    room.fillWanted = true;
    const run = async (): Promise<void> => {
      try {
        for (let round = 0; round < MAX_FILL_ROUNDS && room.fillWanted && this.rooms.get(room.roomKey) === room && !this.isDisposed; round++) {
          room.fillWanted = false;
          if (await this.fillRound(room)) room.fillWanted = true;
        }
        room.fillError = undefined;
      } catch (error) {
        // Redis is unreachable: try again when it is back (or at the next check).
        room.fillWanted = true;
        room.fillError = error;
        this.handlers.onError?.(error);
      } finally {
        room.filling = undefined;
      }
      if (room.fillWanted && room.fillError === undefined && this.rooms.get(room.roomKey) === room && !this.isDisposed) {
        // Rounds left over (a very busy room): carry on after other work had its turn.
        setImmediate(() => {
          if (!room.filling && room.fillWanted) void this.fill(room);
        });
      }
    };
    room.filling = run();
    return room.filling;
  }

  /** Reads one batch after the last delivered seq and delivers it; true when there may be more. */
  private async fillRound(room: FollowedRoom): Promise<boolean> {
    const verify = room.verifyWanted && room.lastEncoded !== undefined && room.lastSeq > 0;
    room.verifyWanted = false;
    const after = verify ? room.lastSeq - 1 : room.lastSeq;
    const page = await this.log.readAfter(room.roomKey, after, this.fillBatch);
    if (this.rooms.get(room.roomKey) !== room) return false;

    if (page.epoch !== room.epoch) {
      this.reset(room, 'epoch', page.epoch, page.seq);
      return true;
    }
    if (page.seq < room.lastSeq) {
      this.reset(room, 'rewound', page.epoch, page.seq);
      return true;
    }
    const events = page.events;
    if (verify && room.lastSeq >= page.firstSeq) {
      const stored = events[0];
      if (!stored || stored.seq !== room.lastSeq || stored.encoded !== room.lastEncoded) {
        this.reset(room, 'rewound', page.epoch, page.seq);
        return true;
      }
      events.shift();
    }
    // (When the last delivered event is itself trimmed there is nothing to compare it with.)
    if (page.seq > room.lastSeq && page.firstSeq > room.lastSeq + 1) {
      this.reset(room, 'trimmed', page.epoch, page.seq);
      return true;
    }
    for (const event of events) {
      if (this.rooms.get(room.roomKey) !== room) return false;
      if (event.seq !== room.lastSeq + 1) {
        // Cannot happen with one script numbering and storing each event; never deliver out of order if it does.
        this.reset(room, 'trimmed', page.epoch, page.seq);
        return true;
      }
      this.deliver(room, event);
    }
    return page.events.length >= this.fillBatch;
  }

  /** After a reconnect: every room may have missed events, and the history may have changed under it. */
  private refillAll(): void {
    for (const room of this.rooms.values()) {
      room.verifyWanted = true;
      room.fillWanted = true;
      if (!room.filling) void this.fill(room);
    }
  }

  /**
   * Compares each room's last seq in Redis with what was delivered. A room
   * is filled when events Redis already had at the previous check are still
   * not delivered (so events on their way through PUB/SUB cost nothing), when
   * its epoch changed, or when Redis is behind what was delivered.
   */
  private async checkAll(): Promise<void> {
    if (this.checking || this.rooms.size === 0 || !this.subscriber.isReady) return;
    this.checking = true;
    try {
      const latest = await this.log.latest([...this.rooms.keys()]);
      for (const [roomKey, position] of latest) {
        const room = this.rooms.get(roomKey);
        if (!room || room.filling) continue;
        const behind = room.lastSeq < Math.min(room.seqAtLastCheck, position.seq);
        room.seqAtLastCheck = position.seq;
        if (room.fillWanted || behind || position.epoch !== room.epoch || position.seq < room.lastSeq) void this.fill(room);
      }
    } catch (error) {
      this.handlers.onError?.(error);
    } finally {
      this.checking = false;
    }
  }
}
