// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelSigTest} from "./utils/KeelSigTest.sol";
import {ChannelFactory} from "../src/ChannelFactory.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {IChannelVault} from "../src/interfaces/IChannelVault.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    DisputeState,
    Lock,
    Withdrawal
} from "../src/libraries/ChannelTypes.sol";
import {SignedMessages} from "../src/libraries/SignedMessages.sol";

/// @notice A signature is good for one message, of one purpose, on one channel of one factory on one
/// chain, in one encoding; and an older balance proof never displaces a newer one.
contract ReplayTest is KeelSigTest {
    ChannelParams internal p;
    ChannelVault internal v;
    /// @dev Kept in storage: via-IR may re-read CHAINID where a local is used, after vm.chainId.
    uint256 internal homeChain;

    function setUp() public override {
        super.setUp();
        homeChain = block.chainid;
        (p, v) = openEth(5 ether, 5 ether);
    }

    // ---------------------------------------------------------------- helpers

    function withdrawal(address who, uint256 total) internal view returns (Withdrawal memory) {
        return payout(who, total, uint64(block.timestamp + 1 hours));
    }

    // ---------------------------------------------------------------- another channel, same participants

    function test_RevertWhen_WithdrawalReplayedOnChannelWithOtherSalt() public {
        (ChannelParams memory p2, ChannelVault v2) = openEthSalt(bytes32(uint256(2)), 5 ether, 5 ether);
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        address recovered = recoverAs(address(v2), withdrawalStructHash(p2, w), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v2.withdraw(p2, w, sigA, sigB);
        // Nor with the first channel's parameters, which do not describe the second vault.
        vm.expectRevert(IChannelVault.WrongChannel.selector);
        v2.withdraw(p, w, sigA, sigB);
        // The signatures are good where they were made.
        v.withdraw(p, w, sigA, sigB);
        assertEq(v.totalWithdrawn(0), 1 ether);
        assertEq(v2.totalWithdrawn(0), 0);
    }

    function test_RevertWhen_CooperativeCloseReplayedOnChannelWithOtherSalt() public {
        (ChannelParams memory p2, ChannelVault v2) = openEthSalt(bytes32(uint256(2)), 5 ether, 5 ether);
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 10 ether, 0);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 10 ether, 0);
        address recovered = recoverAs(address(v2), coopStructHash(p2, 10 ether, 0), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v2.cooperativeClose(p2, terms(address(v2), 10 ether, 0), sigA, sigB);
    }

    function test_RevertWhen_BalanceProofReplayedOnChannelWithOtherSalt() public {
        (ChannelParams memory p2, ChannelVault v2) = openEthSalt(bytes32(uint256(2)), 5 ether, 5 ether);
        BalanceData memory b = balance(3, 4 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        address recovered = recoverAs(address(v2), bpStructHash(channelIdOf(p2), b), sig);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v2.close(p2, b, sig);
    }

    function test_RevertWhen_RefutationReplayedOnChannelWithOtherSalt() public {
        (ChannelParams memory p2, ChannelVault v2) = openEthSalt(bytes32(uint256(2)), 5 ether, 5 ether);
        DisputeState memory s2 = closeWith(p2, v2, true, emptyBalance());
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), newer);
        address recovered = recoverAs(address(v2), bpStructHash(channelIdOf(p2), newer), sig);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v2.refute(p2, s2, newer, sig, auth);

        // An authorisation from the first channel does not carry over either, even with a good proof.
        bytes memory goodSig = signBalance(alicePk, p2, address(v2), newer);
        address recoveredAuth = recoverAs(address(v2), towerAuthStructHash(p2, newer), auth);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recoveredAuth));
        v2.refute(p2, s2, newer, goodSig, auth);
    }

    // ---------------------------------------------------------------- another chain

    function test_RevertWhen_ChainIdChangesAfterOpening() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory wA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory wB = signWithdrawal(bobPk, p, address(v), w);
        bytes memory cA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory cB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        BalanceData memory b = balance(3, 1 ether);
        bytes memory bSig = signBalance(bobPk, p, address(v), b);

        vm.chainId(homeChain + 1);
        // On another chain id (a fork), the parameters no longer derive this vault's address.
        vm.expectRevert(IChannelVault.WrongChannel.selector);
        v.withdraw(p, w, wA, wB);
        vm.expectRevert(IChannelVault.WrongChannel.selector);
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), cA, cB);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.WrongChannel.selector);
        v.close(p, b, bSig);

        // Back home, the very same signatures work.
        vm.chainId(homeChain);
        v.withdraw(p, w, wA, wB);
        assertEq(v.totalWithdrawn(0), 1 ether);
    }

    function test_RevertWhen_SignaturesForChain1OnChannelOpenedOnChain2() public {
        // Signatures made on chain 1 for this channel's parameters (chain 1's vault and id).
        vm.chainId(1);
        ChannelParams memory q = ethParams();
        q.salt = bytes32(uint256(9));
        address vaultOn1 = factory.vaultOf(q);
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA1 = signWithdrawal(alicePk, q, vaultOn1, w);
        bytes memory sigB1 = signWithdrawal(bobPk, q, vaultOn1, w);
        BalanceData memory b = balance(3, 1 ether);
        bytes memory bSig1 = signBalance(bobPk, q, vaultOn1, b);

        vm.chainId(2);
        vm.prank(alice);
        (address vaultOn2,) = factory.open{value: 5 ether}(q, 5 ether);
        ChannelVault v2 = ChannelVault(vaultOn2);
        assertTrue(vaultOn2 != vaultOn1);

        address recovered = recoverAs(vaultOn2, withdrawalStructHash(q, w), sigA1);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v2.withdraw(q, w, sigA1, sigB1);
        recovered = recoverAs(vaultOn2, bpStructHash(channelIdOf(q), b), bSig1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v2.close(q, b, bSig1);

        // Only the domain's chain id wrong (right vault, right channel id): still rejected.
        bytes32 structHash = withdrawalStructHash(q, w);
        bytes memory onlyChainA = signOnChain(alicePk, 1, vaultOn2, structHash);
        bytes memory onlyChainB = signOnChain(bobPk, 1, vaultOn2, structHash);
        recovered = recoverAs(vaultOn2, structHash, onlyChainA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v2.withdraw(q, w, onlyChainA, onlyChainB);

        // Signatures made on chain 2 are accepted.
        v2.withdraw(
            q, w, signOnChain(alicePk, 2, vaultOn2, structHash), signOnChain(bobPk, 2, vaultOn2, structHash)
        );
        assertEq(v2.totalWithdrawn(0), 1 ether);
    }

    // ---------------------------------------------------------------- another factory

    function test_RevertWhen_SignaturesReplayedOnAnotherFactory() public {
        ChannelFactory first = factory;
        ChannelFactory second = new ChannelFactory(MIN_PERIOD, MAX_PERIOD);
        vm.prank(alice);
        (address other,) = second.open{value: 5 ether}(p, 5 ether);
        ChannelVault v2 = ChannelVault(other);
        assertTrue(other != address(v));

        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        bytes memory cA = signCoopClose(alicePk, p, address(v), 5 ether, 0);
        bytes memory cB = signCoopClose(bobPk, p, address(v), 5 ether, 0);
        BalanceData memory b = balance(3, 1 ether);
        bytes memory bSig = signBalance(bobPk, p, address(v), b);

        // The fixture's helpers derive channel ids from `factory`: point them at the second one.
        factory = second;
        address rW = recoverAs(other, withdrawalStructHash(p, w), sigA);
        address rC = recoverAs(other, coopStructHash(p, 5 ether, 0), cA);
        address rB = recoverAs(other, bpStructHash(channelIdOf(p), b), bSig);
        factory = first;

        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, rW));
        v2.withdraw(p, w, sigA, sigB);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, rC));
        v2.cooperativeClose(p, terms(address(v2), 5 ether, 0), cA, cB);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, rB));
        v2.close(p, b, bSig);
    }

    function test_OtherFactoryDerivesOtherIdAndVault() public {
        ChannelFactory second = new ChannelFactory(MIN_PERIOD, MAX_PERIOD);
        assertTrue(second.channelId(p) != factory.channelId(p));
        assertTrue(second.vaultOf(p) != factory.vaultOf(p));
    }

    // ---------------------------------------------------------------- another purpose

    function test_RevertWhen_BalanceProofSignaturePresentedAsTowerAuthorisation() public {
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        // Bob signed a balance proof over the very same fields, but never authorised a tower.
        bytes memory notAnAuth = signBalance(bobPk, p, address(v), newer);
        address recovered = recoverAs(address(v), towerAuthStructHash(p, newer), notAnAuth);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.refute(p, s, newer, sig, notAnAuth);
    }

    function test_RevertWhen_TowerAuthorisationPresentedAsBalanceProof() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), b);
        address recovered = recoverAs(address(v), bpStructHash(channelIdOf(p), b), auth);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.close(p, b, auth);
    }

    function test_RevertWhen_WithdrawalSignaturePresentedAsCooperativeClose() public {
        // Same channel, and the numbers lined up as closely as the two types allow.
        Withdrawal memory w = payout(alice, 5 ether, 5 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        address recovered = recoverAs(address(v), coopStructHash(p, 5 ether, 5 ether), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), sigA, sigB);
    }

    function test_RevertWhen_CooperativeCloseSignaturePresentedAsWithdrawal() public {
        bytes memory sigA = signCoopClose(alicePk, p, address(v), uint256(uint160(alice)), 1 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), uint256(uint160(alice)), 1 ether);
        Withdrawal memory w = withdrawal(alice, 1 ether);
        address recovered = recoverAs(address(v), withdrawalStructHash(p, w), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_BalanceProofSignaturePresentedAsWithdrawal() public {
        BalanceData memory b = balance(1, 1 ether);
        bytes memory sigA = signBalance(alicePk, p, address(v), b);
        bytes memory sigB = signBalance(bobPk, p, address(v), b);
        Withdrawal memory w = withdrawal(alice, 1 ether);
        address recovered = recoverAs(address(v), withdrawalStructHash(p, w), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.withdraw(p, w, sigA, sigB);
    }

    function test_RevertWhen_BalanceProofSignaturePresentedAsCooperativeClose() public {
        BalanceData memory b = balance(10 ether, 0);
        bytes memory sigA = signBalance(alicePk, p, address(v), b);
        bytes memory sigB = signBalance(bobPk, p, address(v), b);
        address recovered = recoverAs(address(v), coopStructHash(p, 10 ether, 0), sigA);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, recovered));
        v.cooperativeClose(p, terms(address(v), 10 ether, 0), sigA, sigB);
    }

    function test_RevertWhen_WithdrawalSignaturePresentedAsBalanceProof() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        BalanceData memory b = balance(1, 1 ether);
        address recovered = recoverAs(address(v), bpStructHash(channelIdOf(p), b), sigB);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.close(p, b, sigB);
    }

    // ---------------------------------------------------------------- other encodings

    function test_HighSIsAnotherEncodingOfTheSameSignature() public view {
        bytes memory sig = signBalance(bobPk, p, address(v), balance(3, 1 ether));
        bytes32 structHash = bpStructHash(channelIdOf(p), balance(3, 1 ether));
        assertEq(recoverAs(address(v), structHash, toHighS(sig)), bob);
        (,, uint8 parity) = splitSig(toHighS(sig));
        assertTrue(parity == 27 || parity == 28);
    }

    function test_RevertWhen_WithdrawSignatureHighS() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.withdraw(p, w, toHighS(sigA), sigB);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.withdraw(p, w, sigA, toHighS(sigB));
    }

    function test_RevertWhen_WithdrawSignatureCompact() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.withdraw(p, w, toCompact(sigA), sigB);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.withdraw(p, w, sigA, toCompact(sigB));
    }

    function test_RevertWhen_WithdrawReplayedInOtherEncodingAfterUse() public {
        Withdrawal memory w = withdrawal(alice, 1 ether);
        bytes memory sigA = signWithdrawal(alicePk, p, address(v), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(v), w);
        v.withdraw(p, w, sigA, sigB);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.withdraw(p, w, toHighS(sigA), toHighS(sigB));
        assertEq(v.totalWithdrawn(0), 1 ether);
    }

    function test_RevertWhen_CloseSignatureHighS() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        vm.prank(alice);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.close(p, b, toHighS(sig));
    }

    function test_RevertWhen_CloseSignatureCompact() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.close(p, b, toCompact(sig));
    }

    function test_RevertWhen_CooperativeCloseSignatureHighS() public {
        CooperativeClose memory c = terms(address(v), 5 ether, 5 ether);
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.cooperativeClose(p, c, toHighS(sigA), sigB);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.cooperativeClose(p, c, sigA, toHighS(sigB));
    }

    function test_RevertWhen_CooperativeCloseSignatureCompact() public {
        CooperativeClose memory c = terms(address(v), 5 ether, 5 ether);
        bytes memory sigA = signCoopClose(alicePk, p, address(v), 5 ether, 5 ether);
        bytes memory sigB = signCoopClose(bobPk, p, address(v), 5 ether, 5 ether);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.cooperativeClose(p, c, toCompact(sigA), sigB);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.cooperativeClose(p, c, sigA, toCompact(sigB));
    }

    function test_RevertWhen_RefuteSignaturesInOtherEncodings() public {
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), newer);
        vm.startPrank(tower);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.refute(p, s, newer, toHighS(sig), auth);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.refute(p, s, newer, toCompact(sig), auth);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.refute(p, s, newer, sig, toHighS(auth));
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        v.refute(p, s, newer, sig, toCompact(auth));
        v.refute(p, s, newer, sig, auth);
        vm.stopPrank();
    }

    // ---------------------------------------------------------------- old balance proofs

    function test_RevertWhen_RefuteWithOlderCloserProof() public {
        // Alice closes with bob's proof; bob refutes with alice's nonce-9 proof.
        DisputeState memory s = closeWith(p, v, true, balance(3, 1 ether));
        BalanceData memory latest = balance(9, 4 ether);
        vm.prank(bob);
        v.refute(p, s, latest, signBalance(alicePk, p, address(v), latest), "");
        s.fromA = latest;
        // Alice (through a tower bob once authorised for it) cannot swap in her older, cheaper proof.
        BalanceData memory older = balance(7, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), older);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), older);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 9, 7));
        v.refute(p, s, older, sig, auth);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 9, 7));
        v.refute(p, s, older, sig, "");

        vm.warp(uint256(s.deadline) + 1);
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(bob.balance, b0 + 8 ether); // 5 + 4 - 1: the newest proof counts
    }

    function test_RevertWhen_RefutationReplayed() public {
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        BalanceData memory newer = balance(5, 2 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), newer);
        vm.prank(tower);
        v.refute(p, s, newer, sig, auth);
        s.fromA = newer;
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.StaleNonce.selector, 5, 5));
        v.refute(p, s, newer, sig, auth);
    }

    function test_RevertWhen_AuthorisationReusedForNewerProof() public {
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        BalanceData memory authorised = balance(5, 2 ether);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), authorised);
        BalanceData memory newer = balance(6, 3 ether);
        bytes memory sig = signBalance(alicePk, p, address(v), newer);
        address recovered = recoverAs(address(v), towerAuthStructHash(p, newer), auth);
        vm.prank(tower);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.refute(p, s, newer, sig, auth);
    }

    function test_RevertWhen_NonCloserReplacesProofTheCloserChose() public {
        // Alice closes with an old proof of bob's: refute replaces only the closer's own direction,
        // so bob cannot swap in one of his own proofs (a newer one would only help alice).
        DisputeState memory s = closeWith(p, v, true, balance(3, 1 ether));
        BalanceData memory bobs = balance(5, 3 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), bobs);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, bob));
        v.refute(p, s, bobs, sig, "");
    }

    function test_CloseWithOlderCounterpartyProofOnlyCostsCloser() public {
        // Bob sent alice 1 ether (nonce 3), later 2 ether in total (nonce 5). Closing with the
        // older proof credits alice less: a stale proof cannot take money from its signer.
        uint256 snap = vm.snapshotState();
        DisputeState memory s = closeWith(p, v, true, balance(3, 1 ether));
        vm.warp(uint256(s.deadline) + 1);
        uint256 a0 = alice.balance;
        v.settle(p, s);
        uint256 withOlder = alice.balance - a0;

        vm.revertToState(snap);
        s = closeWith(p, v, true, balance(5, 2 ether));
        vm.warp(uint256(s.deadline) + 1);
        a0 = alice.balance;
        v.settle(p, s);
        uint256 withNewer = alice.balance - a0;

        assertEq(withOlder, 6 ether);
        assertEq(withNewer, 7 ether);
    }

    function test_RevertWhen_OldProofUsedAfterSettlement() public {
        BalanceData memory b = balance(3, 1 ether);
        bytes memory sig = signBalance(bobPk, p, address(v), b);
        DisputeState memory s = closeWith(p, v, true, b);
        vm.warp(uint256(s.deadline) + 1);
        v.settle(p, s);
        vm.prank(alice);
        vm.expectRevert(IChannelVault.ChannelNotOpen.selector);
        v.close(p, b, sig);
    }

    function test_RevertWhen_OldWithdrawalAfterNewerOne() public {
        Withdrawal memory older = withdrawal(bob, 1 ether);
        bytes memory oA = signWithdrawal(alicePk, p, address(v), older);
        bytes memory oB = signWithdrawal(bobPk, p, address(v), older);
        Withdrawal memory newer = withdrawal(bob, 3 ether);
        v.withdraw(
            p,
            newer,
            signWithdrawal(alicePk, p, address(v), newer),
            signWithdrawal(bobPk, p, address(v), newer)
        );
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.TotalNotIncreasing.selector, 3 ether, 1 ether));
        v.withdraw(p, older, oA, oB);
    }

    /// @dev A cooperative close binds the deposit and withdrawal totals it was signed against, so
    /// one signed before a later withdrawal and top-up cannot be replayed to take the new funds:
    /// alice and bob agree a 5/5 close, then instead withdraw alice's 5 and bob tops up 5; the old
    /// close no longer verifies.
    function test_RevertWhen_CooperativeCloseSignedBeforeLaterWithdrawalAndDeposit() public {
        CooperativeClose memory signed = terms(address(v), 5 ether, 5 ether);
        bytes memory cA = signCoopCloseFor(alicePk, p, address(v), signed);
        bytes memory cB = signCoopCloseFor(bobPk, p, address(v), signed);
        Withdrawal memory w = withdrawal(alice, 5 ether);
        v.withdraw(p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w));
        vm.prank(bob);
        v.deposit{value: 5 ether}(1, 10 ether);

        // The vault hashes its own withdrawal total, which has grown since: neither the terms as
        // signed nor today's deposits verify.
        vm.expectPartialRevert(IChannelVault.WrongSigner.selector);
        v.cooperativeClose(p, signed, cA, cB);
        vm.expectPartialRevert(IChannelVault.WrongSigner.selector);
        v.cooperativeClose(p, terms(address(v), 5 ether, 5 ether), cA, cB);
    }

    /// @dev Issue: anyone could cancel a signed close with a 1-wei deposit (the close signed the
    /// deposit totals). A deposit made after signing, by anyone for either side, now goes back to
    /// that side on top of its payout, and the close executes.
    function test_CooperativeCloseSignedBeforeADepositPaysTheDepositBack() public {
        CooperativeClose memory signed = terms(address(v), 4 ether, 6 ether);
        bytes memory cA = signCoopCloseFor(alicePk, p, address(v), signed);
        bytes memory cB = signCoopCloseFor(bobPk, p, address(v), signed);
        address griefer = makeAddr("griefer");
        vm.deal(griefer, 1 ether);
        vm.prank(griefer);
        v.deposit{value: 1}(0, v.totalDeposit(0) + 1);
        vm.prank(bob);
        v.deposit{value: 1 ether}(1, v.totalDeposit(1) + 1 ether);

        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        vm.expectEmit(address(v));
        emit IChannelVault.CooperativelyClosed(4 ether + 1, 7 ether);
        v.cooperativeClose(p, signed, cA, cB);
        assertEq(alice.balance, a0 + 4 ether + 1);
        assertEq(bob.balance, b0 + 7 ether);
        assertEq(address(v).balance, 0);
        assertEq(v.status(), 3);
    }

    /// @dev A close that claims deposits above the vault's record cannot execute.
    function test_RevertWhen_CooperativeCloseSignsMoreDepositThanRecorded() public {
        CooperativeClose memory c = terms(address(v), 5 ether, 6 ether);
        c.depositB += 1 ether;
        bytes memory cA = signCoopCloseFor(alicePk, p, address(v), c);
        bytes memory cB = signCoopCloseFor(bobPk, p, address(v), c);
        vm.expectRevert(IChannelVault.LedgerMismatch.selector);
        v.cooperativeClose(p, c, cA, cB);
        c.depositB -= 1 ether;
        c.depositA += 1 ether;
        cA = signCoopCloseFor(alicePk, p, address(v), c);
        cB = signCoopCloseFor(bobPk, p, address(v), c);
        vm.expectRevert(IChannelVault.LedgerMismatch.selector);
        v.cooperativeClose(p, c, cA, cB);
    }

    function test_RevertWhen_CooperativeCloseExpired() public {
        uint64 expiry = uint64(block.timestamp + 1 hours);
        CooperativeClose memory c = terms(address(v), 5 ether, 5 ether);
        c.expiry = expiry;
        bytes memory cA = signCoopCloseFor(alicePk, p, address(v), c);
        bytes memory cB = signCoopCloseFor(bobPk, p, address(v), c);
        vm.warp(expiry + 1);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.Expired.selector, expiry));
        v.cooperativeClose(p, c, cA, cB);
        vm.warp(expiry);
        v.cooperativeClose(p, c, cA, cB);
        assertEq(v.status(), 3);
    }

    // ---------------------------------------------------------------- lock releases

    /// @dev One lock alice sent bob, and bob closing `v2` with alice's proof that holds it.
    function closedWithLock(ChannelParams memory p2, ChannelVault v2) internal returns (Lock[] memory locks) {
        locks = new Lock[](1);
        locks[0] = Lock(uint64(block.timestamp + 2 days), 1 ether, secretHashOf("s"));
        closeWith(p2, v2, false, BalanceData(2, 0, 1 ether, lockHash(locks)));
    }

    function test_RevertWhen_LockReleaseReplayedOnChannelWithOtherSalt() public {
        (ChannelParams memory p2, ChannelVault v2) = openEthSalt(bytes32(uint256(2)), 5 ether, 5 ether);
        Lock[] memory locks = closedWithLock(p2, v2);
        closedWithLock(p, v);
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        address recovered = recoverAs(address(v2), lockReleaseStructHash(p2, locks[0]), sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v2.releaseLocks(p2, 0, locks, sigs);
        // Good where it was made.
        v.releaseLocks(p, 0, locks, sigs);
    }

    /// @dev Same parameters, another factory: another channel id and another vault (domain).
    function test_RevertWhen_LockReleaseReplayedOnAnotherFactory() public {
        Lock[] memory locks = closedWithLock(p, v);
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        ChannelFactory first = factory;
        factory = new ChannelFactory(MIN_PERIOD, MAX_PERIOD);
        (, ChannelVault v2) = openEth(5 ether, 5 ether);
        closedWithLock(p, v2);
        address recovered = recoverAs(address(v2), lockReleaseStructHash(p, locks[0]), sigs[0]);
        factory = first;
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v2.releaseLocks(p, 0, locks, sigs);
    }

    function test_RevertWhen_LockReleaseSignedForAnotherChain() public {
        Lock[] memory locks = closedWithLock(p, v);
        bytes32 structHash = lockReleaseStructHash(p, locks[0]);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = signOnChain(bobPk, homeChain + 1, address(v), structHash);
        address recovered = recoverAs(address(v), structHash, sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.releaseLocks(p, 0, locks, sigs);
    }

    /// @dev A balance proof bob signed is no release, even one whose words line up with the lock's.
    function test_RevertWhen_BalanceProofSignaturePresentedAsLockRelease() public {
        Lock[] memory locks = closedWithLock(p, v);
        BalanceData memory b = BalanceData(1, uint256(locks[0].secretHash), locks[0].amount, bytes32(0));
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = signBalance(bobPk, p, address(v), b);
        address recovered = recoverAs(address(v), lockReleaseStructHash(p, locks[0]), sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, bob, recovered));
        v.releaseLocks(p, 0, locks, sigs);
    }

    function test_RevertWhen_LockReleaseSignatureHighS() public {
        Lock[] memory locks = closedWithLock(p, v);
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        sigs[0] = toHighS(sigs[0]);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        v.releaseLocks(p, 0, locks, sigs);
    }
}
