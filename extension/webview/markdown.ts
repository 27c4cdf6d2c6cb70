/**
 * The panel's security boundary: everything a stranger wrote becomes DOM only
 * through here. markdown-it renders it with HTML off, DOMPurify keeps a short
 * list of tags and attributes, and our own rules go further: links only to
 * http(s), bidi controls shown as codes instead of applied, and `path:line`
 * references turned into links that the host opens inside the workspace. What
 * comes out can only be inert text, formatting, those links and code blocks
 * (highlighted, each with Copy and Insert buttons).
 *
 * It needs a DOM (DOMPurify works on one) and nothing of the panel; the UI
 * suite runs its tests in a real browser (test/ui/markdown.test.ts).
 */
import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';
import { highlightCode } from './codeHighlight';

const markdown = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  typographer: false,
  // The highlighter's spans are sanitised below with the rest; what it cannot highlight markdown-it escapes.
  highlight: (code, language) => highlightCode(code, language.split(/\s/)[0] ?? '') ?? '',
});
// Images would fetch from anywhere; the CSP blocks them too, but they should not even be asked for.
markdown.disable(['image']);
// markdown-it already refuses javascript: and friends; we go further and allow only the web.
markdown.validateLink = (url: string) => WEB_LINK.test(url.trim());

const WEB_LINK = /^https?:\/\//i;

const ALLOWED_TAGS = ['p', 'br', 'strong', 'em', 's', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span'];

/** Bidi controls that could reorder a line to disguise it; shown as visible codes instead. */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

/** `src/app.ts:42` style references, opened in the receiver's workspace. */
const PATH_REFERENCE = /(^|[\s(["'`])((?:[\w.-]+\/)*[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]*):(\d{1,7})\b/g;

export const COPY_LABEL = 'Copy';
export const COPIED_LABEL = 'Copied';
export const INSERT_LABEL = 'Insert';

/** Whether a link may be opened: the web only. */
export function isWebLink(href: string): boolean {
  return WEB_LINK.test(href);
}

/** Shows bidi controls as `⟨U+202E⟩` instead of letting them reorder the text. */
export function neutraliseBidi(text: string): string {
  return text.replace(BIDI_CONTROLS, (char) => `⟨U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}⟩`);
}

/** A message's text as DOM that is safe to insert: formatting, web links, `path:line` links and code blocks. */
export function renderMessageBody(text: string, document: Document = window.document): DocumentFragment {
  const html = markdown.render(neutraliseBidi(text));
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ['href', 'class'],
    ALLOWED_URI_REGEXP: WEB_LINK,
    RETURN_DOM_FRAGMENT: true,
  }) as DocumentFragment;
  for (const anchor of fragment.querySelectorAll('a')) {
    const href = anchor.getAttribute('href') ?? '';
    if (!isWebLink(href)) {
      anchor.replaceWith(document.createTextNode(anchor.textContent ?? ''));
      continue;
    }
    anchor.title = href;
    anchor.rel = 'noreferrer noopener';
  }
  linkPathReferences(fragment, document);
  for (const pre of fragment.querySelectorAll('pre')) wrapCodeBlock(pre, document);
  return fragment;
}

/** The `path:line` a link made by {@link renderMessageBody} points to, if it is one. */
export function pathReferenceOf(anchor: HTMLAnchorElement): { path: string; line: number } | undefined {
  const { path, line } = anchor.dataset;
  return path && line ? { path, line: Number(line) } : undefined;
}

function linkPathReferences(root: DocumentFragment, document: Document): void {
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

/**
 * Puts a code block in a wrapper with its actions: Copy, and Insert at the
 * cursor of the editor (both carried out by the host).
 */
function wrapCodeBlock(pre: HTMLPreElement, document: Document): void {
  const actions = document.createElement('div');
  actions.className = 'code-actions';
  actions.append(
    codeAction(document, 'copy-code', 'codicon-copy', 'copy-label', COPY_LABEL, 'Copy code block'),
    codeAction(document, 'insert-code', 'codicon-insert', 'insert-label', INSERT_LABEL, 'Insert code block at the cursor'),
  );
  const wrapper = document.createElement('div');
  wrapper.className = 'code-block';
  pre.before(wrapper);
  wrapper.append(actions, pre);
}

function codeAction(document: Document, className: string, icon: string, labelClass: string, label: string, ariaLabel: string): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = className;
  button.setAttribute('aria-label', ariaLabel);
  button.title = ariaLabel;
  const glyph = document.createElement('span');
  glyph.className = `codicon ${icon}`;
  glyph.setAttribute('aria-hidden', 'true');
  const text = document.createElement('span');
  text.className = labelClass;
  text.textContent = label;
  button.append(glyph, text);
  return button;
}

/** The code of the block a Copy or Insert button belongs to, as its author wrote it. */
export function codeOfBlock(button: Element): string {
  return button.closest('.code-block')?.querySelector('pre')?.textContent ?? '';
}
