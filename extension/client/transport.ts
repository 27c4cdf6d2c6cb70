/**
 * One connection to a chat server, as lines: TCP, or TLS with a pinned
 * certificate. It knows nothing of the protocol spoken over it: its owner
 * (reconnectingClient.ts) hands the lines it delivers to the protocol client
 * on top (chatClient.ts or chatClientV2.ts), which writes lines back.
 *
 * A TLS connection is refused before a single byte is written when the
 * server's certificate is not the pinned one, so a hello (and its token)
 * never reaches an impostor.
 *
 * It does not import `vscode`: the fault and soak suites drive it from plain Node.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Disposable, toDisposable } from '../../shared/disposable';
import { LineSplitter } from '../../shared/framing';
import { fingerprintMismatchMessage, fingerprintsMatch, peerFingerprint, pinnedTlsOptions } from '../certificatePin';
import { Emitter } from '../emitter';

export interface TransportOptions {
  host: string;
  port: number;
  /** SHA-256 fingerprint of the server's certificate; given, the connection is TLS and trusts only that certificate. */
  fingerprint?: string;
  /** The longest line accepted; a longer one closes the connection. */
  maxLineBytes: number;
  /** How long the server may stay silent before {@link LineTransport.stopAnswerTimer} is called. */
  answerTimeoutMs: number;
}

/** How a connection ended. */
export type TransportEnd =
  /** It closed or failed; `errorCode` is the socket error's code (ECONNREFUSED…) when there was one. */
  | { kind: 'closed'; reason: string; errorCode?: string }
  /** The server's certificate is not the pinned one: trying again would only reach the same impostor. */
  | { kind: 'pinMismatch'; reason: string };

export class LineTransport extends Disposable {
  private readonly openEmitter = this.register(new Emitter<void>());
  private readonly lineEmitter = this.register(new Emitter<Buffer>());
  private readonly endEmitter = this.register(new Emitter<TransportEnd>());
  /** The connection is up (for TLS: the handshake is done and the certificate is the pinned one). */
  readonly onOpen = this.openEmitter.event;
  /** One line, without its newline; empty lines are skipped. */
  readonly onLine = this.lineEmitter.event;
  /** Fires once, when the connection is over (never after `dispose` or `end`). */
  readonly onEnd = this.endEmitter.event;

  private readonly socket: net.Socket;
  private closeReason = 'The connection closed.';
  private errorCode: string | undefined;
  private ended = false;
  /** Saying goodbye: the goodbye's own timer ends the socket, so disposing the transport does not cut it short. */
  private leaving = false;

  constructor(private readonly options: TransportOptions) {
    super();
    const pin = options.fingerprint;
    const socket = pin === undefined ? net.createConnection({ host: options.host, port: options.port }) : tls.connect(pinnedTlsOptions(options.host, options.port));
    this.socket = socket;
    socket.setNoDelay(true);
    // Notices a peer that vanished without a FIN (a sleeping laptop, a pulled cable).
    socket.setKeepAlive(true, 15_000);
    socket.setTimeout(options.answerTimeoutMs);
    const lines = new LineSplitter(options.maxLineBytes);

    const onConnect = () => {
      if (socket instanceof tls.TLSSocket && pin !== undefined) {
        const presented = peerFingerprint(socket) ?? 'no certificate';
        if (!fingerprintsMatch(pin, presented)) {
          this.finish({ kind: 'pinMismatch', reason: fingerprintMismatchMessage(this.address, pin, presented) });
          socket.destroy();
          return;
        }
      }
      this.openEmitter.fire();
    };
    const onData = (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        if (this.ended) return;
        if (line.kind === 'overflow') {
          this.closeReason = 'The server sent a line that is far too long.';
          socket.destroy();
          return;
        }
        if (line.bytes.length > 0) this.lineEmitter.fire(line.bytes);
      }
    };
    const onTimeout = () => {
      this.closeReason = 'The server did not answer in time.';
      socket.destroy();
    };
    const onError = (error: NodeJS.ErrnoException) => {
      this.closeReason = describeSocketError(error, this.address);
      this.errorCode = error.code;
    };
    const onClose = () => this.finish({ kind: 'closed', reason: this.closeReason, ...(this.errorCode ? { errorCode: this.errorCode } : {}) });
    // A TLS socket may speak only once the handshake is done and the certificate checked.
    socket.on(pin === undefined ? 'connect' : 'secureConnect', onConnect);
    socket.on('data', onData);
    socket.on('timeout', onTimeout);
    socket.on('error', onError);
    socket.on('close', onClose);
    this.register(
      toDisposable(() => {
        this.ended = true;
        socket.removeListener('close', onClose);
        if (!this.leaving) socket.destroy();
      }),
    );
  }

  get address(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** The server has answered for good (the protocol says when): silence from now on is not a failed attempt. */
  stopAnswerTimer(): void {
    this.socket.setTimeout(0);
  }

  /** Sets why the connection is about to close, for {@link onEnd} (a fatal error the server sent, say). */
  setCloseReason(reason: string): void {
    this.closeReason = reason;
  }

  write(bytes: Buffer): void {
    const socket = this.socket;
    if (!this.ended && !socket.destroyed && socket.writable) socket.write(bytes);
  }

  /**
   * Ends the connection on purpose after `lastWords` (a goodbye), waiting at
   * most `timeoutMs` for the server to close its side. No {@link onEnd} fires.
   */
  end(lastWords: Buffer | undefined, timeoutMs: number): Promise<void> {
    const socket = this.socket;
    this.ended = true;
    socket.removeAllListeners('close');
    socket.removeAllListeners('data');
    this.leaving = true;
    if (socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      // A server that does not close its side is not waited for.
      const timer = setTimeout(() => socket.destroy(), lastWords ? timeoutMs : 0);
      timer.unref();
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (lastWords && socket.writable) socket.end(lastWords);
      else socket.destroy();
    });
  }

  private finish(end: TransportEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.endEmitter.fire(end);
  }
}

function describeSocketError(error: NodeJS.ErrnoException, address: string): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return `Nothing is listening on ${address}.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `The host of ${address} could not be found.`;
    case 'ECONNRESET':
      return 'The server reset the connection.';
    case 'ETIMEDOUT':
      return `${address} did not answer.`;
    default:
      return error.message;
  }
}
