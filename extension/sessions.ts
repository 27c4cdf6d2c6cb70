/**
 * The conversations this window has: the session manager owns one connection
 * per server and name (a {@link ServerSessionV2} carrying many rooms and DMs),
 * or, for a server from before protocol 2, one v1 connection per server
 * ({@link ChatSession}, one room at a time). One conversation is the active
 * one, shown in the chat view. The manager carries out Join Room, Leave Room,
 * switching and a rejoin after a reload, and passes on what every
 * conversation says, so the view, the status bar and the notifications listen
 * in one place.
 */
import * as vscode from 'vscode';
import { combinedDisposable, Disposable, type IDisposable, MutableDisposable } from '../shared/disposable';
import { nameKey, roomKey } from '../shared/names';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { ChatEntry, MessageEntry, PendingView } from '../shared/webviewMessages';
import { formatAddress } from './address';
import { ChatSession, type SessionParams } from './chatSession';
import { type RefusalCode, type SendFailure, textBytes } from './client/chatClient';
import { type JoinRoomArgs, type JoinRoomResult, runJoinFlow } from './joinFlow';
import type { RoomSession } from './roomSession';
import { ServerSessionV2, type V2Conversation } from './serverSessionV2';
import { readSettings } from './settings';
import type { RememberedJoin, StoredState } from './storedState';

/** Whether a send was taken, or why not (the text then stays in the message box). */
export type SendOutcome = { accepted: true } | { accepted: false; reason: string };

/** How joining went, for the Join flow. */
export type JoinOutcome = { kind: 'welcome'; you: string; room: string } | { kind: 'refused'; code: RefusalCode | string; message: string } | { kind: 'unreachable'; reason: string };

/** What a room showed when it was left, so the view keeps the conversation on screen. */
export interface LeftRoom {
  entries: readonly ChatEntry[];
  reason: string;
}

export class SessionManager extends Disposable {
  private readonly servers = new Map<string, ServerSessionV2>();
  /** Per server address: the v1 room this window is in there (protocol 1 has one room a connection). */
  private readonly v1Rooms = new Map<string, ChatSession>();
  /** Servers found to speak protocol 1 only, by address; asked again after a reload. */
  private readonly v1Only = new Set<string>();
  private readonly conversationListeners = new Map<string, IDisposable>();
  private readonly activeHolder = this.register(new MutableDisposable<{ dispose(): void; session: RoomSession }>());
  /** The rejoin after a reload, started by activation or by the restored view, whichever comes first. */
  private rejoining: Promise<void> | undefined;
  private left: LeftRoom | undefined;

  private readonly sessionEmitter = this.register(new vscode.EventEmitter<RoomSession | undefined>());
  private readonly welcomeEmitter = this.register(new vscode.EventEmitter<{ session: RoomSession; showPanel: boolean }>());
  private readonly appendEmitter = this.register(new vscode.EventEmitter<{ session: RoomSession; entries: ChatEntry[]; live: boolean }>());
  private readonly updateEmitter = this.register(new vscode.EventEmitter<{ session: RoomSession; entries: MessageEntry[] }>());
  private readonly statusEmitter = this.register(new vscode.EventEmitter<RoomSession>());
  private readonly outboxEmitter = this.register(new vscode.EventEmitter<{ session: RoomSession; pending: PendingView[] }>());
  private readonly failureEmitter = this.register(new vscode.EventEmitter<SendFailure>());
  private readonly typingEmitter = this.register(new vscode.EventEmitter<{ session: RoomSession; names: string[] }>());
  private readonly listEmitter = this.register(new vscode.EventEmitter<void>());
  /** The active conversation changed (undefined: none). */
  readonly onDidChangeSession = this.sessionEmitter.event;
  /** A room let us in; `showPanel` is false for a quiet rejoin after a reload. */
  readonly onDidWelcome = this.welcomeEmitter.event;
  /** New entries in a conversation; `live` is false for history that came with joining. */
  readonly onDidAppend = this.appendEmitter.event;
  /** Messages already shown changed (edits, deletions, reactions). */
  readonly onDidUpdate = this.updateEmitter.event;
  /** A conversation's connection or members changed. */
  readonly onDidChangeStatus = this.statusEmitter.event;
  readonly onDidChangeOutbox = this.outboxEmitter.event;
  /** The server refused a message for good. */
  readonly onDidFailToSend = this.failureEmitter.event;
  readonly onDidType = this.typingEmitter.event;
  private readonly resetEmitter = this.register(new vscode.EventEmitter<RoomSession>());
  /** A conversation's history was replaced (cluster mode): whatever shows it draws it again. */
  readonly onDidReset = this.resetEmitter.event;
  /** Conversations came or went, or their unread counts changed. */
  readonly onDidChangeConversations = this.listEmitter.event;

