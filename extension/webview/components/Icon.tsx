import { ICONS, type IconName } from '../icons';

/** A codicon beside a label; hidden from screen readers, which read the label. */
export function Icon({ name }: { name: IconName }) {
  return <span class={`codicon ${ICONS[name]}`} aria-hidden="true" />;
}
