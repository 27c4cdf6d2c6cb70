/**
 * What a click on a link in the chat may open: an http(s) page, through VS
 * Code (which asks the person first), or a `path:line` reference inside this
 * workspace. Anything else a stranger could write is ignored.
 */
import * as vscode from 'vscode';

/** Opens an http(s) link through VS Code, which asks the person first; anything else is ignored. */
export async function openLink(href: string): Promise<void> {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return;
  }
  // Only the web: never command:, file:, javascript: or any other scheme a stranger could use.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
  await vscode.env.openExternal(vscode.Uri.parse(url.toString(), true));
}

/**
 * Opens a workspace-relative `path` at `line`, if some workspace folder has
 * that file, in an editor group other than `chatColumn` (the chat's tab), so
 * the file never covers the chat.
 */
export async function openWorkspacePath(relative: string, line: number, chatColumn?: vscode.ViewColumn): Promise<boolean> {
  const parts = relative.replace(/\\/g, '/').split('/').filter(Boolean);
  // Only files inside the workspace: no absolute paths, no climbing out with `..`.
  if (parts.length === 0 || parts.includes('..') || relative.startsWith('/') || /^[A-Za-z]:/.test(relative)) return false;
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    const candidates = [vscode.Uri.joinPath(folder.uri, ...parts)];
    // asRelativePath prefixes the folder name in multi-root workspaces.
    if (parts[0] === folder.name && parts.length > 1) candidates.push(vscode.Uri.joinPath(folder.uri, ...parts.slice(1)));
    for (const uri of candidates) {
      try {
        const stat = await vscode.workspace.fs.stat(uri);
        if (stat.type & vscode.FileType.File) {
          const position = new vscode.Position(Math.max(0, line - 1), 0);
          await vscode.window.showTextDocument(uri, { selection: new vscode.Range(position, position), preview: true, viewColumn: columnBeside(chatColumn) });
          return true;
        }
      } catch {
        // Not in this folder; try the next.
      }
    }
  }
  void vscode.window.showInformationMessage(`${relative} is not in this workspace.`);
  return false;
}

/** The first editor group, unless the chat stands there: then the one beside it. */
function columnBeside(chatColumn: vscode.ViewColumn | undefined): vscode.ViewColumn {
  return chatColumn === vscode.ViewColumn.One ? vscode.ViewColumn.Two : vscode.ViewColumn.One;
}
