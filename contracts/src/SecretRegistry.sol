// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title SecretRegistry
/// @notice Records when the preimage of a hash-time-locked transfer was revealed on chain.
/// @dev Secret hashes are sha256 (as in Lightning, so a lock can pair with an HTLC elsewhere). A
/// lock pays its receiver only if its secret was registered at or before the lock's expiration;
/// the first registration's timestamp is kept, later ones change nothing.
contract SecretRegistry {
    mapping(bytes32 secretHash => uint256 timestamp) private _revealedAt;

    /// @notice Emitted the first time a secret is revealed.
    event SecretRevealed(bytes32 indexed secretHash, bytes32 secret);

    /// @notice Registers `secret`; returns false (and changes nothing) if it was already registered.
    function registerSecret(bytes32 secret) public returns (bool) {
        bytes32 secretHash = sha256(abi.encodePacked(secret));
        if (_revealedAt[secretHash] != 0) return false;
        _revealedAt[secretHash] = block.timestamp;
        emit SecretRevealed(secretHash, secret);
        return true;
    }

    /// @notice Registers several secrets in one transaction; true only if every one was new.
    function registerSecrets(bytes32[] calldata secrets) external returns (bool allNew) {
        allNew = true;
        for (uint256 i = 0; i < secrets.length; ++i) {
            if (!registerSecret(secrets[i])) allNew = false;
        }
    }

    /// @notice When the preimage of `secretHash` was first registered, or 0 if it never was.
    function revealedAt(bytes32 secretHash) external view returns (uint256) {
        return _revealedAt[secretHash];
    }
}
