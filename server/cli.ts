/**
 * `node dist/server.js`: the companion chat server as a command-line program.
 * "Start Chat Server" in the extension runs this same file as a child process.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_HOST, DEFAULT_LIMITS, DEFAULT_PORT, type Limits, TOKEN_MAX_CHARS } from '../shared/protocol';
import { DEFAULT_LIMITS_V2, type LimitsV2 } from '../shared/protocolV2';
import { isLoopbackHost } from '../shared/addresses';
import { AdminListener, adminSocketPath, askServer } from './adminSocket';
import { ChatServer, type ChatServerOptions } from './chatServer';
import { parseRedisUrl } from './cluster/redisConnection';
import { DataFolder } from './dataFolder';
import { holdLease, LEASE_OPTIONS, LEASE_USAGE } from './lease';
import { StoredDirectory } from './directory';
import { createLogger, type LogFormat, type Logger } from './log';
import { SERVER_TOKEN_ENV, ServerExit, type ServerExitCode, type ServerToParent } from '../shared/serverIpc';
import { loadTlsIdentity } from './tls';
import { keptToken } from './token';

const DEFAULT_DATA_DIR = '.chat-room-data';
/** The Redis URL may come from the environment, which other users' `ps` cannot read, since it may carry a password. */
const REDIS_ENV = 'CHAT_ROOM_REDIS_URL';

/** Each limit's flag, with the text `--help` shows for it. */
const LIMIT_FLAGS: Record<string, [keyof Limits, string]> = {
  'max-clients': ['maxClients', 'connections accepted at once (0: no limit)'],
  'max-frame-bytes': ['maxFrameBytes', 'longest frame in bytes; past it: error too_long, then close'],
  'max-text-bytes': ['maxTextBytes', 'longest message text in bytes; past it: error too_long'],
  'hello-timeout-ms': ['helloTimeoutMs', 'close a connection that has not said hello by then'],
  'rate-burst': ['rateBurst', 'frames a client may send at once'],
  'rate-per-second': ['ratePerSecond', 'frames a second after the burst (reading pauses, nothing is dropped)'],
  'max-pending-write-bytes': ['maxPendingWriteBytes', 'unsent bytes after which a client that does not read is cut off'],
  'idle-ping-ms': ['idlePingMs', 'silence after which the server pings a client'],
  'idle-close-ms': ['idleCloseMs', 'time after a ping within which the client must answer'],
  'replay-events': ['replayEvents', 'events replayed on join when the client gives no lastSeq'],
  'retain-events': ['retainEvents', 'messages each room keeps at least (and as many arrivals and departures, and as many changes)'],
  'new-connections-per-minute': ['newConnectionsPerMinute', 'new connections one address may open a minute (0: no limit; loopback exempt)'],
  'max-rooms': ['maxRooms', 'rooms loaded at once; empty ones are unloaded early to make space (0: no limit)'],
  'new-rooms-per-minute': ['newRoomsPerMinute', 'rooms one address may load a minute (0: no limit; loopback exempt)'],
  'room-idle-ms': ['roomIdleMs', 'an empty room is unloaded (its file closed) after this long'],
  'classic-idle-ms': ['classicIdleMs', 'close a classic member silent this long (classic has no ping)'],
};

/** Protocol v2's limits, each with its flag; a v2 welcome tells clients the values in force. */
const LIMIT_V2_FLAGS: Record<string, [keyof LimitsV2, string, number]> = {
  'max-rooms-per-connection': ['maxRoomsPerConnection', 'rooms (and DMs) one v2 connection may be in at once', 1],
  'max-reactions-per-message': ['maxReactionsPerMessage', 'different emoji one message takes', 1],
  'max-dm-participants': ['maxDmParticipants', 'people in one direct-message conversation, its opener included', 2],
  'history-page-events': ['historyPageEvents', 'events in one history page (fewer when a page would pass 64 KiB)', 1],
  'search-page-hits': ['searchPageHits', 'hits in one page of search results', 1],
  'search-scan-events': ['searchScanEvents', 'retained events one search request scans before it answers with a cursor', 1],
  'searches-per-minute': ['searchesPerMinute', 'searches one connection may start a minute (0: none)', 0],
  'identity-ttl-days': ['identityTtlDays', 'a name whose key was not used for this long is free again', 1],
  'new-names-per-minute': ['newNamesPerMinute', 'new names one address may claim a minute (0: no limit; loopback exempt)', 0],
  'new-dms-per-minute': ['newDmsPerMinute', 'new DMs one connection may make a minute (0: no limit)', 0],
};

function flagLines<K extends string>(flags: Record<string, [K, string, ...unknown[]]>, defaults: Readonly<Record<K, number>>): string {
  return Object.entries(flags)
    .map(([flag, [key, text]]) => {
      const name = `  --${flag} N`;
      // A name too long for its column gets a line of its own.
      return (name.length < 31 ? name.padEnd(32) : `${name}\n${' '.repeat(32)}`) + `${text} (default ${defaults[key]})`;
    })
    .join('\n');
}

