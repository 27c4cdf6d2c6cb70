// An invite link handed to the extension's registered UriHandler, with this
// product's own scheme (code-server's is not "vscode"). The Join flow then
// asks each question with the link's values already filled in; accepting every
// prompt unchanged must join exactly the room the link names.
//
// The handler is called directly (it is the very object registered with
// registerUriHandler, exposed by the test API) because in code-server
// vscode.env.openExternal on its own scheme does not reach URI handlers: the
// browser workbench navigates away to the link ("All done. You can close this
// tab now."), which the test host refuses as a dialog.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { ServerProcess } from '../support/serverProcess';
import { chatRoomApi, waitFor } from './chatRoomHelpers';

describe('Chat Room invite links', function () {
  this.timeout(60_000);
  let server: ServerProcess | undefined;

  afterEach(async () => {
    const api = await chatRoomApi();
    if (api.session()) await vscode.commands.executeCommand('chatRoom.leave');
    await server?.dispose();
    server = undefined;
  });

  it('opens the Join flow filled in from the link, and accepting it joins that room', async () => {
    const api = await chatRoomApi();
    server = await ServerProcess.start();
    // A name first, so the name prompt (not in the link) has one to offer.
    assert.equal((await vscode.commands.executeCommand<{ joined: boolean }>('chatRoom.join', { address: `127.0.0.1:${server.port}`, name: 'linda', room: 'elsewhere' })).joined, true);
    await vscode.commands.executeCommand('chatRoom.leave');

    const link = vscode.Uri.parse(`${vscode.env.uriScheme}://chat-room.chat-room/join?host=127.0.0.1&port=${server.port}&room=invited-room`);
    api.uriHandler.handleUri(link);

    // Three input boxes (address, name, room), each accepted as it was filled in.
    for (let prompt = 0; prompt < 3; prompt++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    }
    await waitFor('the invited room to be joined', () => api.session()?.connection.kind === 'connected', 15_000);
    const session = api.session()!;
    assert.equal(session.room, 'invited-room', 'the room came from the link');
    assert.equal(session.address, `127.0.0.1:${server.port}`, 'the address came from the link');
    assert.equal(session.me, 'linda', 'the name prompt offered the remembered name');
  });

  it('refuses a link it does not know without joining anything', async () => {
    const api = await chatRoomApi();
    const link = vscode.Uri.parse(`${vscode.env.uriScheme}://chat-room.chat-room/delete-everything?room=x`);
    api.uriHandler.handleUri(link);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(api.session(), undefined);
  });
});
