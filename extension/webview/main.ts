/**
 * The chat panel's script. It draws what the host sends (shared/webviewMessages.ts)
 * and posts back what the person does. Everything a stranger wrote goes through
 * markdown-it with HTML off, then DOMPurify, then our own link rules, so it can
 * only ever become inert text, formatting, http(s) links and code.
 */
import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';
import { nameKey } from '../../shared/names';
import type {
  ChatEntry,
  ConnectionView,
  HostToWebview,
  MessageEntry,
  PanelView,
  PendingView,
  PresenceEntry,
  ServerOffer,
  StatusView,
  WebviewToHost,
} from '../../shared/webviewMessages';

interface VsCodeApi {
  postMessage(message: WebviewToHost): void;
  getState(): PersistedState | undefined;
  setState(state: PersistedState): void;
}
interface PersistedState {
  draft: string;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the panel page`);
  return found as T;
}

const roomTitle = element<HTMLHeadingElement>('room-title');
const connectionBar = element<HTMLDivElement>('connection');
const messageList = element<HTMLOListElement>('messages');
const newMessagesButton = element<HTMLButtonElement>('new-messages');
const membersHeading = element<HTMLHeadingElement>('members-heading');
const memberList = element<HTMLUListElement>('member-list');
const composer = element<HTMLFormElement>('composer');
const input = element<HTMLTextAreaElement>('input');
const sendButton = element<HTMLButtonElement>('send');
const composerNotice = element<HTMLParagraphElement>('composer-notice');
const byteCount = element<HTMLSpanElement>('byte-count');

// ---------------------------------------------------------------- rendering text safely

const markdown = new MarkdownIt({ html: false, linkify: true, breaks: true, typographer: false });
// Images would fetch from anywhere; the CSP blocks them too, but they should not even be asked for.
markdown.disable(['image']);
// markdown-it already refuses javascript: and friends; we go further and allow only the web.
markdown.validateLink = (url: string) => /^https?:\/\//i.test(url.trim());

const ALLOWED_TAGS = ['p', 'br', 'strong', 'em', 's', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span'];

/** Bidi controls that could reorder a line to disguise it; shown as visible codes instead. */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

function neutraliseBidi(text: string): string {
  return text.replace(BIDI_CONTROLS, (char) => `⟨U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}⟩`);
}

/** `src/app.ts:42` style references, opened in the receiver's workspace. */
const PATH_REFERENCE = /(^|[\s(["'`])((?:[\w.-]+\/)*[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]*):(\d{1,7})\b/g;

function renderMessageBody(text: string): DocumentFragment {
  const html = markdown.render(neutraliseBidi(text));
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ['href', 'class'],
    ALLOWED_URI_REGEXP: /^https?:\/\//i,
    RETURN_DOM_FRAGMENT: true,
  }) as DocumentFragment;
  for (const anchor of fragment.querySelectorAll('a')) {
    const href = anchor.getAttribute('href') ?? '';
    if (!/^https?:\/\//i.test(href)) {
      anchor.replaceWith(document.createTextNode(anchor.textContent ?? ''));
      continue;
    }
    anchor.title = href;
    anchor.rel = 'noreferrer noopener';
  }
  linkPathReferences(fragment);
  for (const pre of fragment.querySelectorAll('pre')) {
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'copy-code';
    copy.textContent = 'Copy';
    copy.setAttribute('aria-label', 'Copy code block');
    pre.before(copy);
    const wrapper = document.createElement('div');
    wrapper.className = 'code-block';
    copy.before(wrapper);
    wrapper.append(copy, pre);
  }
  return fragment;
}

function linkPathReferences(root: DocumentFragment): void {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const textNodes: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if ((node.parentElement?.closest('a, pre') ?? null) === null) textNodes.push(node as Text);
  }
  for (const node of textNodes) {
    const text = node.data;
    PATH_REFERENCE.lastIndex = 0;
    if (!PATH_REFERENCE.test(text)) continue;
    PATH_REFERENCE.lastIndex = 0;
    const pieces = document.createDocumentFragment();
    let last = 0;
    for (let match = PATH_REFERENCE.exec(text); match; match = PATH_REFERENCE.exec(text)) {
      const start = match.index + match[1].length;
      pieces.append(text.slice(last, start));
      const link = document.createElement('a');
      link.href = '#';
      link.className = 'path-link';
      link.dataset.path = match[2];
      link.dataset.line = match[3];
      link.textContent = `${match[2]}:${match[3]}`;
      link.title = `Open ${match[2]} at line ${match[3]}`;
      pieces.append(link);
      last = start + link.textContent.length;
    }
    pieces.append(text.slice(last));
    node.replaceWith(pieces);
  }
}

