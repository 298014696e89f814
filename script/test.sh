#!/usr/bin/env bash
# Runs every test Keel has, after installing what they need. The README's test command.
#   script/test.sh          everything
# Each step prints a header; the first failure stops the run with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash script/setup.sh
source script/env.sh

step() { printf '\n==> %s\n' "$*"; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
profile=default
[ "${CI:-}" = "true" ] && profile=ci

step "Foundry's exit codes reach this script (a tool that hides failures would pass every step)"
unformatted=$(mktemp --suffix=.sol)
printf 'contract  C{}\n' >"$unformatted"
if forge fmt --check "$unformatted" >/dev/null 2>&1 || cast chain-id --rpc-url http://127.0.0.1:9 >/dev/null 2>&1; then
  echo "forge or cast exited 0 on a failure: $(command -v forge) is not the real binary (script/env.sh)" >&2
  exit 1
fi
rm -f "$unformatted"
echo "forge and cast report failures"

step "forge fmt --check"
forge fmt --check

step "forge build"
forge build

step "Rust bindings match the build (crates/keel-bindings/artifacts)"
python3 script/bindings.py
git diff --exit-code --stat -- crates/keel-bindings/artifacts || {
  echo "bindings are stale: run python3 script/bindings.py and commit the result" >&2
  exit 1
}

step "forge test (profile $profile)"
FOUNDRY_PROFILE=$profile forge test | tee "$logs/forge.log"

# Fuzz and invariant runs use random inputs, so only the fixed-input tests are snapshotted.
step "gas snapshot unchanged (.gas-snapshot)"
forge snapshot --check --no-match-test 'testFuzz_|invariant_'

step "deploy to Anvil, measure gas against the targets, docs/gas.md unchanged (script/gas-report.sh --check)"
bash script/gas-report.sh --check

step "slither (no high or medium findings)"
bash script/slither.sh

step "halmos: symbolic proofs (contracts/test/symbolic)"
halmos --match-contract Symbolic --forge-build-out contracts/out

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The crate docs are what dApp developers read: a broken or private link is a failure.
step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# The watchtower's store suite runs over PostgreSQL too: script/postgres.sh starts a throwaway
# server (installing Debian's postgresql if needed) for the length of the run.
step "cargo test (with a PostgreSQL server: script/postgres.sh)"
bash script/postgres.sh cargo test --workspace --locked 2>&1 | tee "$logs/cargo.log"

step "the demo runs (script/demo.sh)"
bash script/demo.sh

# One closing line over both runners, so a reader (or CI) sees the whole count at once.
# Any failure has already stopped the run (set -e, pipefail), so what remains is a pass count.
forge_passed=$(awk '/tests passed/ { for (i = 1; i < NF; i++) if ($(i+1) == "tests" && $(i+2) == "passed,") n = $i } END { print n + 0 }' "$logs/forge.log")
cargo_passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$logs/cargo.log")
printf '\nKeel: %d passed, 0 failed\n' "$((forge_passed + cargo_passed))"
