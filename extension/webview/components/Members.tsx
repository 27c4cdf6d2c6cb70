import { nameKey } from '../../../shared/names';
import { Icon } from './Icon';

/** Who is in the room; a big room's welcome names only some, and the count is still the whole room. */
export function Members({ members, memberCount, me, onOpenDm }: { members: readonly string[]; memberCount: number; me: string | undefined; onOpenDm?: (name: string) => void }) {
  const sorted = [...members].sort((a, b) => a.localeCompare(b));
  const total = Math.max(memberCount, sorted.length);
  return (
    <aside class="members" aria-labelledby="members-heading">
      <h2 id="members-heading" class="members-heading">
        <Icon name="members" />
        {`Members (${total})`}
      </h2>
      <ul id="member-list" class="member-list" tabIndex={0} aria-labelledby="members-heading">
        {sorted.map((name) => (
          <li key={nameKey(name)}>
            {me !== undefined && nameKey(name) === nameKey(me) ? (
              `${name} (you)`
            ) : onOpenDm ? (
              // A member's name starts a direct message with them (protocol 2).
              <button type="button" class="member-name" title={`Message ${name} directly`} onClick={() => onOpenDm(name)}>
                {name}
              </button>
            ) : (
              name
            )}
          </li>
        ))}
        {total > sorted.length && <li class="more-members">{`and ${total - sorted.length} more`}</li>}
      </ul>
    </aside>
  );
}
