import { useLayoutEffect, useRef } from 'preact/hooks';
import type { MessageEntry, PendingView, WebviewToHost } from '../../../shared/webviewMessages';
import { COPIED_LABEL, COPY_LABEL, isWebLink, pathReferenceOf, renderMessageBody } from '../markdown';
import type { Conversation, PresenceLine, TimelineItem } from '../store';
import { Icon } from './Icon';
import { MessageExtras, ReplyQuote } from './MessageExtras';

interface Props {
  conversation: Conversation;
  me: string | undefined;
  newMessagesMarker: boolean;
  post(message: WebviewToHost): void;
  onNewMessagesMarker(visible: boolean): void;
  onMarkerClicked(): void;
}

/**
 * A live region that announces new messages: a `log`, as the list was before
 * it had components (Preact's types allow only list roles on an `ol`).
 */
const LIVE_LOG = { role: 'log' } as Record<string, string>;

/** Closer to the bottom than this counts as reading the newest messages. */
const NEAR_BOTTOM_PX = 48;

/**
 * The conversation: messages, folded arrivals and departures, notices, and
 * the outbox at the bottom. It stays at the bottom while the person reads
 * the newest messages; when others write below what is on screen, it shows
 * the "New messages" marker instead of moving.
 */
export function MessageList({ conversation, me, newMessagesMarker, post, onNewMessagesMarker, onMarkerClicked }: Props) {
  const list = useRef<HTMLOListElement>(null);
  // Where the person was before this render changed the list.
  const wasNearBottom = useRef(true);
  if (list.current) wasNearBottom.current = isNearBottom(list.current);

  const { lastAppend } = conversation;
  useLayoutEffect(() => {
    const element = list.current;
    if (!element) return;
    if (lastAppend.redraw || lastAppend.mineWrote || wasNearBottom.current) {
      element.scrollTop = element.scrollHeight;
      onNewMessagesMarker(false);
    } else if (lastAppend.othersWrote) {
      onNewMessagesMarker(true);
    }
  }, [lastAppend.serial]);

  const pendingIds = new Set(conversation.pending.map((entry) => entry.id));
  const shownIds = new Set(conversation.items.flatMap((item) => (item.kind === 'message' && item.entry.id ? [item.entry.id] : [])));

  return (
    <section class="conversation" aria-label="Conversation">
      <ol
        id="messages"
        ref={list}
        class="messages"
        {...LIVE_LOG}
        aria-live="polite"
        aria-relevant="additions"
        aria-label="Messages"
        tabIndex={0}
        onScroll={() => {
          if (list.current && isNearBottom(list.current)) onNewMessagesMarker(false);
        }}
        onClick={(event) => onListClick(event, post)}
        // A middle click is a click too, and VS Code's script would otherwise swallow it.
        onAuxClick={(event) => onLinkClick(event, post)}
      >
        {conversation.items.map((item) => (
          <Item key={item.key} item={item} pending={pendingIds} />
        ))}
        {/* A pending copy of our own message gives way to the real one. */}
        {conversation.pending
          .filter((entry) => !shownIds.has(entry.id))
          .map((entry) => (
            <PendingItem key={`pending-${entry.id}`} entry={entry} me={me} />
          ))}
      </ol>
      <button
        id="new-messages"
        class="new-messages"
        type="button"
        hidden={!newMessagesMarker}
        onClick={() => {
          if (list.current) list.current.scrollTop = list.current.scrollHeight;
          onMarkerClicked();
        }}
      >
        {'New messages '}
        <Icon name="newMessages" />
      </button>
    </section>
  );
}

function Item({ item, pending }: { item: TimelineItem; pending: ReadonlySet<string> }) {
  switch (item.kind) {
    case 'message':
      return <Message entry={item.entry} isPending={item.entry.id !== undefined && pending.has(item.entry.id)} />;
    case 'presence':
      return <PresenceRun lines={item.lines} count={item.count} />;
    case 'topic':
      return (
        <li class="system topic">
          <span class="system-text">{item.text}</span> <Time ts={item.ts} />
        </li>
      );
    case 'notice':
      return (
        <li class="system failed">
          <Icon name="notSent" />
          {item.text}
        </li>
      );
  }
}

