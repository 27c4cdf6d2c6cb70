/**
 * The seed report's plain-text protocol, so its tkinter client and a terminal
 * user with `nc` can join the lobby: the first line is the name, every other
 * line a message, and `{quit}` leaves.
 *
 * The seed client sends each message as one bare send() with no newline, so a
 * chunk without a newline counts as a whole message once the client pauses.
 */
import type { Socket } from 'node:net';
import { toDisposable } from '../shared/disposable';
import { decodeUtf8, LineSplitter } from '../shared/framing';
import { nameProblem } from '../shared/names';
import { DEFAULT_ROOM } from '../shared/protocol';
import { Connection, type ConnectionHost } from './connection';
import type { EncodedEvent } from './room';

export const CLASSIC_GREETING = 'Greetings from the cave! Now type your name and press enter!';
export const CLASSIC_QUIT = '{quit}';

function line(text: string): Buffer {
  return Buffer.from(text + '\n', 'utf8');
}

type ClassicInput = { kind: 'line'; bytes: Buffer } | { kind: 'overflow' };

export class ClassicConnection extends Connection<ClassicInput> {
  readonly answersPings = false;
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

  protected onBytes(chunk: Buffer): void {
    clearTimeout(this.pauseTimer);
    const inputs: ClassicInput[] = this.lines.push(chunk).map((result) => (result.kind === 'line' ? { kind: 'line', bytes: result.bytes } : { kind: 'overflow' }));
    this.enqueue(inputs);
    if (this.lines.bufferedBytes > 0) {
      this.pauseTimer = setTimeout(() => {
        const rest = this.lines.takeRest();
        if (rest) this.enqueue([{ kind: 'line', bytes: rest }]);
      }, this.pauseMs);
    }
  }

  deliver(event: EncodedEvent): void {
    // The seed tells the newcomer "Welcome", and only everyone else "has joined".
    if (event.event.type === 'joined' && event.event.name === this.name) return;
    this.send(event.classic);
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
      await this.leaveRoom('quit');
      this.endWith(undefined, 'quit');
      return;
    }
    const textBytes = Buffer.byteLength(text, 'utf8');
    if (textBytes > this.host.limits.maxTextBytes) {
      this.send(line(`Your message has ${textBytes} bytes; the limit is ${this.host.limits.maxTextBytes}. It was not sent.`));
      return;
    }
    const result = await this.room!.say(this, this.clientId as string, undefined, text);
    if (!result.ok) this.send(line('The server could not store your message; it was not sent.'));
  }

  private async takeName(name: string): Promise<void> {
    const problem = nameProblem(name);
    if (problem) {
      this.send(line(`${problem} Type another name and press enter!`));
      return;
    }
    const room = await this.host.openRoom(DEFAULT_ROOM);
    if (this.isDisposed || this.isStopping) return;
    if (room.memberNamed(name)) {
      this.send(line(`Someone is already called ${name}. Type another name and press enter!`));
      return;
    }
    this.name = name;
    this.clientId = `classic:${this.peer}`;
    this.room = room;
    this.send(line(`Welcome ${name}! If you ever want to quit, type ${CLASSIC_QUIT} to exit.`));
    room.join(this);
    this.host.logger.info(`${this.peer} joined ${room.name} as ${name} (classic).`);
  }
}
