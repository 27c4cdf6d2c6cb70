/**
 * Who is in which room across all nodes, and who was lost when a node died.
 *
 * A member holds one seat in a room however many connections, on however
 * many nodes, they have there: the room hears `joined` when the first seat
 * appears anywhere and `left` when the last one goes. In Redis:
 * - each node's seats: `[room, member]` → that member's connections in that
 *   room on that node;
 * - each room's members: member → how many nodes hold a seat for them;
 * - each node's heartbeat, a key that expires `heartbeatTtlMs` after the last
 *   beat, and the set of registered nodes.
 *
 * Every node beats every `checkIntervalMs` and looks for registered nodes
 * whose heartbeat has expired. A script claims such a node atomically: only
 * the survivor whose script takes it off the registered set gets its seats,
 * so two survivors never both announce. The claim moves the dead node's last
 * seats into the claimer's own "to announce" list and hands them to
 * `onLost`; they leave the list when `onLost` resolves (the `left` events are
 * stored). If the claimer dies first, whoever claims it inherits that list,
 * with the same de-duplication keys, so each `left` is stored once.
 *
 * A member is announced lost at most `heartbeatTtlMs + checkIntervalMs`
 * after the dead node's last beat (two of them if the first claimer dies too).
 *
 * A node that was taken for dead (it stalled past the TTL) or whose seats
 * Redis lost (restarted empty) notices at its next beat, puts its seats back
 * from its own record, and reports who regained a seat (`onResynced`), so the
 * room can hear `joined` again.
 */
import { randomBytes } from 'node:crypto';
import { Disposable, toDisposable } from '../../shared/disposable';
import { ClusterKeys } from './keys';
import { LuaScript, type RedisConnection } from './redisConnection';
import { type Announcement, type PublishResult, ROOM_LUA } from './redisRoomLog';

export interface Seat {
  room: string;
  member: string;
}

/** What a seat change that may announce came to: whether it was the member's first (or last) seat, and the event stored if so. */
export interface AnnouncedSeat {
  changed: boolean;
  published?: PublishResult;
}

export interface LostMember extends Seat {
  /** The node that died holding the member's last seat. */
  node: string;
  /** The same however often this loss is handed over: use it as the `left` event's de-duplication key. */
  dedupKey: string;
}

/**
 * `enter` and `leave` answer whether to announce; when the node first had to
 * put its seats back (it had been taken for dead), they answer false and
 * `onResynced` reports every change instead, this one included.
 */
export interface ClusterPresenceHandlers {
  /** Members whose last seat was on a dead node: store one `left` (reason `lost`) each, then resolve. A rejection hands them over again at the next check. */
  onLost(lost: LostMember[]): Promise<void>;
  /**
   * Redis was made to hold this node's own record of its seats again: after
   * Redis dropped them (`joined`: members who regained their first seat),
   * after departures it could not write while Redis was unreachable, or at
   * start, for seats an earlier process left under the same node id (`left`:
   * members whose last seat went). Announce each.
   */
  onResynced?(change: { joined: Seat[]; left: Seat[] }): Promise<void> | void;
  /** A check could not reach Redis (it is retried), or a handler failed; for the log. */
  onError?(error: unknown): void;
}

export interface ClusterPresenceOptions {
  namespace?: string;
  /** How long a node's heartbeat lives without a new beat: a node silent this long is taken for dead. */
  heartbeatTtlMs?: number;
  /** How often this node beats and looks for dead nodes; well under the TTL. */
  checkIntervalMs?: number;
}

export const DEFAULT_HEARTBEAT_TTL_MS = 5_000;

const SEAT_HELPERS = `
local function members_key(field)
  local seat = cjson.decode(field)
  return ARGV[1] .. '{' .. seat[1] .. '}:members', seat[2]
end
`;

