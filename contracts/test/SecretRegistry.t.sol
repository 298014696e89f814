// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Test} from "forge-std/Test.sol";
import {SecretRegistry} from "../src/SecretRegistry.sol";

/// @notice The secret registry: sha256 hashing, first-registration-wins timestamps, batches.
contract SecretRegistryTest is Test {
    /// @dev The start time. Tests that warp use it rather than a local copy of block.timestamp,
    /// which via-IR may re-read after the warp.
    uint256 internal constant T0 = 1_700_000_000;

    bytes32 internal constant SECRET_A = "a";
    bytes32 internal constant SECRET_B = "b";
    bytes32 internal constant SECRET_C = "c";

    SecretRegistry internal registry;

    function setUp() public {
        vm.warp(T0);
        registry = new SecretRegistry();
    }

    function hashOf(bytes32 secret) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(secret));
    }

    function test_RegisterReturnsTrueFirstTime() public {
        assertTrue(registry.registerSecret("s"));
        assertEq(registry.revealedAt(hashOf("s")), block.timestamp);
    }

    function test_RegisterReturnsFalseSecondTime() public {
        registry.registerSecret("s");
        assertFalse(registry.registerSecret("s"));
    }

    function test_RegisterAgainKeepsFirstTimestamp() public {
        uint256 first = T0;
        registry.registerSecret("s");
        vm.warp(first + 1 days);
        assertFalse(registry.registerSecret("s"));
        assertEq(registry.revealedAt(hashOf("s")), first);
    }

    function test_RegisterByAnyoneCounts() public {
        vm.prank(makeAddr("someone"));
        assertTrue(registry.registerSecret("s"));
        assertFalse(registry.registerSecret("s"));
    }

    function test_RegisterEmitsSecretRevealed() public {
        vm.expectEmit(address(registry));
        emit SecretRegistry.SecretRevealed(hashOf("s"), "s");
        registry.registerSecret("s");
    }

    function test_RegisterAgainEmitsNothing() public {
        registry.registerSecret("s");
        vm.recordLogs();
        registry.registerSecret("s");
        assertEq(vm.getRecordedLogs().length, 0);
    }

    function test_RegisterZeroSecret() public {
        assertTrue(registry.registerSecret(bytes32(0)));
        assertEq(registry.revealedAt(hashOf(bytes32(0))), block.timestamp);
    }

    function test_RevealedAtUnknownHashIsZero() public view {
        assertEq(registry.revealedAt(hashOf("never")), 0);
        assertEq(registry.revealedAt(bytes32(0)), 0);
    }

    function test_HashIsSha256NotKeccak() public {
        bytes32 secret = "s";
        registry.registerSecret(secret);
        assertEq(registry.revealedAt(sha256(abi.encodePacked(secret))), block.timestamp);
        assertEq(registry.revealedAt(keccak256(abi.encodePacked(secret))), 0);
        // The secret itself is not a key either.
        assertEq(registry.revealedAt(secret), 0);
    }

    function test_HashMatchesKnownSha256Vector() public {
        // sha256 of 32 zero bytes.
        registry.registerSecret(bytes32(0));
        assertEq(
            registry.revealedAt(0x66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925),
            block.timestamp
        );
    }

    function test_RegisterSecretsAllNewReturnsTrue() public {
        bytes32[] memory secrets = new bytes32[](3);
        (secrets[0], secrets[1], secrets[2]) = (SECRET_A, SECRET_B, SECRET_C);
        assertTrue(registry.registerSecrets(secrets));
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(registry.revealedAt(hashOf(secrets[i])), block.timestamp);
        }
    }

    function test_RegisterSecretsEmptyReturnsTrue() public {
        bytes32[] memory none;
        assertTrue(registry.registerSecrets(none));
    }

    function test_RegisterSecretsWithKnownOneReturnsFalseButRegistersTheRest() public {
        uint256 first = T0;
        registry.registerSecret("b");
        vm.warp(first + 1 hours);
        bytes32[] memory secrets = new bytes32[](3);
        (secrets[0], secrets[1], secrets[2]) = (SECRET_A, SECRET_B, SECRET_C);
        assertFalse(registry.registerSecrets(secrets));
        assertEq(registry.revealedAt(hashOf("a")), first + 1 hours);
        assertEq(registry.revealedAt(hashOf("b")), first);
        assertEq(registry.revealedAt(hashOf("c")), first + 1 hours);
    }

    function test_RegisterSecretsDuplicateWithinBatchReturnsFalse() public {
        bytes32[] memory secrets = new bytes32[](2);
        (secrets[0], secrets[1]) = (SECRET_A, SECRET_A);
        vm.recordLogs();
        assertFalse(registry.registerSecrets(secrets));
        assertEq(vm.getRecordedLogs().length, 1);
        assertEq(registry.revealedAt(hashOf("a")), block.timestamp);
    }

    function test_RegisterSecretsEmitsOncePerNewSecret() public {
        bytes32[] memory secrets = new bytes32[](2);
        (secrets[0], secrets[1]) = (SECRET_A, SECRET_B);
        vm.expectEmit(address(registry));
        emit SecretRegistry.SecretRevealed(hashOf("a"), "a");
        vm.expectEmit(address(registry));
        emit SecretRegistry.SecretRevealed(hashOf("b"), "b");
        registry.registerSecrets(secrets);
    }

    function testFuzz_FirstRegistrationWins(bytes32 secret, uint32 delay) public {
        uint256 first = T0;
        assertEq(registry.revealedAt(hashOf(secret)), 0);
        assertTrue(registry.registerSecret(secret));
        vm.warp(first + delay);
        assertFalse(registry.registerSecret(secret));
        assertEq(registry.revealedAt(hashOf(secret)), first);
    }

    function testFuzz_RegisterSecretsReportsWhetherAllNew(bytes32[] memory raw, uint256 preRegistered)
        public
    {
        bytes32[] memory secrets = new bytes32[](raw.length < 16 ? raw.length : 16);
        for (uint256 i = 0; i < secrets.length; ++i) {
            // Every other secret repeats its predecessor's low byte pattern, so duplicates occur.
            secrets[i] = i % 3 == 2 ? secrets[i - 1] : raw[i];
        }
        bool expected = true;
        if (secrets.length != 0) {
            preRegistered = bound(preRegistered, 0, secrets.length);
            if (preRegistered < secrets.length) {
                registry.registerSecret(secrets[preRegistered]);
                expected = false;
            }
        }
        for (uint256 i = 0; i < secrets.length && expected; ++i) {
            for (uint256 j = 0; j < i; ++j) {
                if (secrets[i] == secrets[j]) expected = false;
            }
        }
        assertEq(registry.registerSecrets(secrets), expected);
        for (uint256 i = 0; i < secrets.length; ++i) {
            assertTrue(registry.revealedAt(hashOf(secrets[i])) != 0);
        }
    }
}
