#!/usr/bin/env bash
# Runs before `npm test` (npm's pretest): what the extension and UI tests need
# beyond node_modules. Chromium is checked first, so a machine without it
# fails at once with the command that installs it, not after the other suites.
# The offline VS Code host is installed when missing (idempotent; it lives in
# the git-ignored .vscode-test/ folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "The extension and UI tests drive Chromium, which is not installed (looked for $chromium)." >&2
  echo "Install it with:" >&2
  echo "  sudo apt-get install -y chromium" >&2
  echo "(or point CHROMIUM_PATH at a Chromium binary)" >&2
  exit 1
fi

bash "$root/scripts/setup-code-server.sh"
