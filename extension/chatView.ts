/**
 * The chat as the person sees it: the panel (one at a time), what it is told
 * as the room changes, and what its buttons and links do. It draws from the
 * session manager and the server's state, and routes the webview's messages
 * to the feature that carries each out.
 */
import * as vscode from 'vscode';
import { combinedDisposable, Disposable, MutableDisposable } from '../shared/disposable';
import { isLoopbackHost } from '../shared/addresses';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { PanelView, ServerOffer, SnapshotMessage, StatusView, WebviewToHost } from '../shared/webviewMessages';
import { ChatPanel, type PanelSource } from './chatPanel';
import type { ChatSession } from './chatSession';
import { CodeInserter } from './insertCode';
import type { ChatVisibility } from './notifications';
import { openLink, openWorkspacePath } from './links';
import type { ServerCommands } from './serverCommands';
import type { SessionManager } from './sessions';
import { readSettings } from './settings';

export class ChatView extends Disposable implements PanelSource, ChatVisibility {
  private chatPanel: ChatPanel | undefined;
  /** The current panel's listeners, released with it or when another panel replaces it. */
  private readonly panelListeners = this.register(new MutableDisposable());
  private unread = 0;
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
      sessions.onDidWelcome(({ showPanel }) => {
        if (showPanel) this.open({ focus: true });
      }),
    );
    this.register(sessions.onDidAppend(({ entries }) => this.chatPanel?.post({ type: 'append', entries })));
    this.register(sessions.onDidChangeStatus((session) => this.chatPanel?.post({ type: 'status', status: this.statusFor(session) })));
    this.register(sessions.onDidChangeOutbox((pending) => this.chatPanel?.post({ type: 'outbox', pending })));
    this.register(sessions.onDidFailToSend((failure) => this.chatPanel?.post({ type: 'sendFailed', id: failure.id, text: failure.text, reason: failure.reason })));
    // The panel's offer to start or restart the server follows the server's state.
    this.register(
      server.controller.onDidChangeState(() => {
        const session = sessions.session;
        if (session) this.chatPanel?.post({ type: 'status', status: this.statusFor(session) });
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

  /** Shows the panel; with `focus`, the keyboard lands in its message box. */
  open({ focus = false }: { focus?: boolean } = {}): ChatPanel {
    const panel = this.chatPanel ?? this.adopt(ChatPanel.create(this.extensionUri, this, this.title()));
    panel.reveal();
    if (focus) panel.focusInput();
    return panel;
  }

  /** Puts text into the message box (after what is there), showing the panel with the focus in the box. */
  addToDraft(text: string): void {
    this.open({ focus: true }).addToDraft(text);
  }

  /** A panel brought back after a window reload: show it again, and the room this window was in (unless it was left). */
  restore(webviewPanel: vscode.WebviewPanel): void {
    this.chatPanel?.dispose();
    this.adopt(new ChatPanel(webviewPanel, this.extensionUri, this));
    void this.sessions.rejoinRememberedRoom();
  }

  /** The unread count, shown in the panel's title. */
  showUnread(count: number): void {
    this.unread = count;
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
    return {
      type: 'snapshot',
      status: session ? this.statusFor(session) : notInRoom,
      entries: session ? [...session.entries] : [...(left?.entries ?? [])],
      pending: session ? [...session.pending] : [],
      historyLimit: readSettings().historyLength,
      maxTextBytes: DEFAULT_LIMITS.maxTextBytes,
    };
  }

  handleMessage(message: WebviewToHost, panel: ChatPanel | undefined = this.chatPanel): void {
    switch (message.type) {
      case 'send': {
        const outcome = this.sessions.trySend(message.text);
        panel?.post({ type: 'sendResult', inReplyTo: message.requestId, ...outcome });
        return;
      }
      case 'openLink':
        void openLink(message.href);
        return;
      case 'openPath':
        void openWorkspacePath(message.path, message.line);
        return;
      case 'copy':
        void vscode.env.clipboard.writeText(message.text);
        return;
      case 'insertCode':
        void this.inserter.insert(message.text);
        return;
      case 'reconnect':
        this.sessions.session?.client.reconnectNow();
        return;
      case 'join':
        void this.sessions.joinFlow();
        return;
      case 'startServer':
        void this.server.restartServer();
        return;
      default:
        return;
    }
  }

  private adopt(panel: ChatPanel): ChatPanel {
    this.chatPanel = panel;
    panel.title = this.title();
    this.panelListeners.value = combinedDisposable(
      panel.onDidDispose(() => {
        if (this.chatPanel !== panel) return;
        this.chatPanel = undefined;
        this.panelListeners.clear();
      }),
      panel.onDidChangeVisibility((visible) => this.visibilityEmitter.fire(visible)),
    );
    if (panel.visible) this.visibilityEmitter.fire(true);
    return panel;
  }

  /** Redraws the panel from a fresh snapshot (after joining or leaving). */
  private redraw(): void {
    if (this.chatPanel?.isReady) this.chatPanel.post(this.snapshot());
    this.updateTitle();
  }

  private statusFor(session: ChatSession): StatusView {
    const offer = this.serverOfferFor(session);
    return { ...session.status(), ...(offer ? { serverOffer: offer } : {}) };
  }

  /**
   * What the panel offers when the room's server is this machine's and is not
   * running: Restart after a crash (with the last choices), else Start.
   */
  private serverOfferFor(session: ChatSession): ServerOffer | undefined {
    if (!isLoopbackHost(session.params.host) || session.isConnected) return undefined;
    const state = this.server.controller.state;
    if (state.kind === 'running' || state.kind === 'starting' || state.kind === 'stopping') return undefined;
    const port = state.kind === 'crashed' ? state.choices.port : readSettings().serverPort;
    if (session.params.port !== port) return undefined;
    return state.kind === 'crashed' ? 'restart' : 'start';
  }

  private title(): string {
    const room = this.sessions.session?.room;
    const base = room ? `Chat: ${room}` : 'Chat Room';
    return this.unread > 0 ? `${base} (${this.unread})` : base;
  }

  private updateTitle(): void {
    if (this.chatPanel) this.chatPanel.title = this.title();
  }
}
