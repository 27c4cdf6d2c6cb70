/**
 * Batches socket writes: each socket is corked on its first write in a turn of
 * the event loop and uncorked once at the end of it, so a burst of fan-out
 * becomes one writev per socket instead of one syscall per message.
 */
import type { Socket } from 'node:net';

export class WriteBatcher {
  private readonly corked = new Set<Socket>();
  private flushScheduled = false;

  write(socket: Socket, bytes: Buffer): void {
    if (socket.destroyed || !socket.writable) return;
    if (!this.corked.has(socket)) {
      socket.cork();
      this.corked.add(socket);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    }
    socket.write(bytes);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };
}
