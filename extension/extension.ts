/**
 * Entry point. Activation is lazy: VS Code loads this only when one of the
 * commands runs, a chat panel is restored, or an invite link is opened.
 *
 * `activate()` returns a small API ({@link ChatRoomApi}) for tests that run
 * inside the extension host: they drive the real commands and use the API only
 * to observe what happened (server state, room state, what the panel shows).
 */
import * as vscode from 'vscode';
import type { ChatEntry, ConnectionView, PanelView, PendingView, WebviewToHost } from '../shared/webviewMessages';
import { ChatRoomController, type StartServerArgs } from './chatRoom';
import { keepDraftsIn, PANEL_VIEW_TYPE } from './chatPanel';
import type { JoinArgs } from './joinFlow';
import type { ServerState } from './serverController';
import { StoredState } from './storedState';

export interface SessionSnapshot {
  address: string;
  room: string;
  /** The name the server welcomed us with (undefined until welcomed). */
  me: string | undefined;
  members: string[];
  connection: ConnectionView;
  entries: ChatEntry[];
  pending: PendingView[];
  /** Highest room sequence number seen. */
  lastSeq: number;
}

/** What tests inside the extension host may observe. Commands are the way to act. */
export interface ChatRoomApi {
  /** The server process as the extension sees it (with its pid when running). */
  serverState(): ServerState;
  /** The server's home: its data, log, lease and the record windows attach with. */
  serverDataDir(): string;
  /** The joined room, or undefined when not in one. */
  session(): SessionSnapshot | undefined;
  panel(): { open: boolean; visible: boolean; ready: boolean; title: string } | undefined;
  /** Asks the webview what it shows right now (messages, members, connection line, draft). */
  probePanel(): Promise<PanelView | undefined>;
  /** Delivers a message as if the webview had posted it (e.g. `{ type: 'send', text }`). */
  postFromPanel(message: WebviewToHost): void;
  unread(): number;
  /** The link the last "Copy Invite" produced. */
  lastInvite(): string | undefined;
  /** The stable per-installation client id sent in every hello. */
  clientId(): string;
  /** The serializer VS Code calls to restore a chat panel after a window reload (the registered one). */
  panelSerializer: vscode.WebviewPanelSerializer;
  /** The handler registered for invite links (the registered one). */
  uriHandler: vscode.UriHandler;
}

let controller: ChatRoomController | undefined;

export function activate(context: vscode.ExtensionContext): ChatRoomApi {
  const started = Date.now();
  const log = vscode.window.createOutputChannel('Chat Room', { log: true });
  const serverLog = vscode.window.createOutputChannel('Chat Room Server', { log: true });
  context.subscriptions.push(log, serverLog);
  keepDraftsIn(StoredState.of(context));
  const room = new ChatRoomController(context, log, serverLog);
  controller = room;
  context.subscriptions.push(room);

  const command = (id: string, run: (...args: never[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, run));
  command('chatRoom.startServer', (args?: StartServerArgs) => room.startServer(args));
  command('chatRoom.stopServer', () => room.stopServer());
  command('chatRoom.join', (args?: JoinArgs) => room.joinFlow(args));
  command('chatRoom.leave', () => room.leave());
  command('chatRoom.openPanel', () => {
    room.openPanel({ focus: true });
    return true;
  });
  command('chatRoom.sendSelection', () => room.sendSelection());
  command('chatRoom.copyInvite', () => room.copyInvite());
  command('chatRoom.showServerLog', () => {
    serverLog.show(true);
    return true;
  });

  const uriHandler: vscode.UriHandler = { handleUri: (uri) => room.handleUri(uri) };
  const panelSerializer: vscode.WebviewPanelSerializer = {
    deserializeWebviewPanel: async (panel) => room.restorePanel(panel),
  };
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, panelSerializer),
    vscode.window.registerUriHandler(uriHandler),
  );

  log.info(`Activated in ${Date.now() - started} ms`);

  return {
    serverState: () => room.server.state,
    serverDataDir: () => room.server.home.dataDir,
    session: () => {
      const session = room.currentSession;
      if (!session) return undefined;
      const status = session.status();
      return {
        address: session.address,
        room: session.room,
        me: session.me,
        members: [...session.members],
        connection: status.connection,
        entries: [...session.entries],
        pending: [...session.pending],
        lastSeq: session.client.lastSeq,
      };
    },
    panel: () => {
      const panel = room.panel;
      return panel ? { open: true, visible: panel.visible, ready: panel.isReady, title: panel.panel.title } : undefined;
    },
    probePanel: () => room.probePanel(),
    postFromPanel: (message) => room.receiveFromPanel(message),
    unread: () => room.unread,
    lastInvite: () => room.lastInvite,
    clientId: () => room.installationClientId,
    panelSerializer,
    uriHandler,
  };
}

/**
 * The window is closing or reloading (VS Code waits for this promise): leave
 * the room on purpose, so the others see "left" rather than "lost connection",
 * and let go of the server, which keeps running for them.
 */
export async function deactivate(): Promise<void> {
  const room = controller;
  controller = undefined;
  if (room) await room.windowClosing();
}
