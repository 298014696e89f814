// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {StdInvariant} from "forge-std/StdInvariant.sol";
import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {DisputeState, LockState} from "../src/libraries/ChannelTypes.sol";
import {ChannelHandler} from "./handlers/ChannelHandler.sol";
import {BlocklistToken} from "./mocks/BlocklistToken.sol";
import {RejectingRecipient} from "./mocks/RejectingRecipient.sol";

/// @notice Properties that hold through any sequence of deposits (by anyone, into either of two
/// channels), withdrawals, moves between the channels, payments with and without locks, secret
/// registrations, closes, refutations, settlements, unlocks, cooperative closes (submitted at once
/// or after later deposits) and claims. Run for an ETH and for an ERC-20 channel.
abstract contract ChannelInvariantsBase is StdInvariant, KeelTest {
    ChannelHandler internal handler;
    ChannelVault internal vault;
    ChannelVault internal other;

    /// @dev The asset the handler's channels hold (address(0) for ETH).
    function _asset() internal virtual returns (address);

    function setUp() public override {
        super.setUp();
        address asset = _asset();
        handler = new ChannelHandler(factory, asset, 10 ether);
        vault = handler.vault();
        other = handler.other();
        if (asset != address(0)) BlocklistToken(asset).setBlocked(bob, true);

        bytes4[] memory selectors = new bytes4[](17);
        selectors[0] = ChannelHandler.deposit.selector;
        selectors[1] = ChannelHandler.withdraw.selector;
        selectors[2] = ChannelHandler.moveToOther.selector;
        selectors[3] = ChannelHandler.pay.selector;
        selectors[4] = ChannelHandler.revealSecret.selector;
        selectors[5] = ChannelHandler.close.selector;
        selectors[6] = ChannelHandler.refute.selector;
        selectors[7] = ChannelHandler.warp.selector;
        selectors[8] = ChannelHandler.settle.selector;
        selectors[9] = ChannelHandler.unlock.selector;
        selectors[10] = ChannelHandler.cooperativeClose.selector;
        selectors[11] = ChannelHandler.signClose.selector;
        selectors[12] = ChannelHandler.submitClose.selector;
        selectors[13] = ChannelHandler.claim.selector;
        selectors[14] = ChannelHandler.toggleBobAccepts.selector;
        selectors[15] = ChannelHandler.pay.selector; // payments twice as often: they drive the rest
        selectors[16] = ChannelHandler.releaseLock.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @notice All properties below, checked after every call of one campaign per asset (a
    /// campaign per property would repeat the same random runs four times over).
    function invariant_ChannelProperties() public view {
        _checkFundsConservedAcrossBothVaults();
        _checkNoncesOnRecordNeverGoBack();
        _checkSettledStaysSettledAndLocksAreHeld();
        _checkNoOneReceivesMoreThanTheChannelsHeld();
    }

    /// @notice Every unit deposited into either vault is still in one of them or was paid out, and
    /// the vault holds at least what it owes.
    function _checkFundsConservedAcrossBothVaults() internal view {
        uint256 held = handler.balanceOfAsset(address(vault)) + handler.balanceOfAsset(address(other));
        assertEq(held + handler.ghost_paidOut(), handler.ghost_deposited());
        assertLe(vault.owed(alice) + vault.owed(bob), handler.balanceOfAsset(address(vault)));
        // The second channel only ever receives (deposits and moves): its ledger is its balance.
        assertEq(handler.balanceOfAsset(address(other)), other.totalDeposit(0) + other.totalDeposit(1));
    }

    /// @notice The nonce on record per direction is always the highest ever on record, and never one
    /// its sender did not sign; the handler's copy of the dispute is the one the vault commits to.
    function _checkNoncesOnRecordNeverGoBack() internal view {
        for (uint8 d = 0; d < 2; ++d) {
            assertEq(handler.ghost_recordedNonce(d), handler.ghost_maxNonce(d));
            assertLe(handler.ghost_recordedNonce(d), handler.latestNonce(d));
        }
        if (vault.status() == 2) {
            DisputeState memory s = handler.dispute();
            assertEq(vault.stateWord() >> 8, uint256(keccak256(abi.encode(s))) >> 8);
            assertEq(s.fromA.nonce, handler.ghost_recordedNonce(0));
            assertEq(s.fromB.nonce, handler.ghost_recordedNonce(1));
        }
    }

    /// @notice Once settled (by dispute or agreement), a channel is settled forever; while locks
    /// are pending, the vault commits to the lock state the handler expects, and it holds them.
    function _checkSettledStaysSettledAndLocksAreHeld() internal view {
        if (handler.ghost_settled()) assertEq(vault.status(), 3);
        else assertLt(vault.status(), 3);
        if (handler.locksPending()) {
            LockState memory s = handler.lockState();
            assertEq(vault.stateWord() >> 8, uint256(keccak256(abi.encode(s))) >> 8);
            assertGe(
                handler.balanceOfAsset(address(vault)),
                s.retainedA + s.retainedB + vault.owed(alice) + vault.owed(bob)
            );
        } else if (vault.status() == 3) {
            assertEq(vault.stateWord(), 3);
        }
    }

    /// @notice No participant (nor anyone) receives more than the channels ever held, and every call
    /// behaved as the model predicted.
    function _checkNoOneReceivesMoreThanTheChannelsHeld() internal view {
        uint256 deposited = handler.ghost_deposited();
        assertLe(handler.ghost_received(alice) + vault.owed(alice), deposited);
        assertLe(handler.ghost_received(bob) + vault.owed(bob), deposited);
        assertLe(handler.ghost_paidOut() + vault.owed(alice) + vault.owed(bob), deposited);
        assertEq(handler.ghost_violations(), 0);
    }

    /// @notice Each full run really exercised the channel: open actions took effect (a channel is
    /// only ended after four; a run of 32 calls or more that never ends it makes, with the action
    /// mix above, ~9 on average), and every call the handler counts as effective was made. A
    /// reverting vault call cannot vanish: the handler counts it as a violation, and
    /// fail_on_revert is set. (Replayed or shrunk failing sequences are short: the floor skips them.)
    function afterInvariant() public view {
        if (handler.totalCalls() >= 32) {
            assertGe(handler.openActions(), 3, "a run in which almost nothing took effect");
        }
        bytes4[5] memory tracked = [
            ChannelHandler.deposit.selector,
            ChannelHandler.pay.selector,
            ChannelHandler.close.selector,
            ChannelHandler.settle.selector,
            ChannelHandler.claim.selector
        ];
        for (uint256 i = 0; i < tracked.length; ++i) {
            assertLe(handler.effective(tracked[i]), handler.calls(tracked[i]));
        }
        assertEq(handler.ghost_violations(), 0);
    }
}

contract EthChannelInvariantsTest is ChannelInvariantsBase {
    function _asset() internal override returns (address) {
        // Bob's address rejects ETH until the handler toggles it, exercising deferred payouts.
        vm.etch(bob, address(new RejectingRecipient()).code);
        return address(0);
    }
}

contract TokenChannelInvariantsTest is ChannelInvariantsBase {
    function _asset() internal override returns (address) {
        // The token blocks bob until the handler toggles it, exercising deferred payouts.
        return address(new BlocklistToken());
    }
}
