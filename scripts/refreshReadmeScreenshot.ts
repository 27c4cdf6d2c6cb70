// `npm run screenshot:readme`: puts the UI suite's light-theme picture of a
// conversation in the chat's Panel view, a reply, an edit and a reaction
// (artifacts/ui/v2-reply-edit-reactions-light.png), where the README shows it
// (docs/chat-panel.png). A test run only writes under artifacts/, so refreshing
// the README's picture is a choice someone makes, and commits.
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

// Bundled to out/scripts/, two folders below the project root.
const root = join(__dirname, '..', '..');
const source = join(root, 'artifacts', 'ui', 'v2-reply-edit-reactions-light.png');
const target = join(root, 'docs', 'chat-panel.png');

if (!existsSync(source)) {
  process.stderr.write(`${source} is missing: run the UI suite first (npm run test:ui).\n`);
  process.exit(1);
}
copyFileSync(source, target);
process.stdout.write(`docs/chat-panel.png now shows ${source}.\n`);
