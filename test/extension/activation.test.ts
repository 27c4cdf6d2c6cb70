// Runs inside a real extension host: the extension is found under its
// published id, activates, and registers every command its manifest declares.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

const extensionId = 'chat-room.chat-room';

interface ManifestCommand {
  command: string;
  title: string;
  category?: string;
}

function chatRoomExtension(): vscode.Extension<unknown> {
  const extension = vscode.extensions.getExtension(extensionId);
  assert.ok(extension, `extension ${extensionId} is not loaded in this host`);
  return extension;
}

describe('Chat Room extension activation', () => {
  it('runs in a real VS Code extension host', () => {
    assert.match(vscode.version, /^\d+\.\d+\.\d+/);
    assert.ok(process.versions.node, 'the extension host is a node process');
  });

  it('is present under its published id', () => {
    const extension = chatRoomExtension();
    assert.equal(extension.packageJSON.name, 'chat-room');
    assert.equal(extension.packageJSON.publisher, 'chat-room');
  });

  it('activates without throwing', async () => {
    const extension = chatRoomExtension();
    await extension.activate();
    assert.equal(extension.isActive, true);
  });

  it('registers every command declared in contributes.commands', async () => {
    const extension = chatRoomExtension();
    await extension.activate();
    const declared: ManifestCommand[] = extension.packageJSON.contributes?.commands ?? [];
    assert.ok(declared.length > 0, 'the manifest declares no commands');
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = declared.map((entry) => entry.command).filter((id) => !registered.has(id));
    assert.deepEqual(missing, [], `declared but not registered: ${missing.join(', ')}`);
  });

  it('declares every command under the "Chat Room" category with a title', () => {
    const declared: ManifestCommand[] = chatRoomExtension().packageJSON.contributes?.commands ?? [];
    for (const entry of declared) {
      assert.match(entry.command, /^chatRoom\.\w+$/, `command id ${entry.command}`);
      assert.equal(entry.category, 'Chat Room', `category of ${entry.command}`);
      assert.ok(entry.title.trim().length > 0, `title of ${entry.command}`);
    }
  });

  it('does not activate on every startup ("*")', () => {
    const activationEvents: string[] = chatRoomExtension().packageJSON.activationEvents ?? [];
    assert.ok(!activationEvents.includes('*'), `activationEvents: ${JSON.stringify(activationEvents)}`);
  });
});
