/**
 * "Join Room": asks for the address, the name and the room (each remembered),
 * asks for a token only when the server wants one, and asks for the name again
 * when the server refuses it. Given every value as an argument it asks nothing,
 * which is how tests and invite links drive it.
 */
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import * as vscode from 'vscode';
import { isLoopbackHost } from '../shared/addresses';
import { nameProblem, roomProblem } from '../shared/names';
import { DEFAULT_PORT, DEFAULT_ROOM } from '../shared/protocol';
import { formatAddress, formatAddressList, parseAddressList } from './address';
import type { SessionParams } from './chatSession';
import type { JoinOutcome } from './sessions';
import type { StoredState } from './storedState';
import { fingerprintMismatchMessage, fingerprintsMatch, normalizeFingerprint, probeServerFingerprint } from './certificatePin';
import { Command } from './commands';
import { readSettings } from './settings';
import { inertNotificationText } from './notificationText';
import { inviteFromText } from './inviteLinks';

/** Arguments `chatRoom.join` accepts; any value given is not asked for. */
export interface JoinRoomArgs {
  address?: string;
  name?: string;
  room?: string;
  token?: string;
  /** SHA-256 fingerprint of the server's TLS certificate (the invite's `fp`); given, the join uses TLS and trusts only that certificate. */
  fingerprint?: string;
  /** Ask anyway, with the given values filled in (an invite link). */
  confirm?: boolean;
}

/** What `chatRoom.join` returns. */
export type JoinRoomResult =
  | { joined: true; name: string; room: string; address: string }
  | { joined: false; reason: string; code?: string };

/** What the flow needs from the rest of the extension. */
export interface JoinFlowContext {
  stored: StoredState;
  /** Connects and reports how the first attempt went; on success the panel opens. */
  connect(params: SessionParams): Promise<JoinOutcome>;
}

