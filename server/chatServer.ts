/**
 * The chat server: its listeners, its connections and its rooms. It can be
 * embedded (tests, benchmarks) or run from the command line (cli.ts).
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Disposable, toDisposable } from '../shared/disposable';
import { encodeFrame } from '../shared/framing';
import { roomKey } from '../shared/names';
import type { ErrorCode, Limits } from '../shared/protocol';
import { DEFAULT_LIMITS_V2, type LimitsV2 } from '../shared/protocolV2';
import { isLoopbackHost } from '../shared/addresses';
import { AccessGate } from './accessGate';
import { type AdminAnswer, AdminListener, type AdminRequest, adminSocketPath, DataFolderInUse } from './adminSocket';
import { PerAddressRate } from './addressLimits';
import { ClassicConnection } from './classicConnection';
import type { Connection } from './connection';
import type { DataFolder } from './dataFolder';
import { type Directory, namesOf, type RoomMeta, StoredDirectory } from './directory';
import type { Logger } from './log';
import { NdjsonConnection } from './ndjsonConnection';
import { IdentitySeat, RemoteMember, type Room, type RoomMember } from './room';
import { ClusterNode, type ClusterNodeOptions } from './cluster/clusterNode';
import { parseRedisUrl } from './cluster/redisConnection';
import { adoptOlderRoomLogs } from './roomLog';
import { type RoomEntry, RoomRegistry } from './roomRegistry';
import { seatKeys } from './seatNames';
import { newDmName, type V2Host, type V2Session } from './v2Session';
import { WriteBatcher } from './writeBatcher';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ChatServerOptions {
  host: string;
  port: number;
  /** A second listener for the seed's plain-text protocol. */
  classicPort?: number;
  /** Where room logs live (prepared by DataFolder.prepare, owned by the server from now on); undefined keeps history in memory only. */
  dataFolder: DataFolder | undefined;
  token: string | undefined;
  limits: Limits;
  /** Protocol v2's limits; the defaults when left out. */
  limitsV2?: LimitsV2;
  logger: Logger;
  /** How long a classic client's unterminated input may rest before it counts as a message. */
  classicPauseMs: number;
  /** Serve TLS with this certificate on the main port; the classic listener stays plain (its clients cannot speak TLS). */
  tls?: { cert: string; key: string };
  /** Test-only: lock out loopback addresses too, since tests can reach the server only through loopback. */
  lockoutLoopback?: boolean;
  /** Test-only: apply the per-address limits (new connections, new rooms) to loopback addresses too. */
  limitLoopback?: boolean;
  /** Under steady load, writes are flushed at most this often (see WriteBatcher); default 2 ms. */
  writeCoalesceMs?: number;
  /**
   * Cluster mode (`--redis`): rooms, presence and the directory are shared
   * with every other server on the same Redis, and `dataFolder` holds no
   * history (only the token and a generated TLS certificate, if any).
   */
  cluster?: Omit<ClusterNodeOptions, 'retainEvents' | 'identityTtlMs' | 'logger'>;
}

export const DEFAULT_WRITE_COALESCE_MS = 2;

/** What a listener speaks: how it turns a socket into a connection, and how it turns one away. */
interface Protocol {
  accept(socket: Socket): Connection | undefined;
  /** The last line a socket gets when it is turned away before it is a connection. */
  refusal(code: ErrorCode, message: string): Buffer;
}

export interface ListeningAddresses {
  port: number;
  classicPort?: number;
}

