/**
 * What the two protocol clients share: the life of their connection. One
 * {@link LineTransport} at a time, tried again after a drop with the wait
 * {@link reconnectDelay} gives (in a cluster, on the next server first:
 * {@link ServerRotation}), the state a session shows, and the promise of how
 * the first attempt ended. What is said over the connection belongs to the
 * protocol on top: v1 in chatClient.ts, v2 in chatClientV2.ts.
 *
 * It does not import `vscode`, so both clients run in the extension host and
 * in plain Node (the socket, fault and soak suites).
 */
import { Disposable, type IDisposable, toDisposable } from '../../shared/disposable';
import { encodeFrame } from '../../shared/framing';
import { type ClientFrame, MAX_SERVER_FRAME_BYTES } from '../../shared/protocol';
import type { ClientFrameV2 } from '../../shared/protocolV2';
import { Emitter } from '../emitter';
import { DEFAULT_BACKOFF, FAILOVER_JITTER_MS, looksLikeRestart, reconnectDelay, type ServerEndpoint, ServerRotation } from './reconnectPolicy';
import { LineTransport, type TransportEnd } from './transport';

export interface ConnectionOptions {
  host: string;
  port: number;
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
   * round. What the protocol keeps carries over: the next hello or join names
   * the last seq seen (and its epoch), and unacknowledged messages are sent
   * again with their ids, which the cluster stores once.
   */
  alternates?: ServerEndpoint[];
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

export type ConnectionState<Welcome, Code> =
  | { kind: 'connecting' }
  | { kind: 'connected'; welcome: Welcome }
  | { kind: 'reconnecting'; retryAt: number; attempt: number; reason: string }
  | { kind: 'closed'; reason: string; code?: Code };

/** How the first connection attempt ended, for the Join flow. */
export type FirstOutcomeOf<Welcome, Code> =
  | { kind: 'welcome'; welcome: Welcome }
  | { kind: 'refused'; code: Code; message: string }
  | { kind: 'unreachable'; reason: string };

/** How long a planned leave waits for its `bye` to go out before the socket is destroyed. */
export const BYE_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * `Frame` is what the protocol writes, `Welcome` what lets it in, `Code` what
 * the server may refuse it with, and `Extra` any first outcome of the
 * protocol's own (v2: the server speaks v1 only).
 */
export abstract class ReconnectingClient<Frame extends ClientFrame | ClientFrameV2, Welcome, Code extends string, Extra = never> extends Disposable {
  private readonly stateEmitter = this.register(new Emitter<ConnectionState<Welcome, Code | ClientRefusalCode>>());
  /** Every state change. */
  readonly onState = this.stateEmitter.event;

  private currentState: ConnectionState<Welcome, Code | ClientRefusalCode> = { kind: 'connecting' };
  /** The connection of the current attempt, with the listeners tied to it. */
  private transport: LineTransport | undefined;
  private retryTimer: IDisposable | undefined;
  private attempt = 0;
  private welcomedNow = false;
  private everWelcomed = false;
  private readonly servers: ServerRotation;
  private firstOutcomeResolve: ((outcome: FirstOutcomeOf<Welcome, Code | ClientRefusalCode> | Extra) => void) | undefined;
  private readonly firstOutcomePromise: Promise<FirstOutcomeOf<Welcome, Code | ClientRefusalCode> | Extra>;

  constructor(private readonly connection: ConnectionOptions) {
    super();
    this.servers = new ServerRotation(connection, connection.alternates);
    this.firstOutcomePromise = new Promise((resolve) => (this.firstOutcomeResolve = resolve));
    this.register(toDisposable(() => this.dropTransport('The client was closed.')));
    this.register(toDisposable(() => this.retryTimer?.dispose()));
    this.register(toDisposable(() => this.settleFirstOutcome({ kind: 'unreachable', reason: 'The client was closed.' })));
  }

  get state(): ConnectionState<Welcome, Code | ClientRefusalCode> {
    return this.currentState;
  }

  /** The server in use (or being tried). */
  get address(): string {
    const { host, port } = this.servers.current;
    return `${host}:${port}`;
  }

  /** Resolves when the first attempt is welcomed, refused or fails to connect. */
  firstOutcome(): Promise<FirstOutcomeOf<Welcome, Code | ClientRefusalCode> | Extra> {
    return this.firstOutcomePromise;
  }

  /** Opens the connection; later drops reconnect on their own. */
  connect(): void {
    if (this.isDisposed || this.currentState.kind === 'closed') return;
    this.retryTimer?.dispose();
    this.retryTimer = undefined;
    this.dropTransport('Reconnecting.');
    this.setState({ kind: 'connecting' });

    const server = this.servers.current;
    const transport = new LineTransport({
      host: server.host,
      port: server.port,
      ...(this.connection.fingerprint !== undefined ? { fingerprint: this.connection.fingerprint } : {}),
      maxLineBytes: MAX_SERVER_FRAME_BYTES,
      answerTimeoutMs: this.connection.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    });
    this.transport = transport;
    transport.onOpen(() => this.opened());
    transport.onLine((bytes) => {
      if (this.transport === transport) this.receive(bytes, transport);
    });
    transport.onEnd((end) => this.onTransportEnd(end, transport));
  }

