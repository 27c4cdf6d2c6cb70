/**
 * One joined room: the connection, what the room has said, who is in it, and
 * what is still on its way out. The panel draws from this; the status bar and
 * notifications listen to it. One window is in at most one room at a time.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { nameKey, roomKey } from '../shared/names';
import type { RoomEvent, WelcomeFrame } from '../shared/protocol';
import type { ChatEntry, ConnectionView, MessageEntry, PendingView, StatusView } from '../shared/webviewMessages';
import { formatAddress, type ServerAddress } from './address';
import { mentions } from '../shared/mentions';
import { ChatClient, type ClientState, type FirstOutcome, type SendFailure } from './client/chatClient';
import type { OutboxEntry, OutboxStorage } from './client/outbox';
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
export class ChatSession extends Disposable implements RoomSession {
  readonly protocol = 1;
  readonly kind = 'room';
  readonly topic = '';
  readonly owner = undefined;
  readonly hasOlder = false;
  readonly client: ChatClient;
  private readonly entryList: ChatEntry[] = [];
  private memberList: string[] = [];
  /** The room's size: the welcome's count, then every arrival and departure after it. */
  private memberTotal = 0;
  private myName: string | undefined;
  private welcome: WelcomeFrame | undefined;
  /** Events up to this seq came with the first welcome (history), not live. */
  private historyUpTo = Number.POSITIVE_INFINITY;
  /** Membership changes at or below this seq are already in the welcome's member list. */
  private membersAsOf = 0;

  private readonly appendEmitter = this.register(new vscode.EventEmitter<{ entries: ChatEntry[]; live: boolean }>());
  private readonly statusEmitter = this.register(new vscode.EventEmitter<StatusView>());
  private readonly outboxEmitter = this.register(new vscode.EventEmitter<PendingView[]>());
  private readonly failureEmitter = this.register(new vscode.EventEmitter<SendFailure>());
  /** New entries; `live` is false for history that came with joining. */
  readonly onAppend = this.appendEmitter.event;
  readonly onStatus = this.statusEmitter.event;
  readonly onOutbox = this.outboxEmitter.event;
  readonly onSendFailure = this.failureEmitter.event;
  private readonly neverEmitter = this.register(new vscode.EventEmitter<never>());
  /** v1 has no edits, reactions or typing: these never fire. */
  readonly onUpdate: vscode.Event<{ entries: MessageEntry[] }> = this.neverEmitter.event;
  readonly onTyping: vscode.Event<string[]> = this.neverEmitter.event;
  private readonly countsEmitter = this.register(new vscode.EventEmitter<void>());
  readonly onCounts = this.countsEmitter.event;
  private readonly resetEmitter = this.register(new vscode.EventEmitter<void>());
  readonly onReset = this.resetEmitter.event;
  /** v1 keeps no read marker on the server: live messages of others are counted here until seen. */
  unread = 0;
  mentionCount = 0;
  inSight = false;

  constructor(
    readonly params: SessionParams,
    clientId: string,
    outboxes: OutboxStorage,
    private readonly historyLimit: number,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.client = this.register(new ChatClient({ ...params, clientId, outboxes }));
    this.register(this.client.onState((state) => this.onClientState(state)));
    this.register(this.client.onEvent((event) => this.onRoomEvent(event)));
    this.register(this.client.onOutbox((entries) => this.outboxEmitter.fire(entries.map(pendingView))));
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

  get members(): readonly string[] {
    return this.memberList;
  }

  get memberCount(): number {
    return this.memberTotal;
  }

  get entries(): readonly ChatEntry[] {
    return this.entryList;
  }

  get pending(): readonly PendingView[] {
    return this.client.pending.map(pendingView);
  }

  get isConnected(): boolean {
    return this.client.state.kind === 'connected';
  }

  start(): Promise<FirstOutcome> {
    this.log.info(`Joining ${this.params.room} on ${this.address} as ${this.params.name}`);
    this.client.connect();
    return this.client.firstOutcome();
  }

  say(text: string): string {
    return this.client.say(text);
  }

  markRead(): void {
    if (this.unread === 0 && this.mentionCount === 0) return;
    this.unread = 0;
    this.mentionCount = 0;
    this.countsEmitter.fire();
  }

  /** Leaves on purpose (the others see "left", not "lost connection"); resolves once the bye is out, within a second. */
  leave(): Promise<void> {
    return this.client.leave();
  }

  status(): StatusView {
    const connection = this.connectionView();
    const inRoom = connection.kind !== 'disconnected';
    // Once out of the room, the last member list would be a stale claim.
    return {
      connection,
      me: this.myName,
      room: this.params.room,
      members: inRoom ? [...this.memberList] : [],
      memberCount: inRoom ? Math.max(this.memberTotal, this.memberList.length) : 0,
      inRoom,
    };
  }

  /** True when `text` mentions us as `@name` at a word boundary (shared/mentions.ts: `x@bob.com` does not). */
  mentionsMe(text: string): boolean {
    return this.myName !== undefined && mentions(text, this.myName);
  }

  isMine(name: string): boolean {
    return this.myName !== undefined && nameKey(name) === nameKey(this.myName);
  }

  private connectionView(): ConnectionView {
    const state = this.client.state;
    switch (state.kind) {
      case 'connecting':
        return { kind: 'connecting', address: this.address };
      case 'connected':
        return { kind: 'connected', address: this.address };
      case 'reconnecting':
        return { kind: 'reconnecting', address: this.address, retryAt: state.retryAt, attempt: state.attempt, reason: state.reason };
      case 'closed':
        return { kind: 'disconnected', reason: state.reason };
    }
  }

  private onClientState(state: ClientState): void {
    if (state.kind === 'connected') this.onWelcome(state.welcome);
    if (state.kind === 'reconnecting') this.log.info(`Connection lost (${state.reason}); retrying in ${Math.round((state.retryAt - Date.now()) / 100) / 10} s`);
    this.statusEmitter.fire(this.status());
  }

  private onWelcome(welcome: WelcomeFrame): void {
    this.welcome = welcome;
    this.myName = welcome.you;
    this.memberList = [...welcome.members];
    const count = welcome.memberCount;
    this.memberTotal = typeof count === 'number' && Number.isSafeInteger(count) && count >= welcome.members.length ? count : welcome.members.length;
    this.membersAsOf = welcome.seq;
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
    if (event.type !== 'message' && event.seq > this.membersAsOf) {
      const key = nameKey(event.name);
      const listed = this.memberList.some((member) => nameKey(member) === key);
      this.memberList = this.memberList.filter((member) => nameKey(member) !== key);
      if (event.type === 'joined') this.memberList.push(event.name);
      // A big room's welcome lists only some members, so a departure may be of one not listed.
      const change = event.type === 'joined' ? (listed ? 0 : 1) : -1;
      this.memberTotal = Math.max(this.memberList.length, this.memberTotal + change);
      this.statusEmitter.fire(this.status());
    }
    this.entryList.push(entry);
    if (this.entryList.length > this.historyLimit) this.entryList.splice(0, this.entryList.length - this.historyLimit);
    const live = event.seq > this.historyUpTo;
    if (live && countsAsUnread(entry) && !this.inSight) {
      this.unread += 1;
      if (entry.kind === 'message' && this.mentionsMe(entry.text)) this.mentionCount += 1;
      this.countsEmitter.fire();
    }
    this.appendEmitter.fire({ entries: [entry], live });
  }

  private toEntry(event: RoomEvent): ChatEntry {
    if (event.type === 'message') {
      const entry: ChatEntry = { kind: 'message', seq: event.seq, from: event.from, text: event.text, ts: event.ts, mine: this.isMine(event.from) };
      if (event.id !== undefined) entry.id = event.id;
      return entry;
    }
    if (event.type === 'left') return { kind: 'left', seq: event.seq, name: event.name, ts: event.ts, reason: event.reason };
    return { kind: 'joined', seq: event.seq, name: event.name, ts: event.ts };
  }
}

/** How the panel shows a message still in the outbox. */
function pendingView(entry: OutboxEntry): PendingView {
  return { id: entry.id, text: entry.text, createdAt: entry.createdAt };
}
