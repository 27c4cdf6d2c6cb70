// The panel's real script (dist/webview.js, as packaged) and stylesheet in a
// real Chromium page of its own, with the extension host's side played by the
// test: it posts the host's messages and reads what the webview posted back.
// Quicker than a whole VS Code for what the webview alone decides (layout,
// collapsing, highlighting, completion, first paint); the suites with
// code-server cover the way through the extension host.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { ChatEntry, HostToWebview, SnapshotMessage, StatusView, WebviewToHost } from '../../shared/webviewMessages';
import { PANEL_STYLESHEETS } from '../../shared/panelStylesheets';
import { repoRoot } from '../support/codeServerHost';

/** The conversation fields of a snapshot for one room over protocol 1: no list, no replies, edits or paging. */
export const ONE_ROOM_OF_PROTOCOL_1 = { conversations: [], activeKey: 'lobby', features: { v2: false, owner: false }, hasOlder: false, lastRead: 0, typing: [], roomNames: [] } satisfies Partial<SnapshotMessage>;

export const IN_LOBBY: StatusView = { connection: { kind: 'connected', address: '127.0.0.1:33000' }, me: 'bob', room: 'lobby', members: ['alice', 'bob', 'carol'], memberCount: 3, inRoom: true };

export class PanelPage {
  private constructor(readonly page: Page) {}

  /**
   * Opens the panel's page. `kept` is what the workbench would have kept for
   * the webview (its vscode.setState), to start from.
   */
  static async open(browser: Browser, kept?: unknown, viewport = { width: 900, height: 700 }): Promise<PanelPage> {
    const page = await browser.newPage({ viewport });
    const root = repoRoot();
    // The real panel's stylesheets but the icon font, which a page of its own cannot reach by the same path.
    const css = PANEL_STYLESHEETS.filter((parts) => parts[0] === 'media')
      .map((parts) => readFileSync(join(root, ...parts), 'utf8'))
      .join('\n');
    await page.setContent(`<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"><style>${css}</style></head><body><div id="root"></div></body></html>`);
    await page.evaluate(`(() => {
      window.__posted = [];
      window.__kept = ${JSON.stringify(kept ?? null)} ?? undefined;
      // Registered before the panel's own listener, so it hears each message first: when it arrived, and
      // how long its data took to read (a posted message is copied, and decoded on first use).
      window.addEventListener('message', (event) => {
        window.__arrivedAt = performance.now();
        void event.data;
        window.__decodedAt = performance.now();
      });
      window.acquireVsCodeApi = () => ({
        postMessage: (message) => window.__posted.push(message),
        getState: () => window.__kept,
        setState: (state) => { window.__kept = state; },
      });
    })()`);
    await page.addScriptTag({ content: readFileSync(join(root, 'dist', 'webview.js'), 'utf8') });
    const panel = new PanelPage(page);
    if (!(await panel.posted()).some((message) => message.type === 'ready')) throw new Error('the webview did not say ready');
    return panel;
  }

  /** Delivers a message from the host, as VS Code does (a `message` event on the window). */
  async post(message: HostToWebview): Promise<void> {
    await this.page.evaluate(`window.postMessage(${JSON.stringify(message)}, '*')`);
    await this.page.waitForTimeout(30);
  }

  async snapshot(entries: ChatEntry[], status: StatusView = IN_LOBBY, historyLimit = 10_000): Promise<void> {
    await this.post({ type: 'snapshot', status, entries, pending: [], historyLimit, maxTextBytes: 4096, ...ONE_ROOM_OF_PROTOCOL_1 });
  }

  /** Everything the webview posted to the host so far. */
  async posted(): Promise<WebviewToHost[]> {
    return (await this.page.evaluate('window.__posted')) as WebviewToHost[];
  }

  /** What the workbench keeps for the webview (its vscode.setState). */
  async kept(): Promise<unknown> {
    return this.page.evaluate('window.__kept ?? null');
  }

  async close(): Promise<void> {
    await this.page.close();
  }
}
