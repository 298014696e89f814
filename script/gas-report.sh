#!/usr/bin/env bash
# Measures the gas of every channel operation as real transactions on a local Anvil and writes
# docs/gas.md (each figure is a receipt's gasUsed). Takes about a minute.
#   script/gas-report.sh           write docs/gas.md
#   script/gas-report.sh --check   write to a temporary file and fail if a target is missed (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh

port=${KEEL_GAS_PORT:-8547}
rpc="http://127.0.0.1:$port"
anvil --port "$port" --silent --hardfork osaka &
anvil_pid=$!
trap 'kill $anvil_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do cast block-number --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.2; done

deployer_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 # Anvil account 0
forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast --private-key "$deployer_key" --slow -q
forge script script/GasReport.s.sol:GasReport --rpc-url "$rpc" --broadcast --slow -q
forge script script/GasReport.s.sol:GasReport --sig 'refutations()' --rpc-url "$rpc" --broadcast --slow -q
cast rpc evm_increaseTime 3601 --rpc-url "$rpc" >/dev/null
cast rpc evm_mine --rpc-url "$rpc" >/dev/null
forge script script/GasReport.s.sol:GasReport --sig 'afterChallenge()' --rpc-url "$rpc" --broadcast --slow -q

out=docs/gas.md
check=()
if [ "${1:-}" = "--check" ]; then out=$(mktemp); check=(--check); fi
python3 script/gas_report.py "${check[@]}" \
  --anvil "$(anvil --version | head -1)" \
  broadcast/GasReport.s.sol/31337/run-latest.json deployments/gas-labels-1.txt \
  broadcast/GasReport.s.sol/31337/refutations-latest.json deployments/gas-labels-2.txt \
  broadcast/GasReport.s.sol/31337/afterChallenge-latest.json deployments/gas-labels-3.txt \
  > "$out"
echo "wrote $out"
