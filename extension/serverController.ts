/**
 * Runs the bundled chat server (dist/server.js) as a child process of the
 * extension host, so a server crash can never take the editor down, and the
 * editor closing always takes the server with it.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as net from 'node:net';
import * as vscode from 'vscode';
import { Disposable, toDisposable } from '../shared/disposable';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';

export type ServerState =
  | { kind: 'stopped' }
  | { kind: 'starting'; host: string; port: number }
  | { kind: 'running'; host: string; port: number; pid: number; token?: string; fingerprint?: string }
  | { kind: 'stopping'; host: string; port: number }
  | { kind: 'crashed'; reason: string };

export interface StartOptions {
  host: string;
  port: number;
  dataDir: string;
  /** Port for the plain-text classic protocol, when wanted. */
  classicPort?: number;
  /** Required by the server on any address other than loopback. */
  token?: string;
  /** Serve TLS with the self-signed certificate kept in `dataDir`. */
  tls?: boolean;
}

/** The port was taken before the server could bind it. */
export class PortBusyError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`Port ${port} on ${host} is already in use.`);
  }
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
/** A listening line as the server prints it: `listening on 127.0.0.1:33000` or `listening on [::1]:33000`. */
const LISTENING_LINE = /listening on \[?([^\s\]]+?)\]?:(\d+)/;
/** Printed before the listening line by a server started with --tls. */
const FINGERPRINT_LINE = /TLS certificate fingerprint \(SHA-256\): ([0-9A-F:]{95})/;
/** True when nothing can bind host:port right now (something else holds it). */
export function isPortBusy(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES'));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}

/** A port the OS says is free now, for the "use another port" offer. */
export function findFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0 }, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export class ServerController extends Disposable {
  private readonly stateEmitter = this.register(new vscode.EventEmitter<ServerState>());
  readonly onDidChangeState = this.stateEmitter.event;
  private currentState: ServerState = { kind: 'stopped' };
  private child: ChildProcess | undefined;
  private stopRequested = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly serverScript: string,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.register(toDisposable(() => void this.stop()));
  }

  get state(): ServerState {
    return this.currentState;
  }

  /** Starts the server and resolves once it prints that it is listening. */
  async start(options: StartOptions): Promise<{ host: string; port: number; fingerprint?: string }> {
    if (this.child) throw new Error('The chat server is already running.');
    if (await isPortBusy(options.host, options.port)) throw new PortBusyError(options.host, options.port);

    const args = ['--host', options.host, '--port', String(options.port), '--data', options.dataDir];
    if (options.classicPort) args.push('--classic-port', String(options.classicPort));
    if (options.tls) args.push('--tls');
    // The arguments are not logged: they may hold the token.
    this.log.info(`Starting ${this.serverScript} on ${options.host}:${options.port}${options.tls ? ' with TLS' : ''}, data in ${options.dataDir}`);
    this.setState({ kind: 'starting', host: options.host, port: options.port });
    this.stopRequested = false;

    const child = fork(this.serverScript, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // The server shuts itself down when this IPC channel goes away (the host was killed), see server/cli.ts.
      execArgv: [...SERVER_NODE_FLAGS],
      // VS Code desktop runs the extension host in Electron; this makes the child plain Node.
      // The token goes in the environment, not the arguments, which any local user can list with `ps`.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', CHAT_ROOM_TOKEN: options.token ?? '' },
    });
    this.child = child;
    let stderrTail = '';
    let resolveExited!: () => void;
    this.exited = new Promise((resolve) => (resolveExited = resolve));

    return new Promise((resolve, reject) => {
      let settled = false;
      const readyTimer = setTimeout(() => fail(new Error(`The chat server did not report that it was listening within ${READY_TIMEOUT_MS / 1000} s.`)), READY_TIMEOUT_MS);
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(readyTimer);
        reject(error);
        if (this.child === child) void this.stop();
      };

      let fingerprint: string | undefined;
      forEachLine(child.stdout, (line) => {
        this.log.info(line);
        fingerprint = FINGERPRINT_LINE.exec(line)?.[1] ?? fingerprint;
        const match = LISTENING_LINE.exec(line);
        if (match && !settled) {
          settled = true;
          clearTimeout(readyTimer);
          const port = Number(match[2]);
          this.setState({ kind: 'running', host: options.host, port, pid: child.pid ?? 0, token: options.token, fingerprint });
          resolve({ host: options.host, port, fingerprint });
        }
      });
      forEachLine(child.stderr, (line) => {
        stderrTail = (stderrTail + line + '\n').slice(-2000);
        this.log.warn(line);
      });
      child.on('error', (error) => {
        this.log.error(`The chat server process failed: ${error.message}`);
        fail(error);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(readyTimer);
        if (this.child === child) this.child = undefined;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        this.log.info(`The chat server exited with ${how}.`);
        resolveExited();
        if (!settled) {
          settled = true;
          reject(/EADDRINUSE|address already in use/i.test(stderrTail) ? new PortBusyError(options.host, options.port) : new Error(`The chat server exited with ${how} before it was ready. ${lastLine(stderrTail)}`.trim()));
          this.setState({ kind: 'stopped' });
          return;
        }
        if (this.stopRequested || code === 0) {
          this.setState({ kind: 'stopped' });
        } else {
          this.setState({ kind: 'crashed', reason: `The chat server stopped unexpectedly (${how}). ${lastLine(stderrTail)}`.trim() });
        }
      });
    });
  }

  /** Asks the server to shut down (SIGTERM: it tells everyone and flushes), then insists after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopRequested = true;
    const { host, port } = this.currentState.kind === 'running' || this.currentState.kind === 'starting' ? this.currentState : { host: '', port: 0 };
    this.setState({ kind: 'stopping', host, port });
    child.kill('SIGTERM');
    const exited = this.exited;
    let graceTimer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => (graceTimer = setTimeout(() => resolve(true), STOP_GRACE_MS))),
    ]);
    clearTimeout(graceTimer);
    if (gaveUp) {
      this.log.warn(`The chat server did not stop within ${STOP_GRACE_MS / 1000} s; killing it.`);
      child.kill('SIGKILL');
      await exited;
    }
  }

  private setState(state: ServerState): void {
    this.currentState = state;
    this.stateEmitter.fire(state);
  }
}

function forEachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline).replace(/\r$/, '');
      buffered = buffered.slice(newline + 1);
      if (line) onLine(line);
    }
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}
