#!/usr/bin/env bash
# Installs a real VS Code (code-server from npm) into a git-ignored folder so the
# extension tests and UI tests can run without downloading VS Code desktop.
# Idempotent: a finished install is detected and reused.
set -euo pipefail
CODE_SERVER_VERSION=4.100.3
# code-server 4.100.3 bundles @vscode/ripgrep 1.15.11, whose install step would
# download rg from the internet; we hand it the machine's ripgrep instead.
RIPGREP_CACHE_VERSION=1.15.11
root="$(cd "$(dirname "$0")/.." && pwd)"
host_dir="$root/.vscode-test/code-server"
marker="$host_dir/node_modules/code-server/lib/vscode/node_modules"
if [ -d "$marker" ] && [ -f "$host_dir/.installed-$CODE_SERVER_VERSION" ]; then
  echo "code-server $CODE_SERVER_VERSION already installed"
  exit 0
fi
echo "Installing the offline VS Code host (code-server $CODE_SERVER_VERSION) into .vscode-test/ for the extension and UI tests."
echo "This happens once; the first run takes a minute or two."
command -v rg >/dev/null || { echo "ripgrep (rg) is required: sudo apt-get install -y ripgrep" >&2; exit 1; }
mkdir -p "$host_dir"
cd "$host_dir"
[ -f package.json ] || echo '{"name":"offline-vscode-host","private":true}' > package.json
npm install "code-server@$CODE_SERVER_VERSION" --ignore-scripts --no-audit --no-fund --no-save
cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-$RIPGREP_CACHE_VERSION"
mkdir -p "$cache"
tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
(
  cd node_modules/code-server
  npm_config_yes=true npm_config_unsafe_perm=true \
    npm_config_user_agent="npm/$(npm -v) node/$(node -v) linux x64" sh ./postinstall.sh
)
npm rebuild argon2
touch "$host_dir/.installed-$CODE_SERVER_VERSION"
echo "code-server $CODE_SERVER_VERSION installed in $host_dir"
