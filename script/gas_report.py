#!/usr/bin/env python3
"""Turns forge broadcast receipts into docs/gas.md: Keel's figures beside today's channel contracts.

Usage: gas_report.py [--check] --anvil VERSION (BROADCAST_JSON LABELS_TXT)...
       gas_report.py --require-clean     exit 1 if the report's INPUTS have uncommitted changes
       gas_report.py --inputs-digest     print the digest the report is stamped with
Each LABELS_TXT names, line by line, the transactions of its BROADCAST_JSON in order.

The report is stamped with a digest of its INPUTS, not with a commit: it is committed in the very
commit it would name, and CI regenerates it from a fresh clone and compares. Nothing in it
depends on the date or the machine (gas does not), so a regenerated report equals the committed
one exactly when the inputs are the same. Without --check (writing docs/gas.md) it refuses to
stamp inputs with uncommitted changes: the digest would name contracts no commit holds.
"""
import argparse
import hashlib
import json
import subprocess
import sys

# What the figures depend on: the contracts, the scripts that deploy and drive them, the
# compiler shim and settings, and the pinned toolchain (anvil, forge, solc-js, OpenZeppelin).
INPUTS = [
    "contracts/src",
    "script/Deploy.s.sol",
    "script/GasReport.s.sol",
    "script/gas-report.sh",
    "script/gas_report.py",
    "script/solc",
    "foundry.toml",
    "package-lock.json",
]

# Targets from issue 2 and the anchors measured on anvil 1.7.1 (../shared/GAS-ANCHORS.md).
TARGETS = {
    "open with deposit (ETH)": (100_000, "Raiden 142,103 (ERC-20, open + deposit)"),
    "first deposit by the counterparty (ETH)": (32_000, "Raiden 75,838; Nitro first deposit 46,496"),
    "top-up, a later deposit (ETH)": (32_000, "Raiden 75,838; Nitro 29,408 (no per-channel vault)"),
    "withdraw while open (ETH)": (75_000, "Raiden 115,037"),
    "move into another channel (ETH, withdrawInto)": (
        None, "Raiden: a withdrawal and a deposit, 115,037 + 75,838"),
    "cooperative close (ETH)": (65_000, "Nitro 88,972 (payees exist)"),
    "unilateral close (ETH)": (70_000, "Nitro 113,146; Raiden 137,717"),
    "refutation by the counterparty (ETH)": (50_000, "Nitro 73,936; Raiden 90,538"),
    "settle (ETH)": (55_000, "Nitro 57,026 (payees exist); Raiden 173,781"),
    "refutation by a watchtower (ETH)": (None, "Raiden 90,538 (a third party with the non-closer's signature)"),
    "unlock 1 lock": (None, "Raiden 59,034"),
    "unlock 6 locks": (None, "Raiden 83,834"),
    # Raiden has no on-chain release of a pending lock: its unlock follows the secret registry alone.
    "release 1 lock (releaseLocks)": (None, "Raiden: none (no early release)"),
    "release 6 locks (releaseLocks)": (None, "Raiden: none (no early release)"),
    "unlock 1 released lock (secret registered, returned to its sender)": (
        None, "Raiden: none (no early release)"),
    "register a secret": (None, "Raiden 46,205"),
}

# Raiden's figures (ERC-20) from ../shared/GAS-ANCHORS.md, beside Keel's ERC-20 operations.
RAIDEN_ERC20 = {
    "open with deposit (ERC-20)": 142_103,
    "top-up, a later deposit (ERC-20)": 75_838,
    "withdraw while open (ERC-20)": 115_037,
    "cooperative close (ERC-20)": 167_416,
    "unilateral close (ERC-20)": 137_717,
    "settle (ERC-20)": 173_781,
    # Raiden has no move between channels: a withdrawal, then a deposit into the other.
    "move into another channel (ERC-20, withdrawInto)": 115_037 + 75_838,
}

SCENARIOS = {
    "open with deposit (ETH)": "alice creates the vault and deposits 10 ETH in one transaction",
    "first deposit by the counterparty (ETH)": "bob's first deposit into a channel alice opened",
    "top-up, a later deposit (ETH)": "alice raises her cumulative deposit (slot already written)",
    "withdraw while open (ETH)": "alice submits a withdrawal both signed and is paid",
    "move into another channel (ETH, withdrawInto)": "alice's second withdrawal (its slot already "
                                                     "written), both signed, deposited for her in "
                                                     "another open channel's vault",
    "cooperative close (ETH)": "alice submits both signatures; both payees exist and are paid",
    "unilateral close (ETH)": "alice closes with bob's balance proof",
    "refutation by the counterparty (ETH)": "bob submits alice's newer balance proof",
    "refutation by a watchtower (ETH)": "a third party submits alice's newer proof with bob's authorisation",
    "settle (ETH)": "alice settles after the challenge period; both payees exist and are paid",
    "unlock 1 lock": "bob resolves alice's 1 pending lock (secret registered)",
    "unlock 6 locks": "bob resolves alice's 6 pending locks (secrets registered)",
    "release 1 lock (releaseLocks)": "bob closed with alice's proof holding 1 lock he had released "
                                     "off-chain; alice submits his LockRelease signature during the "
                                     "challenge period",
    "release 6 locks (releaseLocks)": "the same with 6 locks: alice submits bob's 6 LockRelease "
                                      "signatures in one transaction",
    "unlock 1 released lock (secret registered, returned to its sender)":
        "alice resolves her 1 pending lock after settlement; its secret was registered in time, "
        "but bob released it, so it goes back to her",
}


