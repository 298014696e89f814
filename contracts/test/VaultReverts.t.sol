// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelSigTest} from "./utils/KeelSigTest.sol";
import {PlainToken} from "./utils/PlainToken.sol";
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
import {SignedMessages} from "../src/libraries/SignedMessages.sol";
import {TokenTransfers} from "../src/libraries/TokenTransfers.sol";
import {
    DepositTooLarge,
    NotParticipant,
    NothingReceived,
    TransferFailed,
    WrongValue
} from "../src/libraries/Errors.sol";

/// @notice Every revert path of ChannelVault and ChannelAdjudicator, with the boundary on the
/// accepting side wherever the check is a comparison.
contract VaultRevertsTest is KeelSigTest {
    /// @dev Runtime code that reverts on every call: a payee that rejects ETH.
    bytes internal constant REJECTER = hex"5f5ffd";
    uint256 internal constant DISPUTE_FIELDS = 13;
    /// @dev The fixture's start time. Tests that warp use it rather than a local copy of
    /// block.timestamp, which via-IR may re-read after the warp.
    uint64 internal constant T0 = 1_700_000_000;

    ChannelParams internal p;
    ChannelVault internal v;
    address internal stranger;

    function setUp() public override {
        super.setUp();
        (p, v) = openEth(5 ether, 5 ether);
        stranger = makeAddr("stranger");
        vm.deal(stranger, 100 ether);
    }

    // ---------------------------------------------------------------- helpers

    function withdrawal(address who, uint256 total) internal view returns (Withdrawal memory) {
        return payout(who, total, uint64(block.timestamp + 1 hours));
    }

    function sigsFor(Withdrawal memory w) internal view returns (bytes memory sigA, bytes memory sigB) {
        sigA = signWithdrawal(alicePk, p, address(v), w);
        sigB = signWithdrawal(bobPk, p, address(v), w);
    }

    function withdrawSigned(Withdrawal memory w) internal {
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        v.withdraw(p, w, sigA, sigB);
    }

    function coopClose(uint256 payoutA, uint256 payoutB) internal {
        v.cooperativeClose(
            p,
            terms(address(v), payoutA, payoutB),
            signCoopClose(alicePk, p, address(v), payoutA, payoutB),
            signCoopClose(bobPk, p, address(v), payoutA, payoutB)
        );
    }

    /// @dev `p` with field `i` changed: 0 A, 1 B, 2 A and B swapped, 3 token, 4 period, 5 salt.
    function alteredParams(uint256 i) internal view returns (ChannelParams memory q) {
        q = ChannelParams(p.participantA, p.participantB, p.token, p.challengePeriod, p.salt);
        if (i == 0) q.participantA = tower;
        else if (i == 1) q.participantB = tower;
        else if (i == 2) (q.participantA, q.participantB) = (q.participantB, q.participantA);
        else if (i == 3) q.token = address(0xBEEF);
        else if (i == 4) q.challengePeriod += 1;
        else q.salt = bytes32(uint256(q.salt) + 1);
    }

    function copyDispute(DisputeState memory s) internal pure returns (DisputeState memory) {
        return abi.decode(abi.encode(s), (DisputeState));
    }

    /// @dev A copy of `s` with one of its 13 fields (in declaration order, nested ones flattened) changed.
    function alteredDispute(DisputeState memory s, uint256 field)
        internal
        pure
        returns (DisputeState memory t)
    {
        t = copyDispute(s);
        if (field == 0) t.closer ^= 1;
        else if (field == 1) t.deadline += 1;
        else if (field == 2) t.total += 1;
        else if (field == 3) t.depositA += 1;
        else if (field == 4) t.withdrawnA += 1;
        else if (field == 5) t.fromA.nonce += 1;
        else if (field == 6) t.fromA.transferredAmount += 1;
        else if (field == 7) t.fromA.lockedAmount += 1;
        else if (field == 8) t.fromA.locksRoot = bytes32(uint256(t.fromA.locksRoot) + 1);
        else if (field == 9) t.fromB.nonce += 1;
        else if (field == 10) t.fromB.transferredAmount += 1;
        else if (field == 11) t.fromB.lockedAmount += 1;
        else t.fromB.locksRoot = bytes32(uint256(t.fromB.locksRoot) + 1);
    }

    /// @dev Alice closes with bob's proof (nonce 3, 1 ether); bob holds alice's proofs to refute with.
    function aliceCloses() internal returns (DisputeState memory) {
        return closeWith(p, v, true, balance(3, 1 ether));
    }

    function locksOf(uint64 expiration, uint256 amount, bytes32 secret)
        internal
        pure
        returns (Lock[] memory locks)
    {
        locks = new Lock[](1);
        locks[0] = Lock(expiration, amount, secretHashOf(secret));
    }

    /// @dev Bob closes with alice's proof carrying `locks` (1 ether sent, `locked` pending), then settles.
    function settleWithLocksFromAlice(Lock[] memory locks, uint256 locked)
        internal
        returns (LockState memory)
    {
        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 1 ether, locked, lockHash(locks)));
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        return LockState(locked, lockHash(locks), 0, bytes32(0));
    }

    // ---------------------------------------------------------------- initialize

    function test_RevertWhen_InitializeCalledByNonFactory() public {
        vm.prank(alice);
        vm.expectRevert(IChannelVault.NotFactory.selector);
        v.initialize(0, 1 ether);
    }

    function test_RevertWhen_InitializeCalledAgainByFactory() public {
        vm.prank(address(factory));
        vm.expectRevert(IChannelVault.AlreadyInitialised.selector);
        v.initialize(0, 1 ether);
    }

    function test_RevertWhen_InitializeCalledByFactoryAfterSettlement() public {
        coopClose(5 ether, 5 ether);
        vm.prank(address(factory));
        vm.expectRevert(IChannelVault.AlreadyInitialised.selector);
        v.initialize(1, 0);
    }

    // ---------------------------------------------------------------- deposit

    function test_RevertWhen_DepositAfterClose() public {
        aliceCloses();
        vm.prank(bob);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.deposit{value: 1 ether}(1, 6 ether);
    }

    function test_RevertWhen_DepositAfterSettlement() public {
        coopClose(5 ether, 5 ether);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.deposit{value: 1 ether}(1, 6 ether);
    }

    function test_RevertWhen_DepositIntoImplementation() public {
        ChannelVault impl = factory.vaultImplementation();
        vm.prank(alice);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        impl.deposit{value: 1 ether}(0, 1 ether);
    }

    function test_RevertWhen_DepositSideInvalid() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.deposit{value: 1 ether}(2, 6 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 255));
        v.deposit{value: 1 ether}(255, 6 ether);
    }

    function test_RevertWhen_DepositTotalEqual() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 5 ether, 5 ether));
        v.deposit(0, 5 ether);
    }

    function test_RevertWhen_DepositTotalLower() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 5 ether, 4 ether));
        v.deposit(1, 4 ether);
    }

    function test_RevertWhen_DepositRetriedTwice() public {
        vm.prank(alice);
        v.deposit{value: 1 ether}(0, 6 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 6 ether, 6 ether));
        v.deposit{value: 1 ether}(0, 6 ether);
        assertEq(address(v).balance, 11 ether);
    }

    function test_RevertWhen_DepositEthValueBelowDifference() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 2 ether, 1 ether));
        v.deposit{value: 1 ether}(0, 7 ether);
    }

    function test_RevertWhen_DepositEthValueIsNewTotal() public {
        // Sending the new cumulative total instead of the difference is rejected.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 2 ether, 7 ether));
        v.deposit{value: 7 ether}(0, 7 ether);
    }

    function test_RevertWhen_DepositTooLarge() public {
        uint256 newTotal = uint256(type(uint120).max) + 1;
        vm.deal(alice, newTotal);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DepositTooLarge.selector, newTotal));
        v.deposit{value: newTotal - 5 ether}(0, newTotal);
    }

    function test_DepositAcceptsMaxTotal() public {
        uint256 newTotal = type(uint120).max;
        vm.deal(bob, newTotal);
        vm.prank(bob);
        v.deposit{value: newTotal - 5 ether}(1, newTotal);
        assertEq(v.totalDeposit(1), newTotal);
        assertEq(v.totalDeposit(0), 5 ether);
    }

    function test_RevertWhen_TokenDepositCarriesValue() public {
        PlainToken token = new PlainToken();
        ChannelParams memory q = tokenParams(address(token));
        vm.prank(alice);
        (address vault,) = factory.open(q, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 0, 1));
        ChannelVault(vault).deposit{value: 1}(0, 1 ether);
    }

    function test_RevertWhen_TokenDepositDeliversNothing() public {
        PlainToken token = new PlainToken();
        ChannelParams memory q = tokenParams(address(token));
        vm.prank(alice);
        (address vault,) = factory.open(q, 0);
        token.mint(alice, 1 ether);
        vm.prank(alice);
        token.approve(vault, 1 ether);
        token.setSkimTransfers(true);
        vm.prank(alice);
        vm.expectRevert(NothingReceived.selector);
        ChannelVault(vault).deposit(0, 1 ether);
    }

    // ---------------------------------------------------------------- views

    function test_RevertWhen_TotalDepositSideInvalid() public {
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.totalDeposit(2);
    }

    function test_RevertWhen_TotalDepositAfterClose() public {
        aliceCloses();
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.totalDeposit(0);
    }

    function test_RevertWhen_TotalWithdrawnSideInvalid() public {
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.totalWithdrawn(2);
    }

    // ---------------------------------------------------------------- withdraw

    function test_RevertWhen_WithdrawParamsAltered() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.withdraw(q, w, sigA, sigB);
        }
        v.withdraw(p, w, sigA, sigB);
        assertEq(v.totalWithdrawn(0), 1 ether);
    }

    function test_RevertWhen_WithdrawAfterClose() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        aliceCloses();
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawAfterSettlement() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        coopClose(5 ether, 5 ether);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawExpired() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.warp(uint256(w.expiry) + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.Expired.selector, w.expiry));
        v.withdraw(p, w, sigA, sigB);
    }

    function test_WithdrawAtExactlyExpiry() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.warp(w.expiry);
        uint256 before = alice.balance;
        v.withdraw(p, w, sigA, sigB);
        assertEq(alice.balance, before + 1 ether);
    }

    function test_RevertWhen_WithdrawalParticipantIsNeither() public {
        Withdrawal memory w = withdrawal(tower, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(NotParticipant.selector, tower));
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawSigASignedByOther() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (, bytes memory sigB) = sigsFor(w);
        bytes memory forged = signWithdrawal(towerPk, p, address(v), w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, tower));
        v.withdraw(p, w, forged, sigB);
    }

    function test_RevertWhen_WithdrawSigBSignedByOther() public {
        Withdrawal memory w = withdrawal(bob, 1 ether);
        (bytes memory sigA,) = sigsFor(w);
        bytes memory forged = signWithdrawal(towerPk, p, address(v), w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, tower));
        v.withdraw(p, w, sigA, forged);
    }

    function test_RevertWhen_WithdrawSignaturesSwapped() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, bob));
        v.withdraw(p, w, sigB, sigA);
    }

    function test_RevertWhen_WithdrawSignedByOneParticipantTwice() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA,) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, alice));
        v.withdraw(p, w, sigA, sigA);
    }

    function test_RevertWhen_WithdrawFieldsDifferFromSigned() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        w.totalWithdrawn = 2 ether;
        address recovered = recoverAs(address(v), withdrawalStructHash(p, w), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawReplayed() public {
        Withdrawal memory w = withdrawal(alice, 2 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        v.withdraw(p, w, sigA, sigB);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 2 ether, 2 ether));
        v.withdraw(p, w, sigA, sigB);
        assertEq(v.totalWithdrawn(0), 2 ether);
    }

    function test_RevertWhen_WithdrawOlderLowerTotal() public {
        Withdrawal memory older = withdrawal(alice, 2 ether);
        (bytes memory oldA, bytes memory oldB) = sigsFor(older);
        withdrawSigned(withdrawal(alice, 3 ether));
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 3 ether, 2 ether));
        v.withdraw(p, older, oldA, oldB);
    }

    function test_RevertWhen_WithdrawalExceedsDeposits() public {
        Withdrawal memory w = withdrawal(alice, 10 ether + 1);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.WithdrawalExceedsDeposits.selector, 10 ether + 1, 10 ether)
        );
        v.withdraw(p, w, sigA, sigB);
    }

    function test_WithdrawAcceptsAllDeposits() public {
        withdrawSigned(withdrawal(bob, 10 ether));
        assertEq(v.totalWithdrawn(1), 10 ether);
        assertEq(address(v).balance, 0);
    }

    function test_RevertWhen_WithdrawalsTogetherExceedDeposits() public {
        withdrawSigned(withdrawal(alice, 6 ether));
        Withdrawal memory w = withdrawal(bob, 4 ether + 1);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.WithdrawalExceedsDeposits.selector, 4 ether + 1, 10 ether)
        );
        v.withdraw(p, w, sigA, sigB);
        withdrawSigned(withdrawal(bob, 4 ether));
        assertEq(address(v).balance, 0);
    }

    function test_RevertWhen_WithdrawSignatureIs64Bytes() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.withdraw(p, w, toCompact(sigA), sigB);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.withdraw(p, w, sigA, toCompact(sigB));
    }

    function test_RevertWhen_WithdrawSignatureIsEmptyOrLong() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 0));
        v.withdraw(p, w, "", sigB);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 66));
        v.withdraw(p, w, sigA, abi.encodePacked(sigB, uint8(0)));
    }

    function test_RevertWhen_WithdrawSignatureUnrecoverable() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        (bytes32 r, bytes32 s,) = splitSig(sigA);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.withdraw(p, w, abi.encodePacked(r, s, uint8(29)), sigB);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.withdraw(p, w, abi.encodePacked(bytes32(0), bytes32(0), uint8(27)), sigB);
    }

    function test_RevertWhen_WithdrawPayeeRejectsEth() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.etch(alice, REJECTER);
        vm.expectRevert(TransferFailed.selector);
        v.withdraw(p, w, sigA, sigB);
        assertEq(v.totalWithdrawn(0), 0);
    }

    // ---------------------------------------------------------------- withdrawInto

    /// @dev Bob's second ETH channel, with the tower, where bob is participant A.
    function bobsOtherChannel(uint256 deposit)
        internal
        returns (ChannelParams memory q, ChannelVault target)
    {
        q = ChannelParams(bob, tower, address(0), PERIOD, bytes32(uint256(7)));
        vm.deal(bob, deposit);
        vm.prank(bob);
        (address t,) = factory.open{value: deposit}(q, deposit);
        target = ChannelVault(t);
    }

    function moveOf(uint256 total, address target, uint8 side) internal view returns (Withdrawal memory) {
        return move(bob, total, uint64(block.timestamp + 1 hours), target, side);
    }

    /// @dev Issue: the destination was not signed, so anyone holding a move's signatures (public
    /// in the mempool) could front-run it with withdraw() and block a hub's rebalancing. A signed
    /// move now executes only as that move, submitted by anyone.
    function test_RevertWhen_SignedMoveSubmittedAsWithdrawal() public {
        (, ChannelVault target) = bobsOtherChannel(0);
        Withdrawal memory w = moveOf(1 ether, address(target), 0);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongDestination.selector, address(target)));
        v.withdraw(p, w, sigA, sigB);
        vm.prank(stranger);
        v.withdrawInto(p, w, sigA, sigB);
        assertEq(target.totalDeposit(0), 1 ether);
        assertEq(v.totalWithdrawn(1), 1 ether);
    }

    function test_RevertWhen_SignedWithdrawalSubmittedAsMove() public {
        Withdrawal memory w = withdrawal(bob, 1 ether);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongDestination.selector, address(0)));
        v.withdrawInto(p, w, sigA, sigB);
    }

    /// @dev The destination is inside what both signed: changing it breaks the signatures.
    function test_RevertWhen_WithdrawIntoDestinationAltered() public {
        (, ChannelVault target) = bobsOtherChannel(0);
        (, ChannelVault other) = openEthSalt(bytes32(uint256(8)), 1 ether, 0);
        Withdrawal memory w = moveOf(1 ether, address(target), 0);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        w.target = address(other);
        vm.expectPartialRevert(IChannelVault.WrongSigner.selector);
        v.withdrawInto(p, w, sigA, sigB);
        w.target = address(target);
        w.targetSide = 1;
        vm.expectPartialRevert(IChannelVault.WrongSigner.selector);
        v.withdrawInto(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawIntoSameVault() public {
        Withdrawal memory w = moveOf(1 ether, address(v), 1);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.NotAVault.selector, address(v)));
        v.withdrawInto(p, w, sigA, sigB);
    }

    /// @dev Issue: nothing checked that `target` is a vault. An account without code, a contract
    /// that imitates a vault, and a vault of another asset are all refused before funds move.
    function test_RevertWhen_WithdrawIntoTargetIsNotAVaultOfThisAsset() public {
        PlainToken token = new PlainToken();
        ChannelParams memory q = ChannelParams(bob, tower, address(token), PERIOD, bytes32(uint256(7)));
        vm.prank(bob);
        (address tokenVault,) = factory.open(q, 0);
        address[3] memory targets = [stranger, address(new FakeVault()), tokenVault];
        for (uint256 i = 0; i < targets.length; ++i) {
            Withdrawal memory w = moveOf(1 ether, targets[i], 0);
            (bytes memory sigA, bytes memory sigB) = sigsFor(w);
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.NotAVault.selector, targets[i]));
            v.withdrawInto(p, w, sigA, sigB);
        }
        assertEq(v.totalWithdrawn(1), 0);
        assertEq(address(v).balance, 10 ether);
    }

    function test_RevertWhen_WithdrawIntoTargetSideInvalid() public {
        (, ChannelVault target) = bobsOtherChannel(0);
        Withdrawal memory w = moveOf(1 ether, address(target), 2);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.withdrawInto(p, w, sigA, sigB);
    }

    function test_RevertWhen_WithdrawIntoClosedTarget() public {
        (ChannelParams memory q, ChannelVault target) = bobsOtherChannel(1 ether);
        vm.prank(bob);
        target.close(q, emptyBalance(), "");
        Withdrawal memory w = moveOf(1 ether, address(target), 0);
        (bytes memory sigA, bytes memory sigB) = sigsFor(w);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.withdrawInto(p, w, sigA, sigB);
    }

    // ---------------------------------------------------------------- cooperativeClose

    function test_RevertWhen_CooperativeCloseParamsAltered() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.cooperativeClose(q, terms(address(v), 5 ether, 5 ether), sigA, sigB);
        }
    }

    function test_RevertWhen_CooperativeCloseAfterUnilateralClose() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        aliceCloses();
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), sigA, sigB);
    }

    function test_RevertWhen_CooperativeCloseSigASignedByOther() public {
        bytes memory forged = signCoopClose(towerPk, p, address(v), 10 ether, 0);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 10 ether, 0);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, tower));
        v.cooperativeClose(p, terms(address(v), 10 ether, 0), forged, sigB);
    }

    function test_RevertWhen_CooperativeCloseSigBSignedByOther() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 10 ether, 0);
        bytes memory forged = signCoopClose(towerPk, p, address(v), 10 ether, 0);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, tower));
        v.cooperativeClose(p, terms(address(v), 10 ether, 0), sigA, forged);
    }

    function test_RevertWhen_CooperativeCloseSignaturesSwapped() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, bob));
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), sigB, sigA);
    }

    function test_RevertWhen_CooperativeClosePayoutsDifferFromSigned() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 3 ether, 7 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 3 ether, 7 ether);
        address recovered = recoverAs(address(v), coopStructHash(p, 7 ether, 3 ether), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.cooperativeClose(p, terms(address(v), 7 ether, 3 ether), sigA, sigB);
    }

    function test_RevertWhen_CooperativeClosePayoutsExceedBalance() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether + 1);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.PayoutsExceedBalance.selector, 10 ether + 1, 10 ether)
        );
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether + 1), sigA, sigB);
    }

    function test_RevertWhen_CooperativeClosePayoutsExceedBalanceAfterWithdrawal() public {
        withdrawSigned(withdrawal(alice, 1 ether));
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.PayoutsExceedBalance.selector, 10 ether, 9 ether)
        );
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), sigA, sigB);
    }

    function test_CooperativeCloseSharesForcedInFunds() public {
        // ETH forced into the vault (e.g. by selfdestruct) can be shared out by agreement.
        vm.deal(address(v), 11 ether);
        uint256 b0 = bob.balance;
        coopClose(5 ether, 6 ether);
        assertEq(bob.balance, b0 + 6 ether);
        assertEq(address(v).balance, 0);
    }

    function test_RevertWhen_CooperativeCloseReplayedAfterSettlement() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 4 ether, 6 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 4 ether, 6 ether);
        v.cooperativeClose(p, terms(address(v), 4 ether, 6 ether), sigA, sigB);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.cooperativeClose(p, terms(address(v), 4 ether, 6 ether), sigA, sigB);
    }

    // ---------------------------------------------------------------- claim

    function test_RevertWhen_ClaimNothingOwed() public {
        vm.prank(alice);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(alice);
    }

    function test_RevertWhen_ClaimTwice() public {
        vm.etch(alice, REJECTER);
        coopClose(3 ether, 7 ether);
        assertEq(v.owed(alice), 3 ether);
        address carol = makeAddr("carol");
        vm.prank(alice);
        v.claim(carol);
        assertEq(carol.balance, 3 ether);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(carol);
    }

    function test_RevertWhen_ClaimByOtherThanPayee() public {
        vm.etch(alice, REJECTER);
        coopClose(3 ether, 7 ether);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.NothingOwed.selector);
        v.claim(bob);
    }

    function test_RevertWhen_ClaimRecipientRejects() public {
        vm.etch(alice, REJECTER);
        coopClose(3 ether, 7 ether);
        vm.prank(alice);
        vm.expectRevert(TransferFailed.selector);
        v.claim(alice);
        assertEq(v.owed(alice), 3 ether);
    }

    // ---------------------------------------------------------------- close

    function test_RevertWhen_CloseParamsAltered() public {
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.prank(alice);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.close(q, emptyBalance(), "");
        }
    }

    function test_RevertWhen_CloseByNonParticipant() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(NotParticipant.selector, stranger));
        v.close(p, emptyBalance(), "");
    }

    function test_RevertWhen_CloseAlreadyClosed() public {
        aliceCloses();
        vm.prank(bob);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.close(p, emptyBalance(), "");
        vm.prank(alice);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.close(p, emptyBalance(), "");
    }

    function test_RevertWhen_CloseAfterSettlement() public {
        coopClose(5 ether, 5 ether);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.close(p, emptyBalance(), "");
    }

    function test_RevertWhen_CloseNonceZeroWithTransferredAmount() public {
        vm.prank(alice);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.close(p, BalanceData(0, 1, 0, bytes32(0)), "");
    }

    function test_RevertWhen_CloseNonceZeroWithLockedAmount() public {
        vm.prank(alice);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.close(p, BalanceData(0, 0, 1, bytes32(0)), "");
    }

    function test_RevertWhen_CloseNonceZeroWithLocksRoot() public {
        vm.prank(alice);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.close(p, BalanceData(0, 0, 0, bytes32(uint256(1))), "");
    }

    function test_RevertWhen_CloseTransferredAmountAbove128Bits() public {
        BalanceData memory b = BalanceData(1, uint256(type(uint128).max) + 1, 0, bytes32(0));
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.close(p, b, sig);
    }

    function test_RevertWhen_CloseLockedAmountAbove128Bits() public {
        BalanceData memory b = BalanceData(1, 0, uint256(type(uint128).max) + 1, bytes32(0));
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.close(p, b, sig);
    }

    function test_CloseAcceptsAmountsAtExactly128Bits() public {
        BalanceData memory b = BalanceData(1, type(uint128).max, type(uint128).max, bytes32(0));
        DisputeState memory s = closeWith(p, v, true, b);
        assertEq(v.status(), 2);
        // Settlement clamps to what the vault holds: all of it to alice, who received everything.
        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        v.settle(p, s);
        assertEq(alice.balance, a0 + 10 ether);
    }

    function test_RevertWhen_CloserSubmitsOwnProof() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory own = signBalance(alicePk, p, address(v), b);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, alice));
        v.close(p, b, own);
    }

    function test_RevertWhen_CloseProofWithoutSignature() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 0));
        v.close(p, balance(1, 1 ether), "");
    }

    function test_RevertWhen_CloseProofFieldsDifferFromSigned() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        b.transferredAmount = 4 ether;
        address recovered = recoverAs(address(v), bpStructHash(channelIdOf(p), b), sig);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.close(p, b, sig);
    }

    // ---------------------------------------------------------------- refute

    function test_RevertWhen_RefuteParamsAltered() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.prank(bob);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.refute(q, s, newer, sig, "");
        }
    }

    function test_RevertWhen_RefuteWhileOpen() public {
        DisputeState memory s;
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.refute(p, s, newer, sig, "");
    }

    function test_RevertWhen_RefuteAfterSettlement() public {
        DisputeState memory s = aliceCloses();
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.refute(p, s, newer, sig, "");
    }

    function test_RevertWhen_RefuteStateAltered() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        for (uint256 field = 0; field < DISPUTE_FIELDS; ++field) {
            DisputeState memory t = alteredDispute(s, field);
            vm.prank(bob);
            vm.expectRevert(IChannelVault.StateMismatch.selector);
            v.refute(p, t, newer, sig, "");
        }
        vm.prank(bob);
        v.refute(p, s, newer, sig, "");
    }

    function testFuzz_RevertWhen_RefuteStateAltered(uint256 field) public {
        field = bound(field, 0, DISPUTE_FIELDS - 1);
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        DisputeState memory t = alteredDispute(s, field);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.StateMismatch.selector);
        v.refute(p, t, newer, sig, "");
    }

    function test_RevertWhen_RefuteAfterDeadline() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.warp(uint256(s.deadline) + 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodOver.selector, s.deadline));
        v.refute(p, s, newer, sig, "");
    }

    function test_RefuteAtExactlyDeadline() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.warp(s.deadline);
        vm.prank(bob);
        v.refute(p, s, newer, sig, "");
        s.fromA = newer;
        vm.warp(uint256(s.deadline) + 1);
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(bob.balance, b0 + 6 ether); // 5 + 2 - 1
    }

    function test_RevertWhen_RefuteNonceZeroOverEmptyRecord() public {
        DisputeState memory s = aliceCloses();
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 0, 0));
        v.refute(p, s, emptyBalance(), "", "");
    }

    function test_RevertWhen_RefuteNonceEqual() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory first = balance(5, 2 ether);
        vm.prank(bob);
        v.refute(p, s, first, signBalance(alicePk, p, address(v), first), "");
        s.fromA = first;
        // Same nonce, even with a larger amount, is stale.
        BalanceData memory same = balance(5, 3 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), same);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 5, 5));
        v.refute(p, s, same, sig, "");
    }

    function test_RevertWhen_RefuteNonceLower() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory first = balance(5, 2 ether);
        vm.prank(bob);
        v.refute(p, s, first, signBalance(alicePk, p, address(v), first), "");
        s.fromA = first;
        BalanceData memory older = balance(3, 3 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), older);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 5, 3));
        v.refute(p, s, older, sig, "");
    }

    function testFuzz_RevertWhen_RefuteNonceNotHigher(uint64 recorded, uint64 submitted) public {
        recorded = uint64(bound(recorded, 1, type(uint64).max));
        submitted = uint64(bound(submitted, 0, recorded));
        DisputeState memory s = aliceCloses();
        BalanceData memory first = balance(recorded, 2 ether);
        vm.prank(bob);
        v.refute(p, s, first, signBalance(alicePk, p, address(v), first), "");
        s.fromA = first;
        BalanceData memory stale = balance(submitted, submitted == 0 ? 0 : 3 ether);
        bytes memory sig = submitted == 0 ? bytes("") : signBalance(alicePk, p, address(v), stale);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, recorded, submitted));
        v.refute(p, s, stale, sig, "");
    }

    function test_RevertWhen_RefuteProofNotSignedByCloser() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory bySelf = signBalance(bobPk, p, address(v), newer);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, bob));
        v.refute(p, s, newer, bySelf, "");
    }

    function test_RevertWhen_RefuteProofSignedByStranger() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory forged = signBalance(towerPk, p, address(v), newer);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, tower));
        v.refute(p, s, newer, forged, "");
    }

    function test_RevertWhen_RefuteProofAmountsAbove128Bits() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory huge = BalanceData(5, uint256(type(uint128).max) + 1, 0, bytes32(0));
        bytes memory sig = signBalance(alicePk, p, address(v), huge);
        vm.prank(bob);
        vm.expectRevert(IChannelVault.InvalidBalanceProof.selector);
        v.refute(p, s, huge, sig, "");
    }

    function test_RevertWhen_ThirdPartyRefutesWithoutAuthorisation() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        // A missing authorisation fails the signature-length check before any signer comparison.
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 0));
        v.refute(p, s, newer, sig, "");
    }

    function test_RevertWhen_ThirdPartyAuthorisesItself() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        bytes memory selfAuth = signTowerAuth(towerPk, p, address(v), newer);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, tower));
        v.refute(p, s, newer, sig, selfAuth);
    }

    function test_RevertWhen_AuthorisationSignedByCloser() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        bytes memory closerAuth = signTowerAuth(alicePk, p, address(v), newer);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, alice));
        v.refute(p, s, newer, sig, closerAuth);
    }

    function test_RevertWhen_AuthorisationCoversDifferentProof() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        BalanceData memory other = balance(4, 2 ether);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), other);
        address recovered = recoverAs(address(v), towerAuthStructHash(p, newer), auth);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.refute(p, s, newer, sig, auth);
    }

    function test_RevertWhen_CloserRefutesOwnCloseWithoutAuthorisation() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 0));
        v.refute(p, s, newer, sig, "");
    }

    function test_NonCloserRefutesIgnoringAuthorisation() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        vm.prank(bob);
        v.refute(p, s, newer, sig, hex"deadbeef");
        assertEq(v.status(), 2);
    }

    function test_RefuteNeverChangesDeadline() public {
        DisputeState memory s = aliceCloses();
        uint64 deadline = s.deadline;
        vm.warp(block.timestamp + PERIOD / 2);

        BalanceData memory first = balance(5, 2 ether);
        DisputeState memory expected = copyDispute(s);
        expected.fromA = first;
        vm.expectEmit(address(v));
        emit IChannelVault.Refuted(expected);
        vm.prank(bob);
        v.refute(p, s, first, signBalance(alicePk, p, address(v), first), "");

        // A second refutation, by the tower at the last second, keeps it too.
        vm.warp(deadline);
        BalanceData memory second = balance(6, 3 ether);
        DisputeState memory expected2 = copyDispute(expected);
        expected2.fromA = second;
        bytes memory sig = signBalance(alicePk, p, address(v), second);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), second);
        vm.expectEmit(address(v));
        emit IChannelVault.Refuted(expected2);
        vm.prank(tower);
        v.refute(p, expected, second, sig, auth);
        assertEq(expected2.deadline, deadline);

        vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodNotOver.selector, deadline));
        v.settle(p, expected2);
        vm.warp(uint256(deadline) + 1);
        BalanceData memory third = balance(7, 4 ether);
        sig = signBalance(alicePk, p, address(v), third);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodOver.selector, deadline));
        v.refute(p, expected2, third, sig, "");
        v.settle(p, expected2);
        assertEq(v.status(), 3);
    }

    // ---------------------------------------------------------------- settle

    function test_RevertWhen_SettleParamsAltered() public {
        DisputeState memory s = aliceCloses();
        vm.warp(uint256(s.deadline) + 1);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.settle(q, s);
        }
    }

    function test_RevertWhen_SettleWhileOpen() public {
        DisputeState memory s;
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.settle(p, s);
    }

    function test_RevertWhen_SettleAtExactlyDeadline() public {
        DisputeState memory s = aliceCloses();
        vm.warp(s.deadline);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodNotOver.selector, s.deadline));
        v.settle(p, s);
    }

    function test_RevertWhen_SettleRightAfterClose() public {
        DisputeState memory s = aliceCloses();
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.ChallengePeriodNotOver.selector, s.deadline));
        v.settle(p, s);
    }

    function test_SettleRightAfterDeadline() public {
        DisputeState memory s = aliceCloses();
        vm.warp(uint256(s.deadline) + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(alice.balance, a0 + 6 ether);
        assertEq(bob.balance, b0 + 4 ether);
        assertEq(v.status(), 3);
    }

    function test_RevertWhen_SettleStateAltered() public {
        DisputeState memory s = aliceCloses();
        vm.warp(uint256(s.deadline) + 2);
        for (uint256 field = 0; field < DISPUTE_FIELDS; ++field) {
            DisputeState memory t = alteredDispute(s, field);
            vm.expectRevert(IChannelVault.StateMismatch.selector);
            v.settle(p, t);
        }
    }

    function test_RevertWhen_SettleWithStateReplacedByRefutation() public {
        DisputeState memory s = aliceCloses();
        BalanceData memory newer = balance(5, 2 ether);
        vm.prank(bob);
        v.refute(p, s, newer, signBalance(alicePk, p, address(v), newer), "");
        vm.warp(uint256(s.deadline) + 1);
        vm.expectRevert(IChannelVault.StateMismatch.selector);
        v.settle(p, s);
    }

    function test_RevertWhen_SettleTwice() public {
        DisputeState memory s = aliceCloses();
        vm.warp(uint256(s.deadline) + 1);
        v.settle(p, s);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.settle(p, s);
    }

    function test_RevertWhen_SettleAfterCooperativeClose() public {
        DisputeState memory s;
        coopClose(5 ether, 5 ether);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.settle(p, s);
    }

    // ---------------------------------------------------------------- unlock

    function test_RevertWhen_UnlockParamsAltered() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.unlock(q, ls, 0, locks);
        }
    }

    function test_RevertWhen_UnlockWhileOpen() public {
        LockState memory ls;
        Lock[] memory none;
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 0, none);
    }

    function test_RevertWhen_UnlockWhileClosed() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        closeWith(p, v, false, BalanceData(2, 1 ether, 1 ether, lockHash(locks)));
        LockState memory ls = LockState(1 ether, lockHash(locks), 0, bytes32(0));
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 0, locks);
    }

    function test_RevertWhen_UnlockSettledWithoutLocks() public {
        DisputeState memory s = aliceCloses();
        vm.warp(uint256(s.deadline) + 1);
        v.settle(p, s);
        LockState memory ls;
        Lock[] memory none;
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 0, none);
    }

    function test_RevertWhen_UnlockAfterCooperativeClose() public {
        coopClose(5 ether, 5 ether);
        LockState memory ls;
        Lock[] memory none;
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 1, none);
    }

    function test_RevertWhen_UnlockDirectionWithNothingRetained() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        Lock[] memory none;
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 1, none);
    }

    function test_RevertWhen_UnlockStateAltered() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        LockState[4] memory altered = [
            LockState(ls.retainedA + 1, ls.locksRootA, ls.retainedB, ls.locksRootB),
            LockState(ls.retainedA, bytes32(uint256(ls.locksRootA) ^ 1), ls.retainedB, ls.locksRootB),
            LockState(ls.retainedA, ls.locksRootA, ls.retainedB + 1, ls.locksRootB),
            LockState(ls.retainedA, ls.locksRootA, ls.retainedB, bytes32(uint256(1)))
        ];
        for (uint256 i = 0; i < 4; ++i) {
            vm.expectRevert(IChannelVault.StateMismatch.selector);
            v.unlock(p, altered[i], 0, locks);
        }
    }

    function test_RevertWhen_UnlockSideInvalid() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.unlock(p, ls, 2, locks);
    }

    function test_RevertWhen_UnlockLocksMismatch() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        Lock[] memory inflated = locksOf(locks[0].expiration, 2 ether, "s");
        vm.expectRevert(IChannelVault.LocksMismatch.selector);
        v.unlock(p, ls, 0, inflated);
        Lock[] memory none;
        vm.expectRevert(IChannelVault.LocksMismatch.selector);
        v.unlock(p, ls, 0, none);
        Lock[] memory doubled = new Lock[](2);
        (doubled[0], doubled[1]) = (locks[0], locks[0]);
        vm.expectRevert(IChannelVault.LocksMismatch.selector);
        v.unlock(p, ls, 0, doubled);
    }

    function test_RevertWhen_UnlockUnrevealedLockNotExpired() public {
        uint64 expiration = T0 + 3 days;
        Lock[] memory locks = locksOf(expiration, 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.LockNotExpired.selector, secretHashOf("s"), expiration)
        );
        v.unlock(p, ls, 0, locks);
        // Still undecidable at exactly the expiration.
        vm.warp(expiration);
        vm.expectRevert(
            abi.encodeWithSelector(IChannelVault.LockNotExpired.selector, secretHashOf("s"), expiration)
        );
        v.unlock(p, ls, 0, locks);
    }

    function test_UnlockAfterExpiryReturnsToSender() public {
        uint64 expiration = T0 + 3 days;
        Lock[] memory locks = locksOf(expiration, 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        vm.warp(uint256(expiration) + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        vm.expectEmit(address(v));
        emit IChannelVault.Unlocked(0, 0, 1 ether, LockState(0, bytes32(0), 0, bytes32(0)));
        v.unlock(p, ls, 0, locks);
        assertEq(alice.balance, a0 + 1 ether);
        assertEq(bob.balance, b0);
        assertEq(address(v).balance, 0);
    }

    function test_UnlockSecretRevealedAfterExpirationReturnsToSender() public {
        uint64 expiration = T0 + 3 days;
        Lock[] memory locks = locksOf(expiration, 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        vm.warp(uint256(expiration) + 1);
        registry.registerSecret("s");
        uint256 a0 = alice.balance;
        v.unlock(p, ls, 0, locks);
        assertEq(alice.balance, a0 + 1 ether);
    }

    function test_UnlockSecretRevealedAtExactlyExpirationPaysReceiver() public {
        uint64 expiration = T0 + 3 days;
        Lock[] memory locks = locksOf(expiration, 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        vm.warp(expiration);
        registry.registerSecret("s");
        uint256 b0 = bob.balance;
        v.unlock(p, ls, 0, locks);
        assertEq(bob.balance, b0 + 1 ether);
    }

    function test_RevertWhen_UnlockSameDirectionTwice() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 hours), 1 ether, "s");
        LockState memory ls = settleWithLocksFromAlice(locks, 1 ether);
        v.unlock(p, ls, 0, locks);
        assertEq(v.stateWord(), 3);
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, ls, 0, locks);
    }

    function test_RevertWhen_UnlockSameDirectionTwiceWithOtherPending() public {
        uint64 expiration = T0 + 2 hours;
        Lock[] memory fromA = locksOf(expiration, 1 ether, "a");
        Lock[] memory fromB = locksOf(expiration, 2 ether, "b");
        // Bob closes with alice's proof; alice refutes with bob's.
        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 0, 1 ether, lockHash(fromA)));
        BalanceData memory bobProof = BalanceData(4, 0, 2 ether, lockHash(fromB));
        vm.prank(alice);
        v.refute(p, s, bobProof, signBalance(bobPk, p, address(v), bobProof), "");
        s.fromB = bobProof;
        vm.warp(uint256(s.deadline) + 1);
        v.settle(p, s);

        LockState memory ls = LockState(1 ether, lockHash(fromA), 2 ether, lockHash(fromB));
        v.unlock(p, ls, 0, fromA);
        LockState memory next = LockState(0, bytes32(0), 2 ether, lockHash(fromB));
        // The old state is no longer committed to; the new one has nothing left for A.
        vm.expectRevert(IChannelVault.StateMismatch.selector);
        v.unlock(p, ls, 0, fromA);
        Lock[] memory none;
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, next, 0, none);
        vm.expectRevert(IChannelVault.NothingToUnlock.selector);
        v.unlock(p, next, 0, fromA);
        // B's direction still resolves.
        v.unlock(p, next, 1, fromB);
        assertEq(v.stateWord(), 3);
        assertEq(address(v).balance, 0);
    }

    // ---------------------------------------------------------------- releaseLocks

    /// @dev Bob closes with alice's proof holding one lock to bob; returns that lock.
    function bobClosesWithLockFromAlice() internal returns (Lock[] memory locks) {
        locks = locksOf(uint64(block.timestamp + 2 days), 1 ether, "s");
        closeWith(p, v, false, BalanceData(2, 1 ether, 1 ether, lockHash(locks)));
    }

    function test_RevertWhen_ReleaseLocksWhileOpen() public {
        Lock[] memory locks = locksOf(uint64(block.timestamp + 2 days), 1 ether, "s");
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        vm.expectRevert(IChannelVault.ChannelNotClosed.selector);
        v.releaseLocks(p, 0, locks, sigs);
    }

    function test_RevertWhen_ReleaseLocksParamsAltered() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        for (uint256 i = 0; i < 6; ++i) {
            ChannelParams memory q = alteredParams(i);
            vm.expectRevert(IChannelVault.WrongChannel.selector);
            v.releaseLocks(q, 0, locks, sigs);
        }
    }

    function test_RevertWhen_ReleaseLocksSideInvalid() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.InvalidSide.selector, 2));
        v.releaseLocks(p, 2, locks, sigs);
    }

    function test_RevertWhen_ReleaseLocksLengthMismatch() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory none;
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.LengthMismatch.selector, 1, 0));
        v.releaseLocks(p, 0, locks, none);
        bytes[] memory two = new bytes[](2);
        two[0] = signReleases(bobPk, p, address(v), locks)[0];
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.LengthMismatch.selector, 1, 2));
        v.releaseLocks(p, 0, locks, two);
    }

    /// @dev The sender cannot release its own lock: only its receiver can give it up.
    function test_RevertWhen_ReleaseLocksSignedBySender() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(alicePk, p, address(v), locks);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, alice));
        v.releaseLocks(p, 0, locks, sigs);
    }

    function test_RevertWhen_ReleaseLocksSignedByStranger() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(towerPk, p, address(v), locks);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, tower));
        v.releaseLocks(p, 0, locks, sigs);
    }

    /// @dev Each field of the lock is signed: amount, expiration and secret hash.
    function test_RevertWhen_ReleaseLocksFieldsDifferFromSigned() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        for (uint256 field = 0; field < 3; ++field) {
            Lock[] memory altered = locksOf(locks[0].expiration, locks[0].amount, "s");
            if (field == 0) altered[0].amount += 1;
            else if (field == 1) altered[0].expiration += 1;
            else altered[0].secretHash = secretHashOf("other");
            address recovered = recoverAs(address(v), lockReleaseStructHash(p, altered[0]), sigs[0]);
            vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
            v.releaseLocks(p, 0, altered, sigs);
        }
    }

    /// @dev One bad signature fails the whole call: none of the batch is recorded.
    function test_RevertWhen_ReleaseLocksOneOfSeveralSignaturesBad() public {
        uint64 expiration = T0 + 2 days;
        Lock[] memory locks = new Lock[](2);
        locks[0] = Lock(expiration, 0.5 ether, secretHashOf("a"));
        locks[1] = Lock(expiration, 0.5 ether, secretHashOf("b"));
        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 0, 1 ether, lockHash(locks)));
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        sigs[1] = signReleases(alicePk, p, address(v), locks)[1];
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, alice));
        v.releaseLocks(p, 0, locks, sigs);
        // Nothing was recorded: both secrets, registered in time, still pay bob.
        registry.registerSecret("a");
        registry.registerSecret("b");
        vm.warp(uint256(s.deadline) + 1);
        v.settle(p, s);
        uint256 b0 = bob.balance;
        v.unlock(p, LockState(1 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(bob.balance, b0 + 1 ether);
    }

    function test_RevertWhen_ReleaseLocksSignatureIs64Bytes() public {
        Lock[] memory locks = bobClosesWithLockFromAlice();
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        sigs[0] = toCompact(sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.releaseLocks(p, 0, locks, sigs);
    }
}

/// @dev A contract that answers like a vault but is not one: withdrawInto must not pay it.
contract FakeVault {
    function totalDeposit(uint8) external pure returns (uint256) {
        return 0;
    }

    function deposit(uint8, uint256) external payable {}
}
