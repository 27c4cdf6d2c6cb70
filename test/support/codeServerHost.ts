// A real VS Code (code-server from npm, installed by scripts/setup-code-server.sh)
// started on a free loopback port with its own throw-away user data, extensions
// folder and workspace. Shared by the offline extension-test launcher and the
// UI-test harness.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freeLoopbackPort } from './freeLoopbackPort';

/** The repository root: the nearest folder above this file whose package.json is ours. */
export function repoRoot(): string {
  let dir = __dirname;
  for (let depth = 0; depth < 10; depth++) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'chat-room') return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the chat-room package.json above ${__dirname}`);
}

export function codeServerEntry(): string {
  const entry =
    process.env.CODE_SERVER_ENTRY ??
    join(repoRoot(), '.vscode-test', 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(entry)) {
    throw new Error(`code-server is not installed at ${entry}; run: bash scripts/setup-code-server.sh`);
  }
  return entry;
}

/** Settings without which a trust dialog and the welcome page swallow keyboard input. */
const quietWorkbenchSettings = {
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'workbench.tips.enabled': false,
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'workbench.enableExperiments': false,
  'chat.commandCenter.enabled': false,
};

export interface CodeServerOptions {
  /** Short name used in temp folder names and log lines, e.g. "alice". */
  label: string;
  /** A .vsix to install with --install-extension before the server starts, as a user would. */
  vsixPath?: string;
  /** Extra environment for code-server and so for its extension hosts. */
  env?: Record<string, string>;
  /** Extra user settings merged over the quiet defaults. */
  settings?: Record<string, unknown>;
  /** How long to wait for the HTTP endpoint to answer. */
  startTimeoutMs?: number;
}

export interface CodeServerHost {
  readonly label: string;
  readonly port: number;
  readonly baseUrl: string;
  readonly workspaceDir: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  readonly logFile: string;
  readonly pid: number;
  /** The workbench URL with the workspace folder open, plus optional dev payload entries. */
  workbenchUrl(payload?: Array<[string, string]>): string;
  /** A path on this machine spelled as a URI the remote extension host resolves. */
  remoteUri(absolutePath: string): string;
  /** True while the code-server process is alive. */
  isRunning(): boolean;
  /** The last lines of its log, for failure messages. */
  logTail(lines?: number): string;
  /** Stop the process group, keeping the temp folders (what runs on without it may still use them). */
  stopProcesses(): Promise<void>;
  /** Stop the process group and delete every temp folder. Safe to call twice. */
  stop(): Promise<void>;
}

function runCodeServerCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): string {
  const result = spawnSync(process.execPath, [codeServerEntry(), ...args], {
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error || result.status !== 0) {
    throw new Error(`code-server ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}):\n${output}`);
  }
  return output;
}

async function httpAnswers(url: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Signals a whole process group, ignoring "no such process". */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startCodeServer(options: CodeServerOptions): Promise<CodeServerHost> {
  const tempRoot = mkdtempSync(join(tmpdir(), `chat-room-${options.label}-`));
  const userDataDir = join(tempRoot, 'user-data');
  const extensionsDir = join(tempRoot, 'extensions');
  const workspaceDir = join(tempRoot, 'workspace');
  // code-server writes its own config and logs under XDG folders; keep them
  // inside the temp root so a run never touches the real home folder.
  const xdgConfig = join(tempRoot, 'xdg-config');
  const xdgData = join(tempRoot, 'xdg-data');
  for (const dir of [join(userDataDir, 'User'), extensionsDir, workspaceDir, xdgConfig, xdgData]) {
    mkdirSync(dir, { recursive: true });
  }
  writeFileSync(
    join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ ...quietWorkbenchSettings, ...options.settings }, null, 2),
  );
  const configFile = join(tempRoot, 'code-server.yaml');
  writeFileSync(configFile, 'auth: none\ncert: false\n');
  const logFile = join(tempRoot, 'code-server.log');

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: xdgConfig,
    XDG_DATA_HOME: xdgData,
    ...options.env,
  };
  // code-server refuses to start (or nests oddly) when it thinks it runs inside another VS Code.
  delete env.VSCODE_IPC_HOOK_CLI;
  delete env.VSCODE_PID;

  const cleanupTemp = () => rmSync(tempRoot, { recursive: true, force: true, maxRetries: 3 });

  try {
    if (options.vsixPath) {
      const output = runCodeServerCli(
        ['--config', configFile, '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir,
          '--install-extension', options.vsixPath],
        env,
        120_000,
      );
      if (!/successfully installed/i.test(output)) {
        throw new Error(`installing ${options.vsixPath} did not report success:\n${output}`);
      }
    }
  } catch (error) {
    cleanupTemp();
    throw error;
  }

  // A port picked as free can be taken before code-server binds it; try a few.
  let lastFailure = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freeLoopbackPort();
    const log = createWriteStream(logFile, { flags: 'a' });
    const child: ChildProcess = spawn(
      process.execPath,
      [
        codeServerEntry(),
        '--config', configFile,
        '--auth', 'none',
        '--bind-addr', `127.0.0.1:${port}`,
        '--user-data-dir', userDataDir,
        '--extensions-dir', extensionsDir,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        workspaceDir,
      ],
      // Its own process group, so stopping it also stops the VS Code server,
      // extension hosts and anything they spawned.
      { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    let exited = false;
    child.once('exit', () => (exited = true));
    const pid = child.pid;
    if (pid === undefined) {
      log.end();
      lastFailure = 'spawn gave no pid';
      continue;
    }

    const baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    let ready = false;
    while (!exited && Date.now() < deadline) {
      if (await httpAnswers(`${baseUrl}/healthz`, 2_000)) {
        ready = true;
        break;
      }
      await delay(250);
    }

    let stopped: Promise<void> | undefined;
    let processesStopped: Promise<void> | undefined;
    const stopProcessGroup = async () => {
      signalGroup(pid, 'SIGTERM');
      const killDeadline = Date.now() + 5_000;
      while (groupAlive(pid) && Date.now() < killDeadline) await delay(100);
      if (groupAlive(pid)) signalGroup(pid, 'SIGKILL');
      const reapDeadline = Date.now() + 2_000;
      while (!exited && Date.now() < reapDeadline) await delay(50);
      log.end();
    };
    const tail = (lines = 40) => {
      try {
        return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    };

    if (!ready) {
      lastFailure = exited ? `code-server exited early:\n${tail()}` : `code-server did not answer within the time limit:\n${tail()}`;
      await stopProcessGroup();
      continue;
    }

    const remoteUri = (absolutePath: string) => `vscode-remote://127.0.0.1:${port}${absolutePath}`;
    return {
      label: options.label,
      port,
      baseUrl,
      workspaceDir,
      userDataDir,
      extensionsDir,
      logFile,
      pid,
      remoteUri,
      workbenchUrl(payload) {
        let url = `${baseUrl}/?folder=${encodeURIComponent(workspaceDir)}`;
        if (payload?.length) url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
        return url;
      },
      isRunning: () => !exited,
      logTail: tail,
      stopProcesses() {
        processesStopped ??= stopProcessGroup();
        return processesStopped;
      },
      stop() {
        stopped ??= (processesStopped ?? (processesStopped = stopProcessGroup())).finally(cleanupTemp);
        return stopped;
      },
    };
  }
  cleanupTemp();
  throw new Error(`code-server (${options.label}) did not start: ${lastFailure}`);
}
