// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelTest} from "../utils/KeelTest.sol";
import {ChannelFactory} from "../../src/ChannelFactory.sol";
import {ChannelVault} from "../../src/ChannelVault.sol";
import {BalanceData, ChannelParams, DisputeState, Withdrawal} from "../../src/libraries/ChannelTypes.sol";
import {RejectingRecipient} from "../mocks/RejectingRecipient.sol";

/// @notice Drives one ETH channel through random lifecycles for ChannelInvariants.
/// @dev Actors are the two participants and a stranger (who tops up, settles, refutes as a watchtower
/// and receives claims). Bob's address runs RejectingRecipient code, so his payouts are sometimes
/// deferred and claimed later. The handler keeps the off-chain model (every balance proof each side
/// signed) and the dispute state on record; it never asserts itself (a revert in a handler is
/// dropped), it counts surprises in `ghost_violations` for the invariants to check.
/// Inherits KeelTest only for its signing helpers; its setUp() is never called.
contract ChannelHandler is KeelTest {
    uint256 internal constant MAX_STEP = 100 ether;

    ChannelVault public vault;
    ChannelParams internal _p;
    address public stranger;
    address[] public actors;

    /// @dev Every balance proof signed per direction (0: A to B, 1: B to A), in nonce order.
    mapping(uint8 direction => BalanceData[] proofs) internal _signed;
    /// @dev The dispute state the vault committed to, once closed.
    DisputeState internal _dispute;
    bool public closed;
    /// @dev Deposits, withdrawals and payments made so far.
    uint256 internal _openActions;

    uint256 public ghost_deposited;
    uint256 public ghost_paidOut;
    mapping(address payee => uint256 amount) public ghost_received;
    /// @notice Nonce currently on record per direction, and the highest ever on record.
    uint64[2] public ghost_recordedNonce;
    uint64[2] public ghost_maxNonce;
    bool public ghost_settled;
    /// @notice Calls whose outcome contradicted the model (accepted when they should fail, or the
    /// reverse, or paid other than the settlement rule says).
    uint256 public ghost_violations;
    uint256 public ghost_now;
    /// @notice Calls per action, and calls that changed something (for tuning the action mix).
    mapping(bytes4 selector => uint256 count) public calls;
    mapping(bytes4 selector => uint256 count) public effective;

    constructor(ChannelFactory factory_, uint256 openDeposit) {
        factory = factory_;
        alice = vm.addr(alicePk);
        bob = vm.addr(bobPk);
        stranger = makeAddr("stranger");
        actors = [alice, bob, stranger];
        ghost_now = block.timestamp;

        _p = ethParams();
        vm.deal(alice, openDeposit);
        vm.prank(alice);
        (address v,) = factory.open{value: openDeposit}(_p, openDeposit);
        vault = ChannelVault(v);
        ghost_deposited = openDeposit;
    }

    modifier step() {
        vm.warp(ghost_now);
        calls[msg.sig]++;
        uint256 done = effective[msg.sig];
        _;
        if (effective[msg.sig] != done && vault.status() == 1) _openActions++;
    }

    // ---------------------------------------------------------------- actions

    function deposit(uint256 actorSeed, uint256 sideSeed, uint256 amount) external step {
        if (vault.status() != 1) return;
        address actor = actors[actorSeed % actors.length];
        // casting to uint8 is safe because the value is 0 or 1.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint8 side = uint8(sideSeed % 2);
        amount = bound(amount, 1, MAX_STEP);
        uint256 newTotal = vault.totalDeposit(side) + amount;
        vm.deal(actor, amount);
        vm.prank(actor);
        vault.deposit{value: amount}(side, newTotal);
        ghost_deposited += amount;
        effective[msg.sig]++;
    }

    /// @dev Both sign a withdrawal of at most the side's off-chain balance; a stranger may submit it.
    function withdraw(uint256 sideSeed, uint256 amount, uint256 submitterSeed) external step {
        if (vault.status() != 1) return;
        // casting to uint8 is safe because the value is 0 or 1.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint8 side = uint8(sideSeed % 2);
        uint256 available = offChainBalance(side);
        if (available == 0) return;
        amount = bound(amount, 1, available);
        address who = side == 0 ? alice : bob;
        Withdrawal memory w = payout(who, vault.totalWithdrawn(side) + amount, uint64(block.timestamp));
        bytes memory sigA = signWithdrawal(alicePk, _p, address(vault), w);
        bytes memory sigB = signWithdrawal(bobPk, _p, address(vault), w);
        uint256[3] memory before = _balances();
        vm.prank(actors[submitterSeed % actors.length]);
        try vault.withdraw(_p, w, sigA, sigB) {
            _recordPayouts(before);
            if (ghost_received[who] == 0) ghost_violations++;
            effective[msg.sig]++;
        } catch {
            // Only a rejecting bob may make a withdrawal fail (TransferFailed).
            if (who != bob || _bobAccepts()) ghost_violations++;
        }
    }

    /// @dev An off-chain payment: the sender signs the next balance proof of its direction.
    function pay(uint256 directionSeed, uint256 amount) external step {
        if (vault.status() != 1) return;
        // casting to uint8 is safe because the value is 0 or 1.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint8 direction = uint8(directionSeed % 2);
        amount = bound(amount, 0, offChainBalance(direction));
        BalanceData[] storage proofs = _signed[direction];
        BalanceData memory last = proofs.length == 0 ? emptyBalance() : proofs[proofs.length - 1];
        proofs.push(BalanceData(last.nonce + 1, last.transferredAmount + amount, 0, bytes32(0)));
        effective[msg.sig]++;
    }

    /// @dev A participant closes with one of the proofs the counterparty signed (usually the latest).
    function close(uint256 closerSeed, uint256 proofSeed) external step {
        if (vault.status() != 1 || !_timeToEnd(closerSeed)) return;
        bool aliceCloses = closerSeed % 2 == 0;
        // The closer holds the counterparty's proofs: direction B to A when alice closes.
        BalanceData memory proof = _pick(aliceCloses ? 1 : 0, proofSeed);
        _dispute = closeWith(_p, vault, aliceCloses, proof);
        closed = true;
        uint8 direction = aliceCloses ? 1 : 0;
        _noteRecorded(direction, proof.nonce);
        effective[msg.sig]++;
    }

    /// @dev The non-closer, or the stranger as its watchtower, submits one of the closer's proofs,
    /// possibly a stale one; the vault must accept it exactly when it is newer and in time.
    function refute(uint256 proofSeed, uint256 callerSeed) external step {
        if (!closed || vault.status() != 2) return;
        DisputeState memory s = _dispute;
        uint8 direction = s.closer;
        BalanceData memory proof = _pick(direction, proofSeed);
        if (proof.nonce == 0) return;
        uint64 recorded = direction == 0 ? s.fromA.nonce : s.fromB.nonce;
        bool expected = block.timestamp <= s.deadline && proof.nonce > recorded;

        (uint256 closerPk, uint256 nonCloserPk, address nonCloser) =
            s.closer == 0 ? (alicePk, bobPk, bob) : (bobPk, alicePk, alice);
        bytes memory sig = signBalance(closerPk, _p, address(vault), proof);
        bool byTower = callerSeed % 2 == 1;
        bytes memory auth = byTower ? signTowerAuth(nonCloserPk, _p, address(vault), proof) : bytes("");
        vm.prank(byTower ? stranger : nonCloser);
        try vault.refute(_p, s, proof, sig, auth) {
            if (!expected) ghost_violations++;
            if (direction == 0) _dispute.fromA = proof;
            else _dispute.fromB = proof;
            _noteRecorded(direction, proof.nonce);
            effective[msg.sig]++;
        } catch {
            if (expected) ghost_violations++;
        }
    }

    function warp(uint256 secondsAhead) external step {
        ghost_now += bound(secondsAhead, 0, 1 days);
        vm.warp(ghost_now);
    }

    function settle(uint256 callerSeed) external step {
        if (!closed || vault.status() != 2) return;
        DisputeState memory s = _dispute;
        (uint256 payoutA, uint256 payoutB) = _expectedPayouts(s);
        uint256[3] memory before = _balances();
        uint256 owedBobBefore = vault.owed(bob);
        vm.prank(actors[callerSeed % actors.length]);
        try vault.settle(_p, s) {
            if (block.timestamp <= s.deadline) ghost_violations++;
            ghost_settled = true;
            _recordPayouts(before);
            if (alice.balance - before[0] != payoutA) ghost_violations++;
            if (bob.balance - before[1] + vault.owed(bob) - owedBobBefore != payoutB) ghost_violations++;
            effective[msg.sig]++;
        } catch {
            if (block.timestamp > s.deadline) ghost_violations++;
        }
    }

    /// @dev Both sign a split of the vault: the honest balances, or any split of what it holds.
    function cooperativeClose(uint256 splitSeed, uint256 callerSeed) external step {
        if (vault.status() != 1 || !_timeToEnd(splitSeed)) return;
        uint256 held = address(vault).balance;
        (uint256 payoutA, uint256 payoutB) =
            splitSeed % 2 == 0 ? (offChainBalance(0), offChainBalance(1)) : (bound(splitSeed, 0, held), 0);
        if (splitSeed % 2 == 1) payoutB = held - payoutA;
        bytes memory sigA = signCoopClose(alicePk, _p, address(vault), payoutA, payoutB);
        bytes memory sigB = signCoopClose(bobPk, _p, address(vault), payoutA, payoutB);
        uint256[3] memory before = _balances();
        vm.prank(actors[callerSeed % actors.length]);
        vault.cooperativeClose(_p, terms(address(vault), payoutA, payoutB), sigA, sigB);
        ghost_settled = true;
        _recordPayouts(before);
        effective[msg.sig]++;
    }

    /// @dev A participant pulls a deferred payout to itself or to the stranger.
    function claim(uint256 actorSeed, uint256 toSeed) external step {
        address payee = actorSeed % 2 == 0 ? alice : bob;
        if (vault.owed(payee) == 0) return;
        address to = toSeed % 2 == 0 ? payee : stranger;
        uint256[3] memory before = _balances();
        vm.prank(payee);
        try vault.claim(to) {
            _recordPayouts(before);
            effective[msg.sig]++;
        } catch {
            if (to != bob || _bobAccepts()) ghost_violations++;
        }
    }

    /// @dev Bob's address starts out rejecting ETH; this flips it.
    function toggleBobAccepts() external step {
        RejectingRecipient(payable(bob)).setAccepting(!_bobAccepts());
    }

    // ---------------------------------------------------------------- views for the invariants

    /// @notice `side`'s balance in the off-chain model (deposits, withdrawals and latest payments).
    function offChainBalance(uint8 side) public view returns (uint256) {
        if (vault.status() != 1) return 0;
        uint256 sentBySide = _latest(side).transferredAmount;
        uint256 receivedBySide = _latest(1 - side).transferredAmount;
        return vault.totalDeposit(side) + receivedBySide - sentBySide - vault.totalWithdrawn(side);
    }

    /// @notice The dispute state the handler believes is on record.
    function dispute() external view returns (DisputeState memory) {
        return _dispute;
    }

    function latestNonce(uint8 direction) external view returns (uint64) {
        return _latest(direction).nonce;
    }

    // ---------------------------------------------------------------- internals

    function _latest(uint8 direction) internal view returns (BalanceData memory) {
        BalanceData[] storage proofs = _signed[direction];
        return proofs.length == 0 ? emptyBalance() : proofs[proofs.length - 1];
    }

    /// @dev Half the time the latest proof of `direction`, otherwise any (or none).
    function _pick(uint8 direction, uint256 seed) internal view returns (BalanceData memory) {
        BalanceData[] storage proofs = _signed[direction];
        if (proofs.length == 0) return emptyBalance();
        if (seed % 2 == 0) return proofs[proofs.length - 1];
        uint256 index = (seed >> 1) % (proofs.length + 1);
        return index == proofs.length ? emptyBalance() : proofs[index];
    }

    /// @dev Whether to end the channel now: only after a few deposits, withdrawals or payments, and
    /// then one time in four. The call count is mixed in because the fuzzer favours seeds like 0
    /// and 1, so a plain `seed % 4` would end most channels within a few calls.
    function _timeToEnd(uint256 seed) internal view returns (bool) {
        return _openActions >= 4 + seed % 8 && uint256(keccak256(abi.encode(seed, calls[msg.sig]))) % 4 == 0;
    }

    function _noteRecorded(uint8 direction, uint64 nonce) internal {
        ghost_recordedNonce[direction] = nonce;
        if (nonce > ghost_maxNonce[direction]) ghost_maxNonce[direction] = nonce;
    }

    /// @dev The settlement rule written out for proofs without locks.
    function _expectedPayouts(DisputeState memory s) internal pure returns (uint256 a, uint256 b) {
        uint256 credit = s.depositA + s.fromB.transferredAmount;
        uint256 debit = s.withdrawnA + s.fromA.transferredAmount + s.fromA.lockedAmount;
        a = credit > debit ? credit - debit : 0;
        if (a > s.total) a = s.total;
        b = s.total - a;
    }

    function _bobAccepts() internal view returns (bool) {
        return RejectingRecipient(payable(bob)).accepting();
    }

    function _balances() internal view returns (uint256[3] memory b) {
        (b[0], b[1], b[2]) = (alice.balance, bob.balance, stranger.balance);
    }

    /// @dev Only the vault moves ETH during a payout call, so every increase came from it.
    function _recordPayouts(uint256[3] memory before) internal {
        for (uint256 i = 0; i < 3; ++i) {
            uint256 gained = actors[i].balance - before[i];
            ghost_received[actors[i]] += gained;
            ghost_paidOut += gained;
        }
    }
}
