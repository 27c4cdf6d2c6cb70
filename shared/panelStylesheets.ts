/**
 * The chat's stylesheets, in the order the webview loads them (each a path in
 * the extension's folder). The panel's page and the UI tests that load the
 * panel's script on a page of their own read this one list, so a page under
 * test is laid out as the real one is.
 */
export const PANEL_STYLESHEETS: readonly (readonly string[])[] = [
  ['dist', 'codicons.css'],
  ['media', 'chat.css'],
  ['media', 'conversations.css'],
];
