// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelTest} from "../utils/KeelTest.sol";
import {ChannelFactory} from "../../src/ChannelFactory.sol";
import {ChannelVault} from "../../src/ChannelVault.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    DisputeState,
    Lock,
    LockState,
    Withdrawal
} from "../../src/libraries/ChannelTypes.sol";
import {BlocklistToken} from "../mocks/BlocklistToken.sol";
import {RejectingRecipient} from "../mocks/RejectingRecipient.sol";

/// @notice Drives a channel (ETH or an ERC-20) through random lifecycles for ChannelInvariants.
/// @dev The channel under test is `vault` (alice-bob). A second alice-bob channel of the same asset,
/// `other`, receives moves out of it (withdrawInto) and deposits, so funds are conserved across two
/// vaults. Actors are the two participants and a stranger (who deposits for either side, submits
/// withdrawals, moves, closes and settlements, refutes as a watchtower and receives claims).
/// Payments may carry a hash-time lock, whose secret may be registered before or after it expires;
/// once the channel is closed its receiver may release it (`releaseLocks`); settlement retains
/// locked funds and `unlock` resolves them. A cooperative close may be signed
/// and submitted later, with deposits in between. Bob's payouts can be refused (his address rejects
/// ETH, or the token blocks him), so payouts are deferred and claimed.
/// The handler keeps the off-chain model (every balance proof each side signed, with its lock),
/// and never reverts itself: every vault call is made in a try/catch, and any outcome the model
/// did not predict (accepted when it should fail, the reverse, or paid other than the rules say)
/// is counted in `ghost_violations` for the invariants to check. The invariant profiles set
/// fail_on_revert, so a handler that does revert (a bug here) fails the run as well.
/// Inherits KeelTest only for its signing helpers; its setUp() is never called.
contract ChannelHandler is KeelTest {
    uint256 internal constant MAX_STEP = 100 ether;
    uint64 internal constant LOCK_LIFETIME = 2 days;

    /// @dev One balance proof a sender signed, and the lock it carries (amount 0: none).
    struct Signed {
        BalanceData proof;
        Lock lock;
        bytes32 secret;
    }

    ChannelVault public vault;
    ChannelVault public other;
    /// @notice The channels' asset: address(0) for ETH, else a BlocklistToken.
    address public asset;
    ChannelParams internal _p;
    ChannelParams internal _q;
    address public stranger;
    address[] public actors;

    /// @dev Every balance proof signed per direction (0: A to B, 1: B to A), in nonce order.
    mapping(uint8 direction => Signed[] proofs) internal _signed;
    /// @dev The dispute state the vault committed to, once closed, and the locks of each proof in it.
    DisputeState internal _dispute;
    Lock[2] internal _disputeLock;
    bool public closed;
    /// @dev Locks whose release the vault recorded, keyed as the vault keys them.
    mapping(bytes32 releaseKey => bool released) internal _released;
    /// @dev The lock state the vault committed to after a settlement that retained funds.
    LockState internal _lockState;
    bool public locksPending;
    /// @dev A cooperative close both signed and not yet submitted; the channel is frozen meanwhile.
    CooperativeClose internal _pendingClose;
    bytes internal _pendingSigA;
    bytes internal _pendingSigB;
    bool public closePending;
    /// @dev Deposits, withdrawals, moves and payments that took effect.
    uint256 public openActions;

    uint256 public ghost_deposited;
    uint256 public ghost_paidOut;
    mapping(address payee => uint256 amount) public ghost_received;
    /// @notice Nonce currently on record per direction, and the highest ever on record.
    uint64[2] public ghost_recordedNonce;
    uint64[2] public ghost_maxNonce;
    bool public ghost_settled;
    /// @notice Calls whose outcome contradicted the model.
    uint256 public ghost_violations;
    uint256 public ghost_now;
    /// @notice Calls per action, and calls that changed something.
    mapping(bytes4 selector => uint256 count) public calls;
    mapping(bytes4 selector => uint256 count) public effective;

    constructor(ChannelFactory factory_, address asset_, uint256 openDeposit) {
        factory = factory_;
        registry = factory_.secretRegistry();
        asset = asset_;
        alice = vm.addr(alicePk);
        bob = vm.addr(bobPk);
        stranger = makeAddr("stranger");
        actors = [alice, bob, stranger];
        ghost_now = block.timestamp;

        _p = ChannelParams(alice, bob, asset_, PERIOD, bytes32(uint256(1)));
        _q = ChannelParams(alice, bob, asset_, PERIOD, bytes32(uint256(2)));
        vault = ChannelVault(_open(_p, openDeposit));
        other = ChannelVault(_open(_q, 0));
        ghost_deposited = openDeposit;
    }

    /// @notice Handler calls made in this run.
    uint256 public totalCalls;

    modifier step() {
        vm.warp(ghost_now);
        calls[msg.sig]++;
        totalCalls++;
        _;
    }

    /// @dev Marks the action as having taken effect.
    function _effective() internal {
        effective[msg.sig]++;
    }

    // ---------------------------------------------------------------- actions

    /// @dev Anyone pays into either side of either channel.
    function deposit(uint256 actorSeed, uint256 sideSeed, uint256 amount, bool intoOther) external step {
        ChannelVault v = intoOther ? other : vault;
        if (v.status() != 1) return;
        address actor = actors[actorSeed % actors.length];
        uint8 side = _side(sideSeed);
        amount = bound(amount, 1, MAX_STEP);
        uint256 newTotal = v.totalDeposit(side) + amount;
        uint256 value = _fund(actor, address(v), amount);
        vm.prank(actor);
        try v.deposit{value: value}(side, newTotal) {
            ghost_deposited += amount;
            if (!intoOther) openActions++;
            _effective();
        } catch {
            ghost_violations++;
        }
    }

    /// @dev Both sign a withdrawal of at most the side's off-chain balance; anyone may submit it.
    function withdraw(uint256 sideSeed, uint256 amount, uint256 submitterSeed) external step {
        if (vault.status() != 1 || closePending) return;
        uint8 side = _side(sideSeed);
        uint256 available = offChainBalance(side);
        if (available == 0) return;
        amount = bound(amount, 1, available);
        address who = side == 0 ? alice : bob;
        Withdrawal memory w = payout(who, vault.totalWithdrawn(side) + amount, uint64(block.timestamp));
        (bytes memory sigA, bytes memory sigB) = _sigs(w);
        uint256[3] memory before = _balances();
        vm.prank(actors[submitterSeed % actors.length]);
        try vault.withdraw(_p, w, sigA, sigB) {
            _recordPayouts(before);
            if (_balanceOf(who) - before[side] != amount) ghost_violations++;
            openActions++;
            _effective();
        } catch {
            // Only a refused payee may make a withdrawal fail (TransferFailed).
            if (who != bob || _bobAccepts()) ghost_violations++;
        }
    }

    /// @dev Both sign a move of part of a side's balance into its side of `other`; anyone submits it.
    function moveToOther(uint256 sideSeed, uint256 amount, uint256 submitterSeed) external step {
        if (vault.status() != 1 || other.status() != 1 || closePending) return;
        uint8 side = _side(sideSeed);
        uint256 available = offChainBalance(side);
        if (available == 0) return;
        amount = bound(amount, 1, available);
        address who = side == 0 ? alice : bob;
        Withdrawal memory w =
            move(who, vault.totalWithdrawn(side) + amount, uint64(block.timestamp), address(other), side);
        (bytes memory sigA, bytes memory sigB) = _sigs(w);
        uint256 otherBefore = other.totalDeposit(side);
        uint256 heldBefore = _balanceOf(address(vault)) + _balanceOf(address(other));
        vm.prank(actors[submitterSeed % actors.length]);
        try vault.withdrawInto(_p, w, sigA, sigB) {
            if (other.totalDeposit(side) != otherBefore + amount) ghost_violations++;
            // A move pays no one: what left one vault is in the other.
            if (_balanceOf(address(vault)) + _balanceOf(address(other)) != heldBefore) ghost_violations++;
            openActions++;
            _effective();
        } catch {
            ghost_violations++;
        }
    }

    /// @dev An off-chain payment of direction `directionSeed % 2`: the previous lock (if any) is
    /// claimed or refunded, `amount` is paid, and a new lock may be added.
    function pay(uint256 directionSeed, uint256 amount, uint256 lockSeed, uint256 lockAmount) external step {
        if (vault.status() != 1 || closePending) return;
        uint8 d = _side(directionSeed);
        Signed memory last = _latest(d);
        uint256 transferred = last.proof.transferredAmount;
        if (last.lock.amount != 0 && lockSeed % 2 == 0) transferred += last.lock.amount;
        // What the sender holds once the previous lock is resolved.
        uint256 available = vault.totalDeposit(d) + _latest(1 - d).proof.transferredAmount - transferred
            - vault.totalWithdrawn(d);
        amount = bound(amount, 0, available);
        Signed memory next;
        next.proof = BalanceData(last.proof.nonce + 1, transferred + amount, 0, bytes32(0));
        if (lockSeed % 3 == 0 && available > amount) {
            next.lock = Lock(
                uint64(block.timestamp) + LOCK_LIFETIME, bound(lockAmount, 1, available - amount), bytes32(0)
            );
            next.secret = keccak256(abi.encode(d, next.proof.nonce));
            next.lock.secretHash = secretHashOf(next.secret);
            Lock[] memory one = new Lock[](1);
            one[0] = next.lock;
            next.proof.lockedAmount = next.lock.amount;
            next.proof.locksRoot = lockHash(one);
        }
        _signed[d].push(next);
        openActions++;
        _effective();
    }

    /// @dev The receiver of a direction's latest lock registers its secret (in time or too late).
    function revealSecret(uint256 directionSeed) external step {
        Signed memory last = _latest(_side(directionSeed));
        if (last.lock.amount == 0 || registry.revealedAt(last.lock.secretHash) != 0) return;
        try registry.registerSecret(last.secret) returns (bool) {
            _effective();
        } catch {
            ghost_violations++;
        }
    }

    /// @dev A participant closes with one of the proofs the counterparty signed (usually the latest).
    function close(uint256 closerSeed, uint256 proofSeed) external step {
        if (vault.status() != 1 || !_timeToEnd(closerSeed)) return;
        bool aliceCloses = closerSeed % 2 == 0;
        // The closer holds the counterparty's proofs: direction B to A when alice closes.
        uint8 direction = aliceCloses ? 1 : 0;
        Signed memory picked = _pick(direction, proofSeed);
        BalanceData memory proof = picked.proof;
        bytes memory sig = proof.nonce == 0
            ? bytes("")
            : signBalance(aliceCloses ? bobPk : alicePk, _p, address(vault), proof);
        (uint256 depositA, uint256 depositB) = (vault.totalDeposit(0), vault.totalDeposit(1));
        (uint256 withdrawnA, uint256 withdrawnB) = (vault.totalWithdrawn(0), vault.totalWithdrawn(1));
        vm.prank(aliceCloses ? alice : bob);
        try vault.close(_p, proof, sig) {
            DisputeState memory s;
            s.closer = aliceCloses ? 0 : 1;
            s.deadline = uint64(block.timestamp) + PERIOD;
            s.total = depositA + depositB - withdrawnA - withdrawnB;
            s.depositA = depositA;
            s.withdrawnA = withdrawnA;
            if (aliceCloses) s.fromB = proof;
            else s.fromA = proof;
            _dispute = s;
            _disputeLock[direction] = picked.lock;
            closed = true;
            _noteRecorded(direction, proof.nonce);
            _effective();
        } catch {
            ghost_violations++;
        }
    }

    /// @dev The non-closer, or the stranger as its watchtower, submits one of the closer's proofs,
    /// possibly a stale one; the vault must accept it exactly when it is newer and in time.
    function refute(uint256 proofSeed, uint256 callerSeed) external step {
        if (!closed || vault.status() != 2) return;
        DisputeState memory s = _dispute;
        uint8 direction = s.closer;
        Signed memory picked = _pick(direction, proofSeed);
        BalanceData memory proof = picked.proof;
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
            _disputeLock[direction] = picked.lock;
            _noteRecorded(direction, proof.nonce);
            _effective();
        } catch {
            if (expected) ghost_violations++;
        }
    }

    /// @dev The receiver of the lock on record in one direction releases it, and anyone submits
    /// the release: accepted whenever the channel is closed or settled; unlock then returns that
    /// lock to its sender.
    function releaseLock(uint256 directionSeed, uint256 callerSeed) external step {
        if (!closed) return;
        uint8 d = _side(directionSeed);
        Lock[] memory locks = new Lock[](1);
        locks[0] = _disputeLock[d];
        if (locks[0].amount == 0) return;
        bytes[] memory sigs = signReleases(d == 0 ? bobPk : alicePk, _p, address(vault), locks);
        vm.prank(actors[callerSeed % actors.length]);
        try vault.releaseLocks(_p, d, locks, sigs) {
            _released[_releaseKey(d, locks[0])] = true;
            _effective();
        } catch {
            ghost_violations++;
        }
    }

    function warp(uint256 secondsAhead) external step {
        ghost_now += bound(secondsAhead, 0, 1 days);
        vm.warp(ghost_now);
    }

    function settle(uint256 callerSeed) external step {
        if (!closed || vault.status() != 2) return;
        DisputeState memory s = _dispute;
        (uint256 payoutA, uint256 payoutB, uint256 retainedA, uint256 retainedB) = _expectedOutcome(s);
        uint256[3] memory before = _balances();
        uint256 owedBefore = vault.owed(bob);
        vm.prank(actors[callerSeed % actors.length]);
        try vault.settle(_p, s) {
            if (block.timestamp <= s.deadline) ghost_violations++;
            ghost_settled = true;
            _recordPayouts(before);
            if (_balanceOf(alice) - before[0] != payoutA) ghost_violations++;
            if (_balanceOf(bob) - before[1] + vault.owed(bob) - owedBefore != payoutB) ghost_violations++;
            if (retainedA != 0 || retainedB != 0) {
                _lockState = LockState(retainedA, s.fromA.locksRoot, retainedB, s.fromB.locksRoot);
                locksPending = true;
            }
            _effective();
        } catch {
            if (block.timestamp > s.deadline) ghost_violations++;
        }
    }

    /// @dev Anyone resolves the retained lock of one direction: back to the sender if its receiver
    /// released it, else to the receiver if its secret was registered by its expiration, back to
    /// the sender once it expired unrevealed.
    function unlock(uint256 senderSeed, uint256 callerSeed) external step {
        if (!locksPending) return;
        uint8 sender = _side(senderSeed);
        LockState memory s = _lockState;
        uint256 retained = sender == 0 ? s.retainedA : s.retainedB;
        if (retained == 0) return;
        Lock[] memory locks = new Lock[](1);
        locks[0] = _disputeLock[sender];
        uint256 revealedAt = registry.revealedAt(locks[0].secretHash);
        bool released = _released[_releaseKey(sender, locks[0])];
        bool revealedInTime = revealedAt != 0 && revealedAt <= locks[0].expiration;
        bool decided = released || revealedInTime || block.timestamp > locks[0].expiration;
        uint256 toReceiver =
            !released && revealedInTime ? (locks[0].amount < retained ? locks[0].amount : retained) : 0;
        address receiver = sender == 0 ? bob : alice;
        uint256[3] memory before = _balances();
        uint256 owedBefore = vault.owed(receiver) + vault.owed(sender == 0 ? alice : bob);
        vm.prank(actors[callerSeed % actors.length]);
        try vault.unlock(_p, s, sender, locks) {
            if (!decided) ghost_violations++;
            _recordPayouts(before);
            uint256 receiverGot = _balanceOf(receiver) - before[sender == 0 ? 1 : 0];
            uint256 totalOut = receiverGot + (_balanceOf(sender == 0 ? alice : bob) - before[sender])
                + vault.owed(receiver) + vault.owed(sender == 0 ? alice : bob) - owedBefore;
            if (totalOut != retained) ghost_violations++;
            if (receiverGot > toReceiver) ghost_violations++;
            if (sender == 0) (_lockState.retainedA, _lockState.locksRootA) = (0, 0);
            else (_lockState.retainedB, _lockState.locksRootB) = (0, 0);
            locksPending = _lockState.retainedA != 0 || _lockState.retainedB != 0;
            _effective();
        } catch {
            if (decided) ghost_violations++;
        }
    }

    /// @dev Both sign a split of the vault and submit it at once: the honest balances, or any split
    /// of what it holds.
    function cooperativeClose(uint256 splitSeed, uint256 callerSeed) external step {
        if (vault.status() != 1 || closePending || !_timeToEnd(splitSeed) || _anyLock()) return;
        uint256 held = _balanceOf(address(vault));
        (uint256 payoutA, uint256 payoutB) =
            splitSeed % 2 == 0 ? (offChainBalance(0), offChainBalance(1)) : (bound(splitSeed, 0, held), 0);
        if (splitSeed % 2 == 1) payoutB = held - payoutA;
        _signClose(payoutA, payoutB);
        _submitClose(callerSeed);
    }

    /// @dev Both sign the honest close; it is submitted later (submitClose), and meanwhile anyone
    /// may deposit into the channel, which the close must survive.
    function signClose(uint256 seed) external step {
        if (vault.status() != 1 || closePending || !_timeToEnd(seed) || _anyLock()) return;
        _signClose(offChainBalance(0), offChainBalance(1));
        _effective();
    }

    function submitClose(uint256 callerSeed) external step {
        if (!closePending) return;
        _submitClose(callerSeed);
    }

    /// @dev A participant pulls a deferred payout to itself or to the stranger.
    function claim(uint256 actorSeed, uint256 toSeed) external step {
        address payee = actorSeed % 2 == 0 ? alice : bob;
        uint256 owed = vault.owed(payee);
        if (owed == 0) return;
        address to = toSeed % 2 == 0 ? payee : stranger;
        uint256[3] memory before = _balances();
        vm.prank(payee);
        try vault.claim(to) {
            _recordPayouts(before);
            if (vault.owed(payee) != 0) ghost_violations++;
            _effective();
        } catch {
            if (to != bob || _bobAccepts()) ghost_violations++;
        }
    }

    /// @dev Bob's payouts start out refused; this flips it.
    function toggleBobAccepts() external step {
        bool accepts = !_bobAccepts();
        if (asset == address(0)) RejectingRecipient(payable(bob)).setAccepting(accepts);
        else BlocklistToken(asset).setBlocked(bob, !accepts);
    }

    // ---------------------------------------------------------------- views for the invariants

    /// @notice `side`'s balance in the off-chain model: deposits, withdrawals (moves included),
    /// what it received and sent, less what its pending lock holds.
    function offChainBalance(uint8 side) public view returns (uint256) {
        if (vault.status() != 1) return 0;
        Signed memory mine = _latest(side);
        uint256 receivedBySide = _latest(1 - side).proof.transferredAmount;
        return vault.totalDeposit(side) + receivedBySide - mine.proof.transferredAmount
            - mine.proof.lockedAmount - vault.totalWithdrawn(side);
    }

    /// @notice The dispute state the handler believes is on record.
    function dispute() external view returns (DisputeState memory) {
        return _dispute;
    }

    /// @notice The lock state the handler believes is on record after settlement.
    function lockState() external view returns (LockState memory) {
        return _lockState;
    }

    function latestNonce(uint8 direction) external view returns (uint64) {
        return _latest(direction).proof.nonce;
    }

    /// @notice What `who` holds of the channels' asset.
    function balanceOfAsset(address who) external view returns (uint256) {
        return _balanceOf(who);
    }

    // ---------------------------------------------------------------- internals

    function _open(ChannelParams memory p, uint256 amount) internal returns (address v) {
        uint256 value = _fund(alice, address(factory), amount);
        vm.prank(alice);
        (v,) = factory.open{value: value}(p, amount);
    }

    /// @dev Gives `actor` `amount` of the asset and lets `spender` take it; returns the ETH value to send.
    function _fund(address actor, address spender, uint256 amount) internal returns (uint256 value) {
        if (asset == address(0)) {
            vm.deal(actor, actor.balance + amount);
            return amount;
        }
        // Minting to a blocked account fails like any transfer to it: lift the block around it.
        BlocklistToken token = BlocklistToken(asset);
        bool blocked = token.blocked(actor);
        if (blocked) token.setBlocked(actor, false);
        token.mint(actor, amount);
        if (blocked) token.setBlocked(actor, true);
        vm.prank(actor);
        BlocklistToken(asset).approve(spender, amount);
        return 0;
    }

    function _balanceOf(address who) internal view returns (uint256) {
        return asset == address(0) ? who.balance : BlocklistToken(asset).balanceOf(who);
    }

    function _bobAccepts() internal view returns (bool) {
        return asset == address(0)
            ? RejectingRecipient(payable(bob)).accepting()
            : !BlocklistToken(asset).blocked(bob);
    }

    function _sigs(Withdrawal memory w) internal view returns (bytes memory sigA, bytes memory sigB) {
        sigA = signWithdrawal(alicePk, _p, address(vault), w);
        sigB = signWithdrawal(bobPk, _p, address(vault), w);
    }

    function _signClose(uint256 payoutA, uint256 payoutB) internal {
        _pendingClose = terms(address(vault), payoutA, payoutB);
        _pendingSigA = signCoopCloseFor(alicePk, _p, address(vault), _pendingClose);
        _pendingSigB = signCoopCloseFor(bobPk, _p, address(vault), _pendingClose);
        closePending = true;
    }

    /// @dev Submits the signed close. It must pay the signed payouts plus every deposit made since,
    /// to the side it was made for, and fail only once the channel is no longer open.
    function _submitClose(uint256 callerSeed) internal {
        CooperativeClose memory c = _pendingClose;
        bool open = vault.status() == 1;
        uint256 payoutA = open ? c.payoutA + vault.totalDeposit(0) - c.depositA : 0;
        uint256 payoutB = open ? c.payoutB + vault.totalDeposit(1) - c.depositB : 0;
        uint256[3] memory before = _balances();
        uint256 owedBefore = vault.owed(bob);
        closePending = false;
        vm.prank(actors[callerSeed % actors.length]);
        try vault.cooperativeClose(_p, c, _pendingSigA, _pendingSigB) {
            if (!open) ghost_violations++;
            ghost_settled = true;
            _recordPayouts(before);
            if (_balanceOf(alice) - before[0] != payoutA) ghost_violations++;
            if (_balanceOf(bob) - before[1] + vault.owed(bob) - owedBefore != payoutB) ghost_violations++;
            _effective();
        } catch {
            if (open) ghost_violations++;
        }
    }

    function _releaseKey(uint8 sender, Lock memory lock) internal pure returns (bytes32) {
        return keccak256(abi.encode(sender, lock.expiration, lock.amount, lock.secretHash));
    }

    function _side(uint256 seed) internal pure returns (uint8) {
        // casting to uint8 is safe because the value is 0 or 1.
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint8(seed % 2);
    }

    function _latest(uint8 direction) internal view returns (Signed memory s) {
        Signed[] storage proofs = _signed[direction];
        if (proofs.length != 0) s = proofs[proofs.length - 1];
    }

    /// @dev Whether either direction's latest proof holds a lock (a cooperative close needs none).
    function _anyLock() internal view returns (bool) {
        return _latest(0).lock.amount != 0 || _latest(1).lock.amount != 0;
    }

    /// @dev Half the time the latest proof of `direction`, otherwise any (or none).
    function _pick(uint8 direction, uint256 seed) internal view returns (Signed memory s) {
        Signed[] storage proofs = _signed[direction];
        if (proofs.length == 0) return s;
        if (seed % 2 == 0) return proofs[proofs.length - 1];
        uint256 index = (seed >> 1) % (proofs.length + 1);
        if (index < proofs.length) s = proofs[index];
    }

    /// @dev Whether to end the channel now: only after a few deposits, withdrawals, moves or
    /// payments, and then one time in four. The call count is mixed in because the fuzzer favours
    /// seeds like 0 and 1, so a plain `seed % 4` would end most channels within a few calls.
    function _timeToEnd(uint256 seed) internal view returns (bool) {
        return openActions >= 4 + seed % 8 && uint256(keccak256(abi.encode(seed, calls[msg.sig]))) % 4 == 0;
    }

    function _noteRecorded(uint8 direction, uint64 nonce) internal {
        ghost_recordedNonce[direction] = nonce;
        if (nonce > ghost_maxNonce[direction]) ghost_maxNonce[direction] = nonce;
    }

    /// @dev The settlement rule written out independently of Settlement.outcome.
    function _expectedOutcome(DisputeState memory s)
        internal
        pure
        returns (uint256 a, uint256 b, uint256 retainedA, uint256 retainedB)
    {
        uint256 credit = s.depositA + s.fromB.transferredAmount;
        uint256 debit = s.withdrawnA + s.fromA.transferredAmount + s.fromA.lockedAmount;
        a = credit > debit ? credit - debit : 0;
        if (a > s.total) a = s.total;
        uint256 rest = s.total - a;
        retainedA = s.fromA.lockedAmount < rest ? s.fromA.lockedAmount : rest;
        rest -= retainedA;
        retainedB = s.fromB.lockedAmount < rest ? s.fromB.lockedAmount : rest;
        b = rest - retainedB;
    }

    function _balances() internal view returns (uint256[3] memory b) {
        (b[0], b[1], b[2]) = (_balanceOf(alice), _balanceOf(bob), _balanceOf(stranger));
    }

    /// @dev Only the vault moves funds to the actors during a payout call, so every increase came from it.
    function _recordPayouts(uint256[3] memory before) internal {
        for (uint256 i = 0; i < 3; ++i) {
            uint256 gained = _balanceOf(actors[i]) - before[i];
            ghost_received[actors[i]] += gained;
            ghost_paidOut += gained;
        }
    }
}
