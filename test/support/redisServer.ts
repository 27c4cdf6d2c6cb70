/**
 * Debian's `redis-server` for the cluster tests: its own config and data
 * folder in a temporary directory, a free loopback port, the durability
 * settings the cluster requires (appendonly yes, appendfsync always), and
 * stopped, killed and restarted by its own PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './freeLoopbackPort';

export const REDIS_SERVER_BINARY = process.env.REDIS_SERVER ?? 'redis-server';

export interface RedisServerOptions {
  /** Extra config lines, e.g. `{ 'client-output-buffer-limit': 'pubsub 64kb 0 0' }`. */
  config?: Record<string, string>;
  /** Serve TLS only, with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
  startTimeoutMs?: number;
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private readonly root: string;
  readonly dataDir: string;
  port = 0;

  private constructor(private readonly options: RedisServerOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'chat-room-redis-'));
    this.dataDir = join(this.root, 'data');
    mkdirSync(this.dataDir);
  }

  /** Starts a Redis on a free port with an empty data folder. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(options);
    try {
      // A port found free can be taken before Redis binds it; try a few.
      for (let attempt = 1; ; attempt++) {
        server.port = await freeLoopbackPort();
        try {
          await server.launch();
          return server;
        } catch (error) {
          if (attempt >= 3) throw error;
        }
      }
    } catch (error) {
      await server.dispose();
      throw error;
    }
  }

  get url(): string {
    return `${this.options.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined;
  }

  /** What Redis printed since it last started. */
  get log(): string {
    return this.output;
  }

  private writeConfig(): string {
    const listen: Record<string, string> = this.options.tls
      ? { port: '0', 'tls-port': String(this.port), 'tls-cert-file': this.options.tls.certFile, 'tls-key-file': this.options.tls.keyFile, 'tls-auth-clients': 'no' }
      : { port: String(this.port) };
    const lines: Record<string, string> = {
      ...listen,
      bind: '127.0.0.1',
      'protected-mode': 'yes',
      daemonize: 'no',
      dir: this.dataDir,
      logfile: '""',
      // The settings docs/scaling.md requires: every acknowledged write is fsynced first.
      appendonly: 'yes',
      appendfsync: 'always',
      // Only the AOF: no background snapshots competing for the two cores.
      save: '""',
      'maxmemory-policy': 'noeviction',
      ...this.options.config,
    };
    const path = join(this.root, 'redis.conf');
    writeFileSync(path, Object.entries(lines).map(([key, value]) => `${key} ${value}`).join('\n') + '\n');
    return path;
  }

  private async launch(): Promise<void> {
    this.output = '';
    const child = spawn(REDIS_SERVER_BINARY, [this.writeConfig()], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    const timeoutMs = this.options.startTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`redis-server did not start within ${timeoutMs} ms:\n${this.output}`));
      }, timeoutMs);
      const onData = (chunk: Buffer): void => {
        this.output += chunk.toString('utf8');
        if (this.output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${REDIS_SERVER_BINARY} (apt-get install redis-server): ${error.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code} before it was ready:\n${this.output}`));
      });
    });
  }

  private async signal(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs))]);
    if (!done) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** A clean shutdown (SIGTERM), which also fsyncs and closes the AOF. */
  stop(): Promise<void> {
    return this.signal('SIGTERM', 10_000);
  }

  /** `kill -9`: no shutdown, only what is already in the AOF survives. */
  kill(): Promise<void> {
    return this.signal('SIGKILL', 5_000);
  }

  /** Starts again on the same port: with its data folder as it is (AOF kept), or emptied first. */
  async restart(options: { empty?: boolean } = {}): Promise<void> {
    if (this.child) throw new Error('redis-server is still running; stop or kill it first');
    if (options.empty) {
      for (const entry of readdirSync(this.dataDir)) rmSync(join(this.dataDir, entry), { recursive: true, force: true });
    }
    await this.launch();
  }

  /** Kills it if it still runs and removes its folder. Safe to call twice. */
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}