  constructor(
    private readonly stored: StoredState,
    private readonly clientId: string,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.register({
      dispose: () => {
        this.conversationListeners.forEach((listeners) => listeners.dispose());
        this.servers.forEach((server) => server.dispose());
        this.v1Rooms.forEach((session) => session.dispose());
      },
    });
  }

  /** The conversation the view shows. */
  get session(): RoomSession | undefined {
    return this.activeHolder.value?.session;
  }

  /** Every conversation this window has, in the order they were joined. */
  get conversations(): RoomSession[] {
    return [...[...this.servers.values()].flatMap((server) => server.conversations), ...this.v1Rooms.values()];
  }

  /** Unread messages over every conversation: the view's badge. */
  get totalUnread(): number {
    return this.conversations.reduce((sum, conversation) => sum + conversation.unread, 0);
  }

  /** The room left last, while no other is shown. */
  get lastLeft(): LeftRoom | undefined {
    return this.left;
  }

  /** The v2 server of a conversation, when it has one. */
  serverOf(session: RoomSession | undefined): ServerSessionV2 | undefined {
    return session && session.protocol === 2 ? (session as V2Conversation).server : undefined;
  }

  /** Join Room: asks for what was not given, and joins. */
  joinFlow(args?: JoinRoomArgs): Promise<JoinRoomResult> {
    return runJoinFlow({ stored: this.stored, connect: (params) => this.join(params) }, args);
  }

  /** Shows another conversation of this window. */
  activate(key: string): boolean {
    const session = this.conversations.find((candidate) => candidate.key === key);
    if (!session) return false;
    this.setActive(session);
    return true;
  }

  /** The active conversation's v2 side (replies, edits, reactions, search…), when it has one. */
  v2(session: RoomSession | undefined): V2Conversation | undefined {
    return session && session.protocol === 2 ? (session as V2Conversation) : undefined;
  }

  /** Joins another room on the active conversation's server, under the same name (`/join`, or a room picked from the list). */
  joinAnother(room: string): Promise<JoinOutcome> {
    const session = this.session;
    if (!session) {
      return this.joinFlow({ room }).then((result): JoinOutcome => (result.joined ? { kind: 'welcome', you: result.name, room: result.room } : { kind: 'refused', code: result.code ?? 'cancelled', message: result.reason }));
    }
    return this.join({ ...session.params, name: session.me ?? session.params.name, room });
  }

  /**
   * Joins a room and shows it. Other conversations stay (on a protocol 1
   * server, the room there is left once the new one has let us in). A rejoin
   * after a reload (`rejoin`) keeps trying while the server is away, and does
   * not bring the view forward.
   */
  async join(params: SessionParams, rejoin = false): Promise<JoinOutcome> {
    const address = formatAddress(params);
    if (readSettings().protocol === 'auto' && !this.v1Only.has(address)) {
      const outcome = await this.joinV2(params, rejoin);
      if (outcome !== 'v1only') return outcome;
      this.v1Only.add(address);
      this.log.info(`${address} speaks protocol 1 only`);
    }
    return this.joinV1(params, rejoin);
  }

  /** Opens (or finds) a direct-message conversation with `name` on the active conversation's server, and shows it. */
  async openDm(name: string): Promise<JoinOutcome> {
    const server = this.serverOf(this.session);
    if (!server) return { kind: 'refused', code: 'unsupported', message: 'Direct messages need a server that speaks protocol 2.' };
    const opened = await server.openDm([name]);
    if (!opened.ok) return { kind: 'refused', code: opened.code, message: opened.message };
    this.track(opened.conversation);
    this.setActive(opened.conversation);
    this.welcomeEmitter.fire({ session: opened.conversation, showPanel: true });
    return { kind: 'welcome', you: opened.conversation.me ?? '', room: opened.conversation.room };
  }

  /** Leave Room: leaves the active conversation (the others there see "left"); the view shows another, or offers Join. */
  async leave(target: RoomSession | undefined = this.session): Promise<boolean> {
    if (!target) {
      void vscode.window.showInformationMessage('You are not in a chat room.');
      return false;
    }
    const unsent = target.pending.length;
    const kept = unsent === 0 ? '' : ` ${unsent === 1 ? 'One unsent message goes' : `${unsent} unsent messages go`} out when you join it again.`;
    const wasActive = target === this.session;
    this.untrack(target);
    if (target.protocol === 1) {
      this.v1Rooms.delete(target.address);
    }
    const next = this.conversations.find((candidate) => candidate !== target);
    if (wasActive) {
      this.left = { entries: [...target.entries], reason: `You left ${target.title}.${kept}` };
      if (next) this.setActive(next);
      else {
        this.activeHolder.clear();
        void this.stored.rememberCurrentRoom(undefined);
        this.sessionEmitter.fire(undefined);
      }
    }
    this.listEmitter.fire();
    this.log.info(`Left ${target.title}`);
    await target.leave();
    if (target.protocol === 1) target.dispose();
    this.disposeIdleServers();
    return true;
  }

