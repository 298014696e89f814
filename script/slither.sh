#!/usr/bin/env bash
# Static analysis of the contracts. Fails on any high or medium finding that slither.config.json
# does not explain; low and informational findings are printed for review.
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh
slither . --config-file slither.config.json --fail-medium
