/**
 * The directory (server/directory.ts) of a cluster, in Redis: identities,
 * conversations and read markers, room owners and topics, DMs. Any node
 * serves anyone.
 *
 * Every change is one Lua script that checks what it must (a name is claimed
 * only if no live identity holds it or a look-alike of it, a DM is made only
 * if none exists between the same people), changes the directory's keys, and
 * appends the change to a stream. Each node keeps a copy of the whole
 * directory in memory (a StoredDirectory without a journal, as one server
 * keeps it) and follows that stream, so reads stay synchronous and cheap; a
 * change resolves once this node's copy has it, so a node reads its own
 * writes. The changes are numbered and carry the directory's epoch: a node
 * that misses one (the stream was trimmed while it was cut off) or sees
 * another epoch (Redis came back empty) reloads its copy from the keys.
 *
 * A hello's name and key are checked against Redis itself, not the copy, so
 * a name claimed a moment ago on another node is never taken for free; while
 * Redis is unreachable they are checked against the copy, so people who have
 * names can still come in.
 */
import { Disposable, toDisposable } from '../../shared/disposable';
import {
  type Conversation,
  conversationKey,
  ConversationWrites,
  digestOf,
  type Directory,
  type DirectoryOperation,
  type Identity,
  type IdentityRecord,
  LAST_USED_WRITE_INTERVAL_MS,
  type NameVerdict,
  participantKey,
  type RoomMeta,
  sameDigest,
  StoredDirectory,
  tellListeners,
} from '../directory';
import type { Logger } from '../log';
import { seatKeys } from '../seatNames';
import { ClusterKeys } from './keys';
import { LuaScript, type RedisConnection, RedisUnavailableError } from './redisConnection';
import { newEpoch } from './redisRoomLog';
import { randomBytes, randomUUID } from 'node:crypto';

export interface RedisDirectoryOptions {
  namespace?: string;
  identityTtlMs: number;
  logger: Logger;
  /** Changes kept in the stream (at least); a node cut off for longer reloads its copy. */
  keptChanges?: number;
  /** How long a change waits for this node's copy to have it before it fails. */
  applyTimeoutMs?: number;
  now?: () => number;
}

/**
 * KEYS of every directory script: epoch, changes, counter, identities,
 * names, rooms, dms. ARGV[1..3]: a new epoch, the read markers' key prefix,
 * the changes kept; each script's own arguments follow.
 */
const DIRECTORY_LUA = `
local function dir_epoch()
  local epoch = redis.call('GET', KEYS[1])
  if epoch then return epoch end
  -- A directory without its epoch lost its data: whatever is left is dropped, not mixed with new changes.
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end

local function record_change(op)
  local epoch = dir_epoch()
  local n = redis.call('INCR', KEYS[3])
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', op, 'n', n, 'e', epoch)
end

local function identity_op(record)
  return cjson.encode({op = 'identity', id = record.id, name = record.name, keyHash = record.keyHash, createdAt = record.createdAt, lastUsedAt = record.lastUsedAt})
end

local function forget(id)
  local json = redis.call('HGET', KEYS[4], id)
  if not json then return nil end
  local record = cjson.decode(json)
  redis.call('HDEL', KEYS[4], id)
  for _, key in ipairs(record.keys) do
    if redis.call('HGET', KEYS[5], key) == id then redis.call('HDEL', KEYS[5], key) end
  end
  redis.call('DEL', ARGV[2] .. id)
  return record_change(cjson.encode({op = 'forget', id = id}))
end

local function subscribe(id, room)
  if redis.call('HEXISTS', KEYS[4], id) == 0 then return nil end
  if redis.call('HSETNX', ARGV[2] .. id, room, 0) == 0 then return nil end
  return record_change(cjson.encode({op = 'read', id = id, room = room, seq = 0}))
end
`;

function directoryScript(name: string, body: string): LuaScript {
  return new LuaScript(name, `${DIRECTORY_LUA}\ndir_epoch()\n${body}`);
}

// ARGV[4]: the name's seat keys (JSON), [5]: the new record (JSON, with its seat keys), [6]: now, [7]: ttl ms.
// Returns {0} when a live identity holds one of the keys, else {1, change id}.
const CLAIM = directoryScript(
  'directoryClaim',
  `
local keys = cjson.decode(ARGV[4])
local now, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local lapsed = {}
for _, key in ipairs(keys) do
  local id = redis.call('HGET', KEYS[5], key)
  if id then
    local json = redis.call('HGET', KEYS[4], id)
    if json then
      if now - cjson.decode(json).lastUsedAt < ttl then return {0} end
      lapsed[id] = true
    end
  end
end
for id, _ in pairs(lapsed) do forget(id) end
local record = cjson.decode(ARGV[5])
redis.call('HSET', KEYS[4], record.id, ARGV[5])
for _, key in ipairs(record.keys) do redis.call('HSET', KEYS[5], key, record.id) end
return {1, record_change(identity_op(record))}
`,
);

