/**
 * The chat as the person sees it: the surfaces it is drawn on (an editor tab
 * today; every surface shows the same conversation), what they are told as
 * the conversations change, and what their buttons and links do. It draws
 * from the session manager and the server's state, and routes the webview's
 * messages to the feature that carries each out.
 */
import * as vscode from 'vscode';
import { combinedDisposable, Disposable, type IDisposable } from '../shared/disposable';
import { isLoopbackHost } from '../shared/addresses';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { ConversationView, HostToWebview, PanelView, ServerOffer, SnapshotMessage, StatusView, WebviewToHost } from '../shared/webviewMessages';
import { ChatPanel, panelHost, type PanelSource } from './chatPanel';
import { Command } from './commands';
import type { ChatVisibility } from './notifications';
import { openLink, openWorkspacePath } from './links';
import type { RoomSession } from './roomSession';
import type { ServerCommands } from './serverCommands';
import type { SessionManager } from './sessions';
import { readSettings } from './settings';

export class ChatView extends Disposable implements PanelSource, ChatVisibility {
  private chatPanel: ChatPanel | undefined;
  /** Each surface's listeners, released with it. */
  private readonly surfaceListeners = new Map<ChatPanel, IDisposable>();
  private readonly visibilityEmitter = this.register(new vscode.EventEmitter<boolean>());
  readonly onDidChangeVisibility = this.visibilityEmitter.event;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly sessions: SessionManager,
    private readonly server: ServerCommands,
  ) {
    super();
    this.register(sessions.onDidChangeSession(() => this.redraw()));
    this.register(
      sessions.onDidWelcome(({ session, showPanel }) => {
        if (showPanel && session === sessions.session) this.open({ focus: true });
      }),
    );
    this.register(
      sessions.onDidAppend(({ session, entries }) => {
        if (session !== sessions.session) return;
        this.post({ type: 'append', entries });
        if (this.visible) session.markRead();
      }),
    );
    this.register(sessions.onDidUpdate(({ session, entries }) => session === sessions.session && this.post({ type: 'update', entries })));
    this.register(sessions.onDidChangeStatus((session) => session === sessions.session && this.post({ type: 'status', status: this.statusFor(session) })));
    this.register(sessions.onDidChangeOutbox(({ session, pending }) => session === sessions.session && this.post({ type: 'outbox', pending })));
    this.register(sessions.onDidType(({ session, names }) => session === sessions.session && this.post({ type: 'typing', names })));
    this.register(sessions.onDidFailToSend((failure) => this.post({ type: 'sendFailed', id: failure.id, text: failure.text, reason: failure.reason })));
    this.register(
      sessions.onDidChangeConversations(() => {
        this.post({ type: 'conversations', ...this.conversationList() });
        this.updateTitle();
      }),
    );
    // The offer to start or restart the server follows the server's state.
    this.register(
      server.controller.onDidChangeState(() => {
        const session = sessions.session;
        if (session) this.post({ type: 'status', status: this.statusFor(session) });
      }),
    );
    this.register({ dispose: () => this.chatPanel?.dispose() });
  }

  get panel(): ChatPanel | undefined {
    return this.chatPanel;
  }

  get visible(): boolean {
    return this.chatPanel?.visible === true;
  }

  /** Shows the chat; with `focus`, the keyboard lands in its message box. */
  open({ focus = false }: { focus?: boolean } = {}): ChatPanel {
    const panel = this.chatPanel ?? this.adopt(ChatPanel.create(this.extensionUri, this, this.title()));
    panel.reveal();
    if (focus) panel.focusInput();
    return panel;
  }

  /** A panel brought back after a window reload: show it again, and the room this window was in (unless it was left). */
  restore(webviewPanel: vscode.WebviewPanel): void {
    this.chatPanel?.dispose();
    this.adopt(new ChatPanel(panelHost(webviewPanel, this.extensionUri), this.extensionUri, this, 'tab'));
    void this.sessions.rejoinRememberedRoom();
  }

  /** The unread count changed: the title (and the view's badge) show it. */
  showUnread(): void {
    this.updateTitle();
  }

  /** Asks the webview what it shows right now. */
  probe(): Promise<PanelView | undefined> {
    return this.chatPanel ? this.chatPanel.probe() : Promise.resolve(undefined);
  }

  snapshot(): SnapshotMessage {
    const session = this.sessions.session;
    const left = this.sessions.lastLeft;
    const notInRoom: StatusView = { connection: { kind: 'disconnected', reason: left?.reason ?? 'You are not in a room.' }, members: [], memberCount: 0, inRoom: false };
    const server = this.sessions.serverOf(session);
    return {
      type: 'snapshot',
      status: session ? this.statusFor(session) : notInRoom,
      entries: session ? [...session.entries] : [...(left?.entries ?? [])],
      pending: session ? [...session.pending] : [],
      historyLimit: readSettings().historyLength,
      maxTextBytes: server?.maxTextBytes ?? DEFAULT_LIMITS.maxTextBytes,
      ...this.conversationList(),
      features: { v2: session?.protocol === 2, owner: session !== undefined && session.owner !== undefined && session.isMine(session.owner) },
      hasOlder: session?.hasOlder ?? false,
      lastRead: session && session.protocol === 2 ? (session as { lastRead?: number }).lastRead ?? 0 : 0,
      typing: [],
    };
  }

  handleMessage(message: WebviewToHost, panel: ChatPanel | undefined = this.chatPanel): void {
    const session = this.sessions.session;
    const conversation = this.sessions.v2(session);
    switch (message.type) {
      case 'send': {
        const outcome = this.sessions.trySend(message.text, message.replyTo);
        panel?.post({ type: 'sendResult', inReplyTo: message.requestId, ...outcome });
        return;
      }
      case 'openLink':
        void openLink(message.href);
        return;
      case 'openPath':
        void openWorkspacePath(message.path, message.line, this.chatPanel?.viewColumn);
        return;
      case 'copy':
        void vscode.env.clipboard.writeText(message.text);
        return;
      case 'reconnect':
        session?.reconnectNow();
        return;
      case 'join':
        void this.sessions.joinFlow();
        return;
      case 'startServer':
        void this.server.restartServer();
        return;
      case 'startNewServer':
        void vscode.commands.executeCommand(Command.startServer);
        return;
      case 'pasteInvite':
        void this.pasteInvite();
        return;
      case 'switchConversation':
        this.sessions.activate(message.key);
        return;
      case 'leaveConversation': {
        const target = this.sessions.conversations.find((candidate) => candidate.key === message.key);
        if (target) void this.sessions.leave(target);
        return;
      }
      case 'joinRoom':
        void this.report(this.sessions.joinAnother(message.room));
        return;
      case 'openDm':
        void this.report(this.sessions.openDm(message.name));
        return;
      case 'browseRooms':
        void this.browseRooms();
        return;
      case 'typing':
        conversation?.typingNow();
        return;
      case 'loadOlder':
        void this.loadOlder();
        return;
      case 'edit':
        if (conversation) void this.reportAction(conversation.edit(message.seq, message.text));
        return;
      case 'delete':
        if (conversation) void this.reportAction(conversation.delete(message.seq));
        return;
      case 'react':
        if (conversation) void this.reportAction(conversation.react(message.seq, message.emoji, message.add));
        return;
      case 'setTopic':
        if (conversation) void this.reportAction(conversation.setTopic(message.text));
        return;
      case 'kick':
        if (conversation) void this.reportAction(conversation.kick(message.name));
        return;
      case 'search':
        void this.search(message.text);
        return;
      case 'jumpTo':
        void this.jumpTo(message.seq);
        return;
      case 'insertAtCursor':
        void insertAtCursor(message.text);
        return;
      default:
        return;
    }
  }

  private post(message: HostToWebview): void {
    this.chatPanel?.post(message);
  }

  private notice(text: string, problem: boolean): void {
    this.post({ type: 'notice', text, problem });
  }

  private async report(joining: Promise<{ kind: string; message?: string; reason?: string }>): Promise<void> {
    const outcome = await joining;
    if (outcome.kind !== 'welcome') this.notice(outcome.message ?? outcome.reason ?? 'That did not work.', true);
  }

  private async reportAction(action: Promise<{ ok: true } | { ok: false; reason: string }>): Promise<void> {
    const outcome = await action;
    if (!outcome.ok) this.notice(outcome.reason, true);
  }

  private async loadOlder(): Promise<void> {
    const conversation = this.sessions.v2(this.sessions.session);
    if (!conversation) return;
    const page = await conversation.loadOlder();
    if (page && conversation === this.sessions.session) this.post({ type: 'prepend', entries: page.entries, more: page.more });
  }

  private async search(text: string): Promise<void> {
    const conversation = this.sessions.v2(this.sessions.session);
    if (!conversation) return this.notice('Search needs a server that speaks protocol 2.', true);
    const answer = await conversation.search(text);
    this.post('error' in answer ? { type: 'searchResults', query: text, hits: [], error: answer.error } : { type: 'searchResults', query: text, hits: answer.hits });
  }

  /** Loads history back to `seq` if it is not shown yet, then scrolls to it. */
  private async jumpTo(seq: number): Promise<void> {
    const conversation = this.sessions.v2(this.sessions.session);
    if (!conversation) return;
    for (let page = 0; page < 20 && !conversation.entries.some((entry) => entry.seq <= seq) && conversation.hasOlder; page++) {
      const older = await conversation.loadOlder();
      if (!older) break;
      this.post({ type: 'prepend', entries: older.entries, more: older.more });
    }
    this.post({ type: 'reveal', seq });
  }

  private async browseRooms(): Promise<void> {
    const server = this.sessions.serverOf(this.sessions.session);
    if (!server) return this.notice('Browsing rooms needs a server that speaks protocol 2.', true);
    const rooms = await server.listRooms();
    const picked = await vscode.window.showQuickPick(
      rooms.map((room) => ({ label: room.room, description: `${room.memberCount} in it`, detail: room.topic || undefined })),
      { title: `Rooms on ${server.address}`, placeHolder: rooms.length === 0 ? 'No rooms yet: type a name to make one' : 'Pick a room to join' },
    );
    if (picked) await this.report(this.sessions.joinAnother(picked.label));
  }

  private async pasteInvite(): Promise<void> {
    const pasted = (await vscode.env.clipboard.readText()).trim();
    await this.sessions.joinFlow(pasted.startsWith('vscode://') || pasted.includes('?host=') ? { address: pasted, confirm: true } : {});
  }

  private adopt(panel: ChatPanel): ChatPanel {
    this.chatPanel = panel;
    panel.title = this.title();
    this.surfaceListeners.set(
      panel,
      combinedDisposable(
        panel.onDidDispose(() => {
          this.surfaceListeners.get(panel)?.dispose();
          this.surfaceListeners.delete(panel);
          if (this.chatPanel === panel) this.chatPanel = undefined;
        }),
        panel.onDidChangeVisibility((visible) => {
          if (visible) this.sessions.session?.markRead();
          this.visibilityEmitter.fire(visible);
        }),
      ),
    );
    if (panel.visible) {
      this.sessions.session?.markRead();
      this.visibilityEmitter.fire(true);
    }
    return panel;
  }

  /** Redraws from a fresh snapshot (after joining, leaving or switching). */
  private redraw(): void {
    if (this.chatPanel?.isReady) this.chatPanel.post(this.snapshot());
    if (this.visible) this.sessions.session?.markRead();
    this.updateTitle();
  }

  /** Every conversation, as the list in the chat shows them. */
  conversationList(): { conversations: ConversationView[]; activeKey: string; roomNames: string[] } {
    const conversations = this.sessions.conversations.map(
      (session): ConversationView => ({
        key: session.key,
        title: session.title,
        kind: session.kind,
        topic: session.topic,
        unread: session.unread,
        mentions: session.mentionCount,
        connected: session.isConnected,
      }),
    );
    return { conversations, activeKey: this.sessions.session?.key ?? '', roomNames: conversations.filter((view) => view.kind === 'room').map((view) => view.title) };
  }

  private statusFor(session: RoomSession): StatusView {
    const offer = this.serverOfferFor(session);
    return { ...session.status(), ...(offer ? { serverOffer: offer } : {}) };
  }

  /**
   * What the chat offers when the room's server is this machine's and is not
   * running: Restart after a crash (with the last choices), else Start.
   */
  private serverOfferFor(session: RoomSession): ServerOffer | undefined {
    if (!isLoopbackHost(session.params.host) || session.isConnected) return undefined;
    const state = this.server.controller.state;
    if (state.kind === 'running' || state.kind === 'starting' || state.kind === 'stopping') return undefined;
    const port = state.kind === 'crashed' ? state.choices.port : readSettings().serverPort;
    if (session.params.port !== port) return undefined;
    return state.kind === 'crashed' ? 'restart' : 'start';
  }

  private title(): string {
    const session = this.sessions.session;
    const base = session ? `Chat: ${session.title}` : 'Chat Room';
    const unread = this.sessions.totalUnread;
    return unread > 0 ? `${base} (${unread})` : base;
  }

  private updateTitle(): void {
    if (!this.chatPanel) return;
    this.chatPanel.title = this.title();
    this.chatPanel.badge = this.sessions.totalUnread;
  }
}

/** A code block's "Insert at cursor": into the editor in use, replacing its selection. */
async function insertAtCursor(text: string): Promise<void> {
  const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
  if (!editor) {
    void vscode.window.showInformationMessage('Open a file to insert the code into.');
    return;
  }
  await editor.edit((edit) => edit.replace(editor.selection, text));
}
