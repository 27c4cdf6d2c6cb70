/**
 * Batches socket writes. Each socket is corked on its first write and
 * uncorked when the batch is flushed, so a burst of fan-out becomes one writev
 * per socket instead of one syscall per message.
 *
 * Flushing once per event-loop turn is not enough under steady load: messages
 * then arrive about a millisecond apart, each turn carries one message, and
 * every delivery pays a syscall of its own. So a flush that follows the last
 * one within `coalesceMs` waits out the rest of that window, which bounds the
 * added latency to `coalesceMs` while a quiet room is still flushed at once.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export class WriteBatcher {
  private readonly corked = new Set<Socket>();
  private flushScheduled = false;
  private lastFlushAt = -Infinity;

  constructor(private readonly coalesceMs: number) {}

  /** Whether this socket already has writes waiting in the current batch. */
  isBatching(socket: Socket): boolean {
    return this.corked.has(socket);
  }

  write(socket: Socket, bytes: Buffer): void {
    if (socket.destroyed || !socket.writable) return;
    if (!this.corked.has(socket)) {
      socket.cork();
      this.corked.add(socket);
      if (!this.flushScheduled) this.scheduleFlush();
    }
    socket.write(bytes);
  }

  private scheduleFlush(): void {
    this.flushScheduled = true;
    const sinceLastFlush = performance.now() - this.lastFlushAt;
    if (sinceLastFlush >= this.coalesceMs) setImmediate(this.flush);
    else setTimeout(this.flush, this.coalesceMs - sinceLastFlush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.lastFlushAt = performance.now();
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };
}
