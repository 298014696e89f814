//! Commitment to the pending locks of one direction.

use crate::types::Lock;
use alloy::primitives::{keccak256, B256};
use sha2::{Digest, Sha256};

/// Bytes per lock in the committed encoding: three 32-byte words.
const LOCK_ENCODED_LEN: usize = 96;

/// The `locksRoot` carried by a balance proof.
///
/// Zero for no locks (so a lock-free proof needs no preimage), else
/// `keccak256(expiration ‖ amount ‖ secretHash ‖ …)` with each field a 32-byte big-endian
/// word, which is `abi.encodePacked` over `(uint256, uint256, bytes32)` per lock on chain.
/// Order matters: both sides must keep locks in the order they were added.
pub fn locks_root(locks: &[Lock]) -> B256 {
    if locks.is_empty() {
        return B256::ZERO;
    }
    let mut buf = Vec::with_capacity(locks.len() * LOCK_ENCODED_LEN);
    for lock in locks {
        buf.extend_from_slice(&B256::left_padding_from(&lock.expiration.to_be_bytes()).0);
        buf.extend_from_slice(&lock.amount.to_be_bytes::<32>());
        buf.extend_from_slice(lock.secret_hash.as_slice());
    }
    keccak256(&buf)
}

/// The hash a lock commits to: `sha256(secret)` (the contract uses the sha256 precompile).
pub fn secret_hash(secret: B256) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{b256, U256};

    #[test]
    fn empty_root_is_zero() {
        assert_eq!(locks_root(&[]), B256::ZERO);
    }

    #[test]
    fn sha256_of_zero_secret() {
        // Well-known sha256 of 32 zero bytes.
        assert_eq!(
            secret_hash(B256::ZERO),
            b256!("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925")
        );
    }

    #[test]
    fn root_depends_on_order() {
        let l = |e| Lock {
            expiration: e,
            amount: U256::from(1),
            secret_hash: B256::ZERO,
        };
        assert_ne!(locks_root(&[l(1), l(2)]), locks_root(&[l(2), l(1)]));
    }
}
