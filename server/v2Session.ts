/**
 * Protocol v2 on one connection: an identity (a name proved by its key) and
 * many conversations at once.
 *
 * The session turns each frame into a change of a room or of the directory,
 * and answers it once that change is stored: `ack` (with the event's seq when
 * it made one), or the answer the request asked for. Room rules (who may edit,
 * who owns the room) live in Room; what belongs to people (names, read
 * markers, conversations, DMs) in the Directory. Every mutating frame is
 * exactly-once: a room change is stored under its (clientId, id), so a retry
 * gets the first answer; the others (join, part, read, openDm, releaseName)
 * come to the same thing however often they are applied.
 */
import { randomBytes } from 'node:crypto';
import { encodeFrame, parseClientObjectV2, validateClientFrameV2 } from '../shared/framing';
import { nameProblem, roomKey, roomProblem } from '../shared/names';
import { ID_MAX_CHARS, CLIENT_ID_MAX_CHARS, MAX_SERVER_FRAME_BYTES, NAME_MAX_CHARS, WELCOME_MAX_MEMBERS, type LeaveReason } from '../shared/protocol';
import {
  type ClientFrameV2,
  type ConversationSummary,
  DM_ID_CHARS,
  DM_PREFIX,
  type EditFrame,
  type ErrorCodeV2,
  type HelloV2Frame,
  IDENTITY_KEY_MAX_CHARS,
  IDENTITY_KEY_MIN_CHARS,
  type JoinFrame,
  type LimitsV2,
  type OpenDmFrame,
  PROTOCOL_V2,
  type ReactFrame,
  type ReadFrame,
  type RoomStateFrame,
  SEARCH_MAX_CHARS,
  SEARCH_MIN_CHARS,
  type SearchFrame,
  type ServerFrameV2,
  TYPING_MIN_INTERVAL_MS,
  type HistoryFrame,
  type SayV2Frame,
  type DeleteFrame,
  type TopicFrame,
  type KickFrame,
  type SetOwnerFrame,
  type ListMembersFrame,
  type ListRoomsFrame,
  type PartFrame,
  type RoomSummary,
  type TypingFrame,
} from '../shared/protocolV2';
import type { ConnectionHost } from './connection';
import { type Identity, namesOf, type RoomMeta } from './directory';
import type { NdjsonConnection } from './ndjsonConnection';
import { messageTextProblem } from './ndjsonConnection';
import { TokenBucket } from './rateLimiter';
import { type Actor, type ChangeOutcome, type IdentitySeat, RemoteMember, type Room, type RoomResetReason, type SeatHolder, storageFailure } from './room';
import type { Departure } from './roomEvents';
import { seatNameProblem } from './seatNames';

/** What a v2 session needs from the server beside what every connection does. */
export interface V2Host extends ConnectionHost {
  readonly limitsV2: LimitsV2;
  /** Every v2 session of an identity, on this server. */
  sessionsOf(identityId: string): Iterable<V2Session>;
  addSession(session: V2Session): void;
  removeSession(session: V2Session): void;
  /** A v1 or classic member somewhere on the server whose name is `name` or looks like it. */
  guestNamed(name: string): boolean;
  /** Takes one of the new names this address may claim a minute; false when it has had its share. */
  mayClaimName(address: string | undefined): boolean;
  /** A loaded room, without loading it. */
  loadedRoom(key: string): Room | undefined;
  /** Loads a room to read it (for unread counts) without joining it; undefined when it cannot be loaded now. */
  readRoom(name: string): Promise<Room | undefined>;
  /** The latest seq a room had when it was last unloaded (so an unread count needs no load when nothing is new). */
  lastSeqWhenUnloaded(key: string): number | undefined;
  /** Makes the DM between exactly these identities (once, however many ask at once), or finds it. */
  openDm(participantIds: string[]): Promise<RoomMeta>;
  /** Forgets an identity and closes every session of it but `asking` (which answers its own frame, then closes). */
  releaseIdentity(identityId: string, asking?: V2Session): Promise<void>;
}

interface Membership {
  room: Room;
  seat: IdentitySeat;
  /** When this connection last passed on a typing signal in this room. */
  lastTypingAt: number;
}

