/**
 * Invite links: `vscode://chat-room.chat-room/join?host=…&port=…&room=…`, with
 * `token=…` and `fp=…` when the server has them. One reader for the URI
 * handler and for a link pasted into Join Room's address box, one writer for
 * Copy Invite.
 */
import { DEFAULT_PORT } from '../shared/protocol';
import { formatAddress, parseAddress } from './address';

export interface Invite {
  /** `host:port`, as the Join flow takes it. */
  address: string;
  room?: string;
  token?: string;
  fingerprint?: string;
}

export const INVITE_PATH = '/join';

/** Reads an invite from a link's path and query; undefined when it is not one. */
export function inviteFromParts(path: string, query: string): Invite | undefined {
  if (path !== INVITE_PATH) return undefined;
  const params = new URLSearchParams(query);
  const host = params.get('host')?.trim();
  if (!host) return undefined;
  const address = parseAddress(formatAddress({ host, port: Number(params.get('port')) || DEFAULT_PORT }));
  if (!address) return undefined;
  const invite: Invite = { address: formatAddress(address) };
  const room = params.get('room');
  if (room) invite.room = room;
  const token = params.get('token');
  if (token) invite.token = token;
  const fingerprint = params.get('fp');
  if (fingerprint) invite.fingerprint = fingerprint;
  return invite;
}

/** Reads an invite pasted as text (any scheme: vscode, vscode-insiders, code-oss…); undefined when it is not one. */
export function inviteFromText(text: string): Invite | undefined {
  const trimmed = text.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return undefined;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return undefined;
  }
  return inviteFromParts(url.pathname, url.search);
}

/** The link for an invite, under this product's URI scheme and the extension's id. */
export function inviteLink(scheme: string, extensionId: string, host: string, port: number, room: string, token?: string, fingerprint?: string): string {
  const query = new URLSearchParams({ host, port: String(port), room });
  if (token) query.set('token', token);
  if (fingerprint) query.set('fp', fingerprint);
  return `${scheme}://${extensionId}${INVITE_PATH}?${query.toString()}`;
}
