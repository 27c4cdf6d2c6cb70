/**
 * A raw TCP client speaking protocol v2, for socket and fault tests: it says
 * hello with protocol 2, sends frames, and waits (with a time limit) for
 * frames or for the answer to a request (matched by its id).
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame, LineSplitter, parseServerFrameV2 } from '../../shared/framing';
import type { ClientFrameV2, ErrorV2Frame, ServerFrameV2, WelcomeV2Frame } from '../../shared/protocolV2';

export type AnyFrame = ServerFrameV2 & Record<string, unknown>;

/** The frames that answer a client frame by its id. */
const ANSWERS = new Set(['ack', 'error', 'roomList', 'conversationList', 'memberList', 'historyPage', 'searchResults', 'dmOpened']);

export interface HelloOptions {
  clientId?: string;
  key?: string;
  token?: string;
}

export class V2Client {
  readonly frames: AnyFrame[] = [];
  private readonly splitter = new LineSplitter(1 << 24);
  private cursor = 0;
  private waiters: (() => void)[] = [];
  closed = false;
  private closeWaiters: (() => void)[] = [];
  private counter = 0;
  welcome: WelcomeV2Frame | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.splitter.push(chunk)) {
        if (line.kind !== 'line') continue;
        const parsed = parseServerFrameV2(line.bytes);
        if (parsed.ok) this.frames.push(parsed.frame as AnyFrame);
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      for (const waiter of this.closeWaiters.splice(0)) waiter();
    });
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<V2Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`could not connect to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new V2Client(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** Connects and says hello with protocol 2; resolves once welcomed (rejects with the error frame otherwise). */
  static async hello(port: number, name: string, options: HelloOptions = {}): Promise<V2Client> {
    const client = await V2Client.connect(port);
    client.sendHello(name, options);
    const reply = await client.next((frame) => frame.type === 'welcome' || frame.type === 'error');
    if (reply.type === 'error') {
      client.close();
      throw Object.assign(new Error(`hello as ${name} refused: ${reply.code}: ${reply.message}`), { frame: reply });
    }
    client.welcome = reply as unknown as WelcomeV2Frame;
    return client;
  }

  sendHello(name: string, options: HelloOptions = {}): void {
    const hello: Record<string, unknown> = { type: 'hello', protocol: 2, name, clientId: options.clientId ?? `client-${name}` };
    if (options.key !== undefined) hello.key = options.key;
    if (options.token !== undefined) hello.token = options.token;
    this.write(JSON.stringify(hello) + '\n');
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  send(frame: ClientFrameV2 | Record<string, unknown>): void {
    this.socket.write(encodeFrame(frame as ClientFrameV2));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /**
   * A fresh frame id, unique to this connection: ids are de-duplicated per
   * clientId, and a test's next connection with the same clientId must not
   * send an earlier connection's ids by accident (tests that mean to pass
   * theirs).
   */
  nextId(prefix = 'f'): string {
    this.counter += 1;
    return `${prefix}${this.counter}.${this.tag}`;
  }
  private readonly tag = Math.random().toString(36).slice(2, 8);

  /** Waits for the next frame (after those already taken by `next`) that matches. */
  async next(matches: (frame: AnyFrame) => boolean = () => true, timeoutMs = 5000): Promise<AnyFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const frame = this.frames[this.cursor++];
        if (matches(frame)) return frame;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        const recent = this.frames.slice(-6).map((frame) => JSON.stringify(frame).slice(0, 240));
        throw new Error(`${this.closed ? 'connection closed' : 'timed out'} waiting for a frame; the last ones:\n${recent.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for a frame that matches among every frame received, taken or not. */
  async seen(matches: (frame: AnyFrame) => boolean, timeoutMs = 5000): Promise<AnyFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(matches);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`${this.closed ? 'connection closed' : 'timed out'} waiting for a frame that was never seen`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Sends a frame with an id and resolves with its answer: the first ack,
   * error or answer frame with that id (a message event carries its sender's
   * id too, which may be anyone's).
   */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<AnyFrame> {
    const id = (frame.id as string | undefined) ?? this.nextId();
    this.send({ ...frame, id });
    return this.seen((reply) => reply.id === id && ANSWERS.has(reply.type), timeoutMs);
  }

  /** Sends a frame and resolves with its ack, failing on an error. */
  async ok(frame: Record<string, unknown>, timeoutMs = 5000): Promise<AnyFrame> {
    const reply = await this.request(frame, timeoutMs);
    if (reply.type === 'error') throw new Error(`${String(frame.type)} refused: ${(reply as unknown as ErrorV2Frame).code}: ${(reply as unknown as ErrorV2Frame).message}`);
    return reply;
  }

  /** Sends a frame and resolves with the error code it was refused with, failing when it was not. */
  async refused(frame: Record<string, unknown>, timeoutMs = 5000): Promise<string> {
    const reply = await this.request(frame, timeoutMs);
    if (reply.type !== 'error') throw new Error(`${String(frame.type)} was not refused: ${JSON.stringify(reply)}`);
    return (reply as unknown as ErrorV2Frame).code;
  }

  /** Joins a room; resolves with the roomState once the join is acked. */
  async join(room: string, lastSeq?: number): Promise<AnyFrame> {
    const id = this.nextId('join');
    this.send(lastSeq === undefined ? { type: 'join', id, room } : { type: 'join', id, room, lastSeq });
    const answer = await this.seen((frame) => frame.id === id && (frame.type === 'roomState' || frame.type === 'error'));
    if (answer.type === 'error') throw new Error(`join ${room} refused: ${String(answer.code)}: ${String(answer.message)}`);
    await this.seen((frame) => frame.id === id && frame.type === 'ack');
    return answer;
  }

  /** Says something and resolves with the ack's seq. */
  async say(room: string, text: string, extra: Record<string, unknown> = {}): Promise<number> {
    const ack = await this.ok({ type: 'say', id: this.nextId('say'), room, text, ...extra });
    return ack.seq as number;
  }

  /** Every frame of a type received so far. */
  all(type: string): AnyFrame[] {
    return this.frames.filter((frame) => frame.type === type);
  }

  waitForClose(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
