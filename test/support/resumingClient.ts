/**
 * The extension's own ChatClient, driven from plain Node for the fault and soak
 * suites, so they prove what the extension does: the same clientId throughout,
 * an outbox of unacked messages resent with the same ids after each welcome, a
 * resume with the last seen seq, and backoff between attempts. This wrapper
 * only watches: it records what was sent, acked and shown, so tests can compare
 * it with the stored history and count what the server should never send.
 */
import { readFileSync } from 'node:fs';
import { ChatClient } from '../../extension/client/chatClient';
import type { ErrorFrame, RoomEvent, ServerFrame } from '../../shared/protocol';
import { memoryOutboxes } from './memoryStore';
import { ServerProcess, type ServerProcessOptions } from './serverProcess';

export interface SentMessage {
  id: string;
  text: string;
  /** The seq of its ack, once acked. */
  ackedSeq?: number;
}

export interface ResumingClientOptions {
  /** The server's port, or a proxy's in front of it. */
  port: number;
  name: string;
  room: string;
  clientId: string;
  /** First reconnect delay (doubling, with jitter); the extension's defaults when left out. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class ResumingClient {
  readonly chat: ChatClient;
  /** Every message this client meant to send, in the order it meant to. */
  readonly sent: SentMessage[] = [];
  /** Room events as shown to the person: each seq once, in order. */
  readonly transcript: RoomEvent[] = [];
  /** Events the server sent at or below a seq already seen (the client drops them; a resume should cause none). */
  repeatedEvents = 0;
  /** Times a shown event's seq skipped ahead of the one before it. */
  gaps = 0;
  welcomes = 0;
  acksForUnknownIds = 0;
  /** Acks whose seq differs from an earlier ack of the same id. */
  conflictingAcks = 0;
  readonly errors: ErrorFrame[] = [];
  private stopped = false;
  private counter = 0;
  private readonly byId = new Map<string, SentMessage>();
  private changeWaiters: (() => void)[] = [];

  constructor(private readonly options: ResumingClientOptions) {
    this.chat = new ChatClient({
      host: '127.0.0.1',
      port: options.port,
      name: options.name,
      room: options.room,
      clientId: options.clientId,
      outboxes: memoryOutboxes(),
      initialBackoffMs: options.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
    this.chat.onFrame((frame) => this.observe(frame));
    this.chat.onEvent((event) => {
      const previous = this.transcript[this.transcript.length - 1];
      if (previous && event.seq !== previous.seq + 1) this.gaps += 1;
      this.transcript.push(event);
    });
    this.chat.onState(() => this.changed());
    this.chat.onOutbox(() => this.changed());
  }

  get name(): string {
    return this.options.name;
  }

  get isWelcomed(): boolean {
    return !this.stopped && this.chat.state.kind === 'connected';
  }

  /** The highest seq shown. */
  get lastSeq(): number {
    return this.chat.lastSeq;
  }

  /** Messages not yet acked, oldest first, as the client's outbox holds them. */
  get outbox(): SentMessage[] {
    return this.chat.pending.map((pending) => this.byId.get(pending.id)).filter((message) => message !== undefined);
  }

  start(): void {
    this.chat.connect();
  }

  /** Queues a message (sent now if connected, else after the next welcome). */
  say(text?: string): string {
    this.counter += 1;
    const said = text ?? `message ${this.counter} from ${this.options.name}`;
    const message: SentMessage = { id: this.chat.say(said), text: said };
    this.sent.push(message);
    this.byId.set(message.id, message);
    return message.id;
  }

  /** Skips the rest of the backoff and tries again now. */
  reconnectNow(): void {
    this.chat.reconnectNow();
  }

  /** Stops for good without a bye, as a closed window would: the server should announce it as lost. */
  stop(): void {
    this.stopped = true;
    this.chat.dispose();
    this.changed();
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

  /** Sees each frame before the client acts on it, so `chat.lastSeq` is still the one before. */
  private observe(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.welcomes += 1;
        break;
      case 'message':
      case 'joined':
      case 'left':
        if (frame.seq <= this.chat.lastSeq) this.repeatedEvents += 1;
        break;
      case 'ack': {
        const message = this.byId.get(frame.id);
        if (!message) {
          this.acksForUnknownIds += 1;
          break;
        }
        if (message.ackedSeq !== undefined && message.ackedSeq !== frame.seq) this.conflictingAcks += 1;
        message.ackedSeq ??= frame.seq;
        break;
      }
      case 'error':
        this.errors.push(frame);
        break;
    }
    // Waiters run after the whole chunk is handled: their promises resume in a later microtask.
    this.changed();
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

/** The stored history read straight from a room's log file (every event record, oldest first; the header naming the room is left out). */
export function readRoomLog(path: string): (RoomEvent & { clientId?: string })[] {
  const text = readFileSync(path, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as (RoomEvent & { clientId?: string }) | { chatRoomLog: number })
    .filter((record): record is RoomEvent & { clientId?: string } => !('chatRoomLog' in record));
}