// ---------------------------------------------------------------- state

let me: string | undefined;
let historyLimit = 500;
let maxTextBytes = 4096;
/** Whether messages can be queued: in a room, or on the way back to it. */
let inRoom = false;
let pendingIds = new Set<string>();
let connection: ConnectionView = { kind: 'idle' };
let serverOffer: ServerOffer | undefined;
let countdownTimer: number | undefined;

function formatTime(ts: number): { short: string; full: string; iso: string } {
  const date = new Date(ts);
  return {
    short: date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
    full: date.toLocaleString(),
    iso: date.toISOString(),
  };
}

function timeElement(ts: number): HTMLTimeElement {
  const time = document.createElement('time');
  const formatted = formatTime(ts);
  time.dateTime = formatted.iso;
  time.textContent = formatted.short;
  time.title = formatted.full;
  return time;
}

function isNearBottom(): boolean {
  return messageList.scrollHeight - messageList.scrollTop - messageList.clientHeight < 48;
}

function scrollToBottom(): void {
  messageList.scrollTop = messageList.scrollHeight;
  newMessagesButton.hidden = true;
}

/** Entries go before the pending messages, which always stay at the bottom. */
function insertEntryElement(item: HTMLLIElement): void {
  const firstPending = messageList.querySelector('li.pending-only');
  messageList.insertBefore(item, firstPending);
}

function lastEntryElement(): Element | null {
  const items = messageList.querySelectorAll(':scope > li:not(.pending-only)');
  return items.length ? items[items.length - 1] : null;
}

function messageElement(entry: MessageEntry): HTMLLIElement {
  const item = document.createElement('li');
  item.className = entry.mine ? 'message mine' : 'message';
  item.dataset.seq = String(entry.seq);
  item.dataset.from = entry.from;
  if (entry.id) item.dataset.id = entry.id;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = entry.mine ? `${entry.from} (you)` : entry.from;
  meta.append(from, timeElement(entry.ts));
  if (entry.mine) {
    const state = document.createElement('span');
    state.className = 'send-state';
    meta.append(state);
  }
  const body = document.createElement('div');
  body.className = 'body';
  body.dataset.text = entry.text;
  body.append(renderMessageBody(entry.text));
  item.append(meta, body);
  if (entry.mine) updateSendState(item);
  return item;
}

function updateSendState(item: HTMLElement): void {
  const state = item.querySelector('.send-state');
  if (!state) return;
  const pending = item.dataset.id !== undefined && pendingIds.has(item.dataset.id);
  item.classList.toggle('pending', pending);
  state.textContent = pending ? 'sending…' : 'sent';
}

function presenceText(entry: PresenceEntry): string {
  if (entry.kind === 'joined') return `${entry.name} joined`;
  switch (entry.reason) {
    case 'lost':
      return `${entry.name} lost connection`;
    case 'kicked':
      return `${entry.name} was removed`;
    case 'shutdown':
      return `${entry.name} left (server shut down)`;
    default:
      return `${entry.name} left`;
  }
}

/** Rows kept in a folded run of arrivals and departures; the summary still counts them all. */
const PRESENCE_ROWS_KEPT = 50;

interface PresenceLine {
  text: string;
  ts: number;
}

/**
 * Adds a join/leave line, folding it into the run of arrivals and departures
 * just above if there is one. Only such runs fold (they carry the `presence`
 * class): other quiet lines, such as a "Not sent" notice, stay as they are.
 */
function appendPresence(entry: PresenceEntry): void {
  const line = { text: presenceText(entry), ts: entry.ts };
  const previous = lastEntryElement();
  if (previous instanceof HTMLLIElement && previous.classList.contains('presence')) {
    const lines = (JSON.parse(previous.dataset.lines ?? '[]') as PresenceLine[]).concat(line).slice(-PRESENCE_ROWS_KEPT);
    drawPresenceRun(previous, lines, Number(previous.dataset.count ?? lines.length - 1) + 1);
    return;
  }
  const item = document.createElement('li');
  item.className = 'system presence';
  drawPresenceRun(item, [line], 1);
  insertEntryElement(item);
}

function drawPresenceRun(item: HTMLLIElement, lines: PresenceLine[], count: number): void {
  item.dataset.lines = JSON.stringify(lines);
  item.dataset.count = String(count);
  item.replaceChildren();
  if (count === 1) {
    const text = document.createElement('span');
    text.className = 'system-text';
    text.textContent = lines[0].text;
    item.append(text, ' ', timeElement(lines[0].ts));
    return;
  }
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  const shown = lines.slice(-3).map((line) => line.text).join(', ');
  summary.textContent = count > 3 ? `${count} arrivals and departures: … ${shown}` : `${count} arrivals and departures: ${shown}`;
  const list = document.createElement('ul');
  for (const line of lines) {
    const row = document.createElement('li');
    row.append(line.text, ' ', timeElement(line.ts));
    list.append(row);
  }
  details.append(summary, list);
  item.append(details);
}