// KEYS: nodes, node seats. ARGV: room prefix, node id, field, +1 or -1.
// Returns -1 when the node is not registered, 1 when the member's first (or last) seat in the room appeared (or went), else 0.
const CHANGE_SEAT = new LuaScript(
  'presenceChangeSeat',
  `${SEAT_HELPERS}
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return -1 end
local field, delta = ARGV[3], tonumber(ARGV[4])
local room_members, member = members_key(field)
local here = tonumber(redis.call('HGET', KEYS[2], field) or '0')
if delta > 0 then
  redis.call('HSET', KEYS[2], field, here + 1)
  if here > 0 then return 0 end
  if redis.call('HINCRBY', room_members, member, 1) == 1 then return 1 end
  return 0
end
if here == 0 then return 0 end
if here > 1 then
  redis.call('HSET', KEYS[2], field, here - 1)
  return 0
end
redis.call('HDEL', KEYS[2], field)
if redis.call('HINCRBY', room_members, member, -1) <= 0 then
  redis.call('HDEL', room_members, member)
  return 1
end
return 0
`,
);

// CHANGE_SEAT, with the arrival or departure it makes stored in the same step (see RedisRoomLog.announcement).
// KEYS: nodes, node seats, the room's 8 keys, its seat secrets. ARGV: room prefix, node id, field, +1 or -1,
// a v1 seat secret's digest to keep ('' for none), then publish_event's 7 (an empty body: announce nothing).
// Returns {-1} when the node is not registered, else {1 and publish_event's answer} when the member's first seat appeared (or last went), else {0}.
const CHANGE_SEAT_ANNOUNCING = new LuaScript(
  'presenceChangeSeatAnnouncing',
  `${SEAT_HELPERS}
${ROOM_LUA}
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return {-1} end
local field, delta, secret = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local room_members, member = members_key(field)
local here = tonumber(redis.call('HGET', KEYS[2], field) or '0')
local changed = false
if delta > 0 then
  redis.call('HSET', KEYS[2], field, here + 1)
  if secret ~= '' then redis.call('HSET', KEYS[11], member, secret) end
  if here == 0 and redis.call('HINCRBY', room_members, member, 1) == 1 then changed = true end
elseif here > 1 then
  redis.call('HSET', KEYS[2], field, here - 1)
elseif here == 1 then
  redis.call('HDEL', KEYS[2], field)
  if redis.call('HINCRBY', room_members, member, -1) <= 0 then
    redis.call('HDEL', room_members, member)
    redis.call('HDEL', KEYS[11], member)
    changed = true
  end
end
if not changed then return {0} end
if ARGV[6] == '' then return {1} end
local a = {}
for i = 1, 7 do a[i] = ARGV[5 + i] end
local published = publish_event(room_keys(3), a)
return {1, published[1], published[2], published[3], published[4]}
`,
);

// KEYS: nodes, heartbeat. ARGV: node id, ttl ms. Returns 1 when the node was not registered (first beat, or it had been claimed, or Redis lost it).
const BEAT = new LuaScript(
  'presenceBeat',
  `
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return redis.call('SADD', KEYS[1], ARGV[1])
`,
);

// KEYS: nodes, node seats, heartbeat, node's pending losses. ARGV: room prefix, node id, seats JSON [[field, count], …], ttl ms, '1' to stay registered or '0' to leave.
// Makes Redis hold exactly these seats for the node. Returns {fields that gained a first seat, fields that lost their last}.
const SYNC_SEATS = new LuaScript(
  'presenceSyncSeats',
  `${SEAT_HELPERS}
local wanted = {}
for _, seat in ipairs(cjson.decode(ARGV[3])) do wanted[seat[1]] = seat[2] end
local held = {}
local current = redis.call('HGETALL', KEYS[2])
for i = 1, #current, 2 do held[current[i]] = true end
local joined, left = {}, {}
for field, _ in pairs(held) do
  if not wanted[field] then
    redis.call('HDEL', KEYS[2], field)
    local room_members, member = members_key(field)
    if redis.call('HINCRBY', room_members, member, -1) <= 0 then
      redis.call('HDEL', room_members, member)
      table.insert(left, field)
    end
  end
end
for field, count in pairs(wanted) do
  redis.call('HSET', KEYS[2], field, count)
  if not held[field] then
    local room_members, member = members_key(field)
    if redis.call('HINCRBY', room_members, member, 1) == 1 then table.insert(joined, field) end
  end
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
  redis.call('SADD', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[3], KEYS[2])
  -- With losses still to announce, stay registered without a heartbeat: a survivor claims them.
  if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SREM', KEYS[1], ARGV[2]) end
end
return {joined, left}
`,
);

