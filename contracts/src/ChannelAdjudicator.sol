// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {VaultBase} from "./VaultBase.sol";
import {BalanceData, ChannelParams, DisputeState, Lock, LockState} from "./libraries/ChannelTypes.sol";
import {Settlement} from "./libraries/Settlement.sol";
import {SignedMessages} from "./libraries/SignedMessages.sol";
import {StateWord} from "./libraries/StateWord.sol";

/// @title ChannelAdjudicator
/// @notice Unilateral close, challenge period, refutation by a newer state, settlement, lock
/// releases, unlocking.
/// @dev Part of every vault (no cross-contract call): the vault's state word commits to the
/// DisputeState, which callers pass back in calldata; events publish it so that a watchtower or a
/// restarted client can always rebuild it from the chain.
abstract contract ChannelAdjudicator is VaultBase {
    using StateWord for uint256;

    /// @notice Closes the channel with the counterparty's latest balance proof; starts the challenge period.
    /// @dev Only a participant may close. Pass nonce 0 and an empty proof (no signature) if the
    /// counterparty never sent anything.
    /// @param counterpartyProof The newest balance proof the counterparty signed for the caller.
    function close(ChannelParams calldata p, BalanceData calldata counterpartyProof, bytes calldata signature)
        external
        nonReentrant
    {
        bytes32 id = _channelId(p);
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        uint8 closer = _sideOf(p, msg.sender);
        _checkBalanceProof(id, counterpartyProof, signature, closer == 0 ? p.participantB : p.participantA);

        (uint256 depositA, uint256 depositB) = word.deposits();
        (uint256 withdrawnA, uint256 withdrawnB) = _withdrawals();
        // Every field is set below except the proof of the closer's own direction, which starts
        // empty (nonce 0) until the counterparty refutes.
        // slither-disable-next-line uninitialized-local
        DisputeState memory s;
        s.closer = closer;
        s.deadline = uint64(block.timestamp) + p.challengePeriod;
        s.total = depositA + depositB - withdrawnA - withdrawnB;
        s.depositA = depositA;
        s.withdrawnA = withdrawnA;
        if (closer == 0) s.fromB = counterpartyProof;
        else s.fromA = counterpartyProof;

        _word = StateWord.commit(keccak256(abi.encode(s)), StateWord.CLOSED);
        emit Closed(s);
    }

    /// @notice Replaces the closer's balance proof on record with a newer one, before the deadline.
    /// @dev The non-closing participant may call this directly; anyone else (a watchtower) must
    /// carry the non-closing participant's TowerAuthorisation over exactly this proof. A refutation
    /// never moves the deadline.
    /// @param s The dispute state last emitted (Closed or Refuted).
    /// @param closerProof A balance proof signed by the closer, with a higher nonce than on record.
    /// @param authorisation The non-closer's signed TowerAuthorisation; ignored when they call themselves.
    function refute(
        ChannelParams calldata p,
        DisputeState calldata s,
        BalanceData calldata closerProof,
        bytes calldata closerSignature,
        bytes calldata authorisation
    ) external nonReentrant {
        bytes32 id = _channelId(p);
        uint256 word = _checkDispute(s);
        if (block.timestamp > s.deadline) revert ChallengePeriodOver(s.deadline);
        (address closer, address nonCloser) =
            s.closer == 0 ? (p.participantA, p.participantB) : (p.participantB, p.participantA);
        uint64 recorded = s.closer == 0 ? s.fromA.nonce : s.fromB.nonce;
        if (closerProof.nonce <= recorded) revert StaleNonce(recorded, closerProof.nonce);

        bytes32 proofHash = _checkBalanceProof(id, closerProof, closerSignature, closer);
        if (msg.sender != nonCloser) {
            _checkSigner(SignedMessages.towerAuthorisationHash(proofHash), authorisation, nonCloser);
        }

        DisputeState memory next = s;
        if (s.closer == 0) next.fromA = closerProof;
        else next.fromB = closerProof;
        _word = StateWord.commit(keccak256(abi.encode(next)), StateWord.CLOSED).keepReleases(word);
        emit Refuted(next);
    }

    /// @notice After the challenge period, pays both participants and keeps pending locks' funds.
    /// @dev Anyone may call. A payee that rejects its payout is recorded for claim() instead.
    function settle(ChannelParams calldata p, DisputeState calldata s) external nonReentrant {
        _channelId(p);
        uint256 word = _checkDispute(s);
        if (block.timestamp <= s.deadline) revert ChallengePeriodNotOver(s.deadline);

        Settlement.Outcome memory o = Settlement.outcome(s);
        if (o.retainedA != 0 || o.retainedB != 0) {
            LockState memory locks = LockState(o.retainedA, s.fromA.locksRoot, o.retainedB, s.fromB.locksRoot);
            _word = StateWord.commit(keccak256(abi.encode(locks)), StateWord.SETTLED).keepReleases(word);
            emit LocksRetained(locks);
        } else {
            _word = StateWord.keepReleases(StateWord.SETTLED, word);
        }
        emit Settled(o.payoutA, o.payoutB);

        address asset = _token();
        _payOrDefer(asset, p.participantA, o.payoutA);
        _payOrDefer(asset, p.participantB, o.payoutB);
    }

    /// @notice Records that the receiver gave up these pending locks sent by `senderSide`, so
    /// that unlock returns each to its sender even if its secret was registered in time.
    /// @dev The answer to a close with an old proof that still holds a lock the receiver released
    /// off-chain. Allowed once the channel is closed: during the challenge period, after it, and
    /// after settlement until `senderSide`'s locks are unlocked (later it changes nothing).
    /// Anyone may call: each `signatures[i]` must be the receiver's (the participant opposite
    /// `senderSide`) LockRelease over `locks[i]`. Recording a release again changes nothing. A
    /// release covers every lock of that direction with the same expiration, amount and secret hash.
    /// Besides each release, the state word records that `senderSide` has one (StateWord.withRelease),
    /// so that unlock looks releases up only for a side that has some.
    /// @param senderSide The side (0 = A, 1 = B) that sent the locks.
    /// @param locks The released locks; they need not be all of the sender's, nor in order.
    /// @param signatures The receiver's LockRelease signature for each lock, in the same order.
    function releaseLocks(
        ChannelParams calldata p,
        uint8 senderSide,
        Lock[] calldata locks,
        bytes[] calldata signatures
    ) external nonReentrant {
        bytes32 id = _channelId(p);
        uint256 word = _word;
        uint8 status = word.status();
        if (status != StateWord.CLOSED && status != StateWord.SETTLED) revert ChannelNotClosed();
        if (senderSide > 1) revert InvalidSide(senderSide);
        if (locks.length != signatures.length) revert LengthMismatch(locks.length, signatures.length);
        address receiver = senderSide == 0 ? p.participantB : p.participantA;

        bytes32[] memory secretHashes = new bytes32[](locks.length);
        for (uint256 i = 0; i < locks.length; ++i) {
            Lock calldata lock = locks[i];
            _checkSigner(SignedMessages.lockReleaseHash(id, lock), signatures[i], receiver);
            _released[_releaseKey(senderSide, lock)] = true;
            secretHashes[i] = lock.secretHash;
        }
        if (locks.length != 0 && !word.hasRelease(senderSide)) _word = word.withRelease(senderSide);
        emit LocksReleased(senderSide, secretHashes);
    }

    /// @notice Resolves the pending locks sent by `senderSide` against the secret registry and the
    /// recorded releases.
    /// @dev A lock whose receiver released it (releaseLocks) goes back to the sender, expired or
    /// not, whatever the registry says. Any other lock goes to the receiver if its secret was
    /// registered by its expiration, back to the sender otherwise; a lock that is neither
    /// released nor revealed and has not yet expired cannot be decided, so the call reverts until
    /// it expires. Anyone may call.
    /// @param s The lock state last emitted (Settled or Unlocked).
    /// @param locks Every lock committed to by the sender's locks root, in order.
    function unlock(ChannelParams calldata p, LockState calldata s, uint8 senderSide, Lock[] calldata locks)
        external
        nonReentrant
    {
        _channelId(p);
        uint256 word = _word;
        if (word.status() != StateWord.SETTLED || !word.hasCommitment()) revert NothingToUnlock();
        if (!word.commits(keccak256(abi.encode(s)))) revert StateMismatch();
        if (senderSide > 1) revert InvalidSide(senderSide);
        (uint256 retained, bytes32 root) =
            senderSide == 0 ? (s.retainedA, s.locksRootA) : (s.retainedB, s.locksRootB);
        if (retained == 0) revert NothingToUnlock();
        if (Settlement.locksRoot(locks) != root) revert LocksMismatch();

        uint256 toReceiver = _revealedAmount(locks, retained, senderSide, word.hasRelease(senderSide));
        uint256 toSender = retained - toReceiver;

        LockState memory next = s;
        if (senderSide == 0) (next.retainedA, next.locksRootA) = (0, 0);
        else (next.retainedB, next.locksRootB) = (0, 0);
        uint256 nextWord = next.retainedA == 0 && next.retainedB == 0
            ? StateWord.SETTLED
            : StateWord.commit(keccak256(abi.encode(next)), StateWord.SETTLED);
        _word = nextWord.keepReleases(word);
        emit Unlocked(senderSide, toReceiver, toSender, next);

        (address sender, address receiver) =
            senderSide == 0 ? (p.participantA, p.participantB) : (p.participantB, p.participantA);
        address asset = _token();
        _payOrDefer(asset, receiver, toReceiver);
        _payOrDefer(asset, sender, toSender);
    }

    /// @dev Returns the state word, whose release flags the caller's next write carries over.
    function _checkDispute(DisputeState calldata s) private view returns (uint256 word) {
        word = _word;
        if (word.status() != StateWord.CLOSED) revert ChannelNotClosed();
        if (!word.commits(keccak256(abi.encode(s)))) revert StateMismatch();
    }

    /// @dev Sum of the locks decided for the receiver, capped at `cap` without ever overflowing.
    /// A lock sent by `senderSide` is looked up among the releases only if that side has any
    /// (`anyReleased`, the state word's flag) and the release decides it (revealed in time, or not
    /// expired yet); an expired, unrevealed lock goes back anyway.
    function _revealedAmount(Lock[] calldata locks, uint256 cap, uint8 senderSide, bool anyReleased)
        private
        view
        returns (uint256 total)
    {
        for (uint256 i = 0; i < locks.length; ++i) {
            Lock calldata lock = locks[i];
            uint256 revealedAt = _REGISTRY.revealedAt(lock.secretHash);
            if (revealedAt != 0 && revealedAt <= lock.expiration) {
                if (anyReleased && _released[_releaseKey(senderSide, lock)]) continue;
                total = lock.amount >= cap - total ? cap : total + lock.amount;
            } else if (block.timestamp <= lock.expiration) {
                if (anyReleased && _released[_releaseKey(senderSide, lock)]) continue;
                revert LockNotExpired(lock.secretHash, lock.expiration);
            }
        }
    }

    /// @dev Where a release of `lock`, sent by `senderSide`, is recorded in `_released`.
    function _releaseKey(uint8 senderSide, Lock calldata lock) private pure returns (bytes32) {
        return keccak256(abi.encode(senderSide, lock.expiration, lock.amount, lock.secretHash));
    }
}
