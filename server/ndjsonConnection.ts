/** A client speaking wire protocol v1 (NDJSON): hello, say, ping, bye. */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { toDisposable } from '../shared/disposable';
import { ClientFrameDecoder, type FrameProblem, type ClientFrameResult, encodeFrame } from '../shared/framing';
import { nameProblem, roomProblem } from '../shared/names';
import { CLIENT_ID_MAX_CHARS, DEFAULT_ROOM, FATAL_ERRORS, ID_MAX_CHARS, PROTOCOL_VERSION, TOKEN_MAX_CHARS } from '../shared/protocol';
import type { ErrorCode, HelloFrame, SayFrame, ServerFrame } from '../shared/protocol';
import { Connection, type ConnectionHost } from './connection';
import type { EncodedEvent } from './room';

const PING = encodeFrame({ type: 'ping' });
const PONG = encodeFrame({ type: 'pong' });
/** Replayed history is written in slices of about this size, each after the client has taken the last. */
const REPLAY_SLICE_BYTES = 256 * 1024;

export class NdjsonConnection extends Connection<ClientFrameResult> {
  readonly answersPings = true;
  private readonly decoder: ClientFrameDecoder;
  private toldAboutRate = false;
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
  /** Cleared once the client is in a room, so thousands of idle members hold no timers. */
  private helloTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, host: ConnectionHost) {
    super(socket, host);
    this.decoder = new ClientFrameDecoder(host.limits.maxFrameBytes);
    this.helloTimer = setTimeout(() => {
      if (!this.isJoined) this.fail('hello_timeout', `No hello within ${host.limits.helloTimeoutMs} ms.`);
    }, host.limits.helloTimeoutMs);
    this.register(toDisposable(() => clearTimeout(this.helloTimer)));
  }

  protected onBytes(chunk: Buffer): void {
    this.enqueue(this.decoder.push(chunk));
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

  ping(): void {
    this.send(PING);
  }

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
    const verdict = this.host.accessGate.check(hello.token !== undefined ? hello.token.slice(0, TOKEN_MAX_CHARS) : undefined, this.socket.remoteAddress);
    if (verdict === 'locked_out') return this.fail('locked_out', 'Too many failed attempts from this address; try again in a minute.');
    if (verdict === 'unauthorized') {
      return this.fail('unauthorized', hello.token === undefined ? 'This server needs a token.' : 'The token is wrong.');
    }
    const badName = nameProblem(hello.name);
    if (badName) return this.fail('bad_name', badName);
    const roomName = (hello.room ?? DEFAULT_ROOM).normalize('NFC');
    const badRoom = roomProblem(roomName);
    if (badRoom) return this.fail('bad_room', badRoom);
    if (hello.clientId !== undefined && (hello.clientId.length === 0 || hello.clientId.length > CLIENT_ID_MAX_CHARS)) {
      return this.fail('bad_frame', `The clientId must be 1 to ${CLIENT_ID_MAX_CHARS} characters.`);
    }
    if (hello.lastSeq !== undefined && hello.lastSeq < 0) return this.fail('bad_frame', 'lastSeq must not be negative.');

    const room = await this.host.openRoom(roomName);
    if (this.isDisposed || this.isJoined || this.isStopping) return;
    const holder = room.memberNamed(hello.name);
    const resuming = holder !== undefined && hello.clientId !== undefined && holder.clientId === hello.clientId && holder instanceof Connection;
    if (holder && !resuming) return this.fail('name_taken', `Someone in ${roomName} is already called "${holder.name}".`);

    this.name = hello.name;
    this.clientId = hello.clientId ?? randomUUID();
    this.room = room;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.reply({ type: 'welcome', you: this.name, room: room.name, members: room.memberNames.concat(resuming ? [] : [this.name]), seq: room.latestSeq, firstSeq: room.firstSeq, protocol: PROTOCOL_VERSION });
    this.startReplay(room.replay(hello.lastSeq, this.host.limits.replayEvents));
    if (resuming && holder instanceof Connection) {
      // The same client came back before its old connection was noticed dead: a resume, not a new arrival.
      room.replaceMember(holder, this);
      holder.markReplaced();
      this.host.logger.info(`${this.peer} resumed as ${this.name} in ${room.name}.`);
    } else {
      room.join(this);
      this.host.logger.info(`${this.peer} joined ${room.name} as ${this.name}.`);
    }
  }

  private say(say: SayFrame): void {
    const room = this.room;
    if (!room) return this.fail('not_joined', 'Say hello before sending messages.', say.id);
    if (say.id.length === 0 || say.id.length > ID_MAX_CHARS) return this.fail('bad_frame', `A message id must be 1 to ${ID_MAX_CHARS} characters.`, say.id);
    const textBytes = Buffer.byteLength(say.text, 'utf8');
    if (textBytes > this.host.limits.maxTextBytes) {
      return this.error('too_long', `A message may be at most ${this.host.limits.maxTextBytes} bytes; this one has ${textBytes}.`, say.id);
    }
    if (say.text.trim().length === 0) return this.fail('bad_frame', 'A message must not be empty.', say.id);
    // Not awaited: the next frame need not wait for this one's fsync. Acks still go out in order.
    void room.say(this, this.clientId as string, say.id, say.text).then((result) => {
      if (result.ok) this.reply({ type: 'ack', id: say.id, seq: result.seq });
      else this.error('storage_failed', 'The server could not store the message (its disk may be full); send it again later.', say.id);
    });
  }
}
