/**
 * Each room's events in Redis: one total order per room whichever node an
 * event came through, de-duplication across nodes, and reads for replay,
 * gap filling and history pages.
 *
 * One Lua script per publish does everything atomically: look up the
 * de-duplication key, take the room's next seq, add the event to the room's
 * stream (its entry ID is the seq), trim the stream, remember the key, and
 * PUBLISH the event for the nodes that follow the room (see
 * redisRoomFollower.ts). The design follows Centrifugo's Redis engine.
 *
 * Durability: `publish` resolves after Redis ran the script, and Redis
 * replies only after its AOF is written; with `appendonly yes` and
 * `appendfsync always` that write is fsynced, so an acknowledged event
 * survives Redis being killed. With `everysec` (Redis's default) up to a
 * second of acknowledged events can be lost. Replication to replicas is
 * asynchronous: a replica promoted after the primary died may lack the
 * newest acknowledged events, and then hands their seqs out again (same
 * epoch). `replicas` below narrows that window with WAIT; the follower
 * reports such a rewind when it notices one. See docs/scaling.md.
 *
 * Epoch: a random id kept with the room's seq, made when the room is first
 * written or read. If Redis lost the room (restarted without its AOF), the
 * next write or read makes a new one, so anyone holding the old epoch knows
 * their seqs no longer mean the same events.
 */
import { randomBytes } from 'node:crypto';
import { ClusterKeys } from './keys';
import { LuaScript, RedisUnavailableError, type RedisConnection } from './redisConnection';

/** An event as stored: `encoded` is its JSON with `seq` and `ts` set by Redis, ready for the wire. */
export interface StoredRoomEvent {
  seq: number;
  /** Milliseconds since 1970 by Redis's clock, never lower than the room's previous event's. */
  ts: number;
  encoded: string;
}

export interface PublishResult {
  seq: number;
  ts: number;
  epoch: string;
  /** True when the de-duplication key was seen before: nothing new was stored, and seq/ts are the first time's. */
  duplicate: boolean;
}

/** Where a room stands. */
export interface RoomPosition {
  epoch: string;
  /** The last seq given out (0 for a room with no events). */
  seq: number;
  /** The oldest retained seq (seq + 1 when nothing is retained). */
  firstSeq: number;
}

export interface EventsAfter extends RoomPosition {
  /** Oldest first; fewer than asked when the room has no more, and starting past `after + 1` when older ones were trimmed. */
  events: StoredRoomEvent[];
}

export interface EventsBefore {
  epoch: string;
  /** Oldest first. */
  events: StoredRoomEvent[];
  /** Whether the room retains events older than these. */
  more: boolean;
}

export interface RedisRoomLogOptions {
  namespace?: string;
  /**
   * Events kept per room, at least. Trimming is approximate (`MAXLEN ~`):
   * Redis drops only whole internal nodes of the stream (100 entries each by
   * default, `stream-node-max-entries`), so a room holds between this and
   * about this plus 100 events. That costs nothing per publish, where exact
   * trimming would rewrite a node each time.
   */
  retainEvents?: number;
  /**
   * After each publish, wait until this many replicas have it (Redis WAIT),
   * so a failover to one of them keeps it. Fewer in time: the publish fails
   * with RedisUnavailableError although the primary stored it, and a retry
   * with the same de-duplication key returns the same seq.
   */
  replicas?: { count: number; timeoutMs: number };
}

export const MIN_RETAINED_EVENTS = 10_000;
/** Reads ask for at most this many events at once, so one reply stays small. */
export const MAX_READ_EVENTS = 1_000;
/** `latest` sends this many HMGETs in one pipeline. */
const LATEST_CHUNK = 500;

/**
 * Shared by every script: finds the room's epoch, or starts a new one. A room
 * without meta but with events or de-duplication keys lost part of its data
 * (an eviction, or a partly restored dump), so what is left is dropped rather
 * than mixed with new seqs.
 */
const ENSURE_EPOCH = `
local function ensure_epoch(meta, events, dedup, new_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  redis.call('DEL', events, dedup)
  redis.call('HSET', meta, 'epoch', new_epoch, 'seq', 0, 'ts', 0)
  return new_epoch
end

local function first_seq(events, seq)
  local first = redis.call('XRANGE', events, '-', '+', 'COUNT', 1)
  if #first == 0 then return seq + 1 end
  return tonumber(string.match(first[1][1], '^(%d+)'))
end

local function entry_ts(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return tonumber(fields[i + 1]) end
  end
  return 0
end
`;