function Message({ entry, isPending, extraClass = '' }: { entry: MessageEntry; isPending: boolean; extraClass?: string }) {
  const classes = ['message', entry.mine ? 'mine' : '', entry.mine && isPending ? 'pending' : '', extraClass].filter(Boolean).join(' ');
  return (
    <li class={classes} data-seq={String(entry.seq)} data-from={entry.from} data-id={entry.id}>
      <div class="meta">
        <span class="from">{entry.mine ? `${entry.from} (you)` : entry.from}</span>
        <Time ts={entry.ts} />
        {entry.mine && (
          <span class="send-state">
            <Icon name={isPending ? 'sending' : 'sent'} />
            {isPending ? 'sending…' : 'sent'}
          </span>
        )}
      </div>
      <ReplyQuote entry={entry} />
      <MessageBody text={entry.text} />
      <MessageExtras entry={entry} isPending={isPending} />
    </li>
  );
}

function PendingItem({ entry, me }: { entry: PendingView; me: string | undefined }) {
  return <Message entry={{ kind: 'message', seq: 0, from: me ?? 'you', text: entry.text, ts: entry.createdAt, id: entry.id, mine: true }} isPending extraClass="pending-only" />;
}

/** The rendered text; it goes through the Markdown-and-sanitiser boundary, and only when the text changes. */
function MessageBody({ text }: { text: string }) {
  const body = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    body.current?.replaceChildren(renderMessageBody(text));
  }, [text]);
  return <div class="body" data-text={text} ref={body} />;
}

function PresenceRun({ lines, count }: { lines: PresenceLine[]; count: number }) {
  if (count === 1) {
    return (
      <li class="system presence">
        <span class="system-text">{lines[0].text}</span> <Time ts={lines[0].ts} />
      </li>
    );
  }
  const shown = lines
    .slice(-3)
    .map((line) => line.text)
    .join(', ');
  return (
    <li class="system presence">
      <details>
        <summary>{count > 3 ? `${count} arrivals and departures: … ${shown}` : `${count} arrivals and departures: ${shown}`}</summary>
        <ul>
          {lines.map((line, index) => (
            <li key={index}>
              {line.text} <Time ts={line.ts} />
            </li>
          ))}
        </ul>
      </details>
    </li>
  );
}

function Time({ ts }: { ts: number }) {
  const date = new Date(ts);
  return (
    <time dateTime={date.toISOString()} title={date.toLocaleString()}>
      {date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}
    </time>
  );
}

function isNearBottom(element: HTMLElement): boolean {
  return element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_BOTTOM_PX;
}

function onListClick(event: MouseEvent, post: (message: WebviewToHost) => void): void {
  const target = event.target instanceof Element ? event.target : null;
  const copy = target?.closest<HTMLButtonElement>('button.copy-code');
  if (copy) {
    post({ type: 'copy', text: copy.parentElement?.querySelector('pre')?.textContent ?? '' });
    const label = copy.querySelector('.copy-label');
    if (label) {
      label.textContent = COPIED_LABEL;
      window.setTimeout(() => (label.textContent = COPY_LABEL), 1500);
    }
    return;
  }
  onLinkClick(event, post);
}

/**
 * Links open through the host, once: VS Code's own webview script also opens
 * any link whose click reaches the window, so the click stops here.
 */
function onLinkClick(event: MouseEvent, post: (message: WebviewToHost) => void): void {
  const target = event.target instanceof Element ? event.target : null;
  const anchor = target?.closest<HTMLAnchorElement>('a');
  if (!anchor) return;
  // Never let the webview navigate; the host decides what opens.
  event.preventDefault();
  event.stopPropagation();
  if (event.type === 'auxclick' && event.button !== 1) return;
  const reference = pathReferenceOf(anchor);
  if (reference) {
    post({ type: 'openPath', path: reference.path, line: reference.line });
    return;
  }
  const href = anchor.getAttribute('href') ?? '';
  if (isWebLink(href)) post({ type: 'openLink', href });
}