// KEYS: nodes, dead heartbeat, dead seats, dead's pending losses, claimer's pending losses.
// ARGV: room prefix, dead id, claim id. Returns {field, JSON [dead node, claim id], …} to announce, or {} when the node lives or is claimed.
const CLAIM = new LuaScript(
  'presenceClaim',
  `${SEAT_HELPERS}
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then return {} end
local found = {}
local origin = cjson.encode({ARGV[2], ARGV[3]})
local seats = redis.call('HGETALL', KEYS[3])
for i = 1, #seats, 2 do
  local room_members, member = members_key(seats[i])
  if redis.call('HINCRBY', room_members, member, -1) <= 0 then
    redis.call('HDEL', room_members, member)
    redis.call('HSET', KEYS[5], seats[i], origin)
    table.insert(found, seats[i])
    table.insert(found, origin)
  end
end
-- Losses the dead node had claimed but not yet announced are ours now, unless the member came back meanwhile.
local pending = redis.call('HGETALL', KEYS[4])
for i = 1, #pending, 2 do
  local room_members, member = members_key(pending[i])
  if redis.call('HEXISTS', room_members, member) == 0 then
    redis.call('HSET', KEYS[5], pending[i], pending[i + 1])
    table.insert(found, pending[i])
    table.insert(found, pending[i + 1])
  end
end
redis.call('DEL', KEYS[3], KEYS[4])
return found
`,
);

function seatField(room: string, member: string): string {
  return JSON.stringify([room, member]);
}

function seatOf(field: string): Seat {
  const [room, member] = JSON.parse(field) as [string, string];
  return { room, member };
}

function lostMember(field: string, origin: string): LostMember {
  const [node, claim] = JSON.parse(origin) as [string, string];
  return { ...seatOf(field), node, dedupKey: `lost ${claim} ${field}` };
}

/** One node's part in the cluster's presence. */
export class ClusterPresence extends Disposable {
  readonly keys: ClusterKeys;
  readonly heartbeatTtlMs: number;
  readonly checkIntervalMs: number;
  /** This node's own record of its seats: what it puts back when Redis lost them. */
  private readonly seats = new Map<string, number>();
  /** A change of seats could not be written; the next check writes the whole record. */
  private outOfSync = false;
  private checking: Promise<void> | undefined;
  private announcing: Promise<void> | undefined;

  /** Registers the node (beats once) and starts beating and watching the others. */
  static async start(connection: RedisConnection, nodeId: string, handlers: ClusterPresenceHandlers, options: ClusterPresenceOptions = {}): Promise<ClusterPresence> {
    const presence = new ClusterPresence(connection, nodeId, handlers, options);
    try {
      // Seats left under this id by an earlier process are given up (and reported as `left`).
      await presence.resync();
    } catch (error) {
      presence.dispose();
      throw error;
    }
    presence.startChecking();
    return presence;
  }

