/**
 * The extension's one controller: it owns the server this window holds, the
 * joined room, the panel and the status bar, and carries out every command.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Disposable, type IDisposable, toDisposable } from '../shared/disposable';
import { nameKey } from '../shared/names';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { PanelView, ServerOffer, StatusView, WebviewToHost } from '../shared/webviewMessages';
import { formatAddress } from './address';
import { type FirstOutcome, textBytes } from './client/chatClient';
import { type RememberedJoin, StoredState } from './storedState';
import { ChatPanel, type PanelHost } from './chatPanel';
import { ChatSession, type JoinParams } from './chatSession';
import { inviteFromParts, inviteLink } from './invite';
import { type JoinArgs, type JoinResult, runJoinFlow } from './joinFlow';
import { findFreePort, PortBusyError, ServerController, type ServerState } from './serverController';
import { type ServerChoices, ServerHome } from './serverHome';
import { isLoopbackHost, isReachableThroughLoopback } from '../shared/addresses';
import { readSettings } from './settings';
import { MessageNotifier } from './messageNotifier';
import { inertNotificationText } from './notificationText';


/** Whether a send was taken, or why not (the text then stays in the message box). */
export type SendOutcome = { accepted: true } | { accepted: false; reason: string };

export interface StartServerArgs {
  port?: number;
  host?: string;
  /**
   * Open to the LAN: require a token and serve TLS. Without a `host` it binds
   * all interfaces (or the configured non-loopback bind address). Defaults to
   * whether `host` is beyond loopback; asked when the command has no arguments.
   */
  lan?: boolean;
  /** Join the room once started (overrides the setting). */
  join?: boolean;
}

export type StartServerResult =
  | { started: true; host: string; port: number; lan: boolean; fingerprint?: string }
  | { started: false; reason: string; code?: 'port_busy' | 'already_running' | 'failed' | 'cancelled'; suggestedPort?: number };

const THIS_MACHINE_ONLY = 'This machine only';
const OPEN_TO_LAN = 'Open to LAN (token + TLS)';

