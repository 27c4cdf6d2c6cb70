// Access control and encryption over real sockets, against the built server:
// tokens (wrong, wrong length, lockout, LAN bind), TLS with a self-signed
// certificate, and the extension client's certificate pin. Everything is
// reached through 127.0.0.1, even when the server binds 0.0.0.0.
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatClient, type FirstOutcome } from '../../extension/client/chatClient';
import { fingerprintsMatch, normalizeFingerprint } from '../../extension/certificatePin';
import { SERVER_TOKEN_ENV } from '../../shared/serverIpc';
import type { ErrorFrame, WelcomeFrame } from '../../shared/protocol';
import { memoryOutboxes } from '../support/memoryStore';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const TOKEN = 'correct horse battery staple';
const FINGERPRINT_LINE = /TLS certificate fingerprint \(SHA-256\): ([0-9A-F:]+)/;

function printedFingerprint(server: ServerProcess): string {
  const match = FINGERPRINT_LINE.exec(server.log);
  assert.ok(match, `the server printed no fingerprint:\n${server.log}`);
  return match[1];
}

/** Sends a hello and expects the given error, then the server closing the connection. */
async function expectRefusedHello(port: number, token: string | undefined, code: 'unauthorized' | 'locked_out'): Promise<ErrorFrame> {
  const client = await TestClient.connect(port);
  try {
    client.send({ type: 'hello', name: 'guesser', ...(token !== undefined ? { token } : {}) });
    const error = await client.nextFrame<ErrorFrame>((frame) => frame.type === 'error' || frame.type === 'welcome');
    assert.equal(error.type, 'error', 'the hello must not be welcomed');
    assert.equal(error.code, code);
    await client.waitForClose();
    return error;
  } finally {
    client.close();
  }
}

