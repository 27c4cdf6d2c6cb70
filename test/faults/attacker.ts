/**
 * One hostile client, run as its own process by hostile.test.ts so that its
 * work does not slow the test's own event loop (which measures the normal
 * clients' latency). Usage:
 *
 *   node out/test/faults/attacker.js KIND PORT DURATION_MS [COUNT]
 *
 * It attacks for about DURATION_MS, then prints one JSON line with what the
 * server answered, and exits.
 */
import { connect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { encodeFrame, LineSplitter } from '../../shared/framing';
import type { ClientFrame } from '../../shared/protocol';

export type AttackKind = 'flooder' | 'slow-reader' | 'hello-never' | 'storm' | 'garbage' | 'http' | 'tls-hello';

interface Observed {
  /** Error codes the server sent, with how often. */
  errors: Record<string, number>;
  /** Connections the server closed (FIN or reset). */
  closedByServer: number;
  frames: number;
}

function watch(socket: Socket, observed: Observed, onFrame?: (frame: { type: string; code?: string; id?: string }) => void): void {
  const lines = new LineSplitter(1 << 24);
  socket.on('data', (chunk: Buffer) => {
    for (const line of lines.push(chunk)) {
      if (line.kind !== 'line' || line.bytes.length === 0) continue;
      observed.frames += 1;
      let frame: { type: string; code?: string; id?: string };
      try {
        frame = JSON.parse(line.bytes.toString('utf8'));
      } catch {
        continue;
      }
      if (frame.type === 'error' && frame.code) observed.errors[frame.code] = (observed.errors[frame.code] ?? 0) + 1;
      onFrame?.(frame);
    }
  });
  socket.on('error', () => undefined);
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const frame = (value: ClientFrame) => encodeFrame(value);

async function flooder(port: number, durationMs: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const socket = await open(port);
  let acks = 0;
  watch(socket, observed, (received) => {
    if (received.type === 'ack') acks += 1;
  });
  let serverClosed = false;
  socket.on('close', () => (serverClosed = true));
  socket.write(frame({ type: 'hello', name: 'flooder', clientId: 'flooder-id' }));
  let sent = 0;
  const until = Date.now() + durationMs;
  // Writes as fast as the socket takes them: the server pauses reading, so this waits on 'drain'.
  while (Date.now() < until && !serverClosed) {
    const more = socket.write(frame({ type: 'say', id: `flood-${sent}`, text: `flood ${sent}` }));
    sent += 1;
    if (!more) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), sleep(until - Date.now())]);
  }
  socket.destroy();
  return { sent, acks, serverClosed, ...observed };
}

async function slowReader(port: number, durationMs: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const room = 'slow-room';
  // The slow reader joins, then never reads another byte.
  const reader = await open(port);
  reader.on('error', () => undefined);
  reader.write(frame({ type: 'hello', name: 'slow-reader', room, clientId: 'slow-reader-id' }));
  reader.pause();
  const readerClosed = closed(reader);
  // Chatty members of its room give it something not to read (15 KB messages within the rate limit).
  const chatters: Socket[] = [];
  let lostAnnounced = false;
  for (let index = 0; index < 20; index++) {
    const chatter = await open(port);
    watch(chatter, observed, (received) => {
      if (received.type === 'left' && (received as { name?: string }).name === 'slow-reader' && (received as { reason?: string }).reason === 'lost') lostAnnounced = true;
    });
    chatter.write(frame({ type: 'hello', name: `chatter${index}`, room, clientId: `chatter-${index}` }));
    chatters.push(chatter);
  }
  const started = Date.now();
  const text = 'w'.repeat(15_000);
  let count = 0;
  while (Date.now() - started < durationMs && !lostAnnounced) {
    for (const chatter of chatters) chatter.write(frame({ type: 'say', id: `chat-${count++}`, text }));
    await sleep(500);
  }
  const cutAfterMs = lostAnnounced ? Date.now() - started : undefined;
  // A paused socket does not notice its close; reading again drains the backlog and finds the end.
  reader.on('data', () => undefined);
  reader.resume();
  const readerClosedByServer = await Promise.race([readerClosed.then(() => true), sleep(5000).then(() => false)]);
  for (const socket of [reader, ...chatters]) socket.destroy();
  return { cut: readerClosedByServer, cutAfterMs, lostAnnounced, chatterMessages: count, chatterErrors: observed.errors };
}

