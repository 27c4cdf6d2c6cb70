/**
 * How the companion server tells the process that started it how its start-up
 * went: typed messages over the IPC channel that `fork` (or a spawn with an
 * `'ipc'` stdio entry) opens, and exit codes. Defined once here for the server
 * (server/cli.ts) and every parent: the extension's ServerController, the test
 * harness, `npm start` and the benchmark. Nobody reads the server's log lines
 * to learn whether it is ready; those are for people.
 *
 * A parent must keep the channel open while the server runs unless it hands
 * the server a lease (`--lease`): without one, a server whose channel closes
 * takes it as its parent gone, and stops (server/lease.ts).
 */
import type { ChildProcess } from 'node:child_process';

/**
 * Where a parent hands the server its token: the environment, which other
 * users cannot read, unlike the arguments any local user can list with `ps`.
 */
export const SERVER_TOKEN_ENV = 'CHAT_ROOM_TOKEN';

/** The server's exit codes. */
export const ServerExit = {
  /** A graceful shutdown: everyone was told and everything stored. */
  stopped: 0,
  /** The shutdown itself failed. */
  shutdownFailed: 1,
  /** It could not start: bad flags, an unreadable certificate, a data folder it cannot use… */
  startFailed: 2,
  /** The port (or the classic port) is taken by another program. */
  portBusy: 3,
} as const;

export type ServerExitCode = (typeof ServerExit)[keyof typeof ServerExit];

/** Sent once the server accepts connections. */
export interface ServerListeningMessage {
  type: 'listening';
  host: string;
  /** The port it listens on (the real one when asked for port 0). */
  port: number;
  classicPort?: number;
  /** SHA-256 fingerprint of its TLS certificate, when it serves TLS. */
  fingerprint?: string;
}

/** Sent just before the server exits because it could not start; `exitCode` is the code it exits with. */
export interface ServerStartFailedMessage {
  type: 'startFailed';
  exitCode: ServerExitCode;
  reason: string;
}

export type ServerToParent = ServerListeningMessage | ServerStartFailedMessage;

/** Narrows what arrived over the channel to a message of this file; anything else is not ours. */
export function asServerMessage(value: unknown): ServerToParent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (record.type === 'listening') {
    if (typeof record.host !== 'string' || !Number.isSafeInteger(record.port)) return undefined;
    return {
      type: 'listening',
      host: record.host,
      port: record.port as number,
      ...(Number.isSafeInteger(record.classicPort) ? { classicPort: record.classicPort as number } : {}),
      ...(typeof record.fingerprint === 'string' ? { fingerprint: record.fingerprint } : {}),
    };
  }
  if (record.type === 'startFailed') {
    if (!Object.values(ServerExit).includes(record.exitCode as ServerExitCode) || typeof record.reason !== 'string') return undefined;
    return { type: 'startFailed', exitCode: record.exitCode as ServerExitCode, reason: record.reason };
  }
  return undefined;
}

/** The server did not come up: it said why, exited, or stayed silent past the time allowed. */
export class ServerStartError extends Error {
  constructor(
    message: string,
    /** The exit code, when it exited (null after a signal); undefined when it was given up on. */
    readonly exitCode: number | null | undefined,
    /** Why, in the server's own words, when it said so before exiting. */
    readonly serverReason?: string,
  ) {
    super(message);
  }

  get portBusy(): boolean {
    return this.exitCode === ServerExit.portBusy;
  }
}

/**
 * Waits for a freshly started server's `listening` message. Rejects with a
 * {@link ServerStartError} when it reports a failed start, exits first, or
 * says nothing within `timeoutMs` (then it is killed: a server nobody can
 * know the port of serves no one).
 */
export function waitForListening(child: ChildProcess, timeoutMs: number): Promise<ServerListeningMessage> {
  return new Promise((resolve, reject) => {
    let reported: ServerStartFailedMessage | undefined;
    const finish = (outcome: () => void): void => {
      clearTimeout(timer);
      child.removeListener('message', onMessage);
      child.removeListener('exit', onExit);
      child.removeListener('error', onError);
      outcome();
    };
    const timer = setTimeout(() => {
      finish(() => reject(new ServerStartError(`The chat server did not report that it was listening within ${timeoutMs / 1000} s.`, undefined)));
      child.kill('SIGKILL');
    }, timeoutMs);
    const onMessage = (raw: unknown): void => {
      const message = asServerMessage(raw);
      if (message?.type === 'listening') finish(() => resolve(message));
      // The exit follows at once; its code is the one the message names.
      else if (message?.type === 'startFailed') reported = message;
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      const how = signal ? `signal ${signal}` : `code ${code}`;
      const why = reported ? `: ${reported.reason}` : '.';
      finish(() => reject(new ServerStartError(`The chat server exited with ${how} before it was ready${why}`, reported?.exitCode ?? code, reported?.reason)));
    };
    const onError = (error: Error): void => finish(() => reject(new ServerStartError(`The chat server process failed: ${error.message}`, undefined)));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}
