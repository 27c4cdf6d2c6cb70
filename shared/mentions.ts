/**
 * What counts as mentioning someone, and what counts as one emoji: the server
 * counts mentions for unread badges and checks reactions, the extension
 * notifies and highlights, and both must agree.
 */
import { nameKey } from './names';

/** Characters that continue a word (so `x@bob.com` and `@bobby` are not mentions of bob). */
const WORD_CHARACTER = /[\p{L}\p{N}\p{M}_-]/u;

/**
 * True when `text` mentions `name` as `@name` at a word boundary: the `@` does
 * not follow a word character (an e-mail address), and no word character
 * follows the name. Case and width are folded as names are compared.
 */
export function mentions(text: string, name: string): boolean {
  if (!name || !text.includes('@')) return false;
  const key = nameKey(name);
  const folded = nameKey(text);
  for (let at = folded.indexOf('@' + key); at !== -1; at = folded.indexOf('@' + key, at + 1)) {
    const before = at > 0 ? folded.charAt(at - 1) : '';
    const after = folded.charAt(at + 1 + key.length);
    if ((!before || !WORD_CHARACTER.test(before)) && (!after || !WORD_CHARACTER.test(after))) return true;
  }
  return false;
}

// Built at run time: TypeScript's ES2022 target does not know the `v` flag, which every Node and
// browser this code runs in (Node 20, Chromium) does. Built on first use, too: V8 expands the set
// of emoji sequences when the expression is made, about 20 ms, which would otherwise be paid by
// every start of the extension, the server and the webview, emoji or not.
let oneRgiEmoji: RegExp | undefined;

/** True when `text` is exactly one emoji (a ZWJ sequence, a flag or a skin tone counts as one). */
export function isSingleEmoji(text: string): boolean {
  if (text.length === 0 || text.length > 32) return false;
  oneRgiEmoji ??= new RegExp('^\\p{RGI_Emoji}$', 'v');
  return oneRgiEmoji.test(text);
}
