# Sourced by the project's scripts: puts Foundry (installed from npm) first on PATH and points
# forge at the solc-js shim by absolute path (a relative `solc` in foundry.toml resolves against
# the cwd).
KEEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEEL_ROOT
export PATH="$KEEL_ROOT/node_modules/.bin:$KEEL_ROOT/.venv/bin:$PATH"
# The platform packages' binaries go ahead of node_modules/.bin: the npm launchers there
# (@foundry-rs/*/bin.mjs, 1.7.1) exit 0 whatever the tool returned, so `forge fmt --check`, a
# failing `forge test` or a `cast` call to a node that is down would all look like success, and
# a SIGKILL meant for anvil would reach only the launcher and leave anvil running.
for tool_bin in "$KEEL_ROOT"/node_modules/@foundry-rs/*-*/bin; do
  if [ -d "$tool_bin" ]; then PATH="$tool_bin:$PATH"; fi
done
unset tool_bin
export FOUNDRY_SOLC="$KEEL_ROOT/script/solc/solc-shim.js"

# Waits until the node at URL answers (up to 60 s), failing early if PID (the node) has exited.
# Checks what cast printed, not only its exit code, so a launcher that hides the code cannot make
# a dead node look alive.
wait_for_rpc() {
  local url=$1 pid=$2
  for _ in $(seq 600); do
    [[ "$(cast chain-id --rpc-url "$url" 2>/dev/null)" =~ ^[0-9]+$ ]] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "the node (pid $pid) exited before answering at $url" >&2; return 1; }
    sleep 0.1
  done
  echo "no answer from $url after 60 s" >&2
  return 1
}
