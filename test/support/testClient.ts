/**
 * A raw TCP client for tests: writes frames or bytes, and waits (with a time
 * limit) for lines or frames from the server.
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { encodeFrame, LineSplitter, parseServerFrame } from '../../shared/framing';
import type { ClientFrame, ServerFrame } from '../../shared/protocol';

export class TestClient {
  readonly lines: string[] = [];
  private readonly splitter = new LineSplitter(1 << 24);
  private cursor = 0;
  private waiters: (() => void)[] = [];
  closed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.splitter.push(chunk)) if (line.kind === 'line') this.lines.push(line.bytes.toString('utf8'));
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      for (const waiter of this.closeWaiters.splice(0)) waiter();
    });
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<TestClient> {
    return TestClient.whenReady(connect({ port, host }), 'connect', timeoutMs, `could not connect to ${host}:${port} within ${timeoutMs} ms`);
  }

  /**
   * Connects over TLS without checking the certificate against any authority
   * (the server's is self-signed); the caller checks `peerFingerprint` itself.
   */
  static connectTls(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<TestClient> {
    const socket = connectTls({ port, host, rejectUnauthorized: false, servername: '' });
    return TestClient.whenReady(socket, 'secureConnect', timeoutMs, `no TLS handshake with ${host}:${port} within ${timeoutMs} ms`);
  }

  /** Wraps `socket` once it emits `readyEvent`; destroys it and rejects on an error or after `timeoutMs`. */
  private static whenReady(socket: Socket, readyEvent: 'connect' | 'secureConnect', timeoutMs: number, timeoutMessage: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(timeoutMessage));
      }, timeoutMs);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new TestClient(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** The SHA-256 fingerprint of the server's certificate, on a TLS connection. */
  get peerFingerprint(): string | undefined {
    return 'getPeerCertificate' in this.socket ? (this.socket as TLSSocket).getPeerCertificate().fingerprint256 : undefined;
  }

  /** Connects and joins; resolves with the welcome and the client ready for more. */
  static async join(port: number, name: string, extra: Partial<Extract<ClientFrame, { type: 'hello' }>> = {}): Promise<TestClient> {
    const client = await TestClient.connect(port);
    client.send({ type: 'hello', name, ...extra });
    await client.nextFrame((frame) => frame.type === 'welcome');
    return client;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  send(frame: ClientFrame): void {
    this.socket.write(encodeFrame(frame));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits for the next line (after those already taken) that matches. */
  async nextLine(matches: (line: string) => boolean = () => true, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.lines.length) {
        const line = this.lines[this.cursor++];
        if (matches(line)) return line;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        const recent = this.lines.slice(-5).map((text) => (text.length > 200 ? text.slice(0, 200) + '…' : text));
        throw new Error(`${this.closed ? 'connection closed' : 'timed out'} waiting for a line; ${this.lines.length} lines so far, the last ones:\n${recent.join('\n')}`);
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

  /** Waits for the next server frame that matches. */
  async nextFrame<T extends ServerFrame = ServerFrame>(matches: (frame: ServerFrame) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    const line = await this.nextLine((text) => {
      const parsed = parseServerFrame(Buffer.from(text, 'utf8'));
      return parsed.ok && matches(parsed.frame);
    }, timeoutMs);
    return JSON.parse(line) as T;
  }

  /** Every frame received so far, parsed. */
  frames(): ServerFrame[] {
    return this.lines.map((line) => JSON.parse(line) as ServerFrame);
  }

  /** Resolves when the server closes the connection (or rejects after `timeoutMs`). */
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