def rows(broadcast_path, labels_path):
    with open(broadcast_path) as f:
        run = json.load(f)
    with open(labels_path) as f:
        labels = [line.strip() for line in f if line.strip()]
    txs = run["transactions"]
    if len(txs) != len(labels):
        raise SystemExit(f"{broadcast_path}: {len(txs)} transactions but {len(labels)} labels")
    gas = {r["transactionHash"]: int(r["gasUsed"], 16) for r in run["receipts"]}
    for tx, label in zip(txs, labels):
        if not label.startswith("setup:"):
            yield label, gas[tx["hash"]]


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def inputs_digest():
    """SHA-256 over the git blob id and path of every tracked file in INPUTS, as the working tree
    holds them (the committed blobs, when the inputs are clean): the same in any clone."""
    files = sorted(git("ls-files", "-z", "--", *INPUTS).split("\0")[:-1])
    blobs = git("hash-object", "--", *files).split()
    listing = "".join(f"{blob} {path}\n" for blob, path in zip(blobs, files))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def dirty_inputs():
    """Uncommitted changes (untracked files included) under INPUTS, as `git status` lists them."""
    return git("status", "--porcelain", "--untracked-files=all", "--", *INPUTS).rstrip()


def require_clean():
    dirty = dirty_inputs()
    if dirty:
        sys.exit("refusing to stamp docs/gas.md: the report's inputs have uncommitted changes "
                 f"(commit them first; or run with --check):\n{dirty}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--anvil")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if any operation misses its target; inputs may be dirty")
    ap.add_argument("--require-clean", action="store_true", help="only check the inputs are committed")
    ap.add_argument("--inputs-digest", action="store_true", help="only print the inputs' digest")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    if args.require_clean:
        require_clean()
        return
    if args.inputs_digest:
        print(inputs_digest())
        return
    if not args.anvil or not args.files or len(args.files) % 2:
        ap.error("--anvil and (BROADCAST_JSON LABELS_TXT) pairs are required")
    if not args.check:
        require_clean()
    measured = {}
    for broadcast, labels in zip(args.files[0::2], args.files[1::2]):
        measured.update(rows(broadcast, labels))

    out = []
    out.append("# Gas\n")
    out.append("Generated by `script/gas-report.sh`: every figure is the `gasUsed` of one real transaction's "
               "receipt on a local Anvil, the way ../shared/GAS-ANCHORS.md measured today's contracts. "
               "Payees already exist as accounts. Do not edit by hand: CI regenerates this file and fails "
               "if it differs.\n")
    out.append(f"- Inputs: digest {inputs_digest()} of {', '.join(f'`{i}`' for i in INPUTS)} "
               "(`python3 script/gas_report.py --inputs-digest` prints it for a checkout)")
    out.append(f"- EVM: {args.anvil}, hardfork osaka, genesis timestamp 1,800,000,000 and 12 s blocks; "
               "solc 0.8.37 (solc-js), via-IR, optimizer runs 1,000,000\n")

    out.append("## Against the targets (ETH channels)\n")
    out.append("| operation | scenario | Keel | target | today's contracts | met |")
    out.append("|---|---|---:|---:|---|:-:|")
    for label, (target, anchor) in TARGETS.items():
        if label not in measured:
            continue
        g = measured[label]
        t = f"{target:,}" if target else "—"
        met = ("yes" if g <= target else "**no**") if target else ""
        out.append(f"| {label} | {SCENARIOS.get(label, '')} | {g:,} | {t} | {anchor} | {met} |")

    out.append("\n## ERC-20 channels against Raiden (an ERC-20 TokenNetwork)\n")
    out.append("| operation | Keel | Raiden |")
    out.append("|---|---:|---:|")
    for label, raiden in RAIDEN_ERC20.items():
        if label in measured:
            out.append(f"| {label} | {measured[label]:,} | {raiden:,} |")

    out.append("\n## Every measured operation\n")
    out.append("| operation | gasUsed |")
    out.append("|---|---:|")
    for label, g in measured.items():
        out.append(f"| {label} | {g:,} |")

    out.append("\n## Notes\n")
    out.append("- The first deposit into a side that has none writes nothing new: a channel's deposits, "
               "status and dispute commitment share one storage word that open already wrote, so "
               "'first deposit by the counterparty' and 'top-up' differ only in calldata.")
    out.append("- ERC-20 deposits read the vault's token balance before and after the transfer "
               "(fee-on-transfer tokens are credited what arrived), which costs two balanceOf calls.")
    out.append("- Raiden has no move between channels; its figure for one is a withdrawal plus a "
               "deposit (115,037 + 75,838).")
    out.append("- A refutation by a watchtower verifies one more signature (the non-closer's "
               "TowerAuthorisation) than the non-closer's own refutation.")
    out.append("- releaseLocks verifies the receiver's LockRelease signature for each lock and writes "
               "one new slot per lock (its release), and sets the sending side's release flag in the "
               "channel's state word. unlock reads the releases only for a side whose flag is set, "
               "so the unlock rows without a release pay nothing for them; the released lock's unlock "
               "reads its release (one cold slot).")
    print("\n".join(out))
    missed = [l for l, (t, _) in TARGETS.items() if t and l in measured and measured[l] > t]
    absent = [l for l, (t, _) in TARGETS.items() if t and l not in measured]
    if args.check and (missed or absent):
        raise SystemExit(f"gas targets missed: {missed}; not measured: {absent}")


if __name__ == "__main__":
    main()
