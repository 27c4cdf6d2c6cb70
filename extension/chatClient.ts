/**
 * The extension's side of wire protocol v1: one TCP connection to a chat
 * server, kept alive across drops.
 *
 * What it promises, following the client-names-each-message pattern of
 * Matrix txnIds and MQTT QoS 1:
 * - every `say` gets an id and sits in an outbox (persisted, so it survives a
 *   window reload) until the server acknowledges it; after a reconnect the
 *   outbox is sent again with the same ids, and the server stores each id once;
 * - after a drop it reconnects with backoff (doubling with jitter, capped at
 *   30 s, or at 2 s while a server on this machine refuses connections, which
 *   is a server restarting) and asks for everything after the last sequence
 *   number it saw, and it drops any event at or below that number, so nothing
 *   is shown twice;
 * - it hands the seat secret of its last welcome back in its next hello, so a
 *   drop the server has not noticed yet is a resume, not a leave and a join;
 *   the secret belongs to this connection, so it is kept in memory only;
 * - a refused name is final: it never retries a hello the server refused.
 *
 * It does not import `vscode`: persistence is any Memento-like store, so the
 * same client runs in the extension host and in plain Node.
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Disposable, type IDisposable, toDisposable } from '../shared/disposable';
import { encodeFrame, LineSplitter, parseServerFrame } from '../shared/framing';
import { nameKey } from '../shared/names';
import { isLoopbackHost } from '../shared/addresses';
import {
  type ClientFrame,
  MAX_SERVER_FRAME_BYTES,
  type ErrorCode,
  FATAL_ERRORS,
  NAME_ERRORS,
  RESUME_MAX_CHARS,
  type RoomEvent,
  type ServerFrame,
  type WelcomeFrame,
} from '../shared/protocol';
import type { PendingView } from '../shared/webviewMessages';
import { fingerprintMismatchMessage, fingerprintsMatch, peerFingerprint, pinnedTlsOptions } from './certificatePin';
import { Emitter } from './emitter';

/** The part of `vscode.Memento` the client needs. */
export interface KeyValueStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

export interface ChatClientOptions {
  host: string;
  port: number;
  name: string;
  room: string;
  clientId: string;
  token?: string;
  /**
   * SHA-256 fingerprint of the server's TLS certificate. When given, the
   * client speaks TLS and refuses any server whose certificate has another
   * fingerprint, before sending its hello (and token).
   */
  fingerprint?: string;
  store: KeyValueStore;
  /** How long a connection attempt may take before it counts as failed. */
  connectTimeoutMs?: number;
  /** First reconnect delay; it doubles on each failure up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The cap while a server on this machine refuses connections (it is restarting). */
  maxLoopbackBackoffMs?: number;
}

/** Refusals the client makes itself, never sent by a server. */
export type ClientRefusalCode = 'fingerprint_mismatch';
export type RefusalCode = ErrorCode | ClientRefusalCode;

export type ClientState =
  | { kind: 'connecting' }
  | { kind: 'connected'; welcome: WelcomeFrame }
  | { kind: 'reconnecting'; retryAt: number; attempt: number; reason: string }
  | { kind: 'closed'; reason: string; code?: RefusalCode };

/** How the first connection attempt ended, for the Join flow. */
export type FirstOutcome =
  | { kind: 'welcome'; welcome: WelcomeFrame }
  | { kind: 'refused'; code: RefusalCode; message: string }
  | { kind: 'unreachable'; reason: string };

export interface SendFailure {
  id: string;
  text: string;
  code: ErrorCode;
  reason: string;
}

const OUTBOX_KEY = 'chatRoom.outbox.v1';
export const MAX_BACKOFF_MS = 30_000;
/**
 * A loopback server that refuses connections is one being restarted on this
 * machine; trying every 2 s or so costs nothing, and brings the room back
 * within a few seconds of the server listening again.
 */
export const MAX_LOOPBACK_BACKOFF_MS = 2_000;
/** How long a planned leave waits for its `bye` to go out before the socket is destroyed. */
export const BYE_TIMEOUT_MS = 1_000;
/**
 * Refusals that no amount of retrying will fix: the person has to act. A name
 * taken while we were away is one of them, even after a welcome: retrying it
 * would knock heads with whoever holds it (another window, perhaps) forever.
 */
const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([...NAME_ERRORS, 'bad_room', 'unauthorized', 'locked_out']);
/** A `say` refused for these reasons will never be accepted, so it leaves the outbox. */
const PERMANENT_SAY_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['too_long', 'bad_frame']);
const RETRY_SAY_AFTER_MS = 2_000;

