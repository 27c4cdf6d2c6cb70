/**
 * One connection to Redis for the cluster primitives: made from a
 * `redis://[:password@]host:port` or `rediss://` (TLS) URL, reconnecting by
 * itself, and failing fast while Redis is unreachable so that a caller can
 * refuse a message with `storage_failed` instead of holding it forever.
 *
 * The client is node-redis (the `redis` package), the Node client the Redis
 * project itself maintains and recommends for new code: pure JavaScript (the
 * server must stay free of native modules), RESP3, and the two switches this
 * file needs, `disableOfflineQueue` (reject rather than queue while
 * reconnecting) and a per-command timeout. ioredis would work too, but it is
 * kept up on a best-effort basis and libraries around it (connect-redis, for
 * one) have moved to node-redis, so it is the likelier of the two to fall
 * behind new Redis features.
 */
import { createHash } from 'node:crypto';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { RedisClientType } from '@redis/client';
import { Disposable, toDisposable, type IDisposable } from '../../shared/disposable';

export type RedisClient = RedisClientType;

type RedisClientModule = typeof import('./redisClientBundle');
let redisClientModule: RedisClientModule | undefined;

/**
 * node-redis, loaded on first use rather than at start: the server bundle
 * reaches it as `./redisClient.js` (its own bundle, see esbuild.mjs), which
 * the `.vsix` leaves out, so the server the extension starts stays small and
 * only a server asked for cluster mode needs the file.
 */
export function loadRedisClient(): RedisClientModule {
  if (redisClientModule) return redisClientModule;
  try {
    // A require, not an import: an import would load node-redis when the server starts.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    redisClientModule = require('./redisClientBundle') as RedisClientModule;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(
      "cluster mode needs the Redis client bundle (redisClient.js) beside the server, which the extension's copy of the server leaves out: run the server from a checkout of the project (npm ci && npm run build, then node dist/server.js --redis URL)",
      { cause: error },
    );
  }
  return redisClientModule;
}

export interface RedisConnectionOptions {
  /** Shown by Redis in CLIENT LIST and in our error messages, e.g. "node-a publish". */
  name?: string;
  /** How long one attempt to open the socket may take. */
  connectTimeoutMs?: number;
  /**
   * How long Redis may stay silent (Redis hung, or a network that drops
   * packets without a reset) before the socket is closed, every command
   * waiting on it fails, and the client reconnects. The client pings Redis
   * well within this, so an idle connection is never taken for a silent one.
   */
  commandTimeoutMs?: number;
  /** Reconnect attempts back off from 50 ms to this. */
  maxReconnectDelayMs?: number;
  /** For `rediss://`: a private CA, a client certificate, or a server name to check. */
  tls?: Pick<TlsConnectionOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'>;
}

/** Commands one connection holds for Redis at once; past it, commands fail as if Redis were down. */
export const MAX_QUEUED_COMMANDS = 100_000;

type ConnectionDefaults = Required<Pick<RedisConnectionOptions, 'connectTimeoutMs' | 'commandTimeoutMs' | 'maxReconnectDelayMs'>>;

export const DEFAULT_REDIS_CONNECTION_OPTIONS: Readonly<ConnectionDefaults> = Object.freeze({
  connectTimeoutMs: 2_000,
  commandTimeoutMs: 5_000,
  maxReconnectDelayMs: 1_000,
});

/**
 * Redis could not take or answer a command: it is down, unreachable, still
 * loading its data, read-only (a replica), or out of memory. The command may
 * or may not have run; a publish retried with the same de-duplication key is
 * stored once either way. The server answers `storage_failed`.
 */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Error replies that mean "not now" rather than "wrong command": Redis is
 * loading its AOF, is a replica, cannot persist, is out of memory, or is busy
 * running a long script.
 */
const UNAVAILABLE_REPLIES = /^(LOADING|READONLY|MISCONF|OOM|NOREPLICAS|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN)\b/;

