/**
 * What every client connection shares, whichever protocol it speaks: the
 * socket and its ownership, pacing by the rate limit, the slow-reader rule,
 * and announcing the departure once the socket is gone.
 */
import type { Socket } from 'node:net';
import { Disposable, toDisposable } from '../shared/disposable';
import type { LeaveReason, Limits } from '../shared/protocol';
import type { AccessGate } from './accessGate';
import type { Logger } from './log';
import { TokenBucket } from './rateLimiter';
import type { EncodedEvent, Room, RoomMember } from './room';
import type { WriteBatcher } from './writeBatcher';

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly limits: Limits;
  readonly logger: Logger;
  readonly batcher: WriteBatcher;
  readonly accessGate: AccessGate;
  openRoom(name: string): Promise<Room>;
  forget(connection: Connection): void;
}

export abstract class Connection<Input = unknown> extends Disposable implements RoomMember {
  name = '';
  clientId: string | undefined;
  room: Room | undefined;
  readonly peer: string;
  lastHeardAt = Date.now();
  /** When the server pinged this client for being silent, if it has. */
  pingedAt: number | undefined;
  /** Why the member leaves when the socket closes; unset means it vanished (`lost`). */
  protected leaveReason: LeaveReason | undefined;
  /** A resumed session took over this member: leave without an announcement. */
  protected replaced = false;
  private readonly inputs: Input[] = [];
  private readonly rateLimit: TokenBucket;
  private handlingInput = false;
  private pausedForRate = false;
  private resumeTimer: NodeJS.Timeout | undefined;
  private readingStopped = false;

  constructor(
    readonly socket: Socket,
    protected readonly host: ConnectionHost,
  ) {
    super();
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.rateLimit = new TokenBucket(host.limits.rateBurst, host.limits.ratePerSecond);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.lastHeardAt = Date.now();
      this.pingedAt = undefined;
      this.onBytes(chunk);
    });
    // 'close' always follows 'error'; the departure is handled there.
    socket.on('error', () => undefined);
    socket.on('close', () => this.dispose());
    this.register(toDisposable(() => socket.destroy()));
    this.register(toDisposable(() => clearTimeout(this.resumeTimer)));
  }

  get isJoined(): boolean {
    return this.room !== undefined;
  }

  /** Whether the server may ping this client when it falls silent. */
  abstract readonly answersPings: boolean;

  protected abstract onBytes(chunk: Buffer): void;
  protected abstract handleInput(input: Input): void | Promise<void>;
  abstract deliver(event: EncodedEvent): void;

  /** Queues parsed input and handles it as fast as the rate limit allows; over it, reading pauses (delay, never drop). */
  protected enqueue(inputs: Input[]): void {
    this.inputs.push(...inputs);
    void this.drainInputs();
  }

  private async drainInputs(): Promise<void> {
    if (this.handlingInput || this.pausedForRate) return;
    this.handlingInput = true;
    try {
      while (this.inputs.length > 0 && !this.isDisposed && !this.readingStopped) {
        if (!this.rateLimit.tryTake()) {
          this.pauseForRate();
          return;
        }
        await this.handleInput(this.inputs.shift() as Input);
      }
    } finally {
      this.handlingInput = false;
    }
  }

  private pauseForRate(): void {
    this.pausedForRate = true;
    this.socket.pause();
    this.onRateLimited();
    this.resumeTimer = setTimeout(() => {
      this.pausedForRate = false;
      if (this.readingStopped) return;
      this.socket.resume();
      void this.drainInputs();
    }, this.rateLimit.msUntilNextToken());
  }

  /** Tells the client it is being slowed down; nothing it sent is dropped. */
  protected onRateLimited(): void {}

  /**
   * Writes through the shared batcher. A client is a slow reader when, at the
   * first write of a batch, more than the limit is still unsent from earlier
   * batches: only then does the count mean bytes the client failed to read,
   * not a burst that this batch has not flushed yet.
   */
  send(bytes: Buffer): void {
    if (this.isDisposed || this.socket.destroyed) return;
    if (!this.host.batcher.isBatching(this.socket) && this.socket.writableLength > this.host.limits.maxPendingWriteBytes) {
      this.dropAsSlowReader(this.socket.writableLength);
      return;
    }
    this.host.batcher.write(this.socket, bytes);
  }

  /** Cuts off a client that does not read what it is sent, and announces it as lost. */
  protected dropAsSlowReader(unsentBytes: number): void {
    if (this.socket.destroyed) return;
    this.host.logger.warn(`${this.peer} is not reading (${unsentBytes} bytes waiting); disconnecting it`);
    this.leaveReason = 'lost';
    this.socket.destroy();
  }

  /** Sends a last frame and closes once it is written. */
  endWith(bytes: Buffer | undefined, reason: LeaveReason): void {
    this.leaveReason ??= reason;
    if (bytes && !this.isDisposed) this.socket.end(bytes);
    else this.socket.end();
    // A peer that never reads would keep a half-closed socket forever.
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
  }

  /** Leaves the room now with a reason, keeping the socket (for `bye` and shutdown). */
  leaveRoom(reason: LeaveReason): Promise<boolean> {
    const room = this.room;
    this.room = undefined;
    if (!room || this.replaced) return Promise.resolve(false);
    this.host.logger.info(`${this.peer} (${this.name}) left ${room.name} (${reason}).`);
    return room.leave(this, reason);
  }

  /** Takes no more input (the server is shutting down): nothing said from now on is acted on. */
  stopReading(): void {
    this.readingStopped = true;
    this.socket.pause();
  }

  /** Whether input has stopped being taken; a hello still waiting for its room must then not join. */
  protected get isStopping(): boolean {
    return this.readingStopped;
  }

  /** Lets go of the room without announcing anything: the room announces the departure itself (shutdown). */
  detachFromRoom(): void {
    this.room = undefined;
  }

  /** Marks this connection as taken over by a resumed session of the same client. */
  markReplaced(): void {
    this.replaced = true;
    this.socket.destroy();
  }

  override dispose(): void {
    if (this.isDisposed) return;
    void this.leaveRoom(this.leaveReason ?? 'lost');
    this.host.logger.info(`${this.peer} has disconnected.`);
    this.host.forget(this);
    super.dispose();
  }
}
