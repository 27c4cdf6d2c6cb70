/**
 * RedisConnection against a real redis-server: a password in the URL, TLS
 * with `rediss://`, and clear errors for a bad URL, a wrong password or a
 * certificate that is not trusted, none of which shows the password.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisConnection, RedisUnavailableError } from '../../server/cluster/redisConnection';
import { RedisRoomLog } from '../../server/cluster/redisRoomLog';
import { GENERATED_CERT_FILE, GENERATED_KEY_FILE, loadTlsIdentity } from '../../server/tls';
import { RedisServer } from '../support/redisServer';

describe('cluster: RedisConnection', function () {
  this.timeout(30_000);
  const connections: RedisConnection[] = [];
  const servers: RedisServer[] = [];
  let certDir: string | undefined;

  function open(url: string, options: Parameters<typeof RedisConnection.open>[1] = {}): RedisConnection {
    const connection = RedisConnection.open(url, options);
    connections.push(connection);
    return connection;
  }

  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.dispose();
    for (const server of servers.splice(0)) await server.dispose();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
    certDir = undefined;
  });

  it('refuses a URL that is not redis:// or rediss://', () => {
    assert.throws(() => open('http://127.0.0.1:6379'), /redis:\/\/ or rediss:\/\//);
    assert.throws(() => open('127.0.0.1:6379'), /redis:\/\//);
    assert.throws(() => open('redis://'), /no host|not a Redis URL/);
    assert.equal(open('redis://:hunter2@127.0.0.1:1').address.display, 'redis://127.0.0.1:1', 'the password never appears in messages');
    assert.equal(open('rediss://[::1]:6380').address.tls, true);
  });

  it('logs in with the password in the URL, and says so clearly when it is wrong', async () => {
    const redis = await RedisServer.start({ config: { requirepass: 'correct-horse' } });
    servers.push(redis);
    const good = open(`redis://:correct-horse@127.0.0.1:${redis.port}`, { name: 'with password' });
    await good.ready();
    assert.equal((await new RedisRoomLog(good).publish('lobby', { type: 'message', text: 'hi' })).seq, 1);

    const wrong = open(`redis://:wrong-horse@127.0.0.1:${redis.port}`, { name: 'wrong password' });
    const error = await wrong.ready(3_000).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof RedisUnavailableError);
    assert.match(error.message, /WRONGPASS|invalid username-password/);
    assert.doesNotMatch(error.message, /horse/);
  });

  it('speaks TLS with rediss://, trusting the certificate it is given and no other', async () => {
    certDir = mkdtempSync(join(tmpdir(), 'chat-room-redis-tls-'));
    await loadTlsIdentity({ dataDir: certDir });
    const certFile = join(certDir, GENERATED_CERT_FILE);
    const redis = await RedisServer.start({ tls: { certFile, keyFile: join(certDir, GENERATED_KEY_FILE) } });
    servers.push(redis);
    assert.match(redis.url, /^rediss:\/\//);

    const trusting = open(redis.url, { name: 'tls', tls: { ca: readFileSync(certFile, 'utf8') } });
    await trusting.ready();
    const log = new RedisRoomLog(trusting);
    assert.equal((await log.publish('lobby', { type: 'message', text: 'over TLS' })).seq, 1);
    assert.equal((await log.readAfter('lobby', 0, 10)).events.length, 1);

    const untrusting = open(redis.url, { name: 'tls without the CA' });
    const error = await untrusting.ready(3_000).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof RedisUnavailableError);
    assert.match(error.message, /self.signed|certificate/i);
  });
});
