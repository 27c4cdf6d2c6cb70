/**
 * One server of a cluster (`--redis`): what it shares with the others
 * through Redis, and how each room it has loaded is kept in step.
 *
 * A node holds three connections to Redis: one for scripts (publishes,
 * presence, the directory's changes), one subscribed to the rooms it has
 * loaded (RedisRoomFollower), and one that blocks on the directory's change
 * stream (RedisDirectory). Each loaded room gets a RedisRoomStore: the room
 * publishes through it, and every committed event, this node's own and the
 * others', comes back through the follower in seq order and is committed
 * into the room (`Room.receive`). A publish resolves only once its event is
 * committed here, so what a client is acked is what every member here saw.
 *
 * Presence goes through ClusterPresence: a seat change and the `joined` or
 * `left` it makes are stored in one script. A survivor that claims a dead
 * node stores a `left` (reason `lost`) for each member whose last seat was
 * there, with a de-duplication key that stays the same however often the
 * loss is handed over.
 */
import { hostname } from 'node:os';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Disposable, toDisposable } from '../../shared/disposable';
import type { LimitsV2 } from '../../shared/protocolV2';
import type { Logger } from '../log';
import { nameOfSeat, type Published, Room, type RoomResetReason, type SharedRoomStore } from '../room';
import type { HeldBody, PrivateFields, RecordClass } from '../roomEvents';
import { ClusterPresence, type LostMember, type Seat } from './clusterPresence';
import { ClusterKeys } from './keys';
import { LuaScript, RedisConnection, type RedisConnectionOptions, RedisUnavailableError } from './redisConnection';
import { RedisDirectory } from './redisDirectory';
import { type RoomReset, RedisRoomFollower } from './redisRoomFollower';
import { MAX_READ_EVENTS, newEpoch, RedisRoomLog, ROOM_LUA, type StoredRoomEvent } from './redisRoomLog';

export interface ClusterNodeOptions {
  /** `redis://[:password@]host:port` or `rediss://…` */
  url: string;
  /** This node's id in Redis (letters, digits, `_.:-`); a fresh one by default, so a restarted node is a new one. */
  nodeId?: string;
  namespace?: string;
  /** Events of each class every room keeps, at least. */
  retainEvents: number;
  identityTtlMs: number;
  /** A node silent this long is taken for dead and its members announced `lost`. */
  heartbeatTtlMs?: number;
  /** How long a publish waits for its event to come back to this node before it is reported as not stored. */
  commitTimeoutMs?: number;
  connection?: Pick<RedisConnectionOptions, 'tls' | 'commandTimeoutMs' | 'connectTimeoutMs'>;
  logger: Logger;
}

export const DEFAULT_COMMIT_TIMEOUT_MS = 10_000;
/** How long a node waits for Redis at start before it gives up. */
const START_TIMEOUT_MS = 10_000;

// KEYS: the room's 8 keys, then its members hash. ARGV: a new epoch.
// Returns {epoch, the last seq, the members (seat ids) across the cluster}: where a room stands, read in one step.
const SNAPSHOT = new LuaScript(
  'roomSnapshot',
  `${ROOM_LUA}
local k = room_keys(1)
local epoch = ensure_epoch(k, ARGV[1])
return {epoch, tonumber(redis.call('HGET', k[1], 'seq')), redis.call('HKEYS', KEYS[9])}
`,
);

export function defaultNodeId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 40)}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** A publish waiting for its event to be committed here. */
interface CommitWaiter {
  epoch: string;
  seq: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

/** A room's store on one node of a cluster (see SharedRoomStore in room.ts). */
export class RedisRoomStore implements SharedRoomStore {
  room: Room | undefined;
  private currentEpoch: string;
  private readonly waiters: CommitWaiter[] = [];
  private publishing = 0;
  private closed = false;

  constructor(
    private readonly node: ClusterNode,
    readonly key: string,
    epoch: string,
  ) {
    this.currentEpoch = epoch;
  }

  get epoch(): string {
    return this.currentEpoch;
  }

