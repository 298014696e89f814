// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

// Errors the factory, the vault and the token library share: declared once, at file level, so
// every contract that raises one reports the same selector and the same definition.

/// @notice The caller (or the withdrawal's participant) is not the participant this operation needs.
error NotParticipant(address caller);
/// @notice msg.value must equal the deposit for ETH and be zero for tokens.
error WrongValue(uint256 expected, uint256 received);
/// @notice A cumulative deposit would exceed 2^120 - 1 base units.
error DepositTooLarge(uint256 total);
/// @notice The token transfer credited nothing.
error NothingReceived();
/// @notice A payout that cannot be deferred (a withdrawal or a claim) failed.
error TransferFailed();
