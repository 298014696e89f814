// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {IChannelVault} from "../src/interfaces/IChannelVault.sol";
import {
    BalanceData,
    ChannelParams,
    DisputeState,
    Lock,
    LockState,
    Withdrawal
} from "../src/libraries/ChannelTypes.sol";
import {Settlement} from "../src/libraries/Settlement.sol";
import {DepositTooLarge, WrongValue} from "../src/libraries/Errors.sol";

/// @notice Exposes the pure settlement rule, which reads its input from calldata.
contract SettlementHarness {
    function outcome(DisputeState calldata s) external pure returns (Settlement.Outcome memory) {
        return Settlement.outcome(s);
    }
}

/// @notice Property tests over deposits, withdrawals, the settlement rule, nonces and timing.
contract FuzzTest is KeelTest {
    uint256 internal constant MAX_DEPOSIT = type(uint120).max;
    uint256 internal constant MAX_AMOUNT = type(uint128).max;

    SettlementHarness internal harness;

    function setUp() public override {
        super.setUp();
        harness = new SettlementHarness();
    }

    // ---------------------------------------------------------------- helpers

    /// @dev Opens an ETH channel with deposits of any size the vault accepts.
    function openFunded(uint256 depositA, uint256 depositB)
        internal
        returns (ChannelParams memory p, ChannelVault v)
    {
        vm.deal(alice, depositA);
        vm.deal(bob, depositB);
        return openEth(depositA, depositB);
    }

    function withdrawSigned(ChannelParams memory p, ChannelVault v, address who, uint256 total) internal {
        Withdrawal memory w = payout(who, total, uint64(block.timestamp));
        v.withdraw(p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w));
    }

    /// @dev A signed-shape proof with nonce >= 1 and amounts within the vault's bounds.
    function boundedProof(uint64 nonce, uint256 transferred, uint256 locked, bytes32 root)
        internal
        pure
        returns (BalanceData memory b)
    {
        b.nonce = uint64(bound(nonce, 1, type(uint64).max));
        b.transferredAmount = bound(transferred, 0, MAX_AMOUNT);
        b.lockedAmount = bound(locked, 0, MAX_AMOUNT);
        b.locksRoot = b.lockedAmount == 0 ? bytes32(0) : root;
    }

    // ---------------------------------------------------------------- deposits

    function testFuzz_DepositsAndTopUpsAccumulate(uint256 open, uint256 topA, uint256 topB1, uint256 topB2)
        public
    {
        open = bound(open, 0, 1e30);
        topA = bound(topA, 1, 1e30);
        topB1 = bound(topB1, 1, 1e30);
        topB2 = bound(topB2, 1, 1e30);
        (, ChannelVault v) = openFunded(open, 0);
        address stranger = makeAddr("stranger");
        vm.deal(stranger, topA + topB1 + topB2);

        vm.startPrank(stranger);
        v.deposit{value: topB1}(1, topB1);
        v.deposit{value: topA}(0, open + topA);
        v.deposit{value: topB2}(1, topB1 + topB2);
        vm.stopPrank();

        assertEq(v.totalDeposit(0), open + topA);
        assertEq(v.totalDeposit(1), topB1 + topB2);
        assertEq(address(v).balance, open + topA + topB1 + topB2);
    }

    function testFuzz_RevertWhen_DepositTotalNotIncreasing(uint256 open, uint256 newTotal) public {
        open = bound(open, 0, 1e30);
        newTotal = bound(newTotal, 0, open);
        (, ChannelVault v) = openFunded(open, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, open, newTotal));
        v.deposit(0, newTotal);
    }

    function testFuzz_RevertWhen_DepositValueMismatch(uint256 newTotal, uint256 value) public {
        newTotal = bound(newTotal, 1, 1e30);
        value = bound(value, 0, 2e30);
        if (value == newTotal) value = newTotal - 1;
        (, ChannelVault v) = openFunded(0, 0);
        vm.deal(alice, value);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, newTotal, value));
        v.deposit{value: value}(0, newTotal);
    }

    function testFuzz_DepositUpToTheLimitAndNotBeyond(uint256 open, uint256 extra) public {
        open = bound(open, 0, MAX_DEPOSIT);
        (, ChannelVault v) = openFunded(open, 0);
        uint256 room = MAX_DEPOSIT - open;
        extra = bound(extra, 1, room + 1e30);
        vm.deal(bob, extra);
        vm.prank(bob);
        if (extra > room) {
            vm.expectRevert(abi.encodeWithSelector(DepositTooLarge.selector, open + extra));
            v.deposit{value: extra}(0, open + extra);
        } else {
            v.deposit{value: extra}(0, open + extra);
            assertEq(v.totalDeposit(0), open + extra);
        }
    }

    // ---------------------------------------------------------------- withdrawals

    function testFuzz_WithdrawalsAreCumulativeAndBoundedByDeposits(
        uint256 depositA,
        uint256 depositB,
        uint256 firstA,
        uint256 secondA,
        uint256 wantB
    ) public {
        depositA = bound(depositA, 1, 1e30);
        depositB = bound(depositB, 0, 1e30);
        uint256 deposited = depositA + depositB;
        (ChannelParams memory p, ChannelVault v) = openFunded(depositA, depositB);

        firstA = bound(firstA, 1, deposited);
        secondA = bound(secondA, firstA, deposited);
        uint256 a0 = alice.balance;
        withdrawSigned(p, v, alice, firstA);
        if (secondA > firstA) withdrawSigned(p, v, alice, secondA);
        assertEq(alice.balance, a0 + secondA);
        assertEq(v.totalWithdrawn(0), secondA);

        // B may take at most what is left; anything more is refused and changes nothing.
        wantB = bound(wantB, 1, deposited + 1e30);
        uint256 b0 = bob.balance;
        if (secondA + wantB > deposited) {
            Withdrawal memory w = payout(bob, wantB, uint64(block.timestamp));
            bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
            bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
            vm.expectRevert(
                abi.encodeWithSelector(IChannelVault.WithdrawalExceedsDeposits.selector, wantB, deposited)
            );
            v.withdraw(p, w, sigA, sigB);
            assertEq(v.totalWithdrawn(1), 0);
        } else {
            withdrawSigned(p, v, bob, wantB);
            assertEq(bob.balance, b0 + wantB);
        }
        assertEq(address(v).balance, deposited - v.totalWithdrawn(0) - v.totalWithdrawn(1));
    }

    function testFuzz_RevertWhen_WithdrawalTotalNotIncreasing(uint256 first, uint256 again) public {
        (ChannelParams memory p, ChannelVault v) = openFunded(10 ether, 10 ether);
        first = bound(first, 1, 20 ether);
        again = bound(again, 0, first);
        withdrawSigned(p, v, bob, first);
        Withdrawal memory w = payout(bob, again, uint64(block.timestamp));
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, first, again));
        v.withdraw(p, w, sigA, sigB);
    }

    // ---------------------------------------------------------------- settlement rule

    function testFuzz_SettlementConservesWhateverTheProofsSay(DisputeState memory s) public view {
        s.total = bound(s.total, 0, 2 * MAX_DEPOSIT);
        s.depositA = bound(s.depositA, 0, MAX_DEPOSIT);
        s.withdrawnA = bound(s.withdrawnA, 0, 2 * MAX_DEPOSIT);
        s.fromA.transferredAmount = bound(s.fromA.transferredAmount, 0, MAX_AMOUNT);
        s.fromA.lockedAmount = bound(s.fromA.lockedAmount, 0, MAX_AMOUNT);
        s.fromB.transferredAmount = bound(s.fromB.transferredAmount, 0, MAX_AMOUNT);
        s.fromB.lockedAmount = bound(s.fromB.lockedAmount, 0, MAX_AMOUNT);

        Settlement.Outcome memory o = harness.outcome(s);
        assertEq(o.payoutA + o.payoutB + o.retainedA + o.retainedB, s.total);
        assertLe(o.payoutA, s.total);
        assertLe(o.payoutB, s.total);
        assertLe(o.retainedA, s.fromA.lockedAmount);
        assertLe(o.retainedB, s.fromB.lockedAmount);
    }

    /// @dev Builds a history the participants could really have had (no one ever sends or locks more
    /// than they hold) and checks that settlement pays exactly the honest balances.
    function testFuzz_SettlementPaysHonestBalancesExactly(
        uint256 depositA,
        uint256 depositB,
        uint256 sentA,
        uint256 sentB,
        uint256 lockedA,
        uint256 lockedB,
        uint256 withdrawnA,
        uint256 withdrawnB
    ) public view {
        depositA = bound(depositA, 0, MAX_DEPOSIT);
        depositB = bound(depositB, 0, MAX_DEPOSIT);
        sentB = bound(sentB, 0, depositB);
        sentA = bound(sentA, 0, depositA + sentB);
        lockedA = bound(lockedA, 0, depositA + sentB - sentA);
        lockedB = bound(lockedB, 0, depositB + sentA - sentB);
        withdrawnA = bound(withdrawnA, 0, depositA + sentB - sentA - lockedA);
        withdrawnB = bound(withdrawnB, 0, depositB + sentA - sentB - lockedB);

        DisputeState memory s;
        s.total = depositA + depositB - withdrawnA - withdrawnB;
        s.depositA = depositA;
        s.withdrawnA = withdrawnA;
        s.fromA = BalanceData(1, sentA, lockedA, keccak256("locks of A"));
        s.fromB = BalanceData(1, sentB, lockedB, keccak256("locks of B"));

        Settlement.Outcome memory o = harness.outcome(s);
        assertEq(o.payoutA, depositA + sentB - sentA - lockedA - withdrawnA);
        assertEq(o.payoutB, depositB + sentA - sentB - lockedB - withdrawnB);
        assertEq(o.retainedA, lockedA);
        assertEq(o.retainedB, lockedB);
    }

    /// @dev End to end on a vault: random deposits, a withdrawal, random signed proofs with locks
    /// in both directions. Settlement never pays more than the vault holds, and what it keeps back
    /// is exactly what stays in the vault.
    function testFuzz_SettleNeverPaysMoreThanTheVaultHolds(
        uint256 depositA,
        uint256 depositB,
        uint256 withdrawn,
        BalanceData memory fromA,
        BalanceData memory fromB,
        bool aliceCloses
    ) public {
        depositA = bound(depositA, 0, MAX_DEPOSIT);
        depositB = bound(depositB, 1, MAX_DEPOSIT);
        (ChannelParams memory p, ChannelVault v) = openFunded(depositA, depositB);
        withdrawn = bound(withdrawn, 0, depositA + depositB);
        if (withdrawn != 0) withdrawSigned(p, v, bob, withdrawn);

        fromA = boundedProof(fromA.nonce, fromA.transferredAmount, fromA.lockedAmount, fromA.locksRoot);
        fromB = boundedProof(fromB.nonce, fromB.transferredAmount, fromB.lockedAmount, fromB.locksRoot);
        // The closer submits the counterparty's proof; the other refutes with the closer's.
        DisputeState memory s = closeWith(p, v, aliceCloses, aliceCloses ? fromB : fromA);
        BalanceData memory closerProof = aliceCloses ? fromA : fromB;
        vm.prank(aliceCloses ? bob : alice);
        v.refute(
            p, s, closerProof, signBalance(aliceCloses ? alicePk : bobPk, p, address(v), closerProof), ""
        );
        if (aliceCloses) s.fromA = closerProof;
        else s.fromB = closerProof;

        uint256 held = address(v).balance;
        assertEq(s.total, held);
        Settlement.Outcome memory o = harness.outcome(s);
        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        uint256 paidA = alice.balance - a0;
        uint256 paidB = bob.balance - b0;

        assertEq(paidA, o.payoutA);
        assertEq(paidB, o.payoutB);
        assertLe(paidA + paidB, held);
        assertEq(address(v).balance, o.retainedA + o.retainedB);
        assertEq(paidA + paidB + address(v).balance, held);
        assertEq(v.status(), 3);
    }

    function testFuzz_CooperativeCloseBoundedByBalance(uint256 payoutA, uint256 payoutB) public {
        (ChannelParams memory p, ChannelVault v) = openFunded(10 ether, 5 ether);
        payoutA = bound(payoutA, 0, 20 ether);
        payoutB = bound(payoutB, 0, 20 ether);
        bytes memory sigA = signCoopClose(alicePk, p, address(v), payoutA, payoutB);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), payoutA, payoutB);
        if (payoutA + payoutB > 15 ether) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IChannelVault.PayoutsExceedBalance.selector, payoutA + payoutB, 15 ether
                )
            );
            v.cooperativeClose(p, terms(address(v), payoutA, payoutB), sigA, sigB);
            assertEq(v.status(), 1);
        } else {
            uint256 a0 = alice.balance;
            uint256 b0 = bob.balance;
            v.cooperativeClose(p, terms(address(v), payoutA, payoutB), sigA, sigB);
            assertEq(alice.balance, a0 + payoutA);
            assertEq(bob.balance, b0 + payoutB);
            assertEq(address(v).balance, 15 ether - payoutA - payoutB);
        }
    }

    // ---------------------------------------------------------------- nonces

    function testFuzz_RefuteAcceptedIffNonceStrictlyGreater(
        uint64 recorded,
        uint64 submitted,
        bool aliceCloses
    ) public {
        (ChannelParams memory p, ChannelVault v) = openFunded(5 ether, 5 ether);
        DisputeState memory s = closeWith(p, v, aliceCloses, emptyBalance());
        (uint256 closerPk, address nonCloser) = aliceCloses ? (alicePk, bob) : (bobPk, alice);

        if (recorded != 0) {
            BalanceData memory first = balance(recorded, 1 ether);
            vm.prank(nonCloser);
            v.refute(p, s, first, signBalance(closerPk, p, address(v), first), "");
            if (aliceCloses) s.fromA = first;
            else s.fromB = first;
        }

        BalanceData memory next = submitted == 0 ? emptyBalance() : balance(submitted, 2 ether);
        bytes memory sig = submitted == 0 ? bytes("") : signBalance(closerPk, p, address(v), next);
        vm.prank(nonCloser);
        if (submitted > recorded) {
            v.refute(p, s, next, sig, "");
            if (aliceCloses) s.fromA = next;
            else s.fromB = next;
            // The new proof is what the vault now commits to.
            assertEq(v.stateWord() >> 8, uint256(keccak256(abi.encode(s))) >> 8);
        } else {
            uint256 word = v.stateWord();
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, recorded, submitted));
            v.refute(p, s, next, sig, "");
            assertEq(v.stateWord(), word);
        }
    }

    // ---------------------------------------------------------------- timing

    function testFuzz_RefuteUntilDeadlineSettleOnlyAfter(uint32 period, uint256 elapsed) public {
        period = uint32(bound(period, MIN_PERIOD, MAX_PERIOD));
        elapsed = bound(elapsed, 0, 2 * uint256(MAX_PERIOD));
        ChannelParams memory p = ChannelParams(alice, bob, address(0), period, bytes32(uint256(42)));
        vm.prank(alice);
        (address vault,) = factory.open{value: 5 ether}(p, 5 ether);
        ChannelVault v = ChannelVault(vault);

        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        assertEq(s.deadline, block.timestamp + period);
        vm.warp(block.timestamp + elapsed);

        BalanceData memory proof = balance(1, 1 ether);
        bytes memory sig = signBalance(alicePk, p, vault, proof);
        vm.prank(bob);
        if (block.timestamp <= s.deadline) {
            v.refute(p, s, proof, sig, "");
            s.fromA = proof;
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodNotOver.selector, s.deadline));
            v.settle(p, s);
        } else {
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodOver.selector, s.deadline));
            v.refute(p, s, proof, sig, "");
            v.settle(p, s);
            assertEq(v.status(), 3);
        }
    }

    function testFuzz_SettleExactlyAfterDeadline(uint32 period, bool oneSecondLate) public {
        period = uint32(bound(period, MIN_PERIOD, MAX_PERIOD));
        ChannelParams memory p = ChannelParams(alice, bob, address(0), period, bytes32(uint256(43)));
        vm.prank(alice);
        (address vault,) = factory.open{value: 5 ether}(p, 5 ether);
        ChannelVault v = ChannelVault(vault);
        DisputeState memory s = closeWith(p, v, false, emptyBalance());
        vm.warp(s.deadline + (oneSecondLate ? 1 : 0));
        if (oneSecondLate) {
            v.settle(p, s);
            assertEq(v.status(), 3);
        } else {
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodNotOver.selector, s.deadline));
            v.settle(p, s);
        }
    }

    // ---------------------------------------------------------------- lock releases

    /// @dev Whatever the lock's amount and expiration, whether and when its secret was registered
    /// and when unlock runs (before or after expiry), a released lock goes back to its sender whole,
    /// and no release signed over other fields is accepted for it.
    function testFuzz_ReleasedLockGoesToSenderWhateverTheRegistry(
        uint256 amount,
        uint64 expiration,
        uint256 revealAfter,
        bool reveal,
        uint256 unlockAfter,
        bool aliceSends
    ) public {
        (ChannelParams memory p, ChannelVault v) = openFunded(10 ether, 10 ether);
        Lock[] memory locks = new Lock[](1);
        locks[0] = Lock(
            uint64(bound(expiration, block.timestamp + 1, block.timestamp + 60 days)),
            bound(amount, 1, 10 ether),
            secretHashOf("fuzzed secret")
        );
        uint8 sender = aliceSends ? 0 : 1;
        // The receiver closes with the sender's proof holding the lock.
        DisputeState memory s =
            closeWith(p, v, !aliceSends, BalanceData(1, 0, locks[0].amount, lockHash(locks)));
        if (reveal) {
            vm.warp(block.timestamp + bound(revealAfter, 0, 90 days));
            registry.registerSecret("fuzzed secret");
        }

        // A release signed over any other amount or expiration does not verify for this lock.
        Lock[] memory other = new Lock[](1);
        other[0] = revealAfter % 2 == 0
            ? Lock(locks[0].expiration, locks[0].amount + 1, locks[0].secretHash)
            : Lock(locks[0].expiration ^ 1, locks[0].amount, locks[0].secretHash);
        bytes[] memory wrong = signReleases(aliceSends ? bobPk : alicePk, p, address(v), other);
        vm.expectPartialRevert(IChannelVault.WrongSigner.selector);
        v.releaseLocks(p, sender, locks, wrong);

        v.releaseLocks(p, sender, locks, signReleases(aliceSends ? bobPk : alicePk, p, address(v), locks));
        vm.warp(uint256(s.deadline) + 1 + bound(unlockAfter, 0, 90 days));
        v.settle(p, s);
        (address senderAddr, address receiverAddr) = aliceSends ? (alice, bob) : (bob, alice);
        uint256 s0 = senderAddr.balance;
        uint256 r0 = receiverAddr.balance;
        LockState memory ls = aliceSends
            ? LockState(locks[0].amount, lockHash(locks), 0, bytes32(0))
            : LockState(0, bytes32(0), locks[0].amount, lockHash(locks));
        v.unlock(p, ls, sender, locks);
        assertEq(senderAddr.balance, s0 + locks[0].amount);
        assertEq(receiverAddr.balance, r0);
        assertEq(address(v).balance, 0);
    }
}
