/**
 * The extension's side of wire protocol v1: a connection to one room of a
 * chat server, kept alive across drops. This file is the protocol's state
 * machine; the bytes travel through a {@link LineTransport}, unsent messages
 * wait in an {@link Outbox}, and the wait between attempts comes from
 * {@link reconnectDelay}.
 *
 * What it promises, following the client-names-each-message pattern of
 * Matrix txnIds and MQTT QoS 1:
 * - every `say` gets an id and sits in the outbox (persisted, so it survives a
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
 * It does not import `vscode`, so the same client runs in the extension host
 * and in plain Node (the fault and soak suites).
 */
import { randomUUID } from 'node:crypto';
import { Disposable, type IDisposable, toDisposable } from '../../shared/disposable';
import { encodeFrame, parseServerFrame } from '../../shared/framing';
import {
  type ClientFrame,
  type ErrorCode,
  FATAL_ERRORS,
  MAX_SERVER_FRAME_BYTES,
  NAME_ERRORS,
  RESUME_MAX_CHARS,
  type RoomEvent,
  type ServerFrame,
  type WelcomeFrame,
} from '../../shared/protocol';
import { Emitter } from '../emitter';
import { Outbox, type OutboxEntry, type OutboxStorage, outboxKey } from './outbox';
import { DEFAULT_BACKOFF, FAILOVER_JITTER_MS, looksLikeRestart, reconnectDelay, type ServerEndpoint, ServerRotation } from './reconnectPolicy';
import { LineTransport, type TransportEnd } from './transport';

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
  /**
   * The other servers of a cluster (docs/scaling.md): when the one in use
   * drops or cannot be reached, the next is tried at once, and only when
   * every one has failed does the client wait (backoff) before another
   * round. The seat, the seq and the outbox carry over: the hello names the
   * last seq seen (and its epoch), and unacknowledged messages are sent again
   * with their ids, which the cluster stores once.
   */
  alternates?: ServerEndpoint[];
  /** Where the outbox is kept (extension/storedState.ts: `storedOutboxes`). */
  outboxes: OutboxStorage;
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

