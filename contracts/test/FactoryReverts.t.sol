// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {KeelSigTest} from "./utils/KeelSigTest.sol";
import {PlainToken} from "./utils/PlainToken.sol";
import {ChannelFactory} from "../src/ChannelFactory.sol";
import {ChannelVault} from "../src/ChannelVault.sol";
import {ChannelParams} from "../src/libraries/ChannelTypes.sol";
import {TokenTransfers} from "../src/libraries/TokenTransfers.sol";
import {DepositTooLarge, NotParticipant, NothingReceived, WrongValue} from "../src/libraries/Errors.sol";

/// @notice Every revert path of ChannelFactory, with the boundaries on either side, and its views.
contract FactoryRevertsTest is KeelSigTest {
    PlainToken internal token;

    function setUp() public override {
        super.setUp();
        token = new PlainToken();
        token.mint(alice, 1000 ether);
        vm.prank(alice);
        token.approve(address(factory), type(uint256).max);
    }

    // ---------------------------------------------------------------- constructor

    function test_RevertWhen_ConstructorMinPeriodIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.InvalidChallengePeriodBounds.selector, 0, 100));
        new ChannelFactory(0, 100);
    }

    function test_RevertWhen_ConstructorMinAndMaxAreZero() public {
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.InvalidChallengePeriodBounds.selector, 0, 0));
        new ChannelFactory(0, 0);
    }

    function test_RevertWhen_ConstructorMinAboveMax() public {
        vm.expectRevert(
            abi.encodeWithSelector(ChannelFactory.InvalidChallengePeriodBounds.selector, 101, 100)
        );
        new ChannelFactory(101, 100);
    }

    function test_ConstructorAcceptsEqualBounds() public {
        ChannelFactory f = new ChannelFactory(100, 100);
        assertEq(f.minChallengePeriod(), 100);
        assertEq(f.maxChallengePeriod(), 100);
        assertEq(f.vaultImplementation().factory(), address(f));
        assertEq(address(f.vaultImplementation().secretRegistry()), address(f.secretRegistry()));
    }

    function testFuzz_ConstructorBounds(uint32 minPeriod, uint32 maxPeriod) public {
        if (minPeriod == 0 || minPeriod > maxPeriod) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ChannelFactory.InvalidChallengePeriodBounds.selector, minPeriod, maxPeriod
                )
            );
            new ChannelFactory(minPeriod, maxPeriod);
        } else {
            ChannelFactory f = new ChannelFactory(minPeriod, maxPeriod);
            assertEq(f.minChallengePeriod(), minPeriod);
            assertEq(f.maxChallengePeriod(), maxPeriod);
        }
    }

    // ---------------------------------------------------------------- participants

    function test_RevertWhen_ParticipantAIsZero() public {
        ChannelParams memory p = ethParams();
        p.participantA = address(0);
        vm.prank(bob);
        vm.expectRevert(ChannelFactory.InvalidParticipants.selector);
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_ParticipantBIsZero() public {
        ChannelParams memory p = ethParams();
        p.participantB = address(0);
        vm.prank(alice);
        vm.expectRevert(ChannelFactory.InvalidParticipants.selector);
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_ParticipantsAreEqual() public {
        ChannelParams memory p = ethParams();
        p.participantB = alice;
        vm.prank(alice);
        vm.expectRevert(ChannelFactory.InvalidParticipants.selector);
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_OpenerIsNotParticipant() public {
        address stranger = makeAddr("stranger");
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(NotParticipant.selector, stranger));
        factory.open{value: 1 ether}(ethParams(), 1 ether);
    }

    // ---------------------------------------------------------------- challenge period

    function test_RevertWhen_ChallengePeriodBelowMin() public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = MIN_PERIOD - 1;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChannelFactory.ChallengePeriodOutOfBounds.selector, MIN_PERIOD - 1, MIN_PERIOD, MAX_PERIOD
            )
        );
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_ChallengePeriodIsZero() public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = 0;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChannelFactory.ChallengePeriodOutOfBounds.selector, 0, MIN_PERIOD, MAX_PERIOD
            )
        );
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_ChallengePeriodAboveMax() public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = MAX_PERIOD + 1;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChannelFactory.ChallengePeriodOutOfBounds.selector, MAX_PERIOD + 1, MIN_PERIOD, MAX_PERIOD
            )
        );
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_OpenAcceptsChallengePeriodExactlyMin() public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = MIN_PERIOD;
        vm.prank(alice);
        (address vault,) = factory.open{value: 1 ether}(p, 1 ether);
        assertEq(ChannelVault(vault).status(), 1);
        assertEq(vault, factory.vaultOf(p));
    }

    function test_OpenAcceptsChallengePeriodExactlyMax() public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = MAX_PERIOD;
        vm.prank(alice);
        (address vault,) = factory.open{value: 1 ether}(p, 1 ether);
        assertEq(ChannelVault(vault).status(), 1);
        assertEq(vault, factory.vaultOf(p));
    }

    function testFuzz_ChallengePeriodBounds(uint32 period) public {
        ChannelParams memory p = ethParams();
        p.challengePeriod = period;
        vm.prank(alice);
        if (period < MIN_PERIOD || period > MAX_PERIOD) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ChannelFactory.ChallengePeriodOutOfBounds.selector, period, MIN_PERIOD, MAX_PERIOD
                )
            );
            factory.open{value: 1 ether}(p, 1 ether);
        } else {
            (address vault,) = factory.open{value: 1 ether}(p, 1 ether);
            assertEq(ChannelVault(vault).totalDeposit(0), 1 ether);
        }
    }

    // ---------------------------------------------------------------- value and asset

    function test_RevertWhen_EthValueBelowAmount() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 2 ether, 1 ether));
        factory.open{value: 1 ether}(ethParams(), 2 ether);
    }

    function test_RevertWhen_EthValueAboveAmount() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 1 ether, 2 ether));
        factory.open{value: 2 ether}(ethParams(), 1 ether);
    }

    function test_RevertWhen_EthAmountWithoutValue() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 1 ether, 0));
        factory.open(ethParams(), 1 ether);
    }

    function test_OpenEthWithZeroDeposit() public {
        vm.prank(alice);
        (address vault,) = factory.open(ethParams(), 0);
        assertEq(ChannelVault(vault).status(), 1);
        assertEq(ChannelVault(vault).totalDeposit(0), 0);
    }

    function test_RevertWhen_TokenOpenCarriesValue() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 0, 1));
        factory.open{value: 1}(tokenParams(address(token)), 1 ether);
    }

    function test_RevertWhen_TokenOpenCarriesValueAndZeroAmount() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(WrongValue.selector, 0, 1 ether));
        factory.open{value: 1 ether}(tokenParams(address(token)), 0);
    }

    function test_RevertWhen_TokenHasNoCode() public {
        address notAToken = makeAddr("notAToken");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.TokenHasNoCode.selector, notAToken));
        factory.open(tokenParams(notAToken), 1 ether);
    }

    function test_RevertWhen_TokenHasNoCodeEvenForZeroAmount() public {
        address notAToken = makeAddr("notAToken");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.TokenHasNoCode.selector, notAToken));
        factory.open(tokenParams(notAToken), 0);
    }

    function test_RevertWhen_TokenTransferDeliversNothing() public {
        token.setSkimTransfers(true);
        vm.prank(alice);
        vm.expectRevert(NothingReceived.selector);
        factory.open(tokenParams(address(token)), 1 ether);
    }

    function test_OpenTokenPullsIntoPredictedVault() public {
        ChannelParams memory p = tokenParams(address(token));
        address predicted = factory.vaultOf(p);
        vm.prank(alice);
        (address vault,) = factory.open(p, 3 ether);
        assertEq(vault, predicted);
        assertEq(token.balanceOf(vault), 3 ether);
        assertEq(ChannelVault(vault).totalDeposit(0), 3 ether);
        assertEq(ChannelVault(vault).token(), address(token));
    }

    // ---------------------------------------------------------------- deposit size

    function test_RevertWhen_EthDepositTooLarge() public {
        uint256 amount = uint256(type(uint120).max) + 1;
        vm.deal(alice, amount);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DepositTooLarge.selector, amount));
        factory.open{value: amount}(ethParams(), amount);
    }

    function test_OpenAcceptsMaxDeposit() public {
        uint256 amount = type(uint120).max;
        vm.deal(alice, amount);
        vm.prank(alice);
        (address vault,) = factory.open{value: amount}(ethParams(), amount);
        assertEq(ChannelVault(vault).totalDeposit(0), amount);
        assertEq(ChannelVault(vault).totalDeposit(1), 0);
    }

    function test_RevertWhen_TokenDepositTooLarge() public {
        uint256 amount = uint256(type(uint120).max) + 1;
        token.mint(alice, amount);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DepositTooLarge.selector, amount));
        factory.open(tokenParams(address(token)), amount);
    }

    // ---------------------------------------------------------------- uniqueness

    function test_RevertWhen_ChannelExists() public {
        ChannelParams memory p = ethParams();
        vm.prank(alice);
        (, bytes32 id) = factory.open{value: 1 ether}(p, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.ChannelExists.selector, id));
        factory.open{value: 1 ether}(p, 1 ether);
    }

    function test_RevertWhen_ChannelExistsOpenedByOtherParticipant() public {
        ChannelParams memory p = ethParams();
        vm.prank(alice);
        (, bytes32 id) = factory.open{value: 1 ether}(p, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.ChannelExists.selector, id));
        factory.open(p, 0);
    }

    function test_RevertWhen_TokenChannelExists() public {
        ChannelParams memory p = tokenParams(address(token));
        vm.prank(alice);
        (, bytes32 id) = factory.open(p, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.ChannelExists.selector, id));
        factory.open(p, 1 ether);
        // The reverted second pull left the vault's holdings untouched.
        assertEq(token.balanceOf(factory.vaultOf(p)), 1 ether);
    }

    function test_ReopenAfterSettlementNeedsNewSalt() public {
        (ChannelParams memory p, ChannelVault v) = openEth(1 ether, 0);
        v.cooperativeClose(
            p,
            terms(address(v), 1 ether, 0),
            signCoopClose(alicePk, p, address(v), 1 ether, 0),
            signCoopClose(bobPk, p, address(v), 1 ether, 0)
        );
        bytes32 id = channelIdOf(p);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ChannelFactory.ChannelExists.selector, id));
        factory.open{value: 1 ether}(p, 1 ether);

        p.salt = bytes32(uint256(2));
        vm.prank(alice);
        (address fresh,) = factory.open{value: 1 ether}(p, 1 ether);
        assertTrue(fresh != address(v));
    }

    // ---------------------------------------------------------------- views

    function test_ChannelIdMatchesDerivation() public view {
        ChannelParams memory p = ethParams();
        assertEq(factory.channelId(p), channelIdOf(p));
    }

    function test_ChannelIdBindsEveryParameter() public view {
        ChannelParams memory p = ethParams();
        bytes32 id = factory.channelId(p);
        ChannelParams memory q = ethParams();
        q.participantA = tower;
        assertTrue(factory.channelId(q) != id);
        q = ethParams();
        q.participantB = tower;
        assertTrue(factory.channelId(q) != id);
        q = ethParams();
        (q.participantA, q.participantB) = (bob, alice);
        assertTrue(factory.channelId(q) != id);
        q = ethParams();
        q.token = address(token);
        assertTrue(factory.channelId(q) != id);
        q = ethParams();
        q.challengePeriod = PERIOD + 1;
        assertTrue(factory.channelId(q) != id);
        q = ethParams();
        q.salt = bytes32(uint256(2));
        assertTrue(factory.channelId(q) != id);
    }

    function test_ChannelIdBindsChainId() public {
        ChannelParams memory p = ethParams();
        bytes32 id = factory.channelId(p);
        vm.chainId(2);
        assertTrue(factory.channelId(p) != id);
        assertEq(factory.channelId(p), channelIdOf(p));
    }

    function test_VaultOfPredictsOpenedAddressAndId() public {
        ChannelParams memory p = ethParams();
        address predicted = factory.vaultOf(p);
        assertEq(predicted.code.length, 0);
        vm.prank(alice);
        (address vault, bytes32 id) = factory.open{value: 1 ether}(p, 1 ether);
        assertEq(vault, predicted);
        assertEq(id, factory.channelId(p));
        assertEq(factory.vaultOf(p), vault);
    }

    function test_VaultOfDiffersByToken() public view {
        assertTrue(factory.vaultOf(ethParams()) != factory.vaultOf(tokenParams(address(token))));
    }

    function test_OpenEmitsChannelOpened() public {
        ChannelParams memory p = ethParams();
        address predicted = factory.vaultOf(p);
        bytes32 id = factory.channelId(p);
        vm.expectEmit(address(factory));
        emit ChannelFactory.ChannelOpened(id, alice, bob, predicted, address(0), PERIOD, p.salt, 1, 2 ether);
        vm.prank(bob);
        factory.open{value: 2 ether}(p, 2 ether);
    }
}
