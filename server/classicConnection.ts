/**
 * The seed report's plain-text protocol, so its tkinter client and a terminal
 * user with `nc` can join the lobby: the first line is the name, every other
 * line a message, and `{quit}` leaves.
 *
 * The seed client sends each message as one bare send() with no newline, so a
 * chunk without a newline counts as a whole message once the client pauses.
 *
 * What reaches a terminal is made harmless here: other members' text arrives
 * with every control character shown as a visible stand-in, so no message can
 * move the cursor, clear the screen or ring the bell.
 */
import type { Socket } from 'node:net';
import { toDisposable } from '../shared/disposable';
import { decodeUtf8, LineSplitter } from '../shared/framing';
import { isBlankText, nameProblem } from '../shared/names';
import { DEFAULT_ROOM, type RoomEvent } from '../shared/protocol';
import { Connection, type ConnectionHost } from './connection';
import type { EncodedEvent, Room } from './room';
import type { Departure } from './roomEvents';
import { seatNameProblem } from './seatNames';

export const CLASSIC_GREETING = 'Greetings from the cave! Now type your name and press enter!';
export const CLASSIC_QUIT = '{quit}';

function line(text: string): Buffer {
  return Buffer.from(text + '\n', 'utf8');
}

/** Line breaks inside a message: the whole message stays on one line, with a visible mark. */
const LINE_BREAK = /\r\n|[\n\u2028\u2029]/g;
/**
 * Every C0 control, DEL and C1 control (\p{Cc} is exactly those), and every
 * bidi formatting character (marks, embeddings, overrides, isolates), which
 * would reorder what a bidi-aware terminal shows.
 */
const CONTROL = /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

/**
 * Shows a control character as what it is: C0 controls and DEL as their
 * Unicode control pictures (ESC as ␛, BEL as ␇, CR as ␍), C1 controls, which
 * have no pictures, as `\x9b`-style escapes, and bidi controls as `<U+202E>`.
 */
function visibleControl(control: string): string {
  const code = control.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return '\u2421';
  if (code <= 0x9f) return `\\x${code.toString(16)}`;
  return `<U+${code.toString(16).toUpperCase().padStart(4, '0')}>`;
}

/** The seed protocol's plain-text line for an event. */
export function classicLine(event: RoomEvent): string {
  switch (event.type) {
    case 'message':
      // Classic clients show one line per message, so line breaks become a visible mark.
      return `${event.from}: ${event.text.replace(LINE_BREAK, ' ↵ ').replace(CONTROL, visibleControl)}`;
    case 'joined':
      return `${event.name} has joined the chat!`;
    case 'left':
      return `${event.name} has left the chat.`;
  }
}

/** Each event's classic line, made once on first use and shared by every classic member. */
const classicBytes = new WeakMap<EncodedEvent, Buffer>();

/** A classic member sees the fair text version v1 members get (see roomEvents.ts), as one line; undefined when they see nothing. */
function classicBytesOf(event: EncodedEvent): Buffer | undefined {
  let bytes = classicBytes.get(event);
  if (!bytes) {
    const v1 = event.v1Wire();
    if (!v1) return undefined;
    // A plain message or a presence event is its own fair text; anything else was rendered for v1 and is read back.
    const fair = v1 === event.wire ? (event.event as RoomEvent) : (JSON.parse(v1.toString('utf8')) as RoomEvent);
    bytes = line(classicLine(fair));
    classicBytes.set(event, bytes);
  }
  return bytes;
}

type ClassicInput = { kind: 'line'; bytes: Buffer } | { kind: 'overflow' };

export class ClassicConnection extends Connection<ClassicInput> {
  /** The seed protocol has no goodbye; the departures it hears say enough. */
  readonly shutdownNotice = undefined;
  private readonly lines: LineSplitter;
  private pauseTimer: NodeJS.Timeout | undefined;

  constructor(
    socket: Socket,
    host: ConnectionHost,
    private readonly pauseMs: number,
  ) {
    super(socket, host);
    this.lines = new LineSplitter(host.limits.maxFrameBytes);
    this.register(toDisposable(() => clearTimeout(this.pauseTimer)));
    this.send(line(CLASSIC_GREETING));
  }

  protected override onBytesArrived(): void {
    // More is coming: an unterminated line may go on.
    clearTimeout(this.pauseTimer);
  }

  protected onBytes(chunk: Buffer): void {
    clearTimeout(this.pauseTimer);
    const inputs: ClassicInput[] = this.lines.push(chunk).map((result) => (result.kind === 'line' ? { kind: 'line', bytes: result.bytes } : { kind: 'overflow' }));
    this.enqueue(inputs);
    if (this.lines.bufferedBytes > 0) {
      this.pauseTimer = setTimeout(() => this.takeUnterminatedRest(), this.pauseMs);
    }
  }

