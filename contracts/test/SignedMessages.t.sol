// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";
import {ChannelIds} from "../src/libraries/ChannelIds.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    Lock,
    Withdrawal
} from "../src/libraries/ChannelTypes.sol";
import {Settlement} from "../src/libraries/Settlement.sol";
import {SignedMessages} from "../src/libraries/SignedMessages.sol";

/// @dev Exposes the libraries, which take calldata, to the test.
contract SignedMessagesHarness {
    function channelId(uint256 chainId, address factory, ChannelParams calldata p)
        external
        pure
        returns (bytes32)
    {
        return ChannelIds.channelId(chainId, factory, p);
    }

    function locksRoot(Lock[] calldata locks) external pure returns (bytes32) {
        return Settlement.locksRoot(locks);
    }

    function balanceProofDigest(address vault, bytes32 id, BalanceData calldata b)
        external
        view
        returns (bytes32)
    {
        return SignedMessages.digest(vault, SignedMessages.balanceProofHash(id, b));
    }

    function towerAuthorisationDigest(address vault, bytes32 id, BalanceData calldata b)
        external
        view
        returns (bytes32)
    {
        return SignedMessages.digest(
            vault, SignedMessages.towerAuthorisationHash(SignedMessages.balanceProofHash(id, b))
        );
    }

    function withdrawalDigest(address vault, bytes32 id, Withdrawal calldata w)
        external
        view
        returns (bytes32)
    {
        return SignedMessages.digest(vault, SignedMessages.withdrawalHash(id, w));
    }

    function cooperativeCloseDigest(address vault, bytes32 id, CooperativeClose calldata c, uint256 withdrawn)
        external
        view
        returns (bytes32)
    {
        return SignedMessages.digest(vault, SignedMessages.cooperativeCloseHash(id, c, withdrawn));
    }

    function lockReleaseHash(bytes32 id, Lock calldata lock) external pure returns (bytes32) {
        return SignedMessages.lockReleaseHash(id, lock);
    }

    function lockReleaseDigest(address vault, bytes32 id, Lock calldata lock)
        external
        view
        returns (bytes32)
    {
        return SignedMessages.digest(vault, SignedMessages.lockReleaseHash(id, lock));
    }

    function recover(bytes32 hash, bytes calldata sig) external pure returns (address) {
        return SignedMessages.recover(hash, sig);
    }
}

