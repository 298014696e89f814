// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {NothingReceived, TransferFailed} from "./Errors.sol";

/// @title TokenTransfers
/// @notice Moves ETH and ERC-20 tokens in and out of vaults without trusting the token.
/// @dev Deposits are credited by balance delta, so fee-on-transfer tokens are accounted for what
/// actually arrived; SafeERC20 handles tokens that return nothing or false.
library TokenTransfers {
    using SafeERC20 for IERC20;

    /// @notice Gas forwarded to an ETH payee in a payout that must not be blocked by it.
    /// @dev Enough for a smart-contract wallet's receive hook; a payee that needs more, reverts,
    /// or burns it all is paid later through claim() instead of blocking its counterparty.
    uint256 internal constant PAYOUT_GAS = 50_000;

    /// @notice Gas forwarded to a token's transfer in such a payout.
    /// @dev A plain transfer to a new holder costs about 30,000 (USDC-style proxies with checks
    /// about 45,000); twice that leaves room for a token's own hooks. A token (or a hook it
    /// calls on the payee) that needs more, or burns it all, defers the payout to claim(), which
    /// forwards all gas: a payee cannot make a settlement cost its counterparty more than this.
    uint256 internal constant TOKEN_PAYOUT_GAS = 100_000;

    /// @notice Pulls `amount` of `token` from the caller to `to`; returns what `to` actually received.
    /// @dev Always from msg.sender, so no one can move tokens another account approved.
    function pull(address token, address to, uint256 amount) internal returns (uint256 received) {
        uint256 before = IERC20(token).balanceOf(to);
        IERC20(token).safeTransferFrom(msg.sender, to, amount);
        uint256 afterwards = IERC20(token).balanceOf(to);
        if (afterwards <= before) revert NothingReceived();
        received = afterwards - before;
    }

    /// @notice Pays `amount` with bounded gas; returns false instead of reverting when it fails.
    function tryPay(address token, address to, uint256 amount) internal returns (bool ok) {
        if (token == address(0)) {
            // No return data is copied, so a payee cannot make the vault run out of gas with it.
            assembly ("memory-safe") {
                ok := call(PAYOUT_GAS, to, amount, 0, 0, 0, 0)
            }
        } else {
            ok = _tryTransfer(token, to, amount);
        }
    }

    /// @dev SafeERC20.trySafeTransfer with TOKEN_PAYOUT_GAS instead of all gas, and at most one
    /// word of return data copied: success is a call that returns true, or returns nothing from
    /// an address with code (tokens that predate the standard's return value).
    function _tryTransfer(address token, address to, uint256 amount) private returns (bool ok) {
        bytes4 selector = IERC20.transfer.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), to)
            mstore(add(ptr, 0x24), amount)
            mstore(0, 0)
            ok := call(TOKEN_PAYOUT_GAS, token, 0, ptr, 0x44, 0, 0x20)
            switch returndatasize()
            case 0 { ok := and(ok, gt(extcodesize(token), 0)) }
            default { ok := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0), 1))) }
        }
    }

    /// @notice Pays `amount` with all available gas, reverting if it fails.
    function pay(address token, address to, uint256 amount) internal {
        if (token == address(0)) {
            bool ok;
            assembly ("memory-safe") {
                ok := call(gas(), to, amount, 0, 0, 0, 0)
            }
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @notice What this contract holds of `token`.
    function balanceOfSelf(address token) internal view returns (uint256) {
        return token == address(0) ? address(this).balance : IERC20(token).balanceOf(address(this));
    }
}
