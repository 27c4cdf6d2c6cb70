/** A client speaking wire protocol v1 (NDJSON): hello, say, ping, bye. */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { ClientFrameDecoder, type FrameProblem, type ClientFrameResult, encodeFrame } from '../shared/framing';
import { isBlankText, nameProblem, roomProblem } from '../shared/names';
import {
  CLIENT_ID_MAX_CHARS,
  DEFAULT_ROOM,
  FATAL_ERRORS,
  ID_MAX_CHARS,
  MAX_SERVER_FRAME_BYTES,
  PROTOCOL_VERSION,
  RESUME_MAX_CHARS,
  WELCOME_MAX_MEMBERS,
} from '../shared/protocol';
import type { ErrorCode, HelloFrame, SayFrame, ServerFrame } from '../shared/protocol';
import { Connection, type ConnectionHost } from './connection';
import type { EncodedEvent, Room } from './room';
import { seatNameProblem } from './seatNames';

const PING = encodeFrame({ type: 'ping' });
const PONG = encodeFrame({ type: 'pong' });
const GOODBYE = encodeFrame({ type: 'error', code: 'shutdown', message: 'The server is shutting down.' });
/** Replayed history is written in slices of about this size, each after the client has taken the last. */
const REPLAY_SLICE_BYTES = 256 * 1024;
/**
 * Room for a message event's other fields (room, name, id, seq, time) beside
 * its text, with every character escaped at its longest, so that a message
 * whose escaped text fits the rest is never a frame over MAX_SERVER_FRAME_BYTES.
 */
const MESSAGE_ENVELOPE_BYTES = 2 * 1024;

