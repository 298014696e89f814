// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {ChannelParams} from "./ChannelTypes.sol";

/// @title ChannelIds
/// @notice Channel id and vault address derivation, shared by the factory and every vault.
/// @dev channelId = keccak256(abi.encode(chainId, factory, A, B, token, challengePeriod, salt)).
/// The vault is an EIP-1167 clone of the vault implementation carrying the token address as an
/// immutable argument (OpenZeppelin's clone-with-immutable-args layout), deployed by the factory
/// with CREATE2 and salt = channelId. The token is part of the id, so the id fixes the address:
/// one channel id, one vault.
library ChannelIds {
    /// @dev Length of the EIP-1167 proxy runtime; the token argument follows it in the vault's code.
    uint256 internal constant PROXY_CODE_LENGTH = 0x2d;

    function channelId(uint256 chainId, address factory, ChannelParams calldata p)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(chainId, factory, p.participantA, p.participantB, p.token, p.challengePeriod, p.salt)
        );
    }

    /// @notice Creation code of a vault: proxy to `implementation` followed by the 20-byte token.
    function vaultInitCode(address implementation, address token) internal pure returns (bytes memory) {
        return abi.encodePacked(
            hex"61",
            // casting to uint16 is safe because 0x2d + 20 is a constant 65.
            // forge-lint: disable-next-line(unsafe-typecast)
            uint16(PROXY_CODE_LENGTH + 20),
            hex"3d81600a3d39f3363d3d373d3d3d363d73",
            implementation,
            hex"5af43d82803e903d91602b57fd5bf3",
            token
        );
    }

    function vaultAddress(address factory, address implementation, bytes32 id, address token)
        internal
        pure
        returns (address)
    {
        return Create2.computeAddress(id, keccak256(vaultInitCode(implementation, token)), factory);
    }
}
