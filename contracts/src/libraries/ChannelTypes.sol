// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @notice What a channel is: its two participants, its asset, its challenge period and a salt.
/// @dev Hashed (with chain id and factory) into the channel id, which is the CREATE2 salt of the
/// channel's vault. Every vault operation that needs the participants takes these in calldata and
/// checks them against the vault's own address, so the vault stores none of them.
struct ChannelParams {
    address participantA;
    address participantB;
    /// @dev address(0) for native ETH, otherwise an ERC-20 token.
    address token;
    /// @dev Seconds between a unilateral close and the earliest settlement.
    uint32 challengePeriod;
    bytes32 salt;
}

/// @notice The fields of a signed `BalanceProof` other than the channel id (which the vault knows).
/// @dev Cumulative, per direction, signed by the sender of that direction.
struct BalanceData {
    /// @dev Strictly increasing per direction; 0 means "no proof" (nothing ever sent).
    uint64 nonce;
    /// @dev Total ever sent in this direction by completed transfers.
    uint256 transferredAmount;
    /// @dev Total of the pending hash-time-locked transfers committed to by `locksRoot`.
    uint256 lockedAmount;
    /// @dev keccak256 over the pending locks, 96 bytes each; zero when there are none.
    bytes32 locksRoot;
}

/// @notice Everything a unilateral close froze, committed to by the vault's state word.
/// @dev Passed back in calldata to refute and settle; the vault checks it against its stored hash.
/// The ledger is kept asymmetrically (`total`, A's deposit and withdrawal) because B's share is
/// the residual: that makes conservation hold by construction.
struct DisputeState {
    /// @dev 0 when participant A closed, 1 when B did.
    uint8 closer;
    /// @dev Last second (unix time) at which a refutation is accepted.
    uint64 deadline;
    /// @dev depositA + depositB - withdrawnA - withdrawnB when the channel closed.
    uint256 total;
    uint256 depositA;
    uint256 withdrawnA;
    /// @dev The latest balance proof signed by A that reached the chain.
    BalanceData fromA;
    /// @dev The latest balance proof signed by B that reached the chain.
    BalanceData fromB;
}

/// @notice Funds still held for pending locks after settlement, per sending direction.
struct LockState {
    uint256 retainedA;
    bytes32 locksRootA;
    uint256 retainedB;
    bytes32 locksRootB;
}

/// @notice One pending hash-time-locked transfer.
/// @dev Goes to the receiver if its secret was registered at or before `expiration`, else back.
struct Lock {
    uint64 expiration;
    uint256 amount;
    bytes32 secretHash;
}

/// @notice A cumulative withdrawal from an open channel, signed by both participants.
/// @dev The destination is part of what both sign, so a withdrawal executes only the way it was
/// agreed: `target == address(0)` only through withdraw() (paid to `participant`), otherwise only
/// through withdrawInto() (deposited for `targetSide` in the vault `target`).
struct Withdrawal {
    address participant;
    uint256 totalWithdrawn;
    /// @dev Last second (unix time) at which the withdrawal may execute.
    uint64 expiry;
    /// @dev address(0) to pay `participant`; otherwise the vault (same factory, same asset) that
    /// receives the funds as a deposit.
    address target;
    /// @dev The participant's side (0 = A, 1 = B) in `target`'s channel; 0 when `target` is zero.
    uint8 targetSide;
}

/// @notice The terms of a cooperative close that the vault cannot know by itself.
/// @dev Both participants sign these with the channel id and the withdrawal total (both
/// participants' sum), which the vault knows, as the EIP-712 `CooperativeClose`. `depositA` and
/// `depositB` are the deposits when the close was agreed: a later withdrawal (which both must
/// sign) voids the close, but a later deposit (which anyone may make) does not: it is paid back
/// to its side on top of the payout.
struct CooperativeClose {
    uint256 payoutA;
    uint256 payoutB;
    uint256 depositA;
    uint256 depositB;
    /// @dev Last second (unix time) at which the close may execute.
    uint64 expiry;
}
