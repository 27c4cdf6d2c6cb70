/**
 * One v2 server: one connection (ChatClientV2) and every conversation this
 * window has there, rooms and DMs alike. Each conversation is a
 * {@link V2Conversation}, which keeps what its room said in its current state
 * (edited, deleted, reacted to), who is in it and who is typing, and its
 * unread and mention counts as the server's read markers give them.
 */
import * as vscode from 'vscode';
import { Disposable, toDisposable } from '../shared/disposable';
import { nameKey, roomKey } from '../shared/names';
import type { ConversationSummary, MessageV2Event, Reaction, RoomEventV2, RoomStateFrame } from '../shared/protocolV2';
import { TYPING_TTL_MS } from '../shared/protocolV2';
import type { ChatEntry, ConnectionView, MessageEntry, PendingView, ReactionView } from '../shared/webviewMessages';
import { formatAddress } from './address';
import type { SendFailure } from './client/chatClient';
import { ChatClientV2, type ClientStateV2, type FirstOutcomeV2 } from './client/chatClientV2';
import type { OutboxEntry, OutboxStorage } from './client/outbox';
import type { SessionParams } from './chatSession';
import { ConversationBase, presenceEntry } from './conversationBase';
import { type ActionOutcome, type ConnectionKind, countsAsUnread, type RoomSession } from './roomSession';

/** How often the conversation list (and its counts) is asked for again while connected: DMs others open appear within this. */
const CONVERSATIONS_REFRESH_MS = 20_000;
/** How long leaving waits for the server to take a `part`, as v1 waits for its `bye` to go out. */
const LEAVE_WAIT_MS = 1_000;
/** How long the read marker waits, so a burst of messages moves it once. */
const READ_MARKER_DELAY_MS = 750;
/** Characters of the replied-to message a reply quotes. */
const QUOTE_CHARS = 140;

export type ServerParams = Omit<SessionParams, 'room'>;

export type JoinV2Outcome = { ok: true; conversation: V2Conversation } | { ok: false; code: string; message: string };

export class ServerSessionV2 extends Disposable {
  readonly client: ChatClientV2;
  private readonly conversationMap = new Map<string, V2Conversation>();
  private summaries: ConversationSummary[] = [];
  private readonly listEmitter = this.register(new vscode.EventEmitter<void>());
  private readonly addedEmitter = this.register(new vscode.EventEmitter<V2Conversation>());
  private readonly removedEmitter = this.register(new vscode.EventEmitter<V2Conversation>());
  /** The conversations or their counts changed. */
  readonly onDidChangeConversations = this.listEmitter.event;
  /** A conversation joined on its own (one of ours from before, or a DM someone opened with us). */
  readonly onDidAddConversation = this.addedEmitter.event;
  /**
   * A conversation left (here or in another window), was removed from, or
   * refused us. It is disposed right after: joining the room again makes a
   * new one, which whatever showed this one must listen to instead.
   */
  readonly onDidRemoveConversation = this.removedEmitter.event;

