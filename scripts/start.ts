// `npm start`: runs the built chat server on the embedded default (this machine
// only, port 33000, history in ./.chat-room-data, the classic plain-text protocol
// on 33001) and says how to join it. Ctrl+C stops the server cleanly.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';
import { waitForListening } from '../shared/serverIpc';

// Bundled to out/scripts/start.js, two folders below the project root.
const root = join(__dirname, '..', '..');
const port = process.env.CHAT_ROOM_PORT ?? '33000';
const classicPort = process.env.CHAT_ROOM_CLASSIC_PORT ?? '33001';
const vsix = join(root, 'chat-room.vsix');

// The IPC channel is how the server says it is ready (shared/serverIpc.ts); with it open, the server also stops if this script dies.
const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, join(root, 'dist', 'server.js'), '--port', port, '--classic-port', classicPort, '--data', join(root, '.chat-room-data')], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});

waitForListening(server, 15_000).then(
  (listening) =>
    process.stdout.write(`
Chat Room is running on 127.0.0.1:${listening.port} (history in .chat-room-data/).

  Join from VS Code:
    code --install-extension ${existsSync(vsix) ? 'chat-room.vsix' : '<the .vsix from npm run package>'}
    then run "Chat Room: Join Room" from the command palette and enter localhost:${listening.port}

  Join from a terminal (the classic plain-text protocol):
    nc 127.0.0.1 ${listening.classicPort ?? classicPort}

Press Ctrl+C to stop the server.
`),
  // The exit handler below ends this script with the server's code.
  (error: Error) => process.stderr.write(`${error.message}\n`),
);

// Ctrl+C reaches the whole process group; the server handles it itself. A plain
// SIGTERM to this script is passed on to the server by its PID.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => server.kill('SIGTERM'));
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
