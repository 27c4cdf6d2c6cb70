/**
 * A client speaking NDJSON: wire protocol v1 (hello, say, ping, bye: one room
 * a connection) or, when its hello asks for it, v2 (many conversations; the
 * frames after the hello are handled by its V2Session).
 *
 * Lines are split as they arrive and decoded when their turn comes, by the
 * table of the version the connection has chosen by then: a v2 hello and the
 * frames sent right behind it in one packet are read as v2.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { encodeFrame, type FrameProblem, isV2OnlyFrameType, LineSplitter, parseFlatJsonObject, validateClientFrame } from '../shared/framing';
import { isBlankText, nameProblem, roomKey, roomProblem } from '../shared/names';
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
import type { ClientFrame, ErrorCode, HelloFrame, SayFrame, ServerFrame } from '../shared/protocol';
import { DM_PREFIX, FATAL_ERRORS_V2, PROTOCOL_V2, SUPPORTED_PROTOCOLS, type ErrorCodeV2 } from '../shared/protocolV2';
import { Connection } from './connection';
import { type EncodedEvent, guestSeatId, RemoteMember, type Room, storageFailure } from './room';
import type { Departure } from './roomEvents';
import { seatNameProblem } from './seatNames';
import { type V2Host, V2Session } from './v2Session';

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
export const MESSAGE_ENVELOPE_BYTES = 2 * 1024;

/** A seat secret: base64url of 16 random bytes. */
function newSeatSecret(): string {
  return randomBytes(16).toString('base64url');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A seat secret as a cluster keeps it: only its digest leaves this server. */
function secretDigest(secret: string): string {
  return digest(secret).toString('base64url');
}

/** Why a message text cannot be sent, or undefined when it can: the same rules for v1 and v2 (and for edits). */
export function messageTextProblem(text: string, maxTextBytes: number): { code: 'too_long' | 'bad_frame'; message: string } | undefined {
  const textBytes = Buffer.byteLength(text, 'utf8');
  if (textBytes > maxTextBytes) return { code: 'too_long', message: `A message may be at most ${maxTextBytes} bytes; this one has ${textBytes}.` };
  // Escaping at most sextuples a byte (a control character becomes \u00XX), so most texts need no check.
  if (textBytes * 6 + MESSAGE_ENVELOPE_BYTES > MAX_SERVER_FRAME_BYTES && Buffer.byteLength(JSON.stringify(text), 'utf8') + MESSAGE_ENVELOPE_BYTES > MAX_SERVER_FRAME_BYTES) {
    return { code: 'too_long', message: `This message would make a frame of more than ${MAX_SERVER_FRAME_BYTES} bytes once its characters are escaped.` };
  }
  if (isBlankText(text)) return { code: 'bad_frame', message: 'A message must not be empty or made only of invisible characters.' };
  return undefined;
}

type NdjsonInput = { kind: 'line'; bytes: Buffer } | { kind: 'overflow'; bytes: number };

/** What is waiting to be written behind a replay: more of the replay, or single frames. */
type Pending = { kind: 'replay'; next: () => EncodedEvent | undefined; render: (event: EncodedEvent) => Buffer | undefined } | { kind: 'frame'; bytes: Buffer };

/**
 * Replays one connection may have waiting: one per room it may be in, and as
 * many again for rooms it asks to see again. A client that keeps asking for
 * replays it does not read is a slow reader.
 */
function maxPendingReplays(host: V2Host): number {
  return 2 * Math.max(1, host.limitsV2.maxRoomsPerConnection);
}

export class NdjsonConnection extends Connection<NdjsonInput> {
  readonly shutdownNotice = GOODBYE;
  private readonly lines: LineSplitter;
  private toldAboutRate = false;
  /** Scopes this client's message ids for de-duplication (its installation id, or a random one). */
  private clientId = '';
  /** The seat secret this connection was given in its welcome; only it lets another connection take the seat over. */
  private seatSecret: string | undefined;
  /** When the server pinged this client for being silent, if it has. */
  private pingedAt: number | undefined;
  /** Set by a v2 hello: the session that handles every later frame. */
  private session: V2Session | undefined;
  /** A v2 hello is being answered: frames behind it wait their turn (they are read as v2). */
  private helloUnderWay = false;
  /**
   * What must be written after a replay still under way: the rest of the
   * replay, live events that arrived meanwhile, and (v2) answers. A returning
   * client may be owed megabytes, so a replay is paced by 'drain' rather
   * than written at once, which would look like a slow reader.
   */
  private pending: Pending[] | undefined;
  /** Bytes of frames waiting behind a replay; past the slow-reader limit the client is cut off. */
  private waitingBytes = 0;
  private pendingReplays = 0;

  constructor(
    socket: Socket,
    protected override readonly host: V2Host,
  ) {
    super(socket, host);
    this.lines = new LineSplitter(host.limits.maxFrameBytes);
  }

  protected override onBytesArrived(): void {
    this.pingedAt = undefined;
  }

  protected onBytes(chunk: Buffer): void {
    this.enqueue(this.lines.push(chunk));
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

  /** A room event for a v1 member: its fair text version, if v1 is shown it at all. */
  deliver(event: EncodedEvent): void {
    const bytes = event.v1Wire();
    if (bytes) this.deliverLive(bytes);
  }

  /** A live frame: written now, or queued behind a replay still under way. */
  deliverLive(bytes: Buffer): void {
    if (!this.pending) {
      this.send(bytes);
      return;
    }
    this.pending.push({ kind: 'frame', bytes });
    this.waitingBytes += bytes.length;
    if (this.waitingBytes > this.host.limits.maxPendingWriteBytes) this.dropAsSlowReader(this.waitingBytes);
  }

  /** Queues replayed events, read from `next` and rendered when their turn comes (`render` may skip one by returning undefined). */
  queueReplay(next: () => EncodedEvent | undefined, render: (event: EncodedEvent) => Buffer | undefined): void {
    const replay: Pending = { kind: 'replay', next, render };
    if (this.pending) {
      this.pending.push(replay);
      if (++this.pendingReplays > maxPendingReplays(this.host)) this.dropAsSlowReader(this.socket.writableLength + this.waitingBytes);
      return;
    }
    this.pending = [replay];
    this.pendingReplays = 1;
    this.waitingBytes = 0;
    this.pumpPending();
  }

  private readonly pumpPending = (): void => {
    const pending = this.pending;
    if (!pending || this.isDisposed || this.socket.destroyed) return;
    while (pending.length > 0) {
      if (this.socket.writableLength >= REPLAY_SLICE_BYTES) {
        this.socket.once('drain', this.pumpPending);
        return;
      }
      const head = pending[0];
      if (head.kind === 'frame') {
        pending.shift();
        this.waitingBytes -= head.bytes.length;
        // Straight to the batcher: this data is paced here, so the slow-reader rule does not apply to it.
        this.host.batcher.write(this.socket, head.bytes);
        continue;
      }
      const event = head.next();
      if (!event) {
        pending.shift();
        this.pendingReplays -= 1;
        continue;
      }
      const bytes = head.render(event);
      if (bytes) this.host.batcher.write(this.socket, bytes);
    }
    this.pending = undefined;
    this.pendingReplays = 0;
  };

  private reply(frame: ServerFrame): void {
    this.send(encodeFrame(frame));
  }

  private error(code: ErrorCode, message: string, id?: string): void {
    this.reply(id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id });
  }

  /**
   * Sends the error and, for the codes that end a session (v1's or v2's,
   * whichever this connection speaks, unless `close` says otherwise), closes
   * the connection.
   */
  fail(code: ErrorCode | ErrorCodeV2, message: string, id?: string, close?: boolean): void {
    const fatal = close ?? (this.speaksV2 ? FATAL_ERRORS_V2.has(code) : FATAL_ERRORS.has(code as ErrorCode));
    const frame = encodeFrame(id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id });
    if (fatal) this.endWith(frame, 'lost');
    else if (this.speaksV2) this.out(frame);
    else this.send(frame);
  }

  private get speaksV2(): boolean {
    return this.session !== undefined || this.helloUnderWay;
  }

  protected override onRateLimited(): void {
    // Said once per connection: the client learns why its messages are slow, and nothing is dropped.
    if (this.toldAboutRate) return;
    this.toldAboutRate = true;
    const { rateBurst, ratePerSecond } = this.host.limits;
    this.error('rate_limited', `Slow down: after ${rateBurst} frames at once the server reads ${ratePerSecond} a second. Nothing is dropped.`);
  }

  protected async handleInput(input: NdjsonInput): Promise<void> {
    if (input.kind === 'overflow') {
      // An overlong frame leaves the stream with no known next frame boundary, so it ends the session.
      const message = `A frame may be at most ${this.host.limits.maxFrameBytes} bytes; ${input.bytes} arrived without a newline.`;
      this.endWith(encodeFrame({ type: 'error', code: 'too_long', message }), 'lost');
      return;
    }
    if (input.bytes.length === 0) return;
    if (this.session) return this.session.handleLine(input.bytes);
    const parsed = parseFlatJsonObject(input.bytes);
    if (!parsed.ok) return this.reportProblem(parsed.problem);
    const type = parsed.frame.type;
    if (type === 'hello' && parsed.frame.protocol === PROTOCOL_V2 && !this.isJoined && !this.helloUnderWay) return this.helloV2(parsed.frame);
    if (isV2OnlyFrameType(type)) {
      const id = typeof parsed.frame.id === 'string' ? parsed.frame.id : undefined;
      if (this.isJoined) return this.fail('unsupported', `"${String(type)}" is a protocol 2 frame; this connection said hello with protocol 1.`, id);
      return this.fail('not_joined', 'Say hello before anything else.', id);
    }
    const validated = validateClientFrame(parsed.frame);
    if (!validated.ok) return this.reportProblem(validated.problem);
    const frame: ClientFrame = validated.frame;
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
        await this.leaveRooms('quit');
        this.endWith(undefined, 'quit');
        return;
    }
  }

  private reportProblem(problem: FrameProblem): void {
    this.fail(problem.code, problem.message, problem.id);
  }

  private async hello(hello: HelloFrame): Promise<void> {
    if (this.isJoined || this.helloUnderWay) return this.fail('already_joined', 'This connection has already said hello.');
    if (hello.protocol !== undefined && hello.protocol !== PROTOCOL_VERSION) {
      return this.fail('unsupported', `This server speaks protocol ${SUPPORTED_PROTOCOLS.join(' and ')}, not ${hello.protocol}.`);
    }
    const verdict = this.host.accessGate.check(hello.token, this.socket.remoteAddress);
    if (verdict === 'locked_out') return this.fail('locked_out', 'Too many failed attempts from this address; try again in a minute.');
    if (verdict === 'unauthorized') {
      return this.fail('unauthorized', hello.token === undefined ? 'This server needs a token.' : 'The token is wrong.');
    }
    const badName = nameProblem(hello.name) ?? seatNameProblem(hello.name);
    if (badName) return this.fail('bad_name', badName);
    const roomName = (hello.room ?? DEFAULT_ROOM).normalize('NFC');
    // By the room's key, as the room is found: `ＤＭ:` folds to `dm:` as well.
    const badRoom = roomProblem(roomName) ?? (roomKey(roomName).startsWith(DM_PREFIX) ? `Room names starting with "${DM_PREFIX}" are direct-message conversations, which protocol 1 cannot join.` : undefined);
    if (badRoom) return this.fail('bad_room', badRoom);
    if (hello.clientId !== undefined && (hello.clientId.length === 0 || hello.clientId.length > CLIENT_ID_MAX_CHARS)) {
      return this.fail('bad_frame', `The clientId must be 1 to ${CLIENT_ID_MAX_CHARS} characters.`);
    }
    if (hello.resume !== undefined && (hello.resume.length === 0 || hello.resume.length > RESUME_MAX_CHARS)) {
      return this.fail('bad_frame', `The resume secret must be 1 to ${RESUME_MAX_CHARS} characters.`);
    }
    if (hello.lastSeq !== undefined && hello.lastSeq < 0) return this.fail('bad_frame', 'lastSeq must not be negative.');
    if (this.host.directory.isHeld(hello.name)) {
      // Closed like any taken name: a v1 hello cannot carry the key that proves the name is yours.
      return this.fail('name_taken', `The name "${hello.name}" is reserved by its owner (who keeps it with a key); choose another.`);
    }

    // In a cluster the seat may be held on a server that died: its secret, kept in the cluster's store, lets the client take it over here.
    const resumableElsewhere = hello.resume !== undefined && this.host.seatSecretMatches !== undefined && (await this.host.seatSecretMatches(roomKey(roomName), guestSeatId(hello.name), secretDigest(hello.resume)));
    const entry = await this.host.enterRoom(roomName, this.socket.remoteAddress, (room) => this.takeSeat(room, hello, resumableElsewhere));
    if (!entry.ok) this.fail(entry.code, entry.message);
  }

  /** A hello with protocol 2: checked by the v2 table and answered by a new session, which handles every later frame. */
  private async helloV2(raw: Record<string, unknown>): Promise<void> {
    this.helloUnderWay = true;
    try {
      const session = await V2Session.open(this, this.host, raw);
      if (!session) return;
      this.session = session;
      this.joined();
    } finally {
      this.helloUnderWay = false;
    }
  }

  /** Joins `room`, or takes over the seat whose secret the hello gave back; runs in the turn the room was found loaded. */
  private takeSeat(room: Room, hello: HelloFrame, resumableElsewhere: boolean): void {
    if (this.isDisposed || this.isJoined || this.isStopping) return;
    const holder = room.memberNamed(hello.name);
    const resuming = holder instanceof NdjsonConnection && hello.resume !== undefined && holder.holdsSeatSecret(hello.resume);
    const resumingElsewhere = holder instanceof RemoteMember && holder.seat === guestSeatId(hello.name) && resumableElsewhere;
    if (holder && !resuming && !resumingElsewhere) {
      // Closed, so a connection cannot go on trying names (or secrets) on one socket.
      return this.fail('name_taken', `Someone in ${room.name} is already called "${holder.name}".`);
    }
    const secret = newSeatSecret();
    this.name = hello.name;
    this.clientId = hello.clientId ?? randomUUID();
    this.seatSecret = secret;
    this.joined(room);
    // In a cluster, a position in another epoch of the room's history (or past its end) means nothing here: the room is shown afresh.
    const stale = room.epoch !== undefined && hello.lastSeq !== undefined && ((hello.epoch !== undefined && hello.epoch !== room.epoch) || hello.lastSeq > room.latestSeq);
    this.welcome(room, resuming || resumingElsewhere ? 0 : 1, stale);
    this.queueReplay(room.replayCursor(stale ? undefined : hello.lastSeq, this.host.limits.replayEvents), (event) => room.v1Rendering(event));
    if (resuming) {
      // The same client came back before its old connection was noticed dead: a resume, not a new arrival.
      room.replaceMember(holder, this);
      holder.markReplaced();
      this.host.logger.info(`${this.peer} resumed as ${this.name} in ${room.name}.`);
    } else {
      room.join(this, room.epoch === undefined ? undefined : secretDigest(secret)).catch(() => {
        // A cluster whose store is out of reach: the client is told, and comes back later.
        this.room = undefined;
        this.endWith(encodeFrame({ type: 'error', code: 'storage_failed', message: storageFailure('that you joined') }), 'lost');
      });
      // Logged where it failed; the member is in the room either way, and the next one to enter tries again.
      this.host.claimRoom(room, undefined)?.catch(() => undefined);
      this.host.logger.info(`${this.peer} ${resumingElsewhere ? 'resumed (from another server)' : 'joined'} ${room.name} as ${this.name}.`);
    }
  }

  /**
   * The welcome: who is here (a bounded list, you first, so a crowded room's
   * still fits a frame), where the room stands, and this seat's secret. With
   * `reset`, the client drops its view of the room first (cluster mode).
   */
  private welcome(room: Room, newcomers: number, reset: boolean): void {
    const members = room.memberNames(WELCOME_MAX_MEMBERS, this.name);
    const welcome: ServerFrame = { type: 'welcome', you: this.name, room: room.name, members, memberCount: room.memberCount + newcomers, resume: this.seatSecret, seq: room.latestSeq, firstSeq: room.firstSeq, protocol: PROTOCOL_VERSION };
    if (room.epoch !== undefined) welcome.epoch = room.epoch;
    if (reset) welcome.reset = true;
    this.reply(welcome);
  }

  /** The room's history was replaced under this member (cluster mode): a fresh welcome with `reset`, then the newest events. */
  override reset(room: Room): void {
    if (this.room !== room || this.session) return;
    this.welcome(room, 0, true);
    this.queueReplay(room.replayCursor(undefined, this.host.limits.replayEvents), (event) => room.v1Rendering(event));
  }

  /** Compares a presented seat secret with this connection's, in constant time (over digests, so lengths may differ). */
  private holdsSeatSecret(presented: string): boolean {
    return this.seatSecret !== undefined && timingSafeEqual(digest(presented), digest(this.seatSecret));
  }

  private say(say: SayFrame): void {
    const room = this.room;
    if (!room) return this.fail('not_joined', 'Say hello before sending messages.', say.id);
    if (say.id.length === 0 || say.id.length > ID_MAX_CHARS) return this.fail('bad_frame', `A message id must be 1 to ${ID_MAX_CHARS} characters.`, say.id);
    const problem = messageTextProblem(say.text, this.host.limits.maxTextBytes);
    if (problem) return problem.code === 'too_long' ? this.error('too_long', problem.message, say.id) : this.fail(problem.code, problem.message, say.id);
    // Not awaited: the next frame need not wait for this one's fsync. Acks still go out in order.
    this.owe(
      room.say(this, say.text, { clientId: this.clientId, id: say.id }).then((result) => {
        if (result.ok) this.reply({ type: 'ack', id: say.id, seq: result.seq });
        else this.error('storage_failed', storageFailure('the message'), say.id);
      }),
    );
  }

  /** A v1 member that was kicked hears its own departure (`left` with reason `kicked`), then the connection closes. */
  protected removalNotice(departure: Departure): Buffer | undefined {
    return departure.event?.v1Wire();
  }

  // ------------------------------------------------------------ what the v2 session uses

  /** Writes a frame behind whatever is still queued, so a v2 connection gets answers and events in the order they were made. */
  out(bytes: Buffer): void {
    this.deliverLive(bytes);
  }

  /** Ends the connection with a last frame, leaving its rooms first (their departures announced with `reason`). */
  async closeWith(bytes: Buffer | undefined, reason: 'quit' | 'lost'): Promise<void> {
    this.ignoreFurtherInput();
    await this.settleOwed();
    await this.leaveRooms(reason);
    this.endWith(bytes, reason);
  }

  get address(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** Whether input has stopped being taken (a join still loading its room must then not seat the session). */
  get stopping(): boolean {
    return this.isStopping || this.isDisposed;
  }

  /** Runs work the peer is owed an answer for, without holding up the next frame. */
  oweAnswer(work: Promise<unknown>): void {
    this.owe(work);
  }

  /** Frames after a `bye` are not acted on; what came before is answered first. */
  async byeV2(): Promise<void> {
    this.ignoreFurtherInput();
    await this.settleOwed();
    await this.leaveRooms('quit');
    this.endWith(undefined, 'quit');
  }

  override leaveRooms(reason: Parameters<Connection['leaveRooms']>[0]): Promise<unknown> {
    if (this.session) return this.session.leaveAll(reason);
    return super.leaveRooms(reason);
  }

  override detachFromRooms(): void {
    if (this.session) this.session.detachAll();
    else super.detachFromRooms();
  }

  override dispose(): void {
    if (this.isDisposed) return;
    super.dispose();
    this.session?.ended();
  }
}
