/**
 * Debian's `haproxy` in front of a cluster's nodes, as docs/scaling.md
 * describes it: one TCP address, health checks every 200 ms, and sessions
 * of a node marked down cut at once, so clients reconnect through it to a
 * live node. Its own config in a temporary folder, a free loopback port,
 * stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './freeLoopbackPort';

export const HAPROXY_BINARY = process.env.HAPROXY ?? 'haproxy';

/** The front end docs/scaling.md shows, for nodes on loopback; `balance first` fills the first live node, so a test knows which one its clients are on. */
export function haproxyConfig(port: number, nodePorts: readonly number[], balance = 'roundrobin'): string {
  return `global
  # Two descriptors a connection (client side and node side); raise it with the open-file limit.
  maxconn 8000

defaults
  mode tcp
  timeout connect 1s
  # Longer than the chat server's ping (60 s) and its answer (30 s): an idle member is never cut by the proxy.
  timeout client 2m
  timeout server 2m
  retries 2
  option redispatch

frontend chat
  bind 127.0.0.1:${port}
  default_backend nodes

backend nodes
  balance ${balance}
  default-server check inter 200ms fall 1 rise 2 on-marked-down shutdown-sessions
${nodePorts.map((nodePort, i) => `  server node${i} 127.0.0.1:${nodePort}`).join('\n')}
`;
}

export class Haproxy {
  private output = '';
  private exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly root: string,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString('utf8')));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(nodePorts: readonly number[], balance?: string): Promise<Haproxy> {
    const root = mkdtempSync(join(tmpdir(), 'chat-room-haproxy-'));
    const port = await freeLoopbackPort();
    const config = join(root, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(port, nodePorts, balance));
    const child = spawn(HAPROXY_BINARY, ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proxy = new Haproxy(child, port, root);
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (error) => reject(new Error(`cannot run ${HAPROXY_BINARY} (apt-get install haproxy): ${error.message}`)));
      child.once('exit', (code) => reject(new Error(`haproxy exited with ${code}:\n${proxy.output}`)));
    });
    try {
      await Promise.race([proxy.listening(10_000), failed]);
    } catch (error) {
      await proxy.dispose();
      throw error;
    }
    failed.catch(() => undefined);
    return proxy;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get log(): string {
    return this.output;
  }

  /** Waits until the front end accepts connections. */
  private async listening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const open = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: this.port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
      if (open) return;
      if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${this.port} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops it by its PID and removes its folder. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
