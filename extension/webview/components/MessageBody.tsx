import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { renderMessageBody } from '../markdown';
import { Icon } from './Icon';

/** Past this many lines a message starts collapsed. */
export const COLLAPSE_LINES = 14;
/** Past this many characters too (a long paragraph has few line breaks). */
export const COLLAPSE_CHARACTERS = 1_200;

/**
 * Whether a message is long enough to start collapsed. Judged from the text,
 * not by measuring the drawn body: measuring each message would lay out the
 * page once per message, and the list draws a hundred at a time.
 */
export function isLongMessage(text: string): boolean {
  if (text.length > COLLAPSE_CHARACTERS) return true;
  let lines = 1;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) if (++lines > COLLAPSE_LINES) return true;
  return false;
}

let bodySerial = 0;

/**
 * The rendered text; it goes through the Markdown-and-sanitiser boundary, and
 * only when the text changes. A long message shows its start behind
 * "Show more".
 */
export function MessageBody({ text }: { text: string }) {
  const body = useRef<HTMLDivElement>(null);
  const [id] = useState(() => `body-${++bodySerial}`);
  const [expanded, setExpanded] = useState(false);
  useLayoutEffect(() => {
    body.current?.replaceChildren(renderMessageBody(text));
  }, [text]);
  const long = isLongMessage(text);
  const collapsed = long && !expanded;
  return (
    <>
      <div id={id} class={collapsed ? 'body collapsed' : 'body'} data-text={text} ref={body} />
      {long && (
        <button type="button" class="action show-more" aria-expanded={expanded} aria-controls={id} onClick={() => setExpanded(!expanded)}>
          <Icon name={expanded ? 'showLess' : 'showMore'} />
          {expanded ? 'Show less' : 'Show more'}
        </button>
      )}
    </>
  );
}
