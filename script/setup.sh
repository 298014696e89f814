#!/usr/bin/env bash
# Installs everything Keel needs on a fresh machine. Idempotent: a second run changes nothing.
# Reaches only npm, PyPI and crates.io (see ../shared/TOOLCHAIN.md for why each piece comes from where).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# Foundry (forge, anvil, cast), solc-js, OpenZeppelin and forge-std, pinned by package-lock.json.
if [ ! -x node_modules/.bin/forge ] || ! cmp -s package-lock.json node_modules/.package-lock.json.keel 2>/dev/null; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json.keel
fi

# Slither and halmos in a project-local virtualenv, pinned by script/requirements-analysis.txt.
if [ ! -x .venv/bin/slither ] || ! cmp -s script/requirements-analysis.txt .venv/.requirements.keel 2>/dev/null; then
  log "python venv with slither and halmos"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r script/requirements-analysis.txt
  cp script/requirements-analysis.txt .venv/.requirements.keel
fi

# Rust crates, so that later steps can run offline-friendly.
log "cargo fetch"
cargo fetch --locked --quiet

log "setup done"