  get isBusy(): boolean {
    return this.publishing > 0 || this.waiters.length > 0;
  }

  async publish(body: HeldBody, fields: PrivateFields & { id?: string }, recordClass: RecordClass, dedupKey: string | undefined, deletes: number | undefined): Promise<Published> {
    this.publishing += 1;
    try {
      const result = await this.node.log.publish(this.key, recordOf(body, fields), dedupKey ?? '', { eventClass: recordClass, deletes });
      await this.committed(result.epoch, result.seq);
      return { seq: result.seq, duplicate: result.duplicate };
    } finally {
      this.publishing -= 1;
    }
  }

  async enter(seat: string, joined: HeldBody, secret?: string): Promise<void> {
    this.publishing += 1;
    try {
      const announcement = this.node.log.announcement(this.key, recordOf(joined, { seat }), { eventClass: 'presence' });
      const result = await this.node.presence.enterAnnouncing(this.key, seat, announcement, secret);
      if (result.published) await this.committed(result.published.epoch, result.published.seq);
    } finally {
      this.publishing -= 1;
    }
  }

  async leave(seat: string, left: HeldBody | undefined): Promise<boolean> {
    this.publishing += 1;
    try {
      const announcement = left === undefined ? undefined : this.node.log.announcement(this.key, recordOf(left, { seat }), { eventClass: 'presence' });
      const result = await this.node.presence.leaveAnnouncing(this.key, seat, announcement);
      if (result.published) await this.committed(result.published.epoch, result.published.seq);
      return result.changed;
    } finally {
      this.publishing -= 1;
    }
  }

  signal(name: string): void {
    this.node.log.signal(this.key, `${this.node.nodeId} ${name}`).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failWaiters(new RedisUnavailableError('the room was closed'));
    await this.node.unloaded(this);
  }

