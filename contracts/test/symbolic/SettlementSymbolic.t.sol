// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";
import {BalanceData, DisputeState} from "../../src/libraries/ChannelTypes.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {StateWord} from "../../src/libraries/StateWord.sol";

/// @dev Calls the calldata-only library through an external call.
contract SettlementHarness {
    function outcome(DisputeState calldata s) external pure returns (Settlement.Outcome memory) {
        return Settlement.outcome(s);
    }
}

/// @notice Symbolic proofs (halmos, `check_` functions): for every input, not a sample of them.
/// Run by script/test.sh through `halmos --match-contract Symbolic`; forge ignores `check_`.
/// That honest histories pay exactly the honest balances is fuzzed instead (Fuzz.t.sol and
/// keel-core's proptest): as a symbolic query it runs past the solver's time limit.
contract SettlementSymbolicTest is Test {
    SettlementHarness internal h = new SettlementHarness();

    /// @dev Whatever the balance proofs say (within the bounds the vault enforces at submission),
    /// settlement pays out and retains exactly what the channel holds, and never reverts.
    function check_SettlementConservesFunds(
        uint256 total,
        uint256 depositA,
        uint256 withdrawnA,
        uint128 transferredA,
        uint128 lockedA,
        uint128 transferredB,
        uint128 lockedB
    ) public view {
        // The ledger at close: deposits fit 120 bits, withdrawals never exceed deposits.
        vm.assume(depositA <= StateWord.MAX_DEPOSIT && withdrawnA <= 2 * StateWord.MAX_DEPOSIT);
        vm.assume(total <= 2 * StateWord.MAX_DEPOSIT);
        DisputeState memory s;
        s.total = total;
        s.depositA = depositA;
        s.withdrawnA = withdrawnA;
        s.fromA = BalanceData(1, transferredA, lockedA, bytes32(0));
        s.fromB = BalanceData(1, transferredB, lockedB, bytes32(0));

        Settlement.Outcome memory o = h.outcome(s);
        assert(o.payoutA + o.payoutB + o.retainedA + o.retainedB == total);
        assert(o.retainedA <= lockedA && o.retainedB <= lockedB);
    }

    /// @dev The packed state word keeps both deposits and the status apart.
    function check_StateWordRoundTrips(uint120 depositA, uint120 depositB) public pure {
        uint256 word = StateWord.open(depositA, depositB);
        (uint256 a, uint256 b) = StateWord.deposits(word);
        assert(a == depositA && b == depositB);
        assert(StateWord.status(word) == StateWord.OPEN);
    }

    /// @dev A commitment never reads as another status, and matches only its own hash's bits.
    function check_StateWordCommitmentKeepsStatus(bytes32 hash, bytes32 other, uint8 status) public pure {
        vm.assume(status == StateWord.CLOSED || status == StateWord.SETTLED);
        uint256 word = StateWord.commit(hash, status);
        assert(StateWord.status(word) == status);
        assert(StateWord.commits(word, hash));
        if (uint256(other) >> 8 != uint256(hash) >> 8) assert(!StateWord.commits(word, other));
    }

    /// @dev A release flag is per side, changes neither the status nor the commitment, and every
    /// later commitment that carries the flags over keeps it.
    function check_StateWordReleaseFlags(
        bytes32 hash,
        bytes32 next,
        uint8 status,
        uint8 nextStatus,
        uint8 side
    ) public pure {
        vm.assume(status == StateWord.CLOSED || status == StateWord.SETTLED);
        vm.assume(nextStatus == StateWord.CLOSED || nextStatus == StateWord.SETTLED);
        vm.assume(side <= 1);
        uint256 word = StateWord.commit(hash, status);
        assert(!StateWord.hasRelease(word, 0) && !StateWord.hasRelease(word, 1));
        uint256 flagged = StateWord.withRelease(word, side);
        assert(StateWord.hasRelease(flagged, side) && !StateWord.hasRelease(flagged, 1 - side));
        assert(StateWord.status(flagged) == status);
        assert(
            StateWord.commits(flagged, hash)
                && StateWord.hasCommitment(flagged) == StateWord.hasCommitment(word)
        );
        assert(StateWord.withoutReleases(flagged) == word);
        uint256 later = StateWord.keepReleases(StateWord.commit(next, nextStatus), flagged);
        assert(StateWord.status(later) == nextStatus && StateWord.commits(later, next));
        assert(StateWord.hasRelease(later, side) && !StateWord.hasRelease(later, 1 - side));
        uint256 done = StateWord.keepReleases(StateWord.SETTLED, flagged);
        assert(StateWord.status(done) == StateWord.SETTLED && !StateWord.hasCommitment(done));
        assert(StateWord.hasRelease(done, side));
    }
}