export async function runJoinFlow(context: JoinFlowContext, givenArgs: JoinRoomArgs = {}): Promise<JoinRoomResult> {
  const settings = readSettings();
  const remembered = context.stored.lastJoin();
  let args = givenArgs;
  const interactive = args.confirm === true || args.address === undefined || args.name === undefined;

  const addressDefault = args.address ?? (remembered ? formatAddressList([remembered, ...(remembered.alternates ?? [])]) : settings.defaultAddress || `localhost:${DEFAULT_PORT}`);
  const addressText =
    interactive && (args.confirm || args.address === undefined)
      ? await vscode.window.showInputBox({
          title: 'Join Room (1/3): server address',
          prompt: 'The chat server to join, as host:port, or an invite link',
          value: addressDefault,
          ignoreFocusOut: true,
          validateInput: (text) => (parseAddressList(text) || inviteFromText(text) ? undefined : 'Type an address such as localhost:33000 or 192.168.1.20:33000 (a cluster\'s servers separated by commas), or paste an invite link.'),
        })
      : addressDefault;
  if (addressText === undefined) return { joined: false, reason: 'cancelled' };
  // A pasted invite fills in the rest, as opening the link does; what it names is still shown to confirm.
  const invite = inviteFromText(addressText);
  if (invite) args = { ...args, address: invite.address, confirm: true, ...(invite.room ? { room: invite.room } : {}), ...(invite.token ? { token: invite.token } : {}), ...(invite.fingerprint ? { fingerprint: invite.fingerprint } : {}) };
  // A cluster's servers, separated by commas: the first is tried first, and keys the token and the pin.
  const addresses = parseAddressList(invite ? invite.address : addressText);
  if (!addresses) return { joined: false, reason: `"${addressText}" is not an address.`, code: 'bad_address' };
  const [address, ...alternates] = addresses;

  let name = args.name ?? (remembered?.name || settings.defaultName || (await gitUserName()) || osUserName());
  if (interactive && (args.confirm || args.name === undefined)) {
    const asked = await askName(name, undefined);
    if (asked === undefined) return { joined: false, reason: 'cancelled' };
    name = asked;
  }

  let room = args.room ?? remembered?.room ?? DEFAULT_ROOM;
  if (interactive && (args.confirm || args.room === undefined)) {
    const asked = await vscode.window.showInputBox({
      title: 'Join Room (3/3): room',
      prompt: 'The room to join; rooms are created when someone joins them',
      value: room,
      ignoreFocusOut: true,
      validateInput: (text) => roomProblem(text),
    });
    if (asked === undefined) return { joined: false, reason: 'cancelled' };
    room = asked;
  }

  let token = args.token ?? (await context.stored.roomToken(address.host, address.port));
  if (args.token) await context.stored.storeRoomToken(address.host, address.port, args.token);

  let fingerprint: string | undefined;
  if (args.fingerprint !== undefined) {
    fingerprint = normalizeFingerprint(args.fingerprint);
    if (!fingerprint) return { joined: false, reason: `"${args.fingerprint}" is not a SHA-256 certificate fingerprint.`, code: 'bad_fingerprint' };
  } else {
    fingerprint = context.stored.pinnedFingerprint(address.host, address.port);
  }
  // Whether the server speaks TLS is asked at most once; a certificate it shows is offered for trust.
  let probedForTls = fingerprint !== undefined;
  const probeForTls = async (): Promise<JoinRoomResult | undefined> => {
    probedForTls = true;
    const presented = await probeServerFingerprint(address.host, address.port);
    if (presented === undefined) return undefined;
    const trusted = await trustOnFirstUse(formatAddress(address), presented, interactive);
    if (trusted.kind === 'refused') return { joined: false, reason: trusted.reason, code: trusted.code };
    fingerprint = presented;
    return undefined;
  };
  // A token must not cross the network in the clear when the server could take it over TLS,
  // so that is asked before the first hello that would carry one.
  if (token && !probedForTls) {
    const refused = await probeForTls();
    if (refused) return refused;
  }

  // Each refusal asks again for what was refused; a person can always cancel.
  for (let round = 0; round < 10; round++) {
    const outcome = await context.connect({ host: address.host, port: address.port, name, room, ...(token ? { token } : {}), ...(fingerprint ? { fingerprint } : {}), ...(alternates.length > 0 ? { alternates } : {}) });
    if (outcome.kind === 'welcome') {
      await context.stored.rememberLastJoin({ host: address.host, port: address.port, name, room, alternates });
      // Pinned only once the server let us in with it, so a mistyped address does not keep a pin.
      if (fingerprint) await context.stored.pinFingerprint(address.host, address.port, fingerprint);
      return { joined: true, name: outcome.you, room: outcome.room, address: formatAddressList(addresses) };
    }
    if (outcome.kind === 'unreachable' && !probedForTls) {
      const refused = await probeForTls();
      if (refused) return refused;
      // A plain connection to a TLS server fails; with its certificate now trusted, try again over TLS.
      if (fingerprint) continue;
    }
    if (outcome.kind === 'unreachable') {
      if (interactive) {
        // Nothing listening on this machine is most often a server not started yet.
        const offer = isLoopbackHost(address.host) ? ['Start Chat Server'] : [];
        void vscode.window.showErrorMessage(`Could not join ${formatAddress(address)}: ${inertNotificationText(outcome.reason, 300)}`, ...offer).then((choice) => {
          if (choice) void vscode.commands.executeCommand(Command.startServer);
        });
      }
      return { joined: false, reason: outcome.reason, code: 'unreachable' };
    }
    if (outcome.code === 'fingerprint_mismatch') {
      if (interactive) void vscode.window.showErrorMessage(outcome.message, { modal: true });
      return { joined: false, reason: outcome.message, code: outcome.code };
    }
    if (!interactive) return { joined: false, reason: outcome.message, code: outcome.code };
    if (outcome.code === 'name_taken' || outcome.code === 'bad_name' || outcome.code === 'name_reserved') {
      const why =
        outcome.code === 'name_taken' ? `"${name}" is already in this room. Pick another name.` : outcome.code === 'name_reserved' ? `"${name}" is already taken on this server. Pick another name.` : `The server refused "${name}": ${outcome.message}`;
      const asked = await askName(name, why);
      if (asked === undefined) return { joined: false, reason: 'cancelled', code: outcome.code };
      name = asked;
      continue;
    }
    if (outcome.code === 'unauthorized') {
      const asked = await vscode.window.showInputBox({
        title: 'Join Room: token',
        prompt: token ? 'The server refused that token. Type the token from your invite.' : 'This server needs a token. Type the token from your invite.',
        password: true,
        ignoreFocusOut: true,
      });
      if (!asked) return { joined: false, reason: 'cancelled', code: outcome.code };
      token = asked;
      await context.stored.storeRoomToken(address.host, address.port, token);
      continue;
    }
    void vscode.window.showErrorMessage(`Could not join ${room}: ${inertNotificationText(outcome.message, 300)}`);
    return { joined: false, reason: outcome.message, code: outcome.code };
  }
  return { joined: false, reason: 'Too many attempts.' };
}

