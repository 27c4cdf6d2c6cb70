// Flat config: typescript-eslint's recommended rules on every TypeScript home
// (extension, webview, server, shared, tests, benches, scripts) and on the
// plain JavaScript build scripts. Build output, installed packages, the
// offline VS Code host and test artifacts are not ours to lint.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// TypeScript itself checks undefined names in .ts files; the plain .mjs/.js
// scripts run in node and need its globals spelled out for `no-undef`
// (listed here rather than pulling in another package for a handful of names).
const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'Buffer', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
    'setImmediate', 'clearImmediate', 'URL', 'URLSearchParams', 'AbortController', 'TextEncoder',
    'TextDecoder', 'structuredClone', 'fetch', 'performance', 'queueMicrotask', '__dirname', '__filename',
    'require', 'module', 'exports'].map((name) => [name, 'readonly']),
);

export default tseslint.config(
  {
    ignores: ['dist/', 'out/', 'node_modules/', '.vscode-test/', 'artifacts/', '.chat-room-data/', '*.vsix'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: nodeGlobals,
    },
    rules: {
      // A leading underscore marks a parameter or binding that is deliberately
      // unused (for example an API signature we must match).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
);
