// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ChannelVault} from "./ChannelVault.sol";
import {SecretRegistry} from "./SecretRegistry.sol";
import {ChannelIds} from "./libraries/ChannelIds.sol";
import {ChannelParams} from "./libraries/ChannelTypes.sol";
import {DepositTooLarge, NotParticipant, WrongValue} from "./libraries/Errors.sol";
import {StateWord} from "./libraries/StateWord.sol";
import {TokenTransfers} from "./libraries/TokenTransfers.sol";

/// @title ChannelFactory
/// @notice Opens channels: one vault per channel, at a CREATE2 address fixed by the channel id.
/// @dev Singleton. Deploys the vault implementation and the secret registry it uses, and enforces
/// the bounds on each channel's challenge period.
// The factory never holds ETH: open() forwards all of msg.value to the new vault through CREATE2.
// slither-disable-next-line locked-ether
contract ChannelFactory {
    /// @notice The code every vault delegates to.
    ChannelVault public immutable vaultImplementation;
    SecretRegistry public immutable secretRegistry;
    uint32 public immutable minChallengePeriod;
    uint32 public immutable maxChallengePeriod;

    /// @notice A channel was opened; `deposit` is the opener's (what arrived, for tokens).
    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed participantA,
        address indexed participantB,
        address vault,
        address token,
        uint32 challengePeriod,
        bytes32 salt,
        uint8 openerSide,
        uint256 deposit
    );

    error InvalidChallengePeriodBounds(uint32 min, uint32 max);
    error InvalidParticipants();
    error ChallengePeriodOutOfBounds(uint32 challengePeriod, uint32 min, uint32 max);
    error TokenHasNoCode(address token);
    /// @notice A channel with these parameters exists already; top it up instead.
    error ChannelExists(bytes32 channelId);

    constructor(uint32 minPeriod, uint32 maxPeriod) {
        if (minPeriod == 0 || minPeriod > maxPeriod) {
            revert InvalidChallengePeriodBounds(minPeriod, maxPeriod);
        }
        minChallengePeriod = minPeriod;
        maxChallengePeriod = maxPeriod;
        secretRegistry = new SecretRegistry();
        vaultImplementation = new ChannelVault(address(this), secretRegistry);
    }

    /// @notice Opens the channel `p` and deposits `amount` for the caller, who must be a participant.
    /// @dev For ETH send `amount` as value; for a token approve this factory for `amount` first
    /// (it is pulled straight into the vault's address, and what arrives is credited).
    function open(ChannelParams calldata p, uint256 amount)
        external
        payable
        returns (address vault, bytes32 id)
    {
        if (p.participantA == address(0) || p.participantB == address(0) || p.participantA == p.participantB)
        {
            revert InvalidParticipants();
        }
        uint32 period = p.challengePeriod;
        if (period < minChallengePeriod || period > maxChallengePeriod) {
            revert ChallengePeriodOutOfBounds(period, minChallengePeriod, maxChallengePeriod);
        }
        uint8 side;
        if (msg.sender == p.participantA) side = 0;
        else if (msg.sender == p.participantB) side = 1;
        else revert NotParticipant(msg.sender);

        id = ChannelIds.channelId(block.chainid, address(this), p);
        bytes memory initCode = ChannelIds.vaultInitCode(address(vaultImplementation), p.token);
        if (p.token == address(0)) {
            if (msg.value != amount) revert WrongValue(amount, msg.value);
        } else {
            if (msg.value != 0) revert WrongValue(0, msg.value);
            if (p.token.code.length == 0) revert TokenHasNoCode(p.token);
            if (amount != 0) {
                // Tokens go to the vault's address before it exists: what arrives is what counts.
                address predicted =
                    ChannelIds.vaultAddress(address(this), address(vaultImplementation), id, p.token);
                amount = TokenTransfers.pull(p.token, predicted, amount);
            }
        }
        if (amount > StateWord.MAX_DEPOSIT) revert DepositTooLarge(amount);

        assembly ("memory-safe") {
            vault := create2(callvalue(), add(initCode, 0x20), mload(initCode), id)
        }
        // The clone's creation code cannot fail, so a zero address means the address is taken.
        if (vault == address(0)) revert ChannelExists(id);
        ChannelVault(vault).initialize(side, amount);
        emit ChannelOpened(id, p.participantA, p.participantB, vault, p.token, period, p.salt, side, amount);
    }

    /// @notice The id of channel `p` opened through this factory.
    function channelId(ChannelParams calldata p) external view returns (bytes32) {
        return ChannelIds.channelId(block.chainid, address(this), p);
    }

    /// @notice The vault address of channel `p`, whether or not it was opened yet.
    function vaultOf(ChannelParams calldata p) external view returns (address) {
        return ChannelIds.vaultAddress(
            address(this),
            address(vaultImplementation),
            ChannelIds.channelId(block.chainid, address(this), p),
            p.token
        );
    }
}
