# Sourced by the project's scripts: puts the npm-installed Foundry first on PATH and points forge
# at the solc-js shim by absolute path (a relative `solc` in foundry.toml resolves against the cwd).
KEEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEEL_ROOT
export PATH="$KEEL_ROOT/node_modules/.bin:$KEEL_ROOT/.venv/bin:$PATH"
export FOUNDRY_SOLC="$KEEL_ROOT/script/solc/solc-shim.js"
