// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
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
}
