/**
 * The chat server: its listeners, its connections and its rooms. It can be
 * embedded (tests, benchmarks) or run from the command line (cli.ts).
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Disposable, toDisposable } from '../shared/disposable';
import { encodeFrame } from '../shared/framing';
import type { Limits } from '../shared/protocol';
import { isLoopbackHost } from '../shared/addresses';
import { AccessGate } from './accessGate';
import { ClassicConnection } from './classicConnection';
import type { Connection, ConnectionHost } from './connection';
import type { Logger } from './log';
import { NdjsonConnection } from './ndjsonConnection';
import { Room } from './room';
import { RoomLog } from './roomLog';
import { WriteBatcher } from './writeBatcher';

export interface ChatServerOptions {
  host: string;
  port: number;
  /** A second listener for the seed's plain-text protocol. */
  classicPort?: number;
  /** Where room logs live; undefined keeps history in memory only. */
  dataDir: string | undefined;
  token: string | undefined;
  limits: Limits;
  logger: Logger;
  /** How long a classic client's unterminated input may rest before it counts as a message. */
  classicPauseMs: number;
  /** Serve TLS with this certificate on the main port; the classic listener stays plain (its clients cannot speak TLS). */
  tls?: { cert: string; key: string };
  /** Test-only: lock out loopback addresses too, since tests can reach the server only through loopback. */
  lockoutLoopback?: boolean;
  /** Under steady load, writes are flushed at most this often (see WriteBatcher); default 2 ms. */
  writeCoalesceMs?: number;
}

export const DEFAULT_WRITE_COALESCE_MS = 2;

export interface ListeningAddresses {
  port: number;
  classicPort?: number;
}

export class ChatServer extends Disposable implements ConnectionHost {
  readonly limits: Limits;
  readonly logger: Logger;
  readonly batcher: WriteBatcher;
  readonly accessGate: AccessGate;
  private readonly connections = new Set<Connection>();
  private readonly rooms = new Map<string, Promise<Room>>();
  private readonly listeners: Server[] = [];
  private shuttingDown: Promise<void> | undefined;

  constructor(private readonly options: ChatServerOptions) {
    super();
    this.limits = options.limits;
    this.logger = options.logger;
    this.batcher = new WriteBatcher(options.writeCoalesceMs ?? DEFAULT_WRITE_COALESCE_MS);
    this.accessGate = new AccessGate({
      token: options.token,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
      exemptLoopback: options.lockoutLoopback !== true,
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(): Promise<ListeningAddresses> {
    const port = await this.startListener(this.options.port, (socket) => new NdjsonConnection(socket, this), this.options.tls);
    const addresses: ListeningAddresses = { port };
    if (this.options.classicPort !== undefined) {
      addresses.classicPort = await this.startListener(this.options.classicPort, (socket) => {
        if (this.options.token !== undefined && !isLoopbackHost(socket.remoteAddress)) {
          // The seed protocol has no way to present a token, so it is for this machine only on a guarded server.
          refuse(socket, Buffer.from('This server needs a token; the classic protocol cannot send one.\n', 'utf8'));
          return undefined;
        }
        return new ClassicConnection(socket, this, this.options.classicPauseMs);
      });
    }
    this.startIdleSweep();
    return addresses;
  }

  private async startListener(port: number, accept: (socket: Socket) => Connection | undefined, tls?: { cert: string; key: string }): Promise<number> {
    const onSocket = (socket: Socket): void => this.onConnection(socket, accept);
    const listener = tls ? this.createTlsListener(tls, onSocket) : createServer({ noDelay: true, pauseOnConnect: false }, onSocket);
    this.listeners.push(listener);
    this.register(toDisposable(() => listener.close()));
    listener.maxConnections = this.limits.maxClients > 0 ? this.limits.maxClients * 2 : Infinity;
    listener.listen({ host: this.options.host, port, backlog: 1024 });
    await Promise.race([once(listener, 'listening'), once(listener, 'error').then(([error]) => Promise.reject(error))]);
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
      // A handshake gets no more time than a hello would.
      handshakeTimeout: this.limits.helloTimeoutMs,
    }, onSocket);
    // Plain bytes, scanners and clients that reject the certificate end here; the socket is already destroyed.
    listener.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
      this.logger.info(`${socket.remoteAddress}:${socket.remotePort} failed the TLS handshake (${error.code ?? error.message}).`);
    });
    return listener;
  }

  private onConnection(socket: Socket, accept: (socket: Socket) => Connection | undefined): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    if (this.limits.maxClients > 0 && this.connections.size >= this.limits.maxClients) {
      refuse(socket, encodeFrame({ type: 'error', code: 'server_full', message: `The server is full (${this.limits.maxClients} connections).` }));
      this.logger.warn(`${peer} refused: server full`);
      return;
    }
    const connection = accept(socket);
    if (!connection) return;
    this.connections.add(connection);
    this.logger.info(`${peer} has connected.`);
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  openRoom(name: string): Promise<Room> {
    let room = this.rooms.get(name);
    if (!room) {
      room = this.loadRoom(name);
      this.rooms.set(name, room);
      // A room that failed to load may be tried again by the next hello.
      room.catch(() => this.rooms.delete(name));
    }
    return room;
  }

  private async loadRoom(name: string): Promise<Room> {
    const retain = this.limits.retainEvents;
    if (this.options.dataDir === undefined) return new Room(name, RoomLog.inMemory(retain, this.logger), [], retain, this.logger);
    const { log, records } = await RoomLog.open(this.options.dataDir, name, retain, this.logger);
    return new Room(name, log, records, retain, this.logger);
  }

  /** Pings clients that fell silent, and closes those that did not answer in time. */
  private startIdleSweep(): void {
    const { idlePingMs, idleCloseMs } = this.limits;
    const every = Math.max(10, Math.min(1000, Math.floor(Math.min(idlePingMs, idleCloseMs) / 4)));
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const connection of this.connections) {
        if (!connection.answersPings || !(connection instanceof NdjsonConnection)) continue;
        if (connection.pingedAt !== undefined) {
          if (now - connection.pingedAt >= idleCloseMs) connection.fail('idle_timeout', `No answer to a ping within ${idleCloseMs} ms.`);
        } else if (now - connection.lastHeardAt >= idlePingMs) {
          connection.pingedAt = now;
          connection.ping();
        }
      }
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
    const goodbye = encodeFrame({ type: 'error', code: 'shutdown', message: 'The server is shutting down.' });
    for (const connection of this.connections) {
      connection.stopReading();
      connection.detachFromRoom();
    }
    const rooms = await Promise.allSettled(this.rooms.values());
    await Promise.all(rooms.map((room) => (room.status === 'fulfilled' ? room.value.departAll('shutdown') : undefined)));
    for (const connection of this.connections) connection.endWith(connection instanceof NdjsonConnection ? goodbye : undefined, 'shutdown');
    await Promise.all(rooms.map((room) => (room.status === 'fulfilled' ? room.value.close() : undefined)));
    // Give the goodbyes a moment to reach clients that are reading, but never wait on those that are not.
    await Promise.race([Promise.all([...this.connections].map((connection) => once(connection.socket, 'close'))), new Promise((resolve) => setTimeout(resolve, 1000))]);
    for (const connection of [...this.connections]) connection.dispose();
    this.dispose();
  }
}

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