  constructor(
    readonly params: ServerParams,
    clientId: string,
    outboxes: OutboxStorage,
    key: string | undefined,
    private readonly historyLimit: number,
    private readonly log: vscode.LogOutputChannel,
    keepKey: (key: string) => void,
  ) {
    super();
    this.client = this.register(new ChatClientV2({ host: params.host, port: params.port, name: params.name, clientId, outboxes, ...(key ? { key } : {}), ...(params.token ? { token: params.token } : {}), ...(params.fingerprint ? { fingerprint: params.fingerprint } : {}), ...(params.alternates?.length ? { alternates: params.alternates } : {}) }));
    this.register(this.client.onKey(keepKey));
    this.register(this.client.onState((state) => this.onClientState(state)));
    this.register(this.client.onRoomState((state) => this.conversationFor(state.room)?.onRoomState(state)));
    this.register(this.client.onEvent((event) => this.conversationFor(event.room)?.onEvent(event)));
    this.register(this.client.onTyping((typing) => this.conversationFor(typing.room)?.onTypingSignal(typing.name)));
    this.register(this.client.onOutbox(({ room, entries }) => this.conversationFor(room)?.outboxChanged(entries)));
    this.register(this.client.onSendFailure((failure) => this.conversationFor(failure.room)?.sendFailed({ id: failure.id, text: failure.text, code: failure.code as SendFailure['code'], reason: failure.reason })));
    this.register(this.client.onReadMarker(() => void this.refreshConversations()));
    // A DM someone opened with us: the list (with its counts) is asked for at once, which joins it.
    this.register(
      this.client.onConversationAdded((added) => {
        if (this.conversationFor(added.room) === undefined) void this.refreshConversations();
      }),
    );
    this.register(
      this.client.onParted((parted) => {
        const conversation = this.conversationFor(parted.room);
        if (!conversation) return;
        conversation.markParted(parted.reason === 'kicked' ? `You were removed from ${conversation.title}${parted.by ? ` by ${parted.by}` : ''}.` : `You left ${conversation.title} in another window.`);
        this.forget(conversation);
      }),
    );
    this.register(this.client.onServerError((error) => this.log.warn(`Server said ${error.code}: ${error.message}`)));
    const timer = setInterval(() => {
      if (this.client.state.kind === 'connected') void this.refreshConversations();
    }, CONVERSATIONS_REFRESH_MS);
    this.register(toDisposable(() => clearInterval(timer)));
    this.register(toDisposable(() => this.conversationMap.forEach((conversation) => conversation.dispose())));
  }

  get address(): string {
    return formatAddress(this.params);
  }

  /** The longest message text this server takes, in UTF-8 bytes. */
  get maxTextBytes(): number | undefined {
    return this.client.state.kind === 'connected' ? this.client.state.welcome.limits?.maxTextBytes : undefined;
  }

  get conversations(): V2Conversation[] {
    return [...this.conversationMap.values()];
  }

  get me(): string | undefined {
    return this.client.state.kind === 'connected' ? this.client.state.welcome.you : this.lastName;
  }

  private lastName: string | undefined;
  private refreshing: Promise<void> | undefined;
  /** Someone asked for the conversations while a request was on its way. */
  private refreshAgain = false;

  start(): Promise<FirstOutcomeV2> {
    this.log.info(`Connecting to ${this.address} as ${this.params.name} (protocol 2)`);
    this.client.connect();
    return this.client.firstOutcome();
  }

  /** Joins a room or DM (or shows it again): its conversation, or the server's refusal. */
  async join(room: string): Promise<JoinV2Outcome> {
    const existing = this.conversationFor(room);
    if (existing && this.client.isJoined(room)) return { ok: true, conversation: existing };
    const conversation = existing ?? this.add(room);
    const outcome = await this.client.join(room);
    if (!outcome.ok) {
      this.forget(conversation);
      return { ok: false, code: outcome.code, message: outcome.message };
    }
    return { ok: true, conversation };
  }

  /** Opens (or finds) the DM with these people and joins it. */
  async openDm(names: string[]): Promise<JoinV2Outcome> {
    const opened = await this.client.openDm(names);
    if (!opened.ok) return { ok: false, code: opened.code, message: opened.message };
    return this.join(opened.frame.room);
  }

  /** Parts a conversation: the room hears `left`, and it leaves this person's conversations everywhere. */
  async part(conversation: V2Conversation): Promise<void> {
    this.forget(conversation);
    await this.client.part(conversation.room);
  }

  /** The server's rooms, for browsing (a few pages at most). */
  async listRooms(): Promise<{ room: string; topic: string; memberCount: number }[]> {
    const rooms: { room: string; topic: string; memberCount: number }[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const answer = await this.client.listRooms(after);
      if (!answer.ok) break;
      rooms.push(...answer.frame.rooms);
      after = answer.frame.next;
      if (after === undefined) break;
    }
    return rooms;
  }

