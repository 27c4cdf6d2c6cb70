/**
 * Start Chat Server, Stop Chat Server and Restart: the commands around the
 * server this installation runs. The server's lifetime itself (start, attach,
 * lease, stop) is the ServerController's; this module asks the person what
 * they want and says what happened.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';
import { isLoopbackHost, isReachableThroughLoopback } from '../shared/addresses';
import { formatAddress, lanAddresses } from './address';
import { Command } from './commands';
import type { JoinRoomArgs } from './joinFlow';
import { findFreePort, PortBusyError, type ServerController, type ServerState } from './serverController';
import type { ServerChoices } from './serverHome';
import type { SessionManager } from './sessions';
import { readSettings } from './settings';
import type { StoredState } from './storedState';

export interface StartServerArgs {
  port?: number;
  host?: string;
  /**
   * Open to the LAN: require a token and serve TLS. Without a `host` it binds
   * all interfaces (or the configured non-loopback bind address). Defaults to
   * whether `host` is beyond loopback; asked when the command has no arguments.
   */
  lan?: boolean;
  /** Join the room once started (overrides the setting). */
  join?: boolean;
}

export type StartServerResult =
  | { started: true; host: string; port: number; lan: boolean; fingerprint?: string }
  | { started: false; reason: string; code?: 'port_busy' | 'already_running' | 'failed' | 'cancelled'; suggestedPort?: number };

const THIS_MACHINE_ONLY = 'This machine only';
const OPEN_TO_LAN = 'Open to LAN (token + TLS)';

export class ServerCommands extends Disposable {
  constructor(
    readonly controller: ServerController,
    private readonly sessions: SessionManager,
    private readonly stored: StoredState,
    private readonly log: vscode.LogOutputChannel,
    private readonly serverLog: vscode.LogOutputChannel,
  ) {
    super();
    this.register(controller.onDidChangeState((state) => this.onServerState(state)));
  }

  async startServer(args?: StartServerArgs): Promise<StartServerResult> {
    const interactive = args === undefined;
    const settings = readSettings();
    if (this.controller.state.kind === 'running' || this.controller.state.kind === 'starting') {
      const where = this.controller.state.kind === 'running' ? ` on ${formatAddress(this.controller.state)}` : '';
      if (interactive) void vscode.window.showInformationMessage(`The chat server is already running${where}.`);
      return { started: false, reason: 'already running', code: 'already_running' };
    }
    let openToLan = args?.lan ?? (args?.host !== undefined ? !isLoopbackHost(args.host) : undefined);
    if (openToLan === undefined && interactive) {
      openToLan = await askOpenToLan(!isLoopbackHost(settings.bindAddress));
      if (openToLan === undefined) return { started: false, reason: 'cancelled', code: 'cancelled' };
    }
    openToLan ??= !isLoopbackHost(settings.bindAddress);
    const host = args?.host ?? (openToLan ? (isLoopbackHost(settings.bindAddress) ? '0.0.0.0' : settings.bindAddress) : isLoopbackHost(settings.bindAddress) ? settings.bindAddress : '127.0.0.1');
    const port = args?.port ?? settings.serverPort;
    return this.runServer({ host, port, lan: openToLan, ...(settings.classicPort ? { classicPort: settings.classicPort } : {}) }, interactive, args?.join);
  }

  /**
   * Starts the server again with the choices it last ran with, asking nothing
   * (the Restart button). Without any (the panel's Start Server for a room on
   * this machine), it serves that room's port to this machine only.
   */
  async restartServer(): Promise<StartServerResult> {
    if (this.controller.state.kind === 'running' || this.controller.state.kind === 'starting') return { started: false, reason: 'already running', code: 'already_running' };
    const session = this.sessions.session;
    const classicPort = readSettings().classicPort;
    const choices: ServerChoices | undefined =
      this.controller.lastChoices ?? (session && isLoopbackHost(session.params.host) ? { host: '127.0.0.1', port: session.params.port, lan: false, ...(classicPort ? { classicPort } : {}) } : undefined);
    if (!choices) return this.startServer();
    return this.runServer(choices, false, false);
  }

