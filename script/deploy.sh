#!/usr/bin/env bash
# Deploys Keel's contracts to an RPC endpoint and writes deployments/<chainId>.json.
#   script/deploy.sh <rpc-url> [forge script key options]
# Key options are forge's: --account NAME (a keystore made with `cast wallet import`), --ledger,
# or --private-key. With no key option, the key is taken from KEEL_DEPLOYER_KEY in the
# environment. Example for a local Anvil:
#   KEEL_DEPLOYER_KEY=0xac09… script/deploy.sh http://127.0.0.1:8545
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh
[ $# -ge 1 ] || { echo "usage: script/deploy.sh <rpc-url> [key options]" >&2; exit 2; }
rpc=$1; shift
if [ -n "${KEEL_DEPLOYER_KEY:-}" ] && ! printf '%s\n' "$@" | grep -qE '^--(private-key|account|ledger|keystore|trezor|interactive)'; then
  set -- --private-key "$KEEL_DEPLOYER_KEY" "$@"
fi
forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast "$@"
