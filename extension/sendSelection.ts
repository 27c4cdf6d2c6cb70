/**
 * Send Selection to Chat: the editor selection (or the cursor's line) as a
 * fenced code block with its language, under a `path:line` reference that
 * opens on the other side. It goes into the message box, for a comment to
 * be added (or, with chatRoom.sendSelectionDirectly, straight to the room).
 */
import * as vscode from 'vscode';
import { Command } from './commands';
import type { SessionManager } from './sessions';
import { readSettings } from './settings';

/** Where a snippet goes when it is not sent at once: the chat's message box. */
export interface Composer {
  compose(text: string): void;
}

export function sendSelection(sessions: SessionManager, composer: Composer): boolean {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showInformationMessage('Open a file and select some code to send.');
    return false;
  }
  const text = selectionAsMessage(editor);
  if (text === undefined) return false;
  if (readSettings().sendSelectionDirectly || !sessions.session) return sendFromEditor(sessions, text);
  composer.compose(text);
  return true;
}

/** The message for the selection, or undefined when there is nothing to send. */
function selectionAsMessage(editor: vscode.TextEditor): string | undefined {
  const selection = editor.selection;
  const range = selection.isEmpty ? editor.document.lineAt(selection.active.line).range : selection;
  const code = editor.document.getText(range).replace(/\s+$/, '');
  if (!code) return undefined;
  const where = `${vscode.workspace.asRelativePath(editor.document.uri, false)}:${range.start.line + 1}`;
  // The fence must be longer than any run of backticks inside the code.
  const longestRun = Math.max(2, ...(code.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longestRun + 1);
  return `${where}\n${fence}${editor.document.languageId}\n${code}\n${fence}`;
}

/** Sends text to the room; false, with a message to the person, when it cannot. */
function sendFromEditor(sessions: SessionManager, text: string): boolean {
  const outcome = sessions.trySend(text);
  if (outcome.accepted) return true;
  if (!sessions.session) askToJoin();
  else void vscode.window.showWarningMessage(outcome.reason);
  return false;
}

function askToJoin(): void {
  void vscode.window.showWarningMessage('Join a chat room first.', 'Join Room').then((choice) => {
    if (choice) void vscode.commands.executeCommand(Command.join);
  });
}
