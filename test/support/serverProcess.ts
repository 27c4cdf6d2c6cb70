/**
 * Starts the real, built server (`dist/server.js`) as its own process on a
 * free loopback port, and stops it by its PID. Used by socket, fault and
 * extension-independent tests alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SERVER_NODE_FLAGS } from '../../shared/serverRuntime';
import { type ServerListeningMessage, waitForListening } from '../../shared/serverIpc';

export const SERVER_SCRIPT = resolve(__dirname, '../../../dist/server.js');

export interface ServerProcessOptions {
  /** Extra command-line flags. */
  args?: string[];
  /** Keep history in this folder; a fresh temporary one is made when neither this nor `memory` is given. */
  dataDir?: string;
  memory?: boolean;
  /** Cluster mode: share rooms through the Redis at this URL (no data folder, no --memory). */
  redis?: string;
  /** Serve the classic protocol too. */
  classic?: boolean;
  startTimeoutMs?: number;
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
  /**
   * Starts the server under this many file descriptors (`ulimit -n` in the
   * shell that execs it, so the PID is still the server's own).
   */
  fileLimit?: number;
  /** Another build of the server to run instead of `dist/server.js` (e.g. the copy a package carries). */
  script?: string;
}

export class ServerProcess {
  private output = '';
  private exitWaiters: ((code: number | null) => void)[] = [];
  exitCode: number | null | undefined;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly classicPort: number | undefined,
    readonly dataDir: string | undefined,
    private readonly ownsDataDir: boolean,
    initialOutput: string,
  ) {
    this.output = initialOutput;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString('utf8')));
  }

  /** Everything the server printed so far. */
  get log(): string {
    return this.output;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  static async start(options: ServerProcessOptions = {}): Promise<ServerProcess> {
    const noFolder = options.memory === true || (options.redis !== undefined && options.dataDir === undefined);
    const ownsDataDir = !noFolder && options.dataDir === undefined;
    const dataDir = noFolder ? undefined : (options.dataDir ?? mkdtempSync(join(tmpdir(), 'chat-room-test-')));
    const storage = options.redis !== undefined ? ['--redis', options.redis] : dataDir ? ['--data', dataDir] : ['--memory'];
    const args = [...SERVER_NODE_FLAGS, options.script ?? SERVER_SCRIPT, '--port', '0', ...storage, ...(options.redis !== undefined && dataDir ? ['--data', dataDir] : [])];
    if (options.classic) args.push('--classic-port', '0');
    args.push(...(options.args ?? []));
    // The IPC channel is how the server says it listens, and on which port (shared/serverIpc.ts).
    const spawnOptions = { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] as ('ignore' | 'pipe' | 'ipc')[], ...(options.env ? { env: { ...process.env, ...options.env } } : {}) };
    const child =
      options.fileLimit === undefined
        ? spawn(process.execPath, args, spawnOptions)
        : spawn('bash', ['-c', `ulimit -n ${options.fileLimit} && exec "$@"`, 'bash', process.execPath, ...args], spawnOptions);
    let output = '';
    const collect = (chunk: Buffer): void => void (output += chunk.toString('utf8'));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let ready: ServerListeningMessage;
    try {
      ready = await waitForListening(child, options.startTimeoutMs ?? 10_000);
      // What the server printed before it said so is in its pipes already, but the channel can overtake them: a moment lets them in.
      await new Promise((resolveSettled) => setTimeout(resolveSettled, 20));
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
    } finally {
      child.stdout?.off('data', collect);
      child.stderr?.off('data', collect);
    }
    // A server left running by a failed test must not keep mocha waiting; when mocha goes, the channel closes and so does the server.
    child.channel?.unref();
    const server = new ServerProcess(child, ready.port, ready.classicPort, dataDir, ownsDataDir, output);
    child.once('exit', (code) => {
      server.exitCode = code;
      for (const waiter of server.exitWaiters.splice(0)) waiter(code);
    });
    return server;
  }

  /** Resolves with the exit code once the process has ended (or rejects after `timeoutMs`). */
  waitForExit(timeoutMs = 10_000): Promise<number | null> {
    if (this.exitCode !== undefined) return Promise.resolve(this.exitCode);
    return new Promise((resolveExit, rejectExit) => {
      const timer = setTimeout(() => rejectExit(new Error(`server ${this.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
      this.exitWaiters.push((code) => {
        clearTimeout(timer);
        resolveExit(code);
      });
    });
  }

  /** Sends a signal to this server's own PID and waits for it to end. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.exitCode === undefined) this.child.kill(signal);
    try {
      return await this.waitForExit(timeoutMs);
    } catch (error) {
      this.child.kill('SIGKILL');
      throw error;
    }
  }

  /** Stops the process (forcefully if need be) and removes a data folder it made. */
  async dispose(): Promise<void> {
    if (this.exitCode === undefined) await this.stop('SIGKILL').catch(() => undefined);
    if (this.ownsDataDir && this.dataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
