// The Join flow against guarded servers, inside the real extension host:
// tokens, TLS with a pinned certificate fingerprint, trust on first use, and
// "Start Chat Server" opened to the LAN. Servers bind loopback (or 0.0.0.0,
// reached through 127.0.0.1 only).
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, sendFromPanel, type StartResult, waitFor } from './chatRoomHelpers';

const TOKEN = 'a token only invitees know';
const FINGERPRINT_LINE = /TLS certificate fingerprint \(SHA-256\): ([0-9A-F:]+)/;

function join(args: { address: string; name: string; room?: string; token?: string; fingerprint?: string }): Thenable<JoinResult> {
  return vscode.commands.executeCommand<JoinResult>('chatRoom.join', { room: 'guarded', ...args });
}

function printedFingerprint(server: ServerProcess): string {
  const match = FINGERPRINT_LINE.exec(server.log);
  assert.ok(match, `the server printed no fingerprint:\n${server.log}`);
  return match[1];
}

/** The same fingerprint with its first byte changed: what an impostor's certificate would show. */
function otherFingerprint(fingerprint: string): string {
  return (fingerprint.startsWith('00') ? 'FF' : '00') + fingerprint.slice(2);
}

describe('Join flow access control', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  async function start(args: string[]): Promise<ServerProcess> {
    const server = await ServerProcess.start({ args });
    cleanups.push(() => server.dispose());
    return server;
  }

  it('joins a token server with the right token, and is refused with a wrong one', async () => {
    const server = await start(['--token', TOKEN]);
    const address = `127.0.0.1:${server.port}`;
    const refused = await join({ address, name: 'mallory', token: 'not the token' });
    assert.equal(refused.joined, false);
    assert.equal(refused.code, 'unauthorized');
    assert.equal(api.session(), undefined, 'a refused join leaves no session behind');

    const joined = await join({ address, name: 'alice', token: TOKEN });
    assert.equal(joined.joined, true, JSON.stringify(joined));
    await sendFromPanel(api, 'in with the token');
    await vscode.commands.executeCommand('chatRoom.leave');

    // The token was kept in SecretStorage for this address: rejoining does not need it again.
    const again = await join({ address, name: 'alice' });
    assert.equal(again.joined, true, JSON.stringify(again));
  });

  it('refuses a TLS server whose certificate does not match the pinned fingerprint, with a clear error', async () => {
    const server = await start(['--tls', '--token', TOKEN]);
    const result = await join({ address: `127.0.0.1:${server.port}`, name: 'wary', token: TOKEN, fingerprint: otherFingerprint(printedFingerprint(server)) });
    assert.equal(result.joined, false);
    assert.equal(result.code, 'fingerprint_mismatch');
    assert.match(result.reason ?? '', /the server's certificate fingerprint does not match the invite/i);
    assert.equal(api.session(), undefined);
    assert.doesNotMatch(server.log, /joined guarded as wary/, 'the hello (and the token) never reached the server');
  });

  it('joins a TLS server with the right pin, chats over it, and remembers the pin for the address', async () => {
    const server = await start(['--tls', '--token', TOKEN]);
    const fingerprint = printedFingerprint(server);
    const address = `127.0.0.1:${server.port}`;
    const joined = await join({ address, name: 'bob', token: TOKEN, fingerprint: fingerprint.toLowerCase() });
    assert.equal(joined.joined, true, JSON.stringify(joined));
    assert.equal(api.session()?.connection.kind, 'connected');
    await sendFromPanel(api, 'sealed and delivered');

    const invite = new URL((await vscode.commands.executeCommand<string>('chatRoom.copyInvite')) ?? '');
    assert.equal(invite.searchParams.get('fp'), fingerprint, 'the invite carries the fingerprint');
    assert.equal(invite.searchParams.get('token'), TOKEN, 'the link itself may carry the token');
    await vscode.commands.executeCommand('chatRoom.leave');

    const rejoined = await join({ address, name: 'bob' });
    assert.equal(rejoined.joined, true, `the remembered pin and token are used: ${JSON.stringify(rejoined)}`);
  });

  it('offers an unpinned TLS server for trust on first use, showing its fingerprint', async () => {
    const server = await start(['--tls']);
    const fingerprint = printedFingerprint(server);
    const result = await join({ address: `127.0.0.1:${server.port}`, name: 'newcomer' });
    assert.equal(result.joined, false, 'without a person to ask, an unknown certificate is not trusted');
    assert.equal(result.code, 'unpinned_certificate');
    assert.ok(result.reason?.includes(fingerprint), `the fingerprint is shown: ${result.reason}`);
  });

  it('never sends a token in the clear to a TLS server it has no pin for', async () => {
    const server = await start(['--tls', '--token', TOKEN]);
    // Everything the client sends passes through this proxy, which keeps a copy.
    const proxy = await TcpProxy.start(() => server.port);
    proxy.recordClientBytes = true;
    cleanups.push(() => proxy.close());
    const result = await join({ address: `127.0.0.1:${proxy.port}`, name: 'careful', token: TOKEN });
    assert.equal(result.joined, false);
    assert.equal(result.code, 'unpinned_certificate', 'the server was found to speak TLS before any hello');
    assert.ok(proxy.accepted >= 1, 'the client did reach the server');
    const sentInTheClear = Buffer.concat(proxy.bytesFromClients).toString('latin1');
    assert.ok(!sentInTheClear.includes(TOKEN), 'the token crossed the network unencrypted');
    assert.ok(!sentInTheClear.includes('"hello"'), 'a hello crossed the network unencrypted');
  });

  it('"Start Chat Server" opened to the LAN requires a token and serves TLS, and the invite carries both', async () => {
    const port = await freeLoopbackPort();
    const started = await vscode.commands.executeCommand<StartResult>('chatRoom.startServer', { port, lan: true, join: true });
    cleanups.push(() => vscode.commands.executeCommand('chatRoom.stopServer'));
    assert.equal(started.started, true, JSON.stringify(started));
    assert.equal(started.lan, true);
    assert.match(started.fingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const state = api.serverState();
    assert.ok(state.kind === 'running' && state.host === '0.0.0.0' && state.token, 'bound beyond loopback, with a token');
    await waitFor('the host to be in the room', () => api.session()?.connection.kind === 'connected');
    await sendFromPanel(api, 'hosting over TLS');

    const invite = new URL((await vscode.commands.executeCommand<string>('chatRoom.copyInvite')) ?? '');
    assert.equal(invite.searchParams.get('fp'), started.fingerprint);
    const token = invite.searchParams.get('token');
    assert.ok(token && state.kind === 'running' && token === state.token);
    await vscode.commands.executeCommand('chatRoom.leave');

    // A teammate with the invite (here through loopback): its token and pin let them in.
    const invited = await join({ address: `127.0.0.1:${port}`, name: 'teammate', token, fingerprint: invite.searchParams.get('fp') as string });
    assert.equal(invited.joined, true, JSON.stringify(invited));
  });
});
