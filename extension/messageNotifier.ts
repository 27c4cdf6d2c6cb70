/**
 * Notifications for messages that arrive while the chat panel is hidden
 * (chatRoom.notifications). One is on screen at a time: until it is answered
 * or the panel is seen, and for a few seconds after, more messages only add
 * to the unread count, so nobody in a room can bury a window in toasts.
 */
import * as vscode from 'vscode';
import { inertNotificationText } from './notificationText';
import { readSettings } from './settings';

/** The least time between two notifications while the panel stays unseen (a dismissed one included). */
const QUIET_MS = 5_000;

export class MessageNotifier {
  private showing = false;
  private lastShownAt = 0;

  constructor(private readonly openChat: () => void) {}

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
      if (choice) this.openChat();
    });
  }

  /** The person has the panel in front of them: the next message may notify again. */
  seen(): void {
    this.showing = false;
    this.lastShownAt = 0;
  }
}
