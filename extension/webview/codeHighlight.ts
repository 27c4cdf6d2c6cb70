/**
 * Syntax highlighting for code blocks, with highlight.js: its core and the
 * languages people paste most, each registered on its own so the bundle
 * carries only those (the full set would add about 900 KiB). The output is
 * spans with `hljs-*` classes, coloured from the theme in chat.css; it goes
 * through the sanitiser like everything else a message becomes.
 */
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import csharp from 'highlight.js/lib/languages/csharp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import dockerfile from 'highlight.js/lib/languages/dockerfile';
import go from 'highlight.js/lib/languages/go';
import ini from 'highlight.js/lib/languages/ini';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import makefile from 'highlight.js/lib/languages/makefile';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const LANGUAGES = { bash, c, cpp, csharp, css, diff, dockerfile, go, ini, java, javascript, json, makefile, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
// VS Code's language ids, as Send Selection writes them after the fence.
hljs.registerAliases(['typescriptreact'], { languageName: 'typescript' });
hljs.registerAliases(['javascriptreact'], { languageName: 'javascript' });
hljs.registerAliases(['shellscript'], { languageName: 'bash' });
hljs.registerAliases(['jsonc', 'jsonl'], { languageName: 'json' });
hljs.registerAliases(['toml', 'properties'], { languageName: 'ini' });

/** Beyond this a block is shown plain: highlighting is for reading, and a huge paste would only cost time. */
const MAX_HIGHLIGHTED_CHARACTERS = 20_000;

/**
 * The code as highlighted HTML (escaped text in `hljs-*` spans), or undefined
 * when its language is not one we carry or it was not named. No guessing: a
 * block without a language stays plain.
 */
export function highlightCode(code: string, language: string): string | undefined {
  const name = language.trim().toLowerCase();
  if (!name || code.length > MAX_HIGHLIGHTED_CHARACTERS || !hljs.getLanguage(name)) return undefined;
  try {
    return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
  } catch {
    return undefined;
  }
}

/** The languages a code block may name and have highlighted (with their aliases). */
export function highlightedLanguages(): string[] {
  return hljs.listLanguages();
}
