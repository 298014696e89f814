// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice An ERC-20 whose transfers can be switched off, like a paused token (USDC, USDT, WBTC
/// all have an owner-controlled pause). Minting keeps working so tests can fund accounts.
contract RevertingToken is ERC20 {
    bool public paused;

    error TokenPaused();

    constructor() ERC20("Pausable", "PAU") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setPaused(bool paused_) external {
        paused = paused_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (paused && from != address(0)) revert TokenPaused();
        super._update(from, to, value);
    }
}