/// @notice The Solidity and Rust definitions of every signed message agree: both are checked
/// against contracts/test/vectors/signed-messages.json, which crates/keel-core writes and tests.
contract SignedMessagesTest is Test {
    SignedMessagesHarness internal h;
    string internal json;

    function setUp() public {
        h = new SignedMessagesHarness();
        json = vm.readFile("contracts/test/vectors/signed-messages.json");
        vm.chainId(_uint(".chainId"));
    }

    function test_ChannelIdAndVaultAddressMatchRust() public view {
        bytes32 id = h.channelId(block.chainid, _addr(".factory"), _params());
        assertEq(id, _b32(".channelId"));
        assertEq(
            ChannelIds.vaultAddress(_addr(".factory"), _addr(".implementation"), id, _addr(".token")),
            _addr(".vault")
        );
    }

    function test_DomainSeparatorMatchesRust() public view {
        assertEq(SignedMessages.domainSeparator(_addr(".vault")), _b32(".domainSeparator"));
    }

    /// @dev The domain hashes are written from literals for gas; they must stay the strings' hashes.
    function test_NameAndVersionHashesAreTheirStrings() public pure {
        assertEq(SignedMessages.NAME_HASH, keccak256(bytes(SignedMessages.NAME)));
        assertEq(SignedMessages.VERSION_HASH, keccak256(bytes(SignedMessages.VERSION)));
    }

    /// @dev The type hashes are written from literals too: each must be its type string's hash,
    /// as written in docs/protocol.md and keel-core's `sol!` (whose digests the tests below pin).
    function test_TypeHashesAreTheirTypeStrings() public pure {
        string memory balanceProof =
            "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)";
        assertEq(SignedMessages.BALANCE_PROOF_TYPEHASH, keccak256(bytes(balanceProof)));
        assertEq(
            SignedMessages.TOWER_AUTHORISATION_TYPEHASH,
            keccak256(abi.encodePacked("TowerAuthorisation(BalanceProof balanceProof)", balanceProof))
        );
        assertEq(
            SignedMessages.WITHDRAWAL_TYPEHASH,
            keccak256(
                "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry,address target,uint8 targetSide)"
            )
        );
        assertEq(
            SignedMessages.COOPERATIVE_CLOSE_TYPEHASH,
            keccak256(
                "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 depositA,uint256 depositB,uint256 totalWithdrawn,uint64 expiry)"
            )
        );
        assertEq(
            SignedMessages.LOCK_RELEASE_TYPEHASH,
            keccak256(
                bytes("LockRelease(bytes32 channelId,bytes32 secretHash,uint256 amount,uint64 expiration)")
            )
        );
    }

    function test_LocksRootMatchesRust() public view {
        assertEq(h.locksRoot(_locks()), _b32(".locksRoot"));
    }

    function test_BalanceProofAndTowerAuthorisationDigestsMatchRust() public view {
        BalanceData memory b = BalanceData(
            uint64(_uint(".nonce")), _uint(".transferredAmount"), _uint(".lockedAmount"), _b32(".locksRoot")
        );
        assertEq(h.balanceProofDigest(_addr(".vault"), _b32(".channelId"), b), _b32(".balanceProofDigest"));
        assertEq(
            h.towerAuthorisationDigest(_addr(".vault"), _b32(".channelId"), b),
            _b32(".towerAuthorisationDigest")
        );
    }

    function test_WithdrawalDigestMatchesRust() public view {
        Withdrawal memory w = Withdrawal(
            _addr(".withdrawalParticipant"),
            _uint(".totalWithdrawn"),
            uint64(_uint(".withdrawalExpiry")),
            _addr(".withdrawalTarget"),
            uint8(_uint(".withdrawalTargetSide"))
        );
        assertEq(h.withdrawalDigest(_addr(".vault"), _b32(".channelId"), w), _b32(".withdrawalDigest"));
    }

    function test_CooperativeCloseDigestMatchesRust() public view {
        assertEq(
            h.cooperativeCloseDigest(
                _addr(".vault"),
                _b32(".channelId"),
                CooperativeClose(
                    _uint(".payoutA"),
                    _uint(".payoutB"),
                    _uint(".closeDepositA"),
                    _uint(".closeDepositB"),
                    uint64(_uint(".closeExpiry"))
                ),
                _uint(".closeTotalWithdrawn")
            ),
            _b32(".cooperativeCloseDigest")
        );
    }

    function test_LockReleaseHashAndDigestMatchRust() public view {
        Lock memory lock = Lock(
            uint64(_uint(".lockReleaseExpiration")),
            _uint(".lockReleaseAmount"),
            _b32(".lockReleaseSecretHash")
        );
        assertEq(h.lockReleaseHash(_b32(".channelId"), lock), _b32(".lockReleaseStructHash"));
        assertEq(h.lockReleaseDigest(_addr(".vault"), _b32(".channelId"), lock), _b32(".lockReleaseDigest"));
    }

    function test_RecoverAcceptsLowSSignature() public {
        (address signer, uint256 pk) = makeAddrAndKey("signer");
        bytes32 digest = _b32(".balanceProofDigest");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        assertEq(h.recover(digest, abi.encodePacked(r, s, v)), signer);
    }

    function test_RevertWhen_SignatureIsHighS() public {
        (, uint256 pk) = makeAddrAndKey("signer");
        bytes32 digest = _b32(".balanceProofDigest");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        // The same signature's malleable twin: s' = n - s, v flipped.
        bytes32 highS =
            bytes32(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 - uint256(s));
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        h.recover(digest, abi.encodePacked(r, highS, v == 27 ? uint8(28) : uint8(27)));
    }

    function test_RevertWhen_SignatureIs64BytesCompact() public {
        (, uint256 pk) = makeAddrAndKey("signer");
        bytes32 digest = _b32(".balanceProofDigest");
        (bytes32 r, bytes32 vs) = vm.signCompact(pk, digest);
        vm.expectRevert(abi.encodeWithSelector(SignedMessages.InvalidSignatureLength.selector, 64));
        h.recover(digest, abi.encodePacked(r, vs));
    }

    function test_RevertWhen_SignatureVIsNot27Or28() public {
        (, uint256 pk) = makeAddrAndKey("signer");
        bytes32 digest = _b32(".balanceProofDigest");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        vm.expectRevert(SignedMessages.InvalidSignature.selector);
        h.recover(digest, abi.encodePacked(r, s, v - 27));
    }

    function _params() internal view returns (ChannelParams memory) {
        return ChannelParams(
            _addr(".participantA"),
            _addr(".participantB"),
            _addr(".token"),
            uint32(_uint(".challengePeriod")),
            _b32(".salt")
        );
    }

    function _locks() internal view returns (Lock[] memory locks) {
        locks = new Lock[](2);
        locks[0] = Lock(uint64(_uint(".lock0Expiration")), _uint(".lock0Amount"), _b32(".lock0SecretHash"));
        locks[1] = Lock(uint64(_uint(".lock1Expiration")), _uint(".lock1Amount"), _b32(".lock1SecretHash"));
    }

    function _uint(string memory key) internal view returns (uint256) {
        return vm.parseUint(vm.parseJsonString(json, key));
    }

    function _addr(string memory key) internal view returns (address) {
        return vm.parseJsonAddress(json, key);
    }

    function _b32(string memory key) internal view returns (bytes32) {
        return vm.parseJsonBytes32(json, key);
    }
}
