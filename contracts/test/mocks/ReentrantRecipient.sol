// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ChannelVault} from "../../src/ChannelVault.sol";

/// @notice A contract participant whose receive() calls back into `target` with `data` (settle,
/// claim, cooperativeClose, ...) once per arming, to try to be paid twice.
/// @dev With `bubble` set a failed callback makes receive() revert (so the payout itself fails);
/// otherwise the failure is recorded and the ETH is accepted. Bookkeeping lives in one packed slot
/// plus a pre-initialised error slot, so that receive() fits in the 50,000 gas a vault forwards with
/// a payout (TokenTransfers.PAYOUT_GAS) when `data` is short, like claim(address). Long calldata
/// (settle's) costs more to load than that budget, so receive() runs out of gas: still a failure.
contract ReentrantRecipient {
    address public target;
    bool public armed;
    bool public bubble;
    bool public lastCallOk;
    uint32 public receipts;
    uint32 public callbacks;
    /// @notice First four bytes of the last failed callback's revert data (0xffffffff if none yet).
    bytes4 public lastError = 0xffffffff;
    bytes public data;

    receive() external payable {
        if (!armed) {
            ++receipts;
            return;
        }
        armed = false;
        ++receipts;
        ++callbacks;
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok && bubble) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        lastCallOk = ok;
        // Keeping the first four bytes (the error selector) is the point of the cast.
        // forge-lint: disable-next-line(unsafe-typecast)
        if (!ok && ret.length >= 4) lastError = bytes4(ret);
    }

    /// @notice Arms a one-shot callback to `target_` with `data_`.
    function arm(address target_, bytes calldata data_, bool bubble_) external {
        (target, data, armed, bubble) = (target_, data_, true, bubble_);
        if (lastError == 0) lastError = 0xffffffff;
    }

    function claim(ChannelVault vault, address to) external {
        vault.claim(to);
    }
}
