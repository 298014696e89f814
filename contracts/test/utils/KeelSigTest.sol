// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelTest} from "./KeelTest.sol";
import {ChannelVault} from "../../src/ChannelVault.sol";
import {BalanceData, ChannelParams, Withdrawal} from "../../src/libraries/ChannelTypes.sol";

/// @notice KeelTest plus what the revert and replay tests need: struct hashes, the signer a vault
/// would recover, malleated signature encodings, and signing under an arbitrary chain id.
abstract contract KeelSigTest is KeelTest {
    /// @dev secp256k1 group order.
    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    // ---------------------------------------------------------------- channels

    /// @dev Opens an ETH channel alice-bob with `salt`, alice funding `depositA`, bob `depositB`.
    function openEthSalt(bytes32 salt, uint256 depositA, uint256 depositB)
        internal
        returns (ChannelParams memory p, ChannelVault v)
    {
        p = ChannelParams(alice, bob, address(0), PERIOD, salt);
        vm.prank(alice);
        (address vault,) = factory.open{value: depositA}(p, depositA);
        v = ChannelVault(vault);
        if (depositB != 0) {
            vm.prank(bob);
            v.deposit{value: depositB}(1, depositB);
        }
    }

    // ---------------------------------------------------------------- struct hashes

    /// @dev Struct hash of a cooperative close of these payouts against the vault's current ledger.
    function coopStructHash(ChannelParams memory p, uint256 payoutA, uint256 payoutB)
        internal
        view
        returns (bytes32)
    {
        address vault = factory.vaultOf(p);
        return coopCloseStructHash(p, terms(vault, payoutA, payoutB), withdrawnTotal(vault));
    }

    function towerAuthStructHash(ChannelParams memory p, BalanceData memory b)
        internal
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                keccak256(
                    "TowerAuthorisation(BalanceProof balanceProof)BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
                ),
                bpStructHash(channelIdOf(p), b)
            )
        );
    }

    // ---------------------------------------------------------------- signatures

    /// @dev The address `vault` would recover from `sig` over `structHash` on the current chain.
    function recoverAs(address vault, bytes32 structHash, bytes memory sig) internal view returns (address) {
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domainOf(vault), structHash));
        (bytes32 r, bytes32 s, uint8 v) = splitSig(sig);
        return ecrecover(digest, v, r, s);
    }

    function domainFor(uint256 chainId, address vault) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("Keel"),
                keccak256("2"),
                chainId,
                vault
            )
        );
    }

    /// @dev Signs `structHash` under the domain of `vault` on chain `chainId`.
    function signOnChain(uint256 pk, uint256 chainId, address vault, bytes32 structHash)
        internal
        pure
        returns (bytes memory)
    {
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domainFor(chainId, vault), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function splitSig(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        require(sig.length == 65, "not a 65-byte signature");
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    /// @dev The other valid ECDSA encoding of `sig`: s' = n - s, with the parity bit flipped.
    function toHighS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = splitSig(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    /// @dev The EIP-2098 64-byte encoding of `sig`: r ‖ (yParity << 255 | s).
    function toCompact(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = splitSig(sig);
        return abi.encodePacked(r, bytes32(uint256(v - 27) << 255 | uint256(s)));
    }
}
