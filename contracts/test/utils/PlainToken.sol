// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A well-behaved ERC-20 with open minting, plus a switch that makes transferFrom report
/// success while moving nothing (to reach the "nothing received" paths).
contract PlainToken is ERC20 {
    bool public skimTransfers;

    constructor() ERC20("Plain", "PLN") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setSkimTransfers(bool skim) external {
        skimTransfers = skim;
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        if (skimTransfers) return true;
        return super.transferFrom(from, to, amount);
    }
}
