// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ChannelVault} from "../../src/ChannelVault.sol";

/// @notice A contract participant whose receive() consumes every unit of gas it is given (the
/// INVALID opcode), the cheapest way to grief a payer that forwards all its gas.
contract GasBurner {
    receive() external payable {
        assembly ("memory-safe") {
            invalid()
        }
    }

    /// @notice Pulls what `vault` owes this contract, paying it to `to` (not to itself: it cannot receive).
    function claim(ChannelVault vault, address to) external {
        vault.claim(to);
    }
}
