#!/usr/bin/env bash
# Measures the gas of every channel operation as real transactions on a local Anvil and writes
# docs/gas.md (each figure is a receipt's gasUsed). Takes about a minute.
#   script/gas-report.sh           write docs/gas.md; refuses while the report's inputs (the
#                                  contracts, the scripts, the pinned toolchain: INPUTS in
#                                  script/gas_report.py) have uncommitted changes, since the
#                                  report is stamped with their digest
#   script/gas-report.sh --check   write to a temporary file; fail if a target is missed or if
#                                  the result differs from the committed docs/gas.md (CI)
# The chain's clock is pinned (genesis timestamp, fixed block interval), so the figures, which
# depend on timestamps through signed expiries in calldata, are the same on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh

check=()
if [ "${1:-}" = "--check" ]; then check=(--check); fi
# Refuse before spending a minute on a report that could not be written.
[ ${#check[@]} -gt 0 ] || python3 script/gas_report.py --require-clean

# Receipts and labels of an earlier run must not stand in for a step that failed.
rm -rf broadcast/GasReport.s.sol deployments/gas-labels-*.txt

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rpc="http://127.0.0.1:$port"
anvil --port "$port" --silent --hardfork osaka --timestamp 1800000000 &
anvil_pid=$!
report=$(mktemp)
trap 'kill $anvil_pid 2>/dev/null || true; rm -f "$report"' EXIT
wait_for_rpc "$rpc" "$anvil_pid"
cast rpc anvil_setBlockTimestampInterval 12 --rpc-url "$rpc" >/dev/null

deployer_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 # Anvil account 0
forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast --private-key "$deployer_key" --slow -q
forge script script/GasReport.s.sol:GasReport --rpc-url "$rpc" --broadcast --slow -q
forge script script/GasReport.s.sol:GasReport --sig 'refutations()' --rpc-url "$rpc" --broadcast --slow -q
# Past the one-hour challenge period (evm_increaseTime does not move a chain with a fixed block
# interval; the next block's timestamp can be set).
now=$(cast block latest --field timestamp --rpc-url "$rpc")
cast rpc evm_setNextBlockTimestamp $((now + 3601)) --rpc-url "$rpc" >/dev/null
cast rpc evm_mine --rpc-url "$rpc" >/dev/null
forge script script/GasReport.s.sol:GasReport --sig 'afterChallenge()' --rpc-url "$rpc" --broadcast --slow -q

python3 script/gas_report.py "${check[@]}" \
  --anvil "$(anvil --version | head -1)" \
  broadcast/GasReport.s.sol/31337/run-latest.json deployments/gas-labels-1.txt \
  broadcast/GasReport.s.sol/31337/refutations-latest.json deployments/gas-labels-2.txt \
  broadcast/GasReport.s.sol/31337/afterChallenge-latest.json deployments/gas-labels-3.txt \
  > "$report"
if [ ${#check[@]} -gt 0 ]; then
  diff -u docs/gas.md "$report" || {
    echo "docs/gas.md is stale: commit the changes, run script/gas-report.sh and commit docs/gas.md" >&2
    exit 1
  }
  echo "docs/gas.md is up to date"
else
  cp "$report" docs/gas.md
  echo "wrote docs/gas.md"
fi
