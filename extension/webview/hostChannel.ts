/**
 * The webview's side of the channel to the extension host: typed posts
 * (shared/webviewMessages.ts), the state the workbench keeps for a hidden or
 * restored webview, and requests that wait for the host's reply.
 */
import { RequestTracker } from '../../shared/requestReply';
import type { JoinRoomMessage, KickMessage, OpenDmMessage, SendResultMessage, SetTopicMessage, WebviewToHost } from '../../shared/webviewMessages';

interface PersistedState {
  draft: string;
  /** Per room, the last message this panel showed while it was on screen. */
  readUpTo?: Record<string, number>;
}

interface VsCodeApi {
  postMessage(message: WebviewToHost): void;
  getState(): PersistedState | undefined;
  setState(state: PersistedState): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

/** Past this the host has not answered a send; the box is usable again (nothing was cleared). */
const SEND_ANSWER_TIMEOUT_MS = 5_000;
/** The draft goes to the host after a short pause, not on every keystroke. */
const DRAFT_POST_DELAY_MS = 150;

export class HostChannel {
  private readonly api = acquireVsCodeApi();
  private readonly sends = new RequestTracker<SendResultMessage>();
  private draftTimer: number | undefined;

  post(message: WebviewToHost): void {
    this.api.postMessage(message);
  }

  /** The draft the workbench kept for this webview. */
  keptDraft(): string {
    return this.api.getState()?.draft ?? '';
  }

  /**
   * Keeps the draft in the webview's state at once, and with the host after a
   * pause (see RestoreDraftMessage: the host's copy survives a reload the
   * workbench's may miss).
   */
  keepDraft(text: string): void {
    this.api.setState({ ...this.api.getState(), draft: text });
    window.clearTimeout(this.draftTimer);
    this.draftTimer = window.setTimeout(() => this.post({ type: 'draft', text }), DRAFT_POST_DELAY_MS);
  }

  /** The last message the person saw in `room` here, if this panel showed it before. */
  readUpTo(room: string): number | undefined {
    return this.api.getState()?.readUpTo?.[room];
  }

  /** Notes that the person has seen `room` up to message `seq`. */
  keepReadUpTo(room: string, seq: number): void {
    const state = this.api.getState() ?? { draft: '' };
    if (state.readUpTo?.[room] === seq) return;
    this.api.setState({ ...state, readUpTo: { ...state.readUpTo, [room]: seq } });
  }

  /** Asks the host to take a message; undefined when it did not answer in time. */
  send(text: string, replyTo?: number): Promise<SendResultMessage | undefined> {
    return this.sends.request((requestId) => this.post({ type: 'send', text, requestId, ...(replyTo !== undefined ? { replyTo } : {}) }), SEND_ANSWER_TIMEOUT_MS);
  }

  /** Asks the host to carry out a command typed in the box; undefined when it did not answer in time. */
  command(message: JoinRoomMessage | OpenDmMessage | SetTopicMessage | KickMessage): Promise<SendResultMessage | undefined> {
    return this.sends.request((requestId) => this.post({ ...message, requestId }), SEND_ANSWER_TIMEOUT_MS);
  }

  /** The host's answer to a send or a command. */
  settle(reply: SendResultMessage): void {
    this.sends.settle(reply);
  }
}
