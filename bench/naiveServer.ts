/**
 * The benchmark's deliberately naive baseline: the same NDJSON subset as the
 * real server (hello → welcome, say → message to every member including the
 * sender, then ack) written the obvious way. Every delivery is its own
 * JSON.stringify and its own socket.write(), nothing is corked, Node's
 * socket defaults are kept (Nagle on), and nothing is persisted: the ack
 * follows the fan-out at once. It has no rate limit, no joined/left events
 * and no validation, so it does strictly less work per message than the real
 * server; whatever the real one gains comes from how it writes.
 *
 * Usage: node out/bench/naiveServer.js --port N   (prints "listening on 127.0.0.1:PORT", and reports it over IPC when started with a channel)
 */
import { createServer, type Socket } from 'node:net';
import type { ServerListeningMessage } from '../shared/serverIpc';

interface Member {
  socket: Socket;
  name: string;
  room: string;
}

const rooms = new Map<string, Set<Member>>();
const seqByRoom = new Map<string, number>();

function handleFrame(socket: Socket, frame: Record<string, unknown>, member: Member | undefined): Member | undefined {
  if (frame.type === 'hello' && member === undefined && typeof frame.name === 'string') {
    const room = typeof frame.room === 'string' ? frame.room : 'lobby';
    const joined: Member = { socket, name: frame.name, room };
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(joined);
    const names = [...members].map((other) => other.name);
    socket.write(JSON.stringify({ type: 'welcome', you: joined.name, room, members: names, seq: seqByRoom.get(room) ?? 0 }) + '\n');
    return joined;
  }
  if (frame.type === 'say' && member !== undefined) {
    const seq = (seqByRoom.get(member.room) ?? 0) + 1;
    seqByRoom.set(member.room, seq);
    const ts = Date.now();
    for (const other of rooms.get(member.room) ?? []) {
      other.socket.write(JSON.stringify({ type: 'message', seq, room: member.room, from: member.name, text: frame.text, ts, id: frame.id }) + '\n');
    }
    socket.write(JSON.stringify({ type: 'ack', id: frame.id, seq }) + '\n');
    return member;
  }
  if (frame.type === 'ping') socket.write(JSON.stringify({ type: 'pong' }) + '\n');
  return member;
}

const server = createServer((socket) => {
  let member: Member | undefined;
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    pending += text;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        member = handleFrame(socket, JSON.parse(line) as Record<string, unknown>, member);
      } catch {
        socket.write(JSON.stringify({ type: 'error', code: 'bad_frame', message: 'not JSON' }) + '\n');
      }
      newline = pending.indexOf('\n');
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (member) rooms.get(member.room)?.delete(member);
  });
});

const portFlag = process.argv.indexOf('--port');
const port = portFlag === -1 ? 0 : Number(process.argv[portFlag + 1]);
server.listen({ host: '127.0.0.1', port, backlog: 1024 }, () => {
  const address = server.address();
  const listening: ServerListeningMessage = { type: 'listening', host: '127.0.0.1', port: typeof address === 'object' && address ? address.port : port };
  process.stdout.write(`listening on 127.0.0.1:${listening.port}\n`);
  // The benchmark learns the port as it learns the real server's (shared/serverIpc.ts).
  process.send?.(listening);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
