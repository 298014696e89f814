#!/usr/bin/env bash
# The demo: installs what it needs, then on an embedded Anvil deploys Keel, opens a channel,
# pays over it off-chain and closes it. (Until the `keel demo` command exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash script/setup.sh >/dev/null
exec cargo run --quiet --locked -p keel-e2e --example demo
