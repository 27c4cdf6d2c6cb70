/** Whether a chat message mentions a name, as people expect: `@name` standing on its own. */
import { nameKey } from '../shared/names';

/** Characters that continue a word, so `x@bob` or `@bobby` is not `@bob`. */
const WORD_CHARACTER = /[\p{L}\p{N}\p{M}_]/u;

/**
 * True when `text` holds `@name` (case and width folded as names are compared)
 * at a word boundary: not inside a word or an email address (`x@bob.com`), and
 * not the start of a longer name or a domain (`@bob.com`). Punctuation after
 * it (`@bob, hi`, `@bob.`) still counts.
 */
export function mentions(text: string, name: string): boolean {
  const key = nameKey(name);
  if (!key) return false;
  const folded = nameKey(text);
  for (let at = folded.indexOf('@' + key); at !== -1; at = folded.indexOf('@' + key, at + 1)) {
    const before = folded.charAt(at - 1);
    if (before && (WORD_CHARACTER.test(before) || before === '@' || before === '.' || before === '-')) continue;
    const end = at + 1 + key.length;
    const after = folded.charAt(end);
    if (after && (WORD_CHARACTER.test(after) || after === '-')) continue;
    // `@bob.com` is an address; `@bob.` ending a sentence is a mention.
    if ((after === '.' || after === '@') && WORD_CHARACTER.test(folded.charAt(end + 1))) continue;
    return true;
  }
  return false;
}
