import type { CompletionItem } from '../completion';

interface Props {
  id: string;
  items: readonly CompletionItem[];
  selected: number;
  onPick(index: number): void;
}

/** The id of an option, for the message box's aria-activedescendant. */
export function completionOptionId(listId: string, index: number): string {
  return `${listId}-${index}`;
}

/**
 * The completion list above the message box. The keyboard stays in the box
 * (it moves through the list with the arrows); a click picks without taking
 * the focus from it.
 */
export function CompletionList({ id, items, selected, onPick }: Props) {
  return (
    <ul id={id} class="completions" role="listbox" aria-label="Suggestions">
      {items.map((item, index) => (
        <li
          key={item.label}
          id={completionOptionId(id, index)}
          class={index === selected ? 'completion selected' : 'completion'}
          role="option"
          aria-selected={index === selected}
          data-kind={item.kind}
          onMouseDown={(event) => {
            event.preventDefault();
            onPick(index);
          }}
        >
          <span class="completion-label">{item.label}</span>
          <span class="completion-detail">{item.detail}</span>
        </li>
      ))}
    </ul>
  );
}
