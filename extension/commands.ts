/** The extension's command ids, as package.json contributes them; extension.ts registers each one. */
export const Command = {
  startServer: 'chatRoom.startServer',
  stopServer: 'chatRoom.stopServer',
  join: 'chatRoom.join',
  leave: 'chatRoom.leave',
  openPanel: 'chatRoom.openPanel',
  openInEditor: 'chatRoom.openInEditor',
  sendSelection: 'chatRoom.sendSelection',
  copyInvite: 'chatRoom.copyInvite',
  showServerLog: 'chatRoom.showServerLog',
} as const;
