/**
 * The extension's side of wire protocol v2: one connection to a chat server
 * carrying many conversations (rooms and direct messages), kept alive across
 * drops. It sits beside the v1 state machine (chatClient.ts) on the same
 * {@link ReconnectingClient} (transport, backoff, first outcome) and
 * {@link Outbox}.
 *
 * What it promises, as the v1 client does and more:
 * - every change it sends (say, edit, delete, react, read, topic, kick, part)
 *   carries an id and is kept until the server answers it; after a reconnect
 *   it goes again with the same id, which the server applies once. Messages
 *   wait in each room's outbox, kept in a store, so they survive a reload too;
 * - after a drop it says hello again with the name's key, joins every room it
 *   was in with the last seq it saw there (the server replays what was
 *   missed), and drops any event at or below that seq, so nothing shows twice;
 * - requests (history, search, room and member lists, conversations, DMs)
 *   are answered by id, or fail once the connection they went out on is gone;
 * - a refused hello (a name kept by someone else, a wrong token) is final.
 *
 * Which protocol: before its hello, the client asks a question only a v2
 * server knows (a `conversations` request). A v2 server answers `not_joined`
 * ("say hello first"); a server from before v2 answers `bad_frame` (an unknown
 * frame). Both keep the connection open, and no hello has been said, so the
 * old server's room hears nothing: the client closes and reports `v1only`,
 * and the session speaks v1 instead. (Sent straight away, a v2 hello is
 * taken by an old server as a v1 hello for the lobby: it ignores the
 * `protocol` field, so the person would walk into the lobby and out again.)
 *
 * It does not import `vscode`: the socket tests drive it from plain Node.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type IDisposable, toDisposable } from '../../shared/disposable';
import { parseServerFrameV2 } from '../../shared/framing';
import { roomKey } from '../../shared/names';
import {
  type AckV2Frame,
  type ClientFrameV2,
  type ConversationListFrame,
  type DmOpenedFrame,
  type ConversationAddedFrame,
  type ErrorCodeV2,
  type ErrorV2Frame,
  FATAL_ERRORS_V2,
  type HistoryPageFrame,
  IDENTITY_KEY_MAX_CHARS,
  IDENTITY_KEY_MIN_CHARS,
  type MemberListFrame,
  type PartedFrame,
  PROTOCOL_V2,
  type ReadMarkerFrame,
  type RoomEventV2,
  type RoomListFrame,
  type RoomStateFrame,
  type SearchResultsFrame,
  type ServerFrameV2,
  TYPING_MIN_INTERVAL_MS,
  typingRunEndedAt,
  type TypingEvent,
  type WelcomeV2Frame,
} from '../../shared/protocolV2';
import { checkServerFrameV2 } from '../../shared/serverFramesV2';
import { Emitter } from '../emitter';
import type { RefusalCode } from './chatClient';
import { Outbox, type OutboxEntry, type OutboxStorage, outboxKey } from './outbox';
import { type ConnectionOptions, type ConnectionState, type FirstOutcomeOf, ReconnectingClient } from './reconnectingClient';
import type { LineTransport } from './transport';

export interface ChatClientV2Options extends ConnectionOptions {
  name: string;
  clientId: string;
  token?: string;
  /** The name's identity key on this server; without one the client makes one (and reports it through `onKey`). */
  key?: string;
  outboxes: OutboxStorage;
  /** How long a request may wait for its answer. */
  requestTimeoutMs?: number;
}

export type ClientStateV2 = ConnectionState<WelcomeV2Frame, RefusalCode | ErrorCodeV2>;

/** The server predates protocol v2: speak v1 to it. */
type V1Only = { kind: 'v1only' };

export type FirstOutcomeV2 = FirstOutcomeOf<WelcomeV2Frame, RefusalCode | ErrorCodeV2> | V1Only;

/** How a join ended: the room's state, or the server's refusal. */
export type JoinOutcome = { ok: true; state: RoomStateFrame } | { ok: false; code: ErrorCodeV2 | 'disconnected'; message: string };

/** The answer to a request or a change: the frame, or why there is none. */
export type Answer<T> = { ok: true; frame: T } | { ok: false; code: ErrorCodeV2 | 'disconnected' | 'timeout'; message: string };

/** A change the server has not answered yet; sent again, with its id, after a reconnect. */
type PendingChange = { frame: ClientFrameV2 & { id: string; room: string }; settle(answer: Answer<AckV2Frame>): void };

