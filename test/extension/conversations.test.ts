// What protocol 2 brings to the chat, driven as the webview would drive it
// and read back from the webview itself (its probe), with a second person on
// a raw v2 connection to the real bundled server: replies, edits, deletions,
// reactions, typing, search, paging older history, direct messages and the
// conversation list with its unread counts, and the slash commands' host side.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import type { PanelView } from '../../shared/webviewMessages';
import { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';
import { TestClient } from '../support/testClient';
import { V2Client } from '../support/v2Client';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, sendFromPanel, waitFor } from './chatRoomHelpers';

function join(port: number, name: string, room: string): Thenable<JoinResult> {
  return vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${port}`, name, room });
}

/** Polls the webview until `check` holds of what it shows. */
async function panelShows(api: ChatRoomApi, what: string, check: (view: PanelView) => boolean, timeoutMs = 10_000): Promise<PanelView> {
  return waitFor(what, async () => {
    const view = await api.probePanel();
    return view && check(view) ? view : undefined;
  }, timeoutMs);
}

function seqOf(api: ChatRoomApi, text: string): number {
  const entry = api.session()?.entries.find((candidate) => candidate.kind === 'message' && candidate.text === text);
  assert.ok(entry, `"${text}" is held`);
  return entry.seq;
}

describe('Chat Room conversations (protocol 2)', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  let server: ServerProcess;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  beforeEach(async () => {
    server = await ServerProcess.start({ args: ['--rate-burst', '200'] });
    cleanups.push(() => server.dispose());
  });

  async function person(name: string, room: string): Promise<V2Client> {
    const client = await V2Client.hello(server.port, name);
    cleanups.push(() => client.socket.destroy());
    await client.join(room);
    return client;
  }

  it('replies quote the original; our edits show "(edited)" and deletions remove the message, for us and for the other person', async () => {
    const bob = await person('bob', 'features');
    const originalSeq = await bob.say('features', 'the original question');
    assert.equal((await join(server.port, 'alice', 'features')).joined, true);
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await panelShows(api, 'bob\'s message', (view) => view.messages.some((message) => message.text === 'the original question'));

    api.postFromPanel({ type: 'send', text: 'my answer', requestId: 1, replyTo: originalSeq });
    const reply = await bob.next((frame) => frame.type === 'message' && frame.text === 'my answer');
    assert.equal(reply.replyTo, originalSeq);
    assert.equal(reply.replyToFrom, 'bob');
    const replySeq = reply.seq as number;
    let view = await panelShows(api, 'the reply with its quote', (shown) => shown.extras.some((extra) => extra.seq === replySeq && extra.replyQuote.includes('bob')));
    assert.match(view.extras.find((extra) => extra.seq === replySeq)!.replyQuote, /the original question/);

    api.postFromPanel({ type: 'edit', seq: replySeq, text: 'my better answer' });
    const edited = await bob.next((frame) => frame.type === 'edited');
    assert.deepEqual({ target: edited.target, text: edited.text }, { target: replySeq, text: 'my better answer' });
    view = await panelShows(api, 'the edit', (shown) => shown.messages.some((message) => message.text === 'my better answer'));
    assert.equal(view.extras.find((extra) => extra.seq === replySeq)?.edited, true, '"(edited)" shows');
    assert.ok(!view.messages.some((message) => message.text === 'my answer'), 'the old text is gone');

    // Someone else's message cannot be edited: the server's refusal is shown beside the box.
    api.postFromPanel({ type: 'edit', seq: originalSeq, text: 'hijacked' });
    await panelShows(api, 'the refusal', (shown) => shown.composerNotice.length > 0);

    await sendFromPanel(api, 'a slip of the keyboard');
    const slipSeq = seqOf(api, 'a slip of the keyboard');
    api.postFromPanel({ type: 'delete', seq: slipSeq });
    const deleted = await bob.next((frame) => frame.type === 'deleted');
    assert.equal(deleted.target, slipSeq);
    await panelShows(api, 'the deleted message gone', (shown) => !shown.messages.some((message) => message.text === 'a slip of the keyboard'));
    assert.ok(!api.session()!.entries.some((entry) => entry.seq === slipSeq), 'the host no longer holds it');
  });

  it('reactions show as chips with counts; a click on ours takes it back', async () => {
    const bob = await person('bob', 'reacting');
    const seq = await bob.say('reacting', 'ship it?');
    assert.equal((await join(server.port, 'alice', 'reacting')).joined, true);
    await panelShows(api, 'the message', (view) => view.messages.some((message) => message.text === 'ship it?'));
    api.postFromPanel({ type: 'react', seq, emoji: '👍', add: true });
    await bob.next((frame) => frame.type === 'reactions' && frame.target === seq);
    await panelShows(api, 'one 👍', (view) => view.extras.find((extra) => extra.seq === seq)?.reactions.join() === '👍 1');
    await bob.ok({ type: 'react', id: bob.nextId(), room: 'reacting', target: seq, emoji: '👍', add: true });
    await bob.ok({ type: 'react', id: bob.nextId(), room: 'reacting', target: seq, emoji: '🎉', add: true });
    await panelShows(api, 'two 👍 and a 🎉', (view) => view.extras.find((extra) => extra.seq === seq)?.reactions.join() === '👍 2,🎉 1');
    api.postFromPanel({ type: 'react', seq, emoji: '👍', add: false });
    await panelShows(api, 'our 👍 taken back', (view) => view.extras.find((extra) => extra.seq === seq)?.reactions.join() === '👍 1,🎉 1');
  });

  it('shows who is typing, and stops once their message arrives', async () => {
    const bob = await person('bob', 'typing');
    assert.equal((await join(server.port, 'alice', 'typing')).joined, true);
    await panelShows(api, 'the room', (view) => /Connected/.test(view.connectionText));
    bob.send({ type: 'typing', room: 'typing' });
    await panelShows(api, '"bob is typing…"', (view) => view.typingText === 'bob is typing…');
    await bob.say('typing', 'done typing');
    await panelShows(api, 'the typing line cleared', (view) => view.typingText === '' && view.messages.some((message) => message.text === 'done typing'));
    // Ours reaches the others: the webview's typing signal goes out as a v2 `typing`.
    api.postFromPanel({ type: 'typing' });
    const typing = await bob.next((frame) => frame.type === 'typing');
    assert.equal(typing.name, 'alice');
  });

  it('searches the room on the server and jumps to a hit that was not loaded, paging older history in', async function () {
    this.timeout(90_000);
    await vscode.workspace.getConfiguration('chatRoom').update('historyLength', 20, vscode.ConfigurationTarget.Global);
    cleanups.push(() => vscode.workspace.getConfiguration('chatRoom').update('historyLength', undefined, vscode.ConfigurationTarget.Global));
    const bob = await person('bob', 'archive');
    await bob.say('archive', 'the needle is here');
    for (let index = 0; index < 40; index++) await bob.say('archive', `hay ${index}`);
    assert.equal((await join(server.port, 'alice', 'archive')).joined, true);
    await panelShows(api, 'the newest messages', (view) => view.messages.some((message) => message.text === 'hay 39'));
    let view = (await api.probePanel())!;
    assert.ok(!view.messages.some((message) => message.text === 'the needle is here'), 'the old message is not loaded yet');

    api.postFromPanel({ type: 'search', text: 'NEEDLE' });
    view = await panelShows(api, 'a search hit', (shown) => shown.searchHits.length > 0);
    assert.deepEqual(view.searchHits, ['the needle is here']);

    api.postFromPanel({ type: 'jumpTo', seq: 1 });
    await panelShows(api, 'older history paged in down to the hit', (shown) => shown.messages.some((message) => message.text === 'the needle is here'), 20_000);
    view = (await api.probePanel())!;
    const texts = view.messages.map((message) => message.text);
    assert.equal(texts[0], 'the needle is here', 'in order, oldest first');
    assert.equal(new Set(texts).size, texts.length, 'nothing shown twice');

    // Scrolling up asks for the next page the same way.
    api.postFromPanel({ type: 'loadOlder' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await api.probePanel())!.messages[0].text, 'the needle is here', 'nothing older than the first message');
  });

  it('joins a second room beside the first, opens a DM from a name, counts unread per conversation, and leaves one without dropping the others', async () => {
    const bob = await person('bob', 'main');
    const classic = await TestClient.join(server.port, 'carol', { room: 'side' });
    cleanups.push(() => classic.close());
    assert.equal((await join(server.port, 'alice', 'main')).joined, true);
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await panelShows(api, 'one conversation', (view) => view.conversations.map((item) => item.title).join() === 'main');

    api.postFromPanel({ type: 'joinRoom', room: 'side' });
    await panelShows(api, 'side shown beside main', (view) => view.conversations.map((item) => item.title).sort().join() === 'main,side' && view.conversations.find((item) => item.active)?.title === 'side');

    await bob.say('main', 'over here, @alice');
    const counted = await panelShows(api, 'main\'s unread and mention counts', (view) => view.conversations.find((item) => item.title === 'main')?.unread === 1);
    assert.equal(counted.conversations.find((item) => item.title === 'main')?.mentions, 1);
    assert.equal(api.unread(), 1, 'the total, as the badge shows it');

    api.postFromPanel({ type: 'openDm', name: 'bob' });
    const dmView = await panelShows(api, 'a DM with bob', (view) => view.conversations.some((item) => item.title === 'bob' && item.active));
    assert.equal(dmView.conversations.length, 3);
    const dm = api.session()!.room;
    assert.match(dm, /^dm:/);
    await bob.join(dm);
    await bob.say(dm, 'just between us');
    await panelShows(api, 'the DM message', (view) => view.messages.some((message) => message.text === 'just between us'));

    api.postFromPanel({ type: 'leaveConversation', key: '' });
    await panelShows(api, 'two conversations left', (view) => view.conversations.length === 2 && !view.conversations.some((item) => item.title === 'bob'));
    const side = api.conversations().find((item) => item.title === 'side')!;
    api.postFromPanel({ type: 'switchConversation', key: side.key });
    classic.send({ type: 'say', id: 'c-1', text: 'side still works' });
    await panelShows(api, 'side still joined', (view) => view.messages.some((message) => message.text === 'side still works'));
    const main = api.conversations().find((item) => item.title === 'main')!;
    api.postFromPanel({ type: 'switchConversation', key: main.key });
    await panelShows(api, 'main read', (view) => view.conversations.find((item) => item.title === 'main')?.unread === 0 && view.messages.some((message) => message.text === 'over here, @alice'));
    assert.equal(api.unread(), 0);
  });

  it('shows a DM someone else opens at once, and a room one was removed from can be joined again with its messages shown', async () => {
    const bob = await person('bob', 'club');
    assert.equal((await join(server.port, 'alice', 'club')).joined, true);
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await panelShows(api, 'club', (view) => view.conversations.map((item) => item.title).join() === 'club');

    // The server tells alice's window of the DM bob opened, well before its next look at her conversations (20 s).
    const { room: dm } = await bob.ok({ type: 'openDm', with: ['alice'] });
    await panelShows(api, 'the DM bob opened', (view) => view.conversations.some((item) => item.title === 'bob'), 5_000);
    await bob.join(dm as string);
    await bob.say(dm as string, 'psst');
    await panelShows(api, 'the DM counted unread', (view) => view.conversations.find((item) => item.title === 'bob')?.unread === 1);

    // bob made club, so he may remove alice; she sees why, and club leaves her list.
    await bob.ok({ type: 'kick', room: 'club', name: 'alice' });
    const removed = await panelShows(api, 'club gone from the list', (view) => !view.conversations.some((item) => item.title === 'club'));
    assert.match(removed.connectionText, /removed from club by bob/);
    assert.equal(removed.composerEnabled, false, 'nothing can be typed into a room one is out of');
    // Joined again, club's conversation is a new one, and what is said there shows.
    api.postFromPanel({ type: 'joinRoom', room: 'club' });
    await panelShows(api, 'club back', (view) => view.conversations.find((item) => item.active)?.title === 'club');
    await bob.say('club', 'welcome back');
    await panelShows(api, 'the message after rejoining', (view) => view.messages.some((message) => message.text === 'welcome back'));
  });

  it('takes its unread and mention counts from the server after being away: what others wrote meanwhile is counted once', async () => {
    const proxy = await TcpProxy.start(() => server.port);
    cleanups.push(() => proxy.close());
    const bob = await person('bob', 'away');
    assert.equal((await join(proxy.port, 'alice', 'away')).joined, true);
    api.postFromPanel({ type: 'joinRoom', room: 'here' });
    await waitFor('here shown', () => api.session()?.room === 'here');
    proxy.refusing = true;
    proxy.cutAll();
    await waitFor('the drop noticed', () => api.session()?.connection.kind === 'reconnecting');
    await bob.say('away', 'first while you were out');
    await bob.say('away', 'second, @alice');
    proxy.refusing = false;
    await waitFor('back', () => api.session()?.connection.kind === 'connected', 15_000);
    const view = await panelShows(api, 'the counts for away', (shown) => shown.conversations.find((item) => item.title === 'away')?.unread === 2, 15_000);
    assert.equal(view.conversations.find((item) => item.title === 'away')?.mentions, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(api.conversations().find((item) => item.title === 'away')?.unread, 2, 'counted once, not again for the replay');
  });
});
