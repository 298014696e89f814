//! Public-key tables of the signers the intake sees often, so a signature from a known key is
//! checked against its table (keel-core's [`KeyTable`], about six times faster than recovering
//! the key, docs/benchmarks.md) rather than by recovery.
//!
//! A key's table is built the first time its signature verifies by recovery and kept while the
//! cache has room ([`MAX_KEYS`] tables of ~120 KB each). Full, the cache keeps what it holds: the
//! first keys a tower sees after starting are usually its busiest (hubs and large customers).
//! A table accepts exactly the signatures recovery accepts for its address, so the cache
//! changes the speed of a check, never its answer.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use keel_core::{signing, signing::KeyTable, Address, B256};

/// Tables kept at most (~120 KB each: ~30 MiB in all).
pub const MAX_KEYS: usize = 256;

/// Key tables by address. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    tables: Arc<RwLock<HashMap<Address, Arc<KeyTable>>>>,
}

impl KeyCache {
    /// Checks that `signature` over `digest` was made by `expected`, as [`signing::verify`].
    pub fn verify(
        &self,
        digest: &B256,
        signature: &[u8],
        expected: Address,
    ) -> keel_core::Result<()> {
        let known = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&expected)
            .cloned();
        if let Some(table) = known {
            return table.verify(digest, signature);
        }
        let key = signing::recover_key(digest, signature)?;
        let recovered = Address::from_public_key(&key);
        if recovered != expected {
            return Err(keel_core::Error::WrongSigner {
                expected,
                recovered,
            });
        }
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        if tables.len() < MAX_KEYS && !tables.contains_key(&expected) {
            tables.insert(expected, Arc::new(KeyTable::new(key)));
        }
        Ok(())
    }

    /// Many checks at once, each answered as [`KeyCache::verify`] would, in order: those whose
    /// signer has a table together ([`signing::verify_many`], which shares their inversions),
    /// the others one by one (by recovery, which builds their tables).
    pub fn verify_many(&self, checks: &[(B256, &[u8], Address)]) -> Vec<keel_core::Result<()>> {
        let known: Vec<Option<Arc<KeyTable>>> = {
            let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
            checks
                .iter()
                .map(|(_, _, signer)| tables.get(signer).cloned())
                .collect()
        };
        let batch: Vec<(&KeyTable, B256, &[u8])> = checks
            .iter()
            .zip(&known)
            .filter_map(|((digest, signature, _), table)| {
                table.as_deref().map(|t| (t, *digest, *signature))
            })
            .collect();
        let mut batched = signing::verify_many(&batch).into_iter();
        checks
            .iter()
            .zip(&known)
            .map(|((digest, signature, signer), table)| match table {
                Some(_) => batched
                    .next()
                    .unwrap_or(Err(keel_core::Error::SignatureRange)),
                None => self.verify(digest, signature, *signer),
            })
            .collect()
    }

    /// Tables held.
    pub fn len(&self) -> usize {
        self.tables.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no table is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    #[test]
    fn a_known_key_answers_exactly_as_recovery_does() {
        let cache = KeyCache::default();
        let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let digest = B256::repeat_byte(1);
        let good = signing::sign_hash(&alice, &digest).unwrap();
        // Unknown: recovered, refused for the wrong address, and no table for a refusal.
        assert!(cache.verify(&digest, &good, bob.address()).is_err());
        assert!(cache.is_empty());
        cache.verify(&digest, &good, alice.address()).unwrap();
        assert_eq!(cache.len(), 1);
        // Known: the table answers, and refuses what recovery refuses.
        cache.verify(&digest, &good, alice.address()).unwrap();
        let other = B256::repeat_byte(2);
        assert!(cache.verify(&other, &good, alice.address()).is_err());
        let mut flipped = good;
        flipped[64] ^= 1; // v names the other point: ecrecover returns another address.
        assert_eq!(
            cache.verify(&digest, &flipped, alice.address()).is_ok(),
            signing::verify(&digest, &flipped, alice.address()).is_ok()
        );
        let by_bob = signing::sign_hash(&bob, &digest).unwrap();
        assert!(cache.verify(&digest, &by_bob, alice.address()).is_err());

        // Many at once: Alice's from her table, Bob's (no table yet) by recovery, each answered
        // as alone, in order; Bob's table is built on the way.
        let checks: Vec<(B256, &[u8], Address)> = vec![
            (digest, &good[..], alice.address()),
            (digest, &by_bob[..], bob.address()),
            (other, &good[..], alice.address()),
            (digest, &by_bob[..], alice.address()),
            (digest, &flipped[..], alice.address()),
            (digest, &good[..3], alice.address()),
        ];
        let alone: Vec<bool> = checks
            .iter()
            .map(|(d, s, a)| signing::verify(d, s, *a).is_ok())
            .collect();
        let together: Vec<bool> = cache
            .verify_many(&checks)
            .iter()
            .map(Result::is_ok)
            .collect();
        assert_eq!(together, alone);
        assert_eq!(together[..2], [true, true]);
        assert_eq!(cache.len(), 2);
    }
}
