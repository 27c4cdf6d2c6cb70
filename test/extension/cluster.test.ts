// The chat against a cluster (docs/scaling.md), as a person uses it: Join Room
// given two servers that share rooms through a real redis-server, the first
// killed with -9 mid-conversation, and the conversation going on through the
// second with nothing typed lost; an invite from the window names both.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';
import { RedisServer } from '../support/redisServer';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, messageTexts, sendFromPanel, waitFor } from './chatRoomHelpers';

describe('Chat Room on a cluster', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  it('moves to the next address when the server in use dies, without losing what was typed, and invites with both', async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.dispose());
    const nodes = await Promise.all(['node-a', 'node-b'].map((id) => ServerProcess.start({ redis: redis.url, args: ['--node-id', id, '--node-ttl-ms', '1500'] })));
    for (const node of nodes) cleanups.push(() => node.dispose());
    const [first, second] = nodes;
    const bob = await V2Client.hello(second.port, 'bob');
    cleanups.push(() => bob.socket.destroy());
    await bob.join('crew');

    const address = `127.0.0.1:${first.port}, 127.0.0.1:${second.port}`;
    const joined = await vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address, name: 'alice', room: 'crew' });
    assert.equal(joined.joined, true, joined.reason);
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await sendFromPanel(api, 'before the crash');
    await bob.seen((frame) => frame.type === 'message' && frame.text === 'before the crash');

    await first.stop('SIGKILL');
    // Typed while the window is finding the other server: it waits in the outbox and goes there.
    await sendFromPanel(api, 'while it moves');
    await bob.seen((frame) => frame.type === 'message' && frame.text === 'while it moves', 15_000);
    await waitFor('connected again', () => api.session()?.connection.kind === 'connected', 15_000);
    await bob.say('crew', 'still here');
    await waitFor('bob heard through the second server', () => messageTexts(api).includes('still here'));
    assert.equal(messageTexts(api).filter((text) => text === 'while it moves').length, 1, 'sent once');

    // An invite from this window carries both servers.
    await vscode.commands.executeCommand('chatRoom.copyInvite');
    const invite = new URL(api.lastInvite() ?? '');
    assert.deepEqual([invite.searchParams.get('port'), invite.searchParams.get('also')], [String(first.port), `127.0.0.1:${second.port}`]);
  });
});