interface PendingRequest {
  settle(answer: Answer<ServerFrameV2>): void;
  timer: IDisposable;
}

/** One room this client is in (or on its way into). */
interface RoomTrack {
  /** As the person named it, until the server's canonical spelling arrives. */
  room: string;
  lastSeq: number;
  /** The join on the current connection has been answered with `roomState`. */
  joined: boolean;
  joinId: string | undefined;
  /** Which history of the room lastSeq belongs to (cluster mode); sent back with the join so a replaced history is noticed. */
  epoch?: string;
  outbox: Outbox;
  waiters: ((outcome: JoinOutcome) => void)[];
}

const REQUEST_TIMEOUT_MS = 15_000;
/** Answers that end the first attempt for good: a person has to act. */
const HELLO_REFUSALS: ReadonlySet<string> = new Set(['name_reserved', 'name_taken', 'bad_name', 'unauthorized', 'locked_out', 'rate_limited', 'bad_frame', 'name_released']);
/** A message refused for these reasons will never be taken; it leaves the outbox. */
const PERMANENT_SAY_ERRORS: ReadonlySet<string> = new Set(['too_long', 'bad_frame', 'not_found', 'forbidden', 'not_joined']);
const RETRY_AFTER_MS = 2_000;
const PROBE_ID = 'protocol-probe';

