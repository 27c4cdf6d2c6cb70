// The Chat Room features, inside a real extension host, against the real
// bundled server. Commands are driven through `executeCommand`; the
// extension's test API is only used to look at what happened.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import type { MessageEvent as RoomMessage } from '../../shared/protocol';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { processAlive } from '../support/processAlive';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { chatRoomApi, countOf, type JoinResult, leaveAndCleanUpAfterEach, messageTexts, sendFromPanel, type StartResult, waitFor } from './chatRoomHelpers';

function join(port: number, name: string, room: string): Thenable<JoinResult> {
  return vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${port}`, name, room });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Chat Room commands', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  it('declares lazy activation only (never "*")', () => {
    const manifest = vscode.extensions.getExtension('chat-room.chat-room')!.packageJSON as { activationEvents: string[] };
    assert.ok(!manifest.activationEvents.includes('*'));
    assert.ok(manifest.activationEvents.includes('onWebviewPanel:chatRoom.panel'));
    assert.ok(manifest.activationEvents.includes('onUri'));
  });

  it('starts the server as a process of its own, serves TCP, and stops it', async () => {
    const port = await freeLoopbackPort();
    const result = await vscode.commands.executeCommand<StartResult>('chatRoom.startServer', { port });
    cleanups.push(() => vscode.commands.executeCommand('chatRoom.stopServer'));
    assert.equal(result.started, true, JSON.stringify(result));
    const state = api.serverState();
    assert.equal(state.kind, 'running');
    const pid = state.kind === 'running' ? state.pid : 0;
    assert.ok(pid > 0 && pid !== process.pid && processAlive(pid), 'the server runs in its own process');

    const raw = await TestClient.join(port, 'prober');
    raw.close();

    const again = await vscode.commands.executeCommand<StartResult>('chatRoom.startServer', { port });
    assert.equal(again.code, 'already_running');

    assert.equal(await vscode.commands.executeCommand('chatRoom.stopServer'), true);
    assert.equal(api.serverState().kind, 'stopped');
    await waitFor('the server process to be gone', () => !processAlive(pid), 5_000);
    assert.equal(await vscode.commands.executeCommand('chatRoom.showServerLog'), true);
  });

  it('says the port is busy and suggests another', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const busyPort = (blocker.address() as net.AddressInfo).port;
    const result = await vscode.commands.executeCommand<StartResult>('chatRoom.startServer', { port: busyPort });
    assert.equal(result.started, false);
    assert.equal(result.code, 'port_busy');
    assert.ok(result.suggestedPort && result.suggestedPort !== busyPort);
    assert.equal(api.serverState().kind, 'stopped');
  });

  it('reports a server that crashes', async () => {
    const port = await freeLoopbackPort();
    const result = await vscode.commands.executeCommand<StartResult>('chatRoom.startServer', { port });
    assert.equal(result.started, true);
    const state = api.serverState();
    assert.ok(state.kind === 'running');
    process.kill(state.pid, 'SIGKILL');
    await waitFor('the crash to be noticed', () => api.serverState().kind === 'crashed', 5_000);
  });

  describe('with a server', () => {
    let server: ServerProcess;
    beforeEach(async () => {
      server = await ServerProcess.start();
      cleanups.push(() => server.dispose());
    });

    it('joins, opens the panel, and exchanges messages with a raw client', async () => {
      const raw = await TestClient.join(server.port, 'rawbob', { room: 'talk' });
      cleanups.push(() => raw.close());
      const result = await join(server.port, 'alice', 'talk');
      assert.deepEqual({ joined: result.joined, name: result.name }, { joined: true, name: 'alice' });
      const session = api.session()!;
      assert.equal(session.me, 'alice');
      assert.deepEqual([...session.members].sort(), ['alice', 'rawbob']);
      await waitFor('the panel to be ready', () => api.panel()?.ready);
      assert.match(api.panel()!.title, /talk/);

      await raw.nextFrame((frame) => frame.type === 'joined' && frame.name === 'alice');
      await sendFromPanel(api, 'hello from the panel');
      const heard = await raw.nextFrame<RoomMessage>((frame) => frame.type === 'message');
      assert.equal(heard.text, 'hello from the panel');
      assert.equal(heard.from, 'alice');

      raw.send({ type: 'say', id: 'r1', text: 'hi **alice**, see src/app.ts:3' });
      await waitFor('the raw message in the panel', async () => (await api.probePanel())?.messages.some((message) => message.from === 'rawbob'));
      const view = (await api.probePanel())!;
      const mine = view.messages.find((message) => message.text === 'hello from the panel')!;
      assert.equal(mine.mine, true);
      assert.equal(mine.state, 'sent');
      const theirs = view.messages.find((message) => message.from === 'rawbob')!;
      assert.equal(theirs.mine, false);
      assert.match(theirs.html, /<strong>alice<\/strong>/);
      assert.match(theirs.html, /class="path-link"[^>]*data-path="src\/app.ts"/);
      assert.equal(view.memberCountLabel, 'Members (2)');
      assert.match(view.connectionText, /Connected to 127\.0\.0\.1:\d+ as alice/);
      assert.ok(view.systemLines.some((line) => line.includes('alice joined')));

      assert.equal(await vscode.commands.executeCommand('chatRoom.leave'), true);
      const left = await raw.nextFrame((frame) => frame.type === 'left' && frame.name === 'alice');
      assert.equal(left.type === 'left' && left.reason, 'quit');
      assert.equal(api.session(), undefined);
    });

    it('reports a refused name instead of joining', async () => {
      const raw = await TestClient.join(server.port, 'taken');
      cleanups.push(() => raw.close());
      const result = await join(server.port, 'TAKEN', 'lobby');
      assert.equal(result.joined, false);
      assert.equal(result.code, 'name_taken');
      assert.equal(api.session(), undefined);
      const reserved = await join(server.port, 'server', 'lobby');
      assert.equal(reserved.code, 'bad_name');
    });

    it('renders hostile text inert', async () => {
      const raw = await TestClient.join(server.port, 'mallory', { room: 'hostile' });
      cleanups.push(() => raw.close());
      assert.equal((await join(server.port, 'victim', 'hostile')).joined, true);
      const corpus = [
        '<script>window.__pwned = 1</script>',
        '<img src=x onerror="window.__pwned = 2">',
        '[click me](javascript:alert(1))',
        '[run](command:workbench.action.quit)',
        '<a href="javascript:alert(1)">x</a>',
        'evil \u202Egnp.exe\u202C name',
        '![tracker](https://example.invalid/pixel.png)',
      ];
      corpus.forEach((text, index) => raw.send({ type: 'say', id: `h${index}`, text }));
      await waitFor('the hostile corpus in the panel', async () => (await api.probePanel())?.messages.filter((message) => message.from === 'mallory').length === corpus.length);
      const rendered = (await api.probePanel())!.messages.filter((message) => message.from === 'mallory');
      for (const message of rendered) {
        assert.doesNotMatch(message.html, /<script|<img|<iframe/i, message.html);
        assert.doesNotMatch(message.html, /<[^>]*\son\w+\s*=/i, message.html);
        assert.doesNotMatch(message.html, /<a [^>]*href="(?!https?:|#)/i, message.html);
        assert.doesNotMatch(message.html, /[\u202A-\u202E\u2066-\u2069]/, 'bidi controls are neutralised');
      }
      assert.match(rendered[0].html, /&lt;script&gt;/);
      assert.match(rendered[5].html, /⟨U\+202E⟩/);
    });

    it('reconnects after the server is killed and restarted, losing and repeating nothing', async function () {
      this.timeout(90_000);
      assert.equal((await join(server.port, 'rita', 'resume')).joined, true);
      await sendFromPanel(api, 'before the crash');
      await server.stop('SIGKILL');
      await waitFor('the client to notice', () => api.session()?.connection.kind === 'reconnecting');
      api.postFromPanel({ type: 'send', text: 'while down 1', requestId: 0 });
      api.postFromPanel({ type: 'send', text: 'while down 2', requestId: 0 });
      assert.equal(api.session()!.pending.length, 2);
      await waitFor('pending messages in the panel', async () => (await api.probePanel())?.pendingTexts.length === 2);

      const restarted = await ServerProcess.start({ dataDir: server.dataDir, args: ['--port', String(server.port)] });
      cleanups.push(() => restarted.dispose());
      await waitFor('reconnection and an empty outbox', () => api.session()?.connection.kind === 'connected' && api.session()?.pending.length === 0, 45_000);
      await sendFromPanel(api, 'after the restart');

      const expected = ['before the crash', 'while down 1', 'while down 2', 'after the restart'];
      const texts = messageTexts(api);
      for (const text of expected) assert.equal(countOf(texts, text), 1, `"${text}" shown once in ${JSON.stringify(texts)}`);
      const seqs = api.session()!.entries.map((entry) => entry.seq);
      assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'events in order, none twice');

      const verifier = await TestClient.join(restarted.port, 'verifier', { room: 'resume' });
      cleanups.push(() => verifier.close());
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stored = verifier.frames().flatMap((frame) => (frame.type === 'message' ? [frame.text] : []));
      for (const text of expected) assert.equal(countOf(stored, text), 1, `"${text}" stored once in ${JSON.stringify(stored)}`);
      const view = (await api.probePanel())!;
      for (const text of expected) assert.equal(countOf(view.messages.map((message) => message.text), text), 1);
    });

    it('keeps the outbox across sessions and sends it once when back', async function () {
      this.timeout(60_000);
      assert.equal((await join(server.port, 'olga', 'outbox')).joined, true);
      await server.stop('SIGKILL');
      await waitFor('the client to notice', () => api.session()?.connection.kind === 'reconnecting');
      api.postFromPanel({ type: 'send', text: 'written offline', requestId: 0 });
      assert.equal(api.session()!.pending.length, 1);
      // Leaving ends the client; the outbox lives on in global state, as across a window reload.
      await vscode.commands.executeCommand('chatRoom.leave');
      const restarted = await ServerProcess.start({ dataDir: server.dataDir, args: ['--port', String(server.port)] });
      cleanups.push(() => restarted.dispose());
      assert.equal((await join(server.port, 'olga', 'outbox')).joined, true);
      await waitFor('the stored message to be acknowledged', () => api.session()?.pending.length === 0 && messageTexts(api).includes('written offline'));
      assert.equal(countOf(messageTexts(api), 'written offline'), 1);
    });

    it('restores a panel through the serializer, showing the room this window is in', async () => {
      assert.equal((await join(server.port, 'sara', 'restore')).joined, true);
      await sendFromPanel(api, 'said before the reload');
      // A reload rejoins the room a window was in (the UI tests reload a real window); a left room stays left (sessions.test.ts).
      const panel = vscode.window.createWebviewPanel('chatRoom.panel', 'Chat', vscode.ViewColumn.One, { enableScripts: true });
      await api.panelSerializer.deserializeWebviewPanel(panel, {});
      await waitFor('history in the restored panel', async () => (await api.probePanel())?.messages.some((message) => message.text === 'said before the reload'));
      assert.equal(api.session()?.me, 'sara');
      assert.match((await api.probePanel())!.connectionText, /Connected to .* as sara/);
    });

    /**
     * A file in the test workspace, open in an editor, removed after the test. Every editor is closed
     * first, the chat panel of an earlier test too, so the panel opens beside the file, as it does for a
     * person, instead of in the file's group where each of them hides the other.
     */
    async function sampleEditor(name: string, content: string): Promise<vscode.TextEditor> {
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      const folder = vscode.workspace.workspaceFolders?.[0];
      assert.ok(folder, 'the test host opens a workspace folder');
      const file = path.join(folder.uri.fsPath, name);
      fs.writeFileSync(file, content);
      cleanups.push(async () => {
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
        fs.rmSync(file, { force: true });
      });
      return vscode.window.showTextDocument(vscode.Uri.file(file), { viewColumn: vscode.ViewColumn.One });
    }

    it('puts the editor selection in the message box, fenced with path:line, for a comment before it goes', async () => {
      const raw = await TestClient.join(server.port, 'reader', { room: 'code' });
      cleanups.push(() => raw.close());
      // The file first, so the panel opens beside it, as it does for a person.
      const opened = await sampleEditor('chat-selection-sample.ts', 'const a = 1;\nconst b = 2;\nconst c = 3;\n');
      assert.equal((await join(server.port, 'writer', 'code')).joined, true);
      // Back to the file: the editor shown now is the one the command reads (it may be a new one for the same file).
      const editor = await vscode.window.showTextDocument(opened.document, { viewColumn: opened.viewColumn });
      editor.selection = new vscode.Selection(1, 0, 2, 12);
      assert.equal(await vscode.commands.executeCommand('chatRoom.sendSelection'), true);
      const snippet = 'chat-selection-sample.ts:2\n```typescript\nconst b = 2;\nconst c = 3;\n```';
      let draft: string | undefined;
      await waitFor('the snippet in the message box', async () => (draft = (await api.probePanel())?.draft) === `${snippet}\n`).catch((error: Error) => assert.fail(`${error.message}; the box holds ${JSON.stringify(draft)}`));
      // A second selection joins the first, below it.
      const again = await vscode.window.showTextDocument(editor.document, { viewColumn: editor.viewColumn });
      again.selection = new vscode.Selection(0, 0, 0, 12);
      assert.equal(await vscode.commands.executeCommand('chatRoom.sendSelection'), true);
      await waitFor('both snippets in the message box', async () => (await api.probePanel())?.draft === `${snippet}\n\nchat-selection-sample.ts:1\n\`\`\`typescript\nconst a = 1;\n\`\`\`\n`);
      assert.deepEqual(api.session()?.pending, [], 'nothing was sent');
      await sendFromPanel(api, `${snippet}\nthis is where it breaks`);
      const message = await raw.nextFrame<RoomMessage>((frame) => frame.type === 'message');
      assert.equal(message.text, `${snippet}\nthis is where it breaks`);
    });

    it('sends the editor selection at once with chatRoom.sendSelectionDirectly', async () => {
      const config = vscode.workspace.getConfiguration('chatRoom');
      await config.update('sendSelectionDirectly', true, vscode.ConfigurationTarget.Global);
      cleanups.push(() => config.update('sendSelectionDirectly', undefined, vscode.ConfigurationTarget.Global));
      const raw = await TestClient.join(server.port, 'reader', { room: 'code' });
      cleanups.push(() => raw.close());
      assert.equal((await join(server.port, 'writer', 'code')).joined, true);
      const editor = await sampleEditor('chat-selection-direct.ts', 'const a = 1;\nconst b = 2;\nconst c = 3;\n');
      editor.selection = new vscode.Selection(1, 0, 2, 12);
      assert.equal(await vscode.commands.executeCommand('chatRoom.sendSelection'), true);
      const message = await raw.nextFrame<RoomMessage>((frame) => frame.type === 'message');
      assert.equal(message.text, 'chat-selection-direct.ts:2\n```typescript\nconst b = 2;\nconst c = 3;\n```');
    });

    it("inserts a code block at the cursor of the editor the person was last in, even while the chat has the focus", async () => {
      const editor = await sampleEditor('chat-insert-sample.ts', 'first\nsecond\n');
      editor.selection = new vscode.Selection(1, 0, 1, 6);
      assert.equal((await join(server.port, 'inserter', 'insert')).joined, true);
      // As an editor tab the chat takes the editor's place: no text editor is active while it has the focus.
      await vscode.commands.executeCommand('chatRoom.openInEditor');
      await waitFor('the chat tab to be ready with the focus', () => api.panel()?.place === 'tab' && api.panel()?.ready && vscode.window.activeTextEditor === undefined).catch((error: Error) =>
        assert.fail(`${error.message}: ${JSON.stringify([api.panel(), vscode.window.activeTextEditor?.document.uri.toString()])}`),
      );
      api.postFromPanel({ type: 'insertCode', text: 'const inserted = true;\n' });
      await waitFor('the code in the editor', () => editor.document.getText() === 'first\nconst inserted = true;\n\n');
      await waitFor('the editor to take the focus', () => vscode.window.activeTextEditor?.document === editor.document);
    });

    it('copies an invite link naming the room', async () => {
      assert.equal((await join(server.port, 'ivan', 'invites')).joined, true);
      const link = await vscode.commands.executeCommand<string>('chatRoom.copyInvite');
      const url = new URL(link);
      assert.equal(url.host, 'chat-room.chat-room');
      assert.equal(url.pathname, '/join');
      assert.equal(url.searchParams.get('port'), String(server.port));
      assert.equal(url.searchParams.get('room'), 'invites');
      assert.equal(await vscode.env.clipboard.readText(), link);
    });

    it('lives in the Panel: a file opened does not cover it; hidden, its badge counts unread messages, and seeing it clears them', async () => {
      // Earlier tests may have left a chat tab open (a restored one); this one is about the view.
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await waitFor('no chat tab', () => api.panel()?.place !== 'tab');
      const raw = await TestClient.join(server.port, 'chatty', { room: 'unread' });
      cleanups.push(() => raw.close());
      assert.equal((await join(server.port, 'quiet', 'unread')).joined, true);
      await waitFor('the chat in view', () => api.panel()?.visible);
      assert.equal(api.panel()!.place, 'view', 'the chat is the view in the Panel, not an editor tab');
      await vscode.commands.executeCommand('workbench.action.files.newUntitledFile');
      await pause(500);
      assert.equal(api.panel()!.visible, true, 'an editor opened does not cover the chat');
      await vscode.commands.executeCommand('workbench.action.closePanel');
      await waitFor('the chat to be hidden', () => api.panel()?.visible === false, 5_000);
      raw.send({ type: 'say', id: 'u1', text: 'are you there @quiet?' });
      await waitFor('an unread count', () => api.unread() === 1);
      assert.equal(api.panel()!.badge, 1, "the view's badge shows it");
      await vscode.commands.executeCommand('chatRoom.openPanel');
      await waitFor('the count to clear', () => api.unread() === 0);
      assert.equal(api.panel()!.badge, 0);
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    });

    it('opens the same chat as an editor tab, and a path opened from it goes beside it, never over it', async () => {
      assert.equal((await join(server.port, 'tabby', 'tabbed')).joined, true);
      await sendFromPanel(api, 'see chat-link-sample.ts:2');
      assert.equal(await vscode.commands.executeCommand('chatRoom.openInEditor'), true);
      await waitFor('the tab to be ready', () => api.panel()?.place === 'tab' && api.panel()?.ready, 20_000);
      assert.match(api.panel()!.title, /tabbed/);
      await waitFor('the same conversation in the tab', async () => (await api.probePanel())?.messages.some((message) => message.text === 'see chat-link-sample.ts:2'));
      const folder = vscode.workspace.workspaceFolders![0];
      const file = path.join(folder.uri.fsPath, 'chat-link-sample.ts');
      fs.writeFileSync(file, 'one\ntwo\nthree\n');
      cleanups.push(() => fs.rmSync(file, { force: true }));
      const chatTab = vscode.window.tabGroups.all.flatMap((group) => group.tabs).find((tab) => tab.input instanceof vscode.TabInputWebview);
      assert.ok(chatTab, 'the chat tab is open');
      api.postFromPanel({ type: 'openPath', path: 'chat-link-sample.ts', line: 2 });
      await waitFor('the file to open', () => vscode.window.activeTextEditor?.document.uri.fsPath === file);
      assert.notEqual(vscode.window.activeTextEditor!.viewColumn, chatTab.group.viewColumn, 'the file opened in another group');
      assert.equal(chatTab.group.activeTab?.input instanceof vscode.TabInputWebview, true, 'the chat is still the tab in sight in its group');
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    });
  });
});