export interface RedisAddress {
  tls: boolean;
  host: string;
  port: number;
  /** For messages and logs: never carries the password. */
  display: string;
}

/** Checks a Redis URL and returns where it points, or throws an error that says what is wrong with it. */
export function parseRedisUrl(url: string): RedisAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`not a Redis URL: expected redis://[:password@]host:port or rediss://…`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`a Redis URL starts with redis:// or rediss:// (TLS), not ${parsed.protocol}//`);
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new Error('the Redis URL names no host');
  const port = parsed.port ? Number(parsed.port) : 6379;
  const tls = parsed.protocol === 'rediss:';
  return { tls, host, port, display: `${tls ? 'rediss' : 'redis'}://${parsed.host}` };
}

/**
 * A node-redis client owned like any other resource. Commands go through
 * `run`, which turns every way of "Redis is not there" into one
 * RedisUnavailableError.
 */
export class RedisConnection extends Disposable {
  readonly client: RedisClient;
  readonly address: RedisAddress;
  private readyFlag = false;
  private lastError: Error | undefined;
  private readonly readyListeners = new Set<() => void>();
  private readonly downListeners = new Set<(error: Error | undefined) => void>();

  /**
   * Starts connecting and returns at once; use `ready()` to wait. Until Redis
   * answers, and whenever it is gone, commands fail with RedisUnavailableError
   * and the client keeps reconnecting in the background.
   */
  static open(url: string, options: RedisConnectionOptions = {}): RedisConnection {
    return new RedisConnection(url, {
      ...options,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_REDIS_CONNECTION_OPTIONS.connectTimeoutMs,
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_REDIS_CONNECTION_OPTIONS.commandTimeoutMs,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? DEFAULT_REDIS_CONNECTION_OPTIONS.maxReconnectDelayMs,
    });
  }

