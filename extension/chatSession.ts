/**
 * One joined room: the connection, what the room has said, who is in it, and
 * what is still on its way out. The panel draws from this; the status bar and
 * notifications listen to it. One window is in at most one room at a time.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { nameKey } from '../shared/names';
import type { RoomEvent, WelcomeFrame } from '../shared/protocol';
import type { ChatEntry, ConnectionView, PendingView, StatusView } from '../shared/webviewMessages';
import { formatAddress } from './address';
import { ChatClient, type ClientState, type FirstOutcome, type KeyValueStore, type SendFailure } from './chatClient';

export interface JoinParams {
  host: string;
  port: number;
  name: string;
  room: string;
  token?: string;
  /** Pinned SHA-256 fingerprint of the server's TLS certificate; given, the connection uses TLS. */
  fingerprint?: string;
}

export class ChatSession extends Disposable {
  readonly client: ChatClient;
  private readonly entryList: ChatEntry[] = [];
  private memberList: string[] = [];
  private myName: string | undefined;
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

  constructor(
    readonly params: JoinParams,
    clientId: string,
    store: KeyValueStore,
    private readonly historyLimit: number,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.client = this.register(new ChatClient({ ...params, clientId, store }));
    this.register(this.client.onState((state) => this.onClientState(state)));
    this.register(this.client.onEvent((event) => this.onRoomEvent(event)));
    this.register(this.client.onOutbox((pending) => this.outboxEmitter.fire(pending)));
    this.register(this.client.onSendFailure((failure) => this.failureEmitter.fire(failure)));
    this.register(this.client.onServerError((error) => this.log.warn(`Server said ${error.code}: ${error.message}`)));
  }

  get address(): string {
    return formatAddress(this.params);
  }

  get room(): string {
    return this.params.room;
  }

  /** The name the server welcomed us with. */
  get me(): string | undefined {
    return this.myName;
  }

  get members(): readonly string[] {
    return this.memberList;
  }

  get entries(): readonly ChatEntry[] {
    return this.entryList;
  }

  get pending(): readonly PendingView[] {
    return this.client.pending;
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

  leave(): void {
    this.client.leave();
  }

  status(): StatusView {
    return { connection: this.connectionView(), me: this.myName, room: this.params.room, members: [...this.memberList] };
  }

  /** True when `text` mentions us as `@name` (case and width folded like names are). */
  mentionsMe(text: string): boolean {
    if (!this.myName) return false;
    const key = nameKey(this.myName);
    const folded = nameKey(text);
    let from = 0;
    for (;;) {
      const at = folded.indexOf('@' + key, from);
      if (at === -1) return false;
      const after = folded.charAt(at + 1 + key.length);
      if (!after || !/[\p{L}\p{N}_-]/u.test(after)) return true;
      from = at + 1;
    }
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
    this.myName = welcome.you;
    this.memberList = [...welcome.members];
    this.membersAsOf = welcome.seq;
    if (this.historyUpTo === Number.POSITIVE_INFINITY) this.historyUpTo = welcome.seq;
    this.log.info(`Welcomed to ${welcome.room} as ${welcome.you}; ${welcome.members.length} member(s), room at seq ${welcome.seq}`);
  }

  private onRoomEvent(event: RoomEvent): void {
    const entry = this.toEntry(event);
    if (event.type !== 'message' && event.seq > this.membersAsOf) {
      const key = nameKey(event.name);
      this.memberList = this.memberList.filter((member) => nameKey(member) !== key);
      if (event.type === 'joined') this.memberList.push(event.name);
      this.statusEmitter.fire(this.status());
    }
    this.entryList.push(entry);
    if (this.entryList.length > this.historyLimit) this.entryList.splice(0, this.entryList.length - this.historyLimit);
    this.appendEmitter.fire({ entries: [entry], live: event.seq > this.historyUpTo });
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
