#!/usr/bin/env python3
"""Regenerates crates/keel-bindings/artifacts/ from forge's build output (contracts/out).

Keeps each contract's ABI and creation bytecode only, with sorted keys, so the files are
deterministic and a stale copy shows up as a git diff (script/test.sh checks that).
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONTRACTS = ["ChannelFactory", "ChannelVault", "SecretRegistry"]


def main() -> int:
    dest = ROOT / "crates/keel-bindings/artifacts"
    dest.mkdir(parents=True, exist_ok=True)
    for name in CONTRACTS:
        artifact = json.loads((ROOT / f"contracts/out/{name}.sol/{name}.json").read_text())
        trimmed = {
            "abi": artifact["abi"],
            "bytecode": {"object": artifact["bytecode"]["object"]},
            "deployedBytecode": {"object": artifact["deployedBytecode"]["object"]},
        }
        (dest / f"{name}.json").write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
