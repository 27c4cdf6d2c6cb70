/**
 * Each room's events in Redis: one total order per room whichever node an
 * event came through, de-duplication across nodes, and reads for replay,
 * gap filling and history pages.
 *
 * One Lua script per publish does everything atomically: look up the
 * de-duplication key, take the room's next seq, add the event to the stream
 * of its class (its entry ID is the seq), trim that stream, remember the key,
 * and PUBLISH the event for the nodes that follow the room (see
 * redisRoomFollower.ts). The design follows Centrifugo's Redis engine. Reads
 * merge the three streams by seq, so a reader sees one sequence.
 *
 * A deletion takes the deleted message's text out of Redis in the same
 * script: the message's entry, and those of its edits, are replaced by
 * copies without the text (kept in the room's redacted set and merged into
 * reads like any event), so no later read, and no copy of Redis's data,
 * holds it.
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
import { ClusterKeys, EVENT_CLASSES, type EventClass } from './keys';
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

export interface PublishOptions {
  /** The stream that keeps the event (default `message`). */
  eventClass?: EventClass;
  /** The seq of a message this event deletes: its text, and that of its edits, is removed from Redis with it. */
  deletes?: number;
}

export interface RedisRoomLogOptions {
  namespace?: string;
  /**
   * Events of each class kept per room, at least. Trimming is approximate (`MAXLEN ~`):
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
 * Shared by every script that touches a room. `k` is the room's keys in this
 * order: its meta hash, its three event streams (message, presence, change),
 * their three de-duplication sets, and its set of redacted events (see
 * RedisRoomLog.roomKeys). A script passes them as KEYS; a presence script
 * (clusterPresence.ts) passes them behind its own, so a seat change and the
 * arrival or departure it makes are stored in one step.
 *
 * `ensure_epoch` finds the room's epoch, or starts a new one. A room without
 * meta but with events or de-duplication keys lost part of its data (an
 * eviction, or a partly restored dump), so what is left is dropped rather
 * than mixed with new seqs.
 */
export const ROOM_LUA = `
local function ensure_epoch(k, new_epoch)
  local epoch = redis.call('HGET', k[1], 'epoch')
  if epoch then return epoch end
  redis.call('DEL', k[2], k[3], k[4], k[5], k[6], k[7], k[8])
  redis.call('HSET', k[1], 'epoch', new_epoch, 'seq', 0, 'ts', 0)
  return new_epoch
end

local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end

local function entry_field(entry, name)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function first_of_stream(key)
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #first == 0 then return nil end
  return seq_of(first[1][1])
end

local function lowest(a, b)
  if a == nil then return b end
  if b == nil or a < b then return a end
  return b
end

-- The oldest seq the room retains in any class (seq + 1 when it retains nothing).
local function first_seq(k, seq)
  local found = nil
  for i = 2, 4 do found = lowest(found, first_of_stream(k[i])) end
  local red = redis.call('ZRANGE', k[8], 0, 0, 'WITHSCORES')
  if #red > 0 then found = lowest(found, tonumber(red[2])) end
  return found or (seq + 1)
end

-- A redacted event, shaped as a stream entry.
local function redacted_entry(record, score)
  return {string.format('%d', tonumber(score)) .. '-0', {'e', record, 't', string.match(record, '"ts":(%d+)') or '0'}}
end

-- Up to count events after (or before) a seq, from every class: the streams merged by seq.
local function merged(k, from, count, newest_first)
  local found = {}
  for i = 2, 4 do
    local entries
    if newest_first then entries = redis.call('XREVRANGE', k[i], '(' .. from .. '-0', '-', 'COUNT', count)
    else entries = redis.call('XRANGE', k[i], '(' .. from .. '-0', '+', 'COUNT', count) end
    for _, entry in ipairs(entries) do table.insert(found, {seq_of(entry[1]), entry}) end
  end
  local red
  if newest_first then red = redis.call('ZREVRANGEBYSCORE', k[8], '(' .. from, '-inf', 'WITHSCORES', 'LIMIT', 0, count)
  else red = redis.call('ZRANGEBYSCORE', k[8], '(' .. from, '+inf', 'WITHSCORES', 'LIMIT', 0, count) end
  for i = 1, #red, 2 do table.insert(found, {tonumber(red[i + 1]), redacted_entry(red[i], red[i + 1])}) end
  if newest_first then table.sort(found, function(a, b) return a[1] > b[1] end)
  else table.sort(found, function(a, b) return a[1] < b[1] end) end
  local out = {}
  for i = 1, math.min(count, #found) do out[i] = found[i][2] end
  return out
end

-- a: body (JSON object without seq/ts), dedup key ('' for none), retain, new epoch, channel,
-- class (1 message, 2 presence, 3 change), seq of a message this event deletes ('' for none).
-- Returns {seq, ts, epoch, duplicate (0/1)}.
local function publish_event(k, a)
  local body, dedup_key, retain, channel, class, deletes = a[1], a[2], a[3], a[5], tonumber(a[6]), a[7]
  local epoch = ensure_epoch(k, a[4])

  if dedup_key ~= '' then
    for i = 1, 3 do
      local earlier = redis.call('ZSCORE', k[4 + i], dedup_key)
      if earlier then
        local seq = tonumber(earlier)
        local id = string.format('%d', seq) .. '-0'
        local ts = 0
        local entry = redis.call('XRANGE', k[1 + i], id, id)
        if #entry > 0 then
          ts = tonumber(entry_field(entry[1], 't'))
        else
          local red = redis.call('ZRANGEBYSCORE', k[8], seq, seq)
          if #red > 0 then ts = tonumber(string.match(red[1], '"ts":(%d+)') or '0') end
        end
        return {seq, ts, epoch, 1}
      end
    end
  end

  local now = redis.call('TIME')
  local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local last_ts = tonumber(redis.call('HGET', k[1], 'ts') or '0')
  if ts < last_ts then ts = last_ts end
  local seq = redis.call('HINCRBY', k[1], 'seq', 1)
  redis.call('HSET', k[1], 'ts', ts)

  local head = '{"seq":' .. seq .. ',"ts":' .. string.format('%d', ts)
  local encoded
  if body == '{}' then encoded = head .. '}' else encoded = head .. ',' .. string.sub(body, 2) end
  local events = k[1 + class]
  local first_before = first_of_stream(events)
  redis.call('XADD', events, 'MAXLEN', '~', retain, tostring(seq), 'e', encoded, 't', string.format('%d', ts))
  local first_after = first_of_stream(events)
  if class == 1 and first_before and first_after > first_before then
    -- Messages were trimmed up to here: so are the deleted ones among them (and the edits of those).
    redis.call('ZREMRANGEBYSCORE', k[8], '-inf', '(' .. first_after)
  end

  local dedup = k[4 + class]
  if dedup_key ~= '' then redis.call('ZADD', dedup, seq, dedup_key) end
  -- A key is remembered exactly as long as its event is retained.
  redis.call('ZREMRANGEBYSCORE', dedup, '-inf', '(' .. first_after)

  if deletes ~= '' then
    -- A deleted message's text leaves Redis now: its entry, and those of its edits, are replaced by copies without it.
    local id = deletes .. '-0'
    local entry = redis.call('XRANGE', k[2], id, id)
    if #entry > 0 then
      local record = cjson.decode(entry_field(entry[1], 'e'))
      record.text = ''
      record.deleted = true
      record.editedTs = nil
      record.reactedBy = nil
      record.reactions = nil
      redis.call('XDEL', k[2], id)
      redis.call('ZADD', k[8], deletes, cjson.encode(record))
    end
    local target = '"target":' .. deletes .. '[,}]'
    for _, change in ipairs(redis.call('XRANGE', k[4], '(' .. id, '+')) do
      local text = entry_field(change, 'e')
      if string.find(text, '"type":"edited"', 1, true) and string.find(text, target) then
        local record = cjson.decode(text)
        record.text = ''
        record.redacted = true
        redis.call('XDEL', k[4], change[1])
        redis.call('ZADD', k[8], seq_of(change[1]), cjson.encode(record))
      end
    end
  end

  redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. string.format('%d', ts) .. ' ' .. encoded)
  return {seq, ts, epoch, 0}
end

local function room_keys(from)
  local k = {}
  for i = 1, 8 do k[i] = KEYS[from + i - 1] end
  return k
end
`;

/** Arguments of publish_event after the body, in order; the body comes first. */
const PUBLISH_ARGS = 7;

const PUBLISH = new LuaScript(
  'publish',
  `${ROOM_LUA}
return publish_event(room_keys(1), ARGV)
`,
);

// KEYS: the room's keys, then its members hash. ARGV: member, '1' to publish only while the member holds a seat or '0' only while it holds none, then publish_event's.
// Returns publish_event's answer, or {} when the member's presence says otherwise.
const PUBLISH_IF = new LuaScript(
  'publishIf',
  `${ROOM_LUA}
local present = redis.call('HEXISTS', KEYS[9], ARGV[1]) == 1
if present ~= (ARGV[2] == '1') then return {} end
local a = {}
for i = 1, ${PUBLISH_ARGS} do a[i] = ARGV[2 + i] end
return publish_event(room_keys(1), a)
`,
);

// ARGV: after seq, count, new epoch. Returns {epoch, seq, firstSeq, entries}.
const READ_AFTER = new LuaScript(
  'readAfter',
  `${ROOM_LUA}
local k = room_keys(1)
local epoch = ensure_epoch(k, ARGV[3])
local seq = tonumber(redis.call('HGET', k[1], 'seq'))
local entries = {}
if tonumber(ARGV[2]) > 0 then entries = merged(k, ARGV[1], tonumber(ARGV[2]), false) end
return {epoch, seq, first_seq(k, seq), entries}
`,
);

// ARGV: before seq, count, new epoch. Returns {epoch, entries newest first} (count + 1 of them at most).
const READ_BEFORE = new LuaScript(
  'readBefore',
  `${ROOM_LUA}
local k = room_keys(1)
local epoch = ensure_epoch(k, ARGV[3])
return {epoch, merged(k, ARGV[1], tonumber(ARGV[2]) + 1, true)}
`,
);

/**
 * An event to store in the same script as something else (a presence
 * change): the room's keys and publish_event's arguments, made by
 * RedisRoomLog.announcement.
 */
export interface Announcement {
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
}

type StreamEntry = [string, string[]];
type PublishReply = [number, number, string, number];

function publishResult(reply: PublishReply): PublishResult {
  return { seq: Number(reply[0]), ts: Number(reply[1]), epoch: String(reply[2]), duplicate: Number(reply[3]) === 1 };
}

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

/** What starts a signal on a room's channel (an event starts with its epoch, which never holds it). */
export const SIGNAL_PREFIX = '~';

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