  /**
   * Asks the server for this person's conversations and their counts; joins
   * any not joined here yet. One request is on its way at a time: asks that
   * come meanwhile (a burst of read markers or new DMs) are answered by a
   * single one after it, so no stream of frames turns into a stream of requests.
   */
  refreshConversations(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        await this.fetchConversations();
      } while (this.refreshAgain && !this.isDisposed);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async fetchConversations(): Promise<void> {
    const summaries: ConversationSummary[] = [];
    let after: string | undefined;
    for (let page = 0; page < 5; page++) {
      const answer = await this.client.conversations(after);
      if (!answer.ok) return;
      summaries.push(...answer.frame.conversations);
      after = answer.frame.next;
      if (after === undefined) break;
    }
    this.summaries = summaries;
    for (const summary of summaries) {
      const conversation = this.conversationFor(summary.room);
      if (conversation) conversation.applySummary(summary);
      else if (this.conversationMap.size < (this.client.state.kind === 'connected' ? this.client.state.welcome.limits?.maxRoomsPerConnection ?? 50 : 50)) {
        const added = this.add(summary.room, summary);
        void this.client.join(summary.room).then((outcome) => {
          if (!outcome.ok) this.forget(added);
        });
        this.addedEmitter.fire(added);
      }
    }
    this.listEmitter.fire();
  }

  /** Says bye: every room hears `left` (they stay among this person's conversations for next time). */
  leave(): Promise<void> {
    return this.client.leave();
  }

  conversationFor(room: string): V2Conversation | undefined {
    return this.conversationMap.get(roomKey(room));
  }

  private add(room: string, summary?: ConversationSummary): V2Conversation {
    const conversation = new V2Conversation(this, room, this.historyLimit);
    if (summary) conversation.applySummary(summary);
    this.conversationMap.set(roomKey(room), conversation);
    this.listEmitter.fire();
    return conversation;
  }

  private forget(conversation: V2Conversation): void {
    if (this.conversationMap.get(roomKey(conversation.room)) !== conversation) return;
    this.conversationMap.delete(roomKey(conversation.room));
    this.listEmitter.fire();
    this.removedEmitter.fire(conversation);
    conversation.dispose();
  }

  private onClientState(state: ClientStateV2): void {
    if (state.kind === 'connected') {
      this.lastName = state.welcome.you;
      this.log.info(`Welcomed on ${this.address} as ${state.welcome.you} (protocol 2)`);
      void this.refreshConversations();
    }
    if (state.kind === 'reconnecting') this.log.info(`Connection to ${this.address} lost (${state.reason}); retrying in ${Math.round((state.retryAt - Date.now()) / 100) / 10} s`);
    for (const conversation of this.conversationMap.values()) conversation.onConnection();
  }

  /** Used by the conversations: the summaries the server gave last. */
  summaryFor(room: string): ConversationSummary | undefined {
    return this.summaries.find((summary) => roomKey(summary.room) === roomKey(room));
  }
}

/** One room or DM on a v2 server. */
export class V2Conversation extends ConversationBase implements RoomSession {
  readonly protocol = 2;
  private roomName: string;
  private roomKind: 'room' | 'dm' = 'room';
  private participants: string[] = [];
  private topicText = '';
  private ownerName: string | undefined;
  /** The messages held, by seq: edits, deletions, reactions and replies find theirs here. */
  private readonly messagesBySeq = new Map<number, MessageEntry>();
  private olderAvailable = false;
  private parted: string | undefined;
  /** The read marker, as the server keeps it; the counts are the server's too, with live messages counted on top until the next refresh. */
  lastRead = 0;
  /** The seq up to which the counts account for messages: the server's summary, or the last one counted here. */
  private countedUpTo = 0;
  private readonly typingUntil = new Map<string, { name: string; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    readonly server: ServerSessionV2,
    room: string,
    historyLimit: number,
  ) {
    super(historyLimit);
    this.roomName = room;
    if (room.startsWith('dm:')) this.roomKind = 'dm';
    this.register(toDisposable(() => this.typingUntil.forEach(({ timer }) => clearTimeout(timer))));
    this.register(toDisposable(() => clearTimeout(this.readMarkerTimer)));
  }

  get key(): string {
    return `${this.server.address}|${roomKey(this.roomName)}`;
  }

  get params(): SessionParams {
    return { ...this.server.params, room: this.roomName };
  }

  get address(): string {
    return this.server.address;
  }

  get room(): string {
    return this.roomName;
  }

  get kind(): 'room' | 'dm' {
    return this.roomKind;
  }

  get title(): string {
    if (this.roomKind !== 'dm') return this.roomName;
    const me = this.me;
    const others = this.participants.filter((name) => me === undefined || nameKey(name) !== nameKey(me));
    return others.length > 0 ? others.join(', ') : 'Direct message';
  }

