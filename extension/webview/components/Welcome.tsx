import type { WebviewToHost } from '../../../shared/webviewMessages';
import { Icon } from './Icon';

/** What a new user sees before any room: what this is, and the three ways in. Nothing here is an error. */
export function Welcome({ post }: { post(message: WebviewToHost): void }) {
  return (
    <section id="welcome" class="welcome" aria-labelledby="welcome-heading">
      <h2 id="welcome-heading">Welcome to Chat Room</h2>
      <p>Talk with your team without leaving the editor: rooms, direct messages, and code that keeps its place in the workspace.</p>
      <div class="welcome-actions">
        <button type="button" class="action primary" onClick={() => post({ type: 'startNewServer' })}>
          <Icon name="startServer" />
          Start a Server
        </button>
        <button type="button" class="action" onClick={() => post({ type: 'join' })}>
          <Icon name="join" />
          Join a Room
        </button>
        <button type="button" class="action" onClick={() => post({ type: 'pasteInvite' })}>
          <Icon name="invite" />
          Paste an Invite
        </button>
      </div>
    </section>
  );
}