/** The most a page's envelope (type, id, room, brackets) takes beside its events. */
const PAGE_ENVELOPE_BYTES = 1024;
const MEMBER_PAGE_NAMES = 500;
const ROOM_PAGE_ROOMS = 100;
const CONVERSATION_PAGE = 100;

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class V2Session implements SeatHolder {
  private readonly memberships = new Map<string, Membership>();
  /** Made on first use: most connections never search or open a DM. */
  private searches: TokenBucket | undefined;
  private newDms: TokenBucket | undefined;
  private readonly actor: Actor;
  /** This connection asked to release the identity: it answers that itself, then closes. */
  releasing = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly connection: NdjsonConnection,
    private readonly host: V2Host,
    readonly identity: Identity,
    readonly clientId: string,
  ) {
    this.actor = { identityId: identity.id, name: identity.name };
  }

  get name(): string {
    return this.identity.name;
  }

  /**
   * Answers a v2 hello: the identity its name and key prove (or a new one for
   * a name nobody holds), and the welcome. Undefined when the hello was
   * refused (the connection is told, and closed when the refusal is fatal).
   */
  static async open(connection: NdjsonConnection, host: V2Host, raw: Record<string, unknown>): Promise<V2Session | undefined> {
    const validated = validateClientFrameV2(raw);
    if (!validated.ok) {
      connection.fail(validated.problem.code, validated.problem.message);
      return undefined;
    }
    const hello = validated.frame as HelloV2Frame;
    const address = connection.address;
    const verdict = host.accessGate.check(hello.token, address);
    if (verdict === 'locked_out') return refuse(connection, 'locked_out', 'Too many failed attempts from this address; try again in a minute.');
    if (verdict === 'unauthorized') return refuse(connection, 'unauthorized', hello.token === undefined ? 'This server needs a token.' : 'The token is wrong.');
    const badName = nameProblem(hello.name) ?? seatNameProblem(hello.name);
    if (badName) return refuse(connection, 'bad_name', badName);
    if (hello.clientId.length === 0 || hello.clientId.length > CLIENT_ID_MAX_CHARS) return refuse(connection, 'bad_frame', `The clientId must be 1 to ${CLIENT_ID_MAX_CHARS} characters.`);
    // A key that is too long is simply wrong, never cut (cut, it could match a key it is not).
    const key = hello.key !== undefined && hello.key.length > 0 && hello.key.length <= IDENTITY_KEY_MAX_CHARS ? hello.key : hello.key === undefined ? undefined : '\u0000';

    const { directory } = host;
    const found = await directory.checkName(hello.name, key);
    let identity: Identity;
    let issuedKey: string | undefined;
    if (found.kind === 'owner') {
      identity = found.identity;
    } else if (found.kind === 'reserved') {
      // A wrong key is a guess like a wrong token: it counts towards the address's lock-out.
      if (key !== undefined) host.accessGate.noteFailure(address);
      return refuse(connection, 'name_reserved', key === undefined ? `The name "${hello.name}" is reserved by its owner; send its key, or choose another name.` : `That is not the key of the name "${hello.name}".`);
    } else {
      if (host.guestNamed(hello.name)) {
        // Someone without an identity (v1 or classic) is using the name right now: it is theirs while they are here.
        return refuse(connection, 'name_taken', `Someone is using the name "${hello.name}" right now; choose another, or try again once they have left.`, true);
      }
      if (!host.mayClaimName(address)) {
        return refuse(connection, 'rate_limited', `This address has claimed ${host.limitsV2.newNamesPerMinute} new names within a minute, the most it may; try again in a little while.`, true);
      }
      // A key the client made is kept (so a welcome lost on the way costs nothing); otherwise the server makes one.
      const proposed = key !== undefined && key.length >= IDENTITY_KEY_MIN_CHARS ? key : undefined;
      const claimed = await directory.claim(hello.name, proposed);
      if (!claimed) return refuse(connection, 'name_reserved', `The name "${hello.name}" was claimed a moment ago by someone else; choose another.`);
      identity = claimed.identity;
      issuedKey = proposed === undefined ? claimed.key : undefined;
    }
    if (connection.stopping) return undefined;
    const session = new V2Session(connection, host, identity, hello.clientId);
    connection.name = identity.name;
    host.addSession(session);
    const { limits, limitsV2 } = host;
    const welcome: ServerFrameV2 = {
      type: 'welcome',
      protocol: PROTOCOL_V2,
      you: identity.name,
      ...(issuedKey === undefined ? {} : { key: issuedKey }),
      keyExpiresAt: identity.expiresAt,
      limits: { maxTextBytes: limits.maxTextBytes, maxFrameBytes: limits.maxFrameBytes, ...limitsV2 },
    };
    connection.out(encodeFrame(welcome));
    host.logger.info(`${connection.peer} said hello as ${identity.name} (protocol 2${issuedKey === undefined ? '' : ', a new identity'}).`);
    return session;
  }

  /** One line from the client, decoded by the v2 table. */
  async handleLine(line: Buffer): Promise<void> {
    const parsed = parseClientObjectV2(line);
    const validated = parsed.ok ? validateClientFrameV2(parsed.frame) : parsed;
    if (!validated.ok) return this.fail(validated.problem.code, validated.problem.message, validated.problem.id);
    return this.handle(validated.frame);
  }

  private async handle(frame: ClientFrameV2): Promise<void> {
    if ('id' in frame && (frame.id.length === 0 || frame.id.length > ID_MAX_CHARS)) {
      return this.fail('bad_frame', `An id must be 1 to ${ID_MAX_CHARS} characters.`, frame.id.slice(0, ID_MAX_CHARS));
    }
    switch (frame.type) {
      case 'hello':
        return this.fail('already_joined', 'This connection has already said hello.');
      case 'join':
        return this.join(frame);
      case 'part':
        return this.part(frame);
      case 'say':
        return this.say(frame);
      case 'edit':
        return this.edit(frame);
      case 'delete':
        return this.remove(frame);
      case 'react':
        return this.react(frame);
      case 'typing':
        return this.typing(frame);
      case 'read':
        return this.read(frame);
      case 'topic':
        return this.topic(frame);
      case 'kick':
        return this.kick(frame);
      case 'setOwner':
        return this.setOwner(frame);
      case 'listRooms':
        return this.listRooms(frame);
      case 'conversations':
        return this.conversations(frame.id, frame.after);
      case 'listMembers':
        return this.listMembers(frame);
      case 'history':
        return this.history(frame);
      case 'search':
        return this.search(frame);
      case 'openDm':
        return this.openDm(frame);
      case 'releaseName':
        return this.releaseName(frame.id);
      case 'ping':
        this.connection.out(encodeFrame({ type: 'pong' }));
        return;
      case 'pong':
        return;
      case 'bye':
        return this.connection.byeV2();
    }
  }

  // ------------------------------------------------------------ answers

  private send(frame: ServerFrameV2): void {
    this.connection.out(encodeFrame(frame));
  }

  private ack(id: string, seq?: number): void {
    this.send(seq === undefined ? { type: 'ack', id } : { type: 'ack', id, seq });
  }

  /** An error about one frame; closes the connection only for the codes that end a session. */
  fail(code: ErrorCodeV2, message: string, id?: string, room?: string): void {
    if (room === undefined) {
      this.connection.fail(code, message, id);
      return;
    }
    this.send(id === undefined ? { type: 'error', code, message, room } : { type: 'error', code, message, id, room });
  }

  private answer(id: string, room: string, outcome: ChangeOutcome): void {
    if (outcome.ok) this.ack(id, outcome.seq);
    else this.fail(outcome.code, outcome.message, id, room);
  }

  // ------------------------------------------------------------ rooms

  /** The room a frame names, if this connection is in it; otherwise the client is told (a DM it may not see is `not_found`). */
  private membership(room: string, id: string | undefined): Membership | undefined {
    const key = roomKey(room.normalize('NFC'));
    const found = this.memberships.get(key);
    if (found) return found;
    if (key.startsWith(DM_PREFIX)) this.fail('not_found', `There is no conversation "${room}" of yours.`, id, room);
    else this.fail('not_joined', `Join ${room} first.`, id, room);
    return undefined;
  }

  /** Why this identity may not enter the room `key` names (a DM it is not part of does not exist for it), or undefined. */
  private entryProblem(name: string, key: string): { code: ErrorCodeV2; message: string } | undefined {
    const problem = roomProblem(name);
    if (problem) return { code: 'bad_room', message: problem };
    if (!key.startsWith(DM_PREFIX)) return undefined;
    const meta = this.host.directory.roomMeta(key);
    if (meta?.kind !== 'dm' || !meta.participantIds?.includes(this.identity.id)) return { code: 'not_found', message: `There is no conversation "${name}" of yours.` };
    return undefined;
  }

  private async join(frame: JoinFrame): Promise<void> {
    const name = frame.room.normalize('NFC');
    const key = roomKey(name);
    const problem = this.entryProblem(name, key);
    if (problem) return this.fail(problem.code, problem.message, frame.id, frame.room);
    if (frame.lastSeq !== undefined && frame.lastSeq < 0) return this.fail('bad_frame', 'lastSeq must not be negative.', frame.id, frame.room);
    const already = this.memberships.get(key);
    if (!already && this.memberships.size >= this.host.limitsV2.maxRoomsPerConnection) {
      return this.fail('too_many_rooms', `A connection may be in at most ${this.host.limitsV2.maxRoomsPerConnection} rooms at once; part one first.`, frame.id, frame.room);
    }
    const entry = await this.host.enterRoom(name, this.connection.address, (room) => this.enter(room, frame));
    if (!entry.ok) return this.fail(entry.code, entry.message, frame.id, frame.room);
    // Seated and shown the room; acknowledged once the conversation (and a new room's owner) is stored.
    if (entry.value) this.connection.oweAnswer(entry.value);
  }

  /** Takes (or shares) the identity's seat in a loaded room; runs in the turn the room was found loaded. */
  private enter(room: Room, frame: JoinFrame): Promise<void> | undefined {
    if (this.connection.stopping) return undefined;
    const key = roomKey(room.name);
    let membership = this.memberships.get(key);
    let seated: Promise<void> | undefined;
    if (!membership) {
      const holder = room.memberNamed(this.identity.name);
      // The identity's own seat, here or (in a cluster) on another server, is no one else's.
      const own = holder === room.seatOf(this.identity.id) || (holder instanceof RemoteMember && holder.identityId === this.identity.id);
      if (holder && !own) {
        this.fail('name_taken', `Someone in ${room.name} is already called "${holder.name}".`, frame.id, frame.room);
        return undefined;
      }
      if (this.memberships.size >= this.host.limitsV2.maxRoomsPerConnection) {
        this.fail('too_many_rooms', `A connection may be in at most ${this.host.limitsV2.maxRoomsPerConnection} rooms at once; part one first.`, frame.id, frame.room);
        return undefined;
      }
      const joined = room.joinIdentity(this, this.identity.id, this.identity.name);
      membership = { room, seat: joined.seat, lastTypingAt: -Infinity };
      seated = joined.seated;
      this.memberships.set(key, membership);
      this.host.logger.info(`${this.connection.peer} joined ${room.name} as ${this.identity.name} (protocol 2).`);
    }
    // A new room is this identity's before its state is shown: the creator sees itself as the owner.
    const claimed = this.host.claimRoom(room, this.identity.id);
    // In a cluster, a position in another epoch of the room's history (or past its end) means nothing here: the room is shown afresh.
    const stale = room.epoch !== undefined && frame.lastSeq !== undefined && ((frame.epoch !== undefined && frame.epoch !== room.epoch) || frame.lastSeq > room.latestSeq);
    this.send(this.roomState(room, frame.id, stale ? 'epoch' : undefined));
    this.connection.queueReplay(room.replayCursor(stale ? undefined : frame.lastSeq, this.host.limits.replayEvents), (event) => room.v2Rendering(event));
    const joinedHere = membership;
    return Promise.all([claimed, this.host.directory.subscribe(this.identity.id, key), seated]).then(
      () => this.ack(frame.id),
      (error: unknown) => {
        this.host.logger.error(`${this.connection.peer}: could not store the join of ${room.name}: ${String(error)}`);
        // Not seated after all (the room took the seat back): the next join starts afresh.
        if (seated && this.memberships.get(key) === joinedHere) this.memberships.delete(key);
        this.fail('storage_failed', storageFailure('that you joined'), frame.id, room.name);
      },
    );
  }

  private roomState(room: Room, id: string | undefined, reset?: RoomResetReason): RoomStateFrame {
    const { directory } = this.host;
    const meta = room.meta;
    const state: RoomStateFrame = {
      type: 'roomState',
      ...(id === undefined ? {} : { id }),
      ...(reset === undefined ? {} : { reset }),
      room: room.name,
      kind: meta.kind,
      topic: meta.topic,
      members: room.memberNames(WELCOME_MAX_MEMBERS, this.identity.name),
      memberCount: room.memberCount,
      seq: room.latestSeq,
      firstSeq: room.firstSeq,
      lastRead: directory.conversations(this.identity.id).find((conversation) => conversation.room === roomKey(room.name))?.lastRead ?? 0,
    };
    const owner = meta.ownerId === undefined ? undefined : directory.nameOf(meta.ownerId);
    if (owner !== undefined) state.owner = owner;
    if (room.epoch !== undefined) state.epoch = room.epoch;
    if (meta.kind === 'dm') state.participants = this.namesOf(meta.participantIds ?? []);
    return state;
  }

  private namesOf(identityIds: readonly string[]): string[] {
    return namesOf(this.host.directory, identityIds);
  }

  /**
   * Leaves a room on purpose, as a person: every connection of the identity
   * leaves it (the others are told `parted`), the room hears `left` with
   * `quit`, and it leaves the identity's conversations. Parting a room one is
   * not in only does the last part, so a retry gets the same answer.
   */
  private async part(frame: PartFrame): Promise<void> {
    const key = roomKey(frame.room.normalize('NFC'));
    const room = this.memberships.get(key)?.room ?? this.host.loadedRoom(key);
    if (room) {
      for (const session of this.host.sessionsOf(this.identity.id)) if (session !== this) await session.leaveAsParted(key);
      if (this.memberships.delete(key)) await room.leaveIdentity(this, this.identity.id, 'quit');
    }
    this.connection.oweAnswer(this.host.directory.unsubscribe(this.identity.id, key).then(() => this.ack(frame.id)));
  }

  /** Another connection of the identity parted the room `key` (on this server or, in a cluster, another): this one leaves it too. */
  async leaveAsParted(key: string): Promise<void> {
    const membership = this.memberships.get(key);
    if (!membership) return;
    this.memberships.delete(key);
    this.send({ type: 'parted', room: membership.room.name, reason: 'quit' });
    await membership.room.leaveIdentity(this, this.identity.id, 'quit');
  }

  private say(frame: SayV2Frame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room, seat } = membership;
    const named = { clientId: this.clientId, id: frame.id };
    const earlier = room.duplicateOf(named);
    if (earlier) return this.connection.oweAnswer(earlier.then((outcome) => this.answer(frame.id, room.name, outcome)));
    const problem = messageTextProblem(frame.text, this.host.limits.maxTextBytes);
    if (problem) return this.fail(problem.code, problem.message, frame.id, room.name);
    let replyTo;
    if (frame.replyTo !== undefined) {
      replyTo = room.replyTarget(frame.replyTo);
      if (!replyTo) return this.fail('not_found', `There is no message ${frame.replyTo} in ${room.name} to reply to.`, frame.id, room.name);
    }
    // The message ends its author's typing (everyone's view drops it as it arrives): typing the next one is passed on at once.
    membership.lastTypingAt = -Infinity;
    this.connection.oweAnswer(
      room.say(seat, frame.text, named, { authorId: this.identity.id, replyTo }).then((result) => {
        if (result.ok) this.ack(frame.id, result.seq);
        else this.fail('storage_failed', storageFailure('the message'), frame.id, room.name);
      }),
    );
  }

  private edit(frame: EditFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const problem = messageTextProblem(frame.text, this.host.limits.maxTextBytes);
    const named = { clientId: this.clientId, id: frame.id };
    if (problem && !membership.room.duplicateOf(named)) return this.fail(problem.code, problem.message, frame.id, membership.room.name);
    this.connection.oweAnswer(membership.room.edit(this.actor, frame.target, frame.text, named).then((outcome) => this.answer(frame.id, membership.room.name, outcome)));
  }

  private remove(frame: DeleteFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const named = { clientId: this.clientId, id: frame.id };
    this.connection.oweAnswer(membership.room.remove(this.actor, frame.target, named).then((outcome) => this.answer(frame.id, membership.room.name, outcome)));
  }

  private react(frame: ReactFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const named = { clientId: this.clientId, id: frame.id };
    this.connection.oweAnswer(membership.room.react(this.actor, frame.target, frame.emoji, frame.add, named).then((outcome) => this.answer(frame.id, membership.room.name, outcome)));
  }

  private topic(frame: TopicFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const named = { clientId: this.clientId, id: frame.id };
    this.connection.oweAnswer(room.setTopic(this.actor, frame.text, named).then((outcome) => this.storeMetaThenAnswer(frame.id, room, outcome)));
  }

  private setOwner(frame: SetOwnerFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const named = { clientId: this.clientId, id: frame.id };
    const next = plausibleName(frame.name) ? this.host.directory.identityNamed(frame.name) : undefined;
    const earlier = room.duplicateOf(named);
    if (!next && !earlier) return this.fail('not_found', `Nobody keeps the name "${frame.name}" with a key; only such a person can own a room.`, frame.id, room.name);
    const outcome = earlier ?? room.setOwner(this.actor, { identityId: (next as Identity).id, name: (next as Identity).name }, named);
    this.connection.oweAnswer(outcome.then((result) => this.storeMetaThenAnswer(frame.id, room, result)));
  }

  /** A topic or an owner is kept in the directory too (the room's log forgets old events); the ack waits for both. */
  private async storeMetaThenAnswer(id: string, room: Room, outcome: ChangeOutcome): Promise<void> {
    if (outcome.ok && !outcome.duplicate && outcome.seq !== undefined) await this.host.directory.putRoomMeta({ ...room.meta });
    this.answer(id, room.name, outcome);
  }

  private kick(frame: KickFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const named = { clientId: this.clientId, id: frame.id };
    if (!plausibleName(frame.name)) return this.fail('not_found', `Nobody with such a name is in ${room.name}.`, frame.id, room.name);
    const kicked = room.memberNamed(frame.name);
    const kickedId = kicked && 'identityId' in kicked ? (kicked as IdentitySeat).identityId : undefined;
    this.connection.oweAnswer(
      room.kick(this.actor, frame.name, named).then(async (outcome) => {
        // Kicked out of the room, and out of the conversation too (they may join again).
        if (outcome.ok && !outcome.duplicate && kickedId !== undefined) await this.host.directory.unsubscribe(kickedId, roomKey(room.name));
        this.answer(frame.id, room.name, outcome);
      }),
    );
  }

  private typing(frame: TypingFrame): void {
    const membership = this.membership(frame.room, undefined);
    if (!membership) return;
    const now = Date.now();
    // At most one a connection and room per interval is passed on; the rest are dropped, not queued.
    if (now - membership.lastTypingAt < TYPING_MIN_INTERVAL_MS) return;
    membership.lastTypingAt = now;
    membership.room.typing(membership.seat);
  }

  /** Moves the read marker forward, stores it, and tells the identity's other connections. */
  private async read(frame: ReadFrame): Promise<void> {
    const key = roomKey(frame.room.normalize('NFC'));
    const membership = this.memberships.get(key);
    const { directory } = this.host;
    if (!membership && !directory.hasConversation(this.identity.id, key)) return this.refuseNotConversation(frame.id, frame.room, key);
    if (frame.seq < 0) return this.fail('bad_frame', 'A read marker is a seq, 0 or more.', frame.id, frame.room);
    // A marker past the room's latest event would hide messages not yet written: the room is read to know where it ends.
    const room = membership?.room ?? this.host.loadedRoom(key) ?? (await this.host.readRoom(directory.roomMeta(key)?.name ?? frame.room));
    if (!room) return this.fail('room_unavailable', `${frame.room} cannot be opened right now; try again later.`, frame.id, frame.room);
    const seq = Math.min(frame.seq, room.latestSeq);
    const roomName = room.name;
    this.connection.oweAnswer(
      directory.markRead(this.identity.id, key, seq).then((stored) => {
        // Parted meanwhile (a part sent just before this read): nothing to mark.
        if (stored === undefined) return this.refuseNotConversation(frame.id, frame.room, key);
        const moved = encodeFrame({ type: 'readMarker', room: roomName, seq: stored });
        for (const session of this.host.sessionsOf(this.identity.id)) if (session !== this) session.connection.out(moved);
        this.ack(frame.id);
      }),
    );
  }

  private refuseNotConversation(id: string, room: string, key: string): void {
    if (key.startsWith(DM_PREFIX)) this.fail('not_found', `There is no conversation "${room}" of yours.`, id, room);
    else this.fail('not_joined', `${room} is not one of your conversations.`, id, room);
  }

  // ------------------------------------------------------------ requests

  /** Rooms by key, 100 a page and at most 64 KiB (a long name and topic take up to about 1.3 KiB). */
  private listRooms(frame: ListRoomsFrame): void {
    const page = this.host.directory.listRooms(frame.after === undefined ? undefined : roomKey(frame.after), ROOM_PAGE_ROOMS + 1);
    const rooms: RoomSummary[] = [];
    let bytes = 0;
    for (const meta of page) {
      const summary = { room: meta.name, topic: meta.topic, memberCount: this.host.loadedRoom(meta.room)?.memberCount ?? 0 };
      bytes += Buffer.byteLength(JSON.stringify(summary), 'utf8') + 1;
      if (rooms.length >= ROOM_PAGE_ROOMS || bytes > MAX_SERVER_FRAME_BYTES - PAGE_ENVELOPE_BYTES) break;
      rooms.push(summary);
    }
    const more = rooms.length < page.length;
    this.send(more ? { type: 'roomList', id: frame.id, rooms, next: rooms[rooms.length - 1].room } : { type: 'roomList', id: frame.id, rooms });
  }

  /**
   * The identity's conversations with their unread and mention counts, by
   * name, a page at a time (at most CONVERSATION_PAGE and 64 KiB). A room
   * not loaded is read only when it may hold something unread; one that
   * cannot be loaded now is listed without counts.
   */
  private async conversations(id: string, after: string | undefined): Promise<void> {
    const { directory } = this.host;
    const all = directory
      .conversations(this.identity.id)
      .map((conversation) => ({ ...conversation, meta: directory.roomMeta(conversation.room) }))
      .filter((conversation): conversation is typeof conversation & { meta: RoomMeta } => conversation.meta !== undefined)
      .sort((a, b) => compareNames(a.meta.name, b.meta.name));
    const start = after === undefined ? 0 : all.findIndex((conversation) => compareNames(conversation.meta.name, after) > 0);
    const list: ConversationSummary[] = [];
    let bytes = 0;
    let next: string | undefined;
    for (const { room: key, lastRead, meta } of start === -1 ? [] : all.slice(start)) {
      if (list.length >= CONVERSATION_PAGE) {
        next = list[list.length - 1].room;
        break;
      }
      const summary: ConversationSummary = { room: meta.name, kind: meta.kind, topic: meta.topic, lastRead };
      if (meta.kind === 'dm') summary.participants = this.namesOf(meta.participantIds ?? []);
      let room = this.host.loadedRoom(key);
      const seqThen = room ? undefined : this.host.lastSeqWhenUnloaded(key);
      if (!room && seqThen !== undefined && seqThen <= lastRead) {
        Object.assign(summary, { seq: seqThen, unread: 0, mentions: 0 });
      } else {
        room ??= await this.host.readRoom(meta.name);
        if (room) Object.assign(summary, { seq: room.latestSeq }, await room.unreadAfter(lastRead, this.identity.id, this.identity.name));
      }
      const size = Buffer.byteLength(JSON.stringify(summary), 'utf8') + 1;
      if (bytes + size > MAX_SERVER_FRAME_BYTES - PAGE_ENVELOPE_BYTES) {
        next = list[list.length - 1]?.room;
        break;
      }
      bytes += size;
      list.push(summary);
    }
    this.send(next === undefined ? { type: 'conversationList', id, conversations: list } : { type: 'conversationList', id, conversations: list, next });
  }

  private listMembers(frame: ListMembersFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const page = room.memberPage(frame.after, MEMBER_PAGE_NAMES, MAX_SERVER_FRAME_BYTES - PAGE_ENVELOPE_BYTES);
    this.send(page.next === undefined ? { type: 'memberList', id: frame.id, room: room.name, names: page.names } : { type: 'memberList', id: frame.id, room: room.name, names: page.names, next: page.next });
  }

  private history(frame: HistoryFrame): void {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const most = this.host.limitsV2.historyPageEvents;
    if (frame.before < 1) return this.fail('bad_frame', '"before" is a seq, 1 or more.', frame.id, room.name);
    if (frame.limit !== undefined && (frame.limit < 1 || frame.limit > most)) return this.fail('bad_frame', `"limit" is 1 to ${most}.`, frame.id, room.name);
    const page = room.historyBefore(frame.before, frame.limit ?? most, MAX_SERVER_FRAME_BYTES - PAGE_ENVELOPE_BYTES);
    this.connection.out(pageFrame('historyPage', frame.id, room.name, 'events', page.events, `"more":${page.more}`));
  }

  /** Awaited by the connection, so one connection has at most one scan under way. */
  private async search(frame: SearchFrame): Promise<void> {
    const membership = this.membership(frame.room, frame.id);
    if (!membership) return;
    const { room } = membership;
    const chars = [...frame.text].length;
    if (chars < SEARCH_MIN_CHARS || chars > SEARCH_MAX_CHARS) return this.fail('bad_frame', `A search is ${SEARCH_MIN_CHARS} to ${SEARCH_MAX_CHARS} characters.`, frame.id, room.name);
    if (frame.before !== undefined && frame.before < 1) return this.fail('bad_frame', '"before" is a seq, 1 or more.', frame.id, room.name);
    const perMinute = this.host.limitsV2.searchesPerMinute;
    this.searches ??= new TokenBucket(Math.max(1, perMinute), perMinute / 60);
    if (perMinute === 0 || !this.searches.tryTake()) {
      return this.fail('rate_limited', `At most ${this.host.limitsV2.searchesPerMinute} searches a minute; try again in a moment.`, frame.id, room.name);
    }
    const { searchScanEvents, searchPageHits } = this.host.limitsV2;
    const found = await room.search(frame.text, frame.before, searchScanEvents, searchPageHits, MAX_SERVER_FRAME_BYTES - PAGE_ENVELOPE_BYTES);
    this.connection.out(pageFrame('searchResults', frame.id, room.name, 'hits', found.hits, found.next === undefined ? '' : `"next":${found.next}`));
  }

  private async openDm(frame: OpenDmFrame): Promise<void> {
    const { directory, limitsV2 } = this.host;
    const others = new Map<string, string>();
    for (const name of frame.with) {
      const identity = plausibleName(name) ? directory.identityNamed(name) : undefined;
      if (!identity) return this.fail('not_found', `Nobody keeps the name "${name.slice(0, 64)}" with a key; direct messages are between such people.`, frame.id);
      if (identity.id !== this.identity.id) others.set(identity.id, identity.name);
    }
    if (others.size === 0) return this.fail('bad_frame', 'A direct-message conversation needs someone besides you.', frame.id);
    if (others.size + 1 > limitsV2.maxDmParticipants) return this.fail('bad_frame', `A direct-message conversation has at most ${limitsV2.maxDmParticipants} people, you included.`, frame.id);
    const participants = [this.identity.id, ...others.keys()];
    // Opening a DM that exists is free; making one takes from the connection's share.
    const dmsPerMinute = limitsV2.newDmsPerMinute;
    if (!directory.findDm(participants) && dmsPerMinute > 0 && !(this.newDms ??= new TokenBucket(dmsPerMinute, dmsPerMinute / 60)).tryTake()) {
      return this.fail('rate_limited', `At most ${limitsV2.newDmsPerMinute} new direct-message conversations a minute; try again in a moment.`, frame.id);
    }
    const meta = await this.host.openDm(participants);
    this.send({ type: 'dmOpened', id: frame.id, room: meta.name, participants: this.namesOf(meta.participantIds ?? []) });
  }

  /** Gives the name up: once that is stored, this connection is acked and closed, and so is every other one of the identity. */
  private async releaseName(id: string): Promise<void> {
    this.releasing = true;
    await this.host.releaseIdentity(this.identity.id, this);
    await this.closeReleased(id);
  }

  /**
   * The identity was released. The session that asked gets its ack; the
   * others are told `name_released`. Each leaves its rooms and closes: a
   * connection without an identity has nothing left to act as.
   */
  closeReleased(ackId?: string): Promise<void> {
    // In a cluster the release is heard twice on the server that made it: once from its own answer, once from the directory's changes.
    this.closing ??= (async () => {
      if (ackId !== undefined) this.ack(ackId);
      const notice = ackId === undefined ? encodeFrame({ type: 'error', code: 'name_released', message: `The name "${this.identity.name}" was released; connect again to claim a name.` }) : undefined;
      await this.connection.closeWith(notice, 'quit');
    })();
    return this.closing;
  }

  // ------------------------------------------------------------ the seat's side (SeatHolder)

  deliverToSeat(bytes: Buffer): void {
    this.connection.deliverLive(bytes);
  }

  /** A frame about this person rather than a room's event (a DM someone opened with them, a read marker moved through another server). */
  tell(bytes: Buffer): void {
    this.connection.out(bytes);
  }

  /** The room's history was replaced under this connection (cluster mode): it is shown the room afresh, as a join without lastSeq. */
  roomReset(room: Room, reason: RoomResetReason): void {
    if (this.memberships.get(roomKey(room.name))?.room !== room) return;
    this.send(this.roomState(room, undefined, reason));
    this.connection.queueReplay(room.replayCursor(undefined, this.host.limits.replayEvents), (event) => room.v2Rendering(event));
  }

  removedFrom(room: Room, departure: Departure): void {
    this.memberships.delete(roomKey(room.name));
    this.send(departure.by === undefined ? { type: 'parted', room: room.name, reason: departure.reason } : { type: 'parted', room: room.name, reason: departure.reason, by: departure.by });
  }

  /** Leaves every room (the identity's seat goes where this was its last connection). */
  async leaveAll(reason: LeaveReason): Promise<void> {
    const memberships = [...this.memberships.values()];
    this.memberships.clear();
    await Promise.all(memberships.map(({ room }) => room.leaveIdentity(this, this.identity.id, reason)));
  }

  /** Lets go of every room without a word: the rooms announce the departures themselves (shutdown). */
  detachAll(): void {
    this.memberships.clear();
  }

  /** The connection is gone: the identity was in use until now. */
  ended(): void {
    this.host.removeSession(this);
    this.host.directory.touch(this.identity.id).catch((error: unknown) => this.host.logger.warn(`directory: could not renew ${this.identity.name}: ${String(error)}`));
  }
}

