/**
 * Rules for the text people choose (member names, room names) and for what
 * counts as an empty message, shared so a client can check before it asks.
 * Comparing names by how they look (their confusable skeleton) is the
 * server's job, in server/seatNames.ts, so its data stays out of the
 * extension's bundles.
 */
import { NAME_MAX_CHARS, RESERVED_NAMES, ROOM_MAX_CHARS } from './protocol';

/**
 * Characters that draw nothing or change how the text around them is shown:
 * controls, format characters (bidi overrides, zero-width joiners), line and
 * paragraph separators, lone surrogates, every default-ignorable code point
 * (which includes the Hangul fillers), and the blank Braille pattern.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\u2800]/u;
const INVISIBLE_OR_SPACE = /[\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\u2800]/gu;

/**
 * Emoji may use some of those characters and stay visible: a zero-width
 * joiner between pictographs (👩‍💻), a variation selector after one (❤️),
 * tag characters after a flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿), and keycaps (1️⃣). Such sequences are
 * set aside before a name is checked.
 */
const EMOJI_ELEMENT = String.raw`\p{Extended_Pictographic}(?:\p{Emoji_Modifier}|[\uFE0E\uFE0F])?(?:[\u{E0020}-\u{E007E}]+\u{E007F})?`;
const EMOJI_SEQUENCE = new RegExp(String.raw`${EMOJI_ELEMENT}(?:\u200D${EMOJI_ELEMENT})*|[0-9#*]\uFE0F?\u20E3`, 'gu');

/** Names of the invisible characters people meet most, so a refusal can say which one it found. */
const CHARACTER_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00ad, 'SOFT HYPHEN'],
  [0x034f, 'COMBINING GRAPHEME JOINER'],
  [0x061c, 'ARABIC LETTER MARK'],
  [0x115f, 'HANGUL CHOSEONG FILLER'],
  [0x1160, 'HANGUL JUNGSEONG FILLER'],
  [0x180e, 'MONGOLIAN VOWEL SEPARATOR'],
  [0x200b, 'ZERO WIDTH SPACE'],
  [0x200c, 'ZERO WIDTH NON-JOINER'],
  [0x200d, 'ZERO WIDTH JOINER'],
  [0x200e, 'LEFT-TO-RIGHT MARK'],
  [0x200f, 'RIGHT-TO-LEFT MARK'],
  [0x202a, 'LEFT-TO-RIGHT EMBEDDING'],
  [0x202b, 'RIGHT-TO-LEFT EMBEDDING'],
  [0x202c, 'POP DIRECTIONAL FORMATTING'],
  [0x202d, 'LEFT-TO-RIGHT OVERRIDE'],
  [0x202e, 'RIGHT-TO-LEFT OVERRIDE'],
  [0x2060, 'WORD JOINER'],
  [0x2066, 'LEFT-TO-RIGHT ISOLATE'],
  [0x2067, 'RIGHT-TO-LEFT ISOLATE'],
  [0x2068, 'FIRST STRONG ISOLATE'],
  [0x2069, 'POP DIRECTIONAL ISOLATE'],
  [0x2800, 'BRAILLE PATTERN BLANK'],
  [0x3164, 'HANGUL FILLER'],
  [0xfe0f, 'VARIATION SELECTOR-16'],
  [0xfeff, 'ZERO WIDTH NO-BREAK SPACE'],
  [0xffa0, 'HALFWIDTH HANGUL FILLER'],
]);

/** `U+3164 HANGUL FILLER`, or just `U+0007` for a character without a name here. */
export function describeCodePoint(codePoint: number): string {
  const hex = 'U+' + codePoint.toString(16).toUpperCase().padStart(4, '0');
  const name = CHARACTER_NAMES.get(codePoint);
  return name === undefined ? hex : `${hex} ${name}`;
}

/** The first character that may not stand in a name, outside the emoji sequences that may use it. */
function firstInvisible(value: string): number | undefined {
  const found = INVISIBLE.exec(value.replace(EMOJI_SEQUENCE, ''));
  return found ? found[0].codePointAt(0) : undefined;
}

/** The key under which names are compared: case-folded after compatibility normalisation. */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLocaleLowerCase('en-US');
}

/** The key of a room: room names are compared like member names, so rooms that look the same are the same room. */
export const roomKey = nameKey;

const RESERVED_KEYS = new Set(RESERVED_NAMES.map(nameKey));

function labelProblem(label: string, value: string, maxChars: number): string | undefined {
  const chars = [...value].length;
  if (chars === 0) return `The ${label} must not be empty.`;
  if (chars > maxChars) return `The ${label} may be at most ${maxChars} characters long.`;
  const invisible = firstInvisible(value);
  if (invisible !== undefined) {
    const what = invisible >= 0xd800 && invisible <= 0xdfff ? 'half of a character whose other half is missing' : 'a control or invisible character';
    return `The ${label} must not contain ${describeCodePoint(invisible)} (${what}).`;
  }
  if (value.trim() !== value) return `The ${label} must not start or end with a space.`;
  return undefined;
}

/**
 * Terminal users read a line as `<name>: <text>`, and a reply or an edit from
 * a v2 member as `<name> (to bob): …` or `<name> (edited): …`; a name holding
 * a colon or those marks could speak as someone else there.
 */
const SPEAKS_AS_ANOTHER = /:|\((?:edited|to\s)/iu;

/** Why a name is refused, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  const found = labelProblem('name', name, NAME_MAX_CHARS);
  if (found) return found;
  if (SPEAKS_AS_ANOTHER.test(name.normalize('NFKC'))) return 'The name must not contain a colon, "(edited" or "(to ", which terminal users would read as someone else speaking.';
  if (RESERVED_KEYS.has(nameKey(name))) return `The name "${name}" is reserved.`;
  return undefined;
}

/** Why a room name is refused, or undefined when it is fine. */
export function roomProblem(room: string): string | undefined {
  return labelProblem('room name', room, ROOM_MAX_CHARS);
}

/** Whether a message shows nothing at all: only spaces and invisible characters. */
export function isBlankText(text: string): boolean {
  return text.replace(INVISIBLE_OR_SPACE, '').length === 0;
}
