/**
 * What a protocol-2 socket test makes (servers, clients, data folders), each
 * let go after every test. Called inside a `describe`, it registers its own
 * `afterEach`:
 *
 *     const made = v2Fixture({ memory: true, args: FAST_V2 });
 *     const server = await made.start();
 *     const alice = await made.v2(server.port, 'alice');
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess, type ServerProcessOptions } from './serverProcess';
import { V2Client, type HelloOptions } from './v2Client';

/** Rate limits high enough that a test's bursts are never the thing refused. */
export const FAST_V2 = ['--rate-burst', '2000', '--rate-per-second', '2000'];

export interface V2Fixture {
  /** Starts a server (by default with the fixture's options). */
  start(options?: ServerProcessOptions): Promise<ServerProcess>;
  /** Connects and says hello with protocol 2; resolves once welcomed. */
  v2(port: number, name: string, options?: HelloOptions): Promise<V2Client>;
  /** Closes this after the test (a client made another way). */
  keep<T extends { close(): void }>(closer: T): T;
  /** A fresh folder, removed after the test. */
  tempDir(): string;
}

export function v2Fixture(defaults: ServerProcessOptions = { memory: true, args: FAST_V2 }): V2Fixture {
  const servers: ServerProcess[] = [];
  const closers: { close(): void }[] = [];
  const folders: string[] = [];

  afterEach(async () => {
    for (const client of closers.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.dispose();
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  });

  return {
    async start(options = defaults) {
      const server = await ServerProcess.start(options);
      servers.push(server);
      return server;
    },
    async v2(port, name, options = {}) {
      const client = await V2Client.hello(port, name, options);
      closers.push(client);
      return client;
    },
    keep(closer) {
      closers.push(closer);
      return closer;
    },
    tempDir() {
      const dir = mkdtempSync(join(tmpdir(), 'chat-room-v2-'));
      folders.push(dir);
      return dir;
    },
  };
}