/** A fresh identity key: 32 random bytes, as the server would make (protocol.md, "Identity"). */
export function newIdentityKey(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether a string can be a key this client sends. */
export function plausibleKey(key: unknown): key is string {
  return typeof key === 'string' && key.length >= IDENTITY_KEY_MIN_CHARS && key.length <= IDENTITY_KEY_MAX_CHARS;
}

export class ChatClientV2 extends ReconnectingClient<ClientFrameV2, WelcomeV2Frame, ErrorCodeV2, V1Only> {
  private readonly roomStateEmitter = this.register(new Emitter<RoomStateFrame>());
  private readonly eventEmitter = this.register(new Emitter<RoomEventV2>());
  private readonly typingEmitter = this.register(new Emitter<TypingEvent>());
  private readonly readMarkerEmitter = this.register(new Emitter<ReadMarkerFrame>());
  private readonly partedEmitter = this.register(new Emitter<PartedFrame>());
  private readonly conversationAddedEmitter = this.register(new Emitter<ConversationAddedFrame>());
  private readonly outboxEmitter = this.register(new Emitter<{ room: string; entries: readonly OutboxEntry[] }>());
  private readonly failureEmitter = this.register(new Emitter<{ room: string; id: string; text: string; code: string; reason: string }>());
  private readonly errorEmitter = this.register(new Emitter<ErrorV2Frame>());
  private readonly keyEmitter = this.register(new Emitter<string>());
  private readonly frameEmitter = this.register(new Emitter<ServerFrameV2>());

  /** A room let us in (again, after a reconnect too): its state before its replay. */
  readonly onRoomState = this.roomStateEmitter.event;
  /** Room events not seen before, each room's oldest first. */
  readonly onEvent = this.eventEmitter.event;
  readonly onTyping = this.typingEmitter.event;
  /** Our read marker moved in another window of ours. */
  readonly onReadMarker = this.readMarkerEmitter.event;
  /** We are out of a room we did not part here (kicked, or parted in another window). */
  readonly onParted = this.partedEmitter.event;
  /** Someone opened a DM with us (or we did, in another window). */
  readonly onConversationAdded = this.conversationAddedEmitter.event;
  readonly onOutbox = this.outboxEmitter.event;
  /** A message the server will never take. */
  readonly onSendFailure = this.failureEmitter.event;
  readonly onServerError = this.errorEmitter.event;
  /** The key to keep for this name on this server (one this client made, or the server's). */
  readonly onKey = this.keyEmitter.event;
  readonly onFrame = this.frameEmitter.event;

  /** This connection has said hello (after the probe's answer). */
  private helloSent = false;
  private key: string;
  private readonly rooms = new Map<string, RoomTrack>();
  private readonly changes = new Map<string, PendingChange>();
  private readonly requests = new Map<string, PendingRequest>();
  private readonly retryTimers = new Map<string, IDisposable>();
  private readonly lastTypingAt = new Map<string, number>();

  constructor(private readonly options: ChatClientV2Options) {
    super(options);
    this.key = plausibleKey(options.key) ? options.key : newIdentityKey();
    this.register(toDisposable(() => this.retryTimers.forEach((timer) => timer.dispose())));
    this.register(toDisposable(() => this.rooms.forEach((track) => track.outbox.dispose())));
  }

  get name(): string {
    return this.options.name;
  }

  /** The identity key this client says hello with. */
  get identityKey(): string {
    return this.key;
  }

  /** The rooms this client is in or joining, by the spelling the server gave (or the one asked for). */
  get roomNames(): string[] {
    return [...this.rooms.values()].map((track) => track.room);
  }

  lastSeq(room: string): number {
    return this.rooms.get(roomKey(room))?.lastSeq ?? 0;
  }

  pending(room: string): readonly OutboxEntry[] {
    return this.rooms.get(roomKey(room))?.outbox.entries ?? [];
  }

  isJoined(room: string): boolean {
    return this.rooms.get(roomKey(room))?.joined === true;
  }

  /**
   * Joins a room (or a DM of ours), or shows it again when we are in it.
   * Resolves with its state, or the refusal; a room refused stays out of the
   * rooms this client rejoins.
   */
  join(room: string): Promise<JoinOutcome> {
    const key = roomKey(room);
    let track = this.rooms.get(key);
    if (!track) {
      track = { room, lastSeq: 0, joined: false, joinId: undefined, outbox: this.openOutbox(room), waiters: [] };
      this.rooms.set(key, track);
    }
    const outcome = new Promise<JoinOutcome>((resolve) => track.waiters.push(resolve));
    // A join already on its way answers this one too: asking twice would have the room replayed twice.
    const joinUnderWay = track.joinId !== undefined && !track.joined;
    if (this.welcomed && !joinUnderWay) this.sendJoin(track);
    return outcome;
  }

  /** Leaves a room on purpose, as a person (the room hears `left`, and it leaves our conversations). */
  async part(room: string): Promise<Answer<AckV2Frame>> {
    const key = roomKey(room);
    const track = this.rooms.get(key);
    this.rooms.delete(key);
    track?.outbox.dispose();
    for (const waiter of track?.waiters.splice(0) ?? []) waiter({ ok: false, code: 'not_joined', message: `You left ${room}.` });
    return this.change({ type: 'part', id: randomUUID(), room: track?.room ?? room });
  }

  /** Queues a message for a room; it goes now if we are in the room, else once we are. Returns its id. */
  say(room: string, text: string, replyTo?: number): string {
    const track = this.rooms.get(roomKey(room));
    if (!track) throw new Error(`Not in ${room}.`);
    const id = randomUUID();
    // The message ends this typing run (the server and the others end it too): the next one is signalled from a second after it.
    this.lastTypingAt.set(roomKey(room), typingRunEndedAt(Date.now()));
    track.outbox.add({ id, text, createdAt: Date.now(), ...(replyTo !== undefined ? { replyTo } : {}) });
    if (track.joined && this.welcomed) this.writeSay(track, track.outbox.entries[track.outbox.entries.length - 1]);
    return id;
  }

  edit(room: string, target: number, text: string): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'edit', id: randomUUID(), room: this.canonical(room), target, text });
  }

  delete(room: string, target: number): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'delete', id: randomUUID(), room: this.canonical(room), target });
  }

  react(room: string, target: number, emoji: string, add: boolean): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'react', id: randomUUID(), room: this.canonical(room), target, emoji, add });
  }

  read(room: string, seq: number): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'read', id: randomUUID(), room: this.canonical(room), seq });
  }

  setTopic(room: string, text: string): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'topic', id: randomUUID(), room: this.canonical(room), text });
  }

  kick(room: string, name: string): Promise<Answer<AckV2Frame>> {
    return this.change({ type: 'kick', id: randomUUID(), room: this.canonical(room), name });
  }

  /** Tells the room we are typing; at most once per TYPING_MIN_INTERVAL_MS a room (the server drops the rest anyway). */
  typing(room: string): void {
    const key = roomKey(room);
    const now = Date.now();
    if (!this.rooms.get(key)?.joined || now - (this.lastTypingAt.get(key) ?? 0) < TYPING_MIN_INTERVAL_MS) return;
    this.lastTypingAt.set(key, now);
    this.write({ type: 'typing', room: this.canonical(room) });
  }

  history(room: string, before: number, limit?: number): Promise<Answer<HistoryPageFrame>> {
    return this.request<HistoryPageFrame>({ type: 'history', id: randomUUID(), room: this.canonical(room), before, ...(limit !== undefined ? { limit } : {}) }, 'historyPage');
  }

  search(room: string, text: string, before?: number): Promise<Answer<SearchResultsFrame>> {
    return this.request<SearchResultsFrame>({ type: 'search', id: randomUUID(), room: this.canonical(room), text, ...(before !== undefined ? { before } : {}) }, 'searchResults');
  }

  listRooms(after?: string): Promise<Answer<RoomListFrame>> {
    return this.request<RoomListFrame>({ type: 'listRooms', id: randomUUID(), ...(after !== undefined ? { after } : {}) }, 'roomList');
  }

  listMembers(room: string, after?: string): Promise<Answer<MemberListFrame>> {
    return this.request<MemberListFrame>({ type: 'listMembers', id: randomUUID(), room: this.canonical(room), ...(after !== undefined ? { after } : {}) }, 'memberList');
  }

  conversations(after?: string): Promise<Answer<ConversationListFrame>> {
    return this.request<ConversationListFrame>({ type: 'conversations', id: randomUUID(), ...(after !== undefined ? { after } : {}) }, 'conversationList');
  }

  openDm(names: string[]): Promise<Answer<DmOpenedFrame>> {
    return this.request<DmOpenedFrame>({ type: 'openDm', id: randomUUID(), with: names }, 'dmOpened');
  }

  /**
   * Leaves on purpose: says bye (every room hears `left` with `quit`; they
   * stay among our conversations), closes, and never reconnects.
   */
  leave(): Promise<void> {
    return this.closeOnPurpose('You left.');
  }

  /** The connection is up: first the question only a v2 server knows (see the top of this file). */
  protected opened(): void {
    this.write({ type: 'conversations', id: PROBE_ID });
  }

  private canonical(room: string): string {
    return this.rooms.get(roomKey(room))?.room ?? room;
  }

  private openOutbox(room: string): Outbox {
    const outbox = new Outbox(this.options.outboxes, outboxKey({ host: this.options.host, port: this.options.port, room, name: this.options.name }));
    outbox.onChange((entries) => this.outboxEmitter.fire({ room: this.canonical(room), entries }));
    return outbox;
  }

  private change(frame: PendingChange['frame']): Promise<Answer<AckV2Frame>> {
    return new Promise((resolve) => {
      this.changes.set(frame.id, { frame, settle: resolve });
      if (this.welcomed && (frame.type === 'part' || this.rooms.get(roomKey(frame.room))?.joined)) this.write(frame);
    });
  }

  private request<T extends ServerFrameV2>(frame: ClientFrameV2 & { id: string }, answerType: T['type']): Promise<Answer<T>> {
    if (!this.welcomed) return Promise.resolve({ ok: false, code: 'disconnected', message: 'Not connected to the server just now.' });
    return new Promise((resolve) => {
      const handle = setTimeout(() => {
        this.requests.delete(frame.id);
        resolve({ ok: false, code: 'timeout', message: 'The server did not answer in time.' });
      }, this.options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS);
      this.requests.set(frame.id, {
        timer: toDisposable(() => clearTimeout(handle)),
        settle: (answer) => {
          if (answer.ok && answer.frame.type !== answerType) {
            resolve({ ok: false, code: 'bad_frame', message: `The server answered with ${answer.frame.type}.` });
            return;
          }
          resolve(answer as Answer<T>);
        },
      });
      this.write(frame);
    });
  }

  private sayHello(): void {
    this.helloSent = true;
    const hello: ClientFrameV2 = { type: 'hello', protocol: PROTOCOL_V2, name: this.options.name, clientId: this.options.clientId, key: this.key };
    if (this.options.token) hello.token = this.options.token;
    this.write(hello);
  }

  protected receive(bytes: Buffer, transport: LineTransport): void {
    const parsed = parseServerFrameV2(bytes);
    if (!parsed.ok) return;
    // A frame whose fields are not what the protocol says is skipped: a hostile server gets no further than that.
    const frame = checkServerFrameV2(parsed.frame);
    if (!frame) return;
    this.frameEmitter.fire(frame);
    this.handleFrame(frame, transport);
  }

  private handleFrame(frame: ServerFrameV2, transport: LineTransport): void {
    if (!this.helloSent) {
      // The probe's answer: "say hello first" (with the probe's id) is a v2 server; a server from
      // before v2 calls the frame unknown (bad_frame, without an id). Anything else is not a chat server we know.
      if (frame.type === 'error' && frame.code === 'not_joined' && frame.id === PROBE_ID) this.sayHello();
      else if (frame.type === 'error' && frame.id !== PROBE_ID && frame.code !== 'bad_frame') this.onError(frame, transport);
      else if (frame.type !== 'ping') this.fallBackToV1();
      return;
    }
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame, transport);
      case 'roomState':
        return this.onRoomStateFrame(frame);
      case 'message':
      case 'edited':
      case 'deleted':
      case 'reactions':
      case 'topic':
      case 'owner':
      case 'joined':
      case 'left': {
        const track = this.rooms.get(roomKey(frame.room));
        if (!track || frame.seq <= track.lastSeq) return;
        track.lastSeq = frame.seq;
        this.eventEmitter.fire(frame);
        return;
      }
      case 'typing':
        this.typingEmitter.fire(frame);
        return;
      case 'readMarker':
        this.readMarkerEmitter.fire(frame);
        return;
      case 'conversationAdded':
        this.conversationAddedEmitter.fire(frame);
        return;
      case 'parted': {
        const track = this.rooms.get(roomKey(frame.room));
        this.rooms.delete(roomKey(frame.room));
        track?.outbox.dispose();
        this.partedEmitter.fire(frame);
        return;
      }
      case 'ack':
        return this.onAck(frame);
      case 'error':
        return this.onError(frame, transport);
      case 'ping':
        this.write({ type: 'pong' });
        return;
      case 'pong':
        return;
      default:
        // Answers to requests.
        if ('id' in frame && typeof frame.id === 'string') this.settleRequest(frame.id, { ok: true, frame });
    }
  }

  private onWelcome(welcome: WelcomeV2Frame, transport: LineTransport): void {
    if (welcome.protocol !== PROTOCOL_V2) {
      // A server that ignored the probe's meaning and took us in under v1 anyway: not ours to speak to as v2.
      this.fallBackToV1();
      return;
    }
    this.markWelcomed(transport);
    if (plausibleKey(welcome.key) && welcome.key !== this.key) this.key = welcome.key;
    this.keyEmitter.fire(this.key);
    this.setState({ kind: 'connected', welcome });
    this.settleFirstOutcome({ kind: 'welcome', welcome });
    for (const track of this.rooms.values()) this.sendJoin(track);
    // Parts go at once; other changes wait for their room's join.
    for (const change of this.changes.values()) if (change.frame.type === 'part') this.write(change.frame);
  }

  private sendJoin(track: RoomTrack): void {
    track.joined = false;
    track.joinId = randomUUID();
    this.write({ type: 'join', id: track.joinId, room: track.room, ...(track.lastSeq > 0 ? { lastSeq: track.lastSeq, ...(track.epoch !== undefined ? { epoch: track.epoch } : {}) } : {}) });
  }

  private onRoomStateFrame(state: RoomStateFrame): void {
    // Without an id it is the server showing a room we are in afresh (reset), not an answer to our join.
    const answersJoin = state.id !== undefined;
    const track = answersJoin ? [...this.rooms.values()].find((candidate) => candidate.joinId === state.id) : state.reset !== undefined ? this.rooms.get(roomKey(state.room)) : undefined;
    if (!track) return;
    this.rooms.delete(roomKey(track.room));
    track.room = state.room;
    this.rooms.set(roomKey(state.room), track);
    track.joined = true;
    track.epoch = state.epoch;
    // A history that was replaced (a cluster's store lost or rewound it) starts again: the events that
    // follow are the room's newest, whatever their seqs. A server that lost its history (started with
    // --memory) counts from its seq again.
    if (state.reset !== undefined) track.lastSeq = 0;
    else if (state.seq < track.lastSeq) track.lastSeq = state.seq;
    this.roomStateEmitter.fire(state);
    if (!answersJoin) return;
    for (const waiter of track.waiters.splice(0)) waiter({ ok: true, state });
    for (const entry of track.outbox.entries) this.writeSay(track, entry);
    for (const change of this.changes.values()) if (change.frame.type !== 'part' && roomKey(change.frame.room) === roomKey(state.room)) this.write(change.frame);
  }

  private writeSay(track: RoomTrack, entry: OutboxEntry): void {
    this.write({ type: 'say', id: entry.id, room: track.room, text: entry.text, ...(entry.replyTo !== undefined ? { replyTo: entry.replyTo } : {}) });
  }

  private onAck(ack: AckV2Frame): void {
    for (const track of this.rooms.values()) {
      if (track.joinId === ack.id) return;
      if (track.outbox.find(ack.id)) {
        this.takeOut(track, ack.id);
        return;
      }
    }
    const change = this.changes.get(ack.id);
    if (change) {
      this.changes.delete(ack.id);
      change.settle({ ok: true, frame: ack });
    }
  }

  private onError(error: ErrorV2Frame, transport: LineTransport): void {
    this.errorEmitter.fire(error);
    const id = error.id;
    if (id !== undefined) {
      const track = [...this.rooms.values()].find((candidate) => candidate.joinId === id);
      if (track) {
        // A room refused: it leaves the rooms this client rejoins, but its outbox stays stored.
        this.rooms.delete(roomKey(track.room));
        track.outbox.dispose();
        for (const waiter of track.waiters.splice(0)) waiter({ ok: false, code: error.code, message: error.message });
        return;
      }
      for (const room of this.rooms.values()) {
        const entry = room.outbox.find(id);
        if (entry) return this.onSayError(room, entry, error);
      }
      const change = this.changes.get(id);
      if (change) {
        if (error.code === 'rate_limited' || error.code === 'storage_failed') return this.retryLater(id, () => this.write(change.frame));
        this.changes.delete(id);
        change.settle({ ok: false, code: error.code, message: error.message });
        return;
      }
      if (this.requests.has(id)) return this.settleRequest(id, { ok: false, code: error.code, message: error.message });
    }
    if (!this.welcomed && HELLO_REFUSALS.has(error.code)) {
      this.refuse(error.code, error.message);
      return;
    }
    if (FATAL_ERRORS_V2.has(error.code) && this.welcomed && (error.code === 'name_released' || error.code === 'name_reserved')) {
      this.refuse(error.code, error.message);
      return;
    }
    if (FATAL_ERRORS_V2.has(error.code) || !this.welcomed) transport.setCloseReason(error.message);
  }

  private onSayError(track: RoomTrack, entry: OutboxEntry, error: ErrorV2Frame): void {
    if (PERMANENT_SAY_ERRORS.has(error.code)) {
      this.takeOut(track, entry.id);
      this.failureEmitter.fire({ room: track.room, id: entry.id, text: entry.text, code: error.code, reason: error.message });
      return;
    }
    this.retryLater(entry.id, () => {
      if (track.joined && track.outbox.find(entry.id)) this.writeSay(track, entry);
    });
  }

  private retryLater(id: string, resend: () => void): void {
    this.retryTimers.get(id)?.dispose();
    const handle = setTimeout(() => {
      this.retryTimers.delete(id);
      if (this.welcomed) resend();
    }, RETRY_AFTER_MS);
    this.retryTimers.set(id, toDisposable(() => clearTimeout(handle)));
  }

  private takeOut(track: RoomTrack, id: string): void {
    track.outbox.remove(id);
    this.retryTimers.get(id)?.dispose();
    this.retryTimers.delete(id);
  }

  private settleRequest(id: string, answer: Answer<ServerFrameV2>): void {
    const request = this.requests.get(id);
    if (!request) return;
    this.requests.delete(id);
    request.timer.dispose();
    request.settle(answer);
  }

  private failOpenRequests(reason: string): void {
    for (const id of [...this.requests.keys()]) this.settleRequest(id, { ok: false, code: 'disconnected', message: reason });
  }

  private fallBackToV1(): void {
    this.dropTransport('The server speaks protocol 1 only.');
    this.setState({ kind: 'closed', reason: 'The server speaks protocol 1 only.', code: 'unsupported' });
    this.settleFirstOutcome({ kind: 'v1only' });
  }

  /** Every room's join is refused with it, as the hello was. */
  protected override refused(code: RefusalCode | ErrorCodeV2, message: string): void {
    for (const track of this.rooms.values()) for (const waiter of track.waiters.splice(0)) waiter({ ok: false, code: code === 'fingerprint_mismatch' ? 'unauthorized' : code, message });
  }

  /** The next connection says hello and joins afresh; requests made on this one are not answered now. */
  protected override transportDropped(reason: string): void {
    this.helloSent = false;
    for (const track of this.rooms.values()) track.joined = false;
    this.failOpenRequests(reason);
  }

  protected override leaving(reason: string): void {
    this.failOpenRequests(reason);
  }
}
