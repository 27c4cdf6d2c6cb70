/**
 * What a person hears of the rooms while the chat is out of sight: the unread
 * count (in the view's badge, the tab's title and the status bar), and notifications for
 * messages (chatRoom.notifications: mentions by default). One notification is
 * on screen at a time: until it is answered or the panel is seen, and for a
 * few seconds after, more messages only add to the unread count, so nobody in
 * a room can bury a window in toasts.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { Command } from './commands';
import type { SessionManager } from './sessions';
import { inertNotificationText } from './notificationText';
import { readSettings } from './settings';

/** The least time between two notifications while the panel stays unseen (a dismissed one included). */
const QUIET_MS = 5_000;

/** Whether the person can see the chat, and when that changes. */
export interface ChatVisibility {
  readonly visible: boolean;
  readonly onDidChangeVisibility: vscode.Event<boolean>;
}

/**
 * Notifies of messages others wrote while the chat was out of sight, says
 * when a message was not sent, and passes on the unread count over every
 * conversation (each conversation counts its own; seeing it resets it).
 */
export class RoomNotifications extends Disposable {
  private readonly notifier = new MessageNotifier();
  private readonly changeEmitter = this.register(new vscode.EventEmitter<number>());
  private lastCount = 0;
  readonly onDidChange = this.changeEmitter.event;

  constructor(
    private readonly sessions: SessionManager,
    private readonly chat: ChatVisibility,
  ) {
    super();
    this.register(
      sessions.onDidAppend(({ session, entries, live }) => {
        if (!live || this.chat.visible) return;
        for (const entry of entries) if (entry.kind === 'message' && !entry.mine) this.notifier.notify(entry.from, entry.text, session.mentionsMe(entry.text));
      }),
    );
    this.register(sessions.onDidChangeConversations(() => this.countChanged()));
    this.register(sessions.onDidChangeSession(() => this.countChanged()));
    this.register(sessions.onDidFailToSend((failure) => void vscode.window.showWarningMessage(`A message was not sent: ${inertNotificationText(failure.reason, 300)}`)));
    this.register(
      chat.onDidChangeVisibility((visible) => {
        if (visible) this.notifier.seen();
      }),
    );
  }

  /** Unread messages over every conversation of this window. */
  get unread(): number {
    return this.sessions.totalUnread;
  }

  private countChanged(): void {
    const count = this.unread;
    if (count === this.lastCount) return;
    this.lastCount = count;
    this.changeEmitter.fire(count);
  }
}

class MessageNotifier {
  private showing = false;
  private lastShownAt = 0;

  /** A message from someone else while the panel is hidden. */
  notify(from: string, text: string, mentioned: boolean): void {
    const mode = readSettings().notifications;
    if (mode === 'off' || (mode === 'mentions' && !mentioned)) return;
    if (this.showing || Date.now() - this.lastShownAt < QUIET_MS) return;
    this.showing = true;
    this.lastShownAt = Date.now();
    const preview = inertNotificationText(text);
    const headline = mentioned ? `${inertNotificationText(from)} mentioned you: ${preview}` : `${inertNotificationText(from)}: ${preview}`;
    void vscode.window.showInformationMessage(headline, 'Open Chat').then((choice) => {
      this.showing = false;
      if (choice) void vscode.commands.executeCommand(Command.openPanel);
    });
  }

  /** The person has the panel in front of them: the next message may notify again. */
  seen(): void {
    this.showing = false;
    this.lastShownAt = 0;
  }
}
