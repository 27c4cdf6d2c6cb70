/**
 * The rooms this window is in: the session manager owns the current session
 * (and a join under way beside it), carries out Join Room, Leave Room and a
 * rejoin after a reload, and passes on what the current session says, so the
 * panel, the status bar and the notifications listen in one place whichever
 * room it is.
 *
 * One window is in one room at a time today; the manager is where several
 * will live.
 */
import * as vscode from 'vscode';
import { combinedDisposable, Disposable, MutableDisposable } from '../shared/disposable';
import { nameKey } from '../shared/names';
import { DEFAULT_LIMITS } from '../shared/protocol';
import type { ChatEntry, PendingView } from '../shared/webviewMessages';
import { ChatSession, type SessionParams } from './chatSession';
import { type FirstOutcome, type SendFailure, textBytes } from './client/chatClient';
import { type JoinRoomArgs, type JoinRoomResult, runJoinFlow } from './joinFlow';
import { readSettings } from './settings';
import type { StoredState } from './storedState';

/** Whether a send was taken, or why not (the text then stays in the message box). */
export type SendOutcome = { accepted: true } | { accepted: false; reason: string };

/** What a room showed when it was left, so the panel keeps the conversation on screen. */
export interface LeftRoom {
  entries: readonly ChatEntry[];
  reason: string;
}

export class SessionManager extends Disposable {
  private readonly current = this.register(new MutableDisposable<ChatSession>());
  /** The current session's listeners; they go when it stops being current, even while it is still saying goodbye. */
  private readonly currentListeners = this.register(new MutableDisposable());
  /** A join under way while we are still in a room: it replaces the room only once welcomed. */
  private readonly candidate = this.register(new MutableDisposable<ChatSession>());
  /** The rejoin after a reload, started by activation or by the restored panel, whichever comes first. */
  private rejoining: Promise<void> | undefined;
  private left: LeftRoom | undefined;

  private readonly sessionEmitter = this.register(new vscode.EventEmitter<ChatSession | undefined>());
  private readonly welcomeEmitter = this.register(new vscode.EventEmitter<{ session: ChatSession; showPanel: boolean }>());
  private readonly appendEmitter = this.register(new vscode.EventEmitter<{ session: ChatSession; entries: ChatEntry[]; live: boolean }>());
  private readonly statusEmitter = this.register(new vscode.EventEmitter<ChatSession>());
  private readonly outboxEmitter = this.register(new vscode.EventEmitter<PendingView[]>());
  private readonly failureEmitter = this.register(new vscode.EventEmitter<SendFailure>());
  /** The current session was replaced, ended or left (undefined: not in a room). */
  readonly onDidChangeSession = this.sessionEmitter.event;
  /** A room let us in; `showPanel` is false for a quiet rejoin after a reload. */
  readonly onDidWelcome = this.welcomeEmitter.event;
  /** New entries in the current room; `live` is false for history that came with joining. */
  readonly onDidAppend = this.appendEmitter.event;
  /** The current room's connection or members changed. */
  readonly onDidChangeStatus = this.statusEmitter.event;
  readonly onDidChangeOutbox = this.outboxEmitter.event;
  /** The server refused a message for good. */
  readonly onDidFailToSend = this.failureEmitter.event;

  constructor(
    private readonly stored: StoredState,
    private readonly clientId: string,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
  }

  /** The room this window is in. */
  get session(): ChatSession | undefined {
    return this.current.value;
  }

  /** The room left last, while no other has been joined since. */
  get lastLeft(): LeftRoom | undefined {
    return this.left;
  }

  /** Join Room: asks for what was not given, and joins. */
  joinFlow(args?: JoinRoomArgs): Promise<JoinRoomResult> {
    return runJoinFlow({ stored: this.stored, connect: (params) => this.join(params) }, args);
  }

