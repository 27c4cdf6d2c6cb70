/**
 * The chat panel's script: one store (store.ts) holds what the panel shows,
 * components on Preact (components/) draw it, and the host's messages
 * (shared/webviewMessages.ts) become actions. Everything a stranger wrote is
 * rendered through markdown.ts, the panel's security boundary.
 */
import { render } from 'preact';
import type { HostToWebview } from '../../shared/webviewMessages';
import { App } from './components/App';
import { textBytes } from './components/Composer';
import { HostChannel } from './hostChannel';
import { describePanel } from './probe';
import { activeConversation, createStore, initialState } from './store';

const host = new HostChannel();
const store = createStore(initialState(host.keptDraft()));

// The draft is kept wherever it changes from: typing, a send taken, a refused message given back.
let keptDraft = store.state.composer.draft;
store.subscribe(() => {
  const draft = store.state.composer.draft;
  if (draft === keptDraft) return;
  keptDraft = draft;
  host.keepDraft(draft);
});

// What the person has seen: everything this panel shows while it is on screen (a hidden
// panel is torn down, and its next snapshot marks what came in the meantime).
function keepWhatWasSeen(): void {
  const { status } = store.state;
  if (!status.room || document.visibilityState !== 'visible') return;
  const items = activeConversation(store.state).items;
  for (let at = items.length - 1; at >= 0; at--) {
    const item = items[at];
    if (item.kind === 'message') return host.keepReadUpTo(status.room, item.entry.seq);
  }
}
store.subscribe(keepWhatWasSeen);
document.addEventListener('visibilitychange', keepWhatWasSeen);

/** Enter: the host takes the message (it leaves the box) or refuses it (it stays, with the reason beside it). */
async function send(): Promise<void> {
  const { composer, status, maxTextBytes } = store.state;
  const text = composer.draft;
  if (!text.trim() || composer.sending) return;
  if (!status.inRoom) return store.dispatch({ type: 'notice', text: 'You are not in a room. Join one to send this.', problem: true });
  const bytes = textBytes(text);
  if (bytes > maxTextBytes) {
    return store.dispatch({ type: 'notice', text: `This message is ${bytes.toLocaleString('en-US')} bytes; a message may be at most ${maxTextBytes.toLocaleString('en-US')}. Shorten it or split it.`, problem: true });
  }
  store.dispatch({ type: 'sendStarted' });
  const reply = await host.send(text);
  store.dispatch(
    reply
      ? { type: 'sendSettled', text, accepted: reply.accepted, ...(reply.reason !== undefined ? { reason: reply.reason } : {}) }
      : { type: 'sendSettled', text, accepted: false, reason: 'Chat Room did not answer; your message is still here. Try again.' },
  );
}

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const message = event.data;
  switch (message.type) {
    case 'snapshot':
      store.dispatch({ ...message, ...readUpToFor(message.status.room) });
      return;
    case 'append':
    case 'status':
    case 'outbox':
    case 'sendFailed':
    case 'restoreDraft':
    case 'focusInput':
    case 'addToDraft':
      store.dispatch(message);
      return;
    case 'sendResult':
      host.settle(message);
      return;
    case 'probe':
      host.post({ type: 'probeResult', inReplyTo: message.requestId, view: describePanel(document) });
      return;
  }
});

function readUpToFor(room: string | undefined): { readUpTo?: number } {
  const seq = room ? host.readUpTo(room) : undefined;
  return seq === undefined ? {} : { readUpTo: seq };
}

render(<App store={store} post={(message) => host.post(message)} send={() => void send()} />, document.getElementById('root') as HTMLElement);
host.post({ type: 'ready' });
