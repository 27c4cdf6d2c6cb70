/**
 * What every client connection shares, whichever protocol it speaks: the
 * socket and its ownership, the time limit to join, pacing by the rate limit,
 * the slow-reader rule, finishing what was said before the peer closed its
 * side, and announcing the departure once the socket is gone.
 */
import type { Socket } from 'node:net';
import { Disposable, toDisposable } from '../shared/disposable';
import type { LeaveReason, Limits } from '../shared/protocol';
import type { AccessGate } from './accessGate';
import type { Logger } from './log';
import { TokenBucket } from './rateLimiter';
import type { Directory } from './directory';
import type { EncodedEvent, Room, RoomMember } from './room';
import type { Departure } from './roomEvents';
import type { RoomEntry } from './roomRegistry';
import type { WriteBatcher } from './writeBatcher';

/** Past this many bytes read and not yet decoded, reading pauses until the backlog is down to the low mark. */
const UNDECODED_HIGH_WATER_BYTES = 64 * 1024;
const UNDECODED_LOW_WATER_BYTES = 16 * 1024;
/** Input is decoded this much at a time, so one slice never becomes more than a few hundred queued lines. */
const DECODE_SLICE_BYTES = 1024;

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly limits: Limits;
  readonly logger: Logger;
  readonly batcher: WriteBatcher;
  readonly accessGate: AccessGate;
  readonly directory: Directory;
  /** Loads the room if need be and hands it to `use` at once (see RoomRegistry.enter). */
  enterRoom<T>(name: string, address: string | undefined, use: (room: Room) => T): Promise<RoomEntry<T>>;
  /**
   * A v1 or classic member is taking a seat in `room`: a room nobody had
   * entered gets its directory entry (with no owner: only an identity can own
   * a room).
   */
  claimRoom(room: Room, ownerId: string | undefined): Promise<void> | undefined;
  forget(connection: Connection): void;
  /**
   * Cluster mode only: whether a v1 seat held on another server (which may
   * have died) was handed the seat secret with this digest, so the member
   * may take it over here.
   */
  seatSecretMatches?(roomKey: string, seat: string, secretDigest: string): Promise<boolean>;
}

/**
 * A client connection. A v1 or classic one is in one room at most (`room`);
 * a v2 one holds many, through its session (ndjsonConnection.ts), and
 * overrides how it leaves them.
 */
