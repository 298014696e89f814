// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title StateWord
/// @notice A vault keeps its whole lifecycle in one storage word, so that each operation touches
/// one slot that is already non-zero (a cold re-write costs 5,000 gas; a fresh slot 22,100).
/// @dev Low 8 bits: the status (bits 0..1) and the release flags (bit 2 + senderSide: a lock
/// release has been recorded for the locks that side sent; only once closed, see withRelease);
/// bits 4..7 are zero. Above them:
///  - OPEN:    depositA (bits 128..247) and depositB (bits 8..127), cumulative, 120 bits each.
///  - CLOSED:  the top 248 bits of keccak256(abi.encode(DisputeState)).
///  - SETTLED: the top 248 bits of keccak256(abi.encode(LockState)), or zero when nothing is pending.
/// A 248-bit commitment keeps 124-bit collision resistance. Every write after close carries the
/// release flags over (keepReleases), so that unlock, which reads this word anyway, learns whether
/// a side has any release without reading the release mapping.
library StateWord {
    uint8 internal constant UNINITIALISED = 0;
    uint8 internal constant OPEN = 1;
    uint8 internal constant CLOSED = 2;
    uint8 internal constant SETTLED = 3;

    uint256 internal constant MAX_DEPOSIT = type(uint120).max;
    uint256 private constant _LOW_BYTE = 0xff;
    uint256 private constant _STATUS_MASK = 0x03;
    uint256 private constant _RELEASES_SHIFT = 2;
    uint256 private constant _RELEASES_MASK = 0x0c;
    uint256 private constant _DEPOSIT_MASK = (1 << 120) - 1;

    function status(uint256 word) internal pure returns (uint8) {
        // casting to uint8 is safe because the mask keeps 2 bits.
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
        return (uint256(hash) & ~_LOW_BYTE) | newStatus;
    }

    function commits(uint256 word, bytes32 hash) internal pure returns (bool) {
        return (word & ~_LOW_BYTE) == (uint256(hash) & ~_LOW_BYTE);
    }

    /// @notice Whether a SETTLED word still commits to pending locks.
    function hasCommitment(uint256 word) internal pure returns (bool) {
        return (word & ~_LOW_BYTE) != 0;
    }

    /// @notice `word` with the flag set that a release is recorded for the locks `side` sent.
    /// @dev `side` is 0 or 1 (callers check it).
    function withRelease(uint256 word, uint8 side) internal pure returns (uint256) {
        return word | (uint256(1) << (_RELEASES_SHIFT + side));
    }

    /// @notice Whether any release is recorded for the locks `side` sent.
    function hasRelease(uint256 word, uint8 side) internal pure returns (bool) {
        return (word & (uint256(1) << (_RELEASES_SHIFT + side))) != 0;
    }

    /// @notice `next` (a word just built by open or commit, or a bare status) with the release
    /// flags of `word`, the word it replaces.
    function keepReleases(uint256 next, uint256 word) internal pure returns (uint256) {
        return next | (word & _RELEASES_MASK);
    }

    /// @notice `word` without the release flags: the status and the deposits or commitment.
    function withoutReleases(uint256 word) internal pure returns (uint256) {
        return word & ~_RELEASES_MASK;
    }
}