  /** The room's keys in the order the room scripts take them (see ROOM_LUA). */
  roomKeys(roomKey: string): string[] {
    const { keys } = this;
    return [keys.roomMeta(roomKey), ...EVENT_CLASSES.map((eventClass) => keys.roomEvents(roomKey, eventClass)), ...EVENT_CLASSES.map((eventClass) => keys.roomDedup(roomKey, eventClass)), keys.roomRedacted(roomKey)];
  }

  /**
   * Stores an event as the room's next one and publishes it to the room's
   * followers; resolves once Redis has it. `event` is a JSON object (or its
   * JSON text) without `seq` and `ts`: Redis assigns both. With `dedupKey`
   * (for example `clientId + ' ' + id`) a repeat within the retained history,
   * through any connection or node, stores nothing and returns the first seq.
   * `eventClass` says which of the room's streams keeps it (each is retained
   * on its own); `deletes` names the seq of a message this event deletes,
   * whose text (and that of its edits) then leaves Redis in the same script.
   * Rejects with RedisUnavailableError while Redis is unreachable.
   */
  async publish(roomKey: string, event: Record<string, unknown> | string, dedupKey = '', options: PublishOptions = {}): Promise<PublishResult> {
    if (options.deletes !== undefined) checkSeq(options.deletes);
    const reply = (await PUBLISH.run(this.connection, this.roomKeys(roomKey), this.publishArgs(roomKey, event, dedupKey, options))) as PublishReply;
    const result = publishResult(reply);
    if (this.replicas) await this.waitForReplicas(this.replicas);
    return result;
  }

