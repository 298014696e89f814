// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ChannelAdjudicator} from "./ChannelAdjudicator.sol";
import {SecretRegistry} from "./SecretRegistry.sol";
import {VaultBase} from "./VaultBase.sol";
import {ChannelParams, Withdrawal} from "./libraries/ChannelTypes.sol";
import {SignedMessages} from "./libraries/SignedMessages.sol";
import {StateWord} from "./libraries/StateWord.sol";
import {TokenTransfers} from "./libraries/TokenTransfers.sol";

/// @title ChannelVault
/// @notice The 2-of-2 multisig wallet of one channel: holds its ETH or tokens, takes deposits from
/// anyone, pays out withdrawals and cooperative closes signed by both participants, and resolves
/// disputes (ChannelAdjudicator). Funds leave only with both signatures or by a finalised outcome.
/// @dev Deployed once as an implementation; each channel is a clone of it (see ChannelFactory).
contract ChannelVault is ChannelAdjudicator {
    using SafeERC20 for IERC20;
    using StateWord for uint256;

    constructor(address factory_, SecretRegistry registry_) VaultBase(factory_, registry_) {}

    /// @notice Records the opening deposit; called once by the factory right after creation.
    function initialize(uint8 side, uint256 amount) external {
        if (msg.sender != _FACTORY) revert NotFactory();
        if (_word != 0) revert AlreadyInitialised();
        // The factory bounds `amount` by StateWord.MAX_DEPOSIT and `side` to 0 or 1.
        _word = side == 0 ? StateWord.open(amount, 0) : StateWord.open(0, amount);
    }

    /// @notice Raises `side`'s cumulative deposit to `newTotal`; anyone may pay for either side.
    /// @dev Race-safe: a retried or duplicated transaction fails instead of depositing twice. For ETH
    /// send exactly the difference; for tokens approve it. A token deposit credits what arrived,
    /// so with a fee-on-transfer token the recorded total is below `newTotal`.
    function deposit(uint8 side, uint256 newTotal) external payable nonReentrant {
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        if (side > 1) revert InvalidSide(side);
        (uint256 depositA, uint256 depositB) = word.deposits();
        uint256 current = side == 0 ? depositA : depositB;
        if (newTotal <= current) revert TotalNotIncreasing(current, newTotal);

        address asset = _token();
        if (asset == address(0)) {
            if (msg.value != newTotal - current) revert WrongValue(newTotal - current, msg.value);
        } else {
            if (msg.value != 0) revert WrongValue(0, msg.value);
            newTotal = current + TokenTransfers.pull(asset, address(this), newTotal - current);
        }
        if (newTotal > StateWord.MAX_DEPOSIT) revert DepositTooLarge(newTotal);

        _word = side == 0 ? StateWord.open(newTotal, depositB) : StateWord.open(depositA, newTotal);
        emit Deposited(side, newTotal);
    }

    /// @notice Pays out a withdrawal both participants signed; the channel stays open.
    /// @dev Anyone may submit it; the funds go to `w.participant`.
    function withdraw(
        ChannelParams calldata p,
        Withdrawal calldata w,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        uint256 amount = _applyWithdrawal(p, w, sigA, sigB);
        TokenTransfers.pay(_token(), w.participant, amount);
    }

    /// @notice Moves a signed withdrawal straight into another channel of the same participant.
    /// @dev The on-chain rebalancing step of a hub. Only the withdrawing participant may call,
    /// since it alone chooses where its funds go; `target` must be a vault of the same asset.
    /// @param targetSide The participant's side (0 = A, 1 = B) in the target channel.
    function withdrawInto(
        ChannelParams calldata p,
        Withdrawal calldata w,
        bytes calldata sigA,
        bytes calldata sigB,
        ChannelVault target,
        uint8 targetSide
    ) external nonReentrant {
        if (msg.sender != w.participant) revert NotParticipant(msg.sender);
        uint256 amount = _applyWithdrawal(p, w, sigA, sigB);
        uint256 newTotal = target.totalDeposit(targetSide) + amount;
        address asset = _token();
        if (asset == address(0)) {
            target.deposit{value: amount}(targetSide, newTotal);
        } else {
            IERC20(asset).forceApprove(address(target), amount);
            target.deposit(targetSide, newTotal);
            IERC20(asset).forceApprove(address(target), 0);
        }
    }

    /// @notice Pays both participants the final balances they both signed and ends the channel.
    /// @dev The signatures cover the vault's current deposit and withdrawal totals, so a close
    /// signed before any later deposit or withdrawal no longer verifies (WrongSigner), and an
    /// expiry, after which a participant that signed may safely resume payments. The payouts may
    /// total up to what the vault actually holds, so funds sent to the vault outside the protocol
    /// can be shared out here by agreement.
    function cooperativeClose(
        ChannelParams calldata p,
        uint256 payoutA,
        uint256 payoutB,
        uint64 expiry,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        bytes32 id = _channelId(p);
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        if (block.timestamp > expiry) revert Expired(expiry);
        (uint256 depositA, uint256 depositB) = word.deposits();
        (uint256 withdrawnA, uint256 withdrawnB) = _withdrawals();
        bytes32 structHash = SignedMessages.cooperativeCloseHash(
            id, payoutA, payoutB, depositA + depositB, withdrawnA + withdrawnB, expiry
        );
        _checkSigner(structHash, sigA, p.participantA);
        _checkSigner(structHash, sigB, p.participantB);
        address asset = _token();
        uint256 balance = TokenTransfers.balanceOfSelf(asset);
        if (payoutA + payoutB > balance) revert PayoutsExceedBalance(payoutA + payoutB, balance);

        _word = StateWord.SETTLED;
        emit CooperativelyClosed(payoutA, payoutB);
        _payOrDefer(asset, p.participantA, payoutA);
        _payOrDefer(asset, p.participantB, payoutB);
    }

    /// @notice Pulls a payout that was deferred because the caller rejected it, sending it to `to`.
    function claim(address to) external nonReentrant {
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        delete _owed[msg.sender];
        emit Claimed(msg.sender, to, amount);
        TokenTransfers.pay(_token(), to, amount);
    }

    /// @notice Lifecycle status: 1 open, 2 closed (challenge period), 3 settled.
    function status() external view returns (uint8) {
        return _word.status();
    }

    /// @notice The raw state word; its high 248 bits commit to the dispute or lock state once closed.
    function stateWord() external view returns (uint256) {
        return _word;
    }

    /// @notice `side`'s cumulative deposit; only defined while the channel is open.
    function totalDeposit(uint8 side) external view returns (uint256) {
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        if (side > 1) revert InvalidSide(side);
        (uint256 depositA, uint256 depositB) = word.deposits();
        return side == 0 ? depositA : depositB;
    }

    /// @notice `side`'s cumulative withdrawal.
    function totalWithdrawn(uint8 side) external view returns (uint256) {
        if (side > 1) revert InvalidSide(side);
        (uint256 withdrawnA, uint256 withdrawnB) = _withdrawals();
        return side == 0 ? withdrawnA : withdrawnB;
    }

    /// @notice A deferred payout `payee` can pull with claim().
    function owed(address payee) external view returns (uint256) {
        return _owed[payee];
    }

    /// @notice The channel's asset (address(0) for ETH).
    function token() external view returns (address) {
        return _token();
    }

    /// @notice The EIP-712 domain separator every signature for this channel is bound to.
    function domainSeparator() external view returns (bytes32) {
        return SignedMessages.domainSeparator(address(this));
    }

    /// @notice The factory that created this vault and the secret registry its locks use.
    function factory() external view returns (address) {
        return _FACTORY;
    }

    function secretRegistry() external view returns (SecretRegistry) {
        return _REGISTRY;
    }

    function _applyWithdrawal(
        ChannelParams calldata p,
        Withdrawal calldata w,
        bytes calldata sigA,
        bytes calldata sigB
    ) private returns (uint256 amount) {
        bytes32 id = _channelId(p);
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        if (block.timestamp > w.expiry) revert Expired(w.expiry);
        uint8 side = _sideOf(p, w.participant);
        bytes32 structHash = SignedMessages.withdrawalHash(id, w);
        _checkSigner(structHash, sigA, p.participantA);
        _checkSigner(structHash, sigB, p.participantB);

        (uint256 withdrawnA, uint256 withdrawnB) = _withdrawals();
        uint256 current = side == 0 ? withdrawnA : withdrawnB;
        if (w.totalWithdrawn <= current) revert TotalNotIncreasing(current, w.totalWithdrawn);
        (uint256 depositA, uint256 depositB) = word.deposits();
        uint256 deposited = depositA + depositB;
        if (side == 0) withdrawnA = w.totalWithdrawn;
        else withdrawnB = w.totalWithdrawn;
        // The first test keeps the sum in the second from overflowing.
        if (w.totalWithdrawn > deposited || withdrawnA + withdrawnB > deposited) {
            revert WithdrawalExceedsDeposits(w.totalWithdrawn, deposited);
        }
        // Both totals are now at most depositA + depositB < 2^121, so they fit 128 bits each.
        _withdrawn = (withdrawnA << 128) | withdrawnB;
        emit Withdrawn(side, w.totalWithdrawn);
        amount = w.totalWithdrawn - current;
    }
}