  /** Skips the rest of the backoff and tries again now. */
  reconnectNow(): void {
    if (this.currentState.kind === 'reconnecting') {
      this.attempt = 0;
      this.connect();
    }
  }

  /** The connection is up: the protocol speaks first (a hello, or v2's probe). */
  protected abstract opened(): void;

  /** One line from the server on the current connection. */
  protected abstract receive(bytes: Buffer, transport: LineTransport): void;

  /** The current connection is gone (closed, dropped or refused): what belonged to it goes with it. */
  protected transportDropped(_reason: string): void {}

  /** The server refused us for good, after the connection is dropped and before the state says so. */
  protected refused(_code: Code | ClientRefusalCode, _message: string): void {}

  /** Leaving on purpose, before the state says so. */
  protected leaving(_reason: string): void {}

  /** Whether the server has welcomed the current connection. */
  protected get welcomed(): boolean {
    return this.welcomedNow;
  }

  /** Whether any connection of this client was ever welcomed (a later hello asks for what was missed). */
  protected get wasEverWelcomed(): boolean {
    return this.everWelcomed;
  }

  /** The server let this connection in: the backoff starts again from the first delay, and silence is no longer a failed attempt. */
  protected markWelcomed(transport: LineTransport): void {
    this.welcomedNow = true;
    this.everWelcomed = true;
    this.attempt = 0;
    this.servers.welcomed();
    transport.stopAnswerTimer();
  }

  /**
   * Leaves on purpose: says bye, closes, and never reconnects. Resolves once
   * the bye has gone out and the server closed, or after BYE_TIMEOUT_MS.
   */
  protected closeOnPurpose(reason: string): Promise<void> {
    const transport = this.transport;
    const bye = transport !== undefined && this.welcomedNow ? encodeFrame({ type: 'bye' }) : undefined;
    // The transport says its goodbye on its own time; nothing of this client waits on it or disposes it.
    this.transport = undefined;
    this.welcomedNow = false;
    this.retryTimer?.dispose();
    this.leaving(reason);
    this.setState({ kind: 'closed', reason });
    this.settleFirstOutcome({ kind: 'unreachable', reason });
    return transport ? transport.end(bye, BYE_TIMEOUT_MS) : Promise.resolve();
  }

  /** A refusal that no retry will fix: the client closes for good. */
  protected refuse(code: Code | ClientRefusalCode, message: string): void {
    this.dropTransport(message);
    this.refused(code, message);
    this.setState({ kind: 'closed', reason: message, code });
    this.settleFirstOutcome({ kind: 'refused', code, message });
  }

  protected write(frame: Frame): void {
    this.transport?.write(encodeFrame(frame));
  }

  protected dropTransport(reason: string): void {
    this.transport?.dispose();
    this.transport = undefined;
    this.welcomedNow = false;
    this.transportDropped(reason);
  }

  protected setState(state: ConnectionState<Welcome, Code | ClientRefusalCode>): void {
    this.currentState = state;
    this.stateEmitter.fire(state);
  }

  protected settleFirstOutcome(outcome: FirstOutcomeOf<Welcome, Code | ClientRefusalCode> | Extra): void {
    const resolve = this.firstOutcomeResolve;
    this.firstOutcomeResolve = undefined;
    resolve?.(outcome);
  }

  private onTransportEnd(end: TransportEnd, transport: LineTransport): void {
    if (this.transport !== transport) return;
    if (end.kind === 'pinMismatch') {
      // Refused for good: retrying would only hand the hello and token to the same impostor.
      this.refuse('fingerprint_mismatch', end.reason);
      return;
    }
    this.dropTransport(end.reason);
    if (this.isDisposed || this.currentState.kind === 'closed') return;
    const server = this.servers.current;
    if (this.servers.failed()) {
      // Another server of the cluster may well be up: it is tried at once (a little jitter keeps a crowd from arriving in one burst).
      this.retryIn(Math.round(Math.random() * FAILOVER_JITTER_MS), end.reason);
      return;
    }
    if (!this.everWelcomed) this.settleFirstOutcome({ kind: 'unreachable', reason: end.reason });
    const policy = {
      initialMs: this.connection.initialBackoffMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: this.connection.maxBackoffMs ?? DEFAULT_BACKOFF.maxMs,
      maxLoopbackMs: this.connection.maxLoopbackBackoffMs ?? DEFAULT_BACKOFF.maxLoopbackMs,
    };
    const delay = reconnectDelay(policy, this.attempt, looksLikeRestart(server.host, end.errorCode), Math.random());
    this.attempt += 1;
    this.retryIn(delay, end.reason);
  }

  private retryIn(delay: number, reason: string): void {
    this.setState({ kind: 'reconnecting', retryAt: Date.now() + delay, attempt: this.attempt, reason });
    const handle = setTimeout(() => this.connect(), delay);
    this.retryTimer = toDisposable(() => clearTimeout(handle));
  }
}
