import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { applyCompletion, completionItems, completionQueryAt, type CompletionQuery, type CompletionSources } from '../completion';
import type { ComposerState } from '../store';
import { CompletionList, completionOptionId } from './CompletionList';
import { Icon } from './Icon';

interface Props {
  composer: ComposerState;
  /** Whether messages can be queued: in a room, or on the way back to it. */
  inRoom: boolean;
  maxTextBytes: number;
  /** Who and what `@`, `#` and `/` complete. */
  completionSources: CompletionSources;
  onType(text: string): void;
  onSend(): void;
}

const COMPLETION_LIST_ID = 'completions';

const encoder = new TextEncoder();

/** Size in UTF-8 bytes, as the server measures a message. */
export function textBytes(text: string): number {
  return text ? encoder.encode(text).length : 0;
}

/**
 * The message box: Enter sends, Shift+Enter is a new line. Out of a room it
 * takes no input. A byte counter shows once a message nears the limit, and a
 * refusal stays beside the box, with the text, until the text changes.
 */
export function Composer({ composer, inRoom, maxTextBytes, completionSources, onType, onSend }: Props) {
  const input = useRef<HTMLTextAreaElement>(null);
  // Where the caret is, as far as completion cares; Escape hides the list until the query changes.
  const [caret, setCaret] = useState(-1);
  const [dismissed, setDismissed] = useState<string | undefined>(undefined);
  const [selected, setSelected] = useState(0);
  const caretAfterCompletion = useRef<number | undefined>(undefined);

  const query: CompletionQuery | undefined = inRoom && caret >= 0 ? completionQueryAt(composer.draft, caret) : undefined;
  const queryKey = query ? `${query.kind}:${query.start}:${query.typed}` : undefined;
  const items = query && queryKey !== dismissed ? completionItems(query, completionSources) : [];
  const open = items.length > 0;
  const active = Math.min(selected, Math.max(0, items.length - 1));

  useLayoutEffect(() => setSelected(0), [queryKey]);
  useLayoutEffect(() => {
    const element = input.current;
    if (!element || caretAfterCompletion.current === undefined) return;
    element.setSelectionRange(caretAfterCompletion.current, caretAfterCompletion.current);
    caretAfterCompletion.current = undefined;
  }, [composer.draft]);

  const noteCaret = () => setCaret(input.current && input.current.selectionStart === input.current.selectionEnd ? input.current.selectionStart : -1);
  const pick = (index: number) => {
    const item = items[index];
    if (!query || !item) return;
    const next = applyCompletion(composer.draft, query, item);
    caretAfterCompletion.current = next.caret;
    setCaret(next.caret);
    onType(next.text);
  };

  useLayoutEffect(() => {
    if (composer.focusRequest > 0) input.current?.focus();
  }, [composer.focusRequest]);

  useLayoutEffect(() => {
    const element = input.current;
    if (!element) return;
    element.style.height = 'auto';
    element.style.height = `${Math.min(element.scrollHeight, 200)}px`;
  }, [composer.draft]);

  /** The list's keys: arrows move, Enter or Tab picks (Enter on a command typed in full runs it), Escape closes. True when the key was the list's. */
  function onCompletionKey(key: string, shift: boolean): boolean {
    switch (key) {
      case 'ArrowDown':
        setSelected((active + 1) % items.length);
        return true;
      case 'ArrowUp':
        setSelected((active - 1 + items.length) % items.length);
        return true;
      case 'Enter':
      case 'Tab':
        if (shift || (key === 'Enter' && items[active]?.finished)) return false;
        pick(active);
        return true;
      case 'Escape':
        setDismissed(queryKey);
        return true;
      default:
        return false;
    }
  }

  const bytes = textBytes(composer.draft);
  const near = inRoom && bytes >= maxTextBytes * 0.75;
  return (
    <form
      id="composer"
      class="composer"
      onSubmit={(event) => {
        event.preventDefault();
        onSend();
        input.current?.focus();
      }}
    >
      {open && <CompletionList id={COMPLETION_LIST_ID} items={items} selected={active} onPick={pick} />}
      <div class="composer-row">
        <label for="input" class="visually-hidden">
          Message
        </label>
        <textarea
          id="input"
          ref={input}
          class="input"
          rows={2}
          value={composer.draft}
          disabled={!inRoom}
          placeholder={inRoom ? 'Message (Enter to send, Shift+Enter for a new line)' : 'Join a room to write here'}
          aria-describedby="composer-hint composer-notice byte-count"
          aria-autocomplete="list"
          aria-controls={open ? COMPLETION_LIST_ID : undefined}
          aria-expanded={open}
          aria-activedescendant={open ? completionOptionId(COMPLETION_LIST_ID, active) : undefined}
          onInput={(event) => {
            onType(event.currentTarget.value);
            noteCaret();
          }}
          onKeyUp={(event) => {
            if (event.key === 'ArrowLeft' || event.key === 'ArrowRight' || event.key === 'Home' || event.key === 'End') noteCaret();
          }}
          onClick={noteCaret}
          onBlur={() => setCaret(-1)}
          onKeyDown={(event) => {
            if (open && !event.isComposing) {
              const handled = onCompletionKey(event.key, event.shiftKey);
              if (handled) {
                event.preventDefault();
                return;
              }
            }
            // Enter sends; Shift+Enter (and Enter while an IME is composing) is a new line.
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
              event.preventDefault();
              onSend();
            }
          }}
        />
        <button id="send" class="send" type="submit" aria-label="Send message" disabled={!inRoom}>
          <Icon name="send" />
          Send
        </button>
      </div>
      <div class="composer-status">
        <p id="composer-notice" class={composer.problem ? 'composer-notice problem' : 'composer-notice'} role="status" aria-live="polite">
          {composer.notice}
        </p>
        <span id="byte-count" class={bytes > maxTextBytes ? 'byte-count over' : 'byte-count'} hidden={!near}>
          {near ? `${bytes.toLocaleString('en-US')} / ${maxTextBytes.toLocaleString('en-US')} bytes` : ''}
        </span>
      </div>
      <p id="composer-hint" class="visually-hidden">
        Enter sends. Shift and Enter adds a new line.
      </p>
    </form>
  );
}