  private async runServer(choices: ServerChoices, interactive: boolean, join: boolean | undefined): Promise<StartServerResult> {
    const settings = readSettings();
    let { port } = choices;
    const { host, lan: openToLan } = choices;
    // Anyone who can reach the port could join, so beyond loopback a token is a must, and TLS keeps it (and the talk) private.
    const token = openToLan || !isLoopbackHost(host) ? await this.stored.serverTokenOrNew() : undefined;
    const tls = openToLan;

    for (let tries = 0; tries < 2; tries++) {
      try {
        const running = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `Starting chat server on ${formatAddress({ host, port })}` }, () =>
          this.controller.start({ choices: { ...choices, port }, ...(token ? { token } : {}), tls, keepAliveMs: settings.keepAliveMs }),
        );
        this.log.info(`Chat server running on ${formatAddress(running)}${running.fingerprint ? `, TLS certificate fingerprint (SHA-256) ${running.fingerprint}` : ''}`);
        const joinAddress = formatAddress({ host: isReachableThroughLoopback(host) ? '127.0.0.1' : host, port: running.port });
        // Our own server: its token and certificate are known, so joining it asks for neither.
        const ownCredentials: JoinRoomArgs = { ...(token ? { token } : {}), ...(running.fingerprint ? { fingerprint: running.fingerprint } : {}) };
        if (this.sessionIsOnOurServer()) {
          // Already in a room there (a restart): back in at once, and nobody in the room is offered "Join".
          this.sessions.session?.reconnectNow();
          if (interactive) void vscode.window.setStatusBarMessage(`$(radio-tower) Chat server back on ${formatAddress(running)}`, 5_000);
        } else if (join ?? settings.joinOnStart) {
          await this.sessions.joinFlow(interactive ? { address: joinAddress, ...ownCredentials } : { address: joinAddress, name: readSettings().defaultName || 'host', ...ownCredentials });
        } else if (interactive) {
          void vscode.window.showInformationMessage(describeRunningServer(running, openToLan), 'Join', 'Copy Invite').then((choice) => {
            if (choice === 'Join') void this.sessions.joinFlow({ address: joinAddress, confirm: true, ...ownCredentials });
            if (choice === 'Copy Invite') void vscode.commands.executeCommand(Command.copyInvite);
          });
        }
        return { started: true, host, port: running.port, lan: openToLan, ...(running.fingerprint ? { fingerprint: running.fingerprint } : {}) };
      } catch (error) {
        if (error instanceof PortBusyError) {
          const suggestedPort = await findFreePort(host);
          if (!interactive) return { started: false, reason: error.message, code: 'port_busy', suggestedPort };
          const useOther = `Use Port ${suggestedPort}`;
          const choice = await vscode.window.showWarningMessage(
            `${error.message} Another program, or another chat server, is using it.`,
            useOther,
            'Join the Server There',
          );
          if (choice === useOther) {
            port = suggestedPort;
            continue;
          }
          if (choice === 'Join the Server There') void this.sessions.joinFlow({ address: formatAddress({ host: isLoopbackHost(host) ? host : '127.0.0.1', port }), confirm: true });
          return { started: false, reason: error.message, code: 'port_busy', suggestedPort };
        }
        const reason = error instanceof Error ? error.message : String(error);
        this.log.error(`Could not start the chat server: ${reason}`);
        if (interactive) {
          void vscode.window.showErrorMessage(`Could not start the chat server: ${reason}`, 'Show Server Log').then((choice) => {
            if (choice) this.serverLog.show(true);
          });
        }
        return { started: false, reason, code: 'failed' };
      }
    }
    return { started: false, reason: 'gave up', code: 'failed' };
  }

  async stopServer(): Promise<boolean> {
    const kind = this.controller.state.kind;
    if (kind === 'stopped' || kind === 'crashed') {
      // A crashed server is dismissed: the status bar stops offering to restart it.
      if (kind === 'crashed') await this.controller.stop();
      void vscode.window.showInformationMessage('The chat server is not running.');
      return false;
    }
    await this.controller.stop();
    void vscode.window.showInformationMessage('The chat server has stopped.');
    return true;
  }

  /** After a crash the person is offered Restart first: it is what they want, and it asks nothing again. */
  private onServerState(state: ServerState): void {
    if (state.kind === 'crashed' && state.seen) {
      void vscode.window.showErrorMessage(state.reason, 'Restart', 'Show Server Log').then((choice) => {
        if (choice === 'Show Server Log') this.serverLog.show(true);
        if (choice === 'Restart') void this.restartServer();
      });
    }
  }

  /** Whether the current room is on the server this installation runs. */
  sessionIsOnOurServer(): boolean {
    const session = this.sessions.session;
    const state = this.controller.state;
    return session !== undefined && state.kind === 'running' && session.params.port === state.port && (isLoopbackHost(session.params.host) || session.params.host === state.host);
  }
}

/** Asks where "Start Chat Server" should be reachable from; undefined when dismissed. */
async function askOpenToLan(lanFirst: boolean): Promise<boolean | undefined> {
  const items: vscode.QuickPickItem[] = [
    { label: THIS_MACHINE_ONLY, description: 'loopback', detail: 'Only chat clients on this computer can join.' },
    { label: OPEN_TO_LAN, description: 'token and TLS', detail: 'Teammates on your network join with an invite link, which carries a token and the certificate fingerprint.' },
  ];
  if (lanFirst) items.reverse();
  const picked = await vscode.window.showQuickPick(items, { title: 'Start Chat Server', placeHolder: 'Who may connect?', ignoreFocusOut: true });
  return picked === undefined ? undefined : picked.label === OPEN_TO_LAN;
}

/** What the "server started" notification says; never the token. */
function describeRunningServer({ host, port, fingerprint }: { host: string; port: number; fingerprint?: string }, openToLan: boolean): string {
  if (!openToLan) return `Chat server running on ${formatAddress({ host, port })}.`;
  const addresses = lanAddresses().map((host) => formatAddress({ host, port }));
  const where = addresses.length > 0 ? `at ${addresses.join(', ')}` : `on port ${port} (no LAN address found)`;
  return `Chat server open to your LAN ${where}, with a token and TLS${fingerprint ? ` (certificate fingerprint ${fingerprint})` : ''}. Copy the invite to let teammates in.`;
}
