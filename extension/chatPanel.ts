/**
 * A chat surface's host side: owns one webview (the view in the Panel, or an
 * editor tab), gives it a strict CSP page (the script draws the chat itself:
 * extension/webview/), and relays typed messages both ways
 * (shared/webviewMessages.ts), checking at run time what the webview posts.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { Disposable, toDisposable } from '../shared/disposable';
import type { StoredState } from './storedState';
import { RequestTracker } from '../shared/requestReply';
import { asWebviewMessage, type HostToWebview, type PanelView, type ProbeResultMessage, type SnapshotMessage, type WebviewToHost } from '../shared/webviewMessages';
import { PANEL_STYLESHEETS } from '../shared/panelStylesheets';

export const PANEL_VIEW_TYPE = 'chatRoom.panel';
/** The chat's view, in its own view container in the Panel (package.json). */
export const CHAT_VIEW_ID = 'chatRoom.view';
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
  /** The webview has drawn itself from the snapshot (and its kept draft). */
  onReady?(panel: ChatPanel): void;
}

/**
 * What a chat surface is drawn in: a webview view (in the Panel, or wherever
 * the person dragged it) or a webview panel (an editor tab). The surface
 * itself does not care which.
 */
export interface SurfaceHost {
  readonly webview: vscode.Webview;
  readonly visible: boolean;
  readonly onDidChangeVisibility: vscode.Event<void>;
  readonly onDidDispose: vscode.Event<void>;
  reveal(): void;
  setTitle(title: string): void;
  /** The view's badge (an editor tab shows the count in its title instead). */
  setBadge(count: number): void;
  readonly viewColumn: vscode.ViewColumn | undefined;
  dispose(): void;
}

/** A webview panel (an editor tab) as a surface host. */
export function panelHost(panel: vscode.WebviewPanel, extensionUri: vscode.Uri): SurfaceHost {
  panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'chat.svg');
  return {
    webview: panel.webview,
    get visible() {
      return panel.visible;
    },
    get viewColumn() {
      return panel.viewColumn;
    },
    onDidChangeVisibility: (listener) => panel.onDidChangeViewState(() => listener()),
    onDidDispose: panel.onDidDispose,
    reveal: () => panel.reveal(undefined, false),
    setTitle: (title) => (panel.title = title),
    setBadge: () => undefined,
    dispose: () => panel.dispose(),
  };
}

/** A webview view (the chat's home in the Panel) as a surface host. */
export function viewHost(view: vscode.WebviewView): SurfaceHost {
  return {
    webview: view.webview,
    get visible() {
      return view.visible;
    },
    viewColumn: undefined,
    onDidChangeVisibility: (listener) => view.onDidChangeVisibility(() => listener()),
    onDidDispose: view.onDidDispose,
    reveal: () => view.show(false),
    // The view keeps its name; the conversation goes beside it.
    setTitle: (title) => (view.description = title),
    // A badge of 0 clears it: the workbench keeps the last badge drawn when a view's badge is set to undefined
    // (its webview view never withdraws the activity), and draws no number for 0.
    setBadge: (count) => (view.badge = { value: count, tooltip: count > 0 ? `${count} unread` : '' }),
    // A view belongs to the workbench; there is nothing of ours to close.
    dispose: () => undefined,
  };
}

export class ChatPanel extends Disposable {
  private ready = false;
  private shownTitle = '';
  private shownBadge = 0;
  /** Put the focus in the message box once the webview is ready for it. */
  private focusWhenReady = false;
  /** Text for the message box that waits for the webview to be ready (a snapshot does not carry it). */
  private draftAdditions: string[] = [];
  private readonly probes = new RequestTracker<ProbeResultMessage>();
  private readonly disposeEmitter = this.register(new vscode.EventEmitter<void>());
  private readonly visibilityEmitter = this.register(new vscode.EventEmitter<boolean>());
  readonly onDidDispose = this.disposeEmitter.event;
  readonly onDidChangeVisibility = this.visibilityEmitter.event;

  /** Options every chat webview is created with (and restored panels are given again). */
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

  /** The chat as an editor tab, beside the editor in use. */
  static create(extensionUri: vscode.Uri, source: PanelSource, title: string): ChatPanel {
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, ChatPanel.webviewOptions(extensionUri));
    return new ChatPanel(panelHost(panel, extensionUri), extensionUri, source, 'tab');
  }

  constructor(
    readonly host: SurfaceHost,
    private readonly extensionUri: vscode.Uri,
    private readonly source: PanelSource,
    /** Where it lives: the view (Panel or side bar) or an editor tab. */
    readonly place: 'view' | 'tab',
  ) {
    super();
    host.webview.options = { enableScripts: true, localResourceRoots: ChatPanel.webviewOptions(extensionUri).localResourceRoots };
    host.webview.html = this.html();
    this.register(host.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)));
    this.register(
      host.onDidChangeVisibility(() => {
        // A hidden webview without retained context is torn down; it says `ready` again when shown.
        if (!host.visible) this.ready = false;
        this.visibilityEmitter.fire(host.visible);
      }),
    );
    this.register(
      host.onDidDispose(() => {
        this.disposeEmitter.fire();
        this.dispose();
      }),
    );
    this.register(toDisposable(() => this.probes.cancelAll()));
    this.register(toDisposable(() => host.dispose()));
  }

  get visible(): boolean {
    return this.host.visible;
  }

  get isReady(): boolean {
    return this.ready;
  }

  get title(): string {
    return this.shownTitle;
  }

  set title(title: string) {
    if (title === this.shownTitle) return;
    this.shownTitle = title;
    this.host.setTitle(title);
  }

  /** The editor column a tab stands in (a view has none). */
  get viewColumn(): vscode.ViewColumn | undefined {
    return this.host.viewColumn;
  }

  get badge(): number {
    return this.shownBadge;
  }

  set badge(count: number) {
    if (count === this.shownBadge) return;
    this.shownBadge = count;
    this.host.setBadge(count);
  }

  reveal(): void {
    this.host.reveal();
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
    void this.host.webview.postMessage(message);
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
      this.source.onReady?.(this);
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
    const webview = this.host.webview;
    const nonce = randomBytes(18).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const stylesheets = PANEL_STYLESHEETS.map((parts) => `<link rel="stylesheet" href="${webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, ...parts))}">`).join('\n');
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
${stylesheets}
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
    conversations: [],
    welcomeActions: [],
    typingText: '',
    extras: [],
    composeBanner: '',
    searchHits: [],
  };
}
