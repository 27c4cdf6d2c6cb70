/**
 * The chat panel's script: one store (store.ts) holds what the panel shows,
 * components on Preact (components/) draw it, and the host's messages
 * (shared/webviewMessages.ts) become actions. Everything a stranger wrote is
 * rendered through markdown.ts, the panel's security boundary.
 */
import { render } from 'preact';
import { TYPING_MIN_INTERVAL_MS, typingRunEndedAt } from '../../shared/protocolV2';
import type { HostToWebview, SendResultMessage } from '../../shared/webviewMessages';
import { App } from './components/App';
import { textBytes } from './components/Composer';
import { HostChannel } from './hostChannel';
import { describePanel } from './probe';
import { slashCommand } from './slashCommands';
import { activeConversation, createStore, initialState, type Action } from './store';
import { lastOwnMessage, type V2Event } from './v2State';

const host = new HostChannel();
const store = createStore(initialState(host.keptDraft()));
const v2 = (event: V2Event) => store.dispatch({ type: 'v2', event });

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
  const command = slashCommand(text, store.state.v2.features, status.me);
  let outgoing = text;
  if (command && 'problem' in command) return store.dispatch({ type: 'notice', text: command.problem, problem: true });
  if (command && 'message' in command) {
    const message = command.message;
    // The server has the last word (a room's name, someone to write to, the owner's rights): what was typed stays until it is taken.
    if (message.type === 'setTopic' || message.type === 'kick' || message.type === 'joinRoom' || message.type === 'openDm') {
      store.dispatch({ type: 'sendStarted' });
      return store.dispatch(settled(text, await host.command(message)));
    }
    if (message.type === 'search') v2({ type: 'closeSearch' });
    host.post(message);
    store.dispatch({ type: 'typed', text: '' });
    return;
  }
  if (command && 'text' in command) outgoing = command.text;
  const editing = store.state.v2.editing;
  if (editing) {
    host.post({ type: 'edit', seq: editing.seq, text });
    v2({ type: 'cancelCompose' });
    store.dispatch({ type: 'typed', text: '' });
    return;
  }
  const bytes = textBytes(outgoing);
  if (bytes > maxTextBytes) {
    return store.dispatch({ type: 'notice', text: `This message is ${bytes.toLocaleString('en-US')} bytes; a message may be at most ${maxTextBytes.toLocaleString('en-US')}. Shorten it or split it.`, problem: true });
  }
  const replyTo = store.state.v2.replyTo?.seq;
  store.dispatch({ type: 'sendStarted' });
  const reply = await host.send(outgoing, replyTo);
  if (reply?.accepted) {
    v2({ type: 'cancelCompose' });
    // The message ends this typing run: the next one is signalled from a second after it.
    lastTypingSignal = typingRunEndedAt(Date.now());
  }
  store.dispatch(settled(text, reply));
}

/** The host's answer to what was typed: taken (it leaves the box) or refused (it stays, with the reason). */
function settled(text: string, reply: SendResultMessage | undefined): Action {
  return reply
    ? { type: 'sendSettled', text, accepted: reply.accepted, ...(reply.reason !== undefined ? { reason: reply.reason } : {}) }
    : { type: 'sendSettled', text, accepted: false, reason: 'Chat Room did not answer; your message is still here. Try again.' };
}

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const message = event.data;
  switch (message.type) {
    case 'snapshot':
      store.dispatch({ ...message, ...readUpToFor(message.status.room) });
      v2({ type: 'snapshot', snapshot: message });
      return;
    case 'append':
    case 'status':
    case 'outbox':
    case 'sendFailed':
    case 'restoreDraft':
    case 'focusInput':
    case 'addToDraft':
    case 'notice':
      store.dispatch(message);
      return;
    case 'conversations':
    case 'typing':
    case 'update':
    case 'searchResults':
      v2(message);
      return;
    case 'prepend':
      keepScrollPlace(() => v2(message));
      return;
    case 'reveal':
      reveal(message.seq);
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

/** Older history goes in above what the person reads; they stay where they were. */
function keepScrollPlace(change: () => void): void {
  const list = document.getElementById('messages');
  const fromBottom = list ? list.scrollHeight - list.scrollTop : 0;
  change();
  requestAnimationFrame(() => {
    if (list) list.scrollTop = list.scrollHeight - fromBottom;
  });
}

/** Goes to a message (a reply's original, a search hit) and marks it for a moment. */
function reveal(seq: number): void {
  const item = document.querySelector<HTMLElement>(`#messages li.message[data-seq="${seq}"]`);
  if (!item) return store.dispatch({ type: 'notice', text: 'That message is no longer kept in this room.', problem: false });
  item.scrollIntoView({ block: 'center' });
  item.classList.add('revealed');
  window.setTimeout(() => item.classList.remove('revealed'), 2_000);
}

/** Typing, at most once per 2 s (the server passes on no more); Up-arrow in an empty box edits our last message; Escape lets a reply or edit go. */
let lastTypingSignal = 0;
document.addEventListener('input', (event) => {
  if ((event.target as HTMLElement | null)?.id !== 'input' || !store.state.v2.features.v2) return;
  if (Date.now() - lastTypingSignal < TYPING_MIN_INTERVAL_MS) return;
  lastTypingSignal = Date.now();
  host.post({ type: 'typing' });
});
document.addEventListener(
  'keydown',
  (event) => {
    if ((event.target as HTMLElement | null)?.id !== 'input') return;
    const { v2: state, composer } = store.state;
    if (event.key === 'ArrowUp' && composer.draft === '' && state.features.v2 && !state.editing) {
      const last = lastOwnMessage(store.state);
      if (!last) return;
      event.preventDefault();
      v2({ type: 'edit', seq: last.seq });
    } else if (event.key === 'Escape' && (state.editing || state.replyTo)) {
      event.preventDefault();
      if (state.editing) store.dispatch({ type: 'typed', text: '' });
      v2({ type: 'cancelCompose' });
    }
  },
  true,
);

/** Scrolled to the top: the next older page, from the server. */
document.addEventListener(
  'scroll',
  (event) => {
    const list = event.target as HTMLElement | null;
    if (list?.id !== 'messages' || list.scrollTop > 40) return;
    const { hasOlder, loadingOlder, features } = store.state.v2;
    if (!features.v2 || !hasOlder || loadingOlder) return;
    v2({ type: 'loadingOlder' });
    host.post({ type: 'loadOlder' });
  },
  true,
);

render(<App store={store} post={(message) => host.post(message)} send={() => void send()} />, document.getElementById('root') as HTMLElement);
host.post({ type: 'ready' });
