// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {BalanceData, CooperativeClose, Lock, Withdrawal} from "./ChannelTypes.sol";

/// @title SignedMessages
/// @notice The one definition of every message Keel signs, as EIP-712 typed data.
/// @dev The domain binds chain id and verifying contract (the channel's own vault); the struct
/// binds the channel id; the type binds the purpose. `crates/keel-core` defines the same types and
/// `contracts/test/SignedMessages.t.sol` checks both against shared vectors.
library SignedMessages {
    error InvalidSignatureLength(uint256 length);
    error InvalidSignature();

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev The domain's name and version; the version changes whenever a message layout does.
    /// The hashes are written from literals, which the compiler folds; hashing the string
    /// constants instead costs ~380 gas per signature checked. SignedMessages.t.sol checks that
    /// each hash is its string's.
    string internal constant NAME = "Keel";
    string internal constant VERSION = "2";
    bytes32 internal constant NAME_HASH = keccak256("Keel");
    bytes32 internal constant VERSION_HASH = keccak256("2");

    bytes32 internal constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
    );
    bytes32 internal constant TOWER_AUTHORISATION_TYPEHASH = keccak256(
        "TowerAuthorisation(BalanceProof balanceProof)"
        "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
    );
    bytes32 internal constant WITHDRAWAL_TYPEHASH = keccak256(
        "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry,address target,uint8 targetSide)"
    );
    bytes32 internal constant COOPERATIVE_CLOSE_TYPEHASH = keccak256(
        "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 depositA,uint256 depositB,uint256 totalWithdrawn,uint64 expiry)"
    );
    bytes32 internal constant LOCK_RELEASE_TYPEHASH =
        keccak256("LockRelease(bytes32 channelId,bytes32 secretHash,uint256 amount,uint64 expiration)");

    /// @notice The EIP-712 domain separator of the vault at `vault` on this chain.
    function domainSeparator(address vault) internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, vault));
    }

    function balanceProofHash(bytes32 channelId, BalanceData calldata proof) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                BALANCE_PROOF_TYPEHASH,
                channelId,
                proof.nonce,
                proof.transferredAmount,
                proof.lockedAmount,
                proof.locksRoot
            )
        );
    }

    function towerAuthorisationHash(bytes32 balanceProofStructHash) internal pure returns (bytes32) {
        return keccak256(abi.encode(TOWER_AUTHORISATION_TYPEHASH, balanceProofStructHash));
    }

    function withdrawalHash(bytes32 channelId, Withdrawal calldata w) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                WITHDRAWAL_TYPEHASH,
                channelId,
                w.participant,
                w.totalWithdrawn,
                w.expiry,
                w.target,
                w.targetSide
            )
        );
    }

    /// @param totalWithdrawn Both participants' withdrawals, which the vault knows: a close
    /// signed before a later withdrawal hashes differently and no longer verifies.
    function cooperativeCloseHash(bytes32 channelId, CooperativeClose calldata c, uint256 totalWithdrawn)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                COOPERATIVE_CLOSE_TYPEHASH,
                channelId,
                c.payoutA,
                c.payoutB,
                c.depositA,
                c.depositB,
                totalWithdrawn,
                c.expiry
            )
        );
    }

    /// @notice The struct hash of a receiver's release of the pending lock `lock` of `channelId`.
    /// @dev The sending side is not in the message: the signer (the lock's receiver) names it.
    function lockReleaseHash(bytes32 channelId, Lock calldata lock) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(LOCK_RELEASE_TYPEHASH, channelId, lock.secretHash, lock.amount, lock.expiration)
        );
    }

    /// @notice The digest a wallet signs for `structHash` under the domain of `vault`.
    function digest(address vault, bytes32 structHash) internal view returns (bytes32 result) {
        bytes32 separator = domainSeparator(vault);
        // "\x19\x01" ‖ domainSeparator ‖ structHash, hashed in free memory (past the free memory
        // pointer, which is left where it is: the 66 bytes are dead once hashed).
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), separator)
            mstore(add(ptr, 0x22), structHash)
            result := keccak256(ptr, 0x42)
        }
    }

    /// @notice The signer of `hash`, accepting only 65-byte r‖s‖v signatures with low s.
    /// @dev 64-byte (EIP-2098) and high-s encodings are rejected so that every signature has exactly
    /// one valid encoding; a failed recovery reverts rather than returning address(0).
    function recover(bytes32 hash, bytes calldata signature) internal pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignatureLength(signature.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        ECDSA.RecoverError recoverError;
        // The third value only details the error kind; any error is rejected the same way.
        // slither-disable-next-line unused-return
        (signer, recoverError,) = ECDSA.tryRecover(hash, v, r, s);
        if (recoverError != ECDSA.RecoverError.NoError) revert InvalidSignature();
    }
}
