//! Receipts for many appointments under one signature: a watchtower that accepts a batch signs
//! the root of a Merkle tree over the receipts' EIP-712 digests ([`TowerReceiptBatch`]) instead
//! of each receipt, and gives every customer its receipt's path to the root. One signature
//! instead of hundreds is what lets a tower take tens of thousands of appointments a second.
//!
//! The tree hashes each pair of nodes smaller first (`keccak256(min ‖ max)`, as OpenZeppelin's
//! `MerkleProof`), so a path is only the siblings, with no left or right flags; a node without
//! a sibling on its level moves up unchanged. A leaf is a digest of 66 bytes (`0x1901 ‖ domain
//! ‖ struct`) and an inner node one of 64, so neither can pass for the other.

use alloy::primitives::{keccak256, Address, B256};

use crate::{
    eip712::{ChannelDomain, TowerReceipt, TowerReceiptBatch},
    signing, Error,
};

/// Longest path accepted: a tree of 2³² leaves, far beyond any batch a tower takes.
pub const MAX_PATH: usize = 32;

fn node(a: B256, b: B256) -> B256 {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(low.as_slice());
    input[32..].copy_from_slice(high.as_slice());
    keccak256(input)
}

/// The root over `leaves` and each leaf's path to it, in the leaves' order. `None` for no
/// leaves.
pub fn tree(leaves: &[B256]) -> Option<(B256, Vec<Vec<B256>>)> {
    if leaves.is_empty() {
        return None;
    }
    let mut paths = vec![Vec::new(); leaves.len()];
    let mut level: Vec<B256> = leaves.to_vec();
    // How many leaves sit under each node of `level`: node `i` covers leaves
    // `i * width .. (i + 1) * width`.
    let mut width = 1usize;
    while level.len() > 1 {
        for (i, chunk) in paths.chunks_mut(width).enumerate() {
            if let Some(sibling) = level.get(i ^ 1) {
                for path in chunk {
                    path.push(*sibling);
                }
            }
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => node(*a, *b),
                [a] => *a,
                _ => unreachable!("chunks of two"),
            })
            .collect();
        width *= 2;
    }
    Some((level[0], paths))
}

/// The root that `leaf` and `path` lead to.
pub fn root_of(leaf: B256, path: &[B256]) -> B256 {
    path.iter().fold(leaf, |acc, sibling| node(acc, *sibling))
}

/// The message a tower signs over a batch whose tree has root `root`.
pub const fn batch(tower: Address, root: B256) -> TowerReceiptBatch {
    TowerReceiptBatch {
        tower,
        receiptsRoot: root,
    }
}

/// Checks that `signature` is `receipt.tower`'s over the batch that `path` leads to from
/// `receipt` (its digest under `channel`, the channel's domain), on `chain_id`. Returns the
/// batch's root.
pub fn verify_batched(
    receipt: &TowerReceipt,
    channel: &ChannelDomain,
    chain_id: u64,
    path: &[B256],
    signature: &[u8],
) -> Result<B256, Error> {
    if path.len() > MAX_PATH {
        return Err(Error::ReceiptPathTooLong(path.len()));
    }
    let root = root_of(channel.signing_hash(receipt), path);
    let digest =
        ChannelDomain::new(chain_id, receipt.tower).signing_hash(&batch(receipt.tower, root));
    signing::verify(&digest, signature, receipt.tower)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<B256> {
        (0..n)
            .map(|i| keccak256((i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn no_leaves_no_tree_and_one_leaf_is_its_own_root() {
        assert!(tree(&[]).is_none());
        let leaf = B256::repeat_byte(7);
        assert_eq!(tree(&[leaf]), Some((leaf, vec![Vec::new()])));
    }

    #[test]
    fn three_leaves_pair_the_first_two_and_lift_the_third() {
        let l = leaves(3);
        let (root, paths) = tree(&l).unwrap();
        assert_eq!(root, node(node(l[0], l[1]), l[2]));
        assert_eq!(paths[0], vec![l[1], l[2]]);
        assert_eq!(paths[1], vec![l[0], l[2]]);
        assert_eq!(paths[2], vec![node(l[0], l[1])]);
    }

    proptest! {
        /// Every leaf's path leads to the root, and no other leaf's does.
        #[test]
        fn every_path_leads_to_the_root(n in 1usize..300, pick in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let (root, paths) = tree(&l).unwrap();
            for (leaf, path) in l.iter().zip(&paths) {
                prop_assert_eq!(root_of(*leaf, path), root);
                prop_assert!(path.len() <= 9);
            }
            let i = pick.index(n);
            let stranger = keccak256(b"not in the batch");
            prop_assert_ne!(root_of(stranger, &paths[i]), root);
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert_ne!(root_of(l[j], &paths[i]), root);
            }
        }
    }

    #[test]
    fn a_batched_receipt_verifies_and_any_change_fails() {
        let tower = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
        let chain_id = 31_337;
        let receipts: Vec<(TowerReceipt, ChannelDomain)> = (0..5u8)
            .map(|i| {
                (
                    TowerReceipt {
                        tower: tower.address(),
                        customer: Address::repeat_byte(0xb),
                        channelId: B256::repeat_byte(i),
                        nonce: u64::from(i) + 1,
                        acceptedAt: 100,
                        watchUntil: 200,
                    },
                    ChannelDomain::new(chain_id, Address::repeat_byte(0x40 + i)),
                )
            })
            .collect();
        let digests: Vec<B256> = receipts.iter().map(|(r, d)| d.signing_hash(r)).collect();
        let (root, paths) = tree(&digests).unwrap();
        let batch_digest = ChannelDomain::new(chain_id, tower.address())
            .signing_hash(&batch(tower.address(), root));
        let signature = signing::sign_hash(&tower, &batch_digest).unwrap();
        for ((receipt, domain), path) in receipts.iter().zip(&paths) {
            assert_eq!(
                verify_batched(receipt, domain, chain_id, path, &signature).unwrap(),
                root
            );
            // Another nonce, channel domain or chain: the root differs, so the signer does.
            let mut changed = receipt.clone();
            changed.nonce += 1;
            assert!(verify_batched(&changed, domain, chain_id, path, &signature).is_err());
            let elsewhere = ChannelDomain::new(chain_id, Address::repeat_byte(0x99));
            assert!(verify_batched(receipt, &elsewhere, chain_id, path, &signature).is_err());
            assert!(verify_batched(receipt, domain, 1, path, &signature).is_err());
        }
        let long = vec![B256::ZERO; MAX_PATH + 1];
        assert!(matches!(
            verify_batched(&receipts[0].0, &receipts[0].1, chain_id, &long, &signature),
            Err(Error::ReceiptPathTooLong(n)) if n == MAX_PATH + 1
        ));
    }
}
