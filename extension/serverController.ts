/**
 * Runs the bundled chat server (dist/server.js) as a process of its own, so a
 * server crash can never take the editor down, and the room outlives the
 * window that started it: a reload or a closed window leaves it running, and
 * the next window of this installation attaches to it.
 *
 * How (the README's "The server outlives the window" tells it for people):
 * - it is started detached (its own process group), with its output going to
 *   a log file in its data folder rather than to pipes the window owns, and an
 *   IPC channel used only for the start-up handshake ("listening"), then let go;
 * - what a later window needs to attach is recorded in the server's home
 *   (serverHome.ts), and every attached window renews a lease there; the
 *   server stops gracefully when Stop Chat Server asks through the lease, or
 *   when no window has renewed it for the keep-alive time;
 * - a window knows the server is ours before it signals it: the pid must be
 *   alive and its command line must name our lease (pids are reused).
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as vscode from 'vscode';
import { Disposable, type IDisposable, toDisposable } from '../shared/disposable';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';
import { SERVER_TOKEN_ENV, type ServerListeningMessage, ServerStartError, waitForListening } from '../shared/serverIpc';
import { renewEveryMs } from '../shared/serverLease';
import { LogFollower } from './logFollower';
import { pidAlive, type ServerChoices, type ServerHome, type ServerRecord } from './serverHome';

export type ServerState =
  | { kind: 'stopped' }
  | { kind: 'starting'; host: string; port: number }
  | { kind: 'running'; host: string; port: number; pid: number; token?: string; fingerprint?: string; classicPort?: number }
  | { kind: 'stopping'; host: string; port: number }
  /** `seen` is false when the crash happened while no window was attached (found on opening). */
  | { kind: 'crashed'; reason: string; choices: ServerChoices; seen: boolean };

export interface StartOptions {
  choices: ServerChoices;
  /** Required by the server on any address other than loopback. */
  token?: string;
  /** Serve TLS with the self-signed certificate kept in the data folder. */
  tls?: boolean;
  keepAliveMs: number;
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
/** How often an attached window checks that the server process is still there. */
const WATCH_MS = 1_000;
/** How often a window that holds no server looks for one another window started. */
const LOOK_FOR_SERVER_MS = 3_000;

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
  /** Renewing the lease, watching the process and following the log, while a server runs. */
  private holding: IDisposable | undefined;
  private record: ServerRecord | undefined;
  /** The ending under way (or the last one): the record it is for, and when it is through. */
  private ending: { record: ServerRecord; done: Promise<void> } | undefined;
  private stopRequested = false;
  private attaching = false;

  constructor(
    private readonly serverScript: string,
    readonly home: ServerHome,
    private readonly log: vscode.LogOutputChannel,
    private readonly keepAliveMs: () => number,
    private readonly savedToken: () => Thenable<string | undefined>,
  ) {
    super();
    // Closing the window lets go of the server; it keeps running for the others.
    this.register(toDisposable(() => this.letGo()));
    const lookAgain = setInterval(() => void this.attach(), LOOK_FOR_SERVER_MS);
    this.register(toDisposable(() => clearInterval(lookAgain)));
  }

  get state(): ServerState {
    return this.currentState;
  }

  /** The choices of the last server started here, while it runs or after it crashed. */
  get lastChoices(): ServerChoices | undefined {
    return this.currentState.kind === 'crashed' ? this.currentState.choices : this.record?.choices;
  }

  /**
   * Attaches to the server this installation runs, if any (a window opening,
   * or a reload): the status bar, the log and the lease follow it from now on.
   * A window that holds no server looks again every few seconds, so it also
   * finds a server another window started, or restarted after a crash.
   */
  async attach(): Promise<void> {
    if (this.attaching || this.isDisposed) return;
    this.attaching = true;
    try {
      await this.attachOnce();
    } finally {
      this.attaching = false;
    }
  }

  private async attachOnce(): Promise<void> {
    const before = this.currentState;
    if (before.kind !== 'stopped' && before.kind !== 'crashed') return;
    const record = await this.home.readRecord();
    const ours = record ? await this.home.isOurServer(record.pid) : false;
    // Anything may have happened meanwhile (a start, a stop, the window closing).
    if (this.isDisposed || this.currentState !== before) return;
    if (record && ours !== false) {
      this.record = record;
      const token = record.choices.lan ? await this.savedToken() : undefined;
      if (this.isDisposed || this.currentState !== before) return;
      this.log.info(`Attached to the chat server running on ${record.host}:${record.port} (pid ${record.pid}).`);
      this.hold(record, false);
      this.setState(runningState(record, token));
      return;
    }
    if (before.kind === 'crashed') {
      // Another window dismissed the crash (Stop Chat Server forgets the record).
      if (!record) this.setState({ kind: 'stopped' });
      return;
    }
    if (!record) return;
    const note = await this.home.exitNoteOf(record.pid);
    if (this.isDisposed || this.currentState !== before) return;
    if (note?.code === 0) {
      await this.home.forgetRecord();
      return;
    }
    this.record = record;
    this.setState({ kind: 'crashed', reason: `The chat server on ${record.host}:${record.port} stopped unexpectedly while no window was open.`, choices: record.choices, seen: false });
  }