  /** Rejoins, once, the room this window was in before a reload (kept until Leave Room). */
  rejoinRememberedRoom(): Promise<void> {
    this.rejoining ??= (async () => {
      const remembered = this.stored.currentRoom();
      if (this.session || !remembered) return;
      const { host, port, name, room, alternates } = remembered;
      const credentials = await this.stored.rememberedCredentials(host, port);
      if (!this.session && !this.isDisposed) await this.join({ host, port, name, room, ...credentials, ...(alternates ? { alternates } : {}) }, true);
    })();
    return this.rejoining;
  }

  /** Queues text for the active conversation, or says why it cannot (nothing is queued then). */
  trySend(text: string, replyTo?: number): SendOutcome {
    if (!text.trim()) return { accepted: false, reason: 'The message is empty.' };
    const session = this.session;
    if (!session) return { accepted: false, reason: 'You are not in a room. Join one to send this.' };
    const connection = session.status().connection;
    if (connection.kind === 'disconnected') return { accepted: false, reason: `You are not in ${session.title}: ${connection.reason}` };
    const limit = this.serverOf(session)?.maxTextBytes ?? DEFAULT_LIMITS.maxTextBytes;
    const bytes = textBytes(text);
    if (bytes > limit) {
      return { accepted: false, reason: `This message is ${bytes.toLocaleString('en-US')} bytes; a message may be at most ${limit.toLocaleString('en-US')}. Shorten it or split it.` };
    }
    session.say(text, replyTo);
    return { accepted: true };
  }

  /**
   * The window is closing or reloading: leave every room on purpose, so the
   * others see "left" (within a second) rather than "lost connection".
   */
  async windowClosing(): Promise<void> {
    await Promise.all([...[...this.servers.values()].map((server) => server.leave()), ...[...this.v1Rooms.values()].map((session) => session.leave())]);
  }

  // ------------------------------------------------------------ protocol 2

  private async joinV2(params: SessionParams, rejoin: boolean): Promise<JoinOutcome | 'v1only'> {
    const serverKey = `${formatAddress(params)}/${nameKey(params.name)}`;
    let server = this.servers.get(serverKey);
    if (server && server.client.state.kind === 'closed') {
      this.dropServer(serverKey, server);
      server = undefined;
    }
    if (!server) {
      const key = await this.stored.identityKey(params.host, params.port, params.name);
      const created = new ServerSessionV2(
        {
          host: params.host,
          port: params.port,
          name: params.name,
          ...(params.token ? { token: params.token } : {}),
          ...(params.fingerprint ? { fingerprint: params.fingerprint } : {}),
          ...(params.alternates?.length ? { alternates: params.alternates } : {}),
        },
        this.clientId,
        this.stored.outboxes,
        key,
        readSettings().historyLength,
        this.log,
        (kept) => void this.stored.storeIdentityKey(params.host, params.port, params.name, kept),
      );
      const first = await created.start();
      if (first.kind !== 'welcome') {
        if (!(rejoin && first.kind === 'unreachable')) {
          created.dispose();
          if (first.kind === 'v1only') return 'v1only';
          return first.kind === 'refused' ? { kind: 'refused', code: first.code, message: first.message } : { kind: 'unreachable', reason: first.reason };
        }
      }
      server = created;
      this.servers.set(serverKey, server);
      this.register(server.onDidChangeConversations(() => this.listEmitter.fire()));
      this.register(server.onDidAddConversation((conversation) => this.track(conversation)));
      this.register(server.onDidRemoveConversation((conversation) => this.untrack(conversation)));
    }
    const joining = server.join(params.room);
    const early = server.conversationFor(params.room);
    // After a reload the room shows at once, even while its server is still away (its outbox included).
    if (rejoin && early && !this.session) {
      this.track(early);
      this.setActive(early);
    }
    const joined = await joining;
    if (!joined.ok) {
      this.disposeIdleServers();
      return { kind: 'refused', code: joined.code, message: joined.message };
    }
    const conversation = joined.conversation;
    this.track(conversation);
    if (!rejoin || !this.session) this.setActive(conversation);
    this.welcomed(conversation, !rejoin);
    return { kind: 'welcome', you: conversation.me ?? params.name, room: conversation.room };
  }