export class ChatServer extends Disposable implements V2Host {
  readonly limits: Limits;
  readonly limitsV2: LimitsV2;
  readonly logger: Logger;
  readonly batcher: WriteBatcher;
  readonly accessGate: AccessGate;
  private openedDirectory: Directory | undefined;
  private clusterNode: ClusterNode | undefined;
  /** Cluster mode only (see ConnectionHost.seatSecretMatches). */
  seatSecretMatches?: (roomKey: string, seat: string, secretDigest: string) => Promise<boolean>;
  /** Identity id → its v2 sessions: the session itself while it is the only one (the usual case), a set beyond. */
  private readonly sessions = new Map<string, V2Session | Set<V2Session>>();
  /**
   * Seat keys held by v1 and classic members in every loaded room, with how
   * many hold each: a new v2 name is checked here, not by asking each of
   * thousands of rooms.
   */
  private readonly guestSeats = new Map<string, number>();
  /** DMs being made, by participant set: two who open the same DM at once get one. */
  private readonly dmsBeingMade = new Map<string, Promise<RoomMeta>>();
  private readonly connections = new Set<Connection>();
  private readonly rooms: RoomRegistry;
  private readonly newConnections: PerAddressRate;
  private readonly newNames: PerAddressRate;
  private readonly listeners: Server[] = [];
  private shuttingDown: Promise<void> | undefined;

  constructor(private readonly options: ChatServerOptions) {
    super();
    this.limits = options.limits;
    this.limitsV2 = options.limitsV2 ?? DEFAULT_LIMITS_V2;
    this.logger = options.logger;
    this.batcher = new WriteBatcher(options.writeCoalesceMs ?? DEFAULT_WRITE_COALESCE_MS);
    this.accessGate = new AccessGate({
      token: options.token,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
      exemptLoopback: options.lockoutLoopback !== true,
    });
    this.newConnections = new PerAddressRate(this.limits.newConnectionsPerMinute, options.limitLoopback !== true);
    this.newNames = new PerAddressRate(this.limitsV2.newNamesPerMinute, options.limitLoopback !== true);
    this.rooms = this.register(
      new RoomRegistry({
        // In a cluster the rooms live in Redis, whatever the data folder holds.
        folder: options.cluster ? undefined : options.dataFolder,
        retainEvents: this.limits.retainEvents,
        maxRooms: this.limits.maxRooms,
        roomIdleMs: this.limits.roomIdleMs,
        newRoomsPerMinute: this.limits.newRoomsPerMinute,
        limitLoopback: options.limitLoopback === true,
        maxReactionsPerMessage: this.limitsV2.maxReactionsPerMessage,
        logger: this.logger,
        prepare: (room) => this.prepareRoom(room),
        openShared: options.cluster
          ? (key, name) => {
              const node = this.clusterNode;
              if (!node) return Promise.reject(new Error('the cluster is joined by listen()'));
              // The room's name as its first entrant wrote it, whichever server they entered through.
              const shownName = this.directory.roomMeta(key)?.name ?? name;
              return node.openRoom(key, shownName, this.limits.retainEvents, this.logger, { maxReactionsPerMessage: this.limitsV2.maxReactionsPerMessage });
            }
          : undefined,
      }),
    );
  }

  /** The directory of identities, conversations and rooms; opened by `listen`. */
  get directory(): Directory {
    if (!this.openedDirectory) throw new Error('the directory is opened by listen()');
    return this.openedDirectory;
  }

  async listen(): Promise<ListeningAddresses> {
    const directoryOptions = { identityTtlMs: this.limitsV2.identityTtlDays * DAY_MS, logger: this.logger };
    const folder = this.options.dataFolder;
    // First, as the data folder's lock: nothing in it is read or written while another process holds it.
    if (folder) await this.startAdminListener(folder);
    if (this.options.cluster) {
      await this.joinCluster(this.options.cluster, directoryOptions);
    } else {
      this.openedDirectory = folder ? await StoredDirectory.open(folder.path, directoryOptions) : StoredDirectory.inMemory(directoryOptions);
      if (folder) await adoptOlderRoomLogs(folder, this.logger);
    }
    this.directory.onDmCreated((meta) => this.announceDm(meta));
    const ndjson: Protocol = {
      accept: (socket) => new NdjsonConnection(socket, this),
      refusal: (code, message) => encodeFrame({ type: 'error', code, message }),
    };
    const port = await this.startListener(this.options.port, ndjson, this.options.tls);
    const addresses: ListeningAddresses = { port };
    if (this.options.classicPort !== undefined) {
      const classic: Protocol = {
        accept: (socket) => {
          if (this.options.token !== undefined && !isLoopbackHost(socket.remoteAddress)) {
            // The seed protocol has no way to present a token, so it is for this machine only on a guarded server.
            refuse(socket, Buffer.from('This server needs a token; the classic protocol cannot send one.\n', 'utf8'));
            return undefined;
          }
          return new ClassicConnection(socket, this, this.options.classicPauseMs);
        },
        refusal: (_code, message) => Buffer.from(message + '\n', 'utf8'),
      };
      addresses.classicPort = await this.startListener(this.options.classicPort, classic);
    }
    this.startIdleSweep();
    return addresses;
  }