  get topic(): string {
    return this.topicText;
  }

  get owner(): string | undefined {
    return this.ownerName;
  }

  get me(): string | undefined {
    return this.server.me;
  }

  get pending(): readonly PendingView[] {
    return this.pendingViews(this.server.client.pending(this.roomName));
  }

  get isConnected(): boolean {
    return this.server.client.state.kind === 'connected' && this.server.client.isJoined(this.roomName);
  }

  protected get connectionState(): ClientStateV2 {
    return this.server.client.state;
  }

  get connectionKind(): ConnectionKind {
    if (this.parted) return 'closed';
    const kind = this.server.client.state.kind;
    return kind === 'connected' && !this.server.client.isJoined(this.roomName) ? 'connecting' : kind;
  }

  get lastSeq(): number {
    return this.server.client.lastSeq(this.roomName);
  }

  get hasOlder(): boolean {
    return this.olderAvailable;
  }

  /** Who is typing just now. */
  get typing(): string[] {
    return [...this.typingUntil.values()].map((entry) => entry.name);
  }

  say(text: string, replyTo?: number): string {
    return this.server.client.say(this.roomName, text, replyTo);
  }

  reconnectNow(): void {
    this.server.client.reconnectNow();
  }

  /** Parts the room; resolves once the server has taken it, or after a second (a server that is away hears it when back, if this window still is). */
  async leave(): Promise<void> {
    this.parted = `You left ${this.title}.`;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.server.part(this), new Promise<void>((resolve) => (timer = setTimeout(resolve, LEAVE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  edit(seq: number, text: string): Promise<ActionOutcome> {
    return outcomeOf(this.server.client.edit(this.roomName, seq, text));
  }

  delete(seq: number): Promise<ActionOutcome> {
    return outcomeOf(this.server.client.delete(this.roomName, seq));
  }

  react(seq: number, emoji: string, add: boolean): Promise<ActionOutcome> {
    return outcomeOf(this.server.client.react(this.roomName, seq, emoji, add));
  }

  setTopic(text: string): Promise<ActionOutcome> {
    return outcomeOf(this.server.client.setTopic(this.roomName, text));
  }

  kick(name: string): Promise<ActionOutcome> {
    return outcomeOf(this.server.client.kick(this.roomName, name));
  }

  typingNow(): void {
    this.server.client.typing(this.roomName);
  }

  /**
   * The person has seen the conversation: the counts go to zero at once, and
   * the server's read marker follows within a second, once for a burst. It
   * moves only past messages of others (the server never counts one's own as
   * unread), so that a `read` per message does not eat the connection's rate
   * budget, which the `say`s need.
   */
  markRead(): void {
    const hadCounts = this.clearCounts();
    if (this.unreadSinceMark || hadCounts) this.scheduleReadMarker();
    this.unreadSinceMark = false;
  }

  private unreadSinceMark = false;
  private readMarkerTimer: ReturnType<typeof setTimeout> | undefined;

  private scheduleReadMarker(): void {
    if (this.readMarkerTimer !== undefined) return;
    this.readMarkerTimer = setTimeout(() => {
      this.readMarkerTimer = undefined;
      const latest = this.lastSeq;
      if (latest > this.lastRead && this.isConnected) {
        this.lastRead = latest;
        void this.server.client.read(this.roomName, latest);
      }
    }, READ_MARKER_DELAY_MS);
  }

  /** Older history, a page before the oldest message held; the entries come back oldest first (and are kept). */
  async loadOlder(): Promise<{ entries: ChatEntry[]; more: boolean } | undefined> {
    const oldest = this.entryList.find((entry) => entry.seq > 0)?.seq;
    if (oldest === undefined || oldest <= 1) {
      this.olderAvailable = false;
      return { entries: [], more: false };
    }
    const page = await this.server.client.history(this.roomName, oldest);
    if (!page.ok) return undefined;
    const fresh: ChatEntry[] = [];
    for (const event of page.frame.events) {
      if (event.seq >= oldest) continue;
      const entry = this.entryFor(event);
      if (entry && !(entry.kind === 'message' && entry.deleted)) fresh.push(entry);
    }
    for (const entry of fresh) if (entry.kind === 'message') this.messagesBySeq.set(entry.seq, entry);
    this.entryList.unshift(...fresh);
    this.olderAvailable = page.frame.more;
    return { entries: fresh, more: page.frame.more };
  }

  /** Messages whose text holds `text`, newest first. */
  async search(text: string): Promise<{ hits: MessageEntry[] } | { error: string }> {
    const answer = await this.server.client.search(this.roomName, text);
    if (!answer.ok) return { error: answer.message };
    return { hits: answer.frame.hits.map((hit) => this.messageEntry(hit)) };
  }

  /** Member names for completion: those the server lists, a page or two. */
  async memberNames(): Promise<string[]> {
    const answer = await this.server.client.listMembers(this.roomName);
    return answer.ok ? answer.frame.names : [...this.memberList];
  }

  // ------------------------------------------------------------ from the server session

  applySummary(summary: ConversationSummary): void {
    this.roomKind = summary.kind === 'dm' ? 'dm' : 'room';
    if (summary.participants) this.participants = summary.participants;
    this.topicText = summary.topic;
    this.lastRead = summary.lastRead;
    // The server's counts are the truth up to its seq; what arrives after it is counted on top.
    if (summary.unread !== undefined) this.unread = summary.unread;
    if (summary.mentions !== undefined) this.mentionCount = summary.mentions;
    if (summary.seq !== undefined && summary.unread !== undefined) this.countedUpTo = Math.max(this.countedUpTo, summary.seq);
    this.countsEmitter.fire();
  }

  onRoomState(state: RoomStateFrame): void {
    this.roomName = state.room;
    this.roomKind = state.kind === 'dm' ? 'dm' : 'room';
    this.participants = state.participants ?? [];
    this.topicText = state.topic;
    this.ownerName = state.owner;
    this.setMembers(state.members, Math.max(state.memberCount, state.members.length), state.seq);
    this.lastRead = Math.max(this.lastRead, state.lastRead);
    if (state.reset !== undefined) {
      // The room's history was replaced: what is shown goes, and the newest events that follow are its history.
      this.entryList.length = 0;
      this.messagesBySeq.clear();
      this.historyUpTo = Number.POSITIVE_INFINITY;
      this.countedUpTo = 0;
      this.lastRead = state.lastRead;
    }
    if (this.historyUpTo === Number.POSITIVE_INFINITY) {
      this.historyUpTo = state.seq;
      this.olderAvailable = state.firstSeq < state.seq;
    }
    if (state.reset !== undefined) this.resetEmitter.fire();
    this.statusEmitter.fire(this.status());
  }

  onEvent(event: RoomEventV2): void {
    const live = event.seq > this.historyUpTo;
    switch (event.type) {
      case 'message': {
        const entry = this.messageEntry(event);
        // A message deleted before we saw it (a replay) is not shown at all.
        if (entry.deleted) return;
        // Counted before it is shown, so a chat in view can mark it read at once.
        if (live && countsAsUnread(entry) && event.seq > this.countedUpTo) {
          this.countedUpTo = event.seq;
          this.unreadSinceMark = true;
          if (this.inSight) {
            this.scheduleReadMarker();
          } else {
            this.countUnread(entry.mentionsMe === true);
          }
        }
        this.push(entry, live);
        this.stopTyping(event.from);
        return;
      }
      case 'edited':
        return this.change(event.target, (entry) => ({ ...entry, text: event.text, edited: true }));
      case 'deleted':
        return this.change(event.target, (entry) => ({ ...entry, text: '', deleted: true, reactions: [] }));
      case 'reactions':
        return this.change(event.target, (entry) => ({ ...entry, reactions: this.reactionViews(event.reactions) }));
      case 'topic':
        this.topicText = event.topic;
        this.push({ kind: 'topic', seq: event.seq, by: event.by, topic: event.topic, ts: event.ts }, live);
        this.statusEmitter.fire(this.status());
        // The list shows the topic (and the room's title with it): now, not at its next refresh from the server.
        this.countsEmitter.fire();
        return;
      case 'owner':
        this.ownerName = event.owner;
        return;
      case 'joined':
      case 'left':
        this.applyPresence(event);
        this.push(presenceEntry(event), live);
        return;
    }
  }

  onTypingSignal(name: string): void {
    if (this.isMine(name)) return;
    const key = nameKey(name);
    const previous = this.typingUntil.get(key);
    if (previous) clearTimeout(previous.timer);
    this.typingUntil.set(key, { name, timer: setTimeout(() => this.stopTyping(name), TYPING_TTL_MS) });
    this.typingEmitter.fire(this.typing);
  }

  outboxChanged(entries: readonly OutboxEntry[]): void {
    this.outboxEmitter.fire(this.pendingViews(entries));
  }

  sendFailed(failure: SendFailure): void {
    this.failureEmitter.fire(failure);
  }

  onConnection(): void {
    this.statusEmitter.fire(this.status());
  }

  markParted(reason: string): void {
    this.parted = reason;
    this.statusEmitter.fire(this.status());
  }

  // ------------------------------------------------------------ helpers

  private stopTyping(name: string): void {
    const key = nameKey(name);
    const entry = this.typingUntil.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.typingUntil.delete(key);
    this.typingEmitter.fire(this.typing);
  }

  private push(entry: ChatEntry, live: boolean): void {
    if (entry.kind === 'message') this.messagesBySeq.set(entry.seq, entry);
    const dropped = this.keep(entry);
    if (dropped.length > 0) {
      for (const old of dropped) this.messagesBySeq.delete(old.seq);
      this.olderAvailable = true;
    }
    this.appendEmitter.fire({ entries: [entry], live });
  }

  /** A message shown changed; a deleted one leaves the list (the webview removes it too). */
  private change(target: number, update: (entry: MessageEntry) => MessageEntry): void {
    const entry = this.messagesBySeq.get(target);
    if (!entry) return;
    const changed = update(entry);
    const index = this.entryList.indexOf(entry);
    if (changed.deleted) {
      this.messagesBySeq.delete(target);
      if (index !== -1) this.entryList.splice(index, 1);
    } else {
      this.messagesBySeq.set(target, changed);
      if (index !== -1) this.entryList[index] = changed;
    }
    this.updateEmitter.fire({ entries: [changed] });
  }

  private entryFor(event: RoomEventV2): ChatEntry | undefined {
    switch (event.type) {
      case 'message':
        return this.messageEntry(event);
      case 'joined':
      case 'left':
        return presenceEntry(event);
      case 'topic':
        return { kind: 'topic', seq: event.seq, by: event.by, topic: event.topic, ts: event.ts };
      default:
        // Changes in a history page are already folded into their messages' current state.
        return undefined;
    }
  }

  private messageEntry(event: MessageV2Event): MessageEntry {
    const entry: MessageEntry = { kind: 'message', seq: event.seq, from: event.from, text: event.text, ts: event.ts, mine: this.isMine(event.from) };
    if (event.id !== undefined) entry.id = event.id;
    if (this.mentionsMe(event.text)) entry.mentionsMe = true;
    if (event.editedTs !== undefined) entry.edited = true;
    if (event.deleted) entry.deleted = true;
    if (event.reactions && event.reactions.length > 0) entry.reactions = this.reactionViews(event.reactions);
    if (event.replyTo !== undefined) {
      entry.replyTo = event.replyTo;
      if (event.replyToFrom !== undefined) entry.replyToFrom = event.replyToFrom;
      const original = this.messagesBySeq.get(event.replyTo);
      if (original && !original.deleted) entry.replyToText = original.text.slice(0, QUOTE_CHARS);
    }
    return entry;
  }

  private reactionViews(reactions: Reaction[]): ReactionView[] {
    return reactions.map((reaction) => ({ emoji: reaction.emoji, count: reaction.count, names: reaction.names, mine: reaction.names.some((name) => this.isMine(name)) }));
  }

  protected override connectionView(): ConnectionView {
    return this.parted ? { kind: 'disconnected', reason: this.parted } : super.connectionView();
  }
}

async function outcomeOf(answer: Promise<{ ok: true } | { ok: false; message: string }>): Promise<ActionOutcome> {
  const settled = await answer;
  return settled.ok ? { ok: true } : { ok: false, reason: settled.message };
}
