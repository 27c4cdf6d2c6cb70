/** The extension's settings, read in one place with their defaults. */
import * as vscode from 'vscode';
import { DEFAULT_HOST, DEFAULT_PORT } from '../shared/protocol';
import { DEFAULT_KEEP_ALIVE_MS, MIN_KEEP_ALIVE_MS } from '../shared/serverLease';

export type NotificationMode = 'mentions' | 'all' | 'off';

export interface Settings {
  /** Port "Start Chat Server" listens on. */
  serverPort: number;
  /** Address "Start Chat Server" binds; anything but loopback opens the server to the network. */
  bindAddress: string;
  /** Also serve the classic plain-text protocol (for `nc` and the old clients) on this port; 0 is off. */
  classicPort: number;
  /** Whether "Start Chat Server" joins the room right away. */
  joinOnStart: boolean;
  /** How long the server keeps running after the last window holding it has gone. */
  keepAliveMs: number;
  /** Address offered first by "Join Room" when none was used before. */
  defaultAddress: string;
  /** Name offered first by "Join Room" when none was used before. */
  defaultName: string;
  notifications: NotificationMode;
  /** How many messages and announcements the panel keeps. */
  historyLength: number;
  /** `auto`: protocol 2 when the server speaks it; `1`: always protocol 1, one room at a time. */
  protocol: 'auto' | '1';
  /** Where the chat opens: the view in the Panel, or an editor tab. */
  openIn: 'panel' | 'editor';
  /** Send Selection sends at once instead of putting the snippet in the message box. */
  sendSelectionDirectly: boolean;
}

export function readSettings(): Settings {
  const config = vscode.workspace.getConfiguration('chatRoom');
  const notifications = config.get<string>('notifications', 'mentions');
  return {
    serverPort: clampInteger(config.get<number>('server.port', DEFAULT_PORT), 0, 65535, DEFAULT_PORT),
    bindAddress: config.get<string>('server.bindAddress', DEFAULT_HOST).trim() || DEFAULT_HOST,
    classicPort: clampInteger(config.get<number>('server.classicPort', 0), 0, 65535, 0),
    joinOnStart: config.get<boolean>('server.joinOnStart', false),
    keepAliveMs: Math.round(clampNumber(config.get<number>('server.keepAliveMinutes', DEFAULT_KEEP_ALIVE_MS / 60_000), MIN_KEEP_ALIVE_MS / 60_000, 7 * 24 * 60, DEFAULT_KEEP_ALIVE_MS / 60_000) * 60_000),
    defaultAddress: config.get<string>('defaultAddress', '').trim(),
    defaultName: config.get<string>('defaultName', '').trim(),
    notifications: notifications === 'all' || notifications === 'off' ? notifications : 'mentions',
    historyLength: clampInteger(config.get<number>('historyLength', 500), 20, 10_000, 500),
    protocol: config.get<string>('protocol', 'auto') === '1' ? '1' : 'auto',
    openIn: config.get<string>('openIn', 'panel') === 'editor' ? 'editor' : 'panel',
    sendSelectionDirectly: config.get<boolean>('sendSelectionDirectly', false),
  };
}

function clampInteger(value: number, min: number, max: number, fallback: number): number {
  return Math.round(clampNumber(value, min, max, fallback));
}

function clampNumber(value: number, min: number, max: number, fallback: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, value));
}