  private constructor(
    private readonly connection: RedisConnection,
    readonly nodeId: string,
    private readonly handlers: ClusterPresenceHandlers,
    options: ClusterPresenceOptions,
  ) {
    super();
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(nodeId)) throw new Error(`a node id is 1-64 letters, digits or _.:- (got ${JSON.stringify(nodeId)})`);
    this.keys = new ClusterKeys(options.namespace);
    this.heartbeatTtlMs = options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
    this.checkIntervalMs = options.checkIntervalMs ?? Math.max(50, Math.floor(this.heartbeatTtlMs / 5));
    if (this.checkIntervalMs * 2 > this.heartbeatTtlMs) throw new Error('checkIntervalMs must be at most half of heartbeatTtlMs, or a live node could be taken for dead');
  }

  private startChecking(): void {
    const timer = setInterval(() => void this.check(), this.checkIntervalMs);
    timer.unref();
    this.register(toDisposable(() => clearInterval(timer)));
  }

  /**
   * A connection of `member` entered `room` on this node; true when it is the
   * member's first seat there in the whole cluster (announce `joined`).
   * Rejects while Redis is unreachable (refuse the join).
   */
  async enter(room: string, member: string): Promise<boolean> {
    const field = seatField(room, member);
    this.seats.set(field, (this.seats.get(field) ?? 0) + 1);
    try {
      return await this.changeSeat(field, 1);
    } catch (error) {
      this.dropSeat(field);
      // The script may have run before the reply was lost; the next check makes Redis match the record.
      this.outOfSync = true;
      throw error;
    }
  }

  /**
   * A connection of `member` left `room` on this node; true when it was the
   * member's last seat in the cluster (announce `left`). While Redis is
   * unreachable this rejects, and the departure is written (and reported
   * through `onResynced`) once Redis is back.
   */
  async leave(room: string, member: string): Promise<boolean> {
    const field = seatField(room, member);
    this.dropSeat(field);
    try {
      return await this.changeSeat(field, -1);
    } catch (error) {
      this.outOfSync = true;
      throw error;
    }
  }

  /**
   * `enter`, and when this is the member's first seat in the cluster, the
   * announcement (a `joined` event) is stored in the same step, so arrivals
   * and departures are stored in the order the seats changed, whichever
   * nodes they came through. `secret` is kept for the member (a v1 seat
   * secret's digest). Rejects while Redis is unreachable.
   */
  async enterAnnouncing(room: string, member: string, announcement: Announcement, secret?: string): Promise<AnnouncedSeat> {
    const field = seatField(room, member);
    this.seats.set(field, (this.seats.get(field) ?? 0) + 1);
    try {
      return await this.changeSeatAnnouncing(room, field, 1, announcement, secret);
    } catch (error) {
      this.dropSeat(field);
      this.outOfSync = true;
      throw error;
    }
  }

  /** `leave`, storing the announcement (a `left` event, when given) in the same step when it was the member's last seat in the cluster. */
  async leaveAnnouncing(room: string, member: string, announcement: Announcement | undefined): Promise<AnnouncedSeat> {
    const field = seatField(room, member);
    this.dropSeat(field);
    try {
      return await this.changeSeatAnnouncing(room, field, -1, announcement);
    } catch (error) {
      this.outOfSync = true;
      throw error;
    }
  }

  private async changeSeatAnnouncing(room: string, field: string, delta: 1 | -1, announcement: Announcement | undefined, secret?: string): Promise<AnnouncedSeat> {
    const keys = [this.keys.nodes(), this.keys.nodeSeats(this.nodeId), ...(announcement?.keys ?? this.noRoomKeys(room)), this.keys.roomSeatSecrets(room)];
    const args = [this.keys.roomPrefix(), this.nodeId, field, delta, secret ?? '', ...(announcement?.args ?? [''])];
    const reply = (await CHANGE_SEAT_ANNOUNCING.run(this.connection, keys, args)) as number[] | string[];
    if (Number(reply[0]) === -1) {
      // Taken for dead, or Redis lost this node: putting its record back applies this change too, and onResynced reports it.
      await this.resync();
      return { changed: false };
    }
    if (Number(reply[0]) === 0) return { changed: false };
    if (reply.length < 5) return { changed: true };
    return { changed: true, published: { seq: Number(reply[1]), ts: Number(reply[2]), epoch: String(reply[3]), duplicate: Number(reply[4]) === 1 } };
  }

  /** Placeholders for the room keys of a seat change that announces nothing (the script leaves them alone). */
  private noRoomKeys(room: string): string[] {
    return Array.from({ length: 8 }, () => this.keys.roomMeta(room));
  }

  private dropSeat(field: string): void {
    const here = this.seats.get(field) ?? 0;
    if (here <= 1) this.seats.delete(field);
    else this.seats.set(field, here - 1);
  }

  /**
   * The record of seats changes before the script is sent, in the same turn,
   * so a resync sent later always carries the change and one sent earlier
   * runs before it.
   */
  private async changeSeat(field: string, delta: 1 | -1): Promise<boolean> {
    const args = [this.keys.roomPrefix(), this.nodeId, field, delta];
    const result = Number(await CHANGE_SEAT.run(this.connection, [this.keys.nodes(), this.keys.nodeSeats(this.nodeId)], args));
    if (result !== -1) return result === 1;
    // This node was taken for dead, or Redis lost it: putting its record back
    // applies this change too, and onResynced reports who gained or lost a seat.
    await this.resync();
    return false;
  }

  /** The room's members across the cluster. */
  async members(room: string): Promise<string[]> {
    return this.connection.run((client) => client.hKeys(this.keys.roomMembers(room)));
  }

  async memberCount(room: string): Promise<number> {
    return this.connection.run((client) => client.hLen(this.keys.roomMembers(room)));
  }

  /** Makes Redis hold exactly this node's own record of seats, and reports what that changed. */
  private async syncSeats(stayRegistered: boolean): Promise<{ joined: Seat[]; left: Seat[] }> {
    const record = JSON.stringify([...this.seats]);
    const reply = (await SYNC_SEATS.run(
      this.connection,
      [this.keys.nodes(), this.keys.nodeSeats(this.nodeId), this.keys.nodeHeartbeat(this.nodeId), this.keys.nodeLost(this.nodeId)],
      [this.keys.roomPrefix(), this.nodeId, record, this.heartbeatTtlMs, stayRegistered ? '1' : '0'],
    )) as [string[], string[]];
    this.outOfSync = false;
    return { joined: reply[0].map(seatOf), left: reply[1].map(seatOf) };
  }

  private async resync(): Promise<void> {
    const change = await this.syncSeats(true);
    if (change.joined.length > 0 || change.left.length > 0) await this.handlers.onResynced?.(change);
  }

  /** One round: beat, put seats back if Redis dropped them, claim dead nodes, and start announcing pending losses. Never rejects. */
  check(): Promise<void> {
    this.checking ??= this.runCheck().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async runCheck(): Promise<void> {
    if (this.isDisposed) return;
    try {
      const unregistered = Number(await BEAT.run(this.connection, [this.keys.nodes(), this.keys.nodeHeartbeat(this.nodeId)], [this.nodeId, this.heartbeatTtlMs]));
      if (unregistered === 1 || this.outOfSync) await this.resync();
      await this.claimDeadNodes();
    } catch (error) {
      this.handlers.onError?.(error);
    }
    // Not awaited: a slow onLost must not hold up the heartbeat.
    this.announcing ??= this.announcePendingLosses()
      .catch((error: unknown) => this.handlers.onError?.(error))
      .finally(() => (this.announcing = undefined));
  }

  private async claimDeadNodes(): Promise<void> {
    const others = (await this.connection.run((client) => client.sMembers(this.keys.nodes()))).filter((node) => node !== this.nodeId);
    if (others.length === 0) return;
    const alive = await this.connection.run((client) => Promise.all(others.map((node) => client.exists(this.keys.nodeHeartbeat(node)))));
    for (const [i, node] of others.entries()) {
      if (alive[i] === 1 || this.isDisposed) continue;
      await CLAIM.run(
        this.connection,
        [this.keys.nodes(), this.keys.nodeHeartbeat(node), this.keys.nodeSeats(node), this.keys.nodeLost(node), this.keys.nodeLost(this.nodeId)],
        [this.keys.roomPrefix(), node, randomBytes(9).toString('base64url')],
      );
    }
  }

  /** Hands every loss this node has claimed to `onLost`, and forgets them once it resolved. */
  private async announcePendingLosses(): Promise<void> {
    const pendingKey = this.keys.nodeLost(this.nodeId);
    const pending = await this.connection.run((client) => client.hGetAll(pendingKey));
    const fields = Object.keys(pending);
    if (fields.length === 0) return;
    await this.handlers.onLost(fields.map((field) => lostMember(field, pending[field])));
    await this.connection.run((client) => client.hDel(pendingKey, fields));
  }

  /**
   * Leaves the cluster on purpose: every seat on this node goes, and the
   * members whose last seat it was are returned (announce `left` for each).
   * Losses this node claimed but could not announce are left to a survivor.
   */
  async shutdown(): Promise<Seat[]> {
    await this.checking;
    // Stop the timer first, so no beat registers the node again.
    this.dispose();
    this.seats.clear();
    const { left } = await this.syncSeats(false);
    return left;
  }
}