// KEYS: meta, events, dedup. ARGV: body (JSON object without seq/ts), dedup key ('' for none), retain, new epoch, channel.
// Returns {seq, ts, epoch, duplicate (0/1)}.
const PUBLISH = new LuaScript(
  'publish',
  `${ENSURE_EPOCH}
local meta, events, dedup = KEYS[1], KEYS[2], KEYS[3]
local body, dedup_key, retain, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local epoch = ensure_epoch(meta, events, dedup, ARGV[4])

if dedup_key ~= '' then
  local earlier = redis.call('ZSCORE', dedup, dedup_key)
  if earlier then
    local entry = redis.call('XRANGE', events, earlier, earlier)
    local ts = 0
    if #entry > 0 then ts = entry_ts(entry[1]) end
    return {tonumber(earlier), ts, epoch, 1}
  end
end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local last_ts = tonumber(redis.call('HGET', meta, 'ts') or '0')
if ts < last_ts then ts = last_ts end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('HSET', meta, 'ts', ts)

local head = '{"seq":' .. seq .. ',"ts":' .. string.format('%d', ts)
local encoded
if body == '{}' then encoded = head .. '}' else encoded = head .. ',' .. string.sub(body, 2) end
redis.call('XADD', events, 'MAXLEN', '~', retain, tostring(seq), 'e', encoded, 't', string.format('%d', ts))

if dedup_key ~= '' then redis.call('ZADD', dedup, seq, dedup_key) end
-- A key is remembered exactly as long as its event is retained.
redis.call('ZREMRANGEBYSCORE', dedup, '-inf', '(' .. first_seq(events, seq))

redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. string.format('%d', ts) .. ' ' .. encoded)
return {seq, ts, epoch, 0}
`,
);

// KEYS: meta, events, dedup. ARGV: after seq, count, new epoch. Returns {epoch, seq, firstSeq, entries}.
const READ_AFTER = new LuaScript(
  'readAfter',
  `${ENSURE_EPOCH}
local meta, events, dedup = KEYS[1], KEYS[2], KEYS[3]
local epoch = ensure_epoch(meta, events, dedup, ARGV[3])
local seq = tonumber(redis.call('HGET', meta, 'seq'))
local entries = {}
if tonumber(ARGV[2]) > 0 then
  entries = redis.call('XRANGE', events, '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
end
return {epoch, seq, first_seq(events, seq), entries}
`,
);

// KEYS: meta, events, dedup. ARGV: before seq, count, new epoch. Returns {epoch, entries newest first} (count + 1 of them at most).
const READ_BEFORE = new LuaScript(
  'readBefore',
  `${ENSURE_EPOCH}
local meta, events, dedup = KEYS[1], KEYS[2], KEYS[3]
local epoch = ensure_epoch(meta, events, dedup, ARGV[3])
local entries = redis.call('XREVRANGE', events, '(' .. ARGV[1] .. '-0', '-', 'COUNT', tonumber(ARGV[2]) + 1)
return {epoch, entries}
`,
);

type StreamEntry = [string, string[]];

function toStoredEvent(entry: StreamEntry): StoredRoomEvent {
  const [id, fields] = entry;
  let encoded = '';
  let ts = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'e') encoded = fields[i + 1];
    else if (fields[i] === 't') ts = Number(fields[i + 1]);
  }
  return { seq: Number(id.slice(0, id.indexOf('-'))), ts, encoded };
}

/** A room event as the publish script sends it on the room's channel, or undefined for anything else. */
export function decodeLiveEvent(payload: string): { epoch: string; event: StoredRoomEvent } | undefined {
  const match = /^(\S+) (\d+) (\d+) /.exec(payload);
  if (!match) return undefined;
  return { epoch: match[1], event: { seq: Number(match[2]), ts: Number(match[3]), encoded: payload.slice(match[0].length) } };
}

/** A fresh epoch: 96 random bits, base64url (no spaces, so it can lead a PUB/SUB payload). */
export function newEpoch(): string {
  return randomBytes(12).toString('base64url');
}

/** Encodes an event for storage: a JSON object without `seq` and `ts`, which Redis fills in. */
export function encodeEventBody(event: Record<string, unknown> | string): string {
  const body = typeof event === 'string' ? event : JSON.stringify({ ...event, seq: undefined, ts: undefined });
  if (!body.startsWith('{') || !body.endsWith('}')) throw new Error('an event must be encoded as a JSON object');
  if (typeof event === 'string' && /"(seq|ts)"\s*:/.test(body)) {
    // A top-level seq or ts would be written twice; the object form strips them instead.
    const parsed = JSON.parse(body) as Record<string, unknown>;
    if ('seq' in parsed || 'ts' in parsed) throw new Error('an encoded event must not carry seq or ts: Redis assigns them');
  }
  return body;
}

function clampCount(count: number): number {
  if (!Number.isInteger(count) || count < 0) throw new Error(`a count must be a whole number >= 0 (got ${count})`);
  return Math.min(count, MAX_READ_EVENTS);
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`a seq must be a whole number >= 0 (got ${seq})`);
}

/**
 * Rooms' events in Redis. Plain data in and out: room keys are strings,
 * events JSON objects (or their JSON text), seqs numbers. It owns no
 * connection: several logs and followers may share one.
 */
