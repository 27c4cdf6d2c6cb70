// Launcher for the extension-test suite in VS Code desktop
// (`npm run test:electron`), for machines that can download it from
// Microsoft's update service. It runs the same suite as the offline
// code-server launcher; @vscode/test-electron turns a rejected run() into a
// non-zero exit code, so no result file is needed here.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTests } from '@vscode/test-electron';
import { repoRoot } from '../support/codeServerHost';

async function main(): Promise<number> {
  const root = repoRoot();
  const scratch = mkdtempSync(join(tmpdir(), 'chat-room-electron-'));
  const workspaceDir = join(scratch, 'workspace');
  mkdirSync(workspaceDir);
  try {
    const exitCode = await runTests({
      // Matches engines.vscode and the code-server build the offline launcher uses.
      version: process.env.CHAT_ROOM_VSCODE_VERSION ?? '1.100.3',
      extensionDevelopmentPath: root,
      extensionTestsPath: join(root, 'out', 'test', 'extension', 'index.js'),
      launchArgs: [
        workspaceDir,
        '--user-data-dir', join(scratch, 'user-data'),
        '--extensions-dir', join(scratch, 'extensions'),
        '--disable-extensions',
        '--disable-workspace-trust',
        '--skip-welcome',
        '--skip-release-notes',
        '--disable-gpu',
        '--no-sandbox',
      ],
    });
    console.log(`extension (electron): exit code ${exitCode}`);
    return exitCode;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    // runTests rejects when the download fails or VS Code exits non-zero (a failed test).
    console.error(`extension (electron): ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
