#!/usr/bin/env bash
# The demo: installs what it needs, starts an embedded Anvil, deploys Keel to it with
# script/deploy.sh, and runs the client example (crates/keel-client/examples/open_pay_close.rs):
# clients open channels, pay each other off-chain, move liquidity on chain, pay a third party
# through a hub, and close. (Until `keel demo` exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash script/setup.sh >/dev/null
source script/env.sh
# Built first, so Anvil does not wait on the compiler.
cargo build --quiet --locked -p keel-client --example open_pay_close
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rpc="http://127.0.0.1:$port"
anvil --port "$port" --hardfork osaka --silent &
anvil_pid=$!
deployments=$(mktemp -d)
trap 'kill "$anvil_pid" 2>/dev/null || true; rm -rf "$deployments"' EXIT
wait_for_rpc "$rpc" "$anvil_pid"
chain_id=$(cast chain-id --rpc-url "$rpc")
# Anvil's first dev key deploys; the file lands in deployments/, copied aside so the
# repository's deployments/ keeps only real networks.
KEEL_DEPLOYER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
  bash script/deploy.sh "$rpc" -q >/dev/null
mv "deployments/$chain_id.json" "$deployments/"
rm -rf "broadcast/Deploy.s.sol/$chain_id" "cache/Deploy.s.sol/$chain_id"
echo "Anvil at $rpc (chain $chain_id), Keel deployed"
cargo run --quiet --locked -p keel-client --example open_pay_close -- "$rpc" "$deployments"
