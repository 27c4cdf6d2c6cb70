// A person's room is never lost by accident: joining again keeps the room
// until the new one has welcomed us, every departure the person chose says
// bye, Leave Room leaves nothing half-done, a seat is resumed with its
// secret, and a name taken while we were away is a clear refusal, not a loop.
// Inside a real extension host, against the real bundled server.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import type { LeftEvent, ServerFrame } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';
import { TestClient } from '../support/testClient';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, messageTexts, sendFromPanel, waitFor } from './chatRoomHelpers';

function join(port: number, name: string, room: string): Thenable<JoinResult> {
  return vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${port}`, name, room });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Departures and arrivals a raw client saw, as "name reason" / "name joined". */
function presence(client: TestClient): string[] {
  return client.frames().flatMap((frame: ServerFrame) => (frame.type === 'left' ? [`${frame.name} ${frame.reason}`] : frame.type === 'joined' ? [`${frame.name} joined`] : []));
}

describe('Chat Room sessions', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  let server: ServerProcess;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  beforeEach(async () => {
    server = await ServerProcess.start();
    cleanups.push(() => server.dispose());
  });

  it('keeps the current room when joining again with a name the server refuses; the others see nothing', async () => {
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'home' });
    const holder = await TestClient.join(server.port, 'bob', { room: 'elsewhere' });
    cleanups.push(() => watcher.close(), () => holder.close());
    assert.equal((await join(server.port, 'alice', 'home')).joined, true);
    await sendFromPanel(api, 'said before trying elsewhere');

    const refused = await join(server.port, 'bob', 'elsewhere');
    assert.equal(refused.joined, false);
    assert.equal(refused.code, 'name_taken');

    const session = api.session();
    assert.ok(session, 'still in a room');
    assert.equal(session.room, 'home');
    assert.equal(session.connection.kind, 'connected');
    assert.ok(messageTexts(api).includes('said before trying elsewhere'), 'the conversation is still there');
    await waitFor('the panel to show the room', async () => /Connected to .* as alice/.test((await api.probePanel())?.connectionText ?? ''));
    await pause(500);
    assert.deepEqual(presence(watcher).filter((line) => line.startsWith('alice ')), ['alice joined'], 'the room saw alice arrive and nothing else');
    await sendFromPanel(api, 'still here');
  });

  it('changes nothing when the person presses Escape at the name asked again after a refusal', async () => {
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'stay' });
    const holder = await TestClient.join(server.port, 'bob', { room: 'elsewhere' });
    cleanups.push(() => watcher.close(), () => holder.close());
    assert.equal((await join(server.port, 'erin', 'stay')).joined, true);
    // The Join flow as a person meets it: every prompt shown, filled in; accepted as it is.
    const flow = vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${server.port}`, name: 'bob', room: 'elsewhere', confirm: true });
    for (let prompt = 0; prompt < 3; prompt++) {
      await pause(400);
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    }
    // The server refuses "bob"; the name is asked again, and the person presses Escape.
    await pause(1_000);
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    const result = await flow;
    assert.deepEqual({ joined: result.joined, reason: result.reason }, { joined: false, reason: 'cancelled' });
    const session = api.session();
    assert.equal(session?.room, 'stay', 'still in the room');
    assert.equal(session?.connection.kind, 'connected');
    await pause(500);
    assert.deepEqual(presence(watcher).filter((line) => line.startsWith('erin ')), ['erin joined'], 'the room saw nothing');
  });

  it('keeps the first room when joining a second (protocol 2): one connection holds both, and the first room sees nobody leave', async () => {
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'first' });
    cleanups.push(() => watcher.close());
    assert.equal((await join(server.port, 'sam', 'first')).joined, true);
    await watcher.nextFrame((frame) => frame.type === 'joined' && frame.name === 'sam');
    assert.equal((await join(server.port, 'sam', 'second')).joined, true);
    assert.equal(api.session()?.room, 'second');
    await pause(1_000);
    assert.deepEqual(presence(watcher).filter((line) => line.startsWith('sam ')), ['sam joined'], 'sam is still in the first room');
    assert.deepEqual(api.conversations().map((conversation) => conversation.title).sort(), ['first', 'second']);
    // What the first room says while the second is shown counts as unread there, and shows once switched back.
    watcher.send({ type: 'say', id: 'w-1', text: 'while you were in second' });
    await waitFor('an unread message in first', () => api.conversations().find((conversation) => conversation.title === 'first')?.unread === 1);
    api.postFromPanel({ type: 'switchConversation', key: api.conversations().find((conversation) => conversation.title === 'first')!.key });
    await waitFor('first shown again', async () => (await api.probePanel())?.messages.some((message) => message.text === 'while you were in second'));
    assert.equal(api.session()?.room, 'first');
  });

  it('moves its read marker sparingly while the chat is in view: not for its own messages, and once for a burst of others\' (a read per message ate the rate budget of the says)', async () => {
    const proxy = await TcpProxy.start(() => server.port);
    proxy.recordClientBytes = true;
    cleanups.push(() => proxy.close());
    const talker = await TestClient.join(server.port, 'talker', { room: 'marks' });
    cleanups.push(() => talker.close());
    assert.equal((await join(proxy.port, 'reader', 'marks')).joined, true);
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await waitFor('the chat in view', () => api.panel()?.visible);
    const readFrames = () => Buffer.concat(proxy.bytesFromClients).toString('utf8').split('\n').filter((line) => line.includes('"type":"read"')).length;
    const before = readFrames();
    for (let index = 0; index < 4; index++) await sendFromPanel(api, `mine ${index}`);
    await pause(1_500);
    assert.equal(readFrames() - before, 0, 'no read marker for our own messages');
    for (let index = 0; index < 6; index++) talker.send({ type: 'say', id: `t-${index}`, text: `theirs ${index}` });
    await waitFor('their messages', () => messageTexts(api).includes('theirs 5'));
    await pause(2_500);
    const reads = readFrames() - before;
    assert.ok(reads >= 1 && reads <= 2, `one or two read markers for a burst of six messages, not ${reads}`);
  });

  describe('with chatRoom.protocol set to 1 (as against a server from before protocol 2)', () => {
    before(() => vscode.workspace.getConfiguration('chatRoom').update('protocol', '1', vscode.ConfigurationTarget.Global));
    after(() => vscode.workspace.getConfiguration('chatRoom').update('protocol', undefined, vscode.ConfigurationTarget.Global));

    it('leaves the old room on purpose when switching: the others there see "left", not "lost connection"', async () => {
      const watcher = await TestClient.join(server.port, 'watcher', { room: 'first' });
      cleanups.push(() => watcher.close());
      assert.equal((await join(server.port, 'sam', 'first')).joined, true);
      assert.equal((await join(server.port, 'sam', 'second')).joined, true);
      assert.equal(api.session()?.room, 'second');
      const left = await watcher.nextFrame<LeftEvent>((frame) => frame.type === 'left' && frame.name === 'sam', 5_000);
      assert.equal(left.reason, 'quit');
      assert.deepEqual(api.conversations().map((conversation) => conversation.title), ['second'], 'one room at a time on protocol 1');
    });

    it('refuses, clearly and once, a name someone else took while it was away, instead of retrying forever', async () => {
      const proxy = await TcpProxy.start(() => server.port);
      cleanups.push(() => proxy.close());
      assert.equal((await join(proxy.port, 'ida', 'taken-while-away')).joined, true);
      proxy.refusing = true;
      proxy.cutAll();
      await waitFor('the drop to be noticed', () => api.session()?.connection.kind === 'reconnecting');
      const usurper = await TestClient.join(server.port, 'ida', { room: 'taken-while-away' });
      cleanups.push(() => usurper.close());
      const accepted = proxy.accepted;
      proxy.refusing = false;
      const closed = await waitFor('the session to stop trying', () => (api.session()?.connection.kind === 'disconnected' ? api.session()!.connection : undefined), 15_000);
      assert.match(closed.kind === 'disconnected' ? closed.reason : '', /already|taken|ida/i);
      await pause(3_000);
      assert.equal(proxy.accepted - accepted, 1, 'one attempt, then no more');
      assert.equal(usurper.closed, false, 'whoever holds the name keeps it');
      const view = (await api.probePanel())!;
      assert.ok(view.actions.includes('Join Room'), `the panel offers to join again: ${JSON.stringify(view.actions)}`);
    });
  });

  it('changes nothing when joining the room it is in, under the name it has', async () => {
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'same' });
    cleanups.push(() => watcher.close());
    assert.equal((await join(server.port, 'ruth', 'same')).joined, true);
    await watcher.nextFrame((frame) => frame.type === 'joined' && frame.name === 'ruth');
    const again = await join(server.port, 'ruth', 'same');
    assert.equal(again.joined, true);
    await pause(1_000);
    assert.deepEqual(presence(watcher).filter((line) => line.startsWith('ruth ')), ['ruth joined'], 'no leave and no second arrival');
    assert.equal(api.session()?.connection.kind, 'connected');
  });

  it('after Leave Room the panel says so, offers Join, lists nobody, and its message box takes nothing', async () => {
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'leaving' });
    cleanups.push(() => watcher.close());
    assert.equal((await join(server.port, 'lena', 'leaving')).joined, true);
    await sendFromPanel(api, 'goodbye soon');
    await waitFor('two members in the panel', async () => (await api.probePanel())?.memberCountLabel === 'Members (2)');

    assert.equal(await vscode.commands.executeCommand('chatRoom.leave'), true);
    const left = await watcher.nextFrame<LeftEvent>((frame) => frame.type === 'left' && frame.name === 'lena');
    assert.equal(left.reason, 'quit');
    const view = await waitFor('the panel to say lena left', async () => {
      const probed = await api.probePanel();
      return probed && /You left leaving/.test(probed.connectionText) ? probed : undefined;
    });
    assert.deepEqual(view.members, [], 'no stale member list');
    assert.equal(view.memberCountLabel, 'Members (0)');
    assert.deepEqual(view.actions, ['Join Room']);
    assert.equal(view.composerEnabled, false, 'the message box takes no input');
    assert.ok(view.messages.some((message) => message.text === 'goodbye soon'), 'the conversation stays readable');

    // Whatever reaches the host now is refused, and nothing waits for the next join.
    api.postFromPanel({ type: 'send', text: 'typed after leaving', requestId: 1 });
    await pause(300);
    assert.equal(api.session(), undefined);
    assert.deepEqual((await api.probePanel())?.pendingTexts, []);
    assert.equal((await join(server.port, 'lena', 'leaving')).joined, true);
    await pause(1_000);
    const stored = watcher.frames().flatMap((frame) => (frame.type === 'message' ? [frame.text] : []));
    assert.ok(!stored.includes('typed after leaving'), `nothing typed after leaving went out: ${JSON.stringify(stored)}`);
  });

  it('does not rejoin, in a panel restored after a reload, a room the person left', async () => {
    assert.equal((await join(server.port, 'nora', 'left-for-good')).joined, true);
    await vscode.commands.executeCommand('chatRoom.leave');
    const panel = vscode.window.createWebviewPanel('chatRoom.panel', 'Chat', vscode.ViewColumn.One, { enableScripts: true });
    await api.panelSerializer.deserializeWebviewPanel(panel, {});
    await waitFor('the restored panel', async () => (await api.probePanel())?.actions.includes('Join Room'));
    await pause(1_000);
    assert.equal(api.session(), undefined, 'still out of the room');
  });

  it('keeps its name while away (protocol 2): nobody can take it, and it is back in its rooms once the server is reachable', async () => {
    const proxy = await TcpProxy.start(() => server.port);
    cleanups.push(() => proxy.close());
    assert.equal((await join(proxy.port, 'ida', 'kept-while-away')).joined, true);
    proxy.refusing = true;
    proxy.cutAll();
    await waitFor('the drop to be noticed', () => api.session()?.connection.kind === 'reconnecting');
    const usurper = await TestClient.connect(server.port);
    cleanups.push(() => usurper.close());
    usurper.send({ type: 'hello', name: 'ida', room: 'kept-while-away' });
    const refusal = await usurper.nextFrame((frame) => frame.type === 'error');
    assert.equal(refusal.type === 'error' ? refusal.code : '', 'name_taken', 'the name is kept by its identity');
    proxy.refusing = false;
    await waitFor('back in the room', () => api.session()?.connection.kind === 'connected', 15_000);
    await sendFromPanel(api, 'still ida');
  });

  it('takes its seat back with the secret from its welcome after a drop the server has not noticed: nobody sees it leave', async () => {
    const proxy = await TcpProxy.start(() => server.port);
    cleanups.push(() => proxy.close());
    const watcher = await TestClient.join(server.port, 'watcher', { room: 'resume' });
    cleanups.push(() => watcher.close());
    assert.equal((await join(proxy.port, 'rosa', 'resume')).joined, true);
    await watcher.nextFrame((frame) => frame.type === 'joined' && frame.name === 'rosa');
    // Only the client's side of the link breaks; the server still holds the old connection.
    for (const pair of [...proxy.connections]) {
      pair.client.removeAllListeners('close');
      pair.client.resetAndDestroy();
    }
    await waitFor('the client to reconnect', () => api.session()?.connection.kind === 'connected' && proxy.accepted === 2, 15_000);
    await sendFromPanel(api, 'back in my seat');
    await watcher.nextFrame((frame) => frame.type === 'message' && frame.text === 'back in my seat');
    assert.deepEqual(presence(watcher).filter((line) => line.startsWith('rosa ')), ['rosa joined'], 'no leave, no second arrival');
  });

  it('counts every member of a room bigger than the welcome lists', async function () {
    this.timeout(120_000);
    const crowd: TestClient[] = [];
    cleanups.push(() => crowd.forEach((client) => client.close()));
    for (let index = 0; index < 205; index++) crowd.push(await TestClient.join(server.port, `member-${index}`, { room: 'crowd' }));
    assert.equal((await join(server.port, 'counter', 'crowd')).joined, true);
    await waitFor('the whole room counted', async () => (await api.probePanel())?.memberCountLabel === 'Members (206)', 15_000);
    crowd.pop()!.close();
    await waitFor('a departure counted', async () => (await api.probePanel())?.memberCountLabel === 'Members (205)', 15_000);
  });

  it('trusts a hostile server\'s welcome only as far as it is plausible: an oversized seat secret is not sent back, an impossible member count is not shown', async () => {
    const hellos: string[] = [];
    const sockets = new Set<net.Socket>();
    const hostile = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let buffered = '';
      socket.on('data', (chunk) => {
        buffered += chunk.toString('utf8');
        if (!buffered.includes('\n')) return;
        hellos.push(buffered.slice(0, buffered.indexOf('\n')));
        const welcome = { type: 'welcome', you: 'vera', room: 'lobby', members: ['vera', 'mallory'], memberCount: 1e300, resume: 'r'.repeat(60_000), seq: 0, firstSeq: 1, protocol: 1 };
        socket.write(JSON.stringify(welcome) + '\n');
        // Then drop the connection, so the client comes back with a hello.
        if (hellos.length === 1) setTimeout(() => socket.destroy(), 200);
      });
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      hostile.close(resolve);
    }));
    const port = (hostile.address() as net.AddressInfo).port;
    assert.equal((await join(port, 'vera', 'lobby')).joined, true);
    await waitFor('the client back after the drop', () => hellos.length >= 2, 10_000);
    const again = JSON.parse(hellos[1]) as { resume?: string };
    assert.equal(again.resume, undefined, 'a 60,000-character "secret" is not sent back');
    assert.ok(hellos[1].length < 1_000, `the hello stays small (${hellos[1].length} bytes)`);
    await waitFor('the member count as listed', async () => (await api.probePanel())?.memberCountLabel === 'Members (2)');
  });
});