  /** Cluster mode: the directory and every room are Redis's, shared with the other servers. */
  private async joinCluster(cluster: NonNullable<ChatServerOptions['cluster']>, directoryOptions: { identityTtlMs: number }): Promise<void> {
    const node = this.register(await ClusterNode.open({ ...cluster, retainEvents: this.limits.retainEvents, identityTtlMs: directoryOptions.identityTtlMs, logger: this.logger }));
    this.clusterNode = node;
    this.openedDirectory = node.directory;
    node.roomName = (key) => this.rooms.loadedRoom(key)?.name ?? node.directory.roomMeta(key)?.name ?? key;
    node.directory.onRoomMetaChanged((meta) => {
      // Another server made the room's entry first: its owner is the room's here too.
      const room = this.rooms.loadedRoom(meta.room);
      if (room && room.metaPending !== undefined) {
        room.meta = { ...meta };
        room.metaPending = undefined;
      }
    });
    // A name released through another server closes this server's connections of it; a part or a read marker there is one here too.
    node.directory.onIdentityForgotten((identityId) => void this.closeReleasedSessions(identityId));
    node.directory.onConversationLeftElsewhere((identityId, room) => {
      for (const session of this.sessionsOf(identityId)) void session.leaveAsParted(room);
    });
    node.directory.onReadElsewhere((identityId, room, seq) => {
      const sessions = this.sessionsOf(identityId);
      const moved = encodeFrame({ type: 'readMarker', room: this.rooms.loadedRoom(room)?.name ?? node.directory.roomMeta(room)?.name ?? room, seq });
      for (const session of sessions) session.tell(moved);
    });
    this.seatSecretMatches = (roomKey, seat, secretDigest) => node.seatSecretMatches(roomKey, seat, secretDigest).catch(() => false);
    this.logger.info(`cluster node ${node.nodeId} on Redis at ${parseRedisUrl(cluster.url).display} (namespace ${node.keys.namespace})`);
  }