  private dropServer(key: string, server: ServerSessionV2): void {
    for (const conversation of server.conversations) this.untrack(conversation);
    this.servers.delete(key);
    server.dispose();
  }

  /** A server whose every conversation is gone is let go (bye), unless it is still starting. */
  private disposeIdleServers(): void {
    for (const [key, server] of this.servers) {
      if (server.conversations.length > 0) continue;
      this.servers.delete(key);
      void server.leave().finally(() => server.dispose());
    }
  }

  // ------------------------------------------------------------ protocol 1

  private async joinV1(params: SessionParams, rejoin: boolean): Promise<JoinOutcome> {
    const address = formatAddress(params);
    const present = this.v1Rooms.get(address);
    // Joining the room we are in, under the name we have: nothing to change.
    if (present && present.lastWelcome && sameSeat(present.params, params) && present.client.state.kind !== 'closed') {
      present.client.reconnectNow();
      this.setActive(present);
      this.welcomeEmitter.fire({ session: present, showPanel: true });
      return { kind: 'welcome', you: present.lastWelcome.you, room: present.lastWelcome.room };
    }
    const joining = new ChatSession(params, this.clientId, this.stored.outboxes, readSettings().historyLength, this.log);
    const outcome = await joining.start();
    if (outcome.kind !== 'welcome' && !(rejoin && outcome.kind === 'unreachable')) {
      joining.dispose();
      return outcome.kind === 'refused' ? { kind: 'refused', code: outcome.code, message: outcome.message } : { kind: 'unreachable', reason: outcome.reason };
    }
    // The room we were in on that server is left only now that the new one has let us in.
    const previous = this.v1Rooms.get(address);
    this.v1Rooms.set(address, joining);
    this.track(joining);
    this.setActive(joining);
    if (previous) {
      this.untrack(previous);
      this.log.info(`Left ${previous.room} for ${joining.room}`);
      void previous.leave().finally(() => previous.dispose());
    }
    this.listEmitter.fire();
    this.welcomed(joining, !rejoin);
    return outcome.kind === 'welcome' ? { kind: 'welcome', you: outcome.welcome.you, room: outcome.welcome.room } : { kind: 'unreachable', reason: outcome.reason };
  }

  // ------------------------------------------------------------ plumbing

  private welcomed(session: RoomSession, showPanel: boolean): void {
    if (session === this.session) void this.stored.rememberCurrentRoom(rememberedJoinOf(session));
    this.welcomeEmitter.fire({ session, showPanel });
  }

  private setActive(session: RoomSession): void {
    if (this.session === session) return;
    this.activeHolder.value = { session, dispose: () => undefined };
    this.left = undefined;
    void this.stored.rememberCurrentRoom(rememberedJoinOf(session));
    this.sessionEmitter.fire(session);
    this.listEmitter.fire();
  }

  /** Listens to a conversation (once). */
  private track(session: RoomSession): void {
    if (this.conversationListeners.has(session.key)) return;
    const listeners = [
      session.onAppend(({ entries, live }) => this.appendEmitter.fire({ session, entries, live })),
      session.onUpdate(({ entries }) => this.updateEmitter.fire({ session, entries })),
      session.onStatus(() => this.statusEmitter.fire(session)),
      session.onOutbox((pending) => this.outboxEmitter.fire({ session, pending })),
      session.onSendFailure((failure) => this.failureEmitter.fire(failure)),
      session.onTyping((names) => this.typingEmitter.fire({ session, names })),
      session.onReset(() => this.resetEmitter.fire(session)),
      session.onCounts(() => this.listEmitter.fire()),
    ];
    this.conversationListeners.set(session.key, combinedDisposable(...listeners));
    this.listEmitter.fire();
  }

  private untrack(session: RoomSession): void {
    this.conversationListeners.get(session.key)?.dispose();
    this.conversationListeners.delete(session.key);
  }
}

/** Whether two joins would take the same seat: one server, one room, one name. */
function sameSeat(a: SessionParams, b: SessionParams): boolean {
  return a.host === b.host && a.port === b.port && roomKey(a.room) === roomKey(b.room) && nameKey(a.name) === nameKey(b.name);
}

/** What a window keeps of the conversation it shows, to rejoin it after a reload. */
function rememberedJoinOf(session: RoomSession): RememberedJoin {
  const { host, port, name, alternates } = session.params;
  return { host, port, name, room: session.room, ...(alternates ? { alternates } : {}) };
}
