/**
 * The codicons the panel shows. Each class is written out whole, so the build
 * can find every one it needs in the bundle and ship only their rules
 * (dist/codicons.css, made by esbuild.mjs from @vscode/codicons).
 */
export const ICONS = {
  send: 'codicon-send',
  sent: 'codicon-check',
  sending: 'codicon-clock',
  reconnect: 'codicon-refresh',
  startServer: 'codicon-debug-start',
  restartServer: 'codicon-debug-restart',
  join: 'codicon-sign-in',
  newMessages: 'codicon-arrow-down',
  members: 'codicon-person',
  notSent: 'codicon-error',
  alert: 'codicon-warning',
  earlier: 'codicon-fold-up',
  showMore: 'codicon-chevron-down',
  showLess: 'codicon-chevron-up',
  addRoom: 'codicon-add',
  close: 'codicon-close',
  invite: 'codicon-link',
  reply: 'codicon-reply',
  react: 'codicon-smiley',
  edit: 'codicon-edit',
  delete: 'codicon-trash',
} as const;

export type IconName = keyof typeof ICONS;
