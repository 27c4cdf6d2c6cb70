/**
 * One joined room: the connection, what the room has said, who is in it, and
 * what is still on its way out. The panel draws from this; the status bar and
 * notifications listen to it. One window is in at most one room at a time.
 */
import type * as vscode from 'vscode';
import { roomKey } from '../shared/names';
import type { RoomEvent, WelcomeFrame } from '../shared/protocol';
import type { ChatEntry, PendingView } from '../shared/webviewMessages';
import { formatAddress, type ServerAddress } from './address';
import { ChatClient, type ClientState, type FirstOutcome } from './client/chatClient';
import type { OutboxStorage } from './client/outbox';
import { ConversationBase, presenceEntry } from './conversationBase';
import { type ConnectionKind, countsAsUnread, type RoomSession } from './roomSession';

/** What one session connects with: the server, the seat (name and room) and its credentials. */
export interface SessionParams {
  host: string;
  port: number;
  name: string;
  room: string;
  token?: string;
  /** Pinned SHA-256 fingerprint of the server's TLS certificate; given, the connection uses TLS. */
  fingerprint?: string;
  /** The other servers of a cluster, tried in turn when the one in use is out of reach. */
  alternates?: ServerAddress[];
}

/** A v1 room: a connection of its own, one room, plain messages. */
export class ChatSession extends ConversationBase implements RoomSession {
  readonly protocol = 1;
  readonly kind = 'room';
  readonly topic = '';
  readonly owner = undefined;
  readonly hasOlder = false;
  readonly client: ChatClient;
  private myName: string | undefined;
  private welcome: WelcomeFrame | undefined;

  constructor(
    readonly params: SessionParams,
    clientId: string,
    outboxes: OutboxStorage,
    historyLimit: number,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super(historyLimit);
    this.client = this.register(new ChatClient({ ...params, clientId, outboxes }));
    this.register(this.client.onState((state) => this.onClientState(state)));
    this.register(this.client.onEvent((event) => this.onRoomEvent(event)));
    this.register(this.client.onOutbox((entries) => this.outboxEmitter.fire(this.pendingViews(entries))));
    this.register(this.client.onSendFailure((failure) => this.failureEmitter.fire(failure)));
    this.register(this.client.onServerError((error) => this.log.warn(`Server said ${error.code}: ${error.message}`)));
  }

  get address(): string {
    return formatAddress(this.params);
  }

  get key(): string {
    return `${this.address}|${roomKey(this.params.room)}`;
  }

  get title(): string {
    return this.params.room;
  }

  get connectionKind(): ConnectionKind {
    return this.client.state.kind;
  }

  get lastSeq(): number {
    return this.client.lastSeq;
  }

  reconnectNow(): void {
    this.client.reconnectNow();
  }

  get room(): string {
    return this.params.room;
  }

  /** The latest welcome, once the server has let us in. */
  get lastWelcome(): WelcomeFrame | undefined {
    return this.welcome;
  }

  /** The name the server welcomed us with. */
  get me(): string | undefined {
    return this.myName;
  }

  get pending(): readonly PendingView[] {
    return this.pendingViews(this.client.pending);
  }

  get isConnected(): boolean {
    return this.client.state.kind === 'connected';
  }

  protected get connectionState(): ClientState {
    return this.client.state;
  }

  start(): Promise<FirstOutcome> {
    this.log.info(`Joining ${this.params.room} on ${this.address} as ${this.params.name}`);
    this.client.connect();
    return this.client.firstOutcome();
  }

  say(text: string): string {
    return this.client.say(text);
  }

  /** v1 keeps no read marker on the server: live messages of others are counted here until seen. */
  markRead(): void {
    this.clearCounts();
  }

  /** Leaves on purpose (the others see "left", not "lost connection"); resolves once the bye is out, within a second. */
  leave(): Promise<void> {
    return this.client.leave();
  }

  private onClientState(state: ClientState): void {
    if (state.kind === 'connected') this.onWelcome(state.welcome);
    if (state.kind === 'reconnecting') this.log.info(`Connection lost (${state.reason}); retrying in ${Math.round((state.retryAt - Date.now()) / 100) / 10} s`);
    this.statusEmitter.fire(this.status());
  }

  private onWelcome(welcome: WelcomeFrame): void {
    this.welcome = welcome;
    this.myName = welcome.you;
    const count = welcome.memberCount;
    this.setMembers(welcome.members, typeof count === 'number' && Number.isSafeInteger(count) && count >= welcome.members.length ? count : welcome.members.length, welcome.seq);
    if (welcome.reset === true) {
      // The room's history was replaced: what is shown goes, and the newest events that follow are its history.
      this.entryList.length = 0;
      this.historyUpTo = welcome.seq;
      this.resetEmitter.fire();
    }
    if (this.historyUpTo === Number.POSITIVE_INFINITY) this.historyUpTo = welcome.seq;
    this.log.info(`Welcomed to ${welcome.room} as ${welcome.you}; ${this.memberTotal} member(s), room at seq ${welcome.seq}`);
  }

  private onRoomEvent(event: RoomEvent): void {
    const entry = this.toEntry(event);
    if (event.type !== 'message') this.applyPresence(event);
    this.keep(entry);
    const live = event.seq > this.historyUpTo;
    if (live && countsAsUnread(entry) && !this.inSight) this.countUnread(entry.kind === 'message' && this.mentionsMe(entry.text));
    this.appendEmitter.fire({ entries: [entry], live });
  }

  private toEntry(event: RoomEvent): ChatEntry {
    if (event.type === 'message') {
      const entry: ChatEntry = { kind: 'message', seq: event.seq, from: event.from, text: event.text, ts: event.ts, mine: this.isMine(event.from) };
      if (event.id !== undefined) entry.id = event.id;
      return entry;
    }
    return presenceEntry(event);
  }
}
