/**
 * One conversation as the rest of the extension sees it, whichever protocol
 * carries it: a v1 room on a connection of its own (chatSession.ts), or a
 * room or DM among many on one v2 connection (serverSessionV2.ts). The panel,
 * the status bar and the notifications draw from this shape alone.
 */
import type * as vscode from 'vscode';
import type { IDisposable } from '../shared/disposable';
import type { ChatEntry, MessageEntry, PendingView, StatusView } from '../shared/webviewMessages';
import type { SendFailure } from './client/chatClient';
import type { SessionParams } from './chatSession';

export type ConnectionKind = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The answer to something a person asked of the room (edit, react, topic…): done, or why not. */
export type ActionOutcome = { ok: true } | { ok: false; reason: string };

export interface RoomSession extends IDisposable {
  /** Unique among the window's conversations: the server's address and the room's key. */
  readonly key: string;
  readonly params: SessionParams;
  readonly address: string;
  /** The room's name (for a DM, its `dm:` id). */
  readonly room: string;
  /** What the person calls it: the room's name, or a DM's other participants. */
  readonly title: string;
  readonly kind: 'room' | 'dm';
  readonly topic: string;
  /** The owner's name, when the room has one (v2). */
  readonly owner: string | undefined;
  /** The protocol under it: 2 brings replies, edits, reactions, typing, history pages and search. */
  readonly protocol: 1 | 2;
  readonly me: string | undefined;
  readonly members: readonly string[];
  readonly memberCount: number;
  readonly entries: readonly ChatEntry[];
  readonly pending: readonly PendingView[];
  readonly isConnected: boolean;
  readonly connectionKind: ConnectionKind;
  /** The highest seq seen in the room. */
  readonly lastSeq: number;
  /** Whether older history can be asked for (v2 only). */
  readonly hasOlder: boolean;
  /** Messages of others not seen yet, and how many of them mention us (v2: as the server's read marker counts them). */
  readonly unread: number;
  readonly mentionCount: number;
  /** Fires when what the conversation list shows of it changed: the unread or mention count, or (v2) the topic. */
  readonly onCounts: vscode.Event<void>;
  readonly onAppend: vscode.Event<{ entries: ChatEntry[]; live: boolean }>;
  /** Messages already shown changed (edited, deleted, reacted to), or older ones came in at the top. */
  readonly onUpdate: vscode.Event<{ entries: MessageEntry[] }>;
  readonly onStatus: vscode.Event<StatusView>;
  readonly onOutbox: vscode.Event<PendingView[]>;
  readonly onSendFailure: vscode.Event<SendFailure>;
  /** Who is typing just now (v2). */
  readonly onTyping: vscode.Event<string[]>;
  /** The room's history was replaced (a cluster's store lost or rewound it): what was shown is void, and `entries` start again. */
  readonly onReset: vscode.Event<void>;
  status(): StatusView;
  say(text: string, replyTo?: number): string;
  /** The person has seen the conversation: the counts go to zero (v2: the server's read marker moves too). */
  markRead(): void;
  /**
   * Whether the person has this conversation in front of them (shown, in a
   * chat in sight): then what arrives is read as it comes, without counting
   * it up and down again for every message.
   */
  inSight: boolean;
  reconnectNow(): void;
  mentionsMe(text: string): boolean;
  isMine(name: string): boolean;
  /** Leaves on purpose: the others see "left" (v2: the room also leaves the person's conversations). */
  leave(): Promise<void>;
}

/** Whether a message is one a person would count as unread: someone else's, still there. */
export function countsAsUnread(entry: ChatEntry): boolean {
  return entry.kind === 'message' && !entry.mine && !entry.deleted;
}
