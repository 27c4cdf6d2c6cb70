// A server can be hostile too: this one speaks just enough protocol 2 over a
// real loopback socket to let the window in, then floods it with frames that
// each would make the window ask for something (new DMs, read markers). The
// window must not answer a flood with a flood, and must stay usable.
import * as assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import * as vscode from 'vscode';
import { LineSplitter } from '../../shared/framing';
import type { ChatRoomApi } from '../../extension/extension';
import { chatRoomApi, type JoinResult, leaveAndCleanUpAfterEach, waitFor } from './chatRoomHelpers';

const FLOOD_FRAMES = 2_000;

/** A fake protocol-2 server: welcomes, lets one room in, answers `conversations` (counting them), and floods on demand. */
class FloodingServer {
  conversationRequests = 0;
  private client: Socket | undefined;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<FloodingServer> {
    const server = createServer();
    const fake = new FloodingServer(server);
    server.on('connection', (socket) => fake.serve(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  private serve(socket: Socket): void {
    this.client = socket;
    socket.on('error', () => undefined);
    const splitter = new LineSplitter(1 << 20);
    socket.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        if (line.kind === 'line') this.answer(JSON.parse(line.bytes.toString('utf8')) as { type: string; id?: string; room?: string; name?: string });
      }
    });
  }

  private answer(frame: { type: string; id?: string; room?: string; name?: string }): void {
    switch (frame.type) {
      case 'conversations':
        if (frame.id === 'protocol-probe') return this.send({ type: 'error', code: 'not_joined', message: 'Say hello first.', id: frame.id });
        this.conversationRequests += 1;
        return this.send({ type: 'conversationList', id: frame.id, conversations: [{ room: 'den', kind: 'room', topic: '', seq: 0, lastRead: 0, unread: 0, mentions: 0 }] });
      case 'hello':
        return this.send({ type: 'welcome', protocol: 2, you: frame.name });
      case 'join':
        return this.send({ type: 'roomState', id: frame.id, room: frame.room, kind: 'room', topic: '', members: ['mallory'], memberCount: 1, seq: 0, firstSeq: 0, lastRead: 0 });
      default:
        if (frame.id) this.send({ type: 'ack', id: frame.id });
    }
  }

  flood(): void {
    const lines: string[] = [];
    for (let i = 0; i < FLOOD_FRAMES; i++) {
      lines.push(JSON.stringify({ type: 'conversationAdded', room: `dm:${String(i).padStart(26, 'a')}`, kind: 'dm', participants: ['mallory', 'alice'] }));
      lines.push(JSON.stringify({ type: 'readMarker', room: 'den', seq: i }));
    }
    this.client?.write(lines.join('\n') + '\n');
  }

  private send(frame: object): void {
    this.client?.write(JSON.stringify(frame) + '\n');
  }

  close(): void {
    this.client?.destroy();
    this.server.close();
  }
}

describe('Chat Room against a hostile server', function () {
  this.timeout(60_000);
  let api: ChatRoomApi;
  const cleanups = leaveAndCleanUpAfterEach();

  before(async () => {
    api = await chatRoomApi();
  });

  it(`answers ${FLOOD_FRAMES} new-DM notices and ${FLOOD_FRAMES} read markers with a few requests, not thousands, and stays usable`, async () => {
    const server = await FloodingServer.start();
    cleanups.push(() => server.close());
    const joined = await vscode.commands.executeCommand<JoinResult>('chatRoom.join', { address: `127.0.0.1:${server.port}`, name: 'alice', room: 'den' });
    assert.equal(joined.joined, true, joined.reason);
    await waitFor('the first look at the conversations', () => server.conversationRequests >= 1);
    const before = server.conversationRequests;

    server.flood();
    // The window is still there for the person: the chat opens and shows the room.
    await vscode.commands.executeCommand('chatRoom.openPanel');
    await waitFor('the panel showing den', async () => (await api.probePanel())?.conversations.some((item) => item.title === 'den'));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const asked = server.conversationRequests - before;
    assert.ok(asked >= 1, 'the notices were heard');
    assert.ok(asked <= 5, `${asked} requests for ${2 * FLOOD_FRAMES} frames`);
  });
});