export class ChatRoomController extends Disposable implements PanelHost {
  readonly server: ServerController;
  private session: ChatSession | undefined;
  private sessionListeners: IDisposable[] = [];
  /** A join under way while we are still in a room: it replaces the room only once welcomed. */
  private pendingJoin: ChatSession | undefined;
  /** The rejoin after a reload, started by activation or by the restored panel, whichever comes first. */
  private rejoining: Promise<void> | undefined;
  /** What the room showed when we left it, so the panel keeps the conversation on screen. */
  private leftRoom: { entries: ChatSession['entries']; reason: string } | undefined;
  private chatPanel: ChatPanel | undefined;
  private unreadCount = 0;
  private readonly notifier = new MessageNotifier(() => this.openPanel({ focus: true }));
  private readonly serverItem: vscode.StatusBarItem;
  private readonly chatItem: vscode.StatusBarItem;
  private readonly clientId: string;
  private readonly stored: StoredState;
  /** The last invite link made, for tests. */
  lastInvite: string | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    readonly serverLog: vscode.LogOutputChannel,
  ) {
    super();
    this.stored = StoredState.of(context);
    this.clientId = this.stored.installationClientId();
    const home = new ServerHome(path.join(context.globalStorageUri.fsPath, 'server-data'));
    this.server = this.register(
      new ServerController(vscode.Uri.joinPath(context.extensionUri, 'dist', 'server.js').fsPath, home, serverLog, () => readSettings().keepAliveMs, () => this.stored.serverToken()),
    );
    this.register(this.server.onDidChangeState((state) => this.onServerState(state)));
    this.serverItem = this.register(vscode.window.createStatusBarItem('chatRoom.server', vscode.StatusBarAlignment.Left, 50));
    this.serverItem.name = 'Chat Room Server';
    this.serverItem.command = 'chatRoom.showServerLog';
    this.chatItem = this.register(vscode.window.createStatusBarItem('chatRoom.chat', vscode.StatusBarAlignment.Left, 49));
    this.chatItem.name = 'Chat Room';
    this.chatItem.command = 'chatRoom.openPanel';
    this.register(toDisposable(() => this.endSession()));
    this.register(toDisposable(() => this.pendingJoin?.dispose()));
    this.register(toDisposable(() => this.chatPanel?.dispose()));
    // A server this installation runs may be up already (started by another window, or before a reload).
    void this.server.attach();
    // So may the room this window was in: the room is not the panel, and a reload with the panel closed keeps it.
    void this.rejoinRememberedRoom();
  }

  /**
   * The window is closing or reloading: leave the room on purpose (the others
   * see "left", within a second) and let go of the server, which keeps running.
   */
  async windowClosing(): Promise<void> {
    this.server.letGo();
    const session = this.session;
    if (session) await session.leave();
  }

  get currentSession(): ChatSession | undefined {
    return this.session;
  }

  get panel(): ChatPanel | undefined {
    return this.chatPanel;
  }

  get unread(): number {
    return this.unreadCount;
  }

  get installationClientId(): string {
    return this.clientId;
  }

  // ------------------------------------------------------------ server

  async startServer(args?: StartServerArgs): Promise<StartServerResult> {
    const interactive = args === undefined;
    const settings = readSettings();
    if (this.server.state.kind === 'running' || this.server.state.kind === 'starting') {
      const where = this.server.state.kind === 'running' ? ` on ${formatAddress(this.server.state)}` : '';
      if (interactive) void vscode.window.showInformationMessage(`The chat server is already running${where}.`);
      return { started: false, reason: 'already running', code: 'already_running' };
    }
    let openToLan = args?.lan ?? (args?.host !== undefined ? !isLoopbackHost(args.host) : undefined);
    if (openToLan === undefined && interactive) {
      openToLan = await askOpenToLan(!isLoopbackHost(settings.bindAddress));
      if (openToLan === undefined) return { started: false, reason: 'cancelled', code: 'cancelled' };
    }
    openToLan ??= !isLoopbackHost(settings.bindAddress);
    const host = args?.host ?? (openToLan ? (isLoopbackHost(settings.bindAddress) ? '0.0.0.0' : settings.bindAddress) : isLoopbackHost(settings.bindAddress) ? settings.bindAddress : '127.0.0.1');
    const port = args?.port ?? settings.serverPort;
    return this.runServer({ host, port, lan: openToLan, ...(settings.classicPort ? { classicPort: settings.classicPort } : {}) }, interactive, args?.join);
  }

  /**
   * Starts the server again with the choices it last ran with, asking nothing
   * (the Restart button). Without any (the panel's Start Server for a room on
   * this machine), it serves that room's port to this machine only.
   */
  async restartServer(): Promise<StartServerResult> {
    if (this.server.state.kind === 'running' || this.server.state.kind === 'starting') return { started: false, reason: 'already running', code: 'already_running' };
    const session = this.session;
    const classicPort = readSettings().classicPort;
    const choices: ServerChoices | undefined =
      this.server.lastChoices ?? (session && isLoopbackHost(session.params.host) ? { host: '127.0.0.1', port: session.params.port, lan: false, ...(classicPort ? { classicPort } : {}) } : undefined);
    if (!choices) return this.startServer();
    return this.runServer(choices, false, false);
  }

  private async runServer(choices: ServerChoices, interactive: boolean, join: boolean | undefined): Promise<StartServerResult> {
    const settings = readSettings();
    let { port } = choices;
    const { host, lan: openToLan } = choices;
    // Anyone who can reach the port could join, so beyond loopback a token is a must, and TLS keeps it (and the talk) private.
    const token = openToLan || !isLoopbackHost(host) ? await this.stored.serverTokenOrNew() : undefined;
    const tls = openToLan;

    for (let tries = 0; tries < 2; tries++) {
      try {
        const running = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `Starting chat server on ${formatAddress({ host, port })}` }, () =>
          this.server.start({ choices: { ...choices, port }, ...(token ? { token } : {}), tls, keepAliveMs: settings.keepAliveMs }),
        );
        this.log.info(`Chat server running on ${formatAddress(running)}${running.fingerprint ? `, TLS certificate fingerprint (SHA-256) ${running.fingerprint}` : ''}`);
        const joinAddress = formatAddress({ host: isReachableThroughLoopback(host) ? '127.0.0.1' : host, port: running.port });
        // Our own server: its token and certificate are known, so joining it asks for neither.
        const ownCredentials: JoinArgs = { ...(token ? { token } : {}), ...(running.fingerprint ? { fingerprint: running.fingerprint } : {}) };
        if (this.sessionIsOnOurServer()) {
          // Already in a room there (a restart): back in at once, and nobody in the room is offered "Join".
          this.session?.client.reconnectNow();
          if (interactive) void vscode.window.setStatusBarMessage(`$(radio-tower) Chat server back on ${formatAddress(running)}`, 5_000);
        } else if (join ?? settings.joinOnStart) {
          await this.joinFlow(interactive ? { address: joinAddress, ...ownCredentials } : { address: joinAddress, name: readSettings().defaultName || 'host', ...ownCredentials });
        } else if (interactive) {
          void vscode.window.showInformationMessage(describeRunningServer(running, openToLan), 'Join', 'Copy Invite').then((choice) => {
            if (choice === 'Join') void this.joinFlow({ address: joinAddress, confirm: true, ...ownCredentials });
            if (choice === 'Copy Invite') void this.copyInvite();
          });
        }
        return { started: true, host, port: running.port, lan: openToLan, ...(running.fingerprint ? { fingerprint: running.fingerprint } : {}) };
      } catch (error) {
        if (error instanceof PortBusyError) {
          const suggestedPort = await findFreePort(host);
          if (!interactive) return { started: false, reason: error.message, code: 'port_busy', suggestedPort };
          const useOther = `Use Port ${suggestedPort}`;
          const choice = await vscode.window.showWarningMessage(
            `${error.message} Another program, or another chat server, is using it.`,
            useOther,
            'Join the Server There',
          );
          if (choice === useOther) {
            port = suggestedPort;
            continue;
          }
          if (choice === 'Join the Server There') void this.joinFlow({ address: formatAddress({ host: isLoopbackHost(host) ? host : '127.0.0.1', port }), confirm: true });
          return { started: false, reason: error.message, code: 'port_busy', suggestedPort };
        }
        const reason = error instanceof Error ? error.message : String(error);
        this.log.error(`Could not start the chat server: ${reason}`);
        if (interactive) {
          void vscode.window.showErrorMessage(`Could not start the chat server: ${reason}`, 'Show Server Log').then((choice) => {
            if (choice) this.serverLog.show(true);
          });
        }
        return { started: false, reason, code: 'failed' };
      }
    }
    return { started: false, reason: 'gave up', code: 'failed' };
  }

  async stopServer(): Promise<boolean> {
    const kind = this.server.state.kind;
    if (kind === 'stopped' || kind === 'crashed') {
      // A crashed server is dismissed: the status bar stops offering to restart it.
      if (kind === 'crashed') await this.server.stop();
      void vscode.window.showInformationMessage('The chat server is not running.');
      return false;
    }
    await this.server.stop();
    void vscode.window.showInformationMessage('The chat server has stopped.');
    return true;
  }

  private onServerState(state: ServerState): void {
    if (state.kind === 'crashed' && state.seen) {
      // Restart comes first: it is what the person wants, and it asks nothing again.
      void vscode.window.showErrorMessage(state.reason, 'Restart', 'Show Server Log').then((choice) => {
        if (choice === 'Show Server Log') this.serverLog.show(true);
        if (choice === 'Restart') void this.restartServer();
      });
    }
    this.updateStatusBar();
    // The panel's offer to start or restart the server follows the server's state.
    if (this.session) this.chatPanel?.post({ type: 'status', status: this.statusForPanel(this.session) });
  }

  /** Whether the current room is on the server this installation runs. */
  private sessionIsOnOurServer(): boolean {
    const session = this.session;
    const state = this.server.state;
    return session !== undefined && state.kind === 'running' && session.params.port === state.port && (isLoopbackHost(session.params.host) || session.params.host === state.host);
  }

  /**
   * What the panel offers when the room's server is this machine's and is not
   * running: Restart after a crash (with the last choices), else Start.
   */
  private serverOfferFor(session: ChatSession): ServerOffer | undefined {
    if (!isLoopbackHost(session.params.host) || session.isConnected) return undefined;
    const state = this.server.state;
    if (state.kind === 'running' || state.kind === 'starting' || state.kind === 'stopping') return undefined;
    const port = state.kind === 'crashed' ? state.choices.port : readSettings().serverPort;
    if (session.params.port !== port) return undefined;
    return state.kind === 'crashed' ? 'restart' : 'start';
  }

  private statusForPanel(session: ChatSession): StatusView {
    const offer = this.serverOfferFor(session);
    return { ...session.status(), ...(offer ? { serverOffer: offer } : {}) };
  }

  // ------------------------------------------------------------ room

  joinFlow(args?: JoinArgs): Promise<JoinResult> {
    return runJoinFlow({ stored: this.stored, join: (params) => this.join(params) }, args);
  }

  /**
   * Connects to a room. While in another room, that room is kept until the new
   * one has welcomed us (a refused name changes nothing), and then left on
   * purpose. The panel opens, with the focus in its message box, once welcomed.
   * A rejoin after a reload (`rejoin`) keeps trying while the server is away,
   * and leaves the panel as the person left it.
   */
  async join(params: JoinParams, rejoin = false): Promise<FirstOutcome> {
    const current = this.session;
    // Joining the room we are in, under the name we have: nothing to change.
    if (current && current.lastWelcome && sameSeat(current.params, params) && current.client.state.kind !== 'closed') {
      current.client.reconnectNow();
      this.openPanel({ focus: true });
      return { kind: 'welcome', welcome: current.lastWelcome };
    }
    const candidate = new ChatSession(params, this.clientId, this.stored.outboxes, readSettings().historyLength, this.log);
    if (!current || current.client.state.kind === 'closed') {
      this.adoptSession(candidate);
      current?.dispose();
      const outcome = await candidate.start();
      if (this.session !== candidate) return outcome;
      if (outcome.kind === 'welcome') this.welcomed(candidate, !rejoin);
      else if (!rejoin) this.endSession();
      this.updateStatusBar();
      return outcome;
    }
    this.pendingJoin?.dispose();
    this.pendingJoin = candidate;
    const outcome = await candidate.start();
    if (this.pendingJoin !== candidate) {
      candidate.dispose();
      return outcome;
    }
    this.pendingJoin = undefined;
    if (outcome.kind !== 'welcome') {
      candidate.dispose();
      return outcome;
    }
    const previous = this.session;
    this.adoptSession(candidate);
    if (previous) {
      this.log.info(`Left ${previous.room} for ${candidate.room}`);
      void previous.leave().finally(() => previous.dispose());
    }
    this.welcomed(candidate, true);
    return outcome;
  }

  private welcomed(session: ChatSession, showPanel: boolean): void {
    void this.stored.rememberCurrentRoom({ host: session.params.host, port: session.params.port, name: session.params.name, room: session.room });
    if (showPanel) this.openPanel({ focus: true });
    this.updateStatusBar();
  }

  /** Makes `session` the room this window shows; the one before it is no longer listened to (the caller ends it). */
  private adoptSession(session: ChatSession): void {
    for (const listener of this.sessionListeners.splice(0)) listener.dispose();
    this.session = session;
    this.leftRoom = undefined;
    this.unreadCount = 0;
    this.sessionListeners = [
      session.onAppend(({ entries, live }) => {
        this.chatPanel?.post({ type: 'append', entries });
        if (live) for (const entry of entries) if (entry.kind === 'message' && !entry.mine) this.onLiveMessage(entry.from, entry.text);
      }),
      session.onStatus(() => {
        this.chatPanel?.post({ type: 'status', status: this.statusForPanel(session) });
        this.updateStatusBar();
      }),
      session.onOutbox((pending) => this.chatPanel?.post({ type: 'outbox', pending })),
      session.onSendFailure((failure) => {
        this.chatPanel?.post({ type: 'sendFailed', id: failure.id, text: failure.text, reason: failure.reason });
        void vscode.window.showWarningMessage(`A message was not sent: ${inertNotificationText(failure.reason, 300)}`);
      }),
    ];
    this.redrawPanel();
  }

  /** Leave Room: says bye (the others see "left"), and the panel says so and offers Join. */
  async leave(): Promise<boolean> {
    const session = this.session;
    if (!session) {
      void vscode.window.showInformationMessage('You are not in a chat room.');
      return false;
    }
    this.pendingJoin?.dispose();
    this.pendingJoin = undefined;
    void this.stored.rememberCurrentRoom(undefined);
    const unsent = session.pending.length;
    const kept = unsent === 0 ? '' : ` ${unsent === 1 ? 'One unsent message goes' : `${unsent} unsent messages go`} out when you join it again.`;
    this.endSession(false);
    this.leftRoom = { entries: [...session.entries], reason: `You left ${session.room}.${kept}` };
    this.redrawPanel();
    this.log.info(`Left ${session.room}`);
    await session.leave();
    session.dispose();
    return true;
  }

  /** Stops listening to the session (and disposes it, unless the caller still needs it); the panel is redrawn. */
  private endSession(dispose = true): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    for (const listener of this.sessionListeners.splice(0)) listener.dispose();
    if (dispose) session.dispose();
    this.unreadCount = 0;
    this.redrawPanel();
    this.updateStatusBar();
  }

  private onLiveMessage(from: string, text: string): void {
    const panelVisible = this.chatPanel?.visible === true;
    if (panelVisible) return;
    this.unreadCount += 1;
    this.updateTitle();
    this.updateStatusBar();
    this.notifier.notify(from, text, this.session?.mentionsMe(text) === true);
  }

  // ------------------------------------------------------------ panel

  /** Shows the panel; with `focus`, the keyboard lands in its message box. */
  openPanel({ focus = false }: { focus?: boolean } = {}): ChatPanel {
    const panel = this.chatPanel ?? this.adoptPanel(ChatPanel.create(this.context.extensionUri, this, this.panelTitle()));
    panel.reveal();
    if (focus) panel.focusInput();
    return panel;
  }

  /** A panel brought back after a window reload: show it again, and the room this window was in (unless it was left). */
  restorePanel(webviewPanel: vscode.WebviewPanel): void {
    this.chatPanel?.dispose();
    this.adoptPanel(new ChatPanel(webviewPanel, this.context.extensionUri, this));
    void this.rejoinRememberedRoom();
  }

  /** Rejoins, once, the room this window was in before a reload (kept until Leave Room). */
  private rejoinRememberedRoom(): Promise<void> {
    this.rejoining ??= (async () => {
      const current: RememberedJoin | undefined = this.stored.currentRoom();
      if (this.session || !current) return;
      const { host, port, name, room } = current;
      const credentials = await this.stored.rememberedCredentials(host, port);
      if (!this.session && !this.isDisposed) await this.join({ host, port, name, room, ...credentials }, true);
    })();
    return this.rejoining;
  }

  private adoptPanel(panel: ChatPanel): ChatPanel {
    this.chatPanel = panel;
    panel.title = this.panelTitle();
    panel.onDidDispose(() => {
      if (this.chatPanel === panel) this.chatPanel = undefined;
    });
    panel.onDidChangeVisibility((visible) => {
      if (visible) {
        this.notifier.seen();
        this.unreadCount = 0;
        this.updateTitle();
        this.updateStatusBar();
      }
    });
    if (panel.visible) this.unreadCount = 0;
    this.updateStatusBar();
    return panel;
  }

  /** Redraws the panel from a fresh snapshot (after joining or leaving). */
  private redrawPanel(): void {
    if (this.chatPanel?.isReady) this.snapshotFor(this.chatPanel);
    this.updateTitle();
  }

  snapshotFor(panel: ChatPanel): void {
    const session = this.session;
    const notInRoom: StatusView = { connection: { kind: 'disconnected', reason: this.leftRoom?.reason ?? 'You are not in a room.' }, members: [], memberCount: 0, inRoom: false };
    panel.post({
      type: 'snapshot',
      status: session ? this.statusForPanel(session) : notInRoom,
      entries: session ? [...session.entries] : [...(this.leftRoom?.entries ?? [])],
      pending: session ? [...session.pending] : [],
      historyLimit: readSettings().historyLength,
      maxTextBytes: DEFAULT_LIMITS.maxTextBytes,
    });
  }

  handleMessage(message: WebviewToHost, panel?: ChatPanel): void {
    switch (message.type) {
      case 'send': {
        const outcome = this.trySend(message.text);
        (panel ?? this.chatPanel)?.post({ type: 'sendResult', inReplyTo: message.requestId, ...outcome });
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
      case 'reconnect':
        this.session?.client.reconnectNow();
        return;
      case 'join':
        void this.joinFlow();
        return;
      case 'startServer':
        void this.restartServer();
        return;
      default:
        return;
    }
  }

  /** Queues text for the room, or says why it cannot (nothing is queued then). */
  trySend(text: string): SendOutcome {
    if (!text.trim()) return { accepted: false, reason: 'The message is empty.' };
    const session = this.session;
    if (!session) return { accepted: false, reason: 'You are not in a room. Join one to send this.' };
    const state = session.client.state;
    if (state.kind === 'closed') return { accepted: false, reason: `You are not in ${session.room}: ${state.reason}` };
    const bytes = textBytes(text);
    if (bytes > DEFAULT_LIMITS.maxTextBytes) {
      return { accepted: false, reason: `This message is ${bytes.toLocaleString('en-US')} bytes; a message may be at most ${DEFAULT_LIMITS.maxTextBytes.toLocaleString('en-US')}. Shorten it or split it.` };
    }
    session.say(text);
    return { accepted: true };
  }

  /** Sends text to the room (Send Selection); false, with a message to the person, when it cannot. */
  sendText(text: string): boolean {
    const outcome = this.trySend(text);
    if (outcome.accepted) return true;
    if (!this.session) {
      void vscode.window.showWarningMessage('Join a chat room first.', 'Join Room').then((choice) => {
        if (choice) void this.joinFlow();
      });
    } else {
      void vscode.window.showWarningMessage(outcome.reason);
    }
    return false;
  }

  async probePanel(): Promise<PanelView | undefined> {
    return this.chatPanel ? this.chatPanel.probe() : undefined;
  }

  /** Acts as if the webview had posted `message` (tests use it to drive the host). */
  receiveFromPanel(message: WebviewToHost): void {
    this.handleMessage(message);
  }

  // ------------------------------------------------------------ selection and invites

  sendSelection(): boolean {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage('Open a file and select some code to send.');
      return false;
    }
    const selection = editor.selection;
    const range = selection.isEmpty ? editor.document.lineAt(selection.active.line).range : selection;
    const code = editor.document.getText(range).replace(/\s+$/, '');
    if (!code) return false;
    const where = `${vscode.workspace.asRelativePath(editor.document.uri, false)}:${range.start.line + 1}`;
    // The fence must be longer than any run of backticks inside the code.
    const longestRun = Math.max(2, ...(code.match(/`+/g) ?? []).map((run) => run.length));
    const fence = '`'.repeat(longestRun + 1);
    const text = `${where}\n${fence}${editor.document.languageId}\n${code}\n${fence}`;
    return this.sendText(text);
  }

  async copyInvite(): Promise<string | undefined> {
    const state = this.server.state;
    let host: string;
    let port: number;
    let room = 'lobby';
    let token: string | undefined;
    let fingerprint: string | undefined;
    if (this.session) {
      ({ host, port, token, fingerprint } = this.session.params);
      room = this.session.room;
    } else if (state.kind === 'running') {
      ({ host, port, token, fingerprint } = state);
    } else {
      void vscode.window.showInformationMessage('Start a chat server or join a room first; the invite points to it.');
      return undefined;
    }
    // A server this window runs on all interfaces is reached by teammates through a LAN address.
    let otherLanAddresses: string[] = [];
    if (state.kind === 'running' && port === state.port && isReachableThroughLoopback(host) && !isLoopbackHost(state.host)) {
      const [first, ...others] = lanAddresses();
      host = first ?? host;
      otherLanAddresses = others;
      token = token ?? state.token;
      fingerprint = fingerprint ?? state.fingerprint;
    }
    if (host === '0.0.0.0' || host === '::') host = '127.0.0.1';
    const link = inviteLink(vscode.env.uriScheme, this.context.extension.id, host, port, room, token, fingerprint);
    await vscode.env.clipboard.writeText(link);
    this.lastInvite = link;
    // The shown text names addresses only; the token stays in the link on the clipboard.
    const alsoAt = otherLanAddresses.length > 0 ? ` (this machine is also at ${otherLanAddresses.map((other) => formatAddress({ host: other, port })).join(', ')})` : '';
    const carries = [token ? 'the token' : '', fingerprint ? 'the TLS certificate fingerprint' : ''].filter(Boolean).join(' and ');
    void vscode.window.showInformationMessage(
      `Invite to ${room} on ${formatAddress({ host, port })}${alsoAt} copied.${carries ? ` It carries ${carries}${token ? '; share it privately' : ''}.` : ''}`,
    );
    return link;
  }

  /** vscode://chat-room.chat-room/join?host=…&port=…&room=… lands in the Join flow with the values filled in. */
  handleUri(uri: vscode.Uri): void {
    const invite = inviteFromParts(uri.path, uri.query);
    if (!invite) {
      void vscode.window.showWarningMessage(`Chat Room does not know the link ${inertNotificationText(uri.path, 200)}.`);
      return;
    }
    void this.joinFlow({ confirm: true, ...invite });
  }

  // ------------------------------------------------------------ status bar and title

  private panelTitle(): string {
    const room = this.session?.room;
    const base = room ? `Chat: ${room}` : 'Chat Room';
    return this.unreadCount > 0 ? `${base} (${this.unreadCount})` : base;
  }

  private updateTitle(): void {
    if (this.chatPanel) this.chatPanel.title = this.panelTitle();
  }

  private updateStatusBar(): void {
    const state = this.server.state;
    const session = this.session;
    if (state.kind === 'stopped') {
      this.serverItem.hide();
    } else {
      const members = session && state.kind === 'running' && session.params.port === state.port && session.isConnected ? ` · ${session.memberCount} in ${session.room}` : '';
      switch (state.kind) {
        case 'starting':
          this.serverItem.text = `$(loading~spin) Chat server ${formatAddress(state)}`;
          break;
        case 'running':
          this.serverItem.text = `$(radio-tower) Chat server ${formatAddress(state)}${members}`;
          break;
        case 'stopping':
          this.serverItem.text = '$(loading~spin) Chat server stopping';
          break;
        case 'crashed':
          this.serverItem.text = '$(error) Chat server stopped';
          break;
      }
      this.serverItem.tooltip = state.kind === 'crashed' ? `${state.reason}\nClick to show the server log; Start Chat Server or the panel restarts it.` : 'Chat Room server. Click to show its log.';
      this.serverItem.backgroundColor = state.kind === 'crashed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
      this.serverItem.show();
    }

    if (!session) {
      this.chatItem.hide();
      return;
    }
    const connection = session.client.state.kind;
    const icon = connection === 'connected' ? '$(comment-discussion)' : connection === 'closed' ? '$(debug-disconnect)' : '$(sync~spin)';
    const unread = this.unreadCount > 0 ? ` · ${this.unreadCount} unread` : '';
    this.chatItem.text = `${icon} ${session.room}${unread}`;
    this.chatItem.tooltip = `Chat Room: ${session.room} on ${session.address} (${connection}). Click to open the chat.`;
    this.chatItem.backgroundColor = connection === 'connected' ? undefined : new vscode.ThemeColor('statusBarItem.warningBackground');
    this.chatItem.show();
  }
}

/** Whether two joins would take the same seat: one server, one room, one name. */
function sameSeat(a: JoinParams, b: JoinParams): boolean {
  return a.host === b.host && a.port === b.port && a.room === b.room && nameKey(a.name) === nameKey(b.name);
}

/** Opens an http(s) link through VS Code, which asks the person first; anything else is ignored. */
async function openLink(href: string): Promise<void> {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return;
  }
  // Only the web: never command:, file:, javascript: or any other scheme a stranger could use.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
  await vscode.env.openExternal(vscode.Uri.parse(url.toString(), true));
}

/** Opens a workspace-relative `path` at `line`, if some workspace folder has that file. */
async function openWorkspacePath(relative: string, line: number): Promise<boolean> {
  const parts = relative.replace(/\\/g, '/').split('/').filter(Boolean);
  // Only files inside the workspace: no absolute paths, no climbing out with `..`.
  if (parts.length === 0 || parts.includes('..') || relative.startsWith('/') || /^[A-Za-z]:/.test(relative)) return false;
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    const candidates = [vscode.Uri.joinPath(folder.uri, ...parts)];
    // asRelativePath prefixes the folder name in multi-root workspaces.
    if (parts[0] === folder.name && parts.length > 1) candidates.push(vscode.Uri.joinPath(folder.uri, ...parts.slice(1)));
    for (const uri of candidates) {
      try {
        const stat = await vscode.workspace.fs.stat(uri);
        if (stat.type & vscode.FileType.File) {
          const position = new vscode.Position(Math.max(0, line - 1), 0);
          await vscode.window.showTextDocument(uri, { selection: new vscode.Range(position, position), preview: true, viewColumn: vscode.ViewColumn.One });
          return true;
        }
      } catch {
        // Not in this folder; try the next.
      }
    }
  }
  void vscode.window.showInformationMessage(`${relative} is not in this workspace.`);
  return false;
}