  private async startListener(port: number, protocol: Protocol, tls?: { cert: string; key: string }): Promise<number> {
    // Over TLS each address is counted when its TCP connection arrives (see createTlsListener), not again after the handshake.
    const onSocket = (socket: Socket): void => this.onConnection(socket, protocol, tls === undefined);
    // Half-open: a peer that closes its side after sending still gets every answer it is owed.
    const listener = tls ? this.createTlsListener(tls, onSocket) : createServer({ noDelay: true, pauseOnConnect: false, allowHalfOpen: true }, onSocket);
    this.listeners.push(listener);
    this.register(toDisposable(() => listener.close()));
    listener.maxConnections = this.limits.maxClients > 0 ? this.limits.maxClients * 2 : Infinity;
    listener.listen({ host: this.options.host, port, backlog: 1024 });
    await Promise.race([once(listener, 'listening'), once(listener, 'error').then(([error]) => Promise.reject(error))]);
    // Once listening, an error (accept failing for want of file descriptors) is the listener's trouble, not the server's end.
    listener.on('error', (error: NodeJS.ErrnoException) => this.logger.error(`listener on port ${port}: ${error.code ?? error.message}; still listening`));
    const address = listener.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  /** A listener whose connections reach `onSocket` only once their TLS handshake has succeeded. */
  private createTlsListener(tls: { cert: string; key: string }, onSocket: (socket: Socket) => void): Server {
    const listener = createTlsServer({
      cert: tls.cert,
      key: tls.key,
      minVersion: 'TLSv1.2',
      noDelay: true,
      allowHalfOpen: true,
      // A handshake gets no more time than a hello would.
      handshakeTimeout: this.limits.helloTimeoutMs,
    }, onSocket);
    // A handshake costs CPU and holds a descriptor for up to the hello time limit, so an address over its
    // connection limit is turned away before its handshake starts: silent connections from one stranger must
    // not fill the listener for everyone. There is no TLS yet to carry a refusal, so the socket just closes.
    listener.prependListener('connection', (raw: Socket) => {
      if (this.newConnections.tryTake(raw.remoteAddress)) return;
      raw.on('error', () => undefined);
      raw.destroy();
      this.logger.warn(`${raw.remoteAddress}:${raw.remotePort} refused before its TLS handshake: more than ${this.limits.newConnectionsPerMinute} new connections a minute from its address`);
    });
    // Plain bytes, scanners and clients that reject the certificate end here; the socket is already destroyed.
    listener.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
      this.logger.info(`${socket.remoteAddress}:${socket.remotePort} failed the TLS handshake (${error.code ?? error.message}).`);
    });
    return listener;
  }

  private onConnection(socket: Socket, protocol: Protocol, countAddress: boolean): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    if (this.limits.maxClients > 0 && this.connections.size >= this.limits.maxClients) {
      refuse(socket, protocol.refusal('server_full', `The server is full (${this.limits.maxClients} connections).`));
      this.logger.warn(`${peer} refused: server full`);
      return;
    }
    if (countAddress && !this.newConnections.tryTake(socket.remoteAddress)) {
      const perMinute = this.limits.newConnectionsPerMinute;
      refuse(socket, protocol.refusal('too_many_connections', `This address has opened ${perMinute} connections within a minute, the most it may; try again in a little while.`));
      this.logger.warn(`${peer} refused: more than ${perMinute} new connections a minute from its address`);
      return;
    }
    const connection = protocol.accept(socket);
    if (!connection) return;
    this.connections.add(connection);
    this.logger.info(`${peer} has connected.`);
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  enterRoom<T>(name: string, address: string | undefined, use: (room: Room) => T): Promise<RoomEntry<T>> {
    return this.rooms.enter(name, address, use);
  }

  /**
   * Gives a room just loaded what the directory keeps about it. The log may
   * hold a topic or owner the directory missed (a crash between the two
   * writes); the newer one wins, and the directory is brought up to date.
   */
  private prepareRoom(room: Room): void {
    room.onSeatsChanged = (member, keys, seated) => this.noteSeats(member, keys, seated);
    const key = roomKey(room.name);
    const stored = this.directory.roomMeta(key);
    if (!stored) {
      room.meta = { room: key, name: room.name, kind: 'room', topic: room.logTopic?.topic ?? '' };
      room.metaPending = room.wasEmpty ? 'unclaimed' : 'unowned';
      return;
    }
    const meta: RoomMeta = { ...stored };
    let behind = false;
    if (room.logTopic && room.logTopic.seq > (meta.topicSeq ?? 0)) {
      Object.assign(meta, { topic: room.logTopic.topic, topicSeq: room.logTopic.seq });
      behind = true;
    }
    if (room.logOwner && room.logOwner.seq > (meta.ownerSeq ?? 0)) {
      Object.assign(meta, { ownerId: room.logOwner.ownerId, ownerSeq: room.logOwner.seq });
      behind = true;
    }
    room.meta = meta;
    if (behind) this.directory.putRoomMeta({ ...meta }).catch((error: unknown) => this.logger.error(`room ${room.name}: could not bring its directory entry up to date: ${String(error)}`));
  }

  claimRoom(room: Room, ownerId: string | undefined): Promise<void> | undefined {
    const pending = room.metaPending;
    if (pending === undefined) return undefined;
    room.metaPending = undefined;
    if (pending === 'unclaimed' && ownerId !== undefined) {
      room.meta.ownerId = ownerId;
    }
    return this.directory.createRoomMeta({ ...room.meta }).then(
      (kept) => {
        // In a cluster, another server may have made the entry a moment before: its owner is the room's.
        if (kept.ownerId !== room.meta.ownerId) room.meta = { ...kept };
      },
      (error: unknown) => {
        this.logger.error(`room ${room.name}: could not store its directory entry: ${String(error)}`);
        // The next member to enter tries again.
        room.metaPending = pending;
        throw error;
      },
    );
  }

  mayClaimName(address: string | undefined): boolean {
    return this.newNames.tryTake(address);
  }

  sessionsOf(identityId: string): ReadonlySet<V2Session> | readonly V2Session[] {
    const sessions = this.sessions.get(identityId);
    return sessions === undefined ? NO_SESSIONS : sessions instanceof Set ? sessions : [sessions];
  }

  addSession(session: V2Session): void {
    const id = session.identity.id;
    const sessions = this.sessions.get(id);
    if (sessions === undefined) this.sessions.set(id, session);
    else if (sessions instanceof Set) sessions.add(session);
    else this.sessions.set(id, new Set([sessions, session]));
  }

  removeSession(session: V2Session): void {
    const id = session.identity.id;
    const sessions = this.sessions.get(id);
    if (sessions === session) this.sessions.delete(id);
    else if (sessions instanceof Set && sessions.delete(session) && sessions.size === 1) this.sessions.set(id, [...sessions][0]);
  }

  guestNamed(name: string): boolean {
    if (seatKeys(name).some((key) => this.guestSeats.has(key))) return true;
    // In a cluster a guest seated on another node is known only to the shared rooms it is in.
    if (this.clusterNode === undefined) return false;
    for (const room of this.rooms.readyRooms()) {
      const holder = room.memberNamed(name);
      if (holder instanceof RemoteMember && holder.identityId === undefined) return true;
    }
    return false;
  }

  /** Keeps guestSeats up to date with a room's v1 and classic members (an identity's seat is not a guest's). */
  private noteSeats(member: RoomMember, keys: readonly string[], seated: boolean): void {
    if (member instanceof IdentitySeat) return;
    for (const key of keys) {
      const holders = (this.guestSeats.get(key) ?? 0) + (seated ? 1 : -1);
      if (holders > 0) this.guestSeats.set(key, holders);
      else this.guestSeats.delete(key);
    }
  }

  loadedRoom(key: string): Room | undefined {
    return this.rooms.loadedRoom(key);
  }

  async readRoom(name: string): Promise<Room | undefined> {
    // Not a new room for anyone's per-address count: reading one's own conversations is not opening rooms.
    const entry = await this.rooms.enter(name, undefined, (room) => room);
    return entry.ok ? entry.value : undefined;
  }

  lastSeqWhenUnloaded(key: string): number | undefined {
    return this.rooms.lastSeqWhenUnloaded(key);
  }

  openDm(participantIds: string[]): Promise<RoomMeta> {
    const key = [...participantIds].sort().join(',');
    const existing = this.directory.findDm(participantIds);
    if (existing) return Promise.resolve(this.directory.roomMeta(existing) as RoomMeta);
    let making = this.dmsBeingMade.get(key);
    if (!making) {
      const name = newDmName();
      making = this.directory.createDm({ room: roomKey(name), name, kind: 'dm', topic: '', participantIds: [...participantIds] }).finally(() => this.dmsBeingMade.delete(key));
      this.dmsBeingMade.set(key, making);
    }
    return making;
  }

  /** A DM was made (here or, in a cluster, on another server): its participants' connections here hear of it at once. */
  private announceDm(meta: RoomMeta): void {
    const participantIds = meta.participantIds ?? [];
    const participants = namesOf(this.directory, participantIds);
    const added = encodeFrame({ type: 'conversationAdded', room: meta.name, kind: 'dm', participants });
    for (const id of participantIds) for (const session of this.sessionsOf(id)) session.tell(added);
  }

  async releaseIdentity(identityId: string, asking?: V2Session): Promise<void> {
    await this.directory.release(identityId);
    await this.closeReleasedSessions(identityId, asking);
  }

  /** Closes this server's connections of a released identity, but the one releasing it (which answers its own frame, then closes). */
  private closeReleasedSessions(identityId: string, asking?: V2Session): Promise<unknown> {
    return Promise.all([...this.sessionsOf(identityId)].filter((session) => session !== asking && !session.releasing).map((session) => session.closeReleased()));
  }

  /**
   * Listens on the data folder's admin socket. Another process answering
   * there stops the start (two servers must never share a folder); a folder
   * where no socket can be made (a file system without them) only costs the
   * operator's live release, which is logged.
   */
  private async startAdminListener(folder: DataFolder): Promise<void> {
    const path = adminSocketPath(folder.path);
    try {
      this.register(await AdminListener.start(path, (request) => this.answerOperator(request), this.logger));
    } catch (error) {
      if (error instanceof DataFolderInUse) throw error;
      this.logger.warn(`admin socket ${path} could not be made (${String(error)}); release-name works only while this server is stopped`);
    }
  }

  private async answerOperator(request: AdminRequest): Promise<AdminAnswer> {
    const released = await this.releaseName(request.name);
    return released === undefined ? { ok: false, message: `No identity keeps the name "${request.name}".` } : { ok: true, released };
  }

  /** The operator releases a name (and look-alikes of it): the identity that held it is forgotten and its connections closed. */
  async releaseName(name: string): Promise<string | undefined> {
    const identity = this.directory.identityNamed(name);
    if (!identity) return undefined;
    await this.releaseIdentity(identity.id);
    this.logger.info(`the name ${identity.name} was released by the operator`);
    return identity.name;
  }

  /** Pings clients that fell silent, and closes those that did not answer in time (or, for classic ones, were silent too long). */
  private startIdleSweep(): void {
    const { idlePingMs, idleCloseMs, classicIdleMs } = this.limits;
    const every = Math.max(10, Math.min(1000, Math.floor(Math.min(idlePingMs, idleCloseMs, classicIdleMs) / 4)));
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const connection of this.connections) connection.checkIdle(now);
    }, every);
    sweep.unref();
    this.register(toDisposable(() => clearInterval(sweep)));
  }

  /**
   * Stops accepting, tells every member the room is closing (a stored `left`
   * with reason `shutdown`), waits for storage, then closes everything.
   */
  shutdown(): Promise<void> {
    this.shuttingDown ??= this.closeEverything();
    return this.shuttingDown;
  }

  private async closeEverything(): Promise<void> {
    for (const listener of this.listeners) listener.close();
    for (const connection of this.connections) {
      connection.stopReading();
      connection.detachFromRooms();
    }
    const rooms = await this.rooms.loadedRooms();
    await Promise.all(rooms.map((room) => room.departAll('shutdown')));
    for (const connection of this.connections) connection.endWith(connection.shutdownNotice, 'shutdown');
    await Promise.all(rooms.map((room) => room.close()));
    await this.rooms.closingDone();
    // Give the goodbyes a moment to reach clients that are reading, but never wait on those that are not.
    await Promise.race([Promise.all([...this.connections].map((connection) => once(connection.socket, 'close'))), new Promise((resolve) => setTimeout(resolve, 1000))]);
    for (const connection of [...this.connections]) connection.dispose();
    if (this.clusterNode) await this.clusterNode.shutdown();
    else await this.openedDirectory?.close();
    await this.options.dataFolder?.close();
    this.dispose();
  }
}

const NO_SESSIONS: readonly V2Session[] = [];

/**
 * Turns a connection away with a last line. No Connection owns such a socket,
 * so this does what one would: a reset from the peer must not become an
 * unhandled 'error' that ends the server, and a peer that never reads must not
 * keep the socket half-open.
 */
function refuse(socket: Socket, lastLine: Buffer): void {
  socket.on('error', () => undefined);
  socket.end(lastLine);
  setTimeout(() => socket.destroy(), 2000).unref();
}
