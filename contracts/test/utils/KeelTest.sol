// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";
import {ChannelFactory} from "../../src/ChannelFactory.sol";
import {ChannelVault} from "../../src/ChannelVault.sol";
import {SecretRegistry} from "../../src/SecretRegistry.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    DisputeState,
    Lock,
    LockState,
    Withdrawal
} from "../../src/libraries/ChannelTypes.sol";

/// @notice Shared fixture: a factory, two participants with keys, and signing helpers.
/// @dev The EIP-712 hashes here are written out independently of SignedMessages, so a test that
/// signs with them also checks the contract's hashing.
abstract contract KeelTest is Test {
    uint32 internal constant MIN_PERIOD = 1 hours;
    uint32 internal constant MAX_PERIOD = 30 days;
    uint32 internal constant PERIOD = 1 days;

    ChannelFactory internal factory;
    SecretRegistry internal registry;

    uint256 internal alicePk = 0xA11CE;
    uint256 internal bobPk = 0xB0B;
    uint256 internal towerPk = 0x70E4;
    address internal alice;
    address internal bob;
    address internal tower;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        factory = new ChannelFactory(MIN_PERIOD, MAX_PERIOD);
        registry = factory.secretRegistry();
        alice = vm.addr(alicePk);
        bob = vm.addr(bobPk);
        tower = vm.addr(towerPk);
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(tower, "tower");
        vm.deal(alice, 1000 ether);
        vm.deal(bob, 1000 ether);
    }

    // ---------------------------------------------------------------- channels

    function ethParams() internal view returns (ChannelParams memory) {
        return ChannelParams(alice, bob, address(0), PERIOD, bytes32(uint256(1)));
    }

    function tokenParams(address token) internal view returns (ChannelParams memory) {
        return ChannelParams(alice, bob, token, PERIOD, bytes32(uint256(1)));
    }

    /// @dev Opens an ETH channel funded by alice and topped up by bob.
    function openEth(uint256 depositA, uint256 depositB)
        internal
        returns (ChannelParams memory p, ChannelVault v)
    {
        p = ethParams();
        vm.prank(alice);
        (address vault,) = factory.open{value: depositA}(p, depositA);
        v = ChannelVault(vault);
        if (depositB != 0) {
            vm.prank(bob);
            v.deposit{value: depositB}(1, depositB);
        }
    }

    function channelIdOf(ChannelParams memory p) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                block.chainid,
                address(factory),
                p.participantA,
                p.participantB,
                p.token,
                p.challengePeriod,
                p.salt
            )
        );
    }

    // ---------------------------------------------------------------- signing

    function domainOf(address vault) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("Keel"),
                keccak256("2"),
                block.chainid,
                vault
            )
        );
    }

    function bpStructHash(bytes32 id, BalanceData memory b) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
                ),
                id,
                b.nonce,
                b.transferredAmount,
                b.lockedAmount,
                b.locksRoot
            )
        );
    }

    function sign(uint256 pk, address vault, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domainOf(vault), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function signBalance(uint256 pk, ChannelParams memory p, address vault, BalanceData memory b)
        internal
        view
        returns (bytes memory)
    {
        return sign(pk, vault, bpStructHash(channelIdOf(p), b));
    }

    function signTowerAuth(uint256 pk, ChannelParams memory p, address vault, BalanceData memory b)
        internal
        view
        returns (bytes memory)
    {
        bytes32 typeHash = keccak256(
            "TowerAuthorisation(BalanceProof balanceProof)BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
        );
        return sign(pk, vault, keccak256(abi.encode(typeHash, bpStructHash(channelIdOf(p), b))));
    }

    function signWithdrawal(uint256 pk, ChannelParams memory p, address vault, Withdrawal memory w)
        internal
        view
        returns (bytes memory)
    {
        return sign(pk, vault, withdrawalStructHash(p, w));
    }

    function withdrawalStructHash(ChannelParams memory p, Withdrawal memory w)
        internal
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                keccak256(
                    "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry,address target,uint8 targetSide)"
                ),
                channelIdOf(p),
                w.participant,
                w.totalWithdrawn,
                w.expiry,
                w.target,
                w.targetSide
            )
        );
    }

    /// @dev A withdrawal paid to `who` (no target vault).
    function payout(address who, uint256 totalWithdrawn, uint64 expiry)
        internal
        pure
        returns (Withdrawal memory)
    {
        return Withdrawal(who, totalWithdrawn, expiry, address(0), 0);
    }

    /// @dev A withdrawal that moves `who`'s funds into its side `targetSide` of the vault `target`.
    function move(address who, uint256 totalWithdrawn, uint64 expiry, address target, uint8 targetSide)
        internal
        pure
        returns (Withdrawal memory)
    {
        return Withdrawal(who, totalWithdrawn, expiry, target, targetSide);
    }

    /// @dev Expiry of the cooperative closes `terms` makes (the fixture starts at 1.7e9).
    uint64 internal constant CLOSE_EXPIRY = 2_000_000_000;

    /// @dev Close terms for these payouts against the vault's current deposits, until CLOSE_EXPIRY.
    /// Reads the deposits from storage (slot 0: the state word; slot 1 holds the packed
    /// withdrawals; see VaultBase) rather than calling the vault, so that it can sit inside the call after a
    /// vm.expectRevert without being the call that is expected to revert.
    function terms(address vault, uint256 payoutA, uint256 payoutB)
        internal
        view
        returns (CooperativeClose memory c)
    {
        uint256 word = uint256(vm.load(vault, bytes32(0)));
        uint256 mask = (1 << 120) - 1;
        c = CooperativeClose(payoutA, payoutB, (word >> 128) & mask, (word >> 8) & mask, CLOSE_EXPIRY);
    }

    /// @dev Signs a cooperative close of these payouts against the vault's current ledger.
    function signCoopClose(
        uint256 pk,
        ChannelParams memory p,
        address vault,
        uint256 payoutA,
        uint256 payoutB
    ) internal view returns (bytes memory) {
        return signCoopCloseFor(pk, p, vault, terms(vault, payoutA, payoutB));
    }

    /// @dev Signs `c` with the vault's current withdrawal total.
    function signCoopCloseFor(uint256 pk, ChannelParams memory p, address vault, CooperativeClose memory c)
        internal
        view
        returns (bytes memory)
    {
        return sign(pk, vault, coopCloseStructHash(p, c, withdrawnTotal(vault)));
    }

    /// @dev Both participants' withdrawals, read from storage (slot 1, see `terms`).
    function withdrawnTotal(address vault) internal view returns (uint256) {
        uint256 withdrawn = uint256(vm.load(vault, bytes32(uint256(1))));
        return (withdrawn >> 128) + uint128(withdrawn);
    }

    function coopCloseStructHash(ChannelParams memory p, CooperativeClose memory c, uint256 totalWithdrawn)
        internal
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                keccak256(
                    "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 depositA,uint256 depositB,uint256 totalWithdrawn,uint64 expiry)"
                ),
                channelIdOf(p),
                c.payoutA,
                c.payoutB,
                c.depositA,
                c.depositB,
                totalWithdrawn,
                c.expiry
            )
        );
    }

    function lockReleaseStructHash(ChannelParams memory p, Lock memory lock) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "LockRelease(bytes32 channelId,bytes32 secretHash,uint256 amount,uint64 expiration)"
                ),
                channelIdOf(p),
                lock.secretHash,
                lock.amount,
                lock.expiration
            )
        );
    }

    /// @dev `pk`'s LockRelease over each of `locks`, in order (a lock's receiver signs these).
    function signReleases(uint256 pk, ChannelParams memory p, address vault, Lock[] memory locks)
        internal
        view
        returns (bytes[] memory sigs)
    {
        sigs = new bytes[](locks.length);
        for (uint256 i = 0; i < locks.length; ++i) {
            sigs[i] = sign(pk, vault, lockReleaseStructHash(p, locks[i]));
        }
    }

    // ---------------------------------------------------------------- flows

    function balance(uint64 nonce, uint256 transferred) internal pure returns (BalanceData memory b) {
        b.nonce = nonce;
        b.transferredAmount = transferred;
    }

    function emptyBalance() internal pure returns (BalanceData memory b) {}

    /// @dev `closerPk` closes with `proof` signed by the counterparty; returns the dispute state.
    function closeWith(ChannelParams memory p, ChannelVault v, bool aliceCloses, BalanceData memory proof)
        internal
        returns (DisputeState memory s)
    {
        bytes memory sig =
            proof.nonce == 0 ? bytes("") : signBalance(aliceCloses ? bobPk : alicePk, p, address(v), proof);
        (uint256 depositA, uint256 depositB) = (v.totalDeposit(0), v.totalDeposit(1));
        (uint256 withdrawnA, uint256 withdrawnB) = (v.totalWithdrawn(0), v.totalWithdrawn(1));
        vm.prank(aliceCloses ? alice : bob);
        v.close(p, proof, sig);
        s.closer = aliceCloses ? 0 : 1;
        s.deadline = uint64(block.timestamp) + p.challengePeriod;
        s.total = depositA + depositB - withdrawnA - withdrawnB;
        s.depositA = depositA;
        s.withdrawnA = withdrawnA;
        if (aliceCloses) s.fromB = proof;
        else s.fromA = proof;
    }

    function lockHash(Lock[] memory locks) internal pure returns (bytes32) {
        if (locks.length == 0) return bytes32(0);
        bytes memory packed;
        for (uint256 i = 0; i < locks.length; ++i) {
            packed =
                abi.encodePacked(packed, uint256(locks[i].expiration), locks[i].amount, locks[i].secretHash);
        }
        return keccak256(packed);
    }

    function secretHashOf(bytes32 secret) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(secret));
    }
}