/** How long a planned leave waits for its `bye` to go out before the socket is destroyed. */
export const BYE_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 10_000;
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
  private readonly failureEmitter = this.register(new Emitter<SendFailure>());
  private readonly errorEmitter = this.register(new Emitter<{ code: ErrorCode; message: string }>());
  private readonly frameEmitter = this.register(new Emitter<ServerFrame>());

  /** Every state change. */
  readonly onState = this.stateEmitter.event;
  /** Room events not seen before, oldest first (replayed history included). */
  readonly onEvent = this.eventEmitter.event;
  /** The outbox, each time it changes. */
  readonly onOutbox: Outbox['onChange'];
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
  /** The connection of the current attempt, with the listeners tied to it. */
  private transport: LineTransport | undefined;
  private retryTimer: IDisposable | undefined;
  private attempt = 0;
  private welcomed = false;
  private everWelcomed = false;
  private lastSeqSeen = 0;
  /** Which history of the room `lastSeqSeen` belongs to (a cluster's welcome names it). */
  private roomEpoch: string | undefined;
  private readonly servers: ServerRotation;
  /** The seat secret from the last welcome; it belongs to that connection, so it is never stored. */
  private seatSecret: string | undefined;
  private readonly outbox: Outbox;
  private firstOutcomeResolve: ((outcome: FirstOutcome) => void) | undefined;
  private readonly firstOutcomePromise: Promise<FirstOutcome>;
  private readonly sayRetryTimers = new Map<string, IDisposable>();

  constructor(private readonly options: ChatClientOptions) {
    super();
    this.servers = new ServerRotation(options, options.alternates);
    this.outbox = this.register(new Outbox(options.outboxes, outboxKey(options)));
    this.onOutbox = this.outbox.onChange;
    this.firstOutcomePromise = new Promise((resolve) => (this.firstOutcomeResolve = resolve));
    this.register(toDisposable(() => this.dropTransport()));
    this.register(toDisposable(() => this.retryTimer?.dispose()));
    this.register(toDisposable(() => this.sayRetryTimers.forEach((timer) => timer.dispose())));
    this.register(toDisposable(() => this.settleFirstOutcome({ kind: 'unreachable', reason: 'The client was closed.' })));
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The server in use (or being tried). */
  get address(): string {
    const { host, port } = this.servers.current;
    return `${host}:${port}`;
  }

  get room(): string {
    return this.options.room;
  }

  /** The highest room sequence number this client has seen. */
  get lastSeq(): number {
    return this.lastSeqSeen;
  }

  get pending(): readonly OutboxEntry[] {
    return this.outbox.entries;
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
    this.dropTransport();
    this.setState({ kind: 'connecting' });

    const server = this.servers.current;
    const transport = new LineTransport({
      host: server.host,
      port: server.port,
      ...(this.options.fingerprint !== undefined ? { fingerprint: this.options.fingerprint } : {}),
      maxLineBytes: MAX_SERVER_FRAME_BYTES,
      answerTimeoutMs: this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    });
    this.transport = transport;
    transport.onOpen(() => this.sayHello());
    transport.onLine((bytes) => this.receive(bytes, transport));
    transport.onEnd((end) => this.onTransportEnd(end, transport));
  }

  /** Queues a message; it is sent now if connected, else after reconnecting. Returns its id. */
  say(text: string): string {
    const id = randomUUID();
    this.outbox.add({ id, text, createdAt: Date.now() });
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
    const transport = this.transport;
    const bye = transport !== undefined && this.welcomed ? encodeFrame({ type: 'bye' }) : undefined;
    // The transport says its goodbye on its own time; nothing of this client waits on it or disposes it.
    this.transport = undefined;
    this.welcomed = false;
    this.retryTimer?.dispose();
    this.setState({ kind: 'closed', reason: 'You left the room.' });
    this.settleFirstOutcome({ kind: 'unreachable', reason: 'You left the room.' });
    return transport ? transport.end(bye, BYE_TIMEOUT_MS) : Promise.resolve();
  }

  private sayHello(): void {
    const hello: ClientFrame = { type: 'hello', name: this.options.name, room: this.options.room, clientId: this.options.clientId };
    if (this.options.token) hello.token = this.options.token;
    if (this.everWelcomed && this.lastSeqSeen > 0) {
      hello.lastSeq = this.lastSeqSeen;
      if (this.roomEpoch !== undefined) hello.epoch = this.roomEpoch;
    }
    if (this.seatSecret !== undefined) hello.resume = this.seatSecret;
    this.write(hello);
  }

  private receive(bytes: Buffer, transport: LineTransport): void {
    if (this.transport !== transport) return;
    const parsed = parseServerFrame(bytes);
    // A frame we cannot read is skipped, not fatal: newer servers may add types.
    if (!parsed.ok) return;
    this.frameEmitter.fire(parsed.frame);
    this.handleFrame(parsed.frame, transport);
  }

  private handleFrame(frame: ServerFrame, transport: LineTransport): void {
    switch (frame.type) {
      case 'welcome': {
        this.welcomed = true;
        this.everWelcomed = true;
        // Anything but a plausible secret is dropped: it goes back in every later hello.
        this.seatSecret = typeof frame.resume === 'string' && frame.resume.length > 0 && frame.resume.length <= RESUME_MAX_CHARS ? frame.resume : undefined;
        this.attempt = 0;
        this.servers.welcomed();
        transport.stopAnswerTimer();
        // A server that lost its history (started with --memory) counts from 0 again.
        if (frame.seq < this.lastSeqSeen) this.lastSeqSeen = frame.seq;
        // A cluster whose history was replaced (reset) sends the room's newest events next, whatever their seqs.
        if (frame.reset === true) this.lastSeqSeen = 0;
        this.roomEpoch = typeof frame.epoch === 'string' ? frame.epoch : undefined;
        this.setState({ kind: 'connected', welcome: frame });
        this.settleFirstOutcome({ kind: 'welcome', welcome: frame });
        for (const pending of this.outbox.entries) this.write({ type: 'say', id: pending.id, text: pending.text });
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
        this.takeOut(frame.id);
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
        if (FATAL_ERRORS.has(frame.code) || !this.welcomed) transport.setCloseReason(frame.message);
        return;
    }
  }

  private handleSayError(id: string, code: ErrorCode, message: string): void {
    const pending = this.outbox.find(id);
    if (!pending) return;
    if (PERMANENT_SAY_ERRORS.has(code)) {
      this.takeOut(id);
      this.failureEmitter.fire({ id, text: pending.text, code, reason: message });
      return;
    }
    // Rate limits and storage trouble pass; the same id is tried again shortly.
    this.sayRetryTimers.get(id)?.dispose();
    const handle = setTimeout(() => {
      this.sayRetryTimers.delete(id);
      if (this.welcomed && this.outbox.find(id)) this.write({ type: 'say', id, text: pending.text });
    }, RETRY_SAY_AFTER_MS);
    this.sayRetryTimers.set(id, toDisposable(() => clearTimeout(handle)));
  }

  private refuse(code: RefusalCode, message: string): void {
    this.dropTransport();
    this.setState({ kind: 'closed', reason: message, code });
    this.settleFirstOutcome({ kind: 'refused', code, message });
  }

  private onTransportEnd(end: TransportEnd, transport: LineTransport): void {
    if (this.transport !== transport) return;
    if (end.kind === 'pinMismatch') {
      // Refused for good: retrying would only hand the hello and token to the same impostor.
      this.refuse('fingerprint_mismatch', end.reason);
      return;
    }
    this.dropTransport();
    if (this.isDisposed || this.currentState.kind === 'closed') return;
    const server = this.servers.current;
    if (this.servers.failed()) {
      // Another server of the cluster may well be up: it is tried at once (a little jitter keeps a room from arriving in one burst).
      const delay = Math.round(Math.random() * FAILOVER_JITTER_MS);
      this.setState({ kind: 'reconnecting', retryAt: Date.now() + delay, attempt: this.attempt, reason: end.reason });
      const handle = setTimeout(() => this.connect(), delay);
      this.retryTimer = toDisposable(() => clearTimeout(handle));
      return;
    }
    if (!this.everWelcomed) this.settleFirstOutcome({ kind: 'unreachable', reason: end.reason });
    const policy = {
      initialMs: this.options.initialBackoffMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: this.options.maxBackoffMs ?? DEFAULT_BACKOFF.maxMs,
      maxLoopbackMs: this.options.maxLoopbackBackoffMs ?? DEFAULT_BACKOFF.maxLoopbackMs,
    };
    const delay = reconnectDelay(policy, this.attempt, looksLikeRestart(server.host, end.errorCode), Math.random());
    this.attempt += 1;
    this.setState({ kind: 'reconnecting', retryAt: Date.now() + delay, attempt: this.attempt, reason: end.reason });
    const handle = setTimeout(() => this.connect(), delay);
    this.retryTimer = toDisposable(() => clearTimeout(handle));
  }

  /** The message is the server's now (acknowledged), or never will be: it leaves the outbox. */
  private takeOut(id: string): void {
    if (!this.outbox.remove(id)) return;
    this.sayRetryTimers.get(id)?.dispose();
    this.sayRetryTimers.delete(id);
  }

  private write(frame: ClientFrame): void {
    this.transport?.write(encodeFrame(frame));
  }

  private dropTransport(): void {
    this.transport?.dispose();
    this.transport = undefined;
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
