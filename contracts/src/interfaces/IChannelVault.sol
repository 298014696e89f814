// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {DisputeState, LockState} from "../libraries/ChannelTypes.sol";

// The vault also raises the errors it shares with the factory and the token library, declared
// once in libraries/Errors.sol: NotParticipant, WrongValue, DepositTooLarge, NothingReceived and
// TransferFailed.

/// @title IChannelVault
/// @notice Events and errors of a channel vault (the funds of one channel and the rules that move them).
interface IChannelVault {
    /// @notice A participant's cumulative deposit grew to `totalDeposit`.
    event Deposited(uint8 indexed side, uint256 totalDeposit);
    /// @notice A participant's cumulative withdrawal grew to `totalWithdrawn`.
    event Withdrawn(uint8 indexed side, uint256 totalWithdrawn);
    /// @notice Both participants agreed the final balances; the vault paid out and is settled.
    event CooperativelyClosed(uint256 payoutA, uint256 payoutB);
    /// @notice A participant closed unilaterally; `state` is what refute and settle take back.
    event Closed(DisputeState state);
    /// @notice A newer balance proof of the closer was accepted; `state` replaces the previous one.
    event Refuted(DisputeState state);
    /// @notice The challenge period ended and the vault paid out.
    event Settled(uint256 payoutA, uint256 payoutB);
    /// @notice Settlement kept funds for pending locks; `locks` is what unlock takes back.
    /// @dev Emitted only when something is retained, so the common settlement logs less.
    event LocksRetained(LockState locks);
    /// @notice The pending locks of one direction were resolved.
    event Unlocked(uint8 indexed senderSide, uint256 toReceiver, uint256 toSender, LockState locks);
    /// @notice The receiver released these pending locks sent by `senderSide` (LockRelease
    /// signatures): unlock returns each to its sender, whatever the secret registry says.
    event LocksReleased(uint8 indexed senderSide, bytes32[] secretHashes);
    /// @notice A payout failed (a rejecting recipient or token); `to` can pull it with claim().
    event PayoutDeferred(address indexed to, uint256 amount);
    /// @notice A deferred payout was pulled.
    event Claimed(address indexed owner, address to, uint256 amount);

    /// @notice Only the factory may initialise a vault.
    error NotFactory();
    /// @notice The vault was initialised already.
    error AlreadyInitialised();
    /// @notice The channel parameters passed in do not belong to this vault.
    error WrongChannel();
    /// @notice The operation needs an open channel.
    error ChannelNotOpen();
    /// @notice The operation needs a closed (disputed) channel; releaseLocks also takes a settled one.
    error ChannelNotClosed();
    /// @notice The operation needs a settled channel with pending locks.
    error NothingToUnlock();
    /// @notice Side must be 0 (participant A) or 1 (participant B).
    error InvalidSide(uint8 side);
    /// @notice A cumulative total must grow; `current` is the total now recorded.
    error TotalNotIncreasing(uint256 current, uint256 requested);
    /// @notice The withdrawals would take more than the participants deposited.
    error WithdrawalExceedsDeposits(uint256 totalWithdrawn, uint256 totalDeposited);
    /// @notice The signed withdrawal or close has expired.
    error Expired(uint64 expiry);
    /// @notice The payouts exceed what the vault holds.
    error PayoutsExceedBalance(uint256 payouts, uint256 balance);
    /// @notice A signature was made by someone other than the expected signer.
    error WrongSigner(address expected, address recovered);
    /// @notice A balance proof with nonce 0 must be empty; or an amount exceeds 2^128 - 1.
    error InvalidBalanceProof();
    /// @notice A refutation must carry a higher nonce than the proof on record.
    error StaleNonce(uint64 recorded, uint64 submitted);
    /// @notice The dispute or lock state passed in is not the one the vault committed to.
    error StateMismatch();
    /// @notice A refutation arrived after the challenge period.
    error ChallengePeriodOver(uint64 deadline);
    /// @notice Settlement was attempted before the challenge period ended.
    error ChallengePeriodNotOver(uint64 deadline);
    /// @notice The locks passed in do not hash to the committed locks root.
    error LocksMismatch();
    /// @notice A lock neither released nor with its secret registered has not expired yet, so it
    /// cannot be decided.
    error LockNotExpired(bytes32 secretHash, uint64 expiration);
    /// @notice claim() found nothing owed to the caller, or nothing left in the vault to pay it with.
    error NothingOwed();
    /// @notice withdraw() got a withdrawal signed as a move into another vault, or withdrawInto()
    /// one signed to be paid out.
    error WrongDestination(address target);
    /// @notice A withdrawal's target is not a vault of this factory holding this vault's asset.
    error NotAVault(address target);
    /// @notice A cooperative close signed a deposit above what the vault records.
    error LedgerMismatch();
    /// @notice releaseLocks got a different number of locks and signatures.
    error LengthMismatch(uint256 locks, uint256 signatures);
}
