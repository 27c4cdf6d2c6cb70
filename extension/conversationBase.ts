/**
 * What every conversation keeps and tells, whichever protocol carries it: the
 * entries shown (up to the history limit), who is in the room, the unread and
 * mention counts, the status the panel draws, and the events the session
 * manager passes on. A v1 room (chatSession.ts) and a v2 room or DM
 * (serverSessionV2.ts) build on it; how events reach them, and what only v2
 * has (edits, reactions, typing, read markers, older pages), is their own.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { mentions } from '../shared/mentions';
import { nameKey } from '../shared/names';
import type { LeaveReason } from '../shared/protocol';
import type { ChatEntry, ConnectionView, MessageEntry, PendingView, PresenceEntry, StatusView } from '../shared/webviewMessages';
import type { SendFailure } from './client/chatClient';
import type { OutboxEntry } from './client/outbox';
import type { ConnectionState } from './client/reconnectingClient';

/** A member arriving or leaving, as both protocols tell it. */
export type PresenceEvent = { type: 'joined'; seq: number; name: string; ts: number } | { type: 'left'; seq: number; name: string; ts: number; reason: LeaveReason };

export abstract class ConversationBase extends Disposable {
  abstract readonly protocol: 1 | 2;
  /** Entries shown, oldest first; at most the history limit of them. */
  protected readonly entryList: ChatEntry[] = [];
  protected memberList: string[] = [];
  /** The room's size: the count the server gave on joining, then every arrival and departure after it. */
  protected memberTotal = 0;
  /** Membership changes at or below this seq are already in the member list the server gave. */
  protected membersAsOf = 0;
  /** Events up to this seq came with joining (history), not live. */
  protected historyUpTo = Number.POSITIVE_INFINITY;
  unread = 0;
  mentionCount = 0;
  inSight = false;

  protected readonly appendEmitter = this.register(new vscode.EventEmitter<{ entries: ChatEntry[]; live: boolean }>());
  protected readonly updateEmitter = this.register(new vscode.EventEmitter<{ entries: MessageEntry[] }>());
  protected readonly statusEmitter = this.register(new vscode.EventEmitter<StatusView>());
  protected readonly outboxEmitter = this.register(new vscode.EventEmitter<PendingView[]>());
  protected readonly failureEmitter = this.register(new vscode.EventEmitter<SendFailure>());
  protected readonly typingEmitter = this.register(new vscode.EventEmitter<string[]>());
  protected readonly countsEmitter = this.register(new vscode.EventEmitter<void>());
  protected readonly resetEmitter = this.register(new vscode.EventEmitter<void>());
  /** New entries; `live` is false for history that came with joining. */
  readonly onAppend = this.appendEmitter.event;
  /** Messages already shown changed (v1 has no edits or reactions: it never fires there). */
  readonly onUpdate = this.updateEmitter.event;
  readonly onStatus = this.statusEmitter.event;
  readonly onOutbox = this.outboxEmitter.event;
  readonly onSendFailure = this.failureEmitter.event;
  /** Who is typing (v1 has no typing: it never fires there). */
  readonly onTyping = this.typingEmitter.event;
  /** What the conversation list shows of it changed: its unread or mention counts, or (v2) its topic. */
  readonly onCounts = this.countsEmitter.event;
  readonly onReset = this.resetEmitter.event;

  /** @param historyLimit how many entries are kept; older ones make way for new ones. */
  constructor(private readonly historyLimit: number) {
    super();
  }

  abstract get me(): string | undefined;
  abstract get title(): string;
  abstract get address(): string;
  /** Connected, and in the room. */
  abstract get isConnected(): boolean;
  /** The state of the connection that carries the conversation. */
  protected abstract get connectionState(): ConnectionState<unknown, string>;

  get members(): readonly string[] {
    return this.memberList;
  }

  get memberCount(): number {
    return this.memberTotal;
  }

  get entries(): readonly ChatEntry[] {
    return this.entryList;
  }

