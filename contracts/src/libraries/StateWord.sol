// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title StateWord
/// @notice A vault keeps its whole lifecycle in one storage word, so that each operation touches
/// one slot that is already non-zero (a cold re-write costs 5,000 gas; a fresh slot 22,100).
/// @dev Low 8 bits: status. Above them:
///  - OPEN:    depositA (bits 128..247) and depositB (bits 8..127), cumulative, 120 bits each.
///  - CLOSED:  the top 248 bits of keccak256(abi.encode(DisputeState)).
///  - SETTLED: the top 248 bits of keccak256(abi.encode(LockState)), or zero when nothing is pending.
/// A 248-bit commitment keeps 124-bit collision resistance.
library StateWord {
    uint8 internal constant UNINITIALISED = 0;
    uint8 internal constant OPEN = 1;
    uint8 internal constant CLOSED = 2;
    uint8 internal constant SETTLED = 3;

    uint256 internal constant MAX_DEPOSIT = type(uint120).max;
    uint256 private constant _STATUS_MASK = 0xff;
    uint256 private constant _DEPOSIT_MASK = (1 << 120) - 1;

    function status(uint256 word) internal pure returns (uint8) {
        // casting to uint8 is safe because the mask keeps 8 bits.
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint8(word & _STATUS_MASK);
    }

    function open(uint256 depositA, uint256 depositB) internal pure returns (uint256) {
        // Callers bound both deposits by MAX_DEPOSIT, so the shifts cannot lose bits.
        return (depositA << 128) | (depositB << 8) | OPEN;
    }

    function deposits(uint256 word) internal pure returns (uint256 depositA, uint256 depositB) {
        depositA = (word >> 128) & _DEPOSIT_MASK;
        depositB = (word >> 8) & _DEPOSIT_MASK;
    }

    function commit(bytes32 hash, uint8 newStatus) internal pure returns (uint256) {
        return (uint256(hash) & ~_STATUS_MASK) | newStatus;
    }

    function commits(uint256 word, bytes32 hash) internal pure returns (bool) {
        return (word & ~_STATUS_MASK) == (uint256(hash) & ~_STATUS_MASK);
    }

    /// @notice Whether a SETTLED word still commits to pending locks.
    function hasCommitment(uint256 word) internal pure returns (bool) {
        return (word & ~_STATUS_MASK) != 0;
    }
}