// ARGV[4]: the name's seat keys (JSON). Returns the records (JSON) of the identities holding any of them.
const CHECK = directoryScript(
  'directoryCheck',
  `
local found, seen = {}, {}
for _, key in ipairs(cjson.decode(ARGV[4])) do
  local id = redis.call('HGET', KEYS[5], key)
  if id and not seen[id] then
    seen[id] = true
    local json = redis.call('HGET', KEYS[4], id)
    if json then table.insert(found, json) end
  end
end
return found
`,
);

// ARGV[4]: identity id, [5]: when it was last used. Returns the change id, or '' when there is no such identity.
const RENEW = directoryScript(
  'directoryRenew',
  `
local json = redis.call('HGET', KEYS[4], ARGV[4])
if not json then return '' end
local record = cjson.decode(json)
if tonumber(ARGV[5]) <= record.lastUsedAt then return '' end
record.lastUsedAt = tonumber(ARGV[5])
redis.call('HSET', KEYS[4], ARGV[4], cjson.encode(record))
return record_change(identity_op(record))
`,
);

// ARGV[4]: identity id. Returns the change id, or ''.
const FORGET = directoryScript('directoryForget', `return forget(ARGV[4]) or ''`);

// ARGV[4]: identity id, [5]: room key. Returns the change id, or ''.
const SUBSCRIBE = directoryScript('directorySubscribe', `return subscribe(ARGV[4], ARGV[5]) or ''`);

// ARGV[4]: identity id, [5]: room key. Returns the change id, or ''.
const UNSUBSCRIBE = directoryScript(
  'directoryUnsubscribe',
  `
if redis.call('HDEL', ARGV[2] .. ARGV[4], ARGV[5]) == 0 then return '' end
return record_change(cjson.encode({op = 'part', id = ARGV[4], room = ARGV[5]}))
`,
);

// ARGV[4]: identity id, [5]: room key, [6]: seq. Returns {the marker now stored, change id or ''}.
const MARK_READ = directoryScript(
  'directoryMarkRead',
  `
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 0 then return {0, ''} end
local markers = ARGV[2] .. ARGV[4]
-- A marker is kept for a conversation only: a read that comes after its part makes none.
if redis.call('HEXISTS', markers, ARGV[5]) == 0 then return {-1, ''} end
local current = tonumber(redis.call('HGET', markers, ARGV[5]))
local seq = tonumber(ARGV[6])
if seq <= current then return {current, ''} end
redis.call('HSET', markers, ARGV[5], seq)
return {seq, record_change(cjson.encode({op = 'read', id = ARGV[4], room = ARGV[5], seq = seq}))}
`,
);

// ARGV[4]: room key, [5]: its entry (JSON), [6]: '1' to store it only if the room has none.
// Returns {the entry kept (JSON), change id or ''}.
const PUT_ROOM = directoryScript(
  'directoryPutRoom',
  `
if ARGV[6] == '1' then
  local existing = redis.call('HGET', KEYS[6], ARGV[4])
  if existing then return {existing, ''} end
end
redis.call('HSET', KEYS[6], ARGV[4], ARGV[5])
local op = cjson.decode(ARGV[5])
op.op = 'room'
return {ARGV[5], record_change(cjson.encode(op))}
`,
);

// ARGV[4]: room key, [5]: its entry (JSON), [6]: its participants' key, [7]: their ids (JSON).
// Returns {the DM kept (JSON), the last change id or ''}.
const CREATE_DM = directoryScript(
  'directoryCreateDm',
  `
local existing = redis.call('HGET', KEYS[7], ARGV[6])
if existing then
  local entry = redis.call('HGET', KEYS[6], existing)
  if entry then return {entry, ''} end
end
redis.call('HSET', KEYS[6], ARGV[4], ARGV[5])
redis.call('HSET', KEYS[7], ARGV[6], ARGV[4])
local op = cjson.decode(ARGV[5])
op.op = 'room'
local last = record_change(cjson.encode(op))
for _, id in ipairs(cjson.decode(ARGV[7])) do last = subscribe(id, ARGV[4]) or last end
return {ARGV[5], last}
`,
);

