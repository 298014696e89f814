#!/usr/bin/env bash
# Static analysis of the contracts. Fails on any high or medium finding that slither.config.json
# does not explain; low findings are printed for review. Informational ones (naming, pragmas,
# assembly and the like) are left out by "exclude_informational" in slither.config.json: drop
# that line to see them.
set -euo pipefail
cd "$(dirname "$0")/.."
source script/env.sh
slither . --config-file slither.config.json --fail-medium