  /** Starts the server and resolves once it reports that it is listening. */
  async start(options: StartOptions): Promise<{ host: string; port: number; fingerprint?: string }> {
    if (this.currentState.kind === 'running' || this.currentState.kind === 'starting' || this.currentState.kind === 'stopping') {
      throw new Error('The chat server is already running.');
    }
    const { host, port, classicPort } = options.choices;
    if (await isPortBusy(host, port)) throw new PortBusyError(host, port);

    await this.home.prepare();
    await this.home.rotateLog();
    await this.home.clearExitNote();
    await this.home.writeLease(options.keepAliveMs);
    const args = ['--host', host, '--port', String(port), '--data', this.home.dataDir, '--lease', this.home.leaseFile];
    if (classicPort) args.push('--classic-port', String(classicPort));
    if (options.tls) args.push('--tls');
    // The arguments are not logged: they may hold the token.
    this.log.info(`Starting ${this.serverScript} on ${host}:${port}${options.tls ? ' with TLS' : ''}, data and log in ${this.home.dataDir}`);
    this.setState({ kind: 'starting', host, port });
    this.stopRequested = false;

    const logFd = fs.openSync(this.home.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = fork(this.serverScript, args, {
        // Its own process group, and output to a file: nothing ties it to this window's life.
        detached: true,
        stdio: ['ignore', logFd, logFd, 'ipc'],
        execArgv: [...SERVER_NODE_FLAGS],
        // VS Code desktop runs the extension host in Electron; this makes the child plain Node.
        // The token goes in the environment, not the arguments, which any local user can list with `ps`.
        env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', [SERVER_TOKEN_ENV]: options.token ?? '' },
      });
    } finally {
      fs.closeSync(logFd);
    }
    const follower = new LogFollower(this.home.logFile, this.log, true);

    let listening: ServerListeningMessage;
    try {
      listening = await waitForListening(child, READY_TIMEOUT_MS);
    } catch (error) {
      follower.dispose();
      this.setState({ kind: 'stopped' });
      if (error instanceof ServerStartError && error.portBusy) throw new PortBusyError(host, port);
      const reason = error instanceof Error ? error.message : String(error);
      this.log.info(reason);
      // A server that could not say why (killed, or silent) may still have logged it.
      throw new Error(error instanceof ServerStartError && error.serverReason !== undefined ? reason : `${reason} ${lastLogLine(this.home.logFile)}`.trim(), { cause: error });
    }
    if (child.pid === undefined) {
      follower.dispose();
      this.setState({ kind: 'stopped' });
      throw new Error('The chat server process did not start.');
    }
    const record: ServerRecord = {
      pid: child.pid,
      host,
      port: listening.port,
      ...(listening.classicPort !== undefined ? { classicPort: listening.classicPort } : {}),
      ...(listening.fingerprint ? { fingerprint: listening.fingerprint } : {}),
      logFile: this.home.logFile,
      startedAt: Date.now(),
      choices: options.choices,
    };
    await this.home.writeRecord(record);
    this.record = record;
    // The handshake is over: from here the server lives on its own.
    child.removeAllListeners('message');
    if (child.connected) child.disconnect();
    child.unref();
    this.hold(record, true, follower, child);
    this.setState(runningState(record, options.token));
    return { host, port: record.port, ...(record.fingerprint ? { fingerprint: record.fingerprint } : {}) };
  }

