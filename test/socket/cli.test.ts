/** The server as a command-line program: help, the ready line, its log, and binding beyond loopback. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ErrorFrame } from '../../shared/protocol';
import { exitNotePath, type ExitNote, leasePath } from '../../shared/serverLease';
import { asServerMessage, ServerExit, ServerStartError, waitForListening } from '../../shared/serverIpc';
import { processAlive } from '../support/processAlive';
import { SERVER_SCRIPT, ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const run = promisify(execFile);

describe('server command line', function () {
  this.timeout(20_000);

  it('documents every flag in --help', async () => {
    const { stdout } = await run(process.execPath, [SERVER_SCRIPT, '--help']);
    const flags = ['--host', '--port', '--data', '--memory', '--token', '--classic-port', '--max-clients', '--log-format', '--max-frame-bytes', '--max-text-bytes', '--hello-timeout-ms', '--rate-burst', '--rate-per-second', '--max-pending-write-bytes', '--idle-ping-ms', '--idle-close-ms'];
    const hardeningFlags = ['--rotate-token', '--new-connections-per-minute', '--max-rooms', '--new-rooms-per-minute', '--room-idle-ms', '--classic-idle-ms', '--limit-loopback'];
    for (const flag of [...flags, ...hardeningFlags]) {
      assert.ok(stdout.includes(flag), `--help lacks ${flag}`);
    }
  });

  it('refuses an unknown flag with a clear message and a non-zero exit', async () => {
    await assert.rejects(run(process.execPath, [SERVER_SCRIPT, '--no-such-flag']), (error: { code: number; stderr: string }) => {
      assert.notEqual(error.code, 0);
      assert.match(error.stderr, /no-such-flag/);
      return true;
    });
  });

  it('refuses cluster flags without --redis, --memory with --redis, and a URL that is not Redis', async () => {
    const cases: [string[], RegExp][] = [
      [['--node-id', 'a'], /--node-id is for cluster mode: give --redis too/],
      [['--redis', 'redis://127.0.0.1:1', '--memory'], /--memory and --redis cannot be used together/],
      [['--redis', 'http://:hunter2@127.0.0.1:1'], /starts with redis:\/\/ or rediss:\/\//],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(run(process.execPath, [SERVER_SCRIPT, '--port', '0', ...args]), (error: { code: number; stderr: string }) => {
        assert.notEqual(error.code, 0);
        assert.match(error.stderr, message);
        assert.doesNotMatch(error.stderr, /hunter2/, 'the password never shows');
        return true;
      });
    }
  });

  it('prints the real port with --port 0 and logs connections the way the seed did', async () => {
    const server = await ServerProcess.start({ memory: true });
    try {
      assert.match(server.log, new RegExp(`listening on 127\\.0\\.0\\.1:${server.port}`));
      const client = await TestClient.join(server.port, 'logged');
      const localPort = client.socket.localPort;
      client.close();
      const deadline = Date.now() + 3000;
      while (!server.log.includes(`127.0.0.1:${localPort} has disconnected.`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(server.log.includes(`127.0.0.1:${localPort} has connected.`), server.log);
      assert.ok(server.log.includes(`127.0.0.1:${localPort} has disconnected.`), server.log);
    } finally {
      await server.dispose();
    }
  });

  it('logs one JSON object a line with --log-format json', async () => {
    const server = await ServerProcess.start({ memory: true, args: ['--log-format', 'json'] });
    try {
      const ready = JSON.parse(server.log.split('\n').find((line) => line.includes('listening on')) as string);
      assert.equal(ready.port, server.port);
      assert.equal(ready.level, 'info');
    } finally {
      await server.dispose();
    }
  });

  it('exits with a clear message when the port is taken', async () => {
    const holder = await ServerProcess.start({ memory: true });
    try {
      await assert.rejects(run(process.execPath, [SERVER_SCRIPT, '--memory', '--port', String(holder.port)]), (error: { code: number; stderr: string }) => {
        assert.equal(error.code, ServerExit.portBusy);
        assert.match(error.stderr, /EADDRINUSE|in use/);
        return true;
      });
    } finally {
      await holder.dispose();
    }
  });

  it('tells a parent with an IPC channel that it listens, and on which ports', async () => {
    const child = spawn(process.execPath, [SERVER_SCRIPT, '--memory', '--port', '0', '--classic-port', '0'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    try {
      const listening = await waitForListening(child, 10_000);
      assert.equal(listening.host, '127.0.0.1');
      const client = await TestClient.join(listening.port, 'told');
      client.close();
      assert.ok(listening.classicPort !== undefined && listening.classicPort > 0 && listening.classicPort !== listening.port);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('tells a parent with an IPC channel that its port is taken, with the port-busy exit code', async () => {
    const holder = await ServerProcess.start({ memory: true });
    const child = spawn(process.execPath, [SERVER_SCRIPT, '--memory', '--port', String(holder.port)], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    try {
      const said: unknown[] = [];
      child.on('message', (message) => said.push(message));
      const failure = await waitForListening(child, 10_000).then(
        () => assert.fail('a second server listened on a taken port'),
        (error: unknown) => error,
      );
      assert.ok(failure instanceof ServerStartError);
      assert.equal(failure.exitCode, ServerExit.portBusy);
      assert.ok(failure.portBusy);
      const reported = said.map(asServerMessage).find((message) => message?.type === 'startFailed');
      assert.ok(reported && reported.type === 'startFailed', `the server said why before exiting: ${JSON.stringify(said)}`);
      assert.equal(reported.exitCode, ServerExit.portBusy);
      assert.match(reported.reason, /EADDRINUSE|in use/);
    } finally {
      child.kill('SIGKILL');
      await holder.dispose();
    }
  });

  it('tells a parent with an IPC channel why it could not start, with the start-failed exit code', async () => {
    const child = spawn(process.execPath, [SERVER_SCRIPT, '--memory', '--log-format', 'xml'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const failure = await waitForListening(child, 10_000).then(
      () => assert.fail('the server started with a bad flag'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof ServerStartError);
    assert.equal(failure.exitCode, ServerExit.startFailed);
    assert.match(failure.serverReason ?? '', /--log-format/);
  });

  it('binding beyond loopback without a token warns and requires a generated token', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chat-room-lan-'));
    const server = await ServerProcess.start({ dataDir, args: ['--host', '0.0.0.0'] });
    try {
      assert.match(server.log, /requires a token/);
      const tokenFile = join(dataDir, 'token');
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.ok(Buffer.from(token, 'base64url').length >= 32, 'at least 256 bits');
      assert.ok(!server.log.includes(token), 'the token itself is never logged');
      const stranger = await TestClient.connect(server.port);
      stranger.send({ type: 'hello', name: 'stranger' });
      assert.equal((await stranger.nextFrame<ErrorFrame>((f) => f.type === 'error')).code, 'unauthorized');
      stranger.close();
      const invitee = await TestClient.join(server.port, 'invitee', { token });
      invitee.close();
    } finally {
      await server.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('shuts itself down when the process that forked it (the extension host) dies without stopping it', async () => {
    // A stand-in for the extension host: forks the server with an IPC channel, as Start Chat Server does.
    const parentScript = `const c=require('child_process').fork(${JSON.stringify(SERVER_SCRIPT)},['--memory','--port','0'],{stdio:['ignore','pipe','inherit','ipc']});c.on('message',m=>{if(m.type==='listening')console.log(String(c.pid))});setInterval(()=>{},1000)`;
    const parent = spawn(process.execPath, ['-e', parentScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const serverPid = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the forked server did not start')), 10_000);
        parent.stdout!.once('data', (chunk: Buffer) => {
          clearTimeout(timer);
          resolve(Number(String(chunk).trim()));
        });
      });
      assert.ok(processAlive(serverPid));
      parent.kill('SIGKILL');
      const deadline = Date.now() + 10_000;
      while (processAlive(serverPid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(processAlive(serverPid), false, 'the orphaned server is still running');
    } finally {
      parent.kill('SIGKILL');
    }
  });
  it('keeps "asked to stop" as the reason in its exit note when a SIGTERM comes while it is already shutting down', async () => {
    // A window that asks through the lease sends SIGTERM after a grace period; a slow but graceful
    // shutdown must still read as a stop the person asked for, not as a signal from outside.
    const dataDir = mkdtempSync(join(tmpdir(), 'chat-room-lease-'));
    const lease = leasePath(dataDir);
    writeFileSync(lease, JSON.stringify({ keepAliveMs: 60_000 }));
    const server = await ServerProcess.start({ dataDir, args: ['--lease', lease] });
    try {
      // A member that never reads keeps the shutdown waiting for its goodbye (up to a second).
      const sleeper = await TestClient.join(server.port, 'sleeper');
      sleeper.socket.pause();
      writeFileSync(lease, JSON.stringify({ keepAliveMs: 60_000, stop: true }));
      const deadline = Date.now() + 10_000;
      while (!server.log.includes('asked to stop') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(server.log.includes('asked to stop'), server.log);
      assert.equal(await server.stop('SIGTERM'), ServerExit.stopped, 'still a graceful exit');
      const note = JSON.parse(readFileSync(exitNotePath(dataDir), 'utf8')) as ExitNote;
      assert.equal(note.pid, server.pid);
      assert.match(note.reason, /asked to stop/);
      sleeper.close();
    } finally {
      await server.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
