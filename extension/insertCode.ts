/**
 * Insert at cursor: a code block from the chat goes into the editor the
 * person was last in, replacing its selections, and that editor takes the
 * focus. While the chat has the focus VS Code has no active text editor, so
 * the last one is remembered as the focus moves.
 */
import * as vscode from 'vscode';
import { Disposable } from '../shared/disposable';

export class CodeInserter extends Disposable {
  private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;

  constructor() {
    super();
    this.register(
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        if (editor) this.lastEditor = editor;
      }),
    );
  }

  /** Inserts `text` at the cursor; false, with a word to the person, when there is no editor to take it. */
  async insert(text: string): Promise<boolean> {
    const editor = this.target();
    if (!editor) {
      void vscode.window.showInformationMessage('Open a file to insert the code into.');
      return false;
    }
    const done = await editor.edit((edit) => {
      for (const selection of editor.selections) edit.replace(selection, text);
    });
    if (done) await vscode.window.showTextDocument(editor.document, { viewColumn: editor.viewColumn, preserveFocus: false });
    return done;
  }

  /** The editor that has the focus, else the last one that had it while it is still open, else any visible one. */
  private target(): vscode.TextEditor | undefined {
    const visible = vscode.window.visibleTextEditors.filter((editor) => editor.document.uri.scheme !== 'output');
    const active = vscode.window.activeTextEditor;
    if (active) return active;
    if (this.lastEditor && visible.includes(this.lastEditor)) return this.lastEditor;
    return visible[0];
  }
}
