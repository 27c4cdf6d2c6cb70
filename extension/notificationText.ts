/**
 * Text from other people (members, or a server) on its way into a VS Code
 * notification. Notifications render `[label](target)` as a clickable link,
 * `command:` targets included, so such text must never carry one: its square
 * brackets are swapped for look-alikes, and control and invisible formatting
 * characters (bidi overrides among them) become spaces.
 */
export function inertNotificationText(text: string, maxChars = 120): string {
  const flat = text
    .replace(/[\p{Cc}\p{Cf}]+/gu, ' ')
    .replace(/\[/g, '⟦')
    .replace(/\]/g, '⟧')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > maxChars ? `${flat.slice(0, maxChars - 1)}…` : flat;
}
