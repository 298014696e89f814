// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice What a token with receive hooks calls on a recipient that has code (as ERC-777 and
/// ERC-1363-style tokens do).
interface ITokenReceiver {
    function onTokenReceived(address from, uint256 amount) external;
}

/// @notice An ERC-20 that calls `onTokenReceived` on every recipient that registered a hook (as
/// ERC-777 recipients register with ERC-1820), forwarding all gas and letting a reverting hook
/// fail the transfer. Such a recipient can make a transfer to it cost whatever gas the payer
/// forwards.
contract HookToken is ERC20 {
    mapping(address account => bool) public hooked;

    constructor() ERC20("Hook", "HOOK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function registerHook(address account) external {
        hooked[account] = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (hooked[to]) ITokenReceiver(to).onTokenReceived(from, value);
    }
}

/// @notice A token recipient whose hook burns every unit of gas it is given.
contract GasBurningReceiver is ITokenReceiver {
    function onTokenReceived(address, uint256) external pure {
        assembly ("memory-safe") {
            invalid()
        }
    }
}

/// @notice An ERC-20 whose holders' balances can be cut from outside, as a rebasing token, a
/// seizure or a slashing does (so a vault may end up holding less than it owes), and which
/// refuses transfers to blocked accounts (so payouts get deferred).
contract ShrinkingToken is ERC20 {
    mapping(address account => bool blocked) public blocked;

    constructor() ERC20("Shrinking", "SHR") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function shrink(address holder, uint256 amount) external {
        _burn(holder, amount);
    }

    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(!blocked[to], "blocked");
        super._update(from, to, value);
    }
}
