import { useLayoutEffect, useRef } from 'preact/hooks';
import type { ComposerState } from '../store';
import { Icon } from './Icon';

interface Props {
  composer: ComposerState;
  /** Whether messages can be queued: in a room, or on the way back to it. */
  inRoom: boolean;
  maxTextBytes: number;
  onType(text: string): void;
  onSend(): void;
}

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
export function Composer({ composer, inRoom, maxTextBytes, onType, onSend }: Props) {
  const input = useRef<HTMLTextAreaElement>(null);

  useLayoutEffect(() => {
    if (composer.focusRequest > 0) input.current?.focus();
  }, [composer.focusRequest]);

  useLayoutEffect(() => {
    const element = input.current;
    if (!element) return;
    element.style.height = 'auto';
    element.style.height = `${Math.min(element.scrollHeight, 200)}px`;
  }, [composer.draft]);

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
          onInput={(event) => onType(event.currentTarget.value)}
          onKeyDown={(event) => {
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
