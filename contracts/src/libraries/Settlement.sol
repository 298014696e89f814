// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {BalanceData, DisputeState, Lock} from "./ChannelTypes.sol";

/// @title Settlement
/// @notice How a closed channel's funds divide; pure, so it is fuzzed on its own.
/// @dev Each participant gets deposit - withdrawn - sent + received - locked, clamped so that the
/// two payouts and the funds retained for pending locks add up to exactly `total`. B's payout is the
/// residual, which makes conservation hold by construction whatever the signed amounts say.
library Settlement {
    struct Outcome {
        uint256 payoutA;
        uint256 payoutB;
        uint256 retainedA;
        uint256 retainedB;
    }

    /// @dev Balance-proof amounts are bounded to this at submission, so the sums below cannot
    /// overflow and settlement can never be blocked by a revert.
    uint256 internal constant MAX_AMOUNT = type(uint128).max;

    function outcome(DisputeState calldata s) internal pure returns (Outcome memory o) {
        uint256 creditA = s.depositA + s.fromB.transferredAmount;
        uint256 debitA = s.withdrawnA + s.fromA.transferredAmount + s.fromA.lockedAmount;
        uint256 total = s.total;
        o.payoutA = creditA > debitA ? _min(creditA - debitA, total) : 0;
        uint256 remaining = total - o.payoutA;
        o.retainedA = _min(s.fromA.lockedAmount, remaining);
        remaining -= o.retainedA;
        o.retainedB = _min(s.fromB.lockedAmount, remaining);
        o.payoutB = remaining - o.retainedB;
    }

    /// @notice keccak256 over the locks as laid out in calldata (96 bytes each); zero for none.
    /// @dev Matches `keel_core::locks::locks_root`. Hashing the calldata directly avoids copying.
    function locksRoot(Lock[] calldata locks) internal pure returns (bytes32 root) {
        if (locks.length == 0) return bytes32(0);
        assembly ("memory-safe") {
            let size := mul(locks.length, 0x60)
            let ptr := mload(0x40)
            calldatacopy(ptr, locks.offset, size)
            root := keccak256(ptr, size)
        }
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