function usage(): string {
  const limits = flagLines(LIMIT_FLAGS, DEFAULT_LIMITS);
  const limitsV2 = flagLines(LIMIT_V2_FLAGS, DEFAULT_LIMITS_V2);
  return `Chat Room server

Usage: node dist/server.js [options]
       node dist/server.js release-name NAME [--data DIR]

  --host ADDRESS                address to bind (default ${DEFAULT_HOST}, this machine only);
                                anything else needs a token, and one is made if none is given
  --port N                      port for the NDJSON protocol (default ${DEFAULT_PORT}; 0 picks a free one)
  --classic-port N              also serve the seed's plain-text protocol (for its client and nc)
  --data DIR                    keep room history in DIR (default ./${DEFAULT_DATA_DIR})
  --memory                      keep no history on disk
  --token T                     clients must send this token in their hello (or set it in the
                                environment as ${SERVER_TOKEN_ENV}, which other users cannot read);
                                1 to ${TOKEN_MAX_CHARS} characters
  --rotate-token                replace the token kept in DIR/token with a new one (a server
                                bound beyond loopback without --token makes one once and keeps it)
  --tls                         serve TLS on --port; without --tls-cert/--tls-key a self-signed
                                certificate is made once into the data folder and reused, and
                                its SHA-256 fingerprint is printed for clients to pin
  --tls-cert FILE               PEM certificate to serve (implies --tls; needs --tls-key)
  --tls-key FILE                PEM private key of --tls-cert
  --redis URL                   cluster mode: share rooms, presence, names, read markers and
                                DMs with every server on this Redis (redis://[:PASSWORD@]HOST:PORT,
                                or rediss:// for TLS; or set ${REDIS_ENV}, which other users
                                cannot read). History then lives in Redis, not in --data.
                                Redis needs appendonly yes and appendfsync always (docs/scaling.md)
  --redis-ca FILE               PEM certificate authority for a rediss:// Redis with a private CA
  --redis-namespace NS          prefix of every key, so clusters can share one Redis (default chat-room)
  --node-id ID                  this server's id in the cluster (default: host, pid and a random part)
  --node-ttl-ms N               a server silent this long is taken for dead and its members are
                                announced lost (default 5000)
  --log-format text|json        log as plain lines (default) or one JSON object a line
  --classic-pause-ms N          a classic client's unterminated input counts as a message
                                after this pause (default 80)
${limits}

Protocol 2 limits:
${limitsV2}

${LEASE_USAGE}  --help                        show this text

Operator commands:
  release-name NAME [--data DIR]
                                frees a name kept by an identity (and the names that look
                                like it): its key stops working and its connections are
                                closed. It asks the server running on DIR through the
                                admin socket there (DIR/admin.sock, open to the server's
                                own user only), or, with no server running, changes DIR's
                                directory itself. A server with --memory has no admin
                                socket: its names last until it stops.

The classic listener (--classic-port) always stays plain TCP: its clients cannot
speak TLS. On a server with a token it serves this machine only.

For tests only:
  --lockout-loopback            lock out loopback addresses after failed hellos too
                                (normally loopback is exempt)
  --limit-loopback              apply the per-address limits (new connections, new rooms)
                                to loopback addresses too (normally loopback is exempt)

When ready it prints "listening on HOST:PORT"; a parent that started it with an
IPC channel is sent {"type":"listening",…} instead of reading that line (see
shared/serverIpc.ts). SIGINT or SIGTERM tells every member the server is
shutting down, stores everything, and exits with code ${ServerExit.stopped}. A server that cannot
start exits with code ${ServerExit.portBusy} when its port is taken, else ${ServerExit.startFailed}.
`;
}

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${flag} needs a whole number, not "${text}"`);
  return value;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'release-name') return releaseNameCommand(process.argv.slice(3));
  const limitOptions = Object.fromEntries([...Object.keys(LIMIT_FLAGS), ...Object.keys(LIMIT_V2_FLAGS)].map((flag) => [flag, { type: 'string' as const }]));
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: DEFAULT_HOST },
      port: { type: 'string', default: String(DEFAULT_PORT) },
      'classic-port': { type: 'string' },
      data: { type: 'string' },
      memory: { type: 'boolean', default: false },
      token: { type: 'string' },
      tls: { type: 'boolean', default: false },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'lockout-loopback': { type: 'boolean', default: false },
      'limit-loopback': { type: 'boolean', default: false },
      'rotate-token': { type: 'boolean', default: false },
      'log-format': { type: 'string', default: 'text' },
      'classic-pause-ms': { type: 'string', default: '80' },
      redis: { type: 'string' },
      'redis-ca': { type: 'string' },
      'redis-namespace': { type: 'string' },
      'node-id': { type: 'string' },
      'node-ttl-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
      ...limitOptions,
      ...LEASE_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(usage());
    return;
  }
  const logFormat = values['log-format'] as string;
  if (logFormat !== 'text' && logFormat !== 'json') throw new Error('--log-format is text or json');
  const logger = createLogger(logFormat as LogFormat);
  if (values.memory && values.data !== undefined) throw new Error('--data and --memory cannot be used together');

  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const [flag, [key]] of Object.entries(LIMIT_FLAGS)) {
    const text = (values as Record<string, unknown>)[flag];
    if (typeof text === 'string') limits[key] = wholeNumber(flag, text);
  }
  if (limits.ratePerSecond === 0 || limits.rateBurst === 0) throw new Error('the rate limit needs a burst and a rate above 0');
  const limitsV2 = limitsV2From(values as Record<string, unknown>);

  const host = values.host as string;
  const redisUrl = (values.redis as string | undefined) ?? (process.env[REDIS_ENV] || undefined);
  const clusterFlags = ['redis-ca', 'redis-namespace', 'node-id', 'node-ttl-ms'].filter((flag) => (values as Record<string, unknown>)[flag] !== undefined);
  if (redisUrl === undefined && clusterFlags.length > 0) throw new Error(`--${clusterFlags[0]} is for cluster mode: give --redis too`);
  if (redisUrl !== undefined && values.memory) throw new Error('--memory and --redis cannot be used together: in cluster mode history lives in Redis');
  // In cluster mode a data folder holds only the token and a generated certificate, and only when asked for.
  const dataDir = values.memory || (redisUrl !== undefined && values.data === undefined) ? undefined : resolve((values.data as string | undefined) ?? DEFAULT_DATA_DIR);
  const dataFolder = dataDir === undefined ? undefined : await DataFolder.prepare(dataDir, logger);
  let token = (values.token as string | undefined) ?? (process.env[SERVER_TOKEN_ENV] || undefined);
  if (token !== undefined && (token.length === 0 || token.length > TOKEN_MAX_CHARS)) {
    throw new Error(`the token must be 1 to ${TOKEN_MAX_CHARS} characters long (it has ${token.length})`);
  }
  if (!isLoopbackHost(host) && token === undefined) {
    // A server others can reach must not be open to anyone who finds the port.
    if (dataFolder === undefined) throw new Error(`binding ${host} opens the server to other machines: give it a --token`);
    token = await keptToken(dataFolder, values['rotate-token'] as boolean, host, logger);
  } else if (values['rotate-token']) {
    throw new Error('--rotate-token replaces the token a server bound beyond loopback keeps in its data folder; it cannot be used with --token or on loopback');
  }

  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
  const tls = values.tls || certFile !== undefined || keyFile !== undefined ? await loadTlsIdentity({ certFile, keyFile, dataDir }) : undefined;
  if (tls) {
    if (tls.source === 'generated') logger.info(`generated a self-signed TLS certificate into ${dataDir}`);
    // Printed whatever the log format, and before "listening on", so whoever starts the server can hand it to clients.
    logger.info(`TLS certificate fingerprint (SHA-256): ${tls.fingerprint}`, { fingerprint: tls.fingerprint });
  }

  const server = new ChatServer({
    host,
    port: wholeNumber('port', values.port as string),
    classicPort: values['classic-port'] === undefined ? undefined : wholeNumber('classic-port', values['classic-port'] as string),
    dataFolder,
    token,
    limits,
    limitsV2,
    logger,
    classicPauseMs: wholeNumber('classic-pause-ms', values['classic-pause-ms'] as string),
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    lockoutLoopback: values['lockout-loopback'] as boolean,
    limitLoopback: values['limit-loopback'] as boolean,
    ...(redisUrl === undefined ? {} : { cluster: await clusterOptions(redisUrl, values as Record<string, unknown>) }),
  });

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`${why}: shutting down`);
    server.shutdown().then(
      () => process.exit(ServerExit.stopped),
      (error: unknown) => {
        logger.error(`shutdown failed: ${String(error)}`);
        process.exit(ServerExit.shutdownFailed);
      },
    );
  };
  // When the extension host dies, the pipes behind stdout and stderr go with it; the
  // shutdown that follows must not be cut short by a failed log write (EPIPE).
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  keepServingThroughStrayErrors(logger);
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  holdLease(values.lease as string | undefined, stop, logger);

  const addresses = await server.listen();
  const shownHost = host.includes(':') ? `[${host}]` : host;
  logger.info(`listening on ${shownHost}:${addresses.port}` + (addresses.classicPort !== undefined ? ` (classic protocol on port ${addresses.classicPort})` : ''), {
    host,
    port: addresses.port,
    classicPort: addresses.classicPort,
    history: redisUrl !== undefined ? 'redis' : (dataDir ?? 'memory'),
    tls: tls !== undefined,
  });
  tellParent({
    type: 'listening',
    host,
    port: addresses.port,
    ...(addresses.classicPort !== undefined ? { classicPort: addresses.classicPort } : {}),
    ...(tls ? { fingerprint: tls.fingerprint } : {}),
  });
}

/** Tells a parent that started us with an IPC channel (shared/serverIpc.ts); `then` runs once it is sent, or at once without a channel. */
function tellParent(message: ServerToParent, then?: () => void): void {
  if (typeof process.send !== 'function' || !process.connected) {
    then?.();
    return;
  }
  process.send(message, undefined, {}, () => then?.());
}

async function clusterOptions(url: string, values: Record<string, unknown>): Promise<NonNullable<ChatServerOptions['cluster']>> {
  parseRedisUrl(url);
  const caFile = values['redis-ca'] as string | undefined;
  const ttl = values['node-ttl-ms'] as string | undefined;
  const heartbeatTtlMs = ttl === undefined ? undefined : wholeNumber('node-ttl-ms', ttl);
  if (heartbeatTtlMs !== undefined && heartbeatTtlMs < 200) throw new Error('--node-ttl-ms is at least 200');
  return {
    url,
    nodeId: values['node-id'] as string | undefined,
    namespace: values['redis-namespace'] as string | undefined,
    heartbeatTtlMs,
    ...(caFile === undefined ? {} : { connection: { tls: { ca: await readFile(caFile, 'utf8') } } }),
  };
}

function limitsV2From(values: Record<string, unknown>): LimitsV2 {
  const limitsV2: LimitsV2 = { ...DEFAULT_LIMITS_V2 };
  for (const [flag, [key, , least]] of Object.entries(LIMIT_V2_FLAGS)) {
    const text = values[flag];
    if (typeof text !== 'string') continue;
    const value = wholeNumber(flag, text);
    if (value < least) throw new Error(`--${flag} is at least ${least}`);
    limitsV2[key] = value;
  }
  return limitsV2;
}

/**
 * `release-name NAME [--data DIR]`: asks the server running on DIR to free a
 * name; with none running, frees it in DIR's directory, holding the admin
 * socket meanwhile so that no server starts on DIR while it does.
 */
async function releaseNameCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { data: { type: 'string' }, 'identity-ttl-days': { type: 'string' } },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new Error('release-name takes one name: node dist/server.js release-name NAME [--data DIR]');
  const [name] = positionals;
  const dataDir = resolve((values.data as string | undefined) ?? DEFAULT_DATA_DIR);
  if (!existsSync(dataDir)) throw new Error(`there is no data folder at ${dataDir}`);
  const socketPath = adminSocketPath(dataDir);
  const logger = createLogger('text');
  let answer = await askServer(socketPath, { op: 'releaseName', name });
  if (answer === undefined) {
    const lock = await AdminListener.start(socketPath, async () => ({ ok: false, message: 'A release-name command is using this data folder.' }), logger);
    try {
      const ttlDays = limitsV2From(values as Record<string, unknown>).identityTtlDays;
      const directory = await StoredDirectory.open(dataDir, { identityTtlMs: ttlDays * 24 * 60 * 60 * 1000, logger });
      const identity = directory.identityNamed(name);
      if (identity) await directory.release(identity.id);
      await directory.close();
      answer = identity ? { ok: true, released: identity.name } : { ok: false, message: `No identity keeps the name "${name}".` };
    } finally {
      lock.dispose();
    }
  }
  if (!answer.ok) {
    process.stderr.write(`chat server: ${answer.message}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`released the name ${answer.released}\n`);
}

/**
 * An error no caller caught is a bug, but it must not end a server that others
 * are talking through: every acknowledged message is already on disk, and
 * every connection's own errors are caught where they happen (they end that
 * connection alone), so what reaches here is logged and the server goes on.
 */
function keepServingThroughStrayErrors(logger: Logger): void {
  const describe = (error: unknown): string => (error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.on('unhandledRejection', (reason) => logger.error(`unhandled rejection (the server keeps serving): ${describe(reason)}`));
  process.on('uncaughtException', (error) => logger.error(`uncaught exception (the server keeps serving): ${describe(error)}`));
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`chat server: ${message}\n`);
  const exitCode: ServerExitCode = (error as NodeJS.ErrnoException)?.code === 'EADDRINUSE' ? ServerExit.portBusy : ServerExit.startFailed;
  // The parent hears why before the exit; a channel that cannot take it does not hold the exit up.
  const exit = () => process.exit(exitCode);
  setTimeout(exit, 1_000).unref();
  tellParent({ type: 'startFailed', exitCode, reason: message }, exit);
});