// Returns {epoch, the number of the last change, the id of the last change in the stream ('0-0' for none)}.
const HEAD = directoryScript(
  'directoryHead',
  `
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {dir_epoch(), tonumber(redis.call('GET', KEYS[3]) or '0'), id}
`,
);

/** Stream ids (`<ms>-<n>`) in order. */
function compareChangeIds(a: string, b: string): number {
  const [aMs, aN] = a.split('-').map(Number);
  const [bMs, bN] = b.split('-').map(Number);
  return aMs - bMs || aN - bN;
}

interface Waiter {
  id: string;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

const MARKER_CHUNK = 500;
const DEFAULT_KEPT_CHANGES = 100_000;
const DEFAULT_APPLY_TIMEOUT_MS = 10_000;
/** A blocked read of the change stream returns after this long with nothing, and the epoch is checked. */
const FOLLOW_BLOCK_MS = 1_000;

export class RedisDirectory extends Disposable implements Directory {
  private copy: StoredDirectory;
  private epoch = '';
  private lastChange = 0;
  private lastId = '0-0';
  private readonly keys: ClusterKeys;
  private readonly waiters: Waiter[] = [];
  private readonly claimsInFlight = new Map<string, Promise<void>>();
  private readonly conversationWrites = new ConversationWrites();
  private readonly roomListeners = new Set<(meta: RoomMeta) => void>();
  private readonly dmListeners = new Set<(meta: RoomMeta) => void>();
  private readonly forgottenListeners = new Set<(identityId: string) => void>();
  private readonly leftListeners = new Set<(identityId: string, room: string) => void>();
  private readonly readListeners = new Set<(identityId: string, room: string, seq: number) => void>();
  /**
   * Parts and read markers this server is writing (the operation, identity
   * id and room key, with how many are on their way): its own connections
   * have been told already, so only the other servers' are told from the
   * change stream.
   */
  private readonly writtenHere = new Map<string, number>();
  private readonly now: () => number;
  private following: Promise<void> | undefined;

  /**
   * `connection` runs the scripts; `reader` is a connection of its own, which
   * blocks on the change stream. Resolves once this node's copy is loaded.
   */
  static async open(connection: RedisConnection, reader: RedisConnection, options: RedisDirectoryOptions): Promise<RedisDirectory> {
    const directory = new RedisDirectory(connection, reader, options);
    try {
      await directory.reload();
    } catch (error) {
      directory.dispose();
      throw error;
    }
    directory.following = directory.follow();
    return directory;
  }

  private constructor(
    private readonly connection: RedisConnection,
    private readonly reader: RedisConnection,
    private readonly options: RedisDirectoryOptions,
  ) {
    super();
    this.keys = new ClusterKeys(options.namespace);
    this.now = options.now ?? Date.now;
    this.copy = this.emptyCopy();
    this.register(
      toDisposable(() => {
        for (const waiter of this.waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new RedisUnavailableError('the directory was closed'));
        }
      }),
    );
  }

  private emptyCopy(): StoredDirectory {
    return StoredDirectory.inMemory({ identityTtlMs: this.options.identityTtlMs, logger: this.options.logger, now: this.now });
  }

  // ------------------------------------------------------------ following the changes

  private scriptKeys(): string[] {
    const { keys } = this;
    return [keys.directoryEpoch(), keys.directoryChanges(), keys.directoryCounter(), keys.identities(), keys.identityNames(), keys.roomEntries(), keys.dmsByParticipants()];
  }

  private run(script: LuaScript, args: (string | number)[]): Promise<unknown> {
    return script.run(this.connection, this.scriptKeys(), [newEpoch(), this.keys.readMarkersPrefix(), this.options.keptChanges ?? DEFAULT_KEPT_CHANGES, ...args]);
  }