function appendEntries(entries: ChatEntry[], forceScroll: boolean): void {
  const stick = forceScroll || isNearBottom();
  let othersWrote = false;
  for (const entry of entries) {
    if (entry.kind === 'message') {
      // A pending copy of our own message gives way to the real one.
      if (entry.id) messageList.querySelector(`li.pending-only[data-id="${CSS.escape(entry.id)}"]`)?.remove();
      insertEntryElement(messageElement(entry));
      if (!entry.mine) othersWrote = true;
    } else {
      appendPresence(entry);
    }
  }
  trimHistory();
  if (stick || entries.some((entry) => entry.kind === 'message' && entry.mine)) scrollToBottom();
  else if (othersWrote) newMessagesButton.hidden = false;
}

function trimHistory(): void {
  const items = messageList.querySelectorAll(':scope > li:not(.pending-only)');
  for (let i = 0; i < items.length - historyLimit; i++) items[i].remove();
}

function drawPending(pending: PendingView[]): void {
  pendingIds = new Set(pending.map((entry) => entry.id));
  for (const item of messageList.querySelectorAll<HTMLLIElement>('li.message.mine')) updateSendState(item);
  for (const item of messageList.querySelectorAll<HTMLLIElement>('li.pending-only')) {
    if (!pendingIds.has(item.dataset.id ?? '')) item.remove();
  }
  for (const entry of pending) {
    const selector = `li[data-id="${CSS.escape(entry.id)}"]`;
    if (messageList.querySelector(selector)) continue;
    const item = messageElement({ kind: 'message', seq: 0, from: me ?? 'you', text: entry.text, ts: entry.createdAt, id: entry.id, mine: true });
    item.classList.add('pending-only');
    messageList.append(item);
  }
}

function drawStatus(status: StatusView): void {
  me = status.me;
  connection = status.connection;
  serverOffer = status.serverOffer;
  roomTitle.textContent = status.room ? `# ${status.room}` : 'Chat Room';
  const members = [...status.members].sort((a, b) => a.localeCompare(b));
  const total = Math.max(status.memberCount, members.length);
  membersHeading.textContent = `Members (${total})`;
  const items = members.map((name) => {
    const item = document.createElement('li');
    item.textContent = me !== undefined && nameKey(name) === nameKey(me) ? `${name} (you)` : name;
    return item;
  });
  // A big room's welcome names only some members; the count is still the whole room.
  if (total > members.length) {
    const more = document.createElement('li');
    more.className = 'more-members';
    more.textContent = `and ${total - members.length} more`;
    items.push(more);
  }
  memberList.replaceChildren(...items);
  setInRoom(status.inRoom);
  drawConnection();
}

/** Out of a room the message box takes no input: nothing can be queued for a room you are not in. */
function setInRoom(value: boolean): void {
  inRoom = value;
  input.disabled = !value;
  sendButton.disabled = !value;
  input.placeholder = value ? 'Message (Enter to send, Shift+Enter for a new line)' : 'Join a room to write here';
  if (!value) showNotice('');
  updateByteCount();
}

function drawConnection(): void {
  window.clearInterval(countdownTimer);
  countdownTimer = undefined;
  connectionBar.className = `connection ${connection.kind}`;
  const text = document.createElement('span');
  const parts: (HTMLElement | string)[] = [text];
  switch (connection.kind) {
    case 'idle':
      text.textContent = 'Not in a room.';
      parts.push(actionButton('Join Room', { type: 'join' }));
      break;
    case 'connecting':
      text.textContent = `Connecting to ${connection.address}…`;
      break;
    case 'connected':
      text.textContent = me ? `Connected to ${connection.address} as ${me}` : `Connected to ${connection.address}`;
      break;
    case 'reconnecting': {
      const retryAt = connection.retryAt;
      const reason = connection.reason;
      const down = serverOffer === 'restart' ? ' The chat server on this machine has stopped.' : serverOffer === 'start' ? ' The chat server on this machine is not running.' : '';
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        text.textContent = `Connection lost (${reason})${down} Reconnecting in ${seconds} s…`;
      };
      tick();
      countdownTimer = window.setInterval(tick, 1000);
      // Someone in the room is offered the server back, never "Join".
      if (serverOffer) parts.push(actionButton(serverOffer === 'restart' ? 'Restart Server' : 'Start Server', { type: 'startServer' }, true));
      parts.push(actionButton('Reconnect Now', { type: 'reconnect' }));
      break;
    }
    case 'disconnected':
      text.textContent = connection.reason.startsWith('You ') ? connection.reason : `Disconnected: ${connection.reason}`;
      parts.push(actionButton('Join Room', { type: 'join' }, true));
      break;
  }
  connectionBar.replaceChildren(...parts);
}