  status(): StatusView {
    const connection = this.connectionView();
    const inRoom = connection.kind !== 'disconnected';
    // Once out of the room, the last member list would be a stale claim.
    return {
      connection,
      me: this.me,
      room: this.title,
      members: inRoom ? [...this.memberList] : [],
      memberCount: inRoom ? Math.max(this.memberTotal, this.memberList.length) : 0,
      inRoom,
    };
  }

  /** True when `text` mentions us as `@name` at a word boundary (shared/mentions.ts: `x@bob.com` does not). */
  mentionsMe(text: string): boolean {
    const me = this.me;
    return me !== undefined && mentions(text, me);
  }

  isMine(name: string): boolean {
    const me = this.me;
    return me !== undefined && nameKey(name) === nameKey(me);
  }

  protected connectionView(): ConnectionView {
    const state = this.connectionState;
    switch (state.kind) {
      case 'connecting':
        return { kind: 'connecting', address: this.address };
      case 'connected':
        // A v2 connection is up before each of its rooms has let us in again.
        return this.isConnected ? { kind: 'connected', address: this.address } : { kind: 'connecting', address: this.address };
      case 'reconnecting':
        return { kind: 'reconnecting', address: this.address, retryAt: state.retryAt, attempt: state.attempt, reason: state.reason };
      case 'closed':
        return { kind: 'disconnected', reason: state.reason };
    }
  }

  /** The member list as the server gave it on joining, true as of `asOf`. */
  protected setMembers(members: readonly string[], total: number, asOf: number): void {
    this.memberList = [...members];
    this.memberTotal = total;
    this.membersAsOf = asOf;
  }

  /** An arrival or departure the member list does not hold yet changes it (and the status says so). */
  protected applyPresence(event: PresenceEvent): void {
    if (event.seq <= this.membersAsOf) return;
    const key = nameKey(event.name);
    const listed = this.memberList.some((member) => nameKey(member) === key);
    this.memberList = this.memberList.filter((member) => nameKey(member) !== key);
    if (event.type === 'joined') this.memberList.push(event.name);
    // A big room's list names only some members, so a departure may be of one not listed.
    const change = event.type === 'joined' ? (listed ? 0 : 1) : -1;
    this.memberTotal = Math.max(this.memberList.length, this.memberTotal + change);
    this.statusEmitter.fire(this.status());
  }

  /** Keeps an entry at the end; returns the oldest ones it pushed past the history limit. */
  protected keep(entry: ChatEntry): ChatEntry[] {
    this.entryList.push(entry);
    return this.entryList.length > this.historyLimit ? this.entryList.splice(0, this.entryList.length - this.historyLimit) : [];
  }

  /** One more message of someone else not seen yet. */
  protected countUnread(mentionsMe: boolean): void {
    this.unread += 1;
    if (mentionsMe) this.mentionCount += 1;
    this.countsEmitter.fire();
  }

  /** The counts go to zero (and say so when they were not); returns whether there were any. */
  protected clearCounts(): boolean {
    const hadCounts = this.unread > 0 || this.mentionCount > 0;
    this.unread = 0;
    this.mentionCount = 0;
    if (hadCounts) this.countsEmitter.fire();
    return hadCounts;
  }

  /**
   * How the panel shows messages still in the outbox. v1 has no replies, so an
   * entry stored with one (by a v2 seat at the same address) goes out, and
   * shows, without it.
   */
  protected pendingViews(entries: readonly OutboxEntry[]): PendingView[] {
    return entries.map((entry) => ({ id: entry.id, text: entry.text, createdAt: entry.createdAt, ...(this.protocol === 2 && entry.replyTo !== undefined ? { replyTo: entry.replyTo } : {}) }));
  }
}

/** A member's arrival or departure as the panel shows it. */
export function presenceEntry(event: PresenceEvent): PresenceEntry {
  return event.type === 'left' ? { kind: 'left', seq: event.seq, name: event.name, ts: event.ts, reason: event.reason } : { kind: 'joined', seq: event.seq, name: event.name, ts: event.ts };
}
