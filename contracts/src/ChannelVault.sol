// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ChannelAdjudicator} from "./ChannelAdjudicator.sol";
import {SecretRegistry} from "./SecretRegistry.sol";
import {VaultBase} from "./VaultBase.sol";
import {ChannelParams, CooperativeClose, Withdrawal} from "./libraries/ChannelTypes.sol";
import {DepositTooLarge, WrongValue} from "./libraries/Errors.sol";
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
    /// @dev Anyone may submit it; the funds go to `w.participant`. A withdrawal signed as a move
    /// into another vault (`w.target` set) executes only through withdrawInto().
    function withdraw(
        ChannelParams calldata p,
        Withdrawal calldata w,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        if (w.target != address(0)) revert WrongDestination(w.target);
        uint256 amount = _applyWithdrawal(p, w, sigA, sigB);
        TokenTransfers.pay(_token(), w.participant, amount);
    }

    /// @notice Moves a signed withdrawal straight into another channel: deposits it for
    /// `w.targetSide` in the vault `w.target`. The on-chain rebalancing step of a hub.
    /// @dev Both participants signed the destination, so anyone may submit it and it can execute
    /// only as this move. The target must be another vault of this factory with the same asset:
    /// a clone of the same implementation with the same token has exactly this vault's code.
    function withdrawInto(
        ChannelParams calldata p,
        Withdrawal calldata w,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        address target = w.target;
        if (target == address(0)) revert WrongDestination(target);
        if (target == address(this) || target.codehash != address(this).codehash) revert NotAVault(target);
        uint256 amount = _applyWithdrawal(p, w, sigA, sigB);
        ChannelVault vault = ChannelVault(target);
        uint256 newTotal = vault.totalDeposit(w.targetSide) + amount;
        address asset = _token();
        if (asset == address(0)) {
            // Not an arbitrary destination: both participants signed `target`, and its code is
            // this vault's own (a vault of this factory and asset), checked above.
            // slither-disable-next-line arbitrary-send-eth
            vault.deposit{value: amount}(w.targetSide, newTotal);
        } else {
            IERC20(asset).forceApprove(target, amount);
            vault.deposit(w.targetSide, newTotal);
            IERC20(asset).forceApprove(target, 0);
        }
    }

    /// @notice Pays both participants the final balances they both signed and ends the channel.
    /// @dev The signatures cover each side's deposit total and the withdrawal total at signing,
    /// and an expiry, after which a participant that signed may safely resume payments.
    /// Withdrawals need both signatures, and the vault hashes its own withdrawal total: a close
    /// signed before a later withdrawal no longer verifies (WrongSigner). Deposits are open to
    /// anyone, so a deposit made after signing must not cancel the close: it is paid back to the
    /// side it was made for, on top of that side's signed payout. The payouts may total up to what the vault
    /// actually holds, so funds sent to the vault outside the protocol can be shared out here by
    /// agreement.
    function cooperativeClose(
        ChannelParams calldata p,
        CooperativeClose calldata c,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        bytes32 id = _channelId(p);
        uint256 word = _word;
        if (word.status() != StateWord.OPEN) revert ChannelNotOpen();
        if (block.timestamp > c.expiry) revert Expired(c.expiry);
        (uint256 withdrawnA, uint256 withdrawnB) = _withdrawals();
        bytes32 structHash = SignedMessages.cooperativeCloseHash(id, c, withdrawnA + withdrawnB);
        _checkBothSigned(structHash, p, sigA, sigB);
        (uint256 depositA, uint256 depositB) = word.deposits();
        if (depositA < c.depositA || depositB < c.depositB) revert LedgerMismatch();
        // Deposits are below 2^120 and the payouts are bounded by the balance just below.
        uint256 payoutA = c.payoutA + (depositA - c.depositA);
        uint256 payoutB = c.payoutB + (depositB - c.depositB);
        address asset = _token();
        uint256 balance = TokenTransfers.balanceOfSelf(asset);
        if (payoutA + payoutB > balance) revert PayoutsExceedBalance(payoutA + payoutB, balance);

        _word = StateWord.SETTLED;
        emit CooperativelyClosed(payoutA, payoutB);
        _payOrDefer(asset, p.participantA, payoutA);
        _payOrDefer(asset, p.participantB, payoutB);
    }

    /// @notice Pulls a payout that was deferred because the caller rejected it, sending it to `to`.
    /// @dev Pays what the vault can: if its token balance shrank below what is owed (a rebasing
    /// or seized token), the caller takes what remains and the rest stays owed, rather than one
    /// payee being refused everything.
    function claim(address to) external nonReentrant {
        uint256 owedToCaller = _owed[msg.sender];
        address asset = _token();
        uint256 held = TokenTransfers.balanceOfSelf(asset);
        uint256 amount = owedToCaller < held ? owedToCaller : held;
        if (amount == 0) revert NothingOwed();
        _owed[msg.sender] = owedToCaller - amount;
        emit Claimed(msg.sender, to, amount);
        TokenTransfers.pay(asset, to, amount);
    }

    /// @notice Lifecycle status: 1 open, 2 closed (challenge period), 3 settled.
    function status() external view returns (uint8) {
        return _word.status();
    }

    /// @notice The state word: the status in the low byte; the high 248 bits commit to the dispute or
    /// lock state once closed.
    /// @dev Leaves out the release flags stored beside the status (StateWord.withRelease), which
    /// only spare unlock a lookup.
    function stateWord() external view returns (uint256) {
        return _word.withoutReleases();
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

    /// @notice The EIP-712 domain of this vault (EIP-5267), so wallets and libraries can build it
    /// without reading the docs: name, version, chain id and this vault as verifying contract.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (
            hex"0f",
            SignedMessages.NAME,
            SignedMessages.VERSION,
            block.chainid,
            address(this),
            bytes32(0),
            extensions
        );
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
        _checkBothSigned(structHash, p, sigA, sigB);

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
