/**
 * The chat panel's host side: owns one webview panel, gives it a strict CSP
 * page (the script draws the panel itself: extension/webview/), and relays
 * typed messages both ways (shared/webviewMessages.ts).
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { Disposable, toDisposable } from '../shared/disposable';
import type { StoredState } from './storedState';
import { RequestTracker } from '../shared/requestReply';
import { asWebviewMessage, type HostToWebview, type PanelView, type ProbeResultMessage, type SnapshotMessage, type WebviewToHost } from '../shared/webviewMessages';

export const PANEL_VIEW_TYPE = 'chatRoom.panel';
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Where the message-box draft is kept between webviews. The workbench saves a
 * webview's own state (vscode.setState) only when it saves the editor layout,
 * which a browser reload can skip, so the draft is also kept here, written on
 * every change. Set once on activation; without it only the webview keeps it.
 */
let draftStore: StoredState | undefined;

export function keepDraftsIn(store: StoredState): void {
  draftStore = store;
}

/** Where the panel's content comes from, and where what the person does goes. */
export interface PanelSource {
  /** Everything the panel needs to draw itself from nothing, after each `ready`. */
  snapshot(): SnapshotMessage;
  /** A message from the webview that is not part of the panel's own plumbing. */
  handleMessage(message: WebviewToHost, panel: ChatPanel): void;
}

export class ChatPanel extends Disposable {
  private ready = false;
  /** Put the focus in the message box once the webview is ready for it. */
  private focusWhenReady = false;
  /** Text for the message box that waits for the webview to be ready (a snapshot does not carry it). */
  private draftAdditions: string[] = [];
  private readonly probes = new RequestTracker<ProbeResultMessage>();
  private readonly disposeEmitter = this.register(new vscode.EventEmitter<void>());
  private readonly visibilityEmitter = this.register(new vscode.EventEmitter<boolean>());
  readonly onDidDispose = this.disposeEmitter.event;
  readonly onDidChangeVisibility = this.visibilityEmitter.event;

  /** Options every chat panel is created with (and restored panels are given again). */
  static webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      // Keeping a hidden panel's DOM alive would be simpler but costs memory for every
      // hidden chat; the webview redraws from a snapshot instead when it comes back.
      retainContextWhenHidden: false,
      enableFindWidget: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'media'), vscode.Uri.joinPath(extensionUri, 'dist')],
    };
  }

  static create(extensionUri: vscode.Uri, source: PanelSource, title: string): ChatPanel {
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, ChatPanel.webviewOptions(extensionUri));
    return new ChatPanel(panel, extensionUri, source);
  }

  constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly source: PanelSource,
  ) {
    super();
    panel.webview.options = ChatPanel.webviewOptions(extensionUri);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'chat.svg');
    panel.webview.html = this.html();
    this.register(panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)));
    this.register(
      panel.onDidChangeViewState(() => {
        // A hidden webview without retained context is torn down; it says `ready` again when shown.
        if (!panel.visible) this.ready = false;
        this.visibilityEmitter.fire(panel.visible);
      }),
    );
    this.register(
      panel.onDidDispose(() => {
        this.disposeEmitter.fire();
        this.dispose();
      }),
    );
    this.register(toDisposable(() => this.probes.cancelAll()));
    this.register(toDisposable(() => panel.dispose()));
  }

  get visible(): boolean {
    return this.panel.visible;
  }

  get isReady(): boolean {
    return this.ready;
  }

  set title(title: string) {
    this.panel.title = title;
  }

  reveal(): void {
    this.panel.reveal(undefined, false);
  }

  /** Puts the keyboard focus in the message box (now, or as soon as the webview has drawn itself). */
  focusInput(): void {
    if (this.ready) this.post({ type: 'focusInput' });
    else this.focusWhenReady = true;
  }

  /** Adds text to the message box, now or once the webview has drawn itself. */
  addToDraft(text: string): void {
    if (this.ready) this.post({ type: 'addToDraft', text });
    else this.draftAdditions.push(text);
  }

  /** Posts to the webview once it has said `ready`; earlier messages are covered by the snapshot. */
  post(message: HostToWebview): void {
    if (!this.ready || this.isDisposed) return;
    void this.panel.webview.postMessage(message);
  }

  /** Asks the webview what it shows. Resolves with an empty view if it does not answer in time. */
  async probe(): Promise<PanelView> {
    // Before `ready` nothing can answer; the caller polls again.
    if (!this.ready) return emptyView();
    const reply = await this.probes.request((requestId) => this.post({ type: 'probe', requestId }), PROBE_TIMEOUT_MS);
    return reply?.view ?? emptyView();
  }

  private receive(raw: unknown): void {
    const message = asWebviewMessage(raw);
    if (!message) return; // Unknown or malformed: ignored on purpose.
    if (message.type === 'ready') {
      this.ready = true;
      this.post(this.source.snapshot());
      const draft = draftStore?.draft();
      if (draft !== undefined) this.post({ type: 'restoreDraft', text: draft });
      if (this.focusWhenReady) {
        this.focusWhenReady = false;
        this.post({ type: 'focusInput' });
      }
      for (const text of this.draftAdditions.splice(0)) this.post({ type: 'addToDraft', text });
      return;
    }
    if (message.type === 'draft') {
      draftStore?.keepDraft(message.text);
      return;
    }
    if (message.type === 'probeResult') {
      this.probes.settle(message);
      return;
    }
    this.source.handleMessage(message, this);
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = randomBytes(18).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'chat.css'));
    const icons = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'codicons.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `img-src ${webview.cspSource}`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      "connect-src 'none'",
      "form-action 'none'",
      "base-uri 'none'",
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${icons}">
<link rel="stylesheet" href="${style}">
<title>Chat Room</title>
</head>
<body>
<div id="root"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }
}

function emptyView(): PanelView {
  return {
    messages: [],
    systemLines: [],
    members: [],
    memberCountLabel: '',
    connectionText: '',
    actions: [],
    composerEnabled: false,
    composerNotice: '',
    byteCounter: '',
    pendingTexts: [],
    newMessagesMarkerVisible: false,
    draft: '',
  };
}
