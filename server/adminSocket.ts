/**
 * The operator's way in: a local socket beside the data folder that only the
 * server's own user can open (a Unix socket made with no permission for
 * group or others; a named pipe on Windows). `node dist/server.js
 * release-name NAME --data DIR` asks the running server through it; with no
 * server running, the command opens the directory itself.
 *
 * The socket doubles as the data folder's lock: a server (or the command)
 * holds it while it uses the folder, so two processes never write one
 * directory file at once. A socket file left behind by a killed server
 * answers nobody and is replaced.
 *
 * Requests and answers are one JSON object a line.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Disposable, toDisposable } from '../shared/disposable';
import { LineSplitter } from '../shared/framing';
import type { Logger } from './log';

export type AdminRequest = { op: 'releaseName'; name: string };
export type AdminAnswer = { ok: true; released: string } | { ok: false; message: string };

/** Unix socket paths are limited to about 108 bytes; a longer data folder gets its socket in the temporary folder. */
const SOCKET_PATH_MAX_BYTES = 100;
const REQUEST_MAX_BYTES = 4096;
const ANSWER_TIMEOUT_MS = 10_000;

/** Where the admin socket of a data folder is. */
export function adminSocketPath(dataDir: string): string {
  const digest = createHash('sha256').update(dataDir, 'utf8').digest('hex').slice(0, 24);
  if (process.platform === 'win32') return `\\\\.\\pipe\\chat-room-admin-${digest}`;
  const inFolder = join(dataDir, 'admin.sock');
  if (Buffer.byteLength(inFolder, 'utf8') <= SOCKET_PATH_MAX_BYTES) return inFolder;
  return join(tmpdir(), `chat-room-admin-${process.getuid?.() ?? 'user'}-${digest}.sock`);
}

/** The data folder is in use by another process (a server, or a release-name command). */
export class DataFolderInUse extends Error {}

export class AdminListener extends Disposable {
  private constructor(server: Server) {
    super();
    this.register(toDisposable(() => server.close()));
  }

  /**
   * Listens on the admin socket of a data folder. Throws DataFolderInUse when
   * a live process answers there; a socket file nobody answers is replaced.
   */
  static async start(path: string, handle: (request: AdminRequest) => Promise<AdminAnswer>, logger: Logger): Promise<AdminListener> {
    // Half-open: the asker ends its side after its request and still gets the answer.
    const server = createServer({ allowHalfOpen: true }, (socket) => serve(socket, handle, logger));
    try {
      await listenPrivately(server, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      if (await someoneAnswers(path)) throw new DataFolderInUse(`the data folder is in use by another process, a chat server or a release-name command (its admin socket ${path} answers)`);
      await fs.rm(path, { force: true });
      await listenPrivately(server, path);
    }
    server.on('error', (error) => logger.error(`admin socket ${path}: ${error.message}`));
    return new AdminListener(server);
  }
}

async function listenPrivately(server: Server, path: string): Promise<void> {
  // The socket file is made with the process's umask: none of it for group and others while it is made.
  const previous = process.umask(0o177);
  try {
    server.listen(path);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
  } finally {
    process.umask(previous);
  }
}

function someoneAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function serve(socket: Socket, handle: (request: AdminRequest) => Promise<AdminAnswer>, logger: Logger): void {
  socket.on('error', () => undefined);
  const lines = new LineSplitter(REQUEST_MAX_BYTES);
  socket.setTimeout(ANSWER_TIMEOUT_MS, () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    for (const line of lines.push(chunk)) {
      if (line.kind === 'overflow') {
        socket.end(answerLine({ ok: false, message: 'The request is too long.' }));
        return;
      }
      socket.pause();
      void answer(line.bytes, handle)
        .catch((error: unknown) => {
          logger.error(`admin socket: ${String(error)}`);
          return { ok: false, message: 'The server could not do that; see its log.' } as AdminAnswer;
        })
        .then((result) => socket.end(answerLine(result)));
      return;
    }
  });
}

async function answer(line: Buffer, handle: (request: AdminRequest) => Promise<AdminAnswer>): Promise<AdminAnswer> {
  let request: unknown;
  try {
    request = JSON.parse(line.toString('utf8'));
  } catch {
    return { ok: false, message: 'The request is not JSON.' };
  }
  const { op, name } = (request ?? {}) as { op?: unknown; name?: unknown };
  if (op !== 'releaseName' || typeof name !== 'string') return { ok: false, message: 'Unknown request.' };
  return handle({ op, name });
}

function answerLine(answer: AdminAnswer): string {
  return JSON.stringify(answer) + '\n';
}

/** Sends one request to the server on this admin socket; undefined when no server is listening there. */
export async function askServer(path: string, request: AdminRequest): Promise<AdminAnswer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not answer on ${path} within ${ANSWER_TIMEOUT_MS} ms`));
    }, ANSWER_TIMEOUT_MS);
    socket.once('connect', () => {
      connected = true;
      socket.end(JSON.stringify(request) + '\n');
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (error.code === 'ENOENT' || error.code === 'ECONNREFUSED')) resolve(undefined);
      else reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (!connected) return;
      try {
        resolve(JSON.parse(text) as AdminAnswer);
      } catch {
        reject(new Error(`the server answered something unreadable on ${path}`));
      }
    });
  });
}