export abstract class Connection<Input = unknown> extends Disposable implements RoomMember {
  name = '';
  /** The room of a v1 or classic member. */
  room: Room | undefined;
  /** Welcomed (a v1 or classic member in its room, or a v2 session): the hello time limit no longer applies. */
  private welcomed = false;
  readonly peer: string;
  lastHeardAt = Date.now();
  /** Why the member leaves when the socket closes; unset means it vanished (`lost`). */
  protected leaveReason: LeaveReason | undefined;
  /** A resumed session took over this member: leave without an announcement. */
  protected replaced = false;
  private readonly inputs: Input[] = [];
  /**
   * Bytes read but not yet decoded. Input is decoded a slice at a time, only
   * as fast as it is handled, and reading pauses while too much waits here:
   * a client that writes faster than the rate limit is held back by TCP, and
   * costs the server no more than these few KiB (decoding everything at once
   * turned 64 KiB of `y\n` into 32,000 queued lines).
   */
  private readonly undecoded: Buffer[] = [];
  private undecodedBytes = 0;
  private pausedForBacklog = false;
  /** The peer's end of input is known but not yet passed on, because bytes before it wait undecoded. */
  private endNotYetHandled = false;
  private readonly rateLimit: TokenBucket;
  private handlingInput = false;
  private pausedForRate = false;
  private resumeTimer: NodeJS.Timeout | undefined;
  private readingStopped = false;
  /** The peer has closed its side: once its input is handled and answered, the server closes its own. */
  private inputEnded = false;
  private finishing = false;
  /** Work whose answer the peer is still owed (a message being stored before its ack); made on first use, as most connections never owe anything. */
  private owed: Set<Promise<unknown>> | undefined;
  /** Cleared once the client is in a room, so thousands of idle members hold no timers. */
  private joinTimer: NodeJS.Timeout | undefined;

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
      this.guard(() => this.onBytesArrived());
      if (this.readingStopped) return;
      this.undecoded.push(chunk);
      this.undecodedBytes += chunk.length;
      if (this.undecodedBytes >= UNDECODED_HIGH_WATER_BYTES && !this.pausedForBacklog) {
        this.pausedForBacklog = true;
        socket.pause();
      }
      void this.drainInputs();
    });
    // Sockets are half-open: what arrived before the peer's FIN is still handled and answered.
    socket.on('end', () => {
      this.inputEnded = true;
      this.endNotYetHandled = true;
      void this.drainInputs();
    });
    // 'close' always follows 'error'; the departure is handled there.
    socket.on('error', () => undefined);
    socket.on('close', () => this.dispose());
    this.register(toDisposable(() => socket.destroy()));
    this.register(toDisposable(() => clearTimeout(this.resumeTimer)));
    this.joinTimer = setTimeout(() => {
      if (!this.isJoined) this.guard(() => this.onJoinTimeout());
    }, host.limits.helloTimeoutMs);
    this.register(toDisposable(() => clearTimeout(this.joinTimer)));
  }

  get isJoined(): boolean {
    return this.welcomed;
  }

  /** Decodes a slice of input into inputs (queued with `enqueue`); called only as fast as input is handled. */
  protected abstract onBytes(chunk: Buffer): void;
  /** Bytes arrived (before they are decoded): a sign of life, for idle checks. */
  protected onBytesArrived(): void {}
  protected abstract handleInput(input: Input): void | Promise<void>;
  /** The connection did not join within the hello time limit. */
  protected abstract onJoinTimeout(): void;
  /** The last line of the connection when the server shuts down, if its protocol has one. */
  abstract readonly shutdownNotice: Buffer | undefined;
  abstract deliver(event: EncodedEvent): void;
  /** Called about once a second: pings a silent client, or closes one silent for too long. */
  abstract checkIdle(now: number): void;

  /** Called when the peer has closed its side, once everything it sent before is decoded. */
  protected onInputEnded(): void {}

  /** Whether bytes have arrived that are not decoded yet (so an unterminated line may still go on). */
  protected get hasUndecodedInput(): boolean {
    return this.undecodedBytes > 0;
  }

  /** Stops the join timer once the connection is welcomed (with its room, for a v1 or classic member). */
  protected joined(room?: Room): void {
    if (room) this.room = room;
    this.welcomed = true;
    clearTimeout(this.joinTimer);
    this.joinTimer = undefined;
  }

  /**
   * Runs `work` so that nothing it throws can leave this connection: an
   * unexpected error is logged and ends this connection alone.
   */
  protected guard(work: () => void | Promise<void>): void {
    try {
      const result = work();
      if (result instanceof Promise) result.catch((error: unknown) => this.failUnexpectedly(error));
    } catch (error) {
      this.failUnexpectedly(error);
    }
  }

  private failUnexpectedly(error: unknown): void {
    this.host.logger.error(`${this.peer}: unexpected error, closing this connection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    this.socket.destroy();
  }

  /** Keeps track of an answer the peer is owed, so a departure waits for it. */
  protected owe(work: Promise<unknown>): void {
    const owed = (this.owed ??= new Set());
    owed.add(work);
    void work
      .finally(() => {
        owed.delete(work);
        // An idle connection keeps no empty set.
        if (owed.size === 0 && this.owed === owed) this.owed = undefined;
      })
      .catch((error: unknown) => this.failUnexpectedly(error));
  }

  /** Resolves once every answer owed so far has been sent. */
  protected async settleOwed(): Promise<void> {
    while (this.owed && this.owed.size > 0) await Promise.allSettled([...this.owed]);
  }

  /** Queues parsed input and handles it as fast as the rate limit allows; over it, reading pauses (delay, never drop). */
  protected enqueue(inputs: Input[]): void {
    if (this.readingStopped) return;
    for (const input of inputs) this.inputs.push(input);
    void this.drainInputs();
  }

  private async drainInputs(): Promise<void> {
    if (this.handlingInput || this.pausedForRate) return;
    this.handlingInput = true;
    try {
      while (!this.isDisposed && !this.readingStopped) {
        if (this.inputs.length === 0 && !this.decodeMore()) break;
        if (this.inputs.length === 0) continue;
        if (!this.rateLimit.tryTake()) {
          this.pauseForRate();
          return;
        }
        await this.handleInput(this.inputs.shift() as Input);
      }
    } catch (error) {
      this.failUnexpectedly(error);
      return;
    } finally {
      this.handlingInput = false;
    }
    if (this.inputEnded && this.inputs.length === 0 && this.undecodedBytes === 0) this.guard(() => this.finishAfterPeerEnded());
  }

  /**
   * Decodes the next slice of what was read, resuming a socket paused for its
   * backlog once little is left, and passes on the end of input once all
   * before it is decoded. False when there was nothing more to decode.
   */
  private decodeMore(): boolean {
    const chunk = this.undecoded[0];
    if (chunk === undefined) {
      if (!this.endNotYetHandled) return false;
      this.endNotYetHandled = false;
      this.onInputEnded();
      return this.inputs.length > 0;
    }
    const slice = chunk.length <= DECODE_SLICE_BYTES ? chunk : chunk.subarray(0, DECODE_SLICE_BYTES);
    if (slice === chunk) this.undecoded.shift();
    else this.undecoded[0] = chunk.subarray(DECODE_SLICE_BYTES);
    this.undecodedBytes -= slice.length;
    if (this.pausedForBacklog && this.undecodedBytes <= UNDECODED_LOW_WATER_BYTES && !this.readingStopped) {
      this.pausedForBacklog = false;
      if (!this.pausedForRate) this.socket.resume();
    }
    this.onBytes(slice);
    return true;
  }

  /** The peer closed its side and everything it sent is handled: answer what is owed, leave, and close. */
  private async finishAfterPeerEnded(): Promise<void> {
    if (this.finishing || this.isDisposed) return;
    this.finishing = true;
    await this.settleOwed();
    const reason = this.leaveReason ?? 'lost';
    await this.leaveRooms(reason);
    this.endWith(undefined, reason);
  }

  private pauseForRate(): void {
    this.pausedForRate = true;
    this.socket.pause();
    this.onRateLimited();
    this.resumeTimer = setTimeout(() => {
      this.pausedForRate = false;
      if (this.readingStopped) return;
      if (!this.pausedForBacklog) this.socket.resume();
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

  /** Leaves every room now with a reason, keeping the socket (for `bye` and shutdown). */
  leaveRooms(reason: LeaveReason): Promise<unknown> {
    const room = this.room;
    this.room = undefined;
    if (!room || this.replaced) return Promise.resolve(false);
    this.host.logger.info(`${this.peer} (${this.name}) left ${room.name} (${reason}).`);
    return room.leave(this, reason);
  }

  /** Someone else removed this member from its room (a kick): it is told, and the connection ends. */
  removed(departure: Departure): void {
    this.room = undefined;
    this.leaveReason = departure.reason;
    this.endWith(this.removalNotice(departure), departure.reason);
  }

  /** The room's history was replaced (cluster mode); a v1 member is shown it afresh (ndjsonConnection.ts). */
  reset(_room: Room): void {}

  /** The last thing a member removed from its room is sent. */
  protected abstract removalNotice(departure: Departure): Buffer | undefined;

  /** Takes no more input (the server is shutting down): nothing said from now on is acted on. */
  stopReading(): void {
    this.ignoreFurtherInput();
    this.socket.pause();
  }

  /** Acts on nothing more that arrives (after a `bye`), but goes on reading so the peer's close is seen. */
  protected ignoreFurtherInput(): void {
    this.readingStopped = true;
  }

  /** Whether input has stopped being taken; a hello still waiting for its room must then not join. */
  protected get isStopping(): boolean {
    return this.readingStopped;
  }

  /** Lets go of its rooms without announcing anything: the rooms announce the departures themselves (shutdown). */
  detachFromRooms(): void {
    this.room = undefined;
  }

  /** Marks this connection as taken over by a resumed session of the same client. */
  markReplaced(): void {
    this.replaced = true;
    this.socket.destroy();
  }

  override dispose(): void {
    if (this.isDisposed) return;
    void this.leaveRooms(this.leaveReason ?? 'lost');
    this.host.logger.info(`${this.peer} has disconnected.`);
    this.host.forget(this);
    super.dispose();
  }
}