describe('access control', function () {
  this.timeout(30_000);
  const cleanups: (() => unknown)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(args: string[], dataDir?: string): Promise<ServerProcess> {
    // Without a folder of its own, the server gets a fresh temporary one that it removes on dispose.
    const server = await ServerProcess.start({ args, ...(dataDir ? { dataDir } : {}) });
    cleanups.push(() => server.dispose());
    return server;
  }

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'chat-room-access-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  describe('tokens', () => {
    it('refuses a wrong token with unauthorized and closes the connection', async () => {
      const server = await start(['--token', TOKEN]);
      const error = await expectRefusedHello(server.port, TOKEN.replace('staple', 'stapler'), 'unauthorized');
      assert.doesNotMatch(error.message, new RegExp(TOKEN), 'the refusal never echoes the token');
      await expectRefusedHello(server.port, undefined, 'unauthorized');
      const member = await TestClient.join(server.port, 'member', { token: TOKEN });
      member.close();
    });

    it('refuses tokens of the wrong length (empty, short, very long) without throwing', async () => {
      const server = await start(['--token', TOKEN]);
      for (const token of ['', 'x', TOKEN.slice(0, -1), TOKEN + 'x', 'y'.repeat(5000)]) await expectRefusedHello(server.port, token, 'unauthorized');
      // Still up, and still letting the right token in.
      const member = await TestClient.join(server.port, 'survivor', { token: TOKEN });
      assert.equal(server.exitCode, undefined);
      member.close();
    });

    it('locks an address out for a minute after 3 failed hellos, even with the right token', async () => {
      // Loopback is normally exempt; the test-only flag lets a loopback-only test see the rule.
      const server = await start(['--token', TOKEN, '--lockout-loopback']);
      for (let failure = 0; failure < 3; failure++) await expectRefusedHello(server.port, `wrong ${failure}`, 'unauthorized');
      const error = await expectRefusedHello(server.port, TOKEN, 'locked_out');
      assert.match(error.message, /too many failed attempts/i);
    });

    it('never locks out loopback without the test-only flag', async () => {
      const server = await start(['--token', TOKEN]);
      for (let failure = 0; failure < 4; failure++) await expectRefusedHello(server.port, `wrong ${failure}`, 'unauthorized');
      const member = await TestClient.join(server.port, 'local', { token: TOKEN });
      member.close();
    });

    it(`takes the token from ${SERVER_TOKEN_ENV}, as the extension hands it over (never in argv)`, async () => {
      const server = await ServerProcess.start({ memory: true, env: { [SERVER_TOKEN_ENV]: `-${TOKEN}` } });
      cleanups.push(() => server.dispose());
      await expectRefusedHello(server.port, TOKEN, 'unauthorized');
      const member = await TestClient.join(server.port, 'handed-over', { token: `-${TOKEN}` });
      member.close();
    });

    it('binding 0.0.0.0 without a token generates one (file mode 0600) and requires it', async () => {
      const dataDir = tempDir();
      const server = await start(['--host', '0.0.0.0'], dataDir);
      const tokenFile = join(dataDir, 'token');
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.ok(Buffer.from(token, 'base64url').length >= 32, 'at least 256 bits');
      assert.ok(!server.log.includes(token), 'the token never appears in the log');
      await expectRefusedHello(server.port, undefined, 'unauthorized');
      const member = await TestClient.join(server.port, 'invitee', { token });
      member.close();
    });
  });

  describe('token rules', () => {
    /** Expects the server to refuse to start; one that starts anyway is stopped before the test fails. */
    async function expectStartRefused(options: Parameters<typeof ServerProcess.start>[0], why: RegExp): Promise<void> {
      const started = ServerProcess.start(options);
      started.then((server) => cleanups.push(() => server.dispose()), () => undefined);
      await assert.rejects(started, why);
    }

    it('refuses to start with an empty --token, on a network bind and on loopback', async () => {
      for (const args of [['--host', '0.0.0.0', '--token', ''], ['--token', '']]) {
        await expectStartRefused({ dataDir: tempDir(), args }, /token must be 1 to 512 characters/);
      }
    });

    it('refuses to start with a token longer than TOKEN_MAX_CHARS, and never cuts a presented token down to match', async () => {
      await expectStartRefused({ memory: true, args: ['--token', 't'.repeat(513)] }, /token must be 1 to 512 characters/);
      const longest = 'k'.repeat(512);
      const server = await start(['--token', longest]);
      await expectRefusedHello(server.port, longest + 'x', 'unauthorized');
      await expectRefusedHello(server.port, longest + 'k'.repeat(100), 'unauthorized');
      const member = await TestClient.join(server.port, 'exact', { token: longest });
      member.close();
    });

    it('keeps a generated token across restarts until --rotate-token replaces it', async () => {
      const dataDir = tempDir();
      const first = await start(['--host', '0.0.0.0'], dataDir);
      const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
      await first.stop();
      const second = await start(['--host', '0.0.0.0'], dataDir);
      assert.equal(readFileSync(join(dataDir, 'token'), 'utf8').trim(), token, 'the invite stays valid');
      assert.match(second.log, /uses the one kept in/);
      (await TestClient.join(second.port, 'invitee', { token })).close();
      await second.stop();
      const rotated = await start(['--host', '0.0.0.0', '--rotate-token'], dataDir);
      const fresh = readFileSync(join(dataDir, 'token'), 'utf8').trim();
      assert.notEqual(fresh, token);
      assert.equal(statSync(join(dataDir, 'token')).mode & 0o777, 0o600);
      await expectRefusedHello(rotated.port, token, 'unauthorized');
      (await TestClient.join(rotated.port, 'invitee', { token: fresh })).close();
    });
  });

  describe('TLS', () => {
    it('serves TLS with a self-signed certificate whose printed fingerprint matches: hello, welcome, say, ack', async () => {
      const dataDir = tempDir();
      const server = await start(['--tls', '--token', TOKEN], dataDir);
      const printed = printedFingerprint(server);
      assert.equal(normalizeFingerprint(printed), printed, 'printed in the canonical AB:CD:… form');

      const client = await TestClient.connectTls(server.port);
      cleanups.push(() => client.close());
      assert.ok(client.peerFingerprint && fingerprintsMatch(printed, client.peerFingerprint), 'the certificate is the one whose fingerprint was printed');
      client.send({ type: 'hello', name: 'secure', room: 'vault', token: TOKEN });
      const welcome = await client.nextFrame<WelcomeFrame>((frame) => frame.type === 'welcome');
      assert.equal(welcome.room, 'vault');
      client.send({ type: 'say', id: 'm1', text: 'over TLS' });
      const ack = await client.nextFrame((frame) => frame.type === 'ack');
      assert.equal(ack.type === 'ack' && ack.id, 'm1');
      const echoed = client.frames().find((frame) => frame.type === 'message');
      assert.equal(echoed?.type === 'message' && echoed.text, 'over TLS', 'the sender receives its own message too');
    });

    it('refuses plain TCP on the TLS port', async () => {
      const server = await start(['--tls'], tempDir());
      const plain = await TestClient.connect(server.port);
      cleanups.push(() => plain.close());
      plain.send({ type: 'hello', name: 'plain' });
      await plain.waitForClose();
      assert.ok(!plain.lines.some((line) => line.includes('welcome')));
    });

    it('makes the self-signed certificate once and reuses it after a restart', async () => {
      const dataDir = tempDir();
      const first = await start(['--tls'], dataDir);
      const fingerprint = printedFingerprint(first);
      assert.match(first.log, /generated a self-signed TLS certificate/);
      assert.equal(statSync(join(dataDir, 'tls-key.pem')).mode & 0o777, 0o600, 'the private key is for the owner only');
      await first.stop();

      const second = await start(['--tls'], dataDir);
      assert.equal(printedFingerprint(second), fingerprint);
      assert.doesNotMatch(second.log, /generated a self-signed TLS certificate/);
      await second.stop();

      // The same pair given as files serves the same certificate.
      const third = await start(['--tls-cert', join(dataDir, 'tls-cert.pem'), '--tls-key', join(dataDir, 'tls-key.pem')], tempDir());
      assert.equal(printedFingerprint(third), fingerprint);
    });

    it('refuses --tls with --memory and no certificate, with a clear error', async () => {
      await assert.rejects(ServerProcess.start({ memory: true, args: ['--tls'] }), /cannot be used with --memory/);
    });
  });

  describe("the extension's client pins the certificate", () => {
    function client(port: number, fingerprint: string, name: string): ChatClient {
      const chat = new ChatClient({ host: '127.0.0.1', port, name, room: 'lobby', clientId: `client-${name}`, token: TOKEN, fingerprint, outboxes: memoryOutboxes(), initialBackoffMs: 50 });
      cleanups.push(() => chat.dispose());
      return chat;
    }

    it('joins when the pin matches', async () => {
      const server = await start(['--tls', '--token', TOKEN], tempDir());
      const chat = client(server.port, printedFingerprint(server).toLowerCase(), 'pinned');
      chat.connect();
      const outcome: FirstOutcome = await chat.firstOutcome();
      assert.equal(outcome.kind, 'welcome', JSON.stringify(outcome));
    });

    it('refuses a server whose certificate does not match, before sending the hello or token', async () => {
      const server = await start(['--tls', '--token', TOKEN], tempDir());
      const printed = printedFingerprint(server);
      const wrong = (printed.startsWith('00') ? 'FF' : '00') + printed.slice(2);
      const chat = client(server.port, wrong, 'impostor-check');
      chat.connect();
      const outcome = await chat.firstOutcome();
      assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
      assert.equal(outcome.kind === 'refused' && outcome.code, 'fingerprint_mismatch');
      assert.match(outcome.kind === 'refused' ? outcome.message : '', /the server's certificate fingerprint does not match the invite/i);
      assert.equal(chat.state.kind, 'closed', 'a mismatch is final: no reconnecting to the impostor');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.doesNotMatch(server.log, /impostor-check/, 'the server never received the hello');
    });
  });
});