function actionButton(label: string, message: WebviewToHost, primary = false): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = primary ? 'action primary' : 'action';
  button.textContent = label;
  button.addEventListener('click', () => vscode.postMessage(message));
  return button;
}

// ---------------------------------------------------------------- messages from the host

function describe(): PanelView {
  return {
    messages: [...messageList.querySelectorAll<HTMLLIElement>('li.message')].map((item) => ({
      from: item.dataset.from ?? '',
      text: item.querySelector<HTMLElement>('.body')?.dataset.text ?? '',
      mine: item.classList.contains('mine'),
      state: !item.classList.contains('mine') ? 'received' : item.classList.contains('pending') ? 'pending' : 'sent',
      html: item.querySelector('.body')?.innerHTML ?? '',
    })),
    systemLines: [...messageList.querySelectorAll<HTMLLIElement>('li.system')].map((item) => item.textContent ?? ''),
    members: [...memberList.querySelectorAll('li:not(.more-members)')].map((item) => item.textContent ?? ''),
    memberCountLabel: membersHeading.textContent ?? '',
    connectionText: connectionBar.textContent ?? '',
    actions: [...connectionBar.querySelectorAll('button')].map((button) => button.textContent ?? ''),
    composerEnabled: !input.disabled,
    composerNotice: composerNotice.textContent ?? '',
    byteCounter: byteCount.hidden ? '' : (byteCount.textContent ?? ''),
    pendingTexts: [...messageList.querySelectorAll<HTMLLIElement>('li.pending-only .body')].map((body) => body.dataset.text ?? ''),
    newMessagesMarkerVisible: !newMessagesButton.hidden,
    draft: input.value,
  };
}

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const message = event.data;
  switch (message.type) {
    case 'snapshot':
      historyLimit = message.historyLimit;
      maxTextBytes = message.maxTextBytes;
      drawStatus(message.status);
      messageList.replaceChildren();
      pendingIds = new Set(message.pending.map((entry) => entry.id));
      appendEntries(message.entries, true);
      drawPending(message.pending);
      scrollToBottom();
      break;
    case 'append':
      appendEntries(message.entries, false);
      break;
    case 'status':
      drawStatus(message.status);
      break;
    case 'outbox':
      drawPending(message.pending);
      break;
    case 'sendFailed': {
      messageList.querySelector(`li.pending-only[data-id="${CSS.escape(message.id)}"]`)?.remove();
      const item = document.createElement('li');
      item.className = 'system failed';
      item.textContent = `Not sent (${message.reason}): ${message.text.slice(0, 200)}`;
      insertEntryElement(item);
      if (!input.value) {
        input.value = message.text;
        saveDraft();
        resizeInput();
        updateByteCount();
      }
      break;
    }
    case 'restoreDraft':
      // The host's copy is the newest unless the person has typed since this page loaded.
      if (!typedSinceLoad && input.value !== message.text) {
        input.value = message.text;
        vscode.setState({ draft: input.value });
        resizeInput();
        updateByteCount();
      }
      break;
    case 'sendResult':
      settleSend(message.inReplyTo, message.accepted, message.reason);
      break;
    case 'focusInput':
      input.focus();
      break;
    case 'probe':
      vscode.postMessage({ type: 'probeResult', requestId: message.requestId, view: describe() });
      break;
  }
});

// ---------------------------------------------------------------- what the person does

let nextRequestId = 1;
/** The send waiting for the host's answer: its text stays in the box until the host takes it. */
let awaitingSend: { requestId: number; text: string; timer: number } | undefined;
/** Past this the host has not answered; the box is usable again (nothing was cleared). */
const SEND_ANSWER_TIMEOUT_MS = 5_000;

const encoder = new TextEncoder();

function send(): void {
  const text = input.value;
  if (!text.trim() || awaitingSend) return;
  if (!inRoom) return showNotice('You are not in a room. Join one to send this.', true);
  const bytes = encoder.encode(text).length;
  if (bytes > maxTextBytes) {
    return showNotice(`This message is ${bytes.toLocaleString('en-US')} bytes; a message may be at most ${maxTextBytes.toLocaleString('en-US')}. Shorten it or split it.`, true);
  }
  const requestId = nextRequestId++;
  const timer = window.setTimeout(() => settleSend(requestId, false, 'Chat Room did not answer; your message is still here. Try again.'), SEND_ANSWER_TIMEOUT_MS);
  awaitingSend = { requestId, text, timer };
  vscode.postMessage({ type: 'send', text, requestId });
}