/** Byte length of a message text as the server measures it. */
export function textBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export class ChatClient extends Disposable {
  private readonly stateEmitter = this.register(new Emitter<ClientState>());
  private readonly eventEmitter = this.register(new Emitter<RoomEvent>());
  private readonly outboxEmitter = this.register(new Emitter<PendingView[]>());
  private readonly failureEmitter = this.register(new Emitter<SendFailure>());
  private readonly errorEmitter = this.register(new Emitter<{ code: ErrorCode; message: string }>());
  private readonly frameEmitter = this.register(new Emitter<ServerFrame>());

  /** Every state change. */
  readonly onState = this.stateEmitter.event;
  /** Room events not seen before, oldest first (replayed history included). */
  readonly onEvent = this.eventEmitter.event;
  /** The outbox, each time it changes. */
  readonly onOutbox = this.outboxEmitter.event;
  /** A message the server will never take. */
  readonly onSendFailure = this.failureEmitter.event;
  /** Any error frame, for the log. */
  readonly onServerError = this.errorEmitter.event;
  /**
   * Every readable frame the server sends, before the client acts on it: the
   * raw view (repeated events, each ack's seq) for protocol traces and tests.
   */
  readonly onFrame = this.frameEmitter.event;

  private currentState: ClientState = { kind: 'connecting' };
  private socket: net.Socket | undefined;
  private socketOwner: IDisposable | undefined;
  private retryTimer: IDisposable | undefined;
  private attempt = 0;
  private welcomed = false;
  private everWelcomed = false;
  private lastSeqSeen = 0;
  /** The seat secret from the last welcome; it belongs to that connection, so it is never stored. */
  private seatSecret: string | undefined;
  /** Why the last connection attempt failed, for the backoff policy. */
  private lastFailureCode: string | undefined;
  private readonly outbox: PendingView[];
  private readonly outboxKey: string;
  private firstOutcomeResolve: ((outcome: FirstOutcome) => void) | undefined;
  private readonly firstOutcomePromise: Promise<FirstOutcome>;
  private readonly sayRetryTimers = new Map<string, IDisposable>();

  constructor(private readonly options: ChatClientOptions) {
    super();
    this.outboxKey = outboxKey(options);
    this.outbox = [...(this.readStoredOutboxes()[this.outboxKey] ?? [])];
    this.firstOutcomePromise = new Promise((resolve) => (this.firstOutcomeResolve = resolve));
    this.register(toDisposable(() => this.dropSocket()));
    this.register(toDisposable(() => this.retryTimer?.dispose()));
    this.register(toDisposable(() => this.sayRetryTimers.forEach((timer) => timer.dispose())));
    this.register(toDisposable(() => this.settleFirstOutcome({ kind: 'unreachable', reason: 'The client was closed.' })));
  }

  get state(): ClientState {
    return this.currentState;
  }

  get address(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  get room(): string {
    return this.options.room;
  }

  /** The highest room sequence number this client has seen. */
  get lastSeq(): number {
    return this.lastSeqSeen;
  }

  get pending(): readonly PendingView[] {
    return this.outbox;
  }

  /** Resolves when the first attempt is welcomed, refused or fails to connect. */
  firstOutcome(): Promise<FirstOutcome> {
    return this.firstOutcomePromise;
  }

  /** Opens the connection; later drops reconnect on their own. */
  connect(): void {
    if (this.isDisposed || this.currentState.kind === 'closed') return;
    this.retryTimer?.dispose();
    this.retryTimer = undefined;
    this.dropSocket();
    this.setState({ kind: 'connecting' });

    const pin = this.options.fingerprint;
    const socket: net.Socket = pin === undefined ? net.createConnection({ host: this.options.host, port: this.options.port }) : tls.connect(pinnedTlsOptions(this.options.host, this.options.port));
    this.socket = socket;
    socket.setNoDelay(true);
    // Notices a peer that vanished without a FIN (a sleeping laptop, a pulled cable).
    socket.setKeepAlive(true, 15_000);
    socket.setTimeout(this.options.connectTimeoutMs ?? 10_000);
    const lines = new LineSplitter(MAX_SERVER_FRAME_BYTES);
    let closeReason = 'The connection closed.';

    const onConnect = () => {
      this.lastFailureCode = undefined;
      if (socket instanceof tls.TLSSocket && pin !== undefined) {
        const presented = peerFingerprint(socket) ?? 'no certificate';
        if (!fingerprintsMatch(pin, presented)) {
          // Refused for good: retrying would only hand the hello and token to the same impostor.
          this.refuse('fingerprint_mismatch', fingerprintMismatchMessage(this.address, pin, presented));
          return;
        }
      }
      const hello: ClientFrame = { type: 'hello', name: this.options.name, room: this.options.room, clientId: this.options.clientId };
      if (this.options.token) hello.token = this.options.token;
      if (this.everWelcomed && this.lastSeqSeen > 0) hello.lastSeq = this.lastSeqSeen;
      if (this.seatSecret !== undefined) hello.resume = this.seatSecret;
      this.write(hello);
    };
    const onData = (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        if (line.kind === 'overflow') {
          closeReason = 'The server sent a line that is far too long.';
          socket.destroy();
          return;
        }
        if (line.bytes.length === 0) continue;
        const parsed = parseServerFrame(line.bytes);
        // A frame we cannot read is skipped, not fatal: newer servers may add types.
        if (parsed.ok) {
          this.frameEmitter.fire(parsed.frame);
          this.handleFrame(parsed.frame, (reason) => (closeReason = reason));
        }
        if (this.socket !== socket) return;
      }
    };
    const onTimeout = () => {
      if (!this.welcomed) {
        closeReason = 'The server did not answer in time.';
        socket.destroy();
      }
    };
    const onError = (error: NodeJS.ErrnoException) => {
      closeReason = describeSocketError(error, this.address);
      this.lastFailureCode = error.code;
    };
    const onClose = () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.socketOwner = undefined;
      this.onConnectionLost(closeReason);
    };
    // A TLS socket may speak only once the handshake is done and the certificate checked.
    socket.on(pin === undefined ? 'connect' : 'secureConnect', onConnect);
    socket.on('data', onData);
    socket.on('timeout', onTimeout);
    socket.on('error', onError);
    socket.on('close', onClose);
    this.socketOwner = toDisposable(() => {
      socket.removeListener('close', onClose);
      socket.destroy();
    });
  }

  /** Queues a message; it is sent now if connected, else after reconnecting. Returns its id. */
  say(text: string): string {
    const id = randomUUID();
    this.outbox.push({ id, text, createdAt: Date.now() });
    this.persistOutbox();
    this.outboxEmitter.fire([...this.outbox]);
    if (this.welcomed) this.write({ type: 'say', id, text });
    return id;
  }

  /** Skips the rest of the backoff and tries again now. */
  reconnectNow(): void {
    if (this.currentState.kind === 'reconnecting') {
      this.attempt = 0;
      this.connect();
    }
  }

  /**
   * Leaves on purpose: says bye, closes, and never reconnects. Resolves once
   * the bye has gone out and the server closed, or after BYE_TIMEOUT_MS.
   * Pending messages stay stored for next time.
   */
  leave(): Promise<void> {
    const socket = this.socket;
    const saidBye = socket !== undefined && this.welcomed;
    if (saidBye) this.write({ type: 'bye' });
    this.socket = undefined;
    this.socketOwner = undefined;
    this.welcomed = false;
    this.retryTimer?.dispose();
    this.setState({ kind: 'closed', reason: 'You left the room.' });
    this.settleFirstOutcome({ kind: 'unreachable', reason: 'You left the room.' });
    if (!socket) return Promise.resolve();
    socket.removeAllListeners('close');
    socket.removeAllListeners('data');
    return new Promise((resolve) => {
      // A server that does not close its side is not waited for.
      const timer = setTimeout(() => socket.destroy(), saidBye ? BYE_TIMEOUT_MS : 0);
      timer.unref();
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
      if (!saidBye) socket.destroy();
    });
  }

  private handleFrame(frame: ServerFrame, setCloseReason: (reason: string) => void): void {
    switch (frame.type) {
      case 'welcome': {
        this.welcomed = true;
        this.everWelcomed = true;
        // Anything but a plausible secret is dropped: it goes back in every later hello.
        this.seatSecret = typeof frame.resume === 'string' && frame.resume.length > 0 && frame.resume.length <= RESUME_MAX_CHARS ? frame.resume : undefined;
        this.attempt = 0;
        this.socket?.setTimeout(0);
        // A server that lost its history (started with --memory) counts from 0 again.
        if (frame.seq < this.lastSeqSeen) this.lastSeqSeen = frame.seq;
        this.setState({ kind: 'connected', welcome: frame });
        this.settleFirstOutcome({ kind: 'welcome', welcome: frame });
        for (const pending of this.outbox) this.write({ type: 'say', id: pending.id, text: pending.text });
        return;
      }
      case 'message':
      case 'joined':
      case 'left':
        if (frame.seq <= this.lastSeqSeen) return;
        this.lastSeqSeen = frame.seq;
        this.eventEmitter.fire(frame);
        return;
      case 'ack':
        this.removeFromOutbox(frame.id);
        return;
      case 'ping':
        this.write({ type: 'pong' });
        return;
      case 'pong':
        return;
      case 'error':
        this.errorEmitter.fire({ code: frame.code, message: frame.message });
        if (frame.id !== undefined) {
          this.handleSayError(frame.id, frame.code, frame.message);
          return;
        }
        if (!this.welcomed && REFUSALS.has(frame.code)) {
          this.refuse(frame.code, frame.message);
          return;
        }
        if (FATAL_ERRORS.has(frame.code) || !this.welcomed) setCloseReason(frame.message);
        return;
    }
  }

  private handleSayError(id: string, code: ErrorCode, message: string): void {
    const pending = this.outbox.find((entry) => entry.id === id);
    if (!pending) return;
    if (PERMANENT_SAY_ERRORS.has(code)) {
      this.removeFromOutbox(id);
      this.failureEmitter.fire({ id, text: pending.text, code, reason: message });
      return;
    }
    // Rate limits and storage trouble pass; the same id is tried again shortly.
    this.sayRetryTimers.get(id)?.dispose();
    const handle = setTimeout(() => {
      this.sayRetryTimers.delete(id);
      if (this.welcomed && this.outbox.some((entry) => entry.id === id)) this.write({ type: 'say', id, text: pending.text });
    }, RETRY_SAY_AFTER_MS);
    this.sayRetryTimers.set(id, toDisposable(() => clearTimeout(handle)));
  }

  private refuse(code: RefusalCode, message: string): void {
    this.dropSocket();
    this.setState({ kind: 'closed', reason: message, code });
    this.settleFirstOutcome({ kind: 'refused', code, message });
  }

  private onConnectionLost(reason: string): void {
    this.welcomed = false;
    if (this.isDisposed || this.currentState.kind === 'closed') return;
    if (!this.everWelcomed) this.settleFirstOutcome({ kind: 'unreachable', reason });
    const base = this.options.initialBackoffMs ?? 500;
    const restarting = this.lastFailureCode === 'ECONNREFUSED' && isLoopbackHost(this.options.host);
    const cap = restarting ? Math.min(this.options.maxBackoffMs ?? MAX_BACKOFF_MS, this.options.maxLoopbackBackoffMs ?? MAX_LOOPBACK_BACKOFF_MS) : (this.options.maxBackoffMs ?? MAX_BACKOFF_MS);
    const exponential = Math.min(cap, base * 2 ** this.attempt);
    // Jitter keeps a room full of clients from reconnecting in lockstep after a restart.
    const delay = Math.min(cap, Math.round(exponential * (0.8 + Math.random() * 0.4)));
    this.attempt += 1;
    this.setState({ kind: 'reconnecting', retryAt: Date.now() + delay, attempt: this.attempt, reason });
    const handle = setTimeout(() => this.connect(), delay);
    this.retryTimer = toDisposable(() => clearTimeout(handle));
  }

  private removeFromOutbox(id: string): void {
    const index = this.outbox.findIndex((entry) => entry.id === id);
    if (index === -1) return;
    this.outbox.splice(index, 1);
    this.sayRetryTimers.get(id)?.dispose();
    this.sayRetryTimers.delete(id);
    this.persistOutbox();
    this.outboxEmitter.fire([...this.outbox]);
  }

  private readStoredOutboxes(): Record<string, PendingView[]> {
    const stored = this.options.store.get<Record<string, PendingView[]>>(OUTBOX_KEY);
    return typeof stored === 'object' && stored !== null ? stored : {};
  }

  private persistOutbox(): void {
    // Read, change our key, write: another window may keep its own room's outbox here.
    const all = this.readStoredOutboxes();
    if (this.outbox.length === 0) delete all[this.outboxKey];
    else all[this.outboxKey] = [...this.outbox];
    void this.options.store.update(OUTBOX_KEY, all);
  }

  private write(frame: ClientFrame): void {
    const socket = this.socket;
    if (socket && !socket.destroyed && socket.writable) socket.write(encodeFrame(frame));
  }

  private dropSocket(): void {
    this.socketOwner?.dispose();
    this.socketOwner = undefined;
    this.socket = undefined;
    this.welcomed = false;
  }

  private setState(state: ClientState): void {
    this.currentState = state;
    this.stateEmitter.fire(state);
  }

  private settleFirstOutcome(outcome: FirstOutcome): void {
    const resolve = this.firstOutcomeResolve;
    this.firstOutcomeResolve = undefined;
    resolve?.(outcome);
  }
}

/**
 * Where a room's unsent messages are kept: per server, room and name, so two
 * windows of one installation in one room under different names never send
 * each other's words.
 */
function outboxKey({ host, port, room, name }: Pick<ChatClientOptions, 'host' | 'port' | 'room' | 'name'>): string {
  return `${host}:${port}/${room}/${nameKey(name)}`;
}

function describeSocketError(error: NodeJS.ErrnoException, address: string): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return `Nothing is listening on ${address}.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `The host of ${address} could not be found.`;
    case 'ECONNRESET':
      return 'The server reset the connection.';
    case 'ETIMEDOUT':
      return `${address} did not answer.`;
    default:
      return error.message;
  }
}
