/**
 * Entry point: makes each feature and wires them together, and registers
 * every command in one place. The features are
 * - ServerCommands (serverCommands.ts) over the ServerController: the server this installation runs;
 * - SessionManager (sessions.ts): the room this window is in, Join and Leave;
 * - ChatView (chatView.ts): the chat's view and editor tab, and what their buttons and links do;
 * - RoomNotifications (notifications.ts): unread counts and message notifications;
 * - the status items (statusItems.ts), Invites (invites.ts) and Send Selection (sendSelection.ts).
 *
 * Activation comes once start-up has finished (so a reload rejoins the room
 * and attaches to the server), or earlier when a command runs, a chat panel is
 * restored, or an invite link is opened.
 *
 * `activate()` returns a small API ({@link ChatRoomApi}) for tests that run
 * inside the extension host: they drive the real commands and use the API only
 * to observe what happened (server state, room state, what the panel shows).
 */
import * as vscode from 'vscode';
import type { ChatEntry, ConnectionView, ConversationView, PanelView, PendingView, WebviewToHost } from '../shared/webviewMessages';
import * as path from 'node:path';
import { CHAT_VIEW_ID, keepDraftsIn, PANEL_VIEW_TYPE } from './chatPanel';
import { ChatView } from './chatView';
import { Command } from './commands';
import { Invites } from './invites';
import type { JoinRoomArgs } from './joinFlow';
import { RoomNotifications } from './notifications';
import { sendSelection } from './sendSelection';
import { ServerCommands, type StartServerArgs } from './serverCommands';
import { ServerController, type ServerState } from './serverController';
import { ServerHome } from './serverHome';
import { SessionManager } from './sessions';
import { readSettings } from './settings';
import { RoomStatusItem, ServerStatusItem } from './statusItems';
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
  /** The conversation shown, or undefined when not in one. */
  session(): SessionSnapshot | undefined;
  /** Every conversation this window holds, as the list shows them. */
  conversations(): ConversationView[];
  /** The chat surface in sight (else any): where it is, and its title and badge (the view's badge; a tab shows the count in its title). */
  panel(): { open: boolean; visible: boolean; ready: boolean; title: string; place: 'view' | 'tab'; badge: number } | undefined;
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

/** What deactivate() must finish before the window goes. */
let closing: (() => Promise<void>) | undefined;

export function activate(context: vscode.ExtensionContext): ChatRoomApi {
  const started = Date.now();
  const own = <T extends vscode.Disposable>(disposable: T): T => {
    context.subscriptions.push(disposable);
    return disposable;
  };
  const log = own(vscode.window.createOutputChannel('Chat Room', { log: true }));
  const serverLog = own(vscode.window.createOutputChannel('Chat Room Server', { log: true }));
  const stored = StoredState.of(context);
  keepDraftsIn(stored);

  const home = new ServerHome(path.join(context.globalStorageUri.fsPath, 'server-data'));
  const serverScript = vscode.Uri.joinPath(context.extensionUri, 'dist', 'server.js').fsPath;
  const server = own(new ServerController(serverScript, home, serverLog, () => readSettings().keepAliveMs, () => stored.serverToken()));
  const sessions = own(new SessionManager(stored, stored.installationClientId(), log));
  const serverCommands = own(new ServerCommands(server, sessions, stored, log, serverLog));
  const view = own(new ChatView(context.extensionUri, sessions, serverCommands));
  const notifications = own(new RoomNotifications(sessions, view));
  own(notifications.onDidChange(() => view.showUnread()));
  own(new ServerStatusItem(server, sessions));
  own(new RoomStatusItem(sessions, notifications));
  const invites = new Invites(context.extension.id, server, sessions);

  const command = (id: string, run: (...args: never[]) => unknown) => own(vscode.commands.registerCommand(id, run));
  command(Command.startServer, (args?: StartServerArgs) => serverCommands.startServer(args));
  command(Command.stopServer, () => serverCommands.stopServer());
  command(Command.join, (args?: JoinRoomArgs) => sessions.joinFlow(args));
  command(Command.leave, () => sessions.leave());
  command(Command.openPanel, () => {
    view.open({ focus: true });
    return true;
  });
  command(Command.openInEditor, () => {
    view.openInEditor();
    return true;
  });
  command(Command.sendSelection, () => sendSelection(sessions, view));
  command(Command.copyInvite, () => invites.copyInvite());
  command(Command.showServerLog, () => {
    serverLog.show(true);
    return true;
  });

  const uriHandler: vscode.UriHandler = { handleUri: (uri) => invites.handleUri(uri) };
  const panelSerializer: vscode.WebviewPanelSerializer = {
    deserializeWebviewPanel: async (panel) => view.restore(panel),
  };
  own(vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, panelSerializer));
  own(vscode.window.registerWebviewViewProvider(CHAT_VIEW_ID, view));
  own(vscode.window.registerUriHandler(uriHandler));

  // A server this installation runs may be up already (started by another window, or before a reload).
  void server.attach();
  // So may the room this window was in: the room is not the panel, and a reload with the panel closed keeps it.
  void sessions.rejoinRememberedRoom();

  closing = async () => {
    // Let go of the server, which keeps running for the others, and leave the room on purpose.
    server.letGo();
    await sessions.windowClosing();
  };
  log.info(`Activated in ${Date.now() - started} ms`);

  return {
    serverState: () => server.state,
    serverDataDir: () => home.dataDir,
    session: () => {
      const session = sessions.session;
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
        lastSeq: session.lastSeq,
      };
    },
    conversations: () => view.conversationList().conversations,
    panel: () => {
      const panel = view.panel;
      return panel ? { open: true, visible: panel.visible, ready: panel.isReady, title: panel.title, place: panel.place, badge: panel.badge } : undefined;
    },
    probePanel: () => view.probe(),
    postFromPanel: (message) => view.handleMessage(message),
    unread: () => notifications.unread,
    lastInvite: () => invites.lastInvite,
    clientId: () => stored.installationClientId(),
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
  const finish = closing;
  closing = undefined;
  await finish?.();
}
