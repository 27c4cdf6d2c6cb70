/**
 * The chat as the person sees it: the surfaces it is drawn on (the view, in
 * the Panel by default and wherever the person drags it, and an editor tab
 * for those who open one; both show the same conversation), what they are
 * told as the conversations change, and what their buttons and links do. It draws
 * from the session manager and the server's state, and routes the webview's
 * messages to the feature that carries each out.
 */
import * as vscode from 'vscode';
import { combinedDisposable, Disposable, type IDisposable } from '../shared/disposable';
import { isLoopbackHost } from '../shared/addresses';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { ConversationView, HostToWebview, PanelView, ServerOffer, SnapshotMessage, StatusView, WebviewToHost } from '../shared/webviewMessages';
import { CHAT_VIEW_ID, ChatPanel, panelHost, type PanelSource, viewHost } from './chatPanel';
import { Command } from './commands';
import { CodeInserter } from './insertCode';
import type { ChatVisibility } from './notifications';
import { openLink, openWorkspacePath } from './links';
import type { ActionOutcome, RoomSession } from './roomSession';
import type { ServerCommands } from './serverCommands';
import type { SessionManager } from './sessions';
import { readSettings } from './settings';

export class ChatView extends Disposable implements PanelSource, ChatVisibility, vscode.WebviewViewProvider {
  /** The chat's view (once VS Code has drawn it), and the editor tab, when one is open. */
  private viewSurface: ChatPanel | undefined;
  private tabSurface: ChatPanel | undefined;
  /** Each surface's listeners, released with it. */
  private readonly surfaceListeners = new Map<ChatPanel, IDisposable>();
  private readonly inserter = this.register(new CodeInserter());
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
      }),
    );
    this.register(sessions.onDidUpdate(({ session, entries }) => session === sessions.session && this.post({ type: 'update', entries })));
    this.register(sessions.onDidChangeStatus((session) => session === sessions.session && this.post({ type: 'status', status: this.statusFor(session) })));
    this.register(sessions.onDidChangeOutbox(({ session, pending }) => session === sessions.session && this.post({ type: 'outbox', pending })));
    this.register(sessions.onDidType(({ session, names }) => session === sessions.session && this.post({ type: 'typing', names })));
    this.register(sessions.onDidReset((session) => session === sessions.session && this.redraw()));
    this.register(sessions.onDidFailToSend((failure) => this.post({ type: 'sendFailed', id: failure.id, text: failure.text, reason: failure.reason })));
    this.register(
      sessions.onDidChangeConversations(() => {
        // The conversation in sight is read, whatever counts the server last gave for it.
        this.updateInSight();
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
    this.register({ dispose: () => this.surfaces.forEach((surface) => surface.dispose()) });
  }

  /** The surface the person sees (the tab before the view when both are in sight), else any. */
  get panel(): ChatPanel | undefined {
    return this.surfaces.find((surface) => surface.visible) ?? this.surfaces[0];
  }

  /** The chat's view, once VS Code has drawn it. */
  get chatView(): ChatPanel | undefined {
    return this.viewSurface;
  }

  get visible(): boolean {
    return this.surfaces.some((surface) => surface.visible);
  }

  private get surfaces(): ChatPanel[] {
    return [this.tabSurface, this.viewSurface].filter((surface): surface is ChatPanel => surface !== undefined);
  }

  /**
   * Shows the chat: the editor tab if the person opened one (or chose
   * chatRoom.openIn = editor), else the view
   * (VS Code draws it if it has not yet). With `focus`, the keyboard lands in
   * its message box.
   */
  open({ focus = false }: { focus?: boolean } = {}): void {
    if (!this.tabSurface && readSettings().openIn === 'editor') {
      const tab = this.adopt(ChatPanel.create(this.extensionUri, this, this.title()), 'tab');
      tab.reveal();
      if (focus) tab.focusInput();
      return;
    }
    const surface = this.tabSurface ?? this.viewSurface;
    if (surface) {
      surface.reveal();
      if (focus) surface.focusInput();
      return;
    }
    // Not drawn yet: VS Code resolves the view (resolveWebviewView) as it shows it.
    this.focusWhenDrawn = focus;
    void vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
  }

  /** Opens the same chat as an editor tab (or shows the one open). */
  openInEditor(): ChatPanel {
    const tab = this.tabSurface ?? this.adopt(ChatPanel.create(this.extensionUri, this, this.title()), 'tab');
    tab.reveal();
    tab.focusInput();
    return tab;
  }

  private focusWhenDrawn = false;

  /** VS Code draws the chat's view (the first time it is shown, or after the person closed it). */
  resolveWebviewView(webviewView: vscode.WebviewView): void {
    this.viewSurface?.dispose();
    const surface = this.adopt(new ChatPanel(viewHost(webviewView), this.extensionUri, this, 'view'), 'view');
    if (this.focusWhenDrawn) surface.focusInput();
    this.focusWhenDrawn = false;
    void this.sessions.rejoinRememberedRoom();
  }

  /** A tab brought back after a window reload: show it again, and the room this window was in (unless it was left). */
  restore(webviewPanel: vscode.WebviewPanel): void {
    this.tabSurface?.dispose();
    this.adopt(new ChatPanel(panelHost(webviewPanel, this.extensionUri), this.extensionUri, this, 'tab'), 'tab');
    void this.sessions.rejoinRememberedRoom();
  }

  /** Puts text (Send Selection's snippet) into the message box, and shows the chat with the focus there. */
  compose(text: string): void {
    this.open({ focus: true });
    const surface = this.tabSurface ?? this.viewSurface;
    if (surface?.isReady) surface.post({ type: 'addToDraft', text });
    else this.pendingDraftAdditions.push(text);
  }

  /** Snippets for a message box not drawn yet; they go in once the webview is ready. */
  private readonly pendingDraftAdditions: string[] = [];

  onReady(panel: ChatPanel): void {
    for (const text of this.pendingDraftAdditions.splice(0)) panel.post({ type: 'addToDraft', text });
  }

  /** The unread count changed: the title (and the view's badge) show it. */
  showUnread(): void {
    this.updateTitle();
  }

  /** Asks the webview what it shows right now (the surface in sight, else any). */
  probe(): Promise<PanelView | undefined> {
    const surface = this.surfaces.find((candidate) => candidate.visible && candidate.isReady) ?? this.panel;
    return surface ? surface.probe() : Promise.resolve(undefined);
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

  handleMessage(message: WebviewToHost, panel: ChatPanel | undefined = this.panel): void {
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
        void openWorkspacePath(message.path, message.line, this.tabSurface?.viewColumn);
        return;
      case 'copy':
        void vscode.env.clipboard.writeText(message.text);
        return;
      case 'insertCode':
        void this.inserter.insert(message.text);
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
        // An empty key is the conversation shown (`/leave`).
        const target = message.key ? this.sessions.conversations.find((candidate) => candidate.key === message.key) : this.sessions.session;
        if (target) void this.sessions.leave(target);
        return;
      }
      case 'joinRoom':
        void this.answerCommand(joinedOutcome(this.sessions.joinAnother(message.room)), message.requestId, panel);
        return;
      case 'openDm':
        void this.answerCommand(joinedOutcome(this.sessions.openDm(message.name)), message.requestId, panel);
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
        void this.answerCommand(conversation?.setTopic(message.text), message.requestId, panel);
        return;
      case 'kick':
        void this.answerCommand(conversation?.kick(message.name), message.requestId, panel);
        return;
      case 'search':
        void this.search(message.text);
        return;
      case 'jumpTo':
        void this.jumpTo(message.seq);
        return;
      default:
        return;
    }
  }

  private post(message: HostToWebview): void {
    for (const surface of this.surfaces) surface.post(message);
  }

  private notice(text: string, problem: boolean): void {
    this.post({ type: 'notice', text, problem });
  }

  private async reportAction(action: Promise<ActionOutcome>): Promise<void> {
    const outcome = await action;
    if (!outcome.ok) this.notice(outcome.reason, true);
  }

  /**
   * A command typed in the box (`/join`, `/dm`, `/topic`, `/kick`): the
   * outcome answers its request, so a refusal leaves the command in the box
   * beside the reason; from a button or a name (no request) a refusal shows
   * as a notice.
   */
  private async answerCommand(action: Promise<ActionOutcome> | undefined, requestId: number | undefined, panel: ChatPanel | undefined): Promise<void> {
    const answered: Promise<ActionOutcome> = action ?? Promise.resolve({ ok: false, reason: 'This needs a room on a server that speaks protocol 2.' });
    if (requestId === undefined) return this.reportAction(answered);
    const outcome = await answered;
    panel?.post({ type: 'sendResult', inReplyTo: requestId, accepted: outcome.ok, ...(outcome.ok ? {} : { reason: outcome.reason }) });
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

  /** The server's rooms to pick from; a name typed that is not among them makes (or joins) that room. */
  private async browseRooms(): Promise<void> {
    const server = this.sessions.serverOf(this.sessions.session);
    if (!server) return void this.sessions.joinFlow();
    const rooms = await server.listRooms();
    const picker = vscode.window.createQuickPick();
    picker.title = `Rooms on ${server.address}`;
    picker.placeholder = 'Pick a room, or type a name to make one';
    const listed = rooms.map((room): vscode.QuickPickItem => ({ label: room.room, description: `${room.memberCount} in it`, ...(room.topic ? { detail: room.topic } : {}) }));
    picker.items = listed;
    picker.onDidChangeValue((value) => {
      const typed = value.trim();
      const known = listed.some((item) => item.label.toLowerCase() === typed.toLowerCase());
      picker.items = typed && !known ? [{ label: typed, description: 'a new room' }, ...listed] : listed;
    });
    const picked = await new Promise<string | undefined>((resolve) => {
      picker.onDidAccept(() => resolve(picker.selectedItems[0]?.label));
      picker.onDidHide(() => resolve(undefined));
      picker.show();
    });
    picker.dispose();
    if (picked) await this.reportAction(joinedOutcome(this.sessions.joinAnother(picked)));
  }

  private async pasteInvite(): Promise<void> {
    const pasted = (await vscode.env.clipboard.readText()).trim();
    await this.sessions.joinFlow(pasted.startsWith('vscode://') || pasted.includes('?host=') ? { address: pasted, confirm: true } : {});
  }

  private adopt(panel: ChatPanel, place: 'view' | 'tab'): ChatPanel {
    if (place === 'view') this.viewSurface = panel;
    else this.tabSurface = panel;
    this.updateTitle();
    this.surfaceListeners.set(
      panel,
      combinedDisposable(
        panel.onDidDispose(() => {
          this.surfaceListeners.get(panel)?.dispose();
          this.surfaceListeners.delete(panel);
          if (this.viewSurface === panel) this.viewSurface = undefined;
          if (this.tabSurface === panel) this.tabSurface = undefined;
        }),
        panel.onDidChangeVisibility((visible) => {
          this.updateInSight();
          this.visibilityEmitter.fire(visible);
        }),
      ),
    );
    if (panel.visible) {
      this.updateInSight();
      this.visibilityEmitter.fire(true);
    }
    return panel;
  }

  /** Redraws from a fresh snapshot (after joining, leaving or switching). */
  private redraw(): void {
    for (const surface of this.surfaces) if (surface.isReady) surface.post(this.snapshot());
    this.updateInSight();
    this.updateTitle();
  }

  /** Only the conversation shown, in a chat in sight, is read as messages come; seeing it reads what came before. */
  private updateInSight(): void {
    const shown = this.visible ? this.sessions.session : undefined;
    for (const conversation of this.sessions.conversations) conversation.inSight = conversation === shown;
    if (shown) {
      shown.inSight = true;
      shown.markRead();
    }
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
    for (const surface of this.surfaces) {
      // A tab says it all in its title; the view has its name, the conversation beside it, and a badge.
      surface.title = surface.place === 'tab' ? this.title() : (this.sessions.session?.title ?? '');
      surface.badge = this.sessions.totalUnread;
    }
  }
}

/** A join (or a DM opened) as an action's outcome: let in, or the reason why not. */
async function joinedOutcome(joining: Promise<{ kind: string; message?: string; reason?: string }>): Promise<ActionOutcome> {
  const outcome = await joining;
  return outcome.kind === 'welcome' ? { ok: true } : { ok: false, reason: outcome.message ?? outcome.reason ?? 'That did not work.' };
}
