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

/// @notice The happy paths of every lifecycle step, for native ETH, with exact balances.
contract ChannelLifecycleTest is KeelTest {
    function test_OpenCreatesVaultAtPredictedAddressWithDeposit() public {
        ChannelParams memory p = ethParams();
        address predicted = factory.vaultOf(p);
        vm.prank(alice);
        (address vault, bytes32 id) = factory.open{value: 3 ether}(p, 3 ether);
        assertEq(vault, predicted);
        assertEq(id, channelIdOf(p));
        assertEq(vault.balance, 3 ether);
        ChannelVault v = ChannelVault(vault);
        assertEq(v.status(), 1);
        assertEq(v.totalDeposit(0), 3 ether);
        assertEq(v.totalDeposit(1), 0);
        assertEq(v.token(), address(0));
        assertEq(v.factory(), address(factory));
    }

    function test_OpenByParticipantBCreditsSideB() public {
        ChannelParams memory p = ethParams();
        vm.prank(bob);
        (address vault,) = factory.open{value: 2 ether}(p, 2 ether);
        assertEq(ChannelVault(vault).totalDeposit(1), 2 ether);
        assertEq(ChannelVault(vault).totalDeposit(0), 0);
    }

    function test_TopUpByAnyoneRaisesCumulativeDeposit() public {
        (, ChannelVault v) = openEth(1 ether, 0);
        address stranger = makeAddr("stranger");
        vm.deal(stranger, 5 ether);
        vm.prank(stranger);
        v.deposit{value: 2 ether}(1, 2 ether);
        vm.prank(alice);
        v.deposit{value: 0.5 ether}(0, 1.5 ether);
        assertEq(v.totalDeposit(0), 1.5 ether);
        assertEq(v.totalDeposit(1), 2 ether);
        assertEq(address(v).balance, 3.5 ether);
    }

    function test_WithdrawWhileOpenPaysAndKeepsChannelOpen() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Withdrawal memory w = payout(alice, 2 ether, uint64(block.timestamp + 1 hours));
        uint256 before = alice.balance;
        v.withdraw(p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w));
        assertEq(alice.balance, before + 2 ether);
        assertEq(v.totalWithdrawn(0), 2 ether);
        assertEq(v.status(), 1);
        // A later, larger cumulative withdrawal pays only the difference.
        w.totalWithdrawn = 3 ether;
        v.withdraw(p, w, signWithdrawal(alicePk, p, address(v), w), signWithdrawal(bobPk, p, address(v), w));
        assertEq(alice.balance, before + 3 ether);
    }

    function test_WithdrawIntoMovesFundsToAnotherChannelOfTheParticipant() public {
        (ChannelParams memory p, ChannelVault x) = openEth(5 ether, 5 ether);
        // Bob's second channel, with carol, where bob is participant A.
        address carol = makeAddr("carol");
        ChannelParams memory q = ChannelParams(bob, carol, address(0), PERIOD, bytes32(uint256(2)));
        vm.prank(bob);
        (address yAddr,) = factory.open{value: 1 ether}(q, 1 ether);
        ChannelVault y = ChannelVault(yAddr);

        Withdrawal memory w = move(bob, 4 ether, uint64(block.timestamp + 1 hours), address(y), 0);
        bytes memory sigA = signWithdrawal(alicePk, p, address(x), w);
        bytes memory sigB = signWithdrawal(bobPk, p, address(x), w);
        // The destination is signed, so anyone may submit the move (here a relayer).
        vm.prank(carol);
        x.withdrawInto(p, w, sigA, sigB);
        assertEq(address(x).balance, 6 ether);
        assertEq(address(y).balance, 5 ether);
        assertEq(y.totalDeposit(0), 5 ether);
        assertEq(x.totalWithdrawn(1), 4 ether);
    }

    /// @dev EIP-5267: a wallet library that builds the domain from eip712Domain() gets the
    /// separator the vault checks signatures under.
    function test_Eip712DomainDescribesTheSeparatorTheVaultUses() public {
        (, ChannelVault v) = openEth(1 ether, 0);
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        ) = v.eip712Domain();
        assertEq(fields, hex"0f");
        assertEq(name, "Keel");
        assertEq(version, "2");
        assertEq(chainId, block.chainid);
        assertEq(verifyingContract, address(v));
        assertEq(salt, bytes32(0));
        assertEq(extensions.length, 0);
        bytes32 built = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                chainId,
                verifyingContract
            )
        );
        assertEq(built, v.domainSeparator());
        assertEq(built, domainOf(address(v)));
    }

    function test_CooperativeClosePaysBothAndSettles() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.cooperativeClose(
            p,
            terms(address(v), 3 ether, 7 ether),
            signCoopClose(alicePk, p, address(v), 3 ether, 7 ether),
            signCoopClose(bobPk, p, address(v), 3 ether, 7 ether)
        );
        assertEq(alice.balance, a0 + 3 ether);
        assertEq(bob.balance, b0 + 7 ether);
        assertEq(address(v).balance, 0);
        assertEq(v.status(), 3);
    }

    function test_UnilateralCloseRefuteSettlePaysLatestBalances() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        // Bob sent alice 1 ether (nonce 3); alice sent bob 4 ether (nonce 9) but closes with an
        // old picture of her own side: she only submits bob's proof.
        DisputeState memory s = closeWith(p, v, true, balance(3, 1 ether));
        assertEq(v.status(), 2);

        BalanceData memory aliceLatest = balance(9, 4 ether);
        vm.prank(bob);
        v.refute(p, s, aliceLatest, signBalance(alicePk, p, address(v), aliceLatest), "");
        s.fromA = aliceLatest;

        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(alice.balance, a0 + 2 ether); // 5 - 4 + 1
        assertEq(bob.balance, b0 + 8 ether); // 5 + 4 - 1
        assertEq(v.status(), 3);
        assertEq(address(v).balance, 0);
    }

    function test_TowerRefutesWithAuthorisation() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        DisputeState memory s = closeWith(p, v, true, emptyBalance());
        BalanceData memory aliceLatest = balance(4, 2 ether);
        bytes memory auth = signTowerAuth(bobPk, p, address(v), aliceLatest);
        vm.prank(tower);
        v.refute(p, s, aliceLatest, signBalance(alicePk, p, address(v), aliceLatest), auth);
        s.fromA = aliceLatest;
        vm.warp(s.deadline + 1);
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(bob.balance, b0 + 7 ether);
    }

    function test_UnlockPaysRevealedLocksToReceiverAndExpiredBackToSender() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        bytes32 secret = keccak256("secret");
        Lock[] memory locks = new Lock[](2);
        locks[0] = Lock(uint64(block.timestamp + 2 hours), 1 ether, secretHashOf(secret));
        locks[1] =
            Lock(uint64(block.timestamp + 2 hours), 0.5 ether, secretHashOf(keccak256("never revealed")));
        // Alice has two pending locks to bob; bob closes with her proof.
        BalanceData memory fromAlice = BalanceData(2, 1 ether, 1.5 ether, lockHash(locks));
        DisputeState memory s = closeWith(p, v, false, fromAlice);

        registry.registerSecret(secret);
        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(alice.balance, a0 + 2.5 ether); // 5 - 1 - 1.5 locked
        assertEq(bob.balance, b0 + 6 ether);
        LockState memory ls = LockState(1.5 ether, lockHash(locks), 0, bytes32(0));
        v.unlock(p, ls, 0, locks);
        assertEq(bob.balance, b0 + 7 ether);
        assertEq(alice.balance, a0 + 3 ether);
        assertEq(address(v).balance, 0);
        assertEq(v.stateWord(), 3);
    }

    // ---------------------------------------------------------------- lock releases

    /// @dev Alice sent bob lock L (1 ether, nonce 2); the payment failed further on, bob released L
    /// and alice's next proof (nonce 3) dropped it. Bob closes with the OLD proof, which still
    /// holds L, and L's secret is registered in time. Returns the dispute and [L].
    function closeWithOldProofHoldingReleasedLock()
        internal
        returns (ChannelParams memory p, ChannelVault v, DisputeState memory s, Lock[] memory locks)
    {
        (p, v) = openEth(5 ether, 5 ether);
        bytes32 secret = keccak256("leaked secret");
        locks = new Lock[](1);
        locks[0] = Lock(uint64(block.timestamp + 2 days), 1 ether, secretHashOf(secret));
        BalanceData memory old = BalanceData(2, 1 ether, 1 ether, lockHash(locks));
        s = closeWith(p, v, false, old);
        registry.registerSecret(secret);
    }

    /// @dev The release decides the outcome: the same close without it pays bob (next test).
    function test_ReleasedLockInOldProofGoesToSenderThoughSecretRevealed() public {
        (ChannelParams memory p, ChannelVault v, DisputeState memory s, Lock[] memory locks) =
            closeWithOldProofHoldingReleasedLock();
        // During the challenge period anyone (here a stranger) records bob's release.
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        vm.prank(makeAddr("stranger"));
        v.releaseLocks(p, 0, locks, sigs);

        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        assertEq(alice.balance, a0 + 3 ether); // 5 - 1 sent - 1 locked
        assertEq(bob.balance, b0 + 6 ether);
        v.unlock(p, LockState(1 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(alice.balance, a0 + 4 ether);
        assertEq(bob.balance, b0 + 6 ether);
        assertEq(address(v).balance, 0);
    }

    function test_WithoutReleaseOldProofPaysRevealedLockToReceiver() public {
        (ChannelParams memory p, ChannelVault v, DisputeState memory s, Lock[] memory locks) =
            closeWithOldProofHoldingReleasedLock();
        vm.warp(s.deadline + 1);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.settle(p, s);
        v.unlock(p, LockState(1 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(alice.balance, a0 + 3 ether);
        assertEq(bob.balance, b0 + 7 ether);
    }

    function test_ReleaseLocksEmitsLocksReleasedAndIsIdempotent() public {
        (ChannelParams memory p, ChannelVault v, DisputeState memory s, Lock[] memory locks) =
            closeWithOldProofHoldingReleasedLock();
        bytes[] memory sigs = signReleases(bobPk, p, address(v), locks);
        bytes32[] memory hashes = new bytes32[](1);
        hashes[0] = locks[0].secretHash;
        vm.expectEmit(address(v));
        emit IChannelVault.LocksReleased(0, hashes);
        v.releaseLocks(p, 0, locks, sigs);
        // Recording it again (after settlement, too) changes nothing.
        v.releaseLocks(p, 0, locks, sigs);
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        v.releaseLocks(p, 0, locks, sigs);
        uint256 a0 = alice.balance;
        v.unlock(p, LockState(1 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(alice.balance, a0 + 1 ether);
        // And once the direction is unlocked it is harmless.
        v.releaseLocks(p, 0, locks, sigs);
        assertEq(v.stateWord(), 3);
    }

    function test_ReleaseAfterSettlementStillReturnsLockToSender() public {
        (ChannelParams memory p, ChannelVault v, DisputeState memory s, Lock[] memory locks) =
            closeWithOldProofHoldingReleasedLock();
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        v.releaseLocks(p, 0, locks, signReleases(bobPk, p, address(v), locks));
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        v.unlock(p, LockState(1 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(alice.balance, a0 + 1 ether);
        assertEq(bob.balance, b0);
    }

    /// @dev Without the release, an unexpired lock with no secret makes unlock revert LockNotExpired.
    function test_ReleasedLockNotExpiredDoesNotBlockUnlock() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Lock[] memory locks = new Lock[](2);
        locks[0] = Lock(uint64(block.timestamp + 30 days), 1 ether, secretHashOf("never revealed"));
        locks[1] = Lock(uint64(block.timestamp + 2 hours), 0.5 ether, secretHashOf("revealed"));
        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 0, 1.5 ether, lockHash(locks)));
        registry.registerSecret("revealed");
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        LockState memory ls = LockState(1.5 ether, lockHash(locks), 0, bytes32(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IChannelVault.LockNotExpired.selector, locks[0].secretHash, locks[0].expiration
            )
        );
        v.unlock(p, ls, 0, locks);

        Lock[] memory released = new Lock[](1);
        released[0] = locks[0];
        v.releaseLocks(p, 0, released, signReleases(bobPk, p, address(v), released));
        assertLt(block.timestamp, locks[0].expiration);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        vm.expectEmit(address(v));
        emit IChannelVault.Unlocked(0, 0.5 ether, 1 ether, LockState(0, bytes32(0), 0, bytes32(0)));
        v.unlock(p, ls, 0, locks);
        assertEq(alice.balance, a0 + 1 ether);
        assertEq(bob.balance, b0 + 0.5 ether);
    }

    /// @dev Bob's release of alice's lock leaves bob's own lock with the same fields to alice.
    function test_ReleaseOfOneSideLeavesTheOtherSidesIdenticalLock() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Lock[] memory locks = new Lock[](1);
        locks[0] = Lock(uint64(block.timestamp + 2 days), 1 ether, secretHashOf("shared"));
        // Both directions hold the same lock: bob closes with alice's proof, alice refutes with bob's.
        BalanceData memory fromAlice = BalanceData(2, 0, 1 ether, lockHash(locks));
        DisputeState memory s = closeWith(p, v, false, fromAlice);
        BalanceData memory fromBob = BalanceData(4, 0, 1 ether, lockHash(locks));
        vm.prank(alice);
        v.refute(p, s, fromBob, signBalance(bobPk, p, address(v), fromBob), "");
        s.fromB = fromBob;
        registry.registerSecret("shared");

        bytes[] memory bobsRelease = signReleases(bobPk, p, address(v), locks);
        v.releaseLocks(p, 0, locks, bobsRelease);
        // Bob's signature cannot release his own lock to alice: that needs alice's.
        vm.expectRevert(abi.encodeWithSelector(IChannelVault.WrongSigner.selector, alice, bob));
        v.releaseLocks(p, 1, locks, bobsRelease);

        vm.warp(s.deadline + 1);
        v.settle(p, s);
        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        LockState memory ls = LockState(1 ether, lockHash(locks), 1 ether, lockHash(locks));
        v.unlock(p, ls, 0, locks);
        assertEq(alice.balance, a0 + 1 ether); // released: back to alice, its sender
        v.unlock(p, LockState(0, bytes32(0), 1 ether, lockHash(locks)), 1, locks);
        assertEq(alice.balance, a0 + 2 ether); // not released: to alice, its receiver
        assertEq(bob.balance, b0);
    }

    function test_ReleaseLocksRecordsSeveralLocksInOneCall() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Lock[] memory locks = new Lock[](3);
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 secret = keccak256(abi.encode("lock", i));
            locks[i] = Lock(uint64(block.timestamp + 2 days), (i + 1) * 0.25 ether, secretHashOf(secret));
            registry.registerSecret(secret);
        }
        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 0, 1.5 ether, lockHash(locks)));
        v.releaseLocks(p, 0, locks, signReleases(bobPk, p, address(v), locks));
        vm.warp(s.deadline + 1);
        v.settle(p, s);
        uint256 a0 = alice.balance;
        v.unlock(p, LockState(1.5 ether, lockHash(locks), 0, bytes32(0)), 0, locks);
        assertEq(alice.balance, a0 + 1.5 ether);
    }

    /// @dev The state word flags releases per side: with a release recorded only for alice's
    /// locks (side 0), unlocking bob's (side 1) pays his revealed locks to alice without reading
    /// the release mapping, and the flag outlives a refutation, the settlement and that unlock, so
    /// alice's released lock still goes back to her.
    function test_ReleaseFlagIsPerSide() public {
        (ChannelParams memory p, ChannelVault v) = openEth(5 ether, 5 ether);
        Lock[] memory aliceLocks = new Lock[](1);
        aliceLocks[0] = Lock(uint64(block.timestamp + 2 days), 1 ether, secretHashOf("alice's"));
        Lock[] memory bobLocks = new Lock[](2);
        bobLocks[0] = Lock(uint64(block.timestamp + 2 days), 0.25 ether, secretHashOf("bob's 0"));
        bobLocks[1] = Lock(uint64(block.timestamp + 3 days), 0.5 ether, secretHashOf("bob's 1"));
        registry.registerSecret("alice's");
        registry.registerSecret("bob's 0");
        registry.registerSecret("bob's 1");

        DisputeState memory s = closeWith(p, v, false, BalanceData(2, 0, 1 ether, lockHash(aliceLocks)));
        v.releaseLocks(p, 0, aliceLocks, signReleases(bobPk, p, address(v), aliceLocks));
        assertEq(uint256(vm.load(address(v), bytes32(0))) & 0xff, 2 | 4); // CLOSED, side 0 flagged
        assertEq(v.status(), 2);
        assertEq(v.stateWord() & 0xff, 2);

        BalanceData memory fromBob = BalanceData(3, 0, 0.75 ether, lockHash(bobLocks));
        vm.prank(alice);
        v.refute(p, s, fromBob, signBalance(bobPk, p, address(v), fromBob), "");
        s.fromB = fromBob;
        assertEq(uint256(vm.load(address(v), bytes32(0))) & 0xff, 2 | 4);

        vm.warp(s.deadline + 1);
        v.settle(p, s);
        assertEq(uint256(vm.load(address(v), bytes32(0))) & 0xff, 3 | 4);
        LockState memory ls = LockState(1 ether, lockHash(aliceLocks), 0.75 ether, lockHash(bobLocks));
        assertEq(v.stateWord() >> 8, uint256(keccak256(abi.encode(ls))) >> 8);

        uint256 a0 = alice.balance;
        uint256 b0 = bob.balance;
        vm.record();
        v.unlock(p, ls, 1, bobLocks);
        (bytes32[] memory reads,) = vm.accesses(address(v));
        for (uint256 i = 0; i < reads.length; ++i) {
            assertEq(reads[i], bytes32(0)); // the state word only: no release looked up
        }
        assertEq(alice.balance, a0 + 0.75 ether); // revealed: to alice, their receiver
        assertEq(bob.balance, b0);

        ls = LockState(1 ether, lockHash(aliceLocks), 0, bytes32(0));
        assertEq(uint256(vm.load(address(v), bytes32(0))) & 0xff, 3 | 4);
        v.unlock(p, ls, 0, aliceLocks);
        assertEq(alice.balance, a0 + 1.75 ether); // released: back to alice, its sender
        assertEq(bob.balance, b0);
        assertEq(address(v).balance, 0);
        assertEq(v.stateWord(), 3);
    }
}
