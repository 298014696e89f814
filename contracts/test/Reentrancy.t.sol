// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {IChannelVault} from "../src/interfaces/IChannelVault.sol";
import {BalanceData, ChannelParams, DisputeState, Withdrawal} from "../src/libraries/ChannelTypes.sol";
import {GasBurner} from "./mocks/GasBurner.sol";
import {ReentrantRecipient} from "./mocks/ReentrantRecipient.sol";
import {ReentrantToken} from "./mocks/ReentrantToken.sol";
import {RejectingRecipient} from "./mocks/RejectingRecipient.sol";
import {TransferFailed} from "../src/libraries/Errors.sol";

/// @notice Re-entry through a token's transfer hook or a payee's receive(), and payees that reject
/// or grief their payout: none of them may double-credit, double-pay or block the counterparty.
contract ReentrancyTest is KeelTest {
    bytes4 internal constant REENTRANT_CALL = ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector;

    address internal carol = makeAddr("carol");

    // ---------------------------------------------------------------- helpers

    function openReentrantToken(uint256 depositA)
        internal
        returns (ReentrantToken t, ChannelParams memory p, ChannelVault v)
    {
        t = new ReentrantToken();
        p = tokenParams(address(t));
        t.mint(alice, 100 ether);
        t.mint(bob, 100 ether);
        vm.startPrank(alice);
        t.approve(address(factory), depositA);
        (address vault,) = factory.open(p, depositA);
        vm.stopPrank();
        v = ChannelVault(vault);
        vm.prank(bob);
        t.approve(vault, type(uint256).max);
    }

    /// @dev Opens an ETH channel between `a` and `b` (either may be a contract), `a` funding `depositA`
    /// and `b` topping up `depositB`.
    function openEthBetween(address a, address b, uint256 depositA, uint256 depositB)
        internal
        returns (ChannelParams memory p, ChannelVault v)
    {
        p = ChannelParams(a, b, address(0), PERIOD, bytes32(uint256(7)));
        vm.deal(a, depositA);
        vm.deal(b, depositB);
        vm.prank(a);
        (address vault,) = factory.open{value: depositA}(p, depositA);
        v = ChannelVault(vault);
        vm.prank(b);
        v.deposit{value: depositB}(1, depositB);
    }

    /// @dev B closes with nothing from A (so no signature of A is needed) and waits out the
    /// challenge period: settlement pays each their deposit.
    function closeByBToDeadline(ChannelParams memory p, ChannelVault v)
        internal
        returns (DisputeState memory s)
    {
        s.closer = 1;
        s.deadline = uint64(block.timestamp) + p.challengePeriod;
        s.total = address(v).balance;
        s.depositA = v.totalDeposit(0);
        vm.prank(p.participantB);
        v.close(p, emptyBalance(), "");
        vm.warp(s.deadline + 1);
    }

    function coopCloseSigs(ChannelParams memory p, ChannelVault v, uint256 payoutA, uint256 payoutB)
        internal
        view
        returns (bytes memory sigA, bytes memory sigB)
    {
        sigA = signCoopClose(alicePk, p, address(v), payoutA, payoutB);
        sigB = signCoopClose(bobPk, p, address(v), payoutA, payoutB);
    }

    function withdrawalCall(ChannelParams memory p, ChannelVault v, address who, uint256 total)
        internal
        view
        returns (bytes memory)
    {
        Withdrawal memory w = payout(who, total, uint64(block.timestamp + 1 hours));
        return abi.encodeCall(
            ChannelVault.withdraw,
            (p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w))
        );
    }

    /// @dev Arms the token to re-enter the vault with `data` during bob's top-up, which must then
    /// revert with the guard's error and leave the vault as it was.
    function assertTopUpReentryRejected(ReentrantToken t, ChannelVault v, bytes memory data) internal {
        uint256 held = t.balanceOf(address(v));
        uint256 word = v.stateWord();
        t.arm(address(v), data, true);
        vm.prank(bob);
        vm.expectRevert(REENTRANT_CALL);
        v.deposit(1, 5 ether);
        assertEq(v.stateWord(), word);
        assertEq(v.totalDeposit(1), 0);
        assertEq(t.balanceOf(address(v)), held);
    }

    // ---------------------------------------------------------------- token hook during a deposit

    function test_RevertWhen_TokenReentersDepositDuringDeposit() public {
        (ReentrantToken t,, ChannelVault v) = openReentrantToken(10 ether);
        assertTopUpReentryRejected(t, v, abi.encodeCall(ChannelVault.deposit, (1, 10 ether)));
    }

    function test_RevertWhen_TokenReentersCloseDuringDeposit() public {
        (ReentrantToken t, ChannelParams memory p, ChannelVault v) = openReentrantToken(10 ether);
        assertTopUpReentryRejected(t, v, abi.encodeCall(v.close, (p, emptyBalance(), bytes(""))));
    }

    function test_RevertWhen_TokenReentersWithdrawDuringDeposit() public {
        (ReentrantToken t, ChannelParams memory p, ChannelVault v) = openReentrantToken(10 ether);
        assertTopUpReentryRejected(t, v, withdrawalCall(p, v, alice, 10 ether));
        assertEq(v.totalWithdrawn(0), 0);
    }

    function test_RevertWhen_TokenReentersCooperativeCloseDuringDeposit() public {
        (ReentrantToken t, ChannelParams memory p, ChannelVault v) = openReentrantToken(10 ether);
        (bytes memory sigA, bytes memory sigB) = coopCloseSigs(p, v, 10 ether, 0);
        assertTopUpReentryRejected(
            t,
            v,
            abi.encodeCall(ChannelVault.cooperativeClose, (p, terms(address(v), 10 ether, 0), sigA, sigB))
        );
        assertEq(v.status(), 1);
    }

    function test_TokenReentryThatIsSwallowedCannotDoubleCredit() public {
        (ReentrantToken t, ChannelParams memory p, ChannelVault v) = openReentrantToken(10 ether);
        // The hook tries to top up again (and then to withdraw); the guard refuses, the token goes on.
        t.arm(address(v), abi.encodeCall(ChannelVault.deposit, (1, 10 ether)), false);
        vm.prank(bob);
        v.deposit(1, 5 ether);
        assertEq(t.callbacks(), 1);
        assertFalse(t.lastCallOk());
        assertEq(bytes4(t.lastReturnData()), REENTRANT_CALL);
        assertEq(v.totalDeposit(1), 5 ether);
        assertEq(t.balanceOf(address(v)), 15 ether);

        t.arm(address(v), withdrawalCall(p, v, bob, 5 ether), false);
        vm.prank(bob);
        v.deposit(1, 6 ether);
        assertEq(bytes4(t.lastReturnData()), REENTRANT_CALL);
        assertEq(v.totalWithdrawn(1), 0);
        assertEq(v.totalDeposit(1), 6 ether);
        assertEq(t.balanceOf(address(v)), 16 ether);
    }

    function test_TokenReentryDuringSettlementPayoutPaysOnce() public {
        (ReentrantToken t, ChannelParams memory p, ChannelVault v) = openReentrantToken(10 ether);
        vm.prank(bob);
        v.deposit(1, 5 ether);
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        vm.warp(s.deadline + 1);
        // The first payout's transfer hook tries to settle again and to claim.
        t.arm(address(v), abi.encodeCall(v.settle, (p, s)), false);
        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        v.settle(p, s);
        assertEq(bytes4(t.lastReturnData()), REENTRANT_CALL);
        assertEq(t.balanceOf(alice), alice0 + 10 ether);
        assertEq(t.balanceOf(bob), bob0 + 5 ether);
        assertEq(t.balanceOf(address(v)), 0);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.settle(p, s);
    }

    // ---------------------------------------------------------------- payee re-entering on receive

    function test_RecipientReenteringClaimDuringSettlePaidOnce() public {
        ReentrantRecipient rr = new ReentrantRecipient();
        (ChannelParams memory p, ChannelVault v) = openEthBetween(address(rr), bob, 5 ether, 3 ether);
        DisputeState memory s = closeByBToDeadline(p, v);
        rr.arm(address(v), abi.encodeCall(ChannelVault.claim, (address(rr))), false);
        uint256 bob0 = bob.balance;
        v.settle(p, s);
        // The re-entry ran within the payout's gas and was refused by the guard.
        assertEq(rr.callbacks(), 1);
        assertFalse(rr.lastCallOk());
        assertEq(rr.lastError(), REENTRANT_CALL);
        assertEq(address(rr).balance, 5 ether);
        assertEq(rr.receipts(), 1);
        assertEq(v.owed(address(rr)), 0);
        assertEq(bob.balance, bob0 + 3 ether);
        assertEq(address(v).balance, 0);
    }

    function test_RecipientReenteringSettleIsDeferredThenClaimedOnce() public {
        ReentrantRecipient rr = new ReentrantRecipient();
        (ChannelParams memory p, ChannelVault v) = openEthBetween(address(rr), bob, 5 ether, 3 ether);
        DisputeState memory s = closeByBToDeadline(p, v);
        // Bubbling: receive() fails, so the vault defers rr's payout and still pays bob.
        rr.arm(address(v), abi.encodeCall(v.settle, (p, s)), true);
        uint256 bob0 = bob.balance;
        vm.expectEmit(address(v));
        emit IChannelVault.PayoutDeferred(address(rr), 5 ether);
        v.settle(p, s);
        assertEq(bob.balance, bob0 + 3 ether);
        assertEq(v.owed(address(rr)), 5 ether);
        assertEq(address(rr).balance, 0);

        // Claiming with all gas, still armed and bubbling: the re-entered settle hits the guard,
        // receive() reverts, and the claim is undone with the debt intact.
        vm.expectRevert(TransferFailed.selector);
        rr.claim(v, address(rr));
        assertEq(v.owed(address(rr)), 5 ether);

        // Swallowing, re-entering claim itself: paid once, nothing left to pull.
        rr.arm(address(v), abi.encodeCall(ChannelVault.claim, (address(rr))), false);
        rr.claim(v, address(rr));
        assertEq(rr.lastError(), REENTRANT_CALL);
        assertEq(address(rr).balance, 5 ether);
        assertEq(rr.receipts(), 1);
        assertEq(v.owed(address(rr)), 0);
        assertEq(address(v).balance, 0);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        rr.claim(v, address(rr));
    }

    function test_RecipientReenteringCooperativeClosePaidOnce() public {
        // Alice's address runs the re-entrant code but she still signs with her key.
        vm.etch(alice, address(new ReentrantRecipient()).code);
        ReentrantRecipient rr = ReentrantRecipient(payable(alice));
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        (bytes memory sigA, bytes memory sigB) = coopCloseSigs(p, v, 4 ether, 6 ether);
        rr.arm(address(v), abi.encodeCall(ChannelVault.claim, (alice)), false);
        uint256 alice0 = alice.balance;
        uint256 bob0 = bob.balance;
        v.cooperativeClose(p, terms(address(v), 4 ether, 6 ether), sigA, sigB);
        assertEq(rr.lastError(), REENTRANT_CALL);
        assertEq(alice.balance, alice0 + 4 ether);
        assertEq(bob.balance, bob0 + 6 ether);
        assertEq(v.owed(alice), 0);
        assertEq(address(v).balance, 0);

        // Replaying the same signed close, from inside a payout or not, finds the channel settled.
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.cooperativeClose(p, terms(address(v), 4 ether, 6 ether), sigA, sigB);
    }

    // ---------------------------------------------------------------- payees that reject or burn gas

    function test_RejectingParticipantDoesNotBlockSettlement() public {
        RejectingRecipient rej = new RejectingRecipient();
        (ChannelParams memory p, ChannelVault v) = openEthBetween(address(rej), bob, 5 ether, 3 ether);
        DisputeState memory s = closeByBToDeadline(p, v);
        uint256 bob0 = bob.balance;
        vm.expectEmit(address(v));
        emit IChannelVault.PayoutDeferred(address(rej), 5 ether);
        v.settle(p, s);
        assertEq(bob.balance, bob0 + 3 ether);
        assertEq(v.owed(address(rej)), 5 ether);

        // It can pull its share elsewhere, or to itself once it accepts ETH.
        rej.claim(v, carol);
        assertEq(carol.balance, 5 ether);
        assertEq(address(v).balance, 0);
    }

    function test_RejectingParticipantDoesNotBlockCooperativeClose() public {
        vm.etch(alice, address(new RejectingRecipient()).code);
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        (bytes memory sigA, bytes memory sigB) = coopCloseSigs(p, v, 7 ether, 3 ether);
        uint256 alice0 = alice.balance;
        uint256 bob0 = bob.balance;
        v.cooperativeClose(p, terms(address(v), 7 ether, 3 ether), sigA, sigB);
        assertEq(bob.balance, bob0 + 3 ether);
        assertEq(alice.balance, alice0);
        assertEq(v.owed(alice), 7 ether);

        RejectingRecipient(payable(alice)).setAccepting(true);
        vm.prank(alice);
        v.claim(alice);
        assertEq(alice.balance, alice0 + 7 ether);
        assertEq(address(v).balance, 0);
    }

    function test_GasBurnerDoesNotBlockSettlement() public {
        GasBurner burner = new GasBurner();
        // The burner is A, so it is paid first and bob's payout runs on whatever gas it leaves.
        (ChannelParams memory p, ChannelVault v) = openEthBetween(address(burner), bob, 5 ether, 3 ether);
        DisputeState memory s = closeByBToDeadline(p, v);
        uint256 bob0 = bob.balance;
        uint256 gasBefore = gasleft();
        v.settle(p, s);
        // The burner can take at most the bounded payout gas, not the caller's whole budget.
        assertLt(gasBefore - gasleft(), 200_000);
        assertEq(bob.balance, bob0 + 3 ether);
        assertEq(v.owed(address(burner)), 5 ether);
        burner.claim(v, carol);
        assertEq(carol.balance, 5 ether);
        assertEq(address(v).balance, 0);
    }

    function test_GasBurnerDoesNotBlockCooperativeClose() public {
        vm.etch(bob, address(new GasBurner()).code);
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        (bytes memory sigA, bytes memory sigB) = coopCloseSigs(p, v, 2 ether, 8 ether);
        uint256 alice0 = alice.balance;
        v.cooperativeClose(p, terms(address(v), 2 ether, 8 ether), sigA, sigB);
        assertEq(alice.balance, alice0 + 2 ether);
        assertEq(v.owed(bob), 8 ether);
        GasBurner(payable(bob)).claim(v, carol);
        assertEq(carol.balance, 8 ether);
    }

    // ---------------------------------------------------------------- withdrawals cannot be deferred

    function test_RevertWhen_WithdrawalToRejectingRecipient() public {
        vm.etch(alice, address(new RejectingRecipient()).code);
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        bytes memory call = withdrawalCall(p, v, alice, 2 ether);
        uint256 word = v.stateWord();

        (bool ok, bytes memory ret) = address(v).call(call);
        assertFalse(ok);
        // The revert data is exactly the 4-byte selector.
        // forge-lint: disable-next-line(unsafe-typecast)
        assertEq(bytes4(ret), TransferFailed.selector);
        assertEq(v.totalWithdrawn(0), 0);
        assertEq(v.stateWord(), word);
        assertEq(address(v).balance, 10 ether);
        assertEq(v.owed(alice), 0);

        // The same signed withdrawal goes through once the recipient accepts.
        RejectingRecipient(payable(alice)).setAccepting(true);
        (ok,) = address(v).call(call);
        assertTrue(ok);
        assertEq(v.totalWithdrawn(0), 2 ether);
        assertEq(address(v).balance, 8 ether);
    }

    function test_RevertWhen_WithdrawalToGasBurner() public {
        vm.etch(bob, address(new GasBurner()).code);
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Withdrawal memory w = payout(bob, 1 ether, uint64(block.timestamp + 1 hours));
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        vm.expectRevert(TransferFailed.selector);
        v.withdraw{gas: 5_000_000}(p, w, sigA, sigB);
        assertEq(v.totalWithdrawn(1), 0);
        assertEq(address(v).balance, 10 ether);
    }
}
