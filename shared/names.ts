/** Rules for member names and room names, shared so a client can check before it asks. */
import { NAME_MAX_CHARS, RESERVED_NAMES, ROOM_MAX_CHARS } from './protocol';

// Control characters, and the invisible format characters (bidi overrides,
// zero-width joiners) that let one name pose as another or reorder a line.
const FORBIDDEN_CHARACTERS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** The key under which names are compared: case-folded after compatibility normalisation. */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLocaleLowerCase('en-US');
}

const RESERVED_KEYS = new Set(RESERVED_NAMES.map(nameKey));

function labelProblem(label: string, value: string, maxChars: number): string | undefined {
  const chars = [...value].length;
  if (chars === 0) return `The ${label} must not be empty.`;
  if (chars > maxChars) return `The ${label} may be at most ${maxChars} characters long.`;
  if (FORBIDDEN_CHARACTERS.test(value)) return `The ${label} must not contain control or invisible formatting characters.`;
  if (value.trim() !== value) return `The ${label} must not start or end with a space.`;
  return undefined;
}

/** Why a name is refused, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  const found = labelProblem('name', name, NAME_MAX_CHARS);
  if (found) return found;
  if (RESERVED_KEYS.has(nameKey(name))) return `The name "${name}" is reserved.`;
  return undefined;
}

/** Why a room name is refused, or undefined when it is fine. */
export function roomProblem(room: string): string | undefined {
  return labelProblem('room name', room, ROOM_MAX_CHARS);
}
