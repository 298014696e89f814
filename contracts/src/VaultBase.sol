// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IChannelVault} from "./interfaces/IChannelVault.sol";
import {SecretRegistry} from "./SecretRegistry.sol";
import {ChannelIds} from "./libraries/ChannelIds.sol";
import {NotParticipant} from "./libraries/Errors.sol";
import {BalanceData, ChannelParams} from "./libraries/ChannelTypes.sol";
import {Settlement} from "./libraries/Settlement.sol";
import {SignedMessages} from "./libraries/SignedMessages.sol";
import {TokenTransfers} from "./libraries/TokenTransfers.sol";

/// @title VaultBase
/// @notice State and checks shared by the vault's multisig operations and its adjudicator.
/// @dev Runs behind one clone per channel. The clone stores only: the state word (see StateWord;
/// beside the status it flags each side that has a lock release recorded), the cumulative
/// withdrawals, payouts owed to payees that rejected them, and the lock releases recorded in a
/// dispute.
abstract contract VaultBase is IChannelVault, ReentrancyGuardTransient {
    address internal immutable _FACTORY;
    /// @dev This implementation's own address, from which clone addresses are predicted.
    address internal immutable _IMPLEMENTATION;
    SecretRegistry internal immutable _REGISTRY;

    /// @dev Slot 0. The status, the deposits or commitment, and the release flags (StateWord).
    uint256 internal _word;
    /// @dev Slot 1: withdrawnA << 128 | withdrawnB; each is bounded by the deposits (< 2^121).
    uint256 internal _withdrawn;
    mapping(address payee => uint256 amount) internal _owed;
    /// @dev Pending locks their receiver gave up (LockRelease), keyed by
    /// keccak256(abi.encode(senderSide, expiration, amount, secretHash)); unlock returns them to
    /// their sender. Only disputes write it (releaseLocks, once the channel is closed): an open
    /// channel drops a released lock from the sender's next balance proof instead. releaseLocks
    /// also sets the sender side's flag in the state word, and unlock reads this mapping only for
    /// a side whose flag is set, so a channel without releases pays nothing for it. Declared
    /// last, so the slots before it (0: state word, 1: withdrawals), which the tests read with
    /// vm.load, keep their numbers.
    mapping(bytes32 releaseKey => bool released) internal _released;

    constructor(address factory, SecretRegistry registry) {
        _FACTORY = factory;
        _IMPLEMENTATION = address(this);
        _REGISTRY = registry;
    }

    /// @notice Checks that `p` describes this vault's channel and returns the channel id.
    function _channelId(ChannelParams calldata p) internal view returns (bytes32 id) {
        id = ChannelIds.channelId(block.chainid, _FACTORY, p);
        if (ChannelIds.vaultAddress(_FACTORY, _IMPLEMENTATION, id, p.token) != address(this)) {
            revert WrongChannel();
        }
    }

    /// @notice The channel's asset: the clone's immutable argument (zero for ETH).
    function _token() internal view returns (address token) {
        uint256 offset = ChannelIds.PROXY_CODE_LENGTH;
        assembly ("memory-safe") {
            mstore(0, 0)
            // The 20 token bytes land right-aligned in the first scratch word.
            extcodecopy(address(), 12, offset, 20)
            token := mload(0)
        }
    }

    function _sideOf(ChannelParams calldata p, address who) internal pure returns (uint8) {
        if (who == p.participantA) return 0;
        if (who == p.participantB) return 1;
        revert NotParticipant(who);
    }

    function _withdrawals() internal view returns (uint256 withdrawnA, uint256 withdrawnB) {
        uint256 packed = _withdrawn;
        withdrawnA = packed >> 128;
        // casting to uint128 is safe because it is meant to keep exactly the low half.
        // forge-lint: disable-next-line(unsafe-typecast)
        withdrawnB = uint128(packed);
    }

    function _checkSigner(bytes32 structHash, bytes calldata signature, address expected) internal view {
        _checkDigestSigner(SignedMessages.digest(address(this), structHash), signature, expected);
    }

    /// @notice Checks a message both participants signed; hashes the digest once for both.
    function _checkBothSigned(
        bytes32 structHash,
        ChannelParams calldata p,
        bytes calldata sigA,
        bytes calldata sigB
    ) internal view {
        bytes32 digest = SignedMessages.digest(address(this), structHash);
        _checkDigestSigner(digest, sigA, p.participantA);
        _checkDigestSigner(digest, sigB, p.participantB);
    }

    function _checkDigestSigner(bytes32 digest, bytes calldata signature, address expected) private pure {
        address signer = SignedMessages.recover(digest, signature);
        if (signer != expected) revert WrongSigner(expected, signer);
    }

    /// @notice Checks a balance proof signed by `sender`; returns its EIP-712 struct hash.
    /// @dev Nonce 0 stands for "nothing ever sent" and needs no signature, so it must be empty.
    function _checkBalanceProof(
        bytes32 id,
        BalanceData calldata proof,
        bytes calldata signature,
        address sender
    ) internal view returns (bytes32 structHash) {
        if (proof.nonce == 0) {
            if (proof.transferredAmount != 0 || proof.lockedAmount != 0 || proof.locksRoot != 0) {
                revert InvalidBalanceProof();
            }
            return bytes32(0);
        }
        if (proof.transferredAmount > Settlement.MAX_AMOUNT || proof.lockedAmount > Settlement.MAX_AMOUNT) {
            revert InvalidBalanceProof();
        }
        structHash = SignedMessages.balanceProofHash(id, proof);
        _checkSigner(structHash, signature, sender);
    }

    /// @notice Pays `to`, or records the amount for claim() if the payee or token rejects it.
    /// @dev Used where one party's payout must not block the other's.
    function _payOrDefer(address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        if (!TokenTransfers.tryPay(token, to, amount)) {
            _owed[to] += amount;
            emit PayoutDeferred(to, amount);
        }
    }
}