type TrustDecision = { kind: 'trusted' } | { kind: 'refused'; reason: string; code: string };

/**
 * A TLS server nobody vouched for (no invite fingerprint, nothing pinned):
 * shows its certificate's fingerprint and asks whether to trust it, or lets
 * the person type the one the host gave them. Without a person to ask, it is
 * refused, and the reason carries the fingerprint so a caller can pass it.
 */
async function trustOnFirstUse(address: string, presented: string, interactive: boolean): Promise<TrustDecision> {
  const unpinned = `${address} uses TLS with a certificate nobody has vouched for; its SHA-256 fingerprint is ${presented}.`;
  if (!interactive) return { kind: 'refused', reason: `${unpinned} Join with that fingerprint to trust it.`, code: 'unpinned_certificate' };
  const trust = 'Trust and Join';
  const typeIt = 'Type the Fingerprint…';
  const choice = await vscode.window.showWarningMessage(
    `Trust the chat server at ${address}?`,
    {
      modal: true,
      detail: `${unpinned}\n\nTrust it only if it matches the fingerprint the server's host sees (printed in the server log) or the one in your invite. Chat Room remembers it for this address and refuses any other certificate there.`,
    },
    trust,
    typeIt,
  );
  if (choice === trust) return { kind: 'trusted' };
  if (choice !== typeIt) return { kind: 'refused', reason: 'cancelled', code: 'cancelled' };
  const typed = await vscode.window.showInputBox({
    title: 'Join Room: certificate fingerprint',
    prompt: `The SHA-256 fingerprint of ${address}'s certificate, as its host gave it to you`,
    ignoreFocusOut: true,
    validateInput: (text) => (normalizeFingerprint(text) ? undefined : 'A SHA-256 fingerprint is 32 bytes in hex, such as AB:CD:…'),
  });
  if (typed === undefined) return { kind: 'refused', reason: 'cancelled', code: 'cancelled' };
  const expected = normalizeFingerprint(typed) as string;
  if (!fingerprintsMatch(expected, presented)) {
    const reason = fingerprintMismatchMessage(address, expected, presented);
    void vscode.window.showErrorMessage(reason, { modal: true });
    return { kind: 'refused', reason, code: 'fingerprint_mismatch' };
  }
  return { kind: 'trusted' };
}

function askName(value: string, why: string | undefined): Thenable<string | undefined> {
  return vscode.window.showInputBox({
    title: 'Join Room (2/3): your name',
    prompt: why ?? 'The name others see, 1 to 32 characters',
    value,
    ignoreFocusOut: true,
    validateInput: (text) => nameProblem(text),
  });
}

/** git's user.name, if git is installed and has one; never waits long. */
function gitUserName(): Promise<string | undefined> {
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.scheme === 'file' ? vscode.workspace.workspaceFolders[0].uri.fsPath : os.homedir();
  return new Promise((resolve) => {
    execFile('git', ['config', '--get', 'user.name'], { cwd, timeout: 2_000, windowsHide: true }, (error, stdout) => {
      const name = error ? '' : stdout.trim();
      resolve(name && !nameProblem(name) ? name : undefined);
    });
  });
}

function osUserName(): string {
  try {
    const name = os.userInfo().username;
    return name && !nameProblem(name) ? name : 'guest';
  } catch {
    return 'guest';
  }
}