  /** At the end of the input, whatever rests without a newline is the last message. */
  protected override onInputEnded(): void {
    clearTimeout(this.pauseTimer);
    this.takeUnterminatedRest();
  }

  private takeUnterminatedRest(): void {
    // Bytes still waiting to be decoded may finish the line; the pause is judged once they are.
    if (this.hasUndecodedInput) {
      this.pauseTimer = setTimeout(() => this.takeUnterminatedRest(), this.pauseMs);
      return;
    }
    const rest = this.lines.takeRest();
    if (rest) this.enqueue([{ kind: 'line', bytes: rest }]);
  }

  protected removalNotice(departure: Departure): Buffer {
    return line(`You have been removed from the room${departure.by === undefined ? '' : ` by ${departure.by}`}.`);
  }

  protected onJoinTimeout(): void {
    this.endWith(line(`No name within ${Math.round(this.host.limits.helloTimeoutMs / 1000)} s; goodbye.`), 'lost');
  }

  checkIdle(now: number): void {
    // The seed protocol has no ping, so a member silent for this long is taken to be gone.
    const { classicIdleMs } = this.host.limits;
    if (this.isJoined && now - this.lastHeardAt >= classicIdleMs) {
      this.endWith(line(`You have been silent for ${Math.round(classicIdleMs / 1000)} s; goodbye.`), 'lost');
    }
  }

  deliver(event: EncodedEvent): void {
    // The seed tells the newcomer "Welcome", and only everyone else "has joined".
    if (event.event.type === 'joined' && event.event.name === this.name) return;
    const bytes = classicBytesOf(event);
    if (bytes) this.send(bytes);
  }

  protected async handleInput(input: ClassicInput): Promise<void> {
    if (input.kind === 'overflow') {
      this.endWith(line(`Your line is longer than ${this.host.limits.maxFrameBytes} bytes; goodbye.`), 'lost');
      return;
    }
    const text = decodeUtf8(input.bytes);
    if (text === undefined) {
      this.send(line('That was not valid UTF-8 text; it was not sent.'));
      return;
    }
    if (text.trim().length === 0) return;
    if (!this.isJoined) return this.takeName(text);
    if (text === CLASSIC_QUIT) {
      this.send(line(CLASSIC_QUIT));
      this.ignoreFurtherInput();
      await this.leaveRooms('quit');
      this.endWith(undefined, 'quit');
      return;
    }
    const textBytes = Buffer.byteLength(text, 'utf8');
    if (textBytes > this.host.limits.maxTextBytes) {
      this.send(line(`Your message has ${textBytes} bytes; the limit is ${this.host.limits.maxTextBytes}. It was not sent.`));
      return;
    }
    if (isBlankText(text)) {
      this.send(line('That message shows nothing (only invisible characters); it was not sent.'));
      return;
    }
    const result = await this.room!.say(this, text);
    if (!result.ok) this.send(line('The server could not store your message; it was not sent.'));
  }

  private async takeName(name: string): Promise<void> {
    const problem = nameProblem(name) ?? seatNameProblem(name);
    if (problem) {
      this.send(line(`${problem} Type another name and press enter!`));
      return;
    }
    if (this.host.directory.isHeld(name)) {
      // The name (or one that looks like it) is someone's who keeps it with a key; classic cannot carry one.
      this.send(line(`The name ${name} is reserved by its owner. Type another name and press enter!`));
      return;
    }
    const entry = await this.host.enterRoom(DEFAULT_ROOM, this.socket.remoteAddress, (room) => this.takeSeat(room, name));
    if (!entry.ok) this.endWith(line(`${entry.message} Goodbye.`), 'lost');
  }

  /** Joins the lobby under `name` unless someone holds that seat; runs in the turn the room was found loaded. */
  private takeSeat(room: Room, name: string): void {
    if (this.isDisposed || this.isStopping || this.isJoined) return;
    const holder = room.memberNamed(name);
    if (holder) {
      this.send(line(`Someone is already called ${name}. Type another name and press enter!`));
      return;
    }
    this.name = name;
    this.joined(room);
    this.send(line(`Welcome ${name}! If you ever want to quit, type ${CLASSIC_QUIT} to exit.`));
    room.join(this).catch(() => {
      // A cluster whose store is out of reach.
      this.room = undefined;
      this.endWith(line('The server cannot reach its store just now; try again in a moment. Goodbye.'), 'lost');
    });
    // Logged where it failed; the member is in the room either way.
    this.host.claimRoom(room, undefined)?.catch(() => undefined);
    this.host.logger.info(`${this.peer} joined ${room.name} as ${name} (classic).`);
  }
}
