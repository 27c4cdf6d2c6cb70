/**
 * The two status bar items: the server this installation runs (its address,
 * and how many are in your room there), and the room this window is in (its
 * connection and unread count). Each follows its sources and redraws itself.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { formatAddress } from './address';
import { Command } from './commands';
import type { RoomNotifications } from './notifications';
import type { ServerController } from './serverController';
import type { SessionManager } from './sessions';

export class ServerStatusItem extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('chatRoom.server', vscode.StatusBarAlignment.Left, 50));

  constructor(
    private readonly server: ServerController,
    private readonly sessions: SessionManager,
  ) {
    super();
    this.item.name = 'Chat Room Server';
    this.item.command = Command.showServerLog;
    this.register(server.onDidChangeState(() => this.update()));
    this.register(sessions.onDidChangeSession(() => this.update()));
    this.register(sessions.onDidChangeStatus(() => this.update()));
    this.update();
  }

  private update(): void {
    const state = this.server.state;
    const item = this.item;
    if (state.kind === 'stopped') {
      item.hide();
      return;
    }
    const session = this.sessions.session;
    const members = session && state.kind === 'running' && session.params.port === state.port && session.isConnected ? ` · ${session.memberCount} in ${session.room}` : '';
    switch (state.kind) {
      case 'starting':
        item.text = `$(loading~spin) Chat server ${formatAddress(state)}`;
        break;
      case 'running':
        item.text = `$(radio-tower) Chat server ${formatAddress(state)}${members}`;
        break;
      case 'stopping':
        item.text = '$(loading~spin) Chat server stopping';
        break;
      case 'crashed':
        item.text = '$(error) Chat server stopped';
        break;
    }
    item.tooltip = state.kind === 'crashed' ? `${state.reason}\nClick to show the server log; Start Chat Server or the panel restarts it.` : 'Chat Room server. Click to show its log.';
    item.backgroundColor = state.kind === 'crashed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    item.show();
  }
}

export class RoomStatusItem extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('chatRoom.chat', vscode.StatusBarAlignment.Left, 49));

  constructor(
    private readonly sessions: SessionManager,
    private readonly notifications: RoomNotifications,
  ) {
    super();
    this.item.name = 'Chat Room';
    this.item.command = Command.openPanel;
    this.register(sessions.onDidChangeSession(() => this.update()));
    this.register(sessions.onDidChangeStatus(() => this.update()));
    this.register(notifications.onDidChange(() => this.update()));
    this.update();
  }

  private update(): void {
    const session = this.sessions.session;
    const item = this.item;
    if (!session) {
      item.hide();
      return;
    }
    const connection = session.connectionKind;
    const icon = connection === 'connected' ? '$(comment-discussion)' : connection === 'closed' ? '$(debug-disconnect)' : '$(sync~spin)';
    const unread = this.notifications.unread > 0 ? ` · ${this.notifications.unread} unread` : '';
    item.text = `${icon} ${session.room}${unread}`;
    item.tooltip = `Chat Room: ${session.room} on ${session.address} (${connection}). Click to open the chat.`;
    item.backgroundColor = connection === 'connected' ? undefined : new vscode.ThemeColor('statusBarItem.warningBackground');
    item.show();
  }
}