  /**
   * Publishes only while `member` holds a seat in the room (`present`), or
   * only while it holds none, as one step with that check (see
   * ClusterPresence). Undefined when presence said otherwise.
   */
  async publishIf(roomKey: string, member: string, present: boolean, event: Record<string, unknown>, dedupKey = '', options: PublishOptions = {}): Promise<PublishResult | undefined> {
    const args = [member, present ? '1' : '0', ...this.publishArgs(roomKey, event, dedupKey, options)];
    const reply = (await PUBLISH_IF.run(this.connection, [...this.roomKeys(roomKey), this.keys.roomMembers(roomKey)], args)) as PublishReply | [];
    if (reply.length === 0) return undefined;
    const result = publishResult(reply as PublishReply);
    if (this.replicas) await this.waitForReplicas(this.replicas);
    return result;
  }

  /** An event for another script to publish in the same step as its own change (see ClusterPresence.enterAnnouncing). */
  announcement(roomKey: string, event: Record<string, unknown>, options: PublishOptions = {}): Announcement {
    return { keys: this.roomKeys(roomKey), args: this.publishArgs(roomKey, event, '', options) };
  }

  private publishArgs(roomKey: string, event: Record<string, unknown> | string, dedupKey: string, options: PublishOptions): (string | number)[] {
    return [
      encodeEventBody(event),
      dedupKey,
      this.retainEvents,
      newEpoch(),
      this.keys.roomChannel(roomKey),
      EVENT_CLASSES.indexOf(options.eventClass ?? 'message') + 1,
      options.deletes === undefined ? '' : options.deletes,
    ];
  }

  /** Sends a signal to the room's followers (RoomFollowerHandlers.onSignal): never stored, at most once, as for typing. */
  async signal(roomKey: string, text: string): Promise<void> {
    await this.connection.run((client) => client.publish(this.keys.roomChannel(roomKey), SIGNAL_PREFIX + text));
  }

  /** Waits until the configured replicas have what was written so far, if any are asked for (see RedisRoomLogOptions.replicas). */
  async confirmReplicated(): Promise<void> {
    if (this.replicas) await this.waitForReplicas(this.replicas);
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