/** Whether a string could be someone's name at all; longer ones are not compared (that takes time in proportion to their length). */
function plausibleName(name: string): boolean {
  return name.length <= NAME_MAX_CHARS * 2;
}

function refuse(connection: NdjsonConnection, code: ErrorCodeV2, message: string, close?: boolean): undefined {
  connection.fail(code, message, undefined, close);
  return undefined;
}

/** A page of already-serialised events in one frame, without serialising them again. */
function pageFrame(type: 'historyPage' | 'searchResults', id: string, room: string, field: string, items: Buffer[], tail: string): Buffer {
  const parts: Buffer[] = [Buffer.from(`{"type":"${type}","id":${JSON.stringify(id)},"room":${JSON.stringify(room)},"${field}":[`, 'utf8')];
  items.forEach((item, index) => {
    if (index > 0) parts.push(COMMA);
    // Each item is a frame with its newline; the list takes it without.
    parts.push(item.subarray(0, item.length - 1));
  });
  parts.push(Buffer.from(tail.length > 0 ? `],${tail}}\n` : ']}\n', 'utf8'));
  return Buffer.concat(parts);
}

const COMMA = Buffer.from(',');

/** A new DM's room name: the prefix and an unguessable id (see DM_ID_CHARS). */
export function newDmName(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = randomBytes(DM_ID_CHARS);
  let id = '';
  for (const byte of bytes) id += alphabet[byte & 31];
  return DM_PREFIX + id;
}