export class RedisRoomLog {
  readonly keys: ClusterKeys;
  readonly retainEvents: number;
  private readonly replicas: RedisRoomLogOptions['replicas'];

  constructor(
    private readonly connection: RedisConnection,
    options: RedisRoomLogOptions = {},
  ) {
    this.keys = new ClusterKeys(options.namespace);
    this.retainEvents = options.retainEvents ?? MIN_RETAINED_EVENTS;
    if (!Number.isInteger(this.retainEvents) || this.retainEvents < 1) throw new Error('retainEvents must be a whole number >= 1');
    this.replicas = options.replicas;
  }

  private roomKeys(roomKey: string): string[] {
    return [this.keys.roomMeta(roomKey), this.keys.roomEvents(roomKey), this.keys.roomDedup(roomKey)];
  }

  /**
   * Stores an event as the room's next one and publishes it to the room's
   * followers; resolves once Redis has it. `event` is a JSON object (or its
   * JSON text) without `seq` and `ts`: Redis assigns both. With `dedupKey`
   * (for example `clientId + ' ' + id`) a repeat within the retained history,
   * through any connection or node, stores nothing and returns the first seq.
   * Rejects with RedisUnavailableError while Redis is unreachable.
   */
  async publish(roomKey: string, event: Record<string, unknown> | string, dedupKey = ''): Promise<PublishResult> {
    const body = encodeEventBody(event);
    const reply = (await PUBLISH.run(this.connection, this.roomKeys(roomKey), [
      body,
      dedupKey,
      this.retainEvents,
      newEpoch(),
      this.keys.roomChannel(roomKey),
    ])) as [number, number, string, number];
    const result = { seq: Number(reply[0]), ts: Number(reply[1]), epoch: String(reply[2]), duplicate: Number(reply[3]) === 1 };
    if (this.replicas) await this.waitForReplicas(this.replicas);
    return result;
  }

  private async waitForReplicas({ count, timeoutMs }: { count: number; timeoutMs: number }): Promise<void> {
    const acknowledged = await this.connection.run((client) => client.wait(count, timeoutMs));
    if (acknowledged < count) {
      throw new RedisUnavailableError(
        `Redis at ${this.connection.address.display} stored the event but only ${acknowledged} of ${count} replicas confirmed it within ${timeoutMs} ms`,
      );
    }
  }

  /** Events after `afterSeq`, oldest first, at most `count` (and at most MAX_READ_EVENTS), with where the room stands. */
  async readAfter(roomKey: string, afterSeq: number, count: number): Promise<EventsAfter> {
    checkSeq(afterSeq);
    const reply = (await READ_AFTER.run(this.connection, this.roomKeys(roomKey), [afterSeq, clampCount(count), newEpoch()])) as [
      string,
      number,
      number,
      StreamEntry[],
    ];
    return { epoch: String(reply[0]), seq: Number(reply[1]), firstSeq: Number(reply[2]), events: reply[3].map(toStoredEvent) };
  }

  /** Up to `count` events before `beforeSeq`, oldest first (a history page), and whether older ones remain. */
  async readBefore(roomKey: string, beforeSeq: number, count: number): Promise<EventsBefore> {
    checkSeq(beforeSeq);
    const limit = clampCount(count);
    const reply = (await READ_BEFORE.run(this.connection, this.roomKeys(roomKey), [beforeSeq, limit, newEpoch()])) as [string, StreamEntry[]];
    const newestFirst = reply[1];
    const more = newestFirst.length > limit;
    return { epoch: String(reply[0]), events: newestFirst.slice(0, limit).reverse().map(toStoredEvent), more };
  }

  /**
   * The epoch and last seq of many rooms at once, read-only: a room Redis
   * knows nothing about has no epoch. Cheap enough to poll (one pipelined
   * HMGET per room).
   */
  async latest(roomKeys: readonly string[]): Promise<Map<string, { epoch: string | undefined; seq: number }>> {
    const found = new Map<string, { epoch: string | undefined; seq: number }>();
    for (let start = 0; start < roomKeys.length; start += LATEST_CHUNK) {
      const chunk = roomKeys.slice(start, start + LATEST_CHUNK);
      const replies = await this.connection.run((client) => Promise.all(chunk.map((roomKey) => client.hmGet(this.keys.roomMeta(roomKey), ['epoch', 'seq']))));
      chunk.forEach((roomKey, i) => {
        const [epoch, seq] = replies[i] as (string | null)[];
        found.set(roomKey, { epoch: epoch ?? undefined, seq: Number(seq ?? 0) });
      });
    }
    return found;
  }

  /** The room's epoch, last seq and oldest retained seq (making the epoch if the room is new to Redis). */
  async position(roomKey: string): Promise<RoomPosition> {
    const { epoch, seq, firstSeq } = await this.readAfter(roomKey, 0, 0);
    return { epoch, seq, firstSeq };
  }
}
