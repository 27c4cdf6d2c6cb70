/**
 * A client that behaves like the extension's across crashes and drops, for the
 * fault and soak suites: the same clientId every time, an outbox of unacked
 * messages resent with the same ids after each welcome, a resume with the last
 * seen seq, and a record of everything it saw so tests can compare it with the
 * stored history.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { encodeFrame, LineSplitter, parseServerFrame } from '../../shared/framing';
import type { ClientFrame, RoomEvent, ServerFrame } from '../../shared/protocol';
import { ServerProcess, type ServerProcessOptions } from './serverProcess';

export interface SentMessage {
  id: string;
  text: string;
  /** The seq of its ack, once acked. */
  ackedSeq?: number;
}

export interface ResumingClientOptions {
  /** Read on every (re)connect, so the target may move (a proxy, a restarted server). */
  port: () => number;
  name: string;
  room: string;
  clientId: string;
  /** Reconnect delay after a drop; a little jitter is added. */
  reconnectDelayMs?: number;
  /** Resend a message refused with storage_failed after this long (the extension waits 2 s). */
  retryFailedSayMs?: number;
}

export class ResumingClient {
  /** Every message this client meant to send, in the order it meant to. */
  readonly sent: SentMessage[] = [];
  /** Messages not yet acked, oldest first; resent after every welcome. */
  readonly outbox: SentMessage[] = [];
  /** Room events as shown to the person: each seq once, in order. */
  readonly transcript: RoomEvent[] = [];
  /** Events the server sent at or below a seq already seen (the client drops them; a resume should cause none). */
  repeatedEvents = 0;
  /** Times an event's seq skipped ahead of the one before it while connected. */
  gaps = 0;
  welcomes = 0;
  acksForUnknownIds = 0;
  /** Acks whose seq differs from an earlier ack of the same id. */
  conflictingAcks = 0;
  readonly errors: Extract<ServerFrame, { type: 'error' }>[] = [];
  lastSeq = 0;
  private socket: Socket | undefined;
  private welcomed = false;
  private stopped = false;
  private counter = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly byId = new Map<string, SentMessage>();
  private changeWaiters: (() => void)[] = [];

  constructor(private readonly options: ResumingClientOptions) {}

  get name(): string {
    return this.options.name;
  }

  get isWelcomed(): boolean {
    return this.welcomed;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Queues a message (sent now if connected, else after the next welcome). */
  say(text?: string): string {
    const id = `${this.options.name}-${++this.counter}`;
    const message: SentMessage = { id, text: text ?? `message ${this.counter} from ${this.options.name}` };
    this.sent.push(message);
    this.outbox.push(message);
    this.byId.set(id, message);
    if (this.welcomed) this.write({ type: 'say', id, text: message.text });
    return id;
  }

  /** Cuts this client's own connection without a bye (the server should announce it as lost). */
  dropConnection(): void {
    this.socket?.destroy();
  }

  /** Stops for good: no reconnects; with `bye`, leaves on purpose. */
  stop(bye = false): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    for (const timer of this.retryTimers) clearTimeout(timer);
    const socket = this.socket;
    this.socket = undefined;
    this.welcomed = false;
    if (!socket) return;
    if (bye && !socket.destroyed) {
      socket.end(encodeFrame({ type: 'bye' }));
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
  }

  /** Resolves once `condition` holds, checked whenever anything arrives; rejects after `timeoutMs`. */
  async waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.options.name}: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.changeWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private changed(): void {
    for (const waiter of this.changeWaiters.splice(0)) waiter();
  }

  private open(): void {
    if (this.stopped) return;
    const socket = connect({ host: '127.0.0.1', port: this.options.port() });
    this.socket = socket;
    socket.setNoDelay(true);
    const lines = new LineSplitter(1 << 24);
    socket.on('connect', () => {
      const hello: ClientFrame = { type: 'hello', name: this.options.name, room: this.options.room, clientId: this.options.clientId };
      // Like the extension: ask only for what came after the last event seen.
      if (this.lastSeq > 0) hello.lastSeq = this.lastSeq;
      socket.write(encodeFrame(hello));
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      for (const line of lines.push(chunk)) {
        if (line.kind !== 'line' || line.bytes.length === 0) continue;
        const parsed = parseServerFrame(line.bytes);
        if (parsed.ok) this.handle(parsed.frame);
      }
      this.changed();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.welcomed = false;
      this.changed();
      if (this.stopped) return;
      const delay = (this.options.reconnectDelayMs ?? 50) * (0.5 + Math.random());
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    });
  }

  private handle(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.welcomed = true;
        this.welcomes += 1;
        for (const message of this.outbox) this.write({ type: 'say', id: message.id, text: message.text });
        return;
      case 'message':
      case 'joined':
      case 'left':
        if (frame.seq <= this.lastSeq) {
          this.repeatedEvents += 1;
          return;
        }
        if (this.transcript.length > 0 && frame.seq !== this.lastSeq + 1) this.gaps += 1;
        this.lastSeq = frame.seq;
        this.transcript.push(frame);
        return;
      case 'ack': {
        const message = this.byId.get(frame.id);
        if (!message) {
          this.acksForUnknownIds += 1;
          return;
        }
        if (message.ackedSeq !== undefined && message.ackedSeq !== frame.seq) this.conflictingAcks += 1;
        message.ackedSeq ??= frame.seq;
        const index = this.outbox.indexOf(message);
        if (index !== -1) this.outbox.splice(index, 1);
        return;
      }
      case 'ping':
        this.write({ type: 'pong' });
        return;
      case 'pong':
        return;
      case 'error': {
        this.errors.push(frame);
        const failed = frame.id === undefined ? undefined : this.byId.get(frame.id);
        if (failed && frame.code === 'storage_failed') {
          // Storage trouble passes: the same id is tried again later, as the extension does.
          const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            if (this.welcomed && this.outbox.includes(failed)) this.write({ type: 'say', id: failed.id, text: failed.text });
          }, this.options.retryFailedSayMs ?? 2000);
          this.retryTimers.add(timer);
        }
        return;
      }
    }
  }

  private write(frame: ClientFrame): void {
    const socket = this.socket;
    if (socket && !socket.destroyed && socket.writable) socket.write(encodeFrame(frame));
  }
}

/**
 * Starts the built server on a given port (for restarts at the same address).
 * The shared helper always asks for port 0, and a later `--port` wins, so the
 * fixed port goes in the extra flags; a port still held for a moment is retried.
 */
export async function startServerOnPort(port: number, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await ServerProcess.start({ ...options, args: [...(options.args ?? []), '--port', String(port)] });
    } catch (error) {
      if (attempt >= 50 || !/exited with 3\b/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A free loopback port, found by binding port 0 and letting it go. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The stored history read straight from a room's log file (every record, oldest first). */
export function readRoomLog(path: string): (RoomEvent & { clientId?: string })[] {
  const text = readFileSync(path, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as RoomEvent & { clientId?: string });
}