/** A seat secret: base64url of 16 random bytes. */
function newSeatSecret(): string {
  return randomBytes(16).toString('base64url');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class NdjsonConnection extends Connection<ClientFrameResult> {
  readonly shutdownNotice = GOODBYE;
  private readonly decoder: ClientFrameDecoder;
  private toldAboutRate = false;
  /** Scopes this client's message ids for de-duplication (its installation id, or a random one). */
  private clientId = '';
  /** The seat secret this connection was given in its welcome; only it lets another connection take the seat over. */
  private seatSecret: string | undefined;
  /** When the server pinged this client for being silent, if it has. */
  private pingedAt: number | undefined;
  /**
   * History still to send after a welcome, followed by live events that
   * arrived meanwhile (they must wait their turn to keep the order). A
   * returning client may be owed megabytes, so it is paced by 'drain' rather
   * than written at once, which would look like a slow reader.
   */
  private backlog: EncodedEvent[] | undefined;
  private backlogNext = 0;
  /** Index in `backlog` where the replay ends and live events begin. */
  private replayLength = 0;
  /** Bytes of live events waiting behind the replay; past the slow-reader limit the client is cut off. */
  private waitingLiveBytes = 0;

  constructor(socket: Socket, host: ConnectionHost) {
    super(socket, host);
    this.decoder = new ClientFrameDecoder(host.limits.maxFrameBytes);
  }

  protected override onBytesArrived(): void {
    this.pingedAt = undefined;
  }

  protected onBytes(chunk: Buffer): void {
    this.enqueue(this.decoder.push(chunk));
  }

  protected onJoinTimeout(): void {
    this.fail('hello_timeout', `No hello within ${this.host.limits.helloTimeoutMs} ms.`);
  }

  checkIdle(now: number): void {
    const { idlePingMs, idleCloseMs } = this.host.limits;
    if (this.pingedAt !== undefined) {
      if (now - this.pingedAt >= idleCloseMs) this.fail('idle_timeout', `No answer to a ping within ${idleCloseMs} ms.`);
    } else if (now - this.lastHeardAt >= idlePingMs) {
      this.pingedAt = now;
      this.send(PING);
    }
  }

  deliver(event: EncodedEvent): void {
    if (!this.backlog) {
      this.send(event.wire);
      return;
    }
    this.backlog.push(event);
    this.waitingLiveBytes += event.wire.length;
    if (this.waitingLiveBytes > this.host.limits.maxPendingWriteBytes) this.dropAsSlowReader(this.waitingLiveBytes);
  }

  private startReplay(events: EncodedEvent[]): void {
    if (events.length === 0) return;
    this.backlog = events.slice();
    this.backlogNext = 0;
    this.replayLength = events.length;
    this.waitingLiveBytes = 0;
    this.pumpBacklog();
  }

  private readonly pumpBacklog = (): void => {
    const backlog = this.backlog;
    if (!backlog || this.isDisposed || this.socket.destroyed) return;
    while (this.backlogNext < backlog.length) {
      if (this.socket.writableLength >= REPLAY_SLICE_BYTES) {
        this.socket.once('drain', this.pumpBacklog);
        return;
      }
      const index = this.backlogNext++;
      const event = backlog[index];
      if (index >= this.replayLength) this.waitingLiveBytes -= event.wire.length;
      // Straight to the batcher: this data is paced here, so the slow-reader rule does not apply to it.
      this.host.batcher.write(this.socket, event.wire);
    }
    this.backlog = undefined;
  };

  private reply(frame: ServerFrame): void {
    this.send(encodeFrame(frame));
  }

  private error(code: ErrorCode, message: string, id?: string): void {
    this.reply(id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id });
  }

  /** Sends the error and, for the codes that end a session, closes the connection. */
  fail(code: ErrorCode, message: string, id?: string): void {
    if (!FATAL_ERRORS.has(code)) {
      this.error(code, message, id);
      return;
    }
    this.endWith(encodeFrame({ type: 'error', code, message }), 'lost');
  }

  protected override onRateLimited(): void {
    // Said once per connection: the client learns why its messages are slow, and nothing is dropped.
    if (this.toldAboutRate) return;
    this.toldAboutRate = true;
    const { rateBurst, ratePerSecond } = this.host.limits;
    this.error('rate_limited', `Slow down: after ${rateBurst} frames at once the server reads ${ratePerSecond} a second. Nothing is dropped.`);
  }

  protected async handleInput(input: ClientFrameResult): Promise<void> {
    if (input.kind === 'problem') {
      this.reportProblem(input.problem);
      return;
    }
    const frame = input.frame;
    switch (frame.type) {
      case 'hello':
        return this.hello(frame);
      case 'say':
        return this.say(frame);
      case 'ping':
        this.send(PONG);
        return;
      case 'pong':
        return;
      case 'bye':
        // Whatever came after the bye is not acted on; whatever came before is stored and acked first.
        this.ignoreFurtherInput();
        await this.settleOwed();
        await this.leaveRoom('quit');
        this.endWith(undefined, 'quit');
        return;
    }
  }

  private reportProblem(problem: FrameProblem): void {
    // An overlong frame leaves the stream with no known next frame boundary, so it ends the session.
    if (problem.code === 'too_long') this.endWith(encodeFrame({ type: 'error', ...problem }), 'lost');
    else this.fail(problem.code, problem.message, problem.id);
  }

  private async hello(hello: HelloFrame): Promise<void> {
    if (this.isJoined) return this.fail('already_joined', 'This connection has already said hello.');
    const verdict = this.host.accessGate.check(hello.token, this.socket.remoteAddress);
    if (verdict === 'locked_out') return this.fail('locked_out', 'Too many failed attempts from this address; try again in a minute.');
    if (verdict === 'unauthorized') {
      return this.fail('unauthorized', hello.token === undefined ? 'This server needs a token.' : 'The token is wrong.');
    }
    const badName = nameProblem(hello.name) ?? seatNameProblem(hello.name);
    if (badName) return this.fail('bad_name', badName);
    const roomName = (hello.room ?? DEFAULT_ROOM).normalize('NFC');
    const badRoom = roomProblem(roomName);
    if (badRoom) return this.fail('bad_room', badRoom);
    if (hello.clientId !== undefined && (hello.clientId.length === 0 || hello.clientId.length > CLIENT_ID_MAX_CHARS)) {
      return this.fail('bad_frame', `The clientId must be 1 to ${CLIENT_ID_MAX_CHARS} characters.`);
    }
    if (hello.resume !== undefined && (hello.resume.length === 0 || hello.resume.length > RESUME_MAX_CHARS)) {
      return this.fail('bad_frame', `The resume secret must be 1 to ${RESUME_MAX_CHARS} characters.`);
    }
    if (hello.lastSeq !== undefined && hello.lastSeq < 0) return this.fail('bad_frame', 'lastSeq must not be negative.');

    const entry = await this.host.enterRoom(roomName, this.socket.remoteAddress, (room) => this.takeSeat(room, hello));
    if (!entry.ok) this.fail(entry.code, entry.message);
  }

  /** Joins `room`, or takes over the seat whose secret the hello gave back; runs in the turn the room was found loaded. */
  private takeSeat(room: Room, hello: HelloFrame): void {
    if (this.isDisposed || this.isJoined || this.isStopping) return;
    const holder = room.memberNamed(hello.name);
    const resuming = holder instanceof NdjsonConnection && hello.resume !== undefined && holder.holdsSeatSecret(hello.resume);
    if (holder && !resuming) {
      // Closed, so a connection cannot go on trying names (or secrets) on one socket.
      return this.fail('name_taken', `Someone in ${room.name} is already called "${holder.name}".`);
    }
    const secret = newSeatSecret();
    this.name = hello.name;
    this.clientId = hello.clientId ?? randomUUID();
    this.seatSecret = secret;
    this.joined(room);
    // The list is bounded (you first), so a welcome to a crowded room still fits a frame.
    const members = room.memberNames(WELCOME_MAX_MEMBERS, this.name);
    const memberCount = room.memberCount + (resuming ? 0 : 1);
    this.reply({ type: 'welcome', you: this.name, room: room.name, members, memberCount, resume: secret, seq: room.latestSeq, firstSeq: room.firstSeq, protocol: PROTOCOL_VERSION });
    this.startReplay(room.replay(hello.lastSeq, this.host.limits.replayEvents));
    if (resuming) {
      // The same client came back before its old connection was noticed dead: a resume, not a new arrival.
      room.replaceMember(holder, this);
      holder.markReplaced();
      this.host.logger.info(`${this.peer} resumed as ${this.name} in ${room.name}.`);
    } else {
      room.join(this);
      this.host.logger.info(`${this.peer} joined ${room.name} as ${this.name}.`);
    }
  }

  /** Compares a presented seat secret with this connection's, in constant time (over digests, so lengths may differ). */
  private holdsSeatSecret(presented: string): boolean {
    return this.seatSecret !== undefined && timingSafeEqual(digest(presented), digest(this.seatSecret));
  }

  private say(say: SayFrame): void {
    const room = this.room;
    if (!room) return this.fail('not_joined', 'Say hello before sending messages.', say.id);
    if (say.id.length === 0 || say.id.length > ID_MAX_CHARS) return this.fail('bad_frame', `A message id must be 1 to ${ID_MAX_CHARS} characters.`, say.id);
    const textBytes = Buffer.byteLength(say.text, 'utf8');
    if (textBytes > this.host.limits.maxTextBytes) {
      return this.error('too_long', `A message may be at most ${this.host.limits.maxTextBytes} bytes; this one has ${textBytes}.`, say.id);
    }
    // Escaping at most sextuples a byte (a control character becomes \u00XX), so most texts need no check.
    if (textBytes * 6 + MESSAGE_ENVELOPE_BYTES > MAX_SERVER_FRAME_BYTES && Buffer.byteLength(JSON.stringify(say.text), 'utf8') + MESSAGE_ENVELOPE_BYTES > MAX_SERVER_FRAME_BYTES) {
      return this.error('too_long', `This message would make a frame of more than ${MAX_SERVER_FRAME_BYTES} bytes once its characters are escaped.`, say.id);
    }
    if (isBlankText(say.text)) return this.fail('bad_frame', 'A message must not be empty or made only of invisible characters.', say.id);
    // Not awaited: the next frame need not wait for this one's fsync. Acks still go out in order.
    this.owe(
      room.say(this, say.text, { clientId: this.clientId, id: say.id }).then((result) => {
        if (result.ok) this.reply({ type: 'ack', id: say.id, seq: result.seq });
        else this.error('storage_failed', 'The server could not store the message (its disk may be full); send it again later.', say.id);
      }),
    );
  }
}