  private constructor(
    private readonly url: string,
    private readonly options: RedisConnectionOptions & ConnectionDefaults,
  ) {
    super();
    this.address = parseRedisUrl(url);
    const maxDelay = options.maxReconnectDelayMs;
    const socket = {
      connectTimeout: options.connectTimeoutMs,
      // node-redis's own command timeout stops only at the write: a command
      // already sent waits for its reply however long Redis takes. Closing
      // a socket that heard nothing for this long ends those waits too.
      socketTimeout: options.commandTimeoutMs,
      // Always come back, however long Redis is away (node-redis's own
      // default gives up after a socket timeout); jitter keeps many nodes
      // from reconnecting in step.
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay) + Math.floor(Math.random() * 50),
      ...(this.address.tls ? { tls: true as const, ...options.tls } : {}),
    };
    this.client = loadRedisClient().createClient({
      url,
      // Redis takes client names without spaces or special characters.
      name: options.name?.replace(/[^\x21-\x7e]/g, '-'),
      socket,
      // Without this, commands wait in memory while the client reconnects,
      // so a caller could neither answer its client nor bound its memory.
      disableOfflineQueue: true,
      commandOptions: { timeout: options.commandTimeoutMs },
      pingInterval: Math.max(100, Math.floor(options.commandTimeoutMs / 3)),
      // Bounds the commands waiting on a slow Redis; past it they fail at once.
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    }) as unknown as RedisClient;
    this.client.on('ready', () => {
      // Before any other command on this connection: EVALSHA never meets an empty script cache (see LuaScript).
      LuaScript.loadAll(this.client);
      this.readyFlag = true;
      this.lastError = undefined;
      for (const listener of [...this.readyListeners]) listener();
    });
    // node-redis reports every failed reconnect here; an 'error' without a
    // listener would end the process.
    this.client.on('error', (error: Error) => this.markDown(error));
    this.client.on('reconnecting', () => this.markDown(undefined));
    this.client.on('end', () => this.markDown(undefined));
    this.client.connect().catch((error: Error) => this.markDown(error));
    this.register(
      toDisposable(() => {
        this.readyListeners.clear();
        this.downListeners.clear();
        this.readyFlag = false;
        try {
          this.client.destroy();
        } catch {
          // already closed
        }
      }),
    );
  }

  private markDown(error: Error | undefined): void {
    if (error) this.lastError = error;
    if (!this.readyFlag) return;
    this.readyFlag = false;
    for (const listener of [...this.downListeners]) listener(error);
  }

  /** True while the socket is connected and the handshake is done. */
  get isReady(): boolean {
    return this.readyFlag && !this.isDisposed;
  }

  /** Called after every (re)connection, once Redis answers and any subscriptions are restored. */
  onReady(listener: () => void): IDisposable {
    this.readyListeners.add(listener);
    return toDisposable(() => this.readyListeners.delete(listener));
  }

  /** Called when a ready connection is lost (Redis stopped, the network broke, or Redis closed us). */
  onDown(listener: (error: Error | undefined) => void): IDisposable {
    this.downListeners.add(listener);
    return toDisposable(() => this.downListeners.delete(listener));
  }

  /** Resolves once Redis answers, or rejects with RedisUnavailableError after `timeoutMs`. */
  ready(timeoutMs = this.options.connectTimeoutMs * 5): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        subscription.dispose();
        reject(this.unavailable(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const subscription = this.onReady(() => {
        clearTimeout(timer);
        subscription.dispose();
        resolve();
      });
    });
  }

  /** Another connection to the same Redis with the same options (a subscriber needs its own). */
  duplicate(name?: string): RedisConnection {
    return RedisConnection.open(this.url, { ...this.options, ...(name !== undefined ? { name } : {}) });
  }

  /** Runs commands on this connection; any sign that Redis is unreachable becomes RedisUnavailableError. */
  async run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    if (this.isDisposed) throw this.unavailable('the connection is closed');
    try {
      return await command(this.client);
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** Maps a failure from node-redis to RedisUnavailableError when it means Redis is not there. */
  translate(error: unknown): unknown {
    if (error instanceof RedisUnavailableError) return error;
    if (error instanceof loadRedisClient().ErrorReply) {
      return UNAVAILABLE_REPLIES.test(error.message) ? this.unavailable(error.message, error) : error;
    }
    if (error instanceof Error) return this.unavailable(error.message, error);
    return error;
  }

  private unavailable(what: string, cause?: unknown): RedisUnavailableError {
    const name = this.options.name ? ` (${this.options.name})` : '';
    const last = this.lastError && this.lastError.message !== what ? `; last connection error: ${this.lastError.message}` : '';
    return new RedisUnavailableError(`Redis at ${this.address.display}${name} is unavailable: ${what}${last}`, { cause });
  }
}

/**
 * A Lua script run by its SHA1 (EVALSHA). Every script is loaded (SCRIPT
 * LOAD) as the first command of each connection and reconnection, so its
 * EVALSHAs never find Redis without it. That matters for order: a command
 * that meets NOSCRIPT and is sent again whole (EVAL) runs after the commands
 * sent behind it, so two messages of one sender would be stored the wrong
 * way round. The fallback stays for a cache flushed by hand. Kept beside
 * the module that uses it; each registers itself here.
 */
export class LuaScript {
  private static readonly all = new Set<LuaScript>();
  readonly sha1: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
    LuaScript.all.add(this);
  }

  /** Sends SCRIPT LOAD for every script, without waiting: the commands sent after it on the connection run after it. */
  static loadAll(client: RedisClient): void {
    for (const script of LuaScript.all) client.scriptLoad(script.source).catch(() => undefined);
  }

  run(connection: RedisConnection, keys: string[], args: (string | number)[]): Promise<unknown> {
    const options = { keys, arguments: args.map(String) };
    return connection.run(async (client) => {
      try {
        return await client.evalSha(this.sha1, options);
      } catch (error) {
        if (error instanceof loadRedisClient().ErrorReply && error.message.startsWith('NOSCRIPT')) return client.eval(this.source, options);
        throw error;
      }
    });
  }
}
