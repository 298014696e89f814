// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelFactory} from "../src/ChannelFactory.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {IChannelVault} from "../src/interfaces/IChannelVault.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    DisputeState,
    Lock,
    LockState,
    Withdrawal
} from "../src/libraries/ChannelTypes.sol";
import {BlocklistToken} from "./mocks/BlocklistToken.sol";
import {AlwaysFalseToken, FalseReturnToken} from "./mocks/FalseReturnToken.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {GasBurningReceiver, HookToken, ShrinkingToken} from "./mocks/HookToken.sol";
import {MissingReturnToken} from "./mocks/MissingReturnToken.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {RevertingToken} from "./mocks/RevertingToken.sol";
import {WrongValue} from "../src/libraries/Errors.sol";

/// @notice The calls these tests make on every mock token. `approve` is declared without a return
/// value so that the same interface drives tokens that return a bool and tokens that return nothing.
interface ITestToken {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external;
    function transfer(address to, uint256 amount) external;
    function balanceOf(address account) external view returns (uint256);
}

/// @notice ERC-20 channels: the full lifecycle with standard and non-standard tokens, and payouts
/// that a paused or blocklisting token refuses.
contract TokensTest is KeelTest {
    address internal carol = makeAddr("carol");
    address internal stranger = makeAddr("stranger");

    // ---------------------------------------------------------------- helpers

    /// @dev Opens a channel of `token`: alice opens with `depositA`, bob tops up with `depositB`.
    function openToken(address token, uint256 depositA, uint256 depositB)
        internal
        returns (ChannelParams memory p, ChannelVault v)
    {
        p = tokenParams(token);
        ITestToken(token).mint(alice, 1000 ether);
        ITestToken(token).mint(bob, 1000 ether);
        vm.startPrank(alice);
        ITestToken(token).approve(address(factory), depositA);
        (address vault,) = factory.open(p, depositA);
        vm.stopPrank();
        v = ChannelVault(vault);
        if (depositB != 0) topUp(v, token, bob, 1, v.totalDeposit(1) + depositB);
    }

    function topUp(ChannelVault v, address token, address from, uint8 side, uint256 newTotal) internal {
        vm.startPrank(from);
        ITestToken(token).approve(address(v), newTotal - v.totalDeposit(side));
        v.deposit(side, newTotal);
        vm.stopPrank();
    }

    function withdrawSigned(ChannelParams memory p, ChannelVault v, address who, uint256 total) internal {
        Withdrawal memory w = payout(who, total, uint64(block.timestamp + 1 hours));
        v.withdraw(p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w));
    }

    function test_WithdrawIntoMovesTokensToAnotherChannelAndLeavesNoAllowance() public {
        MockERC20 token = new MockERC20("Token", "TOK");
        (ChannelParams memory p, ChannelVault x) = openToken(address(token), 5 ether, 5 ether);
        // Bob's second channel of the same token, with carol, where bob is participant A.
        ChannelParams memory q = ChannelParams(bob, carol, address(token), PERIOD, bytes32(uint256(7)));
        vm.startPrank(bob);
        token.approve(address(factory), 1 ether);
        (address yAddr,) = factory.open(q, 1 ether);
        vm.stopPrank();
        ChannelVault y = ChannelVault(yAddr);

        Withdrawal memory w = move(bob, 3 ether, uint64(block.timestamp + 1 hours), address(y), 0);
        bytes memory sigA = signWithdrawal(alicePk, p, address(x), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(x), w);
        vm.prank(bob);
        x.withdrawInto(p, w, sigA, sigB);

        assertEq(token.balanceOf(address(x)), 7 ether);
        assertEq(token.balanceOf(address(y)), 4 ether);
        assertEq(y.totalDeposit(0), 4 ether);
        assertEq(x.totalWithdrawn(1), 3 ether);
        assertEq(token.allowance(address(x), address(y)), 0);
    }

    function coopClose(ChannelParams memory p, ChannelVault v, uint256 payoutA, uint256 payoutB) internal {
        v.cooperativeClose(
            p,
            terms(address(v), payoutA, payoutB),
            signCoopClose(alicePk, p, address(v), payoutA, payoutB),
            signCoopClose(bobPk, p, address(v), payoutA, payoutB)
        );
    }

    /// @dev Alice closes with bob's proof (bob sent `fromBob`), bob refutes with alice's (alice sent
    /// `fromAlice`); returns the dispute state to settle with, already past its deadline.
    function disputeToDeadline(ChannelParams memory p, ChannelVault v, uint256 fromAlice, uint256 fromBob)
        internal
        returns (DisputeState memory s)
    {
        s = closeWith(p, v, true, balance(1, fromBob));
        BalanceData memory aliceProof = balance(2, fromAlice);
        vm.prank(bob);
        v.refute(p, s, aliceProof, signBalance(alicePk, p, address(v), aliceProof), "");
        s.fromA = aliceProof;
        vm.warp(s.deadline + 1);
    }

    /// @dev Open 10 / top-up 6 / top-up 4 / withdraw 2 / cooperative close 11 + 7, checking every balance.
    function runCooperativeLifecycle(address token) internal {
        ITestToken t = ITestToken(token);
        (ChannelParams memory p, ChannelVault v) = openToken(token, 10 ether, 6 ether);
        assertEq(v.token(), token);
        assertEq(v.totalDeposit(0), 10 ether);
        assertEq(v.totalDeposit(1), 6 ether);
        assertEq(t.balanceOf(address(v)), 16 ether);

        topUp(v, token, alice, 0, 14 ether);
        assertEq(v.totalDeposit(0), 14 ether);
        assertEq(t.balanceOf(address(v)), 20 ether);

        uint256 bob0 = t.balanceOf(bob);
        withdrawSigned(p, v, bob, 2 ether);
        assertEq(t.balanceOf(bob), bob0 + 2 ether);
        assertEq(v.totalWithdrawn(1), 2 ether);
        assertEq(t.balanceOf(address(v)), 18 ether);
        assertEq(v.status(), 1);

        uint256 alice0 = t.balanceOf(alice);
        coopClose(p, v, 11 ether, 7 ether);
        assertEq(t.balanceOf(alice), alice0 + 11 ether);
        assertEq(t.balanceOf(bob), bob0 + 9 ether);
        assertEq(t.balanceOf(address(v)), 0);
        assertEq(v.status(), 3);
    }

    /// @dev Open 10 + 6, alice sent 3, bob sent 1: settlement pays 8 and 8.
    function runDisputeLifecycle(address token) internal {
        ITestToken t = ITestToken(token);
        (ChannelParams memory p, ChannelVault v) = openToken(token, 10 ether, 6 ether);
        DisputeState memory s = disputeToDeadline(p, v, 3 ether, 1 ether);
        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        v.settle(p, s);
        assertEq(t.balanceOf(alice), alice0 + 8 ether);
        assertEq(t.balanceOf(bob), bob0 + 8 ether);
        assertEq(t.balanceOf(address(v)), 0);
        assertEq(v.status(), 3);
    }

    // ---------------------------------------------------------------- standard and missing-return tokens

    function test_StandardTokenCooperativeLifecycle() public {
        runCooperativeLifecycle(address(new MockERC20("Token", "TOK")));
    }

    function test_StandardTokenDisputeLifecycle() public {
        runDisputeLifecycle(address(new MockERC20("Token", "TOK")));
    }

    function test_MissingReturnTokenCooperativeLifecycle() public {
        runCooperativeLifecycle(address(new MissingReturnToken()));
    }

    function test_MissingReturnTokenDisputeLifecycle() public {
        runDisputeLifecycle(address(new MissingReturnToken()));
    }

    function test_FalseReturnTokenWorksWhileTransfersSucceed() public {
        runCooperativeLifecycle(address(new FalseReturnToken()));
    }

    function test_RevertWhen_OpenDepositInETHForTokenChannel() public {
        MockERC20 t = new MockERC20("Token", "TOK");
        ChannelParams memory p = tokenParams(address(t));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 0, 1 ether));
        factory.open{value: 1 ether}(p, 1 ether);
    }

    // ---------------------------------------------------------------- tokens that return false

    function test_RevertWhen_FalseReturnTokenOpenWithoutAllowance() public {
        FalseReturnToken t = new FalseReturnToken();
        t.mint(alice, 10 ether);
        ChannelParams memory p = tokenParams(address(t));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(t)));
        factory.open(p, 10 ether);
    }

    function test_RevertWhen_FalseReturnTokenTopUpExceedsBalance() public {
        FalseReturnToken t = new FalseReturnToken();
        (, ChannelVault v) = openToken(address(t), 10 ether, 0);
        // Approved, but bob holds only 1000: the token returns false instead of reverting.
        vm.startPrank(bob);
        t.approve(address(v), 2000 ether);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(t)));
        v.deposit(1, 2000 ether);
        vm.stopPrank();
        assertEq(v.totalDeposit(1), 0);
    }

    function test_RevertWhen_AlwaysFalseTokenDeposits() public {
        AlwaysFalseToken t = new AlwaysFalseToken();
        t.mint(alice, 10 ether);
        ChannelParams memory p = tokenParams(address(t));
        vm.startPrank(alice);
        t.approve(address(factory), 10 ether);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(t)));
        factory.open(p, 10 ether);

        // A channel opened without a deposit still cannot be funded.
        (address vault,) = factory.open(p, 0);
        t.approve(vault, 10 ether);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(t)));
        ChannelVault(vault).deposit(0, 10 ether);
        vm.stopPrank();
        assertEq(ChannelVault(vault).totalDeposit(0), 0);
    }

    // ---------------------------------------------------------------- fee-on-transfer

    function test_FeeOnTransferCreditsWhatArrivedAtOpen() public {
        FeeOnTransferToken t = new FeeOnTransferToken();
        (, ChannelVault v) = openToken(address(t), 100 ether, 0);
        assertEq(v.totalDeposit(0), 99 ether);
        assertEq(t.balanceOf(address(v)), 99 ether);
    }

    function test_FeeOnTransferCreditsWhatArrivedAtTopUp() public {
        FeeOnTransferToken t = new FeeOnTransferToken();
        (, ChannelVault v) = openToken(address(t), 100 ether, 50 ether);
        assertEq(v.totalDeposit(1), 49.5 ether);
        // A top-up asks for the new total; the credit is the old total plus what arrived.
        topUp(v, address(t), alice, 0, 109 ether);
        assertEq(v.totalDeposit(0), 99 ether + 9.9 ether);
        assertEq(t.balanceOf(address(v)), v.totalDeposit(0) + v.totalDeposit(1));
    }

    function test_FeeOnTransferDisputeConservesFunds() public {
        FeeOnTransferToken t = new FeeOnTransferToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 100 ether, 50 ether);
        uint256 held = t.balanceOf(address(v));
        assertEq(held, 148.5 ether);
        DisputeState memory s = disputeToDeadline(p, v, 30 ether, 10 ether);
        assertEq(s.total, held);
        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        v.settle(p, s);
        // Shares: alice 99 - 30 + 10 = 79, bob 49.5 + 30 - 10 = 69.5; each loses 1% on the way out.
        assertEq(t.balanceOf(alice), alice0 + t.afterFee(79 ether));
        assertEq(t.balanceOf(bob), bob0 + t.afterFee(69.5 ether));
        assertEq(t.balanceOf(address(v)), 0);
    }

    function test_FeeOnTransferWithdrawAndCooperativeCloseEmptyTheVault() public {
        FeeOnTransferToken t = new FeeOnTransferToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 100 ether, 50 ether);
        withdrawSigned(p, v, alice, 9 ether);
        uint256 held = t.balanceOf(address(v));
        assertEq(held, 148.5 ether - 9 ether);
        coopClose(p, v, 60 ether, held - 60 ether);
        assertEq(t.balanceOf(address(v)), 0);
        assertEq(v.status(), 3);
    }

    // ---------------------------------------------------------------- payouts the token refuses

    function test_PausedTokenAtSettlementDefersBothPayoutsUntilUnpaused() public {
        RevertingToken t = new RevertingToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        DisputeState memory s = disputeToDeadline(p, v, 3 ether, 1 ether);
        t.setPaused(true);

        vm.expectEmit(address(v));
        emit IChannelVault.PayoutDeferred(alice, 8 ether);
        vm.expectEmit(address(v));
        emit IChannelVault.PayoutDeferred(bob, 8 ether);
        v.settle(p, s);
        assertEq(v.status(), 3);
        assertEq(v.owed(alice), 8 ether);
        assertEq(v.owed(bob), 8 ether);
        assertEq(t.balanceOf(address(v)), 16 ether);

        // Still paused: the claim reverts and the debt stays on record.
        vm.prank(alice);
        vm.expectRevert(RevertingToken.TokenPaused.selector);
        v.claim(alice);
        assertEq(v.owed(alice), 8 ether);

        t.setPaused(false);
        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        vm.prank(alice);
        v.claim(alice);
        vm.prank(bob);
        v.claim(bob);
        assertEq(t.balanceOf(alice), alice0 + 8 ether);
        assertEq(t.balanceOf(bob), bob0 + 8 ether);
        assertEq(v.owed(alice), 0);
        assertEq(v.owed(bob), 0);
        assertEq(t.balanceOf(address(v)), 0);
    }

    function test_PausedTokenAtCooperativeCloseDefersBothPayouts() public {
        RevertingToken t = new RevertingToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        t.setPaused(true);
        coopClose(p, v, 9 ether, 7 ether);
        assertEq(v.status(), 3);
        assertEq(v.owed(alice), 9 ether);
        assertEq(v.owed(bob), 7 ether);
    }

    function test_BlocklistedParticipantDeferredWhileOtherIsPaidAtSettlement() public {
        BlocklistToken t = new BlocklistToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        DisputeState memory s = disputeToDeadline(p, v, 3 ether, 1 ether);
        t.setBlocked(bob, true);
        uint256 alice0 = t.balanceOf(alice);

        vm.expectEmit(address(v));
        emit IChannelVault.PayoutDeferred(bob, 8 ether);
        v.settle(p, s);
        assertEq(t.balanceOf(alice), alice0 + 8 ether);
        assertEq(v.owed(alice), 0);
        assertEq(v.owed(bob), 8 ether);

        // Bob pulls his share to an address that is not blocked.
        vm.prank(bob);
        vm.expectEmit(address(v));
        emit IChannelVault.Claimed(bob, carol, 8 ether);
        v.claim(carol);
        assertEq(t.balanceOf(carol), 8 ether);
        assertEq(t.balanceOf(address(v)), 0);
    }

    function test_BlocklistedParticipantDeferredWhileOtherIsPaidAtCooperativeClose() public {
        BlocklistToken t = new BlocklistToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        t.setBlocked(alice, true);
        uint256 bob0 = t.balanceOf(bob);
        coopClose(p, v, 12 ether, 4 ether);
        assertEq(t.balanceOf(bob), bob0 + 4 ether);
        assertEq(v.owed(alice), 12 ether);
        assertEq(v.owed(bob), 0);
    }

    function test_ClaimPaysAnotherAddressOnce() public {
        BlocklistToken t = new BlocklistToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        t.setBlocked(alice, true);
        coopClose(p, v, 10 ether, 6 ether);

        vm.prank(alice);
        v.claim(carol);
        assertEq(t.balanceOf(carol), 10 ether);
        assertEq(v.owed(alice), 0);

        vm.prank(alice);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(carol);
        // Nobody else can pull alice's payout: the debt is keyed by the caller.
        vm.prank(carol);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(carol);
    }

    function test_RevertWhen_ClaimToBlocklistedAddressKeepsDebt() public {
        BlocklistToken t = new BlocklistToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        t.setBlocked(alice, true);
        coopClose(p, v, 10 ether, 6 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.Blocklisted.selector, alice));
        v.claim(alice);
        assertEq(v.owed(alice), 10 ether);
    }

    // ---------------------------------------------------------------- payees that burn the payer's gas

    /// @dev Gas a payout call may use at most when a payee's token hook burns all it is given:
    /// the vault's normal cost plus one bounded token call (TOKEN_PAYOUT_GAS = 100,000).
    uint256 internal constant HOOK_GRIEF_BOUND = 250_000;

    /// @dev Alice's address becomes a contract whose token hook burns all gas.
    function aliceBurnsGas(HookToken t) internal {
        vm.etch(alice, address(new GasBurningReceiver()).code);
        t.registerHook(alice);
    }

    /// @dev Issue: token payouts forwarded all gas, so a payee's hook made a cooperative close cost
    /// ~1.75M gas. The payout now gets bounded gas, fails, and is deferred to claim().
    function test_HookTokenPayeeBurningGasCannotInflateCooperativeClose() public {
        HookToken t = new HookToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        aliceBurnsGas(t);
        CooperativeClose memory c = terms(address(v), 9 ether, 7 ether);
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 9 ether, 7 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 9 ether, 7 ether);
        uint256 before = gasleft();
        vm.prank(bob);
        v.cooperativeClose(p, c, sigA, sigB);
        assertLt(before - gasleft(), HOOK_GRIEF_BOUND);
        assertEq(v.owed(alice), 9 ether);
        assertEq(t.balanceOf(bob), 1000 ether - 6 ether + 7 ether);
        // Alice pulls her payout to an address without the hook.
        vm.prank(alice);
        v.claim(carol);
        assertEq(t.balanceOf(carol), 9 ether);
    }

    function test_HookTokenPayeeBurningGasCannotInflateSettle() public {
        HookToken t = new HookToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        DisputeState memory s = disputeToDeadline(p, v, 3 ether, 1 ether);
        aliceBurnsGas(t);
        uint256 before = gasleft();
        vm.prank(bob);
        v.settle(p, s);
        assertLt(before - gasleft(), HOOK_GRIEF_BOUND);
        assertEq(v.owed(alice), 8 ether);
        assertEq(t.balanceOf(address(v)), 8 ether);
    }

    function test_HookTokenPayeeBurningGasCannotInflateUnlock() public {
        HookToken t = new HookToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        // Bob locked 2 ether to alice, who registers the secret; alice's proof sends nothing.
        bytes32 secret = keccak256("hook secret");
        Lock[] memory locks = new Lock[](1);
        locks[0] = Lock(uint64(block.timestamp + 1 hours), 2 ether, secretHashOf(secret));
        BalanceData memory fromBob = BalanceData(1, 0, 2 ether, lockHash(locks));
        DisputeState memory s = closeWith(p, v, true, fromBob);
        vm.prank(alice);
        registry.registerSecret(secret);
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        LockState memory retained = LockState(0, bytes32(0), 2 ether, lockHash(locks));
        aliceBurnsGas(t);
        uint256 before = gasleft();
        v.unlock(p, retained, 1, locks);
        assertLt(before - gasleft(), HOOK_GRIEF_BOUND);
        assertEq(v.owed(alice), 2 ether);
    }

    // ---------------------------------------------------------------- a token balance that shrinks

    /// @dev Issue: after the vault's token balance shrank, claim() was all-or-nothing, so the
    /// second payee got nothing at all. It now pays what remains and keeps the rest owed.
    function test_ClaimAfterTheBalanceShrankPaysWhatRemainsAndKeepsTheRestOwed() public {
        ShrinkingToken t = new ShrinkingToken();
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 6 ether);
        t.setBlocked(alice, true);
        t.setBlocked(bob, true);
        coopClose(p, v, 9 ether, 7 ether);
        assertEq(v.owed(alice), 9 ether);
        assertEq(v.owed(bob), 7 ether);
        t.shrink(address(v), 4 ether);

        vm.prank(alice);
        v.claim(carol);
        assertEq(t.balanceOf(carol), 9 ether);
        // 3 ether remain for bob's 7: he gets the 3 now, and 4 stay owed.
        vm.prank(bob);
        vm.expectEmit(address(v));
        emit IChannelVault.Claimed(bob, stranger, 3 ether);
        v.claim(stranger);
        assertEq(t.balanceOf(stranger), 3 ether);
        assertEq(v.owed(bob), 4 ether);
        // Nothing left in the vault: a claim is refused, and the debt kept.
        vm.prank(bob);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(stranger);
        assertEq(v.owed(bob), 4 ether);
        // When the balance comes back (a rebase up), the rest can be claimed.
        t.mint(address(v), 5 ether);
        vm.prank(bob);
        v.claim(stranger);
        assertEq(t.balanceOf(stranger), 7 ether);
        assertEq(v.owed(bob), 0);
    }

    // ---------------------------------------------------------------- tokens sent outside the protocol

    function test_StrayTokensDoNotChangeTheLedger() public {
        MockERC20 t = new MockERC20("Token", "TOK");
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 5 ether);
        t.mint(stranger, 7 ether);
        vm.prank(stranger);
        assertTrue(t.transfer(address(v), 7 ether));
        assertEq(v.totalDeposit(0), 10 ether);
        assertEq(v.totalDeposit(1), 5 ether);

        // A dispute divides only the ledger's 15; the stray 7 stay in the vault.
        DisputeState memory s = disputeToDeadline(p, v, 2 ether, 0);
        assertEq(s.total, 15 ether);
        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        v.settle(p, s);
        assertEq(t.balanceOf(alice), alice0 + 8 ether);
        assertEq(t.balanceOf(bob), bob0 + 7 ether);
        assertEq(t.balanceOf(address(v)), 7 ether);
    }

    function test_StrayTokensCanBeSharedByCooperativeCloseUpToTheRealBalance() public {
        MockERC20 t = new MockERC20("Token", "TOK");
        (ChannelParams memory p, ChannelVault v) = openToken(address(t), 10 ether, 5 ether);
        t.mint(address(v), 7 ether);

        bytes memory sigA = signCoopClose(alicePk, p, address(v), 13 ether, 10 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 13 ether, 10 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.PayoutsExceedBalance.selector, 23 ether, 22 ether)
        );
        v.cooperativeClose(p, terms(address(v), 13 ether, 10 ether), sigA, sigB);

        uint256 alice0 = t.balanceOf(alice);
        uint256 bob0 = t.balanceOf(bob);
        coopClose(p, v, 12 ether, 10 ether);
        assertEq(t.balanceOf(alice), alice0 + 12 ether);
        assertEq(t.balanceOf(bob), bob0 + 10 ether);
        assertEq(t.balanceOf(address(v)), 0);
    }
}