/**
 * The host took the message (it is in the outbox now) or refused it. Only a
 * taken message leaves the box; a refused one stays, with the reason beside it.
 */
function settleSend(requestId: number, accepted: boolean, reason: string | undefined): void {
  if (!awaitingSend || awaitingSend.requestId !== requestId) return;
  const { text, timer } = awaitingSend;
  awaitingSend = undefined;
  window.clearTimeout(timer);
  if (!accepted) {
    showNotice(reason ?? 'The message was not sent.', true);
    return;
  }
  // Whatever was typed after Enter (while the host answered) stays.
  if (input.value.startsWith(text)) input.value = input.value.slice(text.length).replace(/^\n/, '');
  showNotice('');
  saveDraft();
  resizeInput();
  updateByteCount();
}

function showNotice(text: string, problem = false): void {
  composerNotice.textContent = text;
  composerNotice.classList.toggle('problem', problem && text !== '');
}

/** Shows the size in bytes once a message nears the limit, so nobody types past it unawares. */
function updateByteCount(): void {
  const bytes = input.value ? encoder.encode(input.value).length : 0;
  const near = inRoom && bytes >= maxTextBytes * 0.75;
  byteCount.hidden = !near;
  byteCount.textContent = near ? `${bytes.toLocaleString('en-US')} / ${maxTextBytes.toLocaleString('en-US')} bytes` : '';
  byteCount.classList.toggle('over', bytes > maxTextBytes);
}

let typedSinceLoad = false;
let draftTimer: number | undefined;
const DRAFT_POST_DELAY_MS = 150;

function saveDraft(): void {
  vscode.setState({ draft: input.value });
  // The host keeps a copy too (see RestoreDraftMessage); posted after a short pause, not per keystroke.
  window.clearTimeout(draftTimer);
  draftTimer = window.setTimeout(() => vscode.postMessage({ type: 'draft', text: input.value }), DRAFT_POST_DELAY_MS);
}

function resizeInput(): void {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

input.addEventListener('keydown', (event) => {
  // Enter sends; Shift+Enter (and Enter while an IME is composing) is a new line.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
input.addEventListener('input', () => {
  typedSinceLoad = true;
  // A refusal was about the text as it was; once changed, the reason no longer holds.
  if (composerNotice.classList.contains('problem')) showNotice('');
  saveDraft();
  resizeInput();
  updateByteCount();
});
composer.addEventListener('submit', (event) => {
  event.preventDefault();
  send();
  input.focus();
});

messageList.addEventListener('scroll', () => {
  if (isNearBottom()) newMessagesButton.hidden = true;
});
newMessagesButton.addEventListener('click', () => {
  scrollToBottom();
  input.focus();
});

/**
 * Links open through the host, once: VS Code's own webview script also opens
 * any link whose click reaches the window, so the click stops here.
 */
function onLinkClick(event: MouseEvent): void {
  const target = event.target instanceof Element ? event.target : null;
  const anchor = target?.closest<HTMLAnchorElement>('a');
  if (!anchor) return;
  // Never let the webview navigate; the host decides what opens.
  event.preventDefault();
  event.stopPropagation();
  if (event.type === 'auxclick' && event.button !== 1) return;
  if (anchor.dataset.path && anchor.dataset.line) {
    vscode.postMessage({ type: 'openPath', path: anchor.dataset.path, line: Number(anchor.dataset.line) });
  } else {
    const href = anchor.getAttribute('href') ?? '';
    if (/^https?:\/\//i.test(href)) vscode.postMessage({ type: 'openLink', href });
  }
}

messageList.addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target : null;
  const copy = target?.closest<HTMLButtonElement>('button.copy-code');
  if (copy) {
    const code = copy.parentElement?.querySelector('pre')?.textContent ?? '';
    vscode.postMessage({ type: 'copy', text: code });
    copy.textContent = 'Copied';
    window.setTimeout(() => (copy.textContent = 'Copy'), 1500);
    return;
  }
  onLinkClick(event);
});
// A middle click is a click too, and VS Code's script would otherwise swallow it.
messageList.addEventListener('auxclick', onLinkClick);

input.value = vscode.getState()?.draft ?? '';
resizeInput();
setInRoom(false);
drawConnection();
vscode.postMessage({ type: 'ready' });
