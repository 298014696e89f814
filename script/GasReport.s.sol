// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Script} from "forge-std/Script.sol";
import {Vm} from "forge-std/Vm.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ChannelFactory} from "../contracts/src/ChannelFactory.sol";
import {ChannelAdjudicator} from "../contracts/src/ChannelAdjudicator.sol";
import {ChannelVault} from "../contracts/src/ChannelVault.sol";
import {IChannelVault} from "../contracts/src/interfaces/IChannelVault.sol";
import {
    BalanceData,
    ChannelParams,
    CooperativeClose,
    DisputeState,
    Lock,
    LockState,
    Withdrawal
} from "../contracts/src/libraries/ChannelTypes.sol";

/// @dev A plain ERC-20 for the token scenarios.
contract GasReportToken is ERC20 {
    constructor(address a, address b) ERC20("Keel Gas Report Token", "KGT") {
        _mint(a, 1_000_000 ether);
        _mint(b, 1_000_000 ether);
    }
}

/// @notice Runs every channel operation as a real transaction on a local Anvil so that
/// script/gas-report.sh can read each receipt's gasUsed. Three phases, because refutations need
/// the deadline the chain actually gave the close, and settlement needs the clock moved past it:
/// `run()` (open, deposit, withdraw, cooperative close, unilateral close), `refutations()` (and
/// lock releases, during the same challenge period), then — after evm_increaseTime —
/// `afterChallenge()` (settle, unlock). The release scenario's transactions come last in each
/// phase, after every other row's.
/// @dev Uses Anvil's well-known development keys; never point this at a real network. Each
/// measured transaction is labelled, in broadcast order, in deployments/gas-labels-<phase>.txt.
contract GasReport is Script {
    uint256 internal constant ALICE_PK = 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    uint256 internal constant BOB_PK = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
    uint256 internal constant TOWER_PK = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
    uint32 internal constant PERIOD = 1 hours;
    /// @dev Salts of the channels whose locks bob releases (7 and 8 are the withdrawInto targets).
    uint256 internal constant RELEASE_1 = 9;
    uint256 internal constant RELEASE_6 = 10;

    ChannelFactory internal factory;
    address internal alice;
    address internal bob;
    address internal token;
    string internal labels;

    function run() external {
        _load();
        vm.startBroadcast(ALICE_PK);
        token = address(new GasReportToken(alice, bob));
        vm.stopBroadcast();
        _label("setup: deploy test token");
        vm.writeFile(_path("gas-report-token.txt"), vm.toString(token));

        // ETH channel: every open-channel operation.
        ChannelParams memory x = _params(address(0), 1);
        _send(
            ALICE_PK,
            address(factory),
            10 ether,
            abi.encodeCall(ChannelFactory.open, (x, 10 ether)),
            "open with deposit (ETH)"
        );
        ChannelVault vx = ChannelVault(factory.vaultOf(x));
        _send(
            BOB_PK,
            address(vx),
            5 ether,
            abi.encodeCall(ChannelVault.deposit, (1, 5 ether)),
            "first deposit by the counterparty (ETH)"
        );
        _send(
            ALICE_PK,
            address(vx),
            2 ether,
            abi.encodeCall(ChannelVault.deposit, (0, 12 ether)),
            "top-up, a later deposit (ETH)"
        );
        _withdraw(x, vx, "withdraw while open (ETH)");
        // A hub's on-chain rebalancing step: alice moves 2 ETH of her balance in x into her side
        // of another channel (z) in one transaction.
        ChannelVault vz = _openFunded(_params(address(0), 7), "setup: open + deposit (ETH)");
        _move(x, vx, vz, "move into another channel (ETH, withdrawInto)");
        _send(ALICE_PK, address(vx), 0, _coopClose(x, vx, 4 ether, 10 ether), "cooperative close (ETH)");

        // ETH channel closed unilaterally, refuted and settled in the later phases.
        ChannelParams memory y = _params(address(0), 2);
        ChannelVault vy = _openFunded(y, "setup: open + deposit (ETH)");
        _send(
            ALICE_PK,
            address(vy),
            0,
            _close(y, vy, BOB_PK, BalanceData(5, 2 ether, 0, 0)),
            "unilateral close (ETH)"
        );

        // ERC-20 channel: the same open-channel operations.
        ChannelParams memory t = _params(token, 3);
        _send(
            ALICE_PK,
            token,
            0,
            abi.encodeCall(ERC20.approve, (address(factory), type(uint256).max)),
            "setup: approve factory"
        );
        _send(
            ALICE_PK,
            address(factory),
            0,
            abi.encodeCall(ChannelFactory.open, (t, 10 ether)),
            "open with deposit (ERC-20)"
        );
        ChannelVault vt = ChannelVault(factory.vaultOf(t));
        _send(
            BOB_PK,
            token,
            0,
            abi.encodeCall(ERC20.approve, (address(vt), type(uint256).max)),
            "setup: approve vault"
        );
        _send(
            ALICE_PK,
            token,
            0,
            abi.encodeCall(ERC20.approve, (address(vt), type(uint256).max)),
            "setup: approve vault"
        );
        _send(
            BOB_PK,
            address(vt),
            0,
            abi.encodeCall(ChannelVault.deposit, (1, 5 ether)),
            "first deposit by the counterparty (ERC-20)"
        );
        _send(
            ALICE_PK,
            address(vt),
            0,
            abi.encodeCall(ChannelVault.deposit, (0, 12 ether)),
            "top-up, a later deposit (ERC-20)"
        );
        _withdraw(t, vt, "withdraw while open (ERC-20)");
        // The same rebalancing step as for ETH: alice moves 2 tokens into another channel's vault.
        ChannelVault vt3 = _openFundedToken(_params(token, 8));
        _move(t, vt, vt3, "move into another channel (ERC-20, withdrawInto)");
        _send(ALICE_PK, address(vt), 0, _coopClose(t, vt, 4 ether, 10 ether), "cooperative close (ERC-20)");

        // ERC-20 channel closed unilaterally.
        ChannelParams memory t2 = _params(token, 4);
        _send(
            ALICE_PK,
            address(factory),
            0,
            abi.encodeCall(ChannelFactory.open, (t2, 10 ether)),
            "setup: open (ERC-20)"
        );
        ChannelVault vt2 = ChannelVault(factory.vaultOf(t2));
        _send(
            BOB_PK,
            token,
            0,
            abi.encodeCall(ERC20.approve, (address(vt2), type(uint256).max)),
            "setup: approve vault"
        );
        _send(
            BOB_PK,
            address(vt2),
            0,
            abi.encodeCall(ChannelVault.deposit, (1, 10 ether)),
            "setup: deposit (ERC-20)"
        );
        _send(
            ALICE_PK,
            address(vt2),
            0,
            _close(t2, vt2, BOB_PK, BalanceData(5, 2 ether, 0, 0)),
            "unilateral close (ERC-20)"
        );

        // Channels with 1 and 6 pending locks from alice to bob, secrets revealed on chain.
        _lockChannel(5, 1, "register a secret");
        _lockChannel(6, 6, "register 6 secrets");

        // Channels where bob closes with an older proof of alice's that still holds 1 and 6 locks
        // he has since released off-chain; alice answers with his LockReleases in refutations().
        // The 1-lock channel's secret is registered in time, so only the release returns it.
        _lockChannel(RELEASE_1, 1, "setup: register a secret");
        _lockChannel(RELEASE_6, 6, "setup: register 6 secrets");

        vm.writeFile(_path("gas-labels-1.txt"), labels);
    }

    function refutations() external {
        _load();
        ChannelParams memory y = _params(address(0), 2);
        ChannelVault vy = ChannelVault(factory.vaultOf(y));
        DisputeState memory s = _lastDispute(address(vy));
        BalanceData memory newer = BalanceData(7, 3 ether, 0, 0);
        _send(
            BOB_PK,
            address(vy),
            0,
            abi.encodeWithSelector(
                ChannelAdjudicator.refute.selector,
                y,
                s,
                newer,
                _signBalance(ALICE_PK, y, vy, newer),
                bytes("")
            ),
            "refutation by the counterparty (ETH)"
        );
        s.fromA = newer;
        BalanceData memory newest = BalanceData(8, 4 ether, 0, 0);
        bytes memory auth = _sign(BOB_PK, vy, keccak256(abi.encode(_towerTypehash(), _bpHash(y, newest))));
        _send(
            TOWER_PK,
            address(vy),
            0,
            abi.encodeCall(
                ChannelAdjudicator.refute, (y, s, newest, _signBalance(ALICE_PK, y, vy, newest), auth)
            ),
            "refutation by a watchtower (ETH)"
        );

        // During the challenge period, alice submits bob's LockRelease for each of her locks.
        _release(RELEASE_1, 1, "release 1 lock (releaseLocks)");
        _release(RELEASE_6, 6, "release 6 locks (releaseLocks)");
        vm.writeFile(_path("gas-labels-2.txt"), labels);
    }

    function afterChallenge() external {
        _load();
        token = vm.parseAddress(vm.readFile(_path("gas-report-token.txt")));
        ChannelParams memory y = _params(address(0), 2);
        address vy = factory.vaultOf(y);
        _send(
            ALICE_PK, vy, 0, abi.encodeCall(ChannelAdjudicator.settle, (y, _lastDispute(vy))), "settle (ETH)"
        );
        ChannelParams memory t2 = _params(token, 4);
        address vt2 = factory.vaultOf(t2);
        _send(
            ALICE_PK,
            vt2,
            0,
            abi.encodeCall(ChannelAdjudicator.settle, (t2, _lastDispute(vt2))),
            "settle (ERC-20)"
        );
        _settleAndUnlock(5, 1);
        _settleAndUnlock(6, 6);

        // The released lock goes back to alice although its secret was registered in time.
        ChannelParams memory r = _params(address(0), RELEASE_1);
        address vr = factory.vaultOf(r);
        DisputeState memory rs = _lastDispute(vr);
        _send(
            BOB_PK,
            vr,
            0,
            abi.encodeCall(ChannelAdjudicator.settle, (r, rs)),
            "setup: settle with pending locks"
        );
        (Lock[] memory released,) = _locks(RELEASE_1, 1);
        _send(
            ALICE_PK,
            vr,
            0,
            abi.encodeCall(
                ChannelAdjudicator.unlock,
                (r, LockState(rs.fromA.lockedAmount, rs.fromA.locksRoot, 0, 0), 0, released)
            ),
            "unlock 1 released lock (secret registered, returned to its sender)"
        );
        vm.writeFile(_path("gas-labels-3.txt"), labels);
    }

    // ------------------------------------------------------------------ scenarios

    function _openFunded(ChannelParams memory p, string memory label) internal returns (ChannelVault v) {
        _send(ALICE_PK, address(factory), 10 ether, abi.encodeCall(ChannelFactory.open, (p, 10 ether)), label);
        v = ChannelVault(factory.vaultOf(p));
        _send(BOB_PK, address(v), 10 ether, abi.encodeCall(ChannelVault.deposit, (1, 10 ether)), label);
    }

    /// @dev An open ERC-20 channel with 10 tokens a side; alice has approved the factory.
    function _openFundedToken(ChannelParams memory p) internal returns (ChannelVault v) {
        _send(
            ALICE_PK,
            address(factory),
            0,
            abi.encodeCall(ChannelFactory.open, (p, 10 ether)),
            "setup: open (ERC-20)"
        );
        v = ChannelVault(factory.vaultOf(p));
        _send(
            BOB_PK,
            p.token,
            0,
            abi.encodeCall(ERC20.approve, (address(v), type(uint256).max)),
            "setup: approve vault"
        );
        _send(
            BOB_PK,
            address(v),
            0,
            abi.encodeCall(ChannelVault.deposit, (1, 10 ether)),
            "setup: deposit (ERC-20)"
        );
    }

    function _withdraw(ChannelParams memory p, ChannelVault v, string memory label) internal {
        Withdrawal memory w = Withdrawal(alice, 1 ether, uint64(block.timestamp + 1 days), address(0), 0);
        bytes32 h = _withdrawalHash(p, w);
        _send(
            ALICE_PK,
            address(v),
            0,
            abi.encodeCall(ChannelVault.withdraw, (p, w, _sign(ALICE_PK, v, h), _sign(BOB_PK, v, h))),
            label
        );
    }

    /// @dev The EIP-712 struct hash of `w` for channel `p` (what both participants sign).
    function _withdrawalHash(ChannelParams memory p, Withdrawal memory w) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry,address target,uint8 targetSide)"
                ),
                factory.channelId(p),
                w.participant,
                w.totalWithdrawn,
                w.expiry,
                w.target,
                w.targetSide
            )
        );
    }

    /// @dev Alice's cumulative withdrawal from `v` grows by 2 ETH, deposited for her (side A) in `target`.
    function _move(ChannelParams memory p, ChannelVault v, ChannelVault target, string memory label)
        internal
    {
        Withdrawal memory w = Withdrawal(
            alice, v.totalWithdrawn(0) + 2 ether, uint64(block.timestamp + 1 days), address(target), 0
        );
        bytes32 h = _withdrawalHash(p, w);
        _send(
            ALICE_PK,
            address(v),
            0,
            abi.encodeCall(ChannelVault.withdrawInto, (p, w, _sign(ALICE_PK, v, h), _sign(BOB_PK, v, h))),
            label
        );
    }

    function _coopClose(ChannelParams memory p, ChannelVault v, uint256 a, uint256 b)
        internal
        view
        returns (bytes memory)
    {
        CooperativeClose memory c = CooperativeClose(
            a, b, v.totalDeposit(0), v.totalDeposit(1), uint64(block.timestamp + 1 days)
        );
        bytes32 h = keccak256(
            abi.encode(
                keccak256(
                    "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 depositA,uint256 depositB,uint256 totalWithdrawn,uint64 expiry)"
                ),
                factory.channelId(p),
                c.payoutA,
                c.payoutB,
                c.depositA,
                c.depositB,
                v.totalWithdrawn(0) + v.totalWithdrawn(1),
                c.expiry
            )
        );
        return
            abi.encodeCall(ChannelVault.cooperativeClose, (p, c, _sign(ALICE_PK, v, h), _sign(BOB_PK, v, h)));
    }

    function _close(ChannelParams memory p, ChannelVault v, uint256 signerPk, BalanceData memory b)
        internal
        view
        returns (bytes memory)
    {
        return abi.encodeCall(ChannelAdjudicator.close, (p, b, _signBalance(signerPk, p, v, b)));
    }

    function _locks(uint256 salt, uint256 n)
        internal
        pure
        returns (Lock[] memory locks, bytes32[] memory secrets)
    {
        locks = new Lock[](n);
        secrets = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            secrets[i] = keccak256(abi.encode("gas report secret", salt, i));
            // Expiration far ahead: every lock is decided by its revealed secret.
            locks[i] = Lock(uint64(4_000_000_000), 0.1 ether, sha256(abi.encodePacked(secrets[i])));
        }
    }

    function _lockChannel(uint256 salt, uint256 n, string memory registerLabel) internal {
        ChannelParams memory p = _params(address(0), salt);
        ChannelVault v = _openFunded(p, "setup: open + deposit (ETH)");
        (Lock[] memory locks, bytes32[] memory secrets) = _locks(salt, n);
        BalanceData memory fromAlice = BalanceData(3, 1 ether, 0.1 ether * n, _locksRoot(locks));
        _send(BOB_PK, address(v), 0, _close(p, v, ALICE_PK, fromAlice), "setup: unilateral close with locks");
        address registry = address(factory.secretRegistry());
        if (n == 1) {
            _send(
                BOB_PK,
                registry,
                0,
                abi.encodeWithSignature("registerSecret(bytes32)", secrets[0]),
                registerLabel
            );
        } else {
            _send(
                BOB_PK,
                registry,
                0,
                abi.encodeWithSignature("registerSecrets(bytes32[])", secrets),
                registerLabel
            );
        }
    }

    function _settleAndUnlock(uint256 salt, uint256 n) internal {
        ChannelParams memory p = _params(address(0), salt);
        address v = factory.vaultOf(p);
        DisputeState memory s = _lastDispute(v);
        _send(
            BOB_PK,
            v,
            0,
            abi.encodeCall(ChannelAdjudicator.settle, (p, s)),
            "setup: settle with pending locks"
        );
        (Lock[] memory locks,) = _locks(salt, n);
        LockState memory ls = LockState(s.fromA.lockedAmount, s.fromA.locksRoot, 0, 0);
        string memory label = n == 1 ? "unlock 1 lock" : "unlock 6 locks";
        _send(BOB_PK, v, 0, abi.encodeCall(ChannelAdjudicator.unlock, (p, ls, 0, locks)), label);
    }

    /// @dev Alice submits bob's (the receiver's) EIP-712 LockRelease for each of the `n` locks she
    /// sent in channel `salt`, which is closed and in its challenge period.
    function _release(uint256 salt, uint256 n, string memory label) internal {
        ChannelParams memory p = _params(address(0), salt);
        ChannelVault v = ChannelVault(factory.vaultOf(p));
        (Lock[] memory locks,) = _locks(salt, n);
        bytes[] memory signatures = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            signatures[i] = _sign(BOB_PK, v, _lockReleaseHash(p, locks[i]));
        }
        _send(
            ALICE_PK,
            address(v),
            0,
            abi.encodeCall(ChannelAdjudicator.releaseLocks, (p, 0, locks, signatures)),
            label
        );
    }

    /// @dev The EIP-712 struct hash of a LockRelease of `lock` in channel `p` (its receiver signs it).
    function _lockReleaseHash(ChannelParams memory p, Lock memory lock) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "LockRelease(bytes32 channelId,bytes32 secretHash,uint256 amount,uint64 expiration)"
                ),
                factory.channelId(p),
                lock.secretHash,
                lock.amount,
                lock.expiration
            )
        );
    }

    // ------------------------------------------------------------------ plumbing

    function _load() internal {
        string memory json = vm.readFile(string.concat(vm.projectRoot(), "/deployments/31337.json"));
        factory = ChannelFactory(vm.parseJsonAddress(json, ".channelFactory"));
        alice = vm.addr(ALICE_PK);
        bob = vm.addr(BOB_PK);
    }

    function _params(address asset, uint256 salt) internal view returns (ChannelParams memory) {
        return ChannelParams(alice, bob, asset, PERIOD, bytes32(salt));
    }

    function _send(uint256 pk, address to, uint256 value, bytes memory data, string memory label) internal {
        vm.broadcast(pk);
        (bool ok, bytes memory ret) = to.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        _label(label);
    }

    function _label(string memory label) internal {
        labels = string.concat(labels, label, "\n");
    }

    /// @dev The dispute state of the vault's latest Closed or Refuted event.
    function _lastDispute(address vault) internal returns (DisputeState memory s) {
        bytes32[] memory topics = new bytes32[](0);
        Vm.EthGetLogs[] memory logs = vm.eth_getLogs(0, block.number, vault, topics);
        for (uint256 i = logs.length; i > 0; --i) {
            bytes32 sig = logs[i - 1].topics[0];
            if (sig == IChannelVault.Closed.selector || sig == IChannelVault.Refuted.selector) {
                return abi.decode(logs[i - 1].data, (DisputeState));
            }
        }
        revert("no dispute on record");
    }

    function _path(string memory name) internal view returns (string memory) {
        return string.concat(vm.projectRoot(), "/deployments/", name);
    }

    function _locksRoot(Lock[] memory locks) internal pure returns (bytes32) {
        bytes memory packed;
        for (uint256 i = 0; i < locks.length; ++i) {
            packed =
                abi.encodePacked(packed, uint256(locks[i].expiration), locks[i].amount, locks[i].secretHash);
        }
        return keccak256(packed);
    }

    function _towerTypehash() internal pure returns (bytes32) {
        return keccak256(
            "TowerAuthorisation(BalanceProof balanceProof)BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
        );
    }

    function _bpHash(ChannelParams memory p, BalanceData memory b) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
                ),
                factory.channelId(p),
                b.nonce,
                b.transferredAmount,
                b.lockedAmount,
                b.locksRoot
            )
        );
    }

    function _signBalance(uint256 pk, ChannelParams memory p, ChannelVault v, BalanceData memory b)
        internal
        view
        returns (bytes memory)
    {
        return _sign(pk, v, _bpHash(p, b));
    }

    function _sign(uint256 pk, ChannelVault v, bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", v.domainSeparator(), structHash));
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, sv);
    }
}