async function helloNever(port: number, durationMs: number, count: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const started = Date.now();
  const sockets = await Promise.all(Array.from({ length: count }, () => open(port)));
  const closeTimes = await Promise.all(
    sockets.map(async (socket) => {
      watch(socket, observed);
      await Promise.race([closed(socket), sleep(durationMs)]);
      return socket.destroyed ? Date.now() - started : undefined;
    }),
  );
  for (const socket of sockets) socket.destroy();
  const times = closeTimes.filter((time): time is number => time !== undefined);
  return { count, closedByServer: times.length, latestCloseMs: Math.max(0, ...times), errors: observed.errors };
}

async function storm(port: number, durationMs: number, count: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const started = Date.now();
  let opened = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const held: Socket[] = [];
  let next = 0;
  // Many connections at once, as fast as the machine opens them, all held open until the end.
  const inFlight = 500;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        next += 1;
        try {
          const socket = await open(port);
          watch(socket, observed);
          held.push(socket);
          opened += 1;
        } catch (error) {
          failed += 1;
          const code = (error as NodeJS.ErrnoException).code ?? 'error';
          failures[code] = (failures[code] ?? 0) + 1;
        }
      }
    }),
  );
  const openedInMs = Date.now() - started;
  await sleep(Math.max(0, durationMs - openedInMs));
  const stillOpen = held.filter((socket) => !socket.destroyed).length;
  for (const socket of held) socket.destroy();
  return { count, opened, failed, failures, openedInMs, stillOpenAtEnd: stillOpen, errors: observed.errors };
}

async function garbage(port: number, durationMs: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const until = Date.now() + durationMs;
  let connections = 0;
  let bytes = 0;
  while (Date.now() < until) {
    const socket = await open(port);
    connections += 1;
    watch(socket, observed);
    const done = closed(socket);
    let serverClosed = false;
    void done.then(() => (serverClosed = true));
    // Random bytes with a newline now and then, so some lines are parsed and refused, and some run on past the frame limit.
    for (let round = 0; round < 40 && !serverClosed && Date.now() < until; round++) {
      const chunk = randomBytes(64 + Math.floor(Math.random() * 2048));
      if (Math.random() < 0.7) chunk[Math.floor(Math.random() * chunk.length)] = 0x0a;
      socket.write(chunk);
      bytes += chunk.length;
      await sleep(10);
    }
    if (serverClosed) observed.closedByServer += 1;
    socket.destroy();
  }
  return { connections, bytes, closedByServer: observed.closedByServer, errors: observed.errors };
}

async function http(port: number, durationMs: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const socket = await open(port);
  watch(socket, observed);
  const started = Date.now();
  socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n');
  await Promise.race([closed(socket), sleep(durationMs)]);
  const result = { closedByServer: socket.destroyed, closedAfterMs: socket.destroyed ? Date.now() - started : undefined, errors: observed.errors };
  socket.destroy();
  return result;
}

/** A real TLS ClientHello, captured from node:tls talking to a listener that only records bytes. */
async function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const recorder = createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
        recorder.close();
      });
    });
    recorder.listen(0, '127.0.0.1', () => {
      const address = recorder.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const client = tlsConnect({ host: '127.0.0.1', port, servername: 'chat.example', rejectUnauthorized: false });
      client.on('error', () => undefined);
    });
  });
}

async function tlsHello(port: number, durationMs: number): Promise<Record<string, unknown>> {
  const observed: Observed = { errors: {}, closedByServer: 0, frames: 0 };
  const hello = await captureClientHello();
  const socket = await open(port);
  watch(socket, observed);
  const started = Date.now();
  socket.write(hello);
  await Promise.race([closed(socket), sleep(durationMs)]);
  const result = { clientHelloBytes: hello.length, closedByServer: socket.destroyed, closedAfterMs: socket.destroyed ? Date.now() - started : undefined, errors: observed.errors };
  socket.destroy();
  return result;
}

async function main(): Promise<void> {
  const [kind, portText, durationText, countText] = process.argv.slice(2);
  const port = Number(portText);
  const durationMs = Number(durationText);
  const count = Number(countText ?? 0);
  const attacks: Record<AttackKind, () => Promise<Record<string, unknown>>> = {
    flooder: () => flooder(port, durationMs),
    'slow-reader': () => slowReader(port, durationMs),
    'hello-never': () => helloNever(port, durationMs, count || 20),
    storm: () => storm(port, durationMs, count || 1000),
    garbage: () => garbage(port, durationMs),
    http: () => http(port, durationMs),
    'tls-hello': () => tlsHello(port, durationMs),
  };
  const attack = attacks[kind as AttackKind];
  if (!attack) throw new Error(`unknown attack ${kind}`);
  const result = await attack();
  process.stdout.write(JSON.stringify({ kind, ...result }) + '\n');
  process.exit(0);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`attacker failed: ${String(error)}\n`);
    process.exit(1);
  });
}