  /** Loads the whole directory from its keys into a fresh copy (at start, after a missed change, or in a new epoch). */
  private async reload(): Promise<void> {
    // Where the stream stands is read first: changes made while the keys are read are applied again after, which leaves each entry as it ends up.
    const [epoch, counter, lastId] = (await this.run(HEAD, [])) as [string, number, string];
    const { keys } = this;
    const identities = await this.connection.run((client) => client.hGetAll(keys.identities()));
    const rooms = await this.connection.run((client) => client.hGetAll(keys.roomEntries()));
    const copy = this.emptyCopy();
    const ids = Object.keys(identities);
    for (const id of ids) {
      const { keys: _seatKeys, ...record } = JSON.parse(identities[id]) as IdentityRecord & { keys?: string[] };
      copy.applyStored({ op: 'identity', ...record });
    }
    for (const json of Object.values(rooms)) copy.applyStored({ op: 'room', ...(JSON.parse(json) as RoomMeta) });
    for (let start = 0; start < ids.length; start += MARKER_CHUNK) {
      const chunk = ids.slice(start, start + MARKER_CHUNK);
      const markers = await this.connection.run((client) => Promise.all(chunk.map((id) => client.hGetAll(keys.readMarkers(id)))));
      chunk.forEach((id, i) => {
        for (const [room, seq] of Object.entries(markers[i])) copy.applyStored({ op: 'read', id, room, seq: Number(seq) });
      });
    }
    const changedEpoch = this.epoch !== '' && this.epoch !== epoch;
    this.copy = copy;
    this.epoch = epoch;
    this.lastChange = Number(counter);
    if (compareChangeIds(lastId, this.lastId) > 0 || changedEpoch) this.lastId = lastId;
    if (changedEpoch) this.options.logger.warn(`directory: Redis lost the directory (a new epoch); names, conversations and read markers start again`);
    for (const json of Object.values(rooms)) this.roomChanged(JSON.parse(json) as RoomMeta);
    this.settleWaiters();
  }

