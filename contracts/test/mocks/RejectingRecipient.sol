// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ChannelVault} from "../../src/ChannelVault.sol";

/// @notice A contract participant that reverts on receiving ETH until told to accept it, and can
/// pull a deferred payout with claim().
/// @dev The default (zero) storage means "reject", so the code also works when a test etches it
/// onto an address with a known key (to let that participant sign as well).
contract RejectingRecipient {
    bool public accepting;

    error Rejected();

    receive() external payable {
        if (!accepting) revert Rejected();
    }

    function setAccepting(bool accepting_) external {
        accepting = accepting_;
    }

    /// @notice Pulls what `vault` owes this contract, paying it to `to`.
    function claim(ChannelVault vault, address to) external {
        vault.claim(to);
    }
}
