/**
 * Invite links: `vscode://chat-room.chat-room/join?host=…&port=…&room=…`, with
 * `token=…` and `fp=…` when the server has them, and `also=host:port,…` for
 * the other servers of a cluster (tried in turn when one is out of reach).
 * One reader for the URI handler and for a link pasted into Join Room's
 * address box, one writer for Copy Invite.
 */
import { DEFAULT_PORT } from '../shared/protocol';
import { formatAddress, formatAddressList, parseAddress, parseAddressList, type ServerAddress } from './address';

export interface Invite {
  /** `host:port`, or several separated by commas (a cluster), as the Join flow takes it. */
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
  const also = params.get('also');
  const others = also ? parseAddressList(also) : [];
  if (!others) return undefined;
  const invite: Invite = { address: formatAddressList([address, ...others.filter((other) => other.host !== address.host || other.port !== address.port)]) };
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
export function inviteLink(scheme: string, extensionId: string, host: string, port: number, room: string, token?: string, fingerprint?: string, alternates: readonly ServerAddress[] = []): string {
  const query = new URLSearchParams({ host, port: String(port), room });
  if (alternates.length > 0) query.set('also', alternates.map(formatAddress).join(','));
  if (token) query.set('token', token);
  if (fingerprint) query.set('fp', fingerprint);
  return `${scheme}://${extensionId}${INVITE_PATH}?${query.toString()}`;
}
