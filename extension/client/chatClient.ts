/**
 * The extension's side of wire protocol v1: a connection to one room of a
 * chat server, kept alive across drops. This file is the protocol's state
 * machine; the connection's life (its transport, the backoff between
 * attempts, a cluster's failover) is the {@link ReconnectingClient} it
 * extends, and unsent messages wait in an {@link Outbox}.
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
import { type IDisposable, toDisposable } from '../../shared/disposable';
import { parseServerFrame } from '../../shared/framing';
import {
  type ClientFrame,
  type ErrorCode,
  FATAL_ERRORS,
  NAME_ERRORS,
  RESUME_MAX_CHARS,
  type RoomEvent,
  type ServerFrame,
  type WelcomeFrame,
} from '../../shared/protocol';
import { Emitter } from '../emitter';
import { Outbox, type OutboxEntry, type OutboxStorage, outboxKey } from './outbox';
import { type ClientRefusalCode, type ConnectionOptions, type ConnectionState, type FirstOutcomeOf, ReconnectingClient } from './reconnectingClient';
import type { LineTransport } from './transport';

export interface ChatClientOptions extends ConnectionOptions {
  name: string;
  room: string;
  clientId: string;
  token?: string;
  /** Where the outbox is kept (extension/storedState.ts: `storedOutboxes`). */
  outboxes: OutboxStorage;
}

export type RefusalCode = ErrorCode | ClientRefusalCode;

export type ClientState = ConnectionState<WelcomeFrame, RefusalCode>;

/** How the first connection attempt ended, for the Join flow. */
export type FirstOutcome = FirstOutcomeOf<WelcomeFrame, RefusalCode>;

export interface SendFailure {
  id: string;
  text: string;
  code: ErrorCode;
  reason: string;
}

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

export class ChatClient extends ReconnectingClient<ClientFrame, WelcomeFrame, ErrorCode> {
  private readonly eventEmitter = this.register(new Emitter<RoomEvent>());
  private readonly failureEmitter = this.register(new Emitter<SendFailure>());
  private readonly errorEmitter = this.register(new Emitter<{ code: ErrorCode; message: string }>());
  private readonly frameEmitter = this.register(new Emitter<ServerFrame>());

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

  private lastSeqSeen = 0;
  /** Which history of the room `lastSeqSeen` belongs to (a cluster's welcome names it). */
  private roomEpoch: string | undefined;
  /** The seat secret from the last welcome; it belongs to that connection, so it is never stored. */
  private seatSecret: string | undefined;
  private readonly outbox: Outbox;
  private readonly sayRetryTimers = new Map<string, IDisposable>();

  constructor(private readonly options: ChatClientOptions) {
    super(options);
    this.outbox = this.register(new Outbox(options.outboxes, outboxKey(options)));
    this.onOutbox = this.outbox.onChange;
    this.register(toDisposable(() => this.sayRetryTimers.forEach((timer) => timer.dispose())));
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

  /** Queues a message; it is sent now if connected, else after reconnecting. Returns its id. */
  say(text: string): string {
    const id = randomUUID();
    this.outbox.add({ id, text, createdAt: Date.now() });
    if (this.welcomed) this.write({ type: 'say', id, text });
    return id;
  }

  /**
   * Leaves on purpose: says bye, closes, and never reconnects. Resolves once
   * the bye has gone out and the server closed, or after BYE_TIMEOUT_MS.
   * Pending messages stay stored for next time.
   */
  leave(): Promise<void> {
    return this.closeOnPurpose('You left the room.');
  }

  protected opened(): void {
    const hello: ClientFrame = { type: 'hello', name: this.options.name, room: this.options.room, clientId: this.options.clientId };
    if (this.options.token) hello.token = this.options.token;
    if (this.wasEverWelcomed && this.lastSeqSeen > 0) {
      hello.lastSeq = this.lastSeqSeen;
      if (this.roomEpoch !== undefined) hello.epoch = this.roomEpoch;
    }
    if (this.seatSecret !== undefined) hello.resume = this.seatSecret;
    this.write(hello);
  }

  protected receive(bytes: Buffer, transport: LineTransport): void {
    const parsed = parseServerFrame(bytes);
    // A frame we cannot read is skipped, not fatal: newer servers may add types.
    if (!parsed.ok) return;
    this.frameEmitter.fire(parsed.frame);
    this.handleFrame(parsed.frame, transport);
  }

  private handleFrame(frame: ServerFrame, transport: LineTransport): void {
    switch (frame.type) {
      case 'welcome': {
        this.markWelcomed(transport);
        // Anything but a plausible secret is dropped: it goes back in every later hello.
        this.seatSecret = typeof frame.resume === 'string' && frame.resume.length > 0 && frame.resume.length <= RESUME_MAX_CHARS ? frame.resume : undefined;
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

  /** The message is the server's now (acknowledged), or never will be: it leaves the outbox. */
  private takeOut(id: string): void {
    if (!this.outbox.remove(id)) return;
    this.sayRetryTimers.get(id)?.dispose();
    this.sayRetryTimers.delete(id);
  }
}
