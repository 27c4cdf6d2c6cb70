/**
 * The per-address limit on new connections, on a TLS listener. On the plain
 * listener a stranger's connections past the limit are turned away at once;
 * on the TLS listener the limit was only looked at after a finished
 * handshake, so a stranger who opens TCP connections and never starts a
 * handshake is never counted. Each such connection is held for the handshake
 * time limit (the hello time limit, 10 s), and once the listener holds twice
 * --max-clients of them it drops every new connection, from anyone.
 *
 * Measured by the outside review after issue 8: 700 silent connections from
 * 127.0.0.1 against `--tls --limit-loopback --max-clients 300`, and a client
 * from 127.0.0.2 got ECONNRESET; the same flood against the plain listener left
 * that client welcomed in 20 ms. At the defaults the same takes 20,000 silent
 * connections from one address, well within one host's ephemeral ports.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { encodeFrame } from '../../shared/framing';
import { sleep } from '../support/historyChecks';
import { ServerProcess } from '../support/serverProcess';

const MAX_CLIENTS = 300;
/** More than the listener's own cap (twice --max-clients), all from one address, none of them saying anything. */
const SILENT_CONNECTIONS = 700;

/** Opens a TCP connection from `localAddress` that sends nothing. */
function silentConnection(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => resolve(socket));
  });
}

/** A TLS client from another loopback address: handshake, hello; resolves with the first line or how it ended. */
function tlsHello(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    // tls.connect takes no local address of its own, so it runs over a TCP socket that has one.
    const socket = connectTls({ socket: connect({ host: '127.0.0.1', port, localAddress }), rejectUnauthorized: false, servername: '' });
    let received = '';
    const done = (outcome: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done('no answer within 5 s'), 5000);
    socket.once('secureConnect', () => socket.write(encodeFrame({ type: 'hello', name: 'neighbour' })));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      const newline = received.indexOf('\n');
      if (newline !== -1) done(received.slice(0, newline));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => done(`error ${error.code ?? error.message}`));
    socket.once('close', () => done('closed before any answer'));
  });
}

describe('the per-address connection limit on a TLS listener', function () {
  this.timeout(40_000);
  let server: ServerProcess;
  const held: Socket[] = [];

  before(async () => {
    server = await ServerProcess.start({ args: ['--tls', '--limit-loopback', '--max-clients', String(MAX_CLIENTS)] });
  });
  after(async () => {
    for (const socket of held.splice(0)) socket.destroy();
    await server.dispose();
  });

  it(`turns away a stranger's silent connections before their handshake, so ${SILENT_CONNECTIONS} of them cannot lock out another address`, async () => {
    held.push(...(await Promise.all(Array.from({ length: SILENT_CONNECTIONS }, () => silentConnection(server.port, '127.0.0.1')))));
    // Longer than the plain listener's grace for a refused socket (2 s), shorter than the handshake time limit (10 s).
    await sleep(3000);
    const stillHeld = held.filter((socket) => !socket.destroyed).length;
    const answer = await tlsHello(server.port, '127.0.0.2');
    assert.match(
      answer,
      /"type":"welcome"/,
      `a client from another address was not served while ${stillHeld} silent connections from 127.0.0.1 were held: ${answer}`,
    );
  });
});