/** This machine's IPv4 addresses that other machines on the network can reach. */
function lanAddresses(): string[] {
  const found: string[] = [];
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) found.push(address.address);
  }
  return found;
}

/** Asks where "Start Chat Server" should be reachable from; undefined when dismissed. */
async function askOpenToLan(lanFirst: boolean): Promise<boolean | undefined> {
  const items: vscode.QuickPickItem[] = [
    { label: THIS_MACHINE_ONLY, description: 'loopback', detail: 'Only chat clients on this computer can join.' },
    { label: OPEN_TO_LAN, description: 'token and TLS', detail: 'Teammates on your network join with an invite link, which carries a token and the certificate fingerprint.' },
  ];
  if (lanFirst) items.reverse();
  const picked = await vscode.window.showQuickPick(items, { title: 'Start Chat Server', placeHolder: 'Who may connect?', ignoreFocusOut: true });
  return picked === undefined ? undefined : picked.label === OPEN_TO_LAN;
}

/** What the "server started" notification says; never the token. */
function describeRunningServer({ host, port, fingerprint }: { host: string; port: number; fingerprint?: string }, openToLan: boolean): string {
  if (!openToLan) return `Chat server running on ${formatAddress({ host, port })}.`;
  const addresses = lanAddresses().map((host) => formatAddress({ host, port }));
  const where = addresses.length > 0 ? `at ${addresses.join(', ')}` : `on port ${port} (no LAN address found)`;
  return `Chat server open to your LAN ${where}, with a token and TLS${fingerprint ? ` (certificate fingerprint ${fingerprint})` : ''}. Copy the invite to let teammates in.`;
}