  /** Follows the change stream on the reader's connection until disposed. */
  private async follow(): Promise<void> {
    const stream = this.keys.directoryChanges();
    let failures = 0;
    while (!this.isDisposed) {
      try {
        const reply = (await this.reader.run((client) => client.sendCommand(['XREAD', 'COUNT', '500', 'BLOCK', String(FOLLOW_BLOCK_MS), 'STREAMS', stream, this.lastId]))) as
          | [string, [string, string[]][]][]
          | Record<string, [string, string[]][]>
          | null;
        if (this.isDisposed) return;
        // node-redis gives the streams as a map (stream name → entries), or as pairs in older replies.
        const entries = reply === null ? undefined : Array.isArray(reply) ? reply[0]?.[1] : reply[stream];
        if (!entries || entries.length === 0) {
          // Nothing new: a Redis that came back empty says nothing either, so its epoch is looked at.
          const epoch = await this.connection.run((client) => client.get(this.keys.directoryEpoch()));
          if (epoch !== this.epoch) await this.reload();
        } else if (!this.applyChanges(entries)) {
          await this.reload();
        }
        failures = 0;
      } catch (error) {
        if (this.isDisposed) return;
        failures += 1;
        if (failures === 1) this.options.logger.warn(`directory: cannot follow its changes (${String(error)}); trying again`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * 2 ** failures)));
      }
    }
  }

  /** Applies changes in order; false when one was missed (or is of another epoch), and the copy must be reloaded. */
  private applyChanges(entries: [string, string[]][]): boolean {
    // Told after the whole batch: a DM's participants are subscribed by changes that follow its entry.
    const newDms: RoomMeta[] = [];
    for (const [id, fields] of entries) {
      const field: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) field[fields[i]] = fields[i + 1];
      const counter = Number(field.n);
      if (field.e !== this.epoch || counter !== this.lastChange + 1) {
        // Already in the copy (it was read after this change was made) or missed: only a gap or another epoch needs a reload.
        if (field.e === this.epoch && counter <= this.lastChange) {
          this.lastId = id;
          continue;
        }
        return false;
      }
      const operation = JSON.parse(field.o) as DirectoryOperation;
      const newDm = operation.op === 'room' && operation.kind === 'dm' && this.copy.roomMeta(operation.room) === undefined;
      this.copy.applyStored(operation);
      this.lastChange = counter;
      this.lastId = id;
      if (operation.op === 'room') {
        const { op: _op, ...meta } = operation;
        this.roomChanged(meta);
        if (newDm) newDms.push(meta);
      } else if (operation.op === 'forget') {
        this.tell(this.forgottenListeners, (listener) => listener(operation.id));
      } else if (operation.op === 'part' && !this.takeWrittenHere('part', operation.id, operation.room)) {
        this.tell(this.leftListeners, (listener) => listener(operation.id, operation.room));
      } else if (operation.op === 'read' && operation.seq > 0 && !this.takeWrittenHere('read', operation.id, operation.room)) {
        this.tell(this.readListeners, (listener) => listener(operation.id, operation.room, operation.seq));
      }
    }
    this.settleWaiters();
    for (const meta of newDms) this.tell(this.dmListeners, (listener) => listener(meta));
    return true;
  }

  private roomChanged(meta: RoomMeta): void {
    this.tell(this.roomListeners, (listener) => listener(meta));
  }

  private tell<Listener>(listeners: ReadonlySet<Listener>, call: (listener: Listener) => void): void {
    tellListeners(listeners, call, this.options.logger, 'change');
  }

  /** Resolves once this node's copy has the change `id` (a write's own change), so the writer reads what it wrote. */
  private applied(id: string): Promise<void> {
    if (id === '' || compareChangeIds(this.lastId, id) >= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.applyTimeoutMs ?? DEFAULT_APPLY_TIMEOUT_MS;
      const waiter: Waiter = {
        id,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new RedisUnavailableError(`the directory's change ${id} did not reach this node within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private settleWaiters(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (compareChangeIds(this.lastId, waiter.id) < 0) continue;
      this.waiters.splice(i, 1);
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
  }

  // ------------------------------------------------------------ Directory

  async checkName(name: string, key: string | undefined): Promise<NameVerdict> {
    let record: IdentityRecord | undefined;
    try {
      const found = (await this.run(CHECK, [JSON.stringify(seatKeys(name))])) as string[];
      record = found.map((json) => JSON.parse(json) as IdentityRecord).find((candidate) => this.isLive(candidate));
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) throw error;
      // Redis is out of reach: people with names can still come in, checked against this node's copy.
      record = this.copy.recordNamed(name);
    }
    if (!record) return { kind: 'free' };
    if (key === undefined || !sameDigest(digestOf(key), record.keyHash)) return { kind: 'reserved' };
    const now = this.now();
    if (now - record.lastUsedAt >= LAST_USED_WRITE_INTERVAL_MS) {
      // Renewal is kept when it can be; the hello does not wait on it.
      const renewing = record;
      this.renew(renewing.id, now).catch((error: unknown) => this.options.logger.warn(`directory: could not renew ${renewing.name}: ${String(error)}`));
      record = { ...record, lastUsedAt: now };
    }
    return { kind: 'owner', identity: this.view(record) };
  }

  isHeld(name: string): boolean {
    return this.copy.isHeld(name) || seatKeys(name).some((key) => this.claimsInFlight.has(key));
  }

  async claim(name: string, proposedKey?: string): Promise<{ identity: Identity; key: string } | undefined> {
    // One claim per name (and its look-alikes) at a time on this node; the script decides between nodes.
    const keys = seatKeys(name);
    const earlier = keys.map((key) => this.claimsInFlight.get(key)).filter((claim) => claim !== undefined);
    const claim = Promise.all(earlier).then(() => this.claimNow(name, keys, proposedKey));
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

  private async claimNow(name: string, keys: readonly string[], proposedKey: string | undefined): Promise<{ identity: Identity; key: string } | undefined> {
    const key = proposedKey ?? randomBytes(32).toString('base64url');
    const now = this.now();
    const record: IdentityRecord = { id: randomUUID(), name, keyHash: digestOf(key), createdAt: now, lastUsedAt: now };
    const reply = (await this.run(CLAIM, [JSON.stringify(keys), JSON.stringify({ ...record, keys }), now, this.options.identityTtlMs])) as [number, string?];
    if (Number(reply[0]) !== 1) return undefined;
    await this.applied(String(reply[1]));
    return { identity: this.view(record), key };
  }

  async release(identityId: string): Promise<void> {
    await this.applied(String(await this.run(FORGET, [identityId])));
  }

  async touch(identityId: string): Promise<void> {
    const record = this.copy.recordOf(identityId);
    if (!record || !this.isLive(record) || this.now() - record.lastUsedAt < LAST_USED_WRITE_INTERVAL_MS) return;
    await this.renew(identityId, this.now());
  }

  private async renew(identityId: string, lastUsedAt: number): Promise<void> {
    await this.applied(String(await this.run(RENEW, [identityId, lastUsedAt])));
  }

  nameOf(identityId: string): string | undefined {
    return this.copy.nameOf(identityId);
  }

  identityNamed(name: string): Identity | undefined {
    return this.copy.identityNamed(name);
  }

  conversations(identityId: string): Conversation[] {
    return this.copy.conversations(identityId);
  }

  hasConversation(identityId: string, room: string): boolean {
    return this.copy.hasConversation(identityId, room);
  }

  subscribe(identityId: string, room: string): Promise<void> {
    return this.conversationWrites.inTurn(identityId, room, async () => {
      if (this.copy.hasConversation(identityId, room)) return;
      await this.applied(String(await this.run(SUBSCRIBE, [identityId, room])));
    });
  }

  unsubscribe(identityId: string, room: string): Promise<void> {
    return this.conversationWrites.inTurn(identityId, room, async () => {
      if (!this.copy.hasConversation(identityId, room)) return;
      await this.writeHere('part', identityId, room, async () => [undefined, String(await this.run(UNSUBSCRIBE, [identityId, room]))]);
    });
  }

  markRead(identityId: string, room: string, seq: number): Promise<number | undefined> {
    return this.conversationWrites.after(identityId, room, async () => {
      const current = this.copy.conversations(identityId).find((conversation) => conversation.room === room)?.lastRead;
      if (current === undefined) return undefined;
      if (seq <= current) return current;
      return this.writeHere('read', identityId, room, async () => {
        const [stored, id] = (await this.run(MARK_READ, [identityId, room, seq])) as [number, string];
        return [Number(stored) < 0 ? undefined : Number(stored), String(id)];
      });
    });
  }

  /**
   * Runs a script whose change this server's connections need not hear of
   * from the stream (see writtenHere), and waits until the change is applied
   * here. A change applied from the stream takes its count there; one never
   * made, or not seen applied, gives it back.
   */
  private async writeHere<T>(op: 'part' | 'read', identityId: string, room: string, run: () => Promise<[T, string]>): Promise<T> {
    const key = `${op} ${conversationKey(identityId, room)}`;
    this.writtenHere.set(key, (this.writtenHere.get(key) ?? 0) + 1);
    let taken = false;
    try {
      const [value, id] = await run();
      if (String(id) !== '') {
        await this.applied(String(id));
        taken = true;
      }
      return value;
    } finally {
      if (!taken) this.takeWrittenHere(op, identityId, room);
    }
  }

  private takeWrittenHere(op: 'part' | 'read', identityId: string, room: string): boolean {
    const key = `${op} ${conversationKey(identityId, room)}`;
    const count = this.writtenHere.get(key);
    if (count === undefined) return false;
    if (count > 1) this.writtenHere.set(key, count - 1);
    else this.writtenHere.delete(key);
    return true;
  }

  roomMeta(room: string): RoomMeta | undefined {
    return this.copy.roomMeta(room);
  }

  async putRoomMeta(meta: RoomMeta): Promise<void> {
    const [, id] = (await this.run(PUT_ROOM, [meta.room, JSON.stringify(meta), '0'])) as [string, string];
    await this.applied(String(id));
  }

  async createRoomMeta(meta: RoomMeta): Promise<RoomMeta> {
    const [kept, id] = (await this.run(PUT_ROOM, [meta.room, JSON.stringify(meta), '1'])) as [string, string];
    await this.applied(String(id));
    return JSON.parse(kept) as RoomMeta;
  }

  async createDm(meta: RoomMeta & { participantIds: string[] }): Promise<RoomMeta> {
    const args = [meta.room, JSON.stringify(meta), participantKey(meta.participantIds), JSON.stringify(meta.participantIds)];
    const [kept, id] = (await this.run(CREATE_DM, args)) as [string, string];
    await this.applied(String(id));
    return JSON.parse(kept) as RoomMeta;
  }

  listRooms(after: string | undefined, limit: number): RoomMeta[] {
    return this.copy.listRooms(after, limit);
  }

  findDm(participantIds: readonly string[]): string | undefined {
    return this.copy.findDm(participantIds);
  }

  onDmCreated(listener: (meta: RoomMeta) => void): void {
    this.dmListeners.add(listener);
  }

  onRoomMetaChanged(listener: (meta: RoomMeta) => void): void {
    this.roomListeners.add(listener);
  }

  onIdentityForgotten(listener: (identityId: string) => void): void {
    this.forgottenListeners.add(listener);
  }

  onConversationLeftElsewhere(listener: (identityId: string, room: string) => void): void {
    this.leftListeners.add(listener);
  }

  onReadElsewhere(listener: (identityId: string, room: string, seq: number) => void): void {
    this.readListeners.add(listener);
  }

  async close(): Promise<void> {
    this.dispose();
    await this.following;
  }

  private isLive(record: IdentityRecord): boolean {
    return this.now() - record.lastUsedAt < this.options.identityTtlMs;
  }

  private view(record: IdentityRecord): Identity {
    return { id: record.id, name: record.name, expiresAt: record.lastUsedAt + this.options.identityTtlMs };
  }
}
