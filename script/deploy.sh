#!/usr/bin/env bash
# Deploys Keel's contracts to an RPC endpoint and writes deployments/<chainId>.json.
#   script/deploy.sh <rpc-url> [forge script key options]
# Key options are forge's: --private-key "$KEY" (e.g. from the environment), --account NAME
# (a keystore made with `cast wallet import`), or --ledger. Example for a local Anvil:
#   script/deploy.sh http://127.0.0.1:8545 --private-key "$ANVIL_KEY"
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh
[ $# -ge 1 ] || { echo "usage: script/deploy.sh <rpc-url> [key options]" >&2; exit 2; }
rpc=$1; shift
forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast "$@"