  /**
   * Connects to a room. While in another room, that room is kept until the new
   * one has welcomed us (a refused name changes nothing), and then left on
   * purpose. A rejoin after a reload (`rejoin`) keeps trying while the server
   * is away, and does not bring the panel forward.
   */
  async join(params: SessionParams, rejoin = false): Promise<FirstOutcome> {
    const present = this.session;
    // Joining the room we are in, under the name we have: nothing to change.
    if (present && present.lastWelcome && sameSeat(present.params, params) && present.client.state.kind !== 'closed') {
      present.client.reconnectNow();
      this.welcomeEmitter.fire({ session: present, showPanel: true });
      return { kind: 'welcome', welcome: present.lastWelcome };
    }
    const joining = new ChatSession(params, this.clientId, this.stored.outboxes, readSettings().historyLength, this.log);
    if (!present || present.client.state.kind === 'closed') {
      this.adopt(joining);
      const outcome = await joining.start();
      if (this.session !== joining) return outcome;
      if (outcome.kind === 'welcome') this.welcomed(joining, !rejoin);
      else if (!rejoin) this.end();
      return outcome;
    }
    this.candidate.value = joining;
    const outcome = await joining.start();
    if (this.candidate.value !== joining) {
      joining.dispose();
      return outcome;
    }
    this.candidate.clearAndLeak();
    if (outcome.kind !== 'welcome') {
      joining.dispose();
      return outcome;
    }
    const previous = this.current.clearAndLeak();
    this.adopt(joining);
    if (previous) {
      this.log.info(`Left ${previous.room} for ${joining.room}`);
      void previous.leave().finally(() => previous.dispose());
    }
    this.welcomed(joining, true);
    return outcome;
  }

  /** Leave Room: says bye (the others see "left"); the panel keeps the conversation and offers Join. */
  async leave(): Promise<boolean> {
    const session = this.session;
    if (!session) {
      void vscode.window.showInformationMessage('You are not in a chat room.');
      return false;
    }
    this.candidate.clear();
    void this.stored.rememberCurrentRoom(undefined);
    const unsent = session.pending.length;
    const kept = unsent === 0 ? '' : ` ${unsent === 1 ? 'One unsent message goes' : `${unsent} unsent messages go`} out when you join it again.`;
    this.current.clearAndLeak();
    this.currentListeners.clear();
    this.left = { entries: [...session.entries], reason: `You left ${session.room}.${kept}` };
    this.sessionEmitter.fire(undefined);
    this.log.info(`Left ${session.room}`);
    await session.leave();
    session.dispose();
    return true;
  }

  /** Rejoins, once, the room this window was in before a reload (kept until Leave Room). */
  rejoinRememberedRoom(): Promise<void> {
    this.rejoining ??= (async () => {
      const remembered = this.stored.currentRoom();
      if (this.session || !remembered) return;
      const { host, port, name, room } = remembered;
      const credentials = await this.stored.rememberedCredentials(host, port);
      if (!this.session && !this.isDisposed) await this.join({ host, port, name, room, ...credentials }, true);
    })();
    return this.rejoining;
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

  /**
   * The window is closing or reloading: leave the room on purpose, so the
   * others see "left" (within a second) rather than "lost connection".
   */
  async windowClosing(): Promise<void> {
    await this.session?.leave();
  }

  private welcomed(session: ChatSession, showPanel: boolean): void {
    void this.stored.rememberCurrentRoom({ host: session.params.host, port: session.params.port, name: session.params.name, room: session.room });
    this.welcomeEmitter.fire({ session, showPanel });
  }

  /** Makes `session` the room this window shows; whoever held the one before has taken it (or it is disposed here). */
  private adopt(session: ChatSession): void {
    this.currentListeners.value = combinedDisposable(
      session.onAppend(({ entries, live }) => this.appendEmitter.fire({ session, entries, live })),
      session.onStatus(() => this.statusEmitter.fire(session)),
      session.onOutbox((pending) => this.outboxEmitter.fire(pending)),
      session.onSendFailure((failure) => this.failureEmitter.fire(failure)),
    );
    this.current.value = session;
    this.left = undefined;
    this.sessionEmitter.fire(session);
  }

  /** The current session failed to get in: it is disposed, and the window is in no room. */
  private end(): void {
    if (!this.session) return;
    this.currentListeners.clear();
    this.current.clear();
    this.sessionEmitter.fire(undefined);
  }
}

/** Whether two joins would take the same seat: one server, one room, one name. */
function sameSeat(a: SessionParams, b: SessionParams): boolean {
  return a.host === b.host && a.port === b.port && a.room === b.room && nameKey(a.name) === nameKey(b.name);
}