  /** Asks the server to shut down (it tells everyone and flushes), then insists after a grace period. */
  async stop(): Promise<void> {
    const record = this.record;
    if (this.currentState.kind === 'crashed') {
      // Nothing runs; forgetting the record dismisses the crash.
      await this.home.forgetRecord();
      this.record = undefined;
      this.setState({ kind: 'stopped' });
      return;
    }
    if (!record || (this.currentState.kind !== 'running' && this.currentState.kind !== 'starting')) return;
    this.stopRequested = true;
    this.setState({ kind: 'stopping', host: record.host, port: record.port });
    await this.home.askToStop(this.keepAliveMs());
    if (!(await waitUntil(() => !pidAlive(record.pid), STOP_GRACE_MS))) {
      // Signals only for a process known to be ours: the pid may have gone to another program.
      if ((await this.home.isOurServer(record.pid)) === true) {
        this.log.warn(`The chat server did not stop within ${STOP_GRACE_MS / 1000} s; sending SIGTERM.`);
        process.kill(record.pid, 'SIGTERM');
        if (!(await waitUntil(() => !pidAlive(record.pid), STOP_GRACE_MS)) && (await this.home.isOurServer(record.pid)) === true) {
          this.log.warn('The chat server ignored SIGTERM; killing it.');
          process.kill(record.pid, 'SIGKILL');
          await waitUntil(() => !pidAlive(record.pid), STOP_GRACE_MS);
        }
      }
    }
    await this.ended(record);
  }

  /** This window stops holding the server (it is closing); the server keeps running. */
  letGo(): void {
    this.holding?.dispose();
    this.holding = undefined;
  }

  /** Renews the lease, watches the process and follows its log while it runs. */
  private hold(record: ServerRecord, startedHere: boolean, follower = new LogFollower(this.home.logFile, this.log, false), child?: ChildProcess): void {
    this.holding?.dispose();
    // The log followed is always this home's (the record's path is only informative): nothing read from a file picks what is shown.
    const keepAlive = this.keepAliveMs();
    let leaseKeepAlive = keepAlive;
    void this.home.writeLease(keepAlive);
    const renewal = setInterval(() => {
      const wanted = this.keepAliveMs();
      // A changed setting rewrites the lease; otherwise touching it is enough.
      if (wanted !== leaseKeepAlive) {
        leaseKeepAlive = wanted;
        void this.home.writeLease(wanted);
      } else {
        void this.home.renewLease(wanted);
      }
    }, renewEveryMs(keepAlive));
    const watch = setInterval(() => {
      if (!pidAlive(record.pid)) void this.ended(record);
    }, WATCH_MS);
    // The window that started it hears of its exit at once; the others within WATCH_MS.
    const onExit = () => void this.ended(record);
    child?.once('exit', onExit);
    this.holding = toDisposable(() => {
      clearInterval(renewal);
      clearInterval(watch);
      child?.removeListener('exit', onExit);
      follower.dispose();
    });
    this.log.info(startedHere ? 'This window holds the chat server while it is open.' : 'This window holds the chat server too.');
  }

  /**
   * The server process is gone: a stop (it left a clean exit note) or a crash.
   * Its exit, the liveness watch and stop() may each notice; all of them get
   * the one ending, so stop() returns only once the record is forgotten.
   */
  private ended(record: ServerRecord): Promise<void> {
    if (this.ending?.record === record) return this.ending.done;
    if (this.record !== record) return Promise.resolve();
    const done = this.settleEnding(record);
    this.ending = { record, done };
    return done;
  }

  private async settleEnding(record: ServerRecord): Promise<void> {
    this.record = undefined;
    this.letGo();
    // The note is written as the process exits; give the file system a moment.
    let note = await this.home.exitNoteOf(record.pid);
    if (!note) note = await new Promise((resolve) => setTimeout(() => resolve(this.home.exitNoteOf(record.pid)), 200));
    if (note?.code === 0 || this.stopRequested) {
      this.log.info(`The chat server stopped${note?.reason ? `: ${note.reason}` : ''}.`);
      await this.home.forgetRecord();
      this.setState({ kind: 'stopped' });
      return;
    }
    this.record = record;
    const how = note ? `exit code ${note.code}` : 'it was killed or crashed';
    this.log.error(`The chat server stopped unexpectedly (${how}).`);
    this.setState({ kind: 'crashed', reason: `The chat server stopped unexpectedly (${how}). ${lastLogLine(this.home.logFile)}`.trim(), choices: record.choices, seen: true });
  }

  private setState(state: ServerState): void {
    this.currentState = state;
    this.stateEmitter.fire(state);
  }
}

function runningState(record: ServerRecord, token: string | undefined): ServerState {
  return {
    kind: 'running',
    host: record.host,
    port: record.port,
    pid: record.pid,
    ...(token ? { token } : {}),
    ...(record.fingerprint ? { fingerprint: record.fingerprint } : {}),
    ...(record.classicPort !== undefined ? { classicPort: record.classicPort } : {}),
  };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** The last line of the log that is not an ordinary one, to say why the server stopped. */
function lastLogLine(file: string): string {
  try {
    const tail = fs.readFileSync(file, 'utf8').slice(-4000).trim().split('\n');
    return tail.reverse().find((line) => line.startsWith('chat server: ') || line.startsWith('error: ')) ?? '';
  } catch {
    return '';
  }
}
