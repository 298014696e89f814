#!/usr/bin/env bash
# The demo: installs what it needs, starts an embedded Anvil, deploys Keel to it with
# script/deploy.sh, starts a watchtower (the keel-tower daemon), and runs the client example
# (crates/keel-client/examples/open_pay_close.rs): clients open channels, pay each other
# off-chain, move liquidity on chain, pay a third party through a hub, move balance between
# their own two channels through the hub (a circular rebalance), and close; then the third
# party goes offline, the hub closes alone, and the tower answers for her. Last, the rebalancing
# simulator (keel-sim) compares five strategies on a small generated network. (Until `keel demo`
# exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash script/setup.sh >/dev/null
source script/env.sh
# Built first, so Anvil does not wait on the compiler.
cargo build --quiet --locked -p keel-client --example open_pay_close
cargo build --quiet --locked -p keel-watchtower --bin keel-tower
cargo build --quiet --locked -p keel-sim --bin keel-sim
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rpc="http://127.0.0.1:$port"
anvil --port "$port" --hardfork osaka --silent &
anvil_pid=$!
tower_pid=""
deployments=$(mktemp -d)
trap 'kill $tower_pid "$anvil_pid" 2>/dev/null || true; rm -rf "$deployments"' EXIT
wait_for_rpc "$rpc" "$anvil_pid"
chain_id=$(cast chain-id --rpc-url "$rpc")
# Anvil's first dev key deploys; the file lands in deployments/, copied aside so the
# repository's deployments/ keeps only real networks.
KEEL_DEPLOYER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
  bash script/deploy.sh "$rpc" -q >/dev/null
mv "deployments/$chain_id.json" "$deployments/"
rm -rf "broadcast/Deploy.s.sol/$chain_id" "cache/Deploy.s.sol/$chain_id"
echo "Anvil at $rpc (chain $chain_id), Keel deployed"

# The watchtower, paying for refutations from Anvil's fourth dev account (a public test key).
tower_key=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
tower_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEEL_TOWER_KEY=$tower_key "${CARGO_TARGET_DIR:-target}/debug/keel-tower" \
  --rpc-url "$rpc" --chain-id "$chain_id" --deployments "$deployments" \
  --database "$deployments/tower.db" --listen "127.0.0.1:$tower_port" \
  --confirmations 0 --poll-ms 200 >"$deployments/tower.log" 2>&1 &
tower_pid=$!
export KEEL_TOWER_URL="http://127.0.0.1:$tower_port"
export KEEL_TOWER_ADDRESS=$(cast wallet address --private-key "$tower_key")
for _ in $(seq 600); do
  python3 -c "import urllib.request; urllib.request.urlopen('$KEEL_TOWER_URL/v1/health', timeout=1)" 2>/dev/null && break
  kill -0 "$tower_pid" 2>/dev/null || { cat "$deployments/tower.log" >&2; echo "the tower exited" >&2; exit 1; }
  sleep 0.1
done
python3 -c "import urllib.request; urllib.request.urlopen('$KEEL_TOWER_URL/v1/health', timeout=5)" \
  || { cat "$deployments/tower.log" >&2; echo "the tower did not answer in 60 s" >&2; exit 1; }
echo "watchtower $KEEL_TOWER_ADDRESS at $KEEL_TOWER_URL"
cargo run --quiet --locked -p keel-client --example open_pay_close -- "$rpc" "$deployments"

echo
echo "Rebalancing, simulated (keel-sim, docs/rebalancing.md): 300 nodes, 1,500 channels, 20,000"
echo "payments drawn towards a tenth of the nodes; no rebalancing against four strategies"
"${CARGO_TARGET_DIR:-target}/debug/keel-sim" run --nodes 300 --channels 1500 --payments 20000
