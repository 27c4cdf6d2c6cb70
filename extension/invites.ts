/**
 * Copy Invite and the links it makes: a `vscode://chat-room.chat-room/join?…`
 * link to the room this window is in (or the server it runs), and the URI
 * handler that takes such a link into Join Room with everything filled in.
 */
import * as vscode from 'vscode';
import { isLoopbackHost, isReachableThroughLoopback } from '../shared/addresses';
import { formatAddress, lanAddresses, type ServerAddress } from './address';
import { inviteFromParts, inviteLink } from './inviteLinks';
import { inertNotificationText } from './notificationText';
import type { ServerController } from './serverController';
import type { SessionManager } from './sessions';

export class Invites implements vscode.UriHandler {
  private lastLink: string | undefined;

  constructor(
    private readonly extensionId: string,
    private readonly server: ServerController,
    private readonly sessions: SessionManager,
  ) {}

  /** The link the last Copy Invite made, for tests. */
  get lastInvite(): string | undefined {
    return this.lastLink;
  }

  async copyInvite(): Promise<string | undefined> {
    const state = this.server.state;
    let host: string;
    let port: number;
    let room = 'lobby';
    let token: string | undefined;
    let fingerprint: string | undefined;
    const session = this.sessions.session;
    let alternates: ServerAddress[] = [];
    if (session) {
      ({ host, port, token, fingerprint } = session.params);
      alternates = session.params.alternates ?? [];
      room = session.room;
    } else if (state.kind === 'running') {
      ({ host, port, token, fingerprint } = state);
    } else {
      void vscode.window.showInformationMessage('Start a chat server or join a room first; the invite points to it.');
      return undefined;
    }
    // A server this window runs on all interfaces is reached by teammates through a LAN address.
    let otherLanAddresses: string[] = [];
    if (state.kind === 'running' && port === state.port && isReachableThroughLoopback(host) && !isLoopbackHost(state.host)) {
      const [first, ...others] = lanAddresses();
      host = first ?? host;
      otherLanAddresses = others;
      token = token ?? state.token;
      fingerprint = fingerprint ?? state.fingerprint;
    }
    if (host === '0.0.0.0' || host === '::') host = '127.0.0.1';
    const link = inviteLink(vscode.env.uriScheme, this.extensionId, host, port, room, token, fingerprint, alternates);
    await vscode.env.clipboard.writeText(link);
    this.lastLink = link;
    // The shown text names addresses only; the token stays in the link on the clipboard.
    const alsoAt = otherLanAddresses.length > 0 ? ` (this machine is also at ${otherLanAddresses.map((other) => formatAddress({ host: other, port })).join(', ')})` : '';
    const carries = [token ? 'the token' : '', fingerprint ? 'the TLS certificate fingerprint' : ''].filter(Boolean).join(' and ');
    void vscode.window.showInformationMessage(
      `Invite to ${room} on ${formatAddress({ host, port })}${alsoAt} copied.${carries ? ` It carries ${carries}${token ? '; share it privately' : ''}.` : ''}`,
    );
    return link;
  }

  /** vscode://chat-room.chat-room/join?host=…&port=…&room=… lands in the Join flow with the values filled in. */
  handleUri(uri: vscode.Uri): void {
    const invite = inviteFromParts(uri.path, uri.query);
    if (!invite) {
      void vscode.window.showWarningMessage(`Chat Room does not know the link ${inertNotificationText(uri.path, 200)}.`);
      return;
    }
    void this.sessions.joinFlow({ confirm: true, ...invite });
  }
}
