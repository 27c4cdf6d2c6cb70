// The server a window starts lives on its own: detached, logging to a file,
// recorded for the next window, stopped through its lease; after a crash one
// click restarts it with the same choices; and a room on a server restarting
// on this machine is back within seconds. Inside a real extension host.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import { ServerHome } from '../../extension/serverHome';
import type { LeftEvent } from '../../shared/protocol';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { processAlive } from '../support/processAlive';
import { SERVER_SCRIPT, ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, sendFromPanel, type StartResult, waitFor } from './chatRoomHelpers';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A process's group id, from /proc (this suite runs on Linux). */
function processGroupOf(pid: number | 'self'): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses; the fields after its closing parenthesis do not.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function startServer(args: { port: number }): Thenable<StartResult> {
  return vscode.commands.executeCommand<StartResult>('chatRoom.startServer', args);
}

function join(port: number, name: string, room: string): Thenable<JoinResult> {
  return vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${port}`, name, room });
}

function runningPid(api: ChatRoomApi): number {
  const state = api.serverState();
  assert.equal(state.kind, 'running', JSON.stringify(state));
  return state.kind === 'running' ? state.pid : 0;
}

describe('Chat Room server lifetime', function () {
  this.timeout(90_000);
  let api: ChatRoomApi;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  afterEach(async () => {
    if (api.serverState().kind !== 'stopped') await vscode.commands.executeCommand('chatRoom.stopServer');
  });

  it('starts the server detached, logging to a file, recorded for the next window, and stops it through its lease', async () => {
    const port = await freeLoopbackPort();
    const started = await startServer({ port });
    assert.equal(started.started, true, JSON.stringify(started));
    const pid = runningPid(api);
    assert.notEqual(processGroupOf(pid), processGroupOf('self'), 'its own process group: a closing window does not take it along');

    const dataDir = api.serverDataDir();
    const record = JSON.parse(fs.readFileSync(path.join(dataDir, 'server.json'), 'utf8')) as { pid: number; port: number; logFile: string; choices: { port: number; lan: boolean } };
    assert.equal(record.pid, pid);
    assert.equal(record.port, port);
    assert.deepEqual({ port: record.choices.port, lan: record.choices.lan }, { port, lan: false });
    assert.equal(fs.readlinkSync(`/proc/${pid}/fd/1`), record.logFile, 'its output goes to the log file, not to a pipe this window owns');
    await waitFor('the listening line in the log', () => fs.readFileSync(record.logFile, 'utf8').includes(`listening on 127.0.0.1:${port}`));
    assert.ok(fs.existsSync(path.join(dataDir, 'lease.json')), 'the window holds a lease');

    assert.equal(await vscode.commands.executeCommand('chatRoom.stopServer'), true);
    await waitFor('the server process to be gone', () => !processAlive(pid), 5_000);
    const note = JSON.parse(fs.readFileSync(path.join(dataDir, 'exit.json'), 'utf8')) as { pid: number; code: number; reason: string };
    assert.deepEqual({ pid: note.pid, code: note.code }, { pid, code: 0 }, 'a graceful exit');
    assert.match(note.reason, /asked to stop/);
    assert.equal(fs.existsSync(path.join(dataDir, 'server.json')), false, 'a stopped server leaves no record to attach to');
    assert.equal(api.serverState().kind, 'stopped');
  });

  it('after a crash, offers Restart (never Join) in the panel, and one click restarts it with the same choices', async () => {
    const port = await freeLoopbackPort();
    assert.equal((await startServer({ port })).started, true);
    assert.equal((await join(port, 'hana', 'crashing')).joined, true);
    await sendFromPanel(api, 'before the crash');

    process.kill(runningPid(api), 'SIGKILL');
    await waitFor('the crash to be noticed', () => api.serverState().kind === 'crashed', 5_000);
    const view = await waitFor('the panel to offer a restart', async () => {
      const probed = await api.probePanel();
      return probed?.actions.includes('Restart Server') ? probed : undefined;
    });
    assert.ok(!view.actions.includes('Join Room'), `someone in the room is not offered Join: ${JSON.stringify(view.actions)}`);
    assert.equal(view.actions[0], 'Restart Server', 'Restart is the main button');

    const clicked = Date.now();
    api.postFromPanel({ type: 'startServer' });
    await waitFor('the server running again', () => api.serverState().kind === 'running', 10_000);
    const state = api.serverState();
    assert.equal(state.kind === 'running' && state.port, port, 'the same port, not asked again');
    await waitFor('the room back', () => api.session()?.connection.kind === 'connected', 5_000);
    console.log(`      restart after a crash: room back ${Date.now() - clicked} ms after the click`);
    await sendFromPanel(api, 'after the restart');
  });

  it('offers to start the server in the panel of a room on this machine whose server is not running', async () => {
    const server = await ServerProcess.start();
    cleanups.push(() => server.dispose());
    const config = vscode.workspace.getConfiguration('chatRoom');
    await config.update('server.port', server.port, vscode.ConfigurationTarget.Global);
    cleanups.push(() => config.update('server.port', undefined, vscode.ConfigurationTarget.Global));
    assert.equal((await join(server.port, 'sven', 'down')).joined, true);
    await server.stop('SIGKILL');
    const view = await waitFor('the panel to offer to start the server', async () => {
      const probed = await api.probePanel();
      return probed?.actions.includes('Start Server') ? probed : undefined;
    });
    assert.ok(!view.actions.includes('Join Room'), JSON.stringify(view.actions));
    api.postFromPanel({ type: 'startServer' });
    await waitFor('this window\'s server running on that port', () => {
      const state = api.serverState();
      return state.kind === 'running' && state.port === server.port;
    }, 10_000);
    await waitFor('the room back', () => api.session()?.connection.kind === 'connected', 5_000);
  });

  it('retries every 2 s or so while a server on this machine is down, and is back within seconds of it listening again', async function () {
    this.timeout(60_000);
    const server = await ServerProcess.start();
    cleanups.push(() => server.dispose());
    assert.equal((await join(server.port, 'rita', 'restarting')).joined, true);
    await server.stop('SIGKILL');

    // The countdown a person sees: how far away each next attempt is when it is scheduled.
    let longestWaitMs = 0;
    let lastAttempt = -1;
    const watchUntil = Date.now() + 12_000;
    while (Date.now() < watchUntil) {
      const connection = api.session()?.connection;
      if (connection?.kind === 'reconnecting' && connection.attempt !== lastAttempt) {
        lastAttempt = connection.attempt;
        longestWaitMs = Math.max(longestWaitMs, connection.retryAt - Date.now());
      }
      await pause(50);
    }
    assert.ok(lastAttempt >= 5, `it kept trying (${lastAttempt} attempts)`);
    assert.ok(longestWaitMs <= 2_100, `the longest wait between attempts was ${longestWaitMs} ms`);

    const restarted = await ServerProcess.start({ dataDir: server.dataDir, args: ['--port', String(server.port)] });
    const listening = Date.now();
    cleanups.push(() => restarted.dispose());
    await waitFor('the room back', () => api.session()?.connection.kind === 'connected', 10_000);
    console.log(`      reconnect after a restart by someone else: ${Date.now() - listening} ms after the server listened`);
  });

  it('tells its own room to reconnect at once when this window starts the server again', async function () {
    this.timeout(60_000);
    const port = await freeLoopbackPort();
    assert.equal((await startServer({ port })).started, true);
    assert.equal((await join(port, 'otto', 'own')).joined, true);
    assert.equal(await vscode.commands.executeCommand('chatRoom.stopServer'), true);
    await waitFor('the room to notice', () => api.session()?.connection.kind === 'reconnecting');
    await pause(9_500);
    assert.equal((await startServer({ port })).started, true);
    const started = Date.now();
    await waitFor('the room back', () => api.session()?.connection.kind === 'connected', 10_000);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 1_000, `back ${tookMs} ms after the server started, not after the next backoff`);
  });

  describe('the lease', () => {
    let dataDir: string;
    beforeEach(() => {
      dataDir = fs.mkdtempSync(path.join(tmpdir(), 'chat-room-lease-'));
      cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    });

    it('keeps the server up while a window renews it, and lets it stop gracefully once none has for the keep-alive time', async function () {
      this.timeout(30_000);
      const home = new ServerHome(dataDir);
      await home.writeLease(3_000);
      const server = await ServerProcess.start({ dataDir, args: ['--lease', home.leaseFile] });
      cleanups.push(() => server.dispose());
      const member = await TestClient.join(server.port, 'member', { room: 'lease' });
      cleanups.push(() => member.close());
      // A window holding it: twice the keep-alive goes by and the server stays.
      for (let renewal = 0; renewal < 6; renewal++) {
        await pause(1_000);
        await home.renewLease(3_000);
      }
      assert.equal(server.exitCode, undefined, 'still running while held');
      // Every window gone: nobody renews.
      const released = Date.now();
      assert.equal(await server.waitForExit(10_000), 0, 'a graceful exit');
      const heldOnFor = Date.now() - released;
      assert.ok(heldOnFor >= 2_000, `it waited for the keep-alive (${heldOnFor} ms)`);
      const note = await home.exitNoteOf(server.pid);
      assert.ok(note, 'it left an exit note');
      assert.equal(note.code, 0);
      assert.match(note.reason, /no window has held the server/);
      const shutdown = member.frames().find((frame) => frame.type === 'error' && frame.code === 'shutdown');
      assert.ok(shutdown, 'the members were told the server is shutting down');
      assert.ok(!member.frames().some((frame) => frame.type === 'left' && (frame as LeftEvent).reason === 'lost'), 'nobody was announced lost');
    });

    it('stops at once when asked through the lease', async () => {
      const home = new ServerHome(dataDir);
      await home.writeLease(60_000);
      const server = await ServerProcess.start({ dataDir, args: ['--lease', home.leaseFile] });
      cleanups.push(() => server.dispose());
      const asked = Date.now();
      await home.askToStop(60_000);
      assert.equal(await server.waitForExit(5_000), 0);
      assert.ok(Date.now() - asked < 2_000, `stopped ${Date.now() - asked} ms after the request`);
      assert.match((await home.exitNoteOf(server.pid))?.reason ?? '', /asked to stop/);
    });

    it('takes only a live process whose command line names its lease for its server (a pid may have been reused)', async () => {
      const home = new ServerHome(dataDir);
      const stranger = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
      cleanups.push(() => stranger.kill('SIGKILL'));
      const impostor = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', SERVER_SCRIPT, '--lease', home.leaseFile], { stdio: 'ignore' });
      cleanups.push(() => impostor.kill('SIGKILL'));
      await pause(300);
      assert.equal(await home.isOurServer(stranger.pid!), false, 'another program that got the pid');
      assert.equal(await home.isOurServer(impostor.pid!), true, 'a process started with our lease');
      stranger.kill('SIGKILL');
      await waitFor('the stranger to be gone', () => !processAlive(stranger.pid!));
      assert.equal(await home.isOurServer(stranger.pid!), false, 'a pid nobody holds');
    });
  });
});