  /** Resolves once the event at `seq` of `epoch` is committed into the room here. */
  private committed(epoch: string, seq: number): Promise<void> {
    const room = this.room;
    if (room && epoch === this.currentEpoch && room.latestSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timeoutMs = this.node.commitTimeoutMs;
      const waiter: CommitWaiter = {
        epoch,
        seq,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          // Stored, but not seen here in time: the client's retry (same id) is answered with the stored seq.
          reject(new RedisUnavailableError(`event ${seq} of room ${this.key} did not come back from Redis within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private settle(): void {
    const seq = this.room?.latestSeq ?? 0;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter.epoch === this.currentEpoch && waiter.seq <= seq) {
        this.waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.resolve();
      }
    }
  }

  private failWaiters(error: unknown): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  /** An event committed by the cluster (any node's), in seq order. */
  received(event: StoredRoomEvent): void {
    this.room?.receive(recordFromRedis(event.encoded));
    this.settle();
  }

  /** The room's history was replaced (see RedisRoomFollower): it is read again, and every member is shown it afresh. */
  async reset(reset: RoomReset): Promise<void> {
    const room = this.room;
    if (!room) return;
    const snapshot = await this.node.readRoom(this.key, reset.seq);
    this.currentEpoch = reset.epoch;
    room.resetTo(snapshot.records, reset.seq, snapshot.members, reset.reason as RoomResetReason);
    // Publishes of the old history that were never seen here are lost with it; their clients send them again.
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter.epoch !== this.currentEpoch) {
        this.waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        waiter.reject(new RedisUnavailableError(`room ${this.key}: Redis lost its history (${reset.reason})`));
      }
    }
    this.settle();
  }
}

/**
 * An event as Redis stored it (`seq` and `ts` first, as the publish script
 * writes them), with `type` put first again, as a server alone sends it, so
 * a client that looks at the start of a line reads both alike.
 */
function recordFromRedis(encoded: string): Record<string, unknown> {
  const { type, ...rest } = JSON.parse(encoded) as Record<string, unknown>;
  return { type, ...rest };
}

/** An event as published to Redis: the public body with its private fields, without seq and ts (Redis gives both). */
function recordOf(body: HeldBody, fields: PrivateFields & { id?: string }): Record<string, unknown> {
  const record: Record<string, unknown> = { ...body, seq: undefined, ts: undefined };
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) record[key] = value;
  return record;
}

export class ClusterNode extends Disposable {
  readonly nodeId: string;
  readonly log: RedisRoomLog;
  readonly keys: ClusterKeys;
  readonly commitTimeoutMs: number;
  private readonly stores = new Map<string, RedisRoomStore>();
  private follower!: RedisRoomFollower;
  presence!: ClusterPresence;
  directory!: RedisDirectory;
  /** Room key → name, for rooms whose events this node stores without having them loaded (a loss it announces). */
  roomName: (key: string) => string = (key) => key;

  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const node = new ClusterNode(options);
    try {
      await node.start();
    } catch (error) {
      node.dispose();
      throw error;
    }
    return node;
  }

  private readonly connection: RedisConnection;

  private constructor(private readonly options: ClusterNodeOptions) {
    super();
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.keys = new ClusterKeys(options.namespace);
    this.commitTimeoutMs = options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    this.connection = this.register(RedisConnection.open(options.url, { ...options.connection, name: `chat-room ${this.nodeId}` }));
    this.log = new RedisRoomLog(this.connection, { namespace: options.namespace, retainEvents: options.retainEvents });
  }

  private async start(): Promise<void> {
    const { logger } = this.options;
    await this.connection.ready(START_TIMEOUT_MS);
    const subscriber = this.register(this.connection.duplicate(`chat-room ${this.nodeId} rooms`));
    const reader = this.register(this.connection.duplicate(`chat-room ${this.nodeId} directory`));
    await Promise.all([subscriber.ready(START_TIMEOUT_MS), reader.ready(START_TIMEOUT_MS)]);
    let lastError = '';
    const onError = (error: unknown): void => {
      // One line per kind of trouble, not one per retry.
      const text = error instanceof Error ? error.message : String(error);
      if (text !== lastError) logger.warn(`cluster: ${text}`);
      lastError = text;
    };
    this.register(this.connection.onReady(() => {
      if (lastError !== '') logger.info('cluster: Redis is reachable again');
      lastError = '';
    }));
    this.follower = this.register(
      new RedisRoomFollower(this.log, subscriber, {
        onEvent: (key, event) => this.stores.get(key)?.received(event),
        onReset: (key, reset) => {
          const store = this.stores.get(key);
          if (!store) return;
          logger.warn(`room ${key}: its history in Redis was replaced (${reset.reason}); its members are shown it afresh`);
          store.reset(reset).catch(onError);
        },
        onSignal: (key, signal) => {
          const space = signal.indexOf(' ');
          if (space < 0 || signal.slice(0, space) === this.nodeId) return;
          this.stores.get(key)?.room?.typingFrom(signal.slice(space + 1));
        },
        onError,
      }),
    );
    this.directory = this.register(await RedisDirectory.open(this.connection, reader, { namespace: this.options.namespace, identityTtlMs: this.options.identityTtlMs, logger }));
    this.presence = this.register(
      await ClusterPresence.start(this.connection, this.nodeId, { onLost: (lost) => this.announceLost(lost), onResynced: (change) => this.announceResynced(change), onError }, {
        namespace: this.options.namespace,
        heartbeatTtlMs: this.options.heartbeatTtlMs,
      }),
    );
    this.register(toDisposable(() => this.stores.clear()));
  }

  /**
   * Loads a room from Redis: its retained events up to where it stands, and
   * who is in it on any node; then follows it, so every later event is
   * committed into it in order.
   */
  async openRoom(key: string, name: string, retainEvents: number, logger: Logger, limits: Pick<LimitsV2, 'maxReactionsPerMessage'>): Promise<Room> {
    const snapshot = await this.readRoom(key, undefined);
    const store = new RedisRoomStore(this, key, snapshot.epoch);
    const room = new Room(name, store, snapshot.records, retainEvents, logger, Date.now, limits, { seq: snapshot.seq, members: snapshot.members });
    store.room = room;
    this.stores.set(key, store);
    try {
      await this.follower.follow(key, { epoch: snapshot.epoch, seq: snapshot.seq });
    } catch (error) {
      this.stores.delete(key);
      throw error;
    }
    return room;
  }

  /** A room's retained events up to `seq` (its last, when undefined), oldest first, its epoch, and who is in it. */
  async readRoom(key: string, seq: number | undefined): Promise<{ epoch: string; seq: number; records: Record<string, unknown>[]; members: [string, string][] }> {
    const [epoch, last, seats] = (await SNAPSHOT.run(this.connection, [...this.log.roomKeys(key), this.keys.roomMembers(key)], [newEpoch()])) as [string, number, string[]];
    const upTo = seq ?? Number(last);
    const pages: Record<string, unknown>[][] = [];
    // Each class keeps `retainEvents`; the room reads back as many of each as the file log would.
    let wanted = this.log.retainEvents * 3;
    let before = upTo + 1;
    while (wanted > 0 && before > 1) {
      const page = await this.log.readBefore(key, before, Math.min(MAX_READ_EVENTS, wanted));
      if (page.epoch !== epoch) throw new RedisUnavailableError(`room ${key}: Redis lost its history while it was being read`);
      if (page.events.length === 0) break;
      pages.unshift(page.events.map((event) => recordFromRedis(event.encoded)));
      wanted -= page.events.length;
      before = page.events[0].seq;
      if (!page.more) break;
    }
    return { epoch, seq: upTo, records: pages.flat(), members: seats.map((seat) => [seat, nameOfSeat(seat)]) };
  }

  /** A room was unloaded here: stop following it. */
  async unloaded(store: RedisRoomStore): Promise<void> {
    if (this.stores.get(store.key) !== store) return;
    this.stores.delete(store.key);
    await this.follower.unfollow(store.key).catch(() => undefined);
  }

  /** Whether the v1 seat `seat` in the room was handed a secret with this digest (by any node). */
  async seatSecretMatches(key: string, seat: string, secretDigest: string): Promise<boolean> {
    const stored = await this.connection.run((client) => client.hGet(this.keys.roomSeatSecrets(key), seat));
    if (stored === null || stored === undefined) return false;
    const a = Buffer.from(stored);
    const b = Buffer.from(secretDigest);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Members whose last seat was on a dead node: one `left` each (reason `lost`), unless they came back meanwhile. */
  private async announceLost(lost: LostMember[]): Promise<void> {
    await Promise.all(
      lost.map(async ({ room: key, member: seat, dedupKey }) => {
        const left = { type: 'left', room: this.roomName(key), name: nameOfSeat(seat), reason: 'lost', seat };
        const published = await this.log.publishIf(key, seat, false, left, dedupKey, { eventClass: 'presence' });
        if (published && !published.duplicate) this.options.logger.info(`cluster: ${nameOfSeat(seat)} was lost from ${this.roomName(key)} with node ${lost[0].node}`);
      }),
    );
  }

  /** Seats Redis was made to hold again: announce who regained or lost one. */
  private async announceResynced(change: { joined: Seat[]; left: Seat[] }): Promise<void> {
    const announce = (seat: Seat, present: boolean, event: Record<string, unknown>): Promise<unknown> =>
      this.log.publishIf(seat.room, seat.member, present, { room: this.roomName(seat.room), name: nameOfSeat(seat.member), seat: seat.member, ...event }, '', { eventClass: 'presence' });
    await Promise.all([
      ...change.joined.map((seat) => announce(seat, true, { type: 'joined' })),
      ...change.left.map((seat) => announce(seat, false, { type: 'left', reason: 'lost' })),
    ]);
  }

  /** Leaves the cluster on purpose (after the rooms' departures are stored): seats left over are given up. */
  async shutdown(): Promise<void> {
    try {
      const left = await this.presence.shutdown();
      await this.announceResynced({ joined: [], left });
    } catch (error) {
      this.options.logger.warn(`cluster: could not give up this node's seats (${String(error)}); a survivor announces them lost`);
    }
    await this.directory.close();
    this.dispose();
  }
}
