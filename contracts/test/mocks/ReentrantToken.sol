// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice An ERC-20 with a transfer hook (ERC-777 style) that calls `target` with `data` once,
/// before the balances move, whenever transfer or transferFrom runs while armed.
/// @dev With `bubble` set, a failed callback reverts the transfer with the callback's own revert
/// data, so the outer caller sees it; otherwise the failure is recorded and the transfer goes on.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public data;
    bool public armed;
    bool public bubble;
    /// @notice Outcome of the last callback (when not bubbled).
    bool public lastCallOk;
    bytes public lastReturnData;
    uint256 public callbacks;

    constructor() ERC20("Reentrant", "REE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms a one-shot callback to `target_` with `data_`.
    function arm(address target_, bytes calldata data_, bool bubble_) external {
        (target, data, armed, bubble) = (target_, data_, true, bubble_);
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        _hook();
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _hook();
        return super.transferFrom(from, to, value);
    }

    function _hook() private {
        if (!armed) return;
        armed = false;
        ++callbacks;
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok && bubble) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        (lastCallOk, lastReturnData) = (ok, ret);
    }
}
