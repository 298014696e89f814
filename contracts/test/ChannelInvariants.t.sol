// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {StdInvariant} from "forge-std/StdInvariant.sol";
import {KeelTest} from "./utils/KeelTest.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {DisputeState} from "../src/libraries/ChannelTypes.sol";
import {ChannelHandler} from "./handlers/ChannelHandler.sol";
import {RejectingRecipient} from "./mocks/RejectingRecipient.sol";

/// @notice Properties that hold through any sequence of deposits, withdrawals, payments, closes,
/// refutations, settlements, cooperative closes and claims on an ETH channel.
contract ChannelInvariantsTest is StdInvariant, KeelTest {
    ChannelHandler internal handler;
    ChannelVault internal vault;

    function setUp() public override {
        super.setUp();
        // Bob's address rejects ETH until the handler toggles it, exercising deferred payouts.
        vm.etch(bob, address(new RejectingRecipient()).code);
        handler = new ChannelHandler(factory, 10 ether);
        vault = handler.vault();

        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = ChannelHandler.deposit.selector;
        selectors[1] = ChannelHandler.withdraw.selector;
        selectors[2] = ChannelHandler.pay.selector;
        selectors[3] = ChannelHandler.close.selector;
        selectors[4] = ChannelHandler.refute.selector;
        selectors[5] = ChannelHandler.warp.selector;
        selectors[6] = ChannelHandler.settle.selector;
        selectors[7] = ChannelHandler.cooperativeClose.selector;
        selectors[8] = ChannelHandler.claim.selector;
        selectors[9] = ChannelHandler.toggleBobAccepts.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @notice Every wei deposited is either still in the vault or was paid out.
    function invariant_FundsConserved() public view {
        assertEq(address(vault).balance + handler.ghost_paidOut(), handler.ghost_deposited());
        assertLe(vault.owed(alice) + vault.owed(bob), address(vault).balance);
    }

    /// @notice The nonce on record per direction is always the highest ever on record, and never one
    /// its sender did not sign; the handler's copy of the dispute is the one the vault commits to.
    function invariant_NoncesOnRecordNeverGoBack() public view {
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

    /// @notice Once settled (by dispute or agreement), a channel is settled forever.
    function invariant_SettledStaysSettled() public view {
        if (handler.ghost_settled()) assertEq(vault.status(), 3);
        else assertLt(vault.status(), 3);
    }

    /// @notice No participant (nor anyone) receives more than the channel ever held, and every call
    /// behaved as the model predicted.
    function invariant_NoOneReceivesMoreThanTheChannelHeld() public view {
        uint256 deposited = handler.ghost_deposited();
        assertLe(handler.ghost_received(alice) + vault.owed(alice), deposited);
        assertLe(handler.ghost_received(bob) + vault.owed(bob), deposited);
        assertLe(handler.ghost_paidOut() + vault.owed(alice) + vault.owed(bob), deposited);
        assertEq(handler.ghost_violations(), 0);
    }
}
