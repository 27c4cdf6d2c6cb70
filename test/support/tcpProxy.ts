/**
 * A loopback TCP proxy that the network-trouble and soak tests put between
 * clients and the server, so they can reset connections, refuse new ones, or
 * stall them (stop forwarding bytes while the sockets stay open, like a dead
 * Wi-Fi link).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface ProxiedConnection {
  readonly client: Socket;
  readonly upstream: Socket;
  stalled: boolean;
}

export class TcpProxy {
  readonly connections = new Set<ProxiedConnection>();
  accepted = 0;
  /** While set, every chunk clients send is kept in `bytesFromClients` (off by default: soak runs would hoard it). */
  recordClientBytes = false;
  readonly bytesFromClients: Buffer[] = [];
  /** While set, new connections are reset at once and never reach the server (the link is down). */
  refusing = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: () => number): Promise<TcpProxy> {
    // The listener exists before the proxy object that owns it, so connections find the proxy through this box.
    const box: { proxy?: TcpProxy } = {};
    const server = createServer({ noDelay: true }, (client) => box.proxy?.accept(client, targetPort()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    box.proxy = new TcpProxy(server, typeof address === 'object' && address ? address.port : 0);
    return box.proxy;
  }

  private accept(client: Socket, targetPort: number): void {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    this.accepted += 1;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    upstream.setNoDelay(true);
    const pair: ProxiedConnection = { client, upstream, stalled: false };
    this.connections.add(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (!pair.stalled && !to.destroyed) to.write(chunk);
      });
      from.on('end', () => to.end());
      from.on('error', () => undefined);
      from.on('close', () => {
        this.connections.delete(pair);
        to.destroy();
      });
    };
    client.on('data', (chunk: Buffer) => {
      if (this.recordClientBytes) this.bytesFromClients.push(chunk);
    });
    forward(client, upstream);
    forward(upstream, client);
  }

  /** Resets both sides of every connection (the peers see ECONNRESET or a close). */
  cutAll(): number {
    const count = this.connections.size;
    for (const pair of [...this.connections]) this.cut(pair);
    return count;
  }

  cut(pair: ProxiedConnection): void {
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
    this.connections.delete(pair);
  }

  /** Stops forwarding in both directions and reading from both sides; the sockets stay open. */
  stall(pair: ProxiedConnection): void {
    pair.stalled = true;
    pair.client.pause();
    pair.upstream.pause();
  }

  /** Forwards and reads again after `stall` (bytes that arrived while stalled stay dropped). */
  resume(pair: ProxiedConnection): void {
    pair.stalled = false;
    pair.client.resume();
    pair.upstream.resume();
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
